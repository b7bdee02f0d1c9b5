//! `imgsim watch` on a temporary folder with the tiny DINOv2 test model: files that arrive
//! (copied, written slowly, renamed from `.part`), renames, folder moves, deletions, a root
//! that goes away and comes back, a second daemon, queries through the daemon, and crashes.
//! Every wait has a time bound.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image::imageops::{self, FilterType};
use imgsim::store::Store;
use imgsim::watch::Report;
use rand::{Rng, SeedableRng};

use crate::util::*;

/// Small copies of coco128 photos (small keeps the debug build quick), outside the root.
fn staging(dir: &Path, count: usize) -> Vec<PathBuf> {
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(coco())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    names
        .iter()
        .take(count)
        .map(|source| {
            let image = image::open(source).unwrap().to_rgb8();
            let small = imageops::resize(&image, 128, 96, FilterType::Triangle);
            let path = staging.join(source.file_name().unwrap());
            small.save(&path).unwrap();
            path
        })
        .collect()
}

struct Watched {
    dir: tempfile::TempDir,
    photos: PathBuf,
    staged: Vec<PathBuf>,
}

struct Daemon {
    child: Child,
    stdout: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// What the daemon reported so far (`--json` lines, parsed back into typed reports).
    fn reports(&self) -> Vec<Report> {
        let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        // A line may be half-written when the daemon is killed.
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: sends a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits until the daemon says (on its socket) that nothing is queued and no pass runs,
    /// so every pass so far has reported: a row becomes visible at its commit, a little
    /// before its pass's report.
    fn wait_idle(&self, db: &Path) {
        wait_for("the daemon to be idle", BOUND, || {
            matches!(
                imgsim::watch::socket::ask(db, &imgsim::watch::socket::Request::Status, &[]),
                Ok(Some(imgsim::watch::socket::Response::Status(s))) if s.idle && s.phase == "watching"
            )
        });
    }

    /// Sums of every `synced` report from `from` on: (added, moved, removed, embedded).
    fn totals_since(&self, from: usize) -> (usize, usize, usize, usize) {
        let mut t = (0, 0, 0, 0);
        for r in self.reports().into_iter().skip(from) {
            if let Report::Synced { summary: s, .. } = r {
                t.0 += s.added;
                t.1 += s.moved;
                t.2 += s.removed;
                t.3 += s.embedded;
            }
        }
        t
    }
}

impl Watched {
    fn new(initial: usize, staged: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("Pictures");
        std::fs::create_dir_all(&photos).unwrap();
        let staged = staging(dir.path(), initial + staged);
        for source in &staged[..initial] {
            std::fs::copy(source, photos.join(source.file_name().unwrap())).unwrap();
        }
        Self {
            photos,
            staged: staged[initial..].to_vec(),
            dir,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    fn start_with(&self, extra: &[&str]) -> Daemon {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let stdout = self.dir.path().join(format!("daemon-{n}.jsonl"));
        let child = Command::new(imgsim_binary())
            .args(["watch", "--json", "--settle", "0.5"])
            .args(extra)
            .arg(&self.photos)
            .arg("--db")
            .arg(self.db())
            .arg("--model-dir")
            .arg(model_dir("tiny-dinov2"))
            .env("HF_HUB_OFFLINE", "1")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Daemon { child, stdout }
    }

    /// Starts a daemon and waits for its first reconcile to finish.
    fn start_watching(&self) -> Daemon {
        let daemon = self.start();
        wait_for(
            "the daemon to start watching",
            Duration::from_secs(60),
            || {
                daemon
                    .reports()
                    .iter()
                    .any(|r| matches!(r, Report::Watching { .. }))
            },
        );
        daemon
    }

    /// Every row's path with its size, and how many rows each path has.
    fn rows(&self) -> BTreeMap<String, (u64, usize)> {
        let mut rows = BTreeMap::new();
        let Ok(store) = Store::open(&self.db(), false) else {
            return rows;
        };
        let Some(info) = store.tables().unwrap().into_iter().next() else {
            return rows;
        };
        let table = store.table(&info.model_id).unwrap().unwrap();
        let files = table.files().unwrap();
        for path in table.paths().unwrap() {
            let size = files[&path].size;
            rows.entry(path).or_insert((size, 0)).1 += 1;
        }
        rows
    }

    fn vector(&self, path: &Path) -> Option<Vec<f32>> {
        let store = Store::open(&self.db(), false).ok()?;
        let info = store.tables().unwrap().into_iter().next()?;
        let table = store.table(&info.model_id).unwrap()?;
        let key = std::fs::canonicalize(path).ok()?;
        table.row(&key.to_string_lossy()).unwrap().map(|r| r.vector)
    }

    /// The image files on disk, with their sizes, as rows should hold them.
    fn on_disk(&self) -> BTreeMap<String, (u64, usize)> {
        let root = std::fs::canonicalize(&self.photos).unwrap();
        walkdir::WalkDir::new(&root)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter(|e| imgsim::scan::has_image_extension(e.path()))
            .map(|e| {
                let size = e.metadata().unwrap().len();
                (e.path().to_string_lossy().into_owned(), (size, 1))
            })
            .collect()
    }

    /// Waits until the database holds exactly the files on disk, once each.
    fn wait_until_in_sync(&self, bound: Duration) {
        let started = Instant::now();
        loop {
            let (rows, disk) = (self.rows(), self.on_disk());
            if rows == disk {
                return;
            }
            if started.elapsed() > bound {
                panic!("not in sync after {bound:?}:\nrows: {rows:#?}\ndisk: {disk:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tiny_embedding(path: &Path) -> Vec<f32> {
    let model = imgsim::models::Model::load(
        &imgsim::models::WeightsSource::Dir(model_dir("tiny-dinov2")),
        None,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let embedder = imgsim::embed::Embedder::new(model, candle_core::Device::Cpu);
    let mut out = None;
    embedder
        .embed_files(&[path.to_path_buf()], |_, r| out = Some(r.unwrap()))
        .unwrap();
    out.unwrap()
}

const BOUND: Duration = Duration::from_secs(20);

#[test]
fn watch_indexes_copied_slowly_written_and_renamed_part_files_once_each() {
    let w = Watched::new(2, 3);
    let daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);

    // Copied in.
    let first = &w.staged[0];
    std::fs::copy(first, w.photos.join("copied.jpg")).unwrap();
    w.wait_until_in_sync(BOUND);

    // Written slowly over several seconds, held open: only the complete file is embedded.
    daemon.wait_idle(&w.db());
    let before = daemon.reports().len();
    let bytes = std::fs::read(&w.staged[1]).unwrap();
    let slow = w.photos.join("slow.jpg");
    let mut file = std::fs::File::create(&slow).unwrap();
    // Pauses longer than the settle time: only the open file handle says it is not done.
    for chunk in bytes.chunks(bytes.len().div_ceil(5)) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1200));
    }
    drop(file);
    w.wait_until_in_sync(BOUND);
    daemon.wait_idle(&w.db());
    let (added, _, _, embedded) = daemon.totals_since(before);
    assert_eq!((added, embedded), (1, 1), "embedded once, when complete");
    // Not read half-written either (a truncated JPEG fails to decode, and is retried).
    assert!(daemon.reports()[before..].iter().all(|r| match r {
        Report::Synced { summary, .. } => summary.failed == 0,
        Report::FileFailed { .. } => false,
        _ => true,
    }));
    let stored = w.vector(&slow).expect("slow.jpg indexed");
    assert!(cosine(&stored, &tiny_embedding(&slow)) > 0.99999);

    // Downloaded as x.part, then renamed: the .part name never gets a row.
    let part = w.photos.join("download.jpg.part");
    std::fs::write(&part, std::fs::read(&w.staged[2]).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(w.rows().keys().all(|p| !p.ends_with(".part")));
    std::fs::rename(&part, w.photos.join("download.jpg")).unwrap();
    w.wait_until_in_sync(BOUND);
    let stored = w.vector(&w.photos.join("download.jpg")).unwrap();
    assert!(cosine(&stored, &tiny_embedding(&w.staged[2])) > 0.99999);

    // Quiet now: the daemon's own reads of the files it embedded make no new passes.
    std::thread::sleep(Duration::from_millis(1500));
    let settled = daemon.reports().len();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(daemon.reports().len(), settled, "{:?}", daemon.reports());
}

#[test]
fn polling_follows_changes_where_no_events_arrive() {
    let w = Watched::new(1, 1);
    let daemon = w.start_with(&["--poll", "0.5"]);
    wait_for(
        "the daemon to start watching",
        Duration::from_secs(60),
        || {
            daemon
                .reports()
                .iter()
                .any(|r| matches!(r, Report::Watching { mode, .. } if mode.starts_with("polling")))
        },
    );
    w.wait_until_in_sync(BOUND);
    std::fs::copy(&w.staged[0], w.photos.join("polled.jpg")).unwrap();
    w.wait_until_in_sync(BOUND);
    assert_eq!(w.rows().len(), 2);
    std::fs::rename(w.photos.join("polled.jpg"), w.photos.join("polled-2.jpg")).unwrap();
    w.wait_until_in_sync(BOUND);
    std::fs::remove_file(w.photos.join("polled-2.jpg")).unwrap();
    w.wait_until_in_sync(BOUND);
    assert_eq!(w.rows().len(), 1);
}

#[test]
fn renames_and_folder_moves_keep_their_rows_and_deletions_disappear() {
    let w = Watched::new(2, 3);
    let album = w.photos.join("album");
    std::fs::create_dir_all(&album).unwrap();
    for source in &w.staged {
        std::fs::copy(source, album.join(source.file_name().unwrap())).unwrap();
    }
    let daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let some = album.join(w.staged[0].file_name().unwrap());
    let vector = w.vector(&some).unwrap();

    daemon.wait_idle(&w.db());
    let before = daemon.reports().len();
    std::fs::rename(&some, w.photos.join("renamed.jpg")).unwrap();
    w.wait_until_in_sync(BOUND);
    assert_eq!(w.vector(&w.photos.join("renamed.jpg")).unwrap(), vector);

    std::fs::rename(&album, w.photos.join("album-2024")).unwrap();
    w.wait_until_in_sync(BOUND);
    // Once every pass has reported: moves only, nothing embedded.
    daemon.wait_idle(&w.db());
    let (added, moved, removed, embedded) = daemon.totals_since(before);
    assert_eq!((added, moved, removed, embedded), (0, 3, 0, 0));

    let victim = w
        .photos
        .join("album-2024")
        .join(w.staged[1].file_name().unwrap());
    std::fs::remove_file(&victim).unwrap();
    w.wait_until_in_sync(BOUND);
    std::fs::remove_dir_all(w.photos.join("album-2024")).unwrap();
    w.wait_until_in_sync(BOUND);
    assert_eq!(w.rows().len(), 3);
}

#[test]
fn a_root_that_goes_away_keeps_its_rows_until_it_is_back() {
    let w = Watched::new(3, 1);
    let daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let rows = w.rows();
    assert_eq!(rows.len(), 3);

    // The drive is unmounted: the folder vanishes.
    let away = w.dir.path().join("Pictures-unmounted");
    std::fs::rename(&w.photos, &away).unwrap();
    wait_for("the missing root to be noticed", BOUND, || {
        daemon
            .reports()
            .iter()
            .any(|r| matches!(r, Report::RootMissing { .. }))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(w.rows(), rows, "rows of a missing root were touched");

    // And mounted again: nothing re-embedded, and events are followed again.
    std::fs::rename(&away, &w.photos).unwrap();
    wait_for("the root to be back", BOUND, || {
        daemon
            .reports()
            .iter()
            .any(|r| matches!(r, Report::RootBack { .. }))
    });
    w.wait_until_in_sync(BOUND);
    assert_eq!(w.rows(), rows);
    std::fs::copy(&w.staged[0], w.photos.join("after.jpg")).unwrap();
    w.wait_until_in_sync(BOUND);
    // (Reports follow the commit that makes a row visible.)
    wait_for("the report of the new file", BOUND, || {
        daemon.totals_since(0).3 >= 4
    });
    std::thread::sleep(Duration::from_millis(300));
    let (_, _, removed, embedded) = daemon.totals_since(0);
    assert_eq!((removed, embedded), (0, 4), "3 at the start, 1 after");
}

#[test]
fn a_second_daemon_on_the_same_database_is_refused() {
    let w = Watched::new(1, 0);
    let first = w.start_watching();
    let started = Instant::now();
    let out = Command::new(imgsim_binary())
        .arg("watch")
        .arg(&w.photos)
        .arg("--db")
        .arg(w.db())
        .arg("--model-dir")
        .arg(model_dir("tiny-dinov2"))
        .output()
        .map(Run::from)
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    out.assert_exit(2);
    let err = out.stderr();
    assert!(
        err.contains("already runs") && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
}

#[test]
fn a_daemon_whose_database_is_deleted_stops_instead_of_starting_anew() {
    let w = Watched::new(1, 0);
    let mut daemon = w.start_watching();
    std::fs::remove_dir_all(w.db()).unwrap();
    wait_for("the daemon to stop", Duration::from_secs(10), || {
        matches!(daemon.child.try_wait(), Ok(Some(_)))
    });
    assert_eq!(daemon.child.wait().unwrap().code(), Some(2));
    assert!(matches!(daemon.reports().last(), Some(Report::Stopped)));
    assert!(
        !w.db().join("models.json").exists(),
        "no new partial database"
    );
}

#[test]
fn a_full_disk_under_the_daemon_is_waited_out_and_nothing_committed_is_lost() {
    let w = Watched::new(3, 30);
    let Some(_disk) = small_disk(&w.db(), "1m") else {
        return;
    };
    let mut daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let before = w.rows();

    let filler = fill_disk(&w.db(), 8192);
    for source in &w.staged {
        std::fs::copy(source, w.photos.join(source.file_name().unwrap())).unwrap();
    }
    wait_for("the daemon to say the disk is full", BOUND, || {
        daemon.reports().iter().any(|r| {
            matches!(r, Report::Warning { message } if message.contains("No space left on device"))
        })
    });
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon runs on"
    );
    let during = w.rows();
    assert!(
        before
            .iter()
            .all(|(path, row)| during.get(path) == Some(row)),
        "committed rows kept"
    );

    std::fs::remove_file(filler).unwrap();
    w.wait_until_in_sync(Duration::from_secs(90));
    assert!(daemon.child.try_wait().unwrap().is_none());
    check_filters_match_the_table(&w.db());
}

#[test]
fn similar_and_status_go_through_the_daemon_and_agree_with_direct_use() {
    let w = Watched::new(4, 0);
    let daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let db = w.db().display().to_string();
    let query = w.staged_query();
    let run = |extra: &[&str]| w.similar(&query, extra);
    assert_eq!(run(&[]), run(&["--no-daemon"]));

    let status = imgsim(&["status", "--json", "--db", &db]);
    let text = status.stdout();
    assert!(
        text.contains("\"type\":\"daemon\",\"running\":true")
            && text.contains(&format!("\"pid\":{}", daemon.child.id())),
        "{text}"
    );

    // SIGTERM: the daemon stops within seconds, and status says it is gone.
    daemon.signal(libc::SIGTERM);
    let mut daemon = daemon;
    let started = Instant::now();
    wait_for("the daemon to stop", Duration::from_secs(10), || {
        daemon.child.try_wait().unwrap().is_some()
    });
    println!("stopped in {:?}", started.elapsed());
    let text = imgsim(&["status", "--json", "--db", &db]).stdout();
    assert!(text.contains("\"running\":false"), "{text}");
}

#[test]
fn dupes_goes_through_the_daemon_and_agrees_with_direct_use() {
    let w = Watched::new(4, 0);
    let first = std::fs::read_dir(&w.photos)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&first, w.photos.join("copy-of-first.jpg")).unwrap();
    let _daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let db = w.db().display().to_string();
    let model = model_dir("tiny-dinov2").display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "dupes",
            "--model-dir",
            &model,
            "--db",
            &db,
            "--threshold",
            "0.9",
            "--json",
        ];
        args.extend(extra);
        let run = imgsim(&args);
        run.assert_exit(0);
        let mut lines: Vec<serde_json::Value> = run.json_lines();
        let summary = lines.pop().unwrap();
        (lines, summary)
    };
    let (by_daemon, daemon_summary) = run(&[]);
    let (direct, direct_summary) = run(&["--no-daemon"]);
    assert_eq!(daemon_summary["by_daemon"], true, "{daemon_summary}");
    assert_eq!(direct_summary["by_daemon"], false);
    assert_eq!(by_daemon, direct);
    assert!(!direct.is_empty());
    assert_eq!(daemon_summary["groups"], direct_summary["groups"]);
}

#[test]
fn clients_that_hold_every_slot_neither_break_queries_nor_stay_forever() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let w = Watched::new(3, 0);
    let _daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let query = w.staged_query();
    let similar = |extra: &[&str]| w.similar(&query, extra);
    let direct = similar(&["--no-daemon"]);
    let socket = w.db().join("daemon.sock");
    // A client that trickles a byte every second, which a per-read timeout would never end.
    let mut trickler = UnixStream::connect(&socket).unwrap();
    let trickle = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if trickler.write_all(b" ").is_err() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        started.elapsed()
    });
    // More idle clients than the daemon serves at once, each sending half a request line.
    let mut idle: Vec<UnixStream> = (0..80)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.write_all(b"{\"op\":").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A query now is answered, by the daemon or directly, with the same hits.
    let started = Instant::now();
    assert_eq!(similar(&[]), direct);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The daemon cuts the idle clients off after its request time (10 s): each gets an
    // answer or an end of stream, none hangs.
    let started = Instant::now();
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.is_empty() || answer.contains("\"type\":\""),
            "{answer}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let trickled = trickle.join().unwrap();
    assert!(
        trickled < Duration::from_secs(15),
        "cut off after {trickled:?}"
    );
    // And it still answers.
    assert_eq!(similar(&[]), direct);
}

impl Watched {
    /// `imgsim similar QUERY --json` on this database with the tiny model: its output.
    fn similar(&self, query: &str, extra: &[&str]) -> String {
        let db = self.db().display().to_string();
        let model = model_dir("tiny-dinov2").display().to_string();
        let mut args = vec![
            "similar",
            query,
            "--db",
            &db,
            "--model-dir",
            &model,
            "--json",
        ];
        args.extend(extra);
        let out = imgsim(&args);
        out.assert_exit(0);
        out.stdout()
    }

