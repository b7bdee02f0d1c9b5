//! `imgsim bench soak`: hours of mixed use, compressed. A watched library where files are
//! added, edited, renamed, moved between folders, copied and deleted at random (seeded), while
//! `index`, `tag`, `similar` and `status` run in loops beside the daemon. At the end the table
//! must equal the files on disk (each once, with its current content hash), the filter index
//! must be at the table's version, no command may have failed (waiting for the writer lock is
//! documented behaviour, not a failure), and the daemon's memory must not have grown past its
//! level after the warm-up (the first minute, or the first third of a shorter run): the median
//! of its private resident memory over the first third of the time after the warm-up (at least
//! a warm-up long), against the median over the last third, with 10% for allocator slack.
//! Thirds, not one-minute windows: the samples swing by a quarter (19-25 MiB) with the passes
//! and the trims after them, and a window of one minute right after the warm-up could catch
//! the daemon still filling its arenas (a flat 30-minute run read 22 -> 24 MiB that way). Private memory (heap and
//! stacks), because the pages of the binary count in the resident size as code first runs:
//! the first compaction adds ~40 MiB of them.
//!
//! Files arrive as users' tools deliver them: written under a temporary name and renamed into
//! place, so that no command ever sees half a picture by design (the daemon's handling of
//! half-written files has tests of its own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use imgsim::store::{FilterIndex, Store};
use imgsim::watch::socket::{Request, Response};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::bench_watch::{p50, wait_until, work_dir, Child};
use super::common::print_json;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// How long the library is changed while the commands run.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Seed of the random changes (the same seed makes the same changes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Model (as for `imgsim watch`); the default needs no weights.
    #[arg(long, short = 'm', default_value = "phash")]
    model: String,
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Working folder (default: a fresh temporary one); it must be empty or new, or one a
    /// benchmark made (its contents are replaced). Kept after a failed run.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// `imgsim bench soak --json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SoakLine {
    pub seed: u64,
    pub minutes: f64,
    /// Changes made to the library, by kind.
    pub changes: BTreeMap<String, usize>,
    /// Commands run beside the daemon, by command.
    pub commands: BTreeMap<String, usize>,
    /// Commands that had to wait for the writer lock (documented, not a failure).
    pub lock_waits: usize,
    pub files_at_end: usize,
    pub rows_at_end: usize,
    /// From the end of the changes to the table equal to the disk.
    pub converged_seconds: f64,
    /// The daemon's level: the median of its private resident memory (heap and stacks, not
    /// the pages of its binary) over the first third after the warm-up.
    pub daemon_private_level_mb: f64,
    /// The median over the last third.
    pub daemon_private_end_mb: f64,
    /// The highest sample after the warm-up.
    pub daemon_private_max_mb: f64,
    /// Every sample: seconds since the start of the changes, MiB.
    #[serde(default)]
    pub daemon_private_samples: Vec<(f64, f64)>,
    pub failures: Vec<String>,
    pub passed: bool,
}

/// Folders the changes move files between; `keep/` is never changed (queries and tags).
const FOLDERS: [&str; 3] = ["a", "b", "c/deeper"];
const KEEP: usize = 6;
const START_FILES: usize = 80;
const MAX_FILES: usize = 90;
/// Memory may move by this much (allocator slack) without counting as growth.
const RSS_SLACK: f64 = 1.10;

struct Run {
    exe: PathBuf,
    db: PathBuf,
    library: PathBuf,
    model_args: Vec<String>,
    stop: AtomicBool,
    started: Instant,
    report: Mutex<SoakLine>,
}

