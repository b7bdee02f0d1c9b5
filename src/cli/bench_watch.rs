//! `imgsim bench watch`: the daemon measured from outside, as a user meets it. Starts
//! `imgsim watch` on a fresh folder, copies photos in and times how soon they are searchable;
//! then its idle memory, and `imgsim similar` with and without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imgsim::store::Store;
use imgsim::watch::socket::{Request, Response};
use serde::{Deserialize, Serialize};

use super::common::print_json;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct WatchBenchArgs {
    /// Photos to ingest (copied into a fresh watched folder).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "../shared/data/coco128/val2017"
    )]
    images: PathBuf,
    /// Model name (as for `imgsim watch`).
    #[arg(long, short = 'm', default_value = "clip")]
    model: String,
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Single photos dropped in one at a time, for the events-to-searchable latency.
    #[arg(long, default_value_t = 10)]
    singles: usize,
    /// `imgsim similar` runs with, and as many without, the daemon.
    #[arg(long, default_value_t = 10)]
    queries: usize,
    /// Working folder (default: a fresh temporary one); it must be empty or new, or one a
    /// benchmark made (its contents are replaced).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WatchBenchLine {
    pub model: String,
    pub startup_seconds: f64,
    pub ingest_images: usize,
    pub ingest_seconds: f64,
    pub ingest_images_per_second: f64,
    /// From the copy's end to the row being readable, one photo at a time.
    pub single_p50_ms: f64,
    pub single_max_ms: f64,
    pub idle_resident_bytes: u64,
    /// Whole `imgsim similar` processes, query not indexed (embedded each time).
    pub similar_with_daemon_p50_ms: f64,
    pub similar_without_daemon_p50_ms: f64,
    pub stop_seconds: f64,
}

