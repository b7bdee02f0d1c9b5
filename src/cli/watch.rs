//! `imgsim watch`: the daemon, as users run it. The library's `watch` does the work; this
//! layer takes the locks, loads the models, opens the query socket, handles signals and prints
//! what the daemon reports.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgsim::store::{DaemonLock, Store};
use imgsim::util::now_seconds;
use imgsim::watch::socket::{self, ModelKey, Server};
use imgsim::watch::{DaemonStatus, Report, Shared, WatchConfig};

use super::common::{print_json, LibraryArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    library: LibraryArgs,
    /// Poll the folders every SECS seconds instead of following file-system events: for NFS
    /// and SMB mounts, which send no events. Without it, imgsim falls back to polling by
    /// itself when the system runs out of inotify watches.
    #[arg(long, value_name = "SECS")]
    poll: Option<f64>,
    /// Seconds a file must stay unchanged before it is indexed, where the system does not
    /// report that its writer closed it (polling, moved-in files).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    settle: f64,
    /// One JSON line per thing done on stdout (for logs and scripts).
    #[arg(long)]
    json: bool,
    /// Also serve the web page (as `imgsim serve`), at ADDR or 127.0.0.1:8417.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = imgsim::serve::DEFAULT_BIND)]
    serve: Option<std::net::SocketAddr>,
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && value > 0.0,
        "{flag} {value}: give a number of seconds above 0"
    );
    Ok(Duration::from_secs_f64(value))
}

pub fn run(args: WatchArgs) -> anyhow::Result<Outcome> {
    let library = &args.library;
    let roots = library.roots(true)?;
    let mut config = WatchConfig::new(roots, library.exclude()?);
    config.sniff = library.sniff;
    config.poll = args.poll.map(|p| seconds(p, "--poll")).transpose()?;
    config.settle = seconds(args.settle, "--settle")?;

    let db_dir = library.db.dir()?;
    std::fs::create_dir_all(&db_dir).map_err(|e| anyhow::anyhow!("{}: {e}", db_dir.display()))?;
    let db_dir = std::fs::canonicalize(&db_dir)?;
    // Opened first: a database of a newer imgsim is refused before anything is written.
    let store = Store::open(&db_dir, true)?;
    let _daemon_lock = DaemonLock::acquire(&db_dir, &library.doing("watch"))?;

    let device = super::common::select_device(library.model.device)?;
    let mut models = Vec::new();
    let mut keys = Vec::new();
    for source in library.model.sources_or_all()? {
        let model = library.model.load(&source, None, &device)?;
        store.table_or_create(&model.name, &model.id, model.dim())?;
        models.push(Arc::new(imgsim::embed::Embedder::new(
            model,
            device.clone(),
        )));
        keys.push(ModelKey::of(&source));
    }
    let status = DaemonStatus {
        pid: std::process::id(),
        started_at: now_seconds(),
        models: models.iter().map(|m| m.model().name.clone()).collect(),
        ..DaemonStatus::default()
    };
    let shared = Arc::new(Shared {
        store,
        models,
        status: Mutex::new(status),
        filters: Mutex::new(()),
        queries: Mutex::new(()),
        #[cfg(unix)]
        text: Default::default(),
    });
    match Server::bind(&db_dir) {
        Ok(server) => {
            server.spawn(shared.clone(), keys);
        }
        Err(e) => eprintln!("imgsim: no query socket (queries will load their own model): {e}"),
    }

    // SIGINT or SIGTERM: finish the pass (within a forward pass), commit, release. A second
    // Ctrl-C ends at once (the index stays consistent: a crash is safe too).
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }

    let page = args.serve.map(|bind| {
        let serve_args = super::serve::ServeArgs {
            bind,
            open: false,
            token: None,
            thumbs_max_mb: 512,
            clear_thumbs: false,
            model_dir: library.model.model_dir.clone(),
            db: library.db.clone(),
            json: args.json,
        };
        let (stop, db_dir) = (stop.clone(), db_dir.clone());
        std::thread::spawn(move || {
            let served = serve_args
                .server(&db_dir)
                .execute(&stop, |started| serve_args.announce(started));
            if let Err(e) = served {
                eprintln!("imgsim: the page is not served: {e}");
            }
        })
    });

    let json = args.json;
    let mut report = |r: Report| print_report(&r, json);
    let result = imgsim::watch::Daemon::new(&shared, &config, &stop, &mut report)
        .and_then(|daemon| daemon.run());
    socket::remove_socket(&db_dir);
    if let Some(page) = page {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = page.join();
    }
    result?;
    Ok(Outcome::Done)
}

fn print_report(report: &Report, json: bool) {
    // After each pass and compaction, freed memory goes back to the system: under constant
    // change the daemon is never idle, and what a pass freed stayed resident until it was.
    if matches!(
        report,
        Report::Idle | Report::Synced { .. } | Report::Compacted { .. }
    ) {
        return_memory_to_the_system();
    }
    if json {
        print_json(report);
        return;
    }
    match report {
        Report::Watching { roots, mode } => {
            eprintln!("imgsim: watching {} ({mode})", roots.join(", "))
        }
        Report::Synced {
            model,
            trigger,
            summary: s,
            seconds,
            ..
        } => {
            let changed = s.added + s.updated + s.moved + s.removed + s.failed;
            if changed > 0 || trigger == "reconcile" {
                eprintln!(
                    "imgsim: {model}: {} added, {} updated, {} moved, {} removed, {} failed \
                     ({} embedded{}) in {seconds:.1} s",
                    s.added,
                    s.updated,
                    s.moved,
                    s.removed,
                    s.failed,
                    s.embedded,
                    if trigger == "reconcile" {
                        format!(", {} unchanged", s.unchanged)
                    } else {
                        String::new()
                    }
                );
            }
        }
        Report::FileFailed { error, .. } => eprintln!("imgsim: {error}"),
        Report::Warning { message } => eprintln!("imgsim: warning: {message}"),
        Report::RootMissing { root } => eprintln!(
            "imgsim: {root} is gone (unmounted?); its images stay indexed until it is back"
        ),
        Report::RootBack { root } => eprintln!("imgsim: {root} is back; reconciling"),
        Report::Compacted { model, seconds, .. } => {
            eprintln!("imgsim: {model}: compacted in {seconds:.1} s")
        }
        Report::Stopped => eprintln!("imgsim: stopped"),
        Report::Idle => {}
    }
}

/// Freed memory goes back to the system (see allocator.rs).
fn return_memory_to_the_system() {
    crate::allocator::trim();
}