impl Run {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            .arg("--db")
            .arg(&self.db)
            .stdin(Stdio::null());
        command
    }

    /// Runs one command of a loop and records how it ended.
    fn record(&self, name: &str, mut command: Command, ok_codes: &[i32]) {
        let out = match command.output() {
            Ok(out) => out,
            Err(e) => return self.fail(format!("{name}: could not run: {e}")),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut report = self.report.lock().unwrap();
        *report.commands.entry(name.into()).or_default() += 1;
        if stderr.contains("waiting for") {
            report.lock_waits += 1;
        }
        if !out.status.code().is_some_and(|c| ok_codes.contains(&c)) {
            drop(report);
            self.fail(format!(
                "{name} exited with {:?}: {}",
                out.status.code(),
                stderr.trim()
            ));
        }
    }

    /// Records a failure, and says it at once (the report comes at the end).
    fn fail(&self, message: String) {
        eprintln!(
            "imgsim: {:.0} s: FAILED: {message}",
            self.started.elapsed().as_secs_f64()
        );
        self.report.lock().unwrap().failures.push(message);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One turn of a command loop: the run, and the turn's number.
type LoopBody = Box<dyn Fn(&Run, usize) + Send>;

/// A small picture of its own: a gradient and blocks from the random stream.
fn picture(rng: &mut ChaCha8Rng) -> RgbImage {
    let (w, h) = (rng.random_range(48..160), rng.random_range(48..160));
    let base: [u8; 3] = rng.random();
    let mut image = RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            base[0].wrapping_add((x * 2) as u8),
            base[1].wrapping_add((y * 2) as u8),
            base[2],
        ])
    });
    for _ in 0..rng.random_range(2..8) {
        let (x0, y0) = (rng.random_range(0..w), rng.random_range(0..h));
        let colour = Rgb(rng.random());
        for y in y0..(y0 + h / 4).min(h) {
            for x in x0..(x0 + w / 4).min(w) {
                image.put_pixel(x, y, colour);
            }
        }
    }
    image
}

/// Writes a picture as users' tools do: under a temporary name, then renamed into place.
fn deliver(rng: &mut ChaCha8Rng, to: &Path) -> std::io::Result<()> {
    let temporary = to.with_extension("part");
    let format = if to.extension().is_some_and(|e| e == "jpg") {
        image::ImageFormat::Jpeg
    } else {
        image::ImageFormat::Png
    };
    picture(rng)
        .save_with_format(&temporary, format)
        .map_err(std::io::Error::other)?;
    std::fs::rename(&temporary, to)
}

/// The picture files under `library`, found without imgsim's own walk (`scan`): the soak's
/// idea of the disk must not share a bug with what it checks.
fn library_files(library: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(library)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && imgsim::scan::has_image_extension(e.path()))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// One random change to the library outside `keep/`; its kind.
fn change(
    rng: &mut ChaCha8Rng,
    library: &Path,
    serial: &mut usize,
) -> std::io::Result<&'static str> {
    let files: Vec<PathBuf> = library_files(library)
        .into_iter()
        .filter(|p| !p.starts_with(library.join("keep")))
        .collect();
    let mut new_name = |rng: &mut ChaCha8Rng| {
        *serial += 1;
        let folder = FOLDERS[rng.random_range(0..FOLDERS.len())];
        let ext = if rng.random_bool(0.5) { "jpg" } else { "png" };
        library.join(folder).join(format!("soak-{serial}.{ext}"))
    };
    let pick = |rng: &mut ChaCha8Rng| files[rng.random_range(0..files.len())].clone();
    if files.len() < 10 || (files.len() < MAX_FILES && rng.random_bool(0.3)) {
        let to = new_name(rng);
        deliver(rng, &to)?;
        return Ok("add");
    }
    match rng.random_range(0..100) {
        0..=19 => {
            let file = pick(rng);
            deliver(rng, &file)?;
            Ok("edit")
        }
        20..=39 => {
            let file = pick(rng);
            let ext = file.extension().unwrap_or_default().to_owned();
            *serial += 1;
            std::fs::rename(
                &file,
                file.with_file_name(format!("renamed-{serial}"))
                    .with_extension(ext),
            )?;
            Ok("rename")
        }
        40..=59 => {
            let file = pick(rng);
            let ext = file.extension().unwrap_or_default().to_owned();
            std::fs::rename(&file, new_name(rng).with_extension(ext))?;
            Ok("move")
        }
        60..=69 => {
            let file = pick(rng);
            let ext = file.extension().unwrap_or_default().to_owned();
            let temporary = new_name(rng).with_extension("part");
            std::fs::copy(&file, &temporary)?;
            std::fs::rename(&temporary, temporary.with_extension(ext))?;
            Ok("copy")
        }
        _ => {
            std::fs::remove_file(pick(rng))?;
            Ok("delete")
        }
    }
}