    /// A photo that is not in the library (so the daemon must embed the bytes it is sent).
    fn staged_query(&self) -> String {
        let query = self.dir.path().join("query.jpg");
        let first = std::fs::read_dir(&self.photos)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        image::open(first)
            .unwrap()
            .crop_imm(8, 8, 100, 70)
            .save(&query)
            .unwrap();
        query.display().to_string()
    }
}

/// SIGKILL at 20 seeded random moments while images arrive (and some are renamed); after
/// each restart the database converges to exactly the files on disk, once each, with the
/// filter index matching the table.
#[test]
fn the_index_survives_kill_9_at_random_moments() {
    let w = Watched::new(0, 40);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261127);
    let mut daemon = w.start();
    let mut next = 0;
    for round in 0..20 {
        let batch: Vec<PathBuf> = (0..2)
            .map(|i| w.staged[(next + i) % w.staged.len()].clone())
            .collect();
        next += 2;
        let photos = w.photos.clone();
        let gaps: Vec<u64> = (0..2).map(|_| rng.random_range(0..300)).collect();
        let rename = rng.random_bool(0.3);
        let copier = std::thread::spawn(move || {
            for (source, gap) in batch.iter().zip(gaps) {
                let name = format!("r{round}-{}", source.file_name().unwrap().to_string_lossy());
                std::fs::copy(source, photos.join(&name)).unwrap();
                std::thread::sleep(Duration::from_millis(gap));
                if rename {
                    let dir = photos.join(format!("moved-{round}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::rename(photos.join(&name), dir.join(&name)).unwrap();
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        daemon.child.kill().unwrap(); // SIGKILL
        daemon.child.wait().unwrap();
        copier.join().unwrap();

        daemon = w.start();
        w.wait_until_in_sync(Duration::from_secs(60));
        check_filters_match_the_table(&w.db());
    }
}

/// The tantivy index records the table version it was built from and holds every path.
fn check_filters_match_the_table(db: &Path) {
    wait_for("the filter index to catch up", BOUND, || {
        let store = Store::open(db, false).unwrap();
        let info = store.tables().unwrap().into_iter().next().unwrap();
        let table = store.table(&info.model_id).unwrap().unwrap();
        let dir = db.join(format!("{}.filters", info.table));
        let Ok(filters) = imgsim::store::FilterIndex::open(&dir) else {
            return false;
        };
        let version = table.version().unwrap();
        let paths: std::collections::HashSet<String> = table.paths().unwrap().into_iter().collect();
        filters.built_from().unwrap() == Some(version)
            && filters.matching_paths("ext:jpg").unwrap() == paths
    });
}

/// Sends `bytes` to the daemon's socket as one client, closes the sending side, and returns
/// what came back (empty when the daemon hung up).
fn send_raw(socket: &Path, bytes: &[u8]) -> String {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    if let Err(e) = read {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "no answer within 30 s to {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A request line for the socket, with `image` after it.
fn request(request: &imgsim::watch::socket::Request, image: &[u8]) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(request).unwrap();
    bytes.push(b'\n');
    bytes.extend_from_slice(image);
    bytes
}

/// A socket query for the tiny DINOv2 model that `Watched` daemons load: three hits for
/// `query_path`, with an image of `image_bytes`; tests change the other fields as they need.
fn tiny_dinov2_query(
    query_path: &str,
    image_bytes: usize,
) -> imgsim::watch::socket::SimilarRequest {
    imgsim::watch::socket::SimilarRequest {
        model: "dinov2".into(),
        model_dir: Some(std::fs::canonicalize(model_dir("tiny-dinov2")).unwrap()),
        query_path: query_path.into(),
        k: 3,
        filter: None,
        min_score: None,
        image_bytes: image_bytes as u64,
        precision: Default::default(),
    }
}

#[test]
fn the_socket_answers_every_mutated_request_and_opens_no_path_a_client_names() {
    use imgsim::watch::socket::{Request, Response, SimilarRequest};
    use rand::SeedableRng;
    let w = Watched::new(3, 1);
    let mut daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let socket = w.db().join("daemon.sock");
    let image = std::fs::read(&w.staged[0]).unwrap();
    let model_dir = std::fs::canonicalize(model_dir("tiny-dinov2")).unwrap();
    // Paths that would hang the daemon if it opened them: FIFOs.
    let fifo = |name: &str| {
        let path = w.dir.path().join(name);
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a plain mkfifo(3) call on a path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        path
    };
    let similar = |query_path: String, model_dir: PathBuf, image: &[u8]| {
        request(
            &Request::Similar(SimilarRequest {
                model_dir: Some(model_dir),
                filter: Some("name:*.jpg".into()),
                ..tiny_dinov2_query(&query_path, image.len())
            }),
            image,
        )
    };
    let trap = similar(
        fifo("trap.jpg").to_string_lossy().into_owned(),
        fifo("trap-model"),
        &image,
    );
    let started = Instant::now();
    let answer = send_raw(&socket, &trap);
    assert!(started.elapsed() < Duration::from_secs(10), "{answer}");
    assert!(answer.contains("\"type\":\"not_loaded\""), "{answer}");
    let query = fifo("fifo-query.jpg").to_string_lossy().into_owned();
    let answer = send_raw(&socket, &similar(query, model_dir.clone(), &image));
    assert!(answer.contains("\"type\":\"hits\""), "{answer}");

    // Every k the protocol can carry, with the loaded model.
    let mut huge_k = request(
        &Request::Similar(SimilarRequest {
            k: usize::MAX,
            min_score: Some(-1.0),
            ..tiny_dinov2_query("x", image.len())
        }),
        &image,
    );
    let answer = send_raw(&socket, &huge_k);
    assert!(answer.contains("\"type\":\"hits\""), "{answer}");
    huge_k.truncate(huge_k.len() - image.len());
    let seeds = [
        request(&Request::Status, &[]),
        similar("/no/such/file.jpg".into(), model_dir.clone(), &image),
        similar(String::new(), model_dir.clone(), &image[..image.len() / 2]),
        huge_k,
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let n = crate::fuzz::execs(300);
    let mut slowest = Duration::ZERO;
    for case in 0..n {
        let a = &seeds[case % seeds.len()];
        let b = &seeds[(case / seeds.len()) % seeds.len()];
        let input = crate::fuzz::mutate(&mut rng, a, b);
        let started = Instant::now();
        let answer = send_raw(&socket, &input);
        slowest = slowest.max(started.elapsed());
        assert!(
            answer.is_empty() || serde_json::from_str::<Response>(answer.trim_end()).is_ok(),
            "case {case}: {answer}"
        );
        if case % 50 == 0 {
            assert!(
                daemon.child.try_wait().unwrap().is_none(),
                "case {case}: the daemon died"
            );
        }
    }
    println!("socket: {n} executions, slowest {slowest:?}");
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );
    // Still answering, with the same hits as direct use.
    let direct = w.similar(&w.staged_query(), &["--no-daemon"]);
    assert_eq!(w.similar(&w.staged_query(), &[]), direct);
    let memory = imgsim::util::resident_memory_mb_of(daemon.child.id()).unwrap();
    println!(
        "daemon memory after fuzzing: peak {:.0} MiB, now {:.0} MiB",
        memory.0, memory.1
    );
}

#[test]
fn hostile_clients_neither_stop_the_daemon_nor_grow_its_memory() {
    use imgsim::watch::socket::{Request, Response, SimilarRequest};
    use std::os::unix::net::UnixStream;
    let w = Watched::new(3, 1);
    let mut daemon = w.start_watching();
    w.wait_until_in_sync(BOUND);
    let socket = w.db().join("daemon.sock");
    let direct = w.similar(&w.staged_query(), &["--no-daemon"]);
    let pid = daemon.child.id();
    let image = std::fs::read(&w.staged[0]).unwrap();
    let query = |image_bytes: u64, image: &[u8]| {
        request(
            &Request::Similar(SimilarRequest {
                image_bytes,
                ..tiny_dinov2_query("query.jpg", 0)
            }),
            image,
        )
    };
    let memory = || imgsim::util::resident_memory_mb_of(pid).unwrap().1;
    let before = memory();

    // Clients that connect and send nothing, held open throughout.
    let silent: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    // An oversized request line (16 MiB, no newline), and an image announced at 1 TiB.
    let answer = send_raw(&socket, &vec![b'x'; 16 << 20]);
    assert!(
        answer.is_empty() || answer.contains("over 64 KiB"),
        "{answer}"
    );
    let answer = send_raw(&socket, &query(1 << 40, &image));
    assert!(answer.contains("over the limit"), "{answer}");
    // Clients that send a query and hang up before the reply.
    for _ in 0..30 {
        let mut stream = UnixStream::connect(&socket).unwrap();
        let _ = stream.write_all(&query(image.len() as u64, &image));
        drop(stream);
    }
    // A hundred clients at once, three times (the silent ones still hold 20 slots): each
    // gets a valid reply within the bound: hits, or "busy" past the daemon's limit of clients
    // at once, which sends `similar` to work directly.
    for round in 0..3 {
        let started = Instant::now();
        let clients: Vec<_> = (0..100)
            .map(|_| {
                let (socket, bytes) = (socket.clone(), query(image.len() as u64, &image));
                std::thread::spawn(move || send_raw(&socket, &bytes))
            })
            .collect();
        let mut answered = 0;
        for client in clients {
            let answer = client.join().unwrap();
            match serde_json::from_str::<Response>(answer.trim_end()) {
                Ok(Response::Hits { .. }) => answered += 1,
                // Busy is said without reading the request: the client may see its write
                // fail and the connection end instead.
                Ok(Response::Busy) => {}
                _ if answer.is_empty() => {}
                other => panic!("{other:?}: {answer}"),
            }
        }
        let took = started.elapsed();
        println!(
            "round {round}: 100 clients at once, {answered} answered by the daemon in {took:?}; \
             daemon {:.0} MiB",
            memory()
        );
        assert!(
            answered > 0 && took < Duration::from_secs(60),
            "{answered} in {took:?}"
        );
    }

    // The daemon runs on, answers as before, and holds little more memory than before (it
    // held 750 MiB more when every client's query ran at once).
    drop(silent);
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );
    assert_eq!(w.similar(&w.staged_query(), &[]), direct);
    let after = memory();
    println!("daemon memory: {before:.0} MiB before, {after:.0} MiB after");
    assert!(after < before + 150.0, "{before:.0} -> {after:.0} MiB");
}

/// Connects to `socket` from a child process running as `uid`; the child's errno (0: connected).
fn connect_as(uid: u32, socket: &Path) -> i32 {
    use std::os::unix::ffi::OsStrExt;
    // Everything the child needs is made before fork: after it, only async-signal-safe calls.
    // SAFETY: a zeroed sockaddr_un is valid; the path fits (asserted).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = socket.as_os_str().as_bytes();
    assert!(bytes.len() < addr.sun_path.len());
    for (to, from) in addr.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: the child calls only setgid, setuid, socket, connect and _exit.
    unsafe {
        match libc::fork() {
            0 => {
                if libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
                    libc::_exit(100);
                }
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let connected = libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len);
                libc::_exit(if connected == 0 {
                    0
                } else {
                    *libc::__errno_location()
                });
            }
            -1 => panic!("fork failed"),
            child => {
                let mut status = 0;
                libc::waitpid(child, &mut status, 0);
                libc::WEXITSTATUS(status)
            }
        }
    }
}

#[test]
fn another_local_user_cannot_connect_to_the_daemon() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: switching to a second uid needs root");
        return;
    }
    let w = Watched::new(1, 0);
    let _daemon = w.start_watching();
    // Folders anyone may pass through: only the socket's own mode keeps others out.
    for dir in [w.dir.path(), &w.db()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let socket = w.db().join("daemon.sock");
    assert_eq!(connect_as(0, &socket), 0, "the owner connects");
    assert_eq!(
        connect_as(65534, &socket),
        libc::EACCES,
        "another user is refused"
    );
}

#[test]
fn a_daemon_answers_only_in_the_precision_it_runs() {
    use imgsim::models::Precision;
    use imgsim::watch::socket::{Request, SimilarRequest};
    if let Some(why) = Precision::Bf16.unsupported_here() {
        eprintln!("skipped: {why}");
        return;
    }
    let w = Watched::new(3, 1);
    let daemon = w.start_with(&["--precision", "bf16"]);
    wait_for(
        "the daemon to start watching",
        Duration::from_secs(60),
        || {
            daemon
                .reports()
                .iter()
                .any(|r| matches!(r, Report::Watching { .. }))
        },
    );
    w.wait_until_in_sync(BOUND);
    // Its table is the bf16 one.
    let store = Store::open(&w.db(), false).unwrap();
    let tables = store.tables().unwrap();
    assert_eq!(tables.len(), 1);
    assert!(tables[0].model_id.ends_with("+bf16"), "{tables:?}");
    let socket = w.db().join("daemon.sock");
    let image = std::fs::read(&w.staged[0]).unwrap();
    let ask = |precision: Precision| {
        let query = w.staged[0].to_string_lossy().into_owned();
        send_raw(
            &socket,
            &request(
                &Request::Similar(SimilarRequest {
                    precision,
                    ..tiny_dinov2_query(&query, image.len())
                }),
                &image,
            ),
        )
    };
    let answer = ask(Precision::Bf16);
    assert!(answer.contains("\"type\":\"hits\""), "{answer}");
    // An f32 client (the default) is sent to work directly: the daemon holds no f32 model.
    let answer = ask(Precision::F32);
    assert!(answer.contains("\"type\":\"not_loaded\""), "{answer}");
}