pub(super) struct Child(pub(super) std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `imgsim watch ROOT --db DB MODEL_ARGS...`, once it is watching (models loaded, first
/// reconcile done).
pub(super) fn start_daemon(
    exe: &Path,
    root: &Path,
    db: &Path,
    model_args: &[String],
) -> anyhow::Result<Child> {
    let daemon = Child(
        Command::new(exe)
            .arg("watch")
            .arg(root)
            .arg("--db")
            .arg(db)
            .args(model_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_until("the daemon to start", Duration::from_secs(300), || {
        matches!(
            imgsim::watch::socket::ask(db, &Request::Status, &[]),
            Ok(Some(Response::Status(s))) if s.phase == "watching"
        )
    })?;
    Ok(daemon)
}

pub(super) fn wait_until(
    what: &str,
    bound: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done() {
        anyhow::ensure!(
            started.elapsed() < bound,
            "gave up waiting for {what} after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn rows(db: &Path) -> usize {
    let Ok(store) = Store::open(db, false) else {
        return 0;
    };
    let Ok(Some(info)) = store.tables().map(|t| t.into_iter().next()) else {
        return 0;
    };
    match store.table(&info.model_id) {
        Ok(Some(table)) => table.count().unwrap_or(0),
        _ => 0,
    }
}

pub(super) fn p50(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(args: WatchBenchArgs) -> anyhow::Result<Outcome> {
    let temporary = work_dir(&args.dir, "watch")?;
    let root = temporary.join("library");
    let db = temporary.join("db");
    std::fs::create_dir_all(&root)?;
    let exe = std::env::current_exe()?;
    let mut model_args = vec!["--model".to_string(), args.model.clone()];
    if let Some(dir) = &args.model_dir {
        model_args = vec![
            "--model-dir".into(),
            std::fs::canonicalize(dir)?.display().to_string(),
        ];
    }
    let mut photos: Vec<PathBuf> = imgsim::scan::images_in(&args.images)?;
    anyhow::ensure!(
        photos.len() > args.singles + 1,
        "{}: needs more than {} photos",
        args.images.display(),
        args.singles + 1
    );
    let singles = photos.split_off(photos.len() - args.singles);
    let query_source = photos[0].clone();

    let started = Instant::now();
    let mut daemon = start_daemon(&exe, &root, &db, &model_args)?;
    let startup_seconds = started.elapsed().as_secs_f64();

    // Ingest: every photo copied in at once, until all are rows.
    let started = Instant::now();
    for photo in &photos {
        std::fs::copy(photo, root.join(photo.file_name().expect("a file")))?;
    }
    let want = photos.len();
    wait_until(
        "the photos to be indexed",
        Duration::from_secs(3600),
        || rows(&db) >= want,
    )?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));

    // One photo at a time: from the end of its copy to its row being readable.
    let mut single_ms = Vec::new();
    for (i, photo) in singles.iter().enumerate() {
        let before = rows(&db);
        std::fs::copy(photo, root.join(format!("single-{i}.jpg")))?;
        let copied = Instant::now();
        wait_until("a single photo", Duration::from_secs(120), || {
            rows(&db) > before
        })?;
        single_ms.push(copied.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(300));
    }

    std::thread::sleep(Duration::from_secs(3));
    let idle_resident_bytes = imgsim::util::resident_memory_mb_of(daemon.0.id())
        .map_or(0, |(_, current)| (current * 1024.0 * 1024.0) as u64);

    // `imgsim similar` as a user runs it, with the daemon and without.
    let query = temporary.join("query.jpg");
    std::fs::copy(&query_source, &query)?;
    let mut timings = [Vec::new(), Vec::new()];
    for _ in 0..args.queries {
        for (i, extra) in [None, Some("--no-daemon")].into_iter().enumerate() {
            let t = Instant::now();
            let out = Command::new(&exe)
                .arg("similar")
                .arg(&query)
                .arg("--db")
                .arg(&db)
                .args(&model_args)
                .args(extra)
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "imgsim similar failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            timings[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }

    let t = Instant::now();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    daemon.0.wait()?;
    let stop_seconds = t.elapsed().as_secs_f64();

    let [with, without] = timings;
    let line = WatchBenchLine {
        model: args
            .model_dir
            .as_ref()
            .map_or(args.model.clone(), |d| d.display().to_string()),
        startup_seconds,
        ingest_images: want,
        ingest_seconds,
        ingest_images_per_second: want as f64 / ingest_seconds,
        single_p50_ms: p50(single_ms.clone()),
        single_max_ms: single_ms.iter().copied().fold(0.0, f64::max),
        idle_resident_bytes,
        similar_with_daemon_p50_ms: p50(with),
        similar_without_daemon_p50_ms: p50(without),
        stop_seconds,
    };
    if args.json {
        print_json(&line);
    } else {
        println!("model: {}", line.model);
        println!("daemon start (models loaded, reconcile done): {startup_seconds:.2} s");
        println!(
            "ingest: {} photos in {:.2} s = {:.1} images/s",
            want, ingest_seconds, line.ingest_images_per_second
        );
        println!(
            "one new photo -> searchable: p50 {:.0} ms, max {:.0} ms ({} photos)",
            line.single_p50_ms,
            line.single_max_ms,
            single_ms.len()
        );
        println!(
            "daemon memory when idle: {:.1} MiB",
            idle_resident_bytes as f64 / (1024.0 * 1024.0)
        );
        println!(
            "imgsim similar (query not indexed), p50 of {}: {:.0} ms with the daemon, {:.0} ms without",
            args.queries, line.similar_with_daemon_p50_ms, line.similar_without_daemon_p50_ms
        );
        println!("SIGTERM to exit: {stop_seconds:.2} s");
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&temporary);
    }
    Ok(Outcome::Done)
}

/// The marker of a working folder a benchmark made (and may empty again).
const MARKER: &str = ".imgsim-bench";

/// A working folder for a benchmark: a fresh temporary one, or `--dir`, which must be empty,
/// absent, or one an earlier benchmark made: a benchmark never deletes what a user owns.
pub(super) fn work_dir(dir: &Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("imgsim-bench-{name}-{}", std::process::id())),
    };
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)?.next().is_none();
        anyhow::ensure!(
            empty || dir.join(MARKER).is_file(),
            "{}: not empty, and not a folder an imgsim benchmark made: give an empty or new folder",
            dir.display()
        );
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by an imgsim benchmark; deleted by the next one\n",
    )?;
    Ok(dir)
}