/// `read` of the soak's (single) table and its manifest entry; `empty` when there is none yet.
fn with_the_table<T>(
    db: &Path,
    empty: T,
    read: impl FnOnce(&imgsim::store::TableInfo, &imgsim::store::ModelTable<'_>) -> imgsim::Result<T>,
) -> imgsim::Result<T> {
    let store = Store::open(db, false)?;
    let Some(info) = store.tables()?.into_iter().next() else {
        return Ok(empty);
    };
    match store.table(&info.model_id)? {
        Some(table) => read(&info, &table),
        None => Ok(empty),
    }
}

/// Every row of the (single) table: path -> (how many rows, hash).
fn table_rows(db: &Path) -> imgsim::Result<BTreeMap<String, (usize, String)>> {
    with_the_table(db, BTreeMap::new(), |_, table| {
        let files = table.files()?;
        let mut rows = BTreeMap::new();
        for path in table.paths()? {
            let hash = files[&path].hash.clone();
            rows.entry(path).or_insert((0, hash)).0 += 1;
        }
        Ok(rows)
    })
}

/// The files on disk as the table should hold them: path -> (1, blake3 of the content).
fn disk_rows(library: &Path) -> BTreeMap<String, (usize, String)> {
    library_files(library)
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let key = imgsim::util::path_string(&path);
            Some((key, (1, blake3::hash(&bytes).to_hex().to_string())))
        })
        .collect()
}

/// Whether the filter index on disk is at the table's version and holds its paths.
fn filters_at_table_version(db: &Path) -> imgsim::Result<bool> {
    with_the_table(db, false, |info, table| {
        let filters = FilterIndex::open(&db.join(format!("{}.filters", info.table)))?;
        let paths: BTreeSet<String> = table.paths()?.into_iter().collect();
        let indexed: BTreeSet<String> = filters
            .matching_paths("ext:jpg OR ext:png")?
            .into_iter()
            .collect();
        Ok(filters.built_from()? == Some(table.version()?) && indexed == paths)
    })
}

fn daemon_idle(db: &Path) -> bool {
    matches!(
        imgsim::watch::socket::ask(db, &Request::Status, &[]),
        Ok(Some(Response::Status(s))) if s.idle && s.phase == "watching" && s.queue == 0
    )
}

pub fn run(args: SoakArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        args.minutes > 0.0 && args.minutes.is_finite(),
        "--minutes must be a positive number of minutes"
    );
    let work = work_dir(&args.dir, "soak")?;
    let library = work.join("library");
    let db = work.join("db");
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    for folder in FOLDERS.iter().chain(["keep"].iter()) {
        std::fs::create_dir_all(library.join(folder))?;
    }
    let keep: Vec<PathBuf> = (0..KEEP)
        .map(|i| library.join("keep").join(format!("keep-{i}.png")))
        .collect();
    for file in &keep {
        deliver(&mut rng, file)?;
    }
    let mut serial = 0;
    for _ in 0..START_FILES {
        let folder = FOLDERS[rng.random_range(0..FOLDERS.len())];
        serial += 1;
        deliver(
            &mut rng,
            &library.join(folder).join(format!("start-{serial}.jpg")),
        )?;
    }
    let model_args = match &args.model_dir {
        Some(dir) => vec![
            "--model-dir".to_string(),
            std::fs::canonicalize(dir)?.display().to_string(),
        ],
        None => vec!["--model".to_string(), args.model.clone()],
    };
    let run = Arc::new(Run {
        exe: std::env::current_exe()?,
        db: db.clone(),
        library: library.clone(),
        model_args,
        stop: AtomicBool::new(false),
        started: Instant::now(),
        report: Mutex::new(SoakLine {
            seed: args.seed,
            minutes: args.minutes,
            ..SoakLine::default()
        }),
    });

    let daemon_log = work.join("daemon.jsonl");
    let mut daemon = Child(
        run.command(&["watch", "--json"])
            .arg(&library)
            .args(&run.model_args)
            .stdout(std::fs::File::create(&daemon_log)?)
            .stderr(std::fs::File::create(work.join("daemon.stderr"))?)
            .spawn()?,
    );
    wait_until("the daemon to start", Duration::from_secs(300), || {
        daemon_idle(&db)
    })?;
    if !args.json {
        eprintln!(
            "imgsim: soaking {} for {} minutes (seed {}); working folder {}",
            args.model_dir
                .as_ref()
                .map_or(args.model.clone(), |d| d.display().to_string()),
            args.minutes,
            args.seed,
            work.display()
        );
    }

    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = Duration::from_secs(60).min(duration / 3);
    let started = Instant::now();
    let mut loops = Vec::new();
    // The commands beside the daemon, each in a loop of its own.
    let spawn_loop = |pause_ms: u64, body: LoopBody| {
        let run = run.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !run.stopped() {
                body(&run, i);
                i += 1;
                std::thread::sleep(Duration::from_millis(pause_ms));
            }
        })
    };
    let keep_args: Vec<String> = keep.iter().map(|p| p.display().to_string()).collect();
    let ka = keep_args.clone();
    loops.push(spawn_loop(
        4000,
        Box::new(move |run, _| {
            let mut command = run.command(&["index"]);
            command.arg(&run.library).args(&run.model_args);
            run.record("index", command, &[0]);
        }),
    ));
    loops.push(spawn_loop(
        1500,
        Box::new(move |run, i| {
            let action = if i % 3 == 2 { "rm" } else { "add" };
            let tag = format!("soak-{}", i % 4);
            let mut command = run.command(&["tag", action, "-t", &tag, &ka[i % KEEP]]);
            command.stdout(Stdio::null());
            run.record("tag", command, &[0]);
        }),
    ));
    let ka = keep_args.clone();
    loops.push(spawn_loop(
        700,
        Box::new(move |run, i| {
            let mut command = run.command(&["similar", &ka[i % KEEP], "-k", "5"]);
            command.args(&run.model_args);
            if i % 2 == 1 {
                command.args(["--where", "dir:keep OR tag:soak*"]);
            }
            // 1: nothing similar enough is not a failure.
            run.record("similar", command, &[0, 1]);
        }),
    ));
    loops.push(spawn_loop(
        2000,
        Box::new(move |run, _| {
            let command = run.command(&["status", "--json"]);
            run.record("status", command, &[0]);
        }),
    ));

    // The changes, and the daemon's memory, until the time is up.
    // The level is the median sample over the first third after the warm-up; the median over
    // the last third may not pass it by more than the slack (medians, as one sample can catch
    // a pass at its peak).
    let mut samples: Vec<(Duration, f64)> = Vec::new();
    let mut last_progress = Instant::now();
    while started.elapsed() < duration {
        match change(&mut rng, &library, &mut serial) {
            Ok(kind) => {
                *run.report
                    .lock()
                    .unwrap()
                    .changes
                    .entry(kind.into())
                    .or_default() += 1
            }
            Err(e) => run.fail(format!("a change to the library failed: {e}")),
        }
        if let Ok(Some(status)) = daemon.0.try_wait() {
            run.fail(format!("the daemon exited ({status})"));
            break;
        }
        let rss = imgsim::util::anonymous_memory_mb_of(daemon.0.id());
        if let Some(rss) = rss {
            samples.push((started.elapsed(), rss));
        }
        if !args.json && last_progress.elapsed() >= Duration::from_secs(60) {
            last_progress = Instant::now();
            let report = run.report.lock().unwrap();
            eprintln!(
                "imgsim: {:.0} min: {} changes, {} commands, {} failures, daemon {:.0} MiB private",
                started.elapsed().as_secs_f64() / 60.0,
                report.changes.values().sum::<usize>(),
                report.commands.values().sum::<usize>(),
                report.failures.len(),
                rss.unwrap_or(0.0)
            );
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(30..300)));
    }
    run.stop.store(true, Ordering::Relaxed);
    for handle in loops {
        let _ = handle.join();
    }

    // The end: the daemon catches up, then the table must equal the disk.
    let quiet = Instant::now();
    let disk = disk_rows(&library);
    let converged = wait_until(
        "the table to equal the files on disk",
        Duration::from_secs(300),
        || daemon_idle(&db) && table_rows(&db).is_ok_and(|rows| rows == disk),
    );
    let mut report = std::mem::take(&mut *run.report.lock().unwrap());
    report.converged_seconds = quiet.elapsed().as_secs_f64();
    let rows = table_rows(&db).unwrap_or_default();
    report.files_at_end = disk.len();
    report.rows_at_end = rows.values().map(|(n, _)| n).sum();
    if converged.is_err() {
        let differ: Vec<String> = disk
            .keys()
            .chain(rows.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| disk.get(*k) != rows.get(*k))
            .take(10)
            .map(|k| format!("{}: disk {:?}, table {:?}", k, disk.get(k), rows.get(k)))
            .collect();
        report.failures.push(format!(
            "the table did not converge to the disk within 300 s; first differences: {differ:?}"
        ));
    }
    match filters_at_table_version(&db) {
        Ok(true) => {}
        Ok(false) => report
            .failures
            .push("the filter index is not at the table's version".into()),
        Err(e) => report.failures.push(format!("the filter index: {e}")),
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    match daemon.0.wait() {
        Ok(status) if status.success() => {}
        Ok(status) => report
            .failures
            .push(format!("the daemon ended with {status}")),
        Err(e) => report.failures.push(format!("the daemon: {e}")),
    }
    let window = |from: Duration, to: Duration| {
        p50(samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, mb)| *mb)
            .collect())
    };
    let third = ((duration.saturating_sub(warmup)) / 3).max(warmup);
    let level = window(warmup, warmup + third);
    let end = window(duration.saturating_sub(third), duration);
    report.daemon_private_samples = samples
        .iter()
        .map(|(t, mb)| (t.as_secs_f64(), *mb))
        .collect();
    report.daemon_private_level_mb = level;
    report.daemon_private_end_mb = end;
    report.daemon_private_max_mb = samples
        .iter()
        .filter(|(t, _)| *t >= warmup)
        .map(|(_, mb)| *mb)
        .fold(0.0, f64::max);
    if end > level * RSS_SLACK {
        report.failures.push(format!(
            "the daemon's private memory grew from {level:.0} MiB after the warm-up to {end:.0} MiB at the end"
        ));
    }
    report.passed = report.failures.is_empty();
    let passed = report.passed;
    if args.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    if passed && args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else if !passed {
        eprintln!(
            "imgsim: kept the working folder for a look: {}",
            work.display()
        );
    }
    Ok(if passed {
        Outcome::Done
    } else {
        Outcome::SomeFailed
    })
}

fn print_report(r: &SoakLine) {
    let join = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("soak: {} minutes, seed {}", r.minutes, r.seed);
    println!("changes: {}", join(&r.changes));
    println!(
        "commands: {} ({} waited for the writer lock)",
        join(&r.commands),
        r.lock_waits
    );
    println!(
        "at the end: {} files, {} rows; equal after {:.1} s",
        r.files_at_end, r.rows_at_end, r.converged_seconds
    );
    println!(
        "daemon memory (private, medians): {:.0} MiB after the warm-up, {:.0} MiB at the end (highest {:.0} MiB)",
        r.daemon_private_level_mb, r.daemon_private_end_mb, r.daemon_private_max_mb
    );
    for failure in &r.failures {
        println!("FAILED: {failure}");
    }
    println!("{}", if r.passed { "passed" } else { "failed" });
}
