//! `imgsim watch`: keeps every model's table equal to the disk while it runs.
//!
//! A reconcile pass first (the same pass as `imgsim index`), then file-system events. Events
//! are only hints: each names paths that may have changed, and a later pass under
//! [`Scope::Paths`] compares those paths with the disk. So a missed or duplicated event costs
//! at most a `stat`, renames and folder moves are recognised by content hash (no embedding),
//! and a crash at any moment leaves nothing that the next start's reconcile does not repair.
//!
//! A path waits in the queue until its file is complete: closed after writing (where the
//! platform says so), or unchanged in size and modification time for the settle time. A file
//! that fails to decode right after it appeared is tried again with backoff before it is
//! reported. A watched root that disappears (an unmounted drive) keeps its rows until it is
//! back and a reconcile decides.
//!
//! - `mod.rs`: the daemon's loop and its passes
//! - `follower.rs`: the event source (notifications or polling) and what an event says
//! - `queue.rs`: when a queued path is complete, when a batch is due, retries (pure rules)
//! - `roots.rs`: whether a root is there (an unmounted drive is not an empty library)
//! - `socket.rs`: the query socket (`similar`, `status`) and its client
//! - `status.rs`: the daemon's state as `imgsim status` shows it
//! - `text.rs`: text towers for `search`, loaded on the first query with words

mod follower;
mod queue;
mod roots;
#[cfg(unix)]
pub mod socket;
mod status;
#[cfg(unix)]
pub mod text;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::indexer::{self, IndexSummary, Pass, Scope};
use crate::progress::Progress;
use crate::scan::Found;
use crate::store::{Store, WriterLock};
use crate::util::path_string;
use follower::{is_out_of_watches, writing_of, EventResult, Follower};
use queue::{Queue, Timing};
use roots::{Identity, Presence};
pub use status::{DaemonStatus, RootStatus, Stamped};

/// How the daemon waits, batches and retries. The defaults suit a desktop photo folder.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Canonical paths of the watched folders.
    pub roots: Vec<PathBuf>,
    pub exclude: globset::GlobSet,
    /// Also take files of other names whose first bytes are an image (`--sniff`).
    pub sniff: bool,
    /// Poll the folders at this interval instead of following events (network mounts).
    pub poll: Option<Duration>,
    /// A file nobody is known to be writing is complete once unchanged this long.
    pub settle: Duration,
    /// A file held open for writing is taken anyway once unchanged this long.
    pub open_write_limit: Duration,
    /// Ready paths wait this long for others to join their batch (one commit for many).
    pub batch_wait: Duration,
    /// At most this many paths per pass.
    pub batch_max: usize,
    /// A file that fails is tried again this many times (after 1, 2, 4, ... s).
    pub retries: u32,
    /// Compact the tables at most this often while there are writes.
    pub compact_every: Duration,
}

impl WatchConfig {
    pub fn new(roots: Vec<PathBuf>, exclude: globset::GlobSet) -> Self {
        Self {
            roots,
            exclude,
            sniff: false,
            poll: None,
            settle: Duration::from_secs(1),
            open_write_limit: Duration::from_secs(60),
            batch_wait: Duration::from_millis(300),
            batch_max: 2048,
            retries: 3,
            compact_every: Duration::from_secs(600),
        }
    }
}

/// What the daemon tells whoever runs it; the CLI prints these.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// Following the roots (after the first reconcile).
    Watching {
        roots: Vec<String>,
        mode: String,
    },
    /// The queue emptied after some work: the index equals what the daemon has seen.
    Idle,
    /// A pass over one model's table finished.
    Synced {
        model: String,
        /// `reconcile` (everything under the roots) or `events` (the queued paths).
        trigger: String,
        paths: usize,
        #[serde(flatten)]
        summary: IndexSummary,
        seconds: f64,
    },
    /// A file that still fails after its retries (or a folder that cannot be read).
    FileFailed {
        path: String,
        error: String,
    },
    Warning {
        message: String,
    },
    RootMissing {
        root: String,
    },
    RootBack {
        root: String,
    },
    Compacted {
        model: String,
        seconds: f64,
        /// LanceDB's caches after it: metadata and index bytes.
        #[serde(default)]
        cache_bytes: (u64, u64),
    },
    Stopped,
}

impl WatchConfig {
    fn timing(&self) -> Timing {
        Timing {
            settle: self.settle,
            open_write_limit: self.open_write_limit,
            batch_wait: self.batch_wait,
            batch_max: self.batch_max,
        }
    }
}

/// Everything the daemon shares with its query server.
pub struct Shared {
    pub store: Store,
    pub models: Vec<Arc<Embedder>>,
    pub status: Mutex<DaemonStatus>,
    /// Filter (tantivy) rebuilds must not run twice at once.
    pub filters: Mutex<()>,
    /// One query's decode, embedding and search at a time. The model already uses every
    /// core for one, so nothing is slower; and memory holds one query's buffers however many
    /// clients wait (a hundred at once grew the daemon from 243 to 994 MiB before).
    pub queries: Mutex<()>,
    /// Text towers for `search` with words, loaded on first use.
    #[cfg(unix)]
    pub text: text::TextTowers,
}

/// The daemon's loop. Returns when `stop` is set (after writing what it holds).
pub struct Daemon<'a> {
    shared: &'a Shared,
    config: &'a WatchConfig,
    stop: &'a AtomicBool,
    report: &'a mut dyn FnMut(Report),
    follower: Follower,
    events: crossbeam_channel::Receiver<EventResult>,
    tx: crossbeam_channel::Sender<EventResult>,
    present: Vec<bool>,
    identities: HashMap<String, Identity>,
    queue: Queue,
    /// Roots to reconcile (all of them after an overflow; one that came back).
    reconcile: HashSet<PathBuf>,
    writes_since_compact: usize,
    /// Passes that committed something since the last compaction: each leaves a fragment.
    commits_since_compact: usize,
    last_compact: Instant,
    /// Work was done since the last `Idle` report.
    busy: bool,
    /// Rows were written since the filter indexes were last brought up to date.
    filters_behind: bool,
    /// After a pass failed as a whole: no pass before this.
    failing_until: Option<Instant>,
    failures_in_a_row: u32,
}

impl<'a> Daemon<'a> {
    pub fn new(
        shared: &'a Shared,
        config: &'a WatchConfig,
        stop: &'a AtomicBool,
        report: &'a mut dyn FnMut(Report),
    ) -> Result<Self> {
        let (tx, events) = crossbeam_channel::unbounded();
        let follower = Follower::start(config.poll, tx.clone())?;
        let identities = roots::load_identities(shared.store.dir());
        let daemon = Self {
            shared,
            config,
            stop,
            report,
            follower,
            events,
            tx,
            present: vec![false; config.roots.len()],
            identities,
            queue: Queue::default(),
            reconcile: config.roots.iter().cloned().collect(),
            writes_since_compact: 0,
            commits_since_compact: 0,
            last_compact: Instant::now(),
            busy: true,
            filters_behind: true,
            failing_until: None,
            failures_in_a_row: 0,
        };
        daemon.set_status(|s| {
            s.mode = status::mode(config.poll);
            s.phase = "starting".into();
        });
        Ok(daemon)
    }

    fn set_status(&self, change: impl FnOnce(&mut DaemonStatus)) {
        if let Ok(mut status) = self.shared.status.lock() {
            change(&mut status);
        }
    }

    /// Runs until `stop` is set.
    pub fn run(mut self) -> Result<()> {
        // Watch first, then reconcile: nothing that happens during the reconcile is missed.
        self.check_roots(true);
        self.set_status(|s| s.phase = "reconciling".into());
        self.run_reconciles()?;
        let roots = self.config.roots.iter().map(|r| path_string(r)).collect();
        let mode = status::mode(self.config.poll);
        (self.report)(Report::Watching { roots, mode });
        self.set_status(|s| s.phase = "watching".into());
        let tick = Duration::from_millis(100);
        let mut last_root_check = Instant::now();
        // The database folder the daemon holds: if it is deleted or replaced, the daemon stops
        // rather than build a new partial database beside a second daemon.
        let db_lock = self.shared.store.dir().join("daemon.lock");
        let db_identity = roots::identity_of(&db_lock);
        while !self.stop.load(Ordering::Relaxed) {
            match self.events.recv_timeout(tick) {
                Ok(result) => self.take_events(result),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(result) = self.events.try_recv() {
                self.take_events(result);
            }
            if last_root_check.elapsed() >= Duration::from_millis(500) {
                if roots::identity_of(&db_lock) != db_identity {
                    self.set_status(|s| s.phase = "stopping".into());
                    (self.report)(Report::Stopped);
                    return Err(Error::Store {
                        path: self.shared.store.dir().to_path_buf(),
                        reason: "the database folder was deleted or replaced while the daemon \
                                 ran; stopping (start `imgsim watch` again to index anew)"
                            .into(),
                    });
                }
                self.check_roots(false);
                last_root_check = Instant::now();
            }
            if self.failing_until.is_some_and(|t| Instant::now() < t) {
                continue;
            }
            let result = match self.ready_batch() {
                _ if !self.reconcile.is_empty() => self.run_reconciles(),
                Some(batch) => self.sync(&batch, false),
                None => Ok(()),
            };
            self.after_pass(result);
            if let Err(e) = self.compact_if_due() {
                // Not fatal either (a full disk): the rows are written; compaction waits.
                self.last_compact = Instant::now();
                self.warn(format!("compaction failed: {e}; trying again later"));
            }
            let (queued, idle) = (self.queue.len(), self.queue.is_empty());
            if idle && self.filters_behind {
                // Before idle is said: whoever waits for it finds the filter index current.
                self.update_filters();
            }
            self.set_status(|s| {
                s.queue = queued;
                s.idle = idle;
            });
            if idle && self.busy {
                self.busy = false;
                (self.report)(Report::Idle);
            }
        }
        // No compaction here: a stop must be quick, and the next start's passes compact.
        self.set_status(|s| s.phase = "stopping".into());
        (self.report)(Report::Stopped);
        Ok(())
    }

    /// Notices roots that disappeared or came back (an unmounted drive, a renamed folder).
    fn check_roots(&mut self, first: bool) {
        let mut identities_changed = false;
        for (i, root) in self.config.roots.iter().enumerate() {
            let key = path_string(root);
            let known = self.identities.get(&key).copied();
            let now_present = match roots::judge(known, roots::look(root)) {
                Presence::Present => true,
                Presence::PresentFirstSeen(id) => {
                    self.identities.insert(key.clone(), id);
                    identities_changed = true;
                    true
                }
                Presence::Absent => false,
            };
            if now_present == self.present[i] && !first {
                continue;
            }
            self.present[i] = now_present;
            if now_present {
                if let Err(e) = self.follower.watch(root) {
                    if is_out_of_watches(&e) {
                        self.fall_back_to_polling(&e);
                    } else {
                        self.warn(format!("cannot watch {}: {e}", root.display()));
                    }
                }
                if !first {
                    (self.report)(Report::RootBack { root: key.clone() });
                }
                self.reconcile.insert(root.clone());
            } else {
                self.follower.unwatch(root);
                self.queue.forget_under(root);
                self.reconcile.remove(root);
                (self.report)(Report::RootMissing { root: key.clone() });
            }
        }
        let roots = self
            .config
            .roots
            .iter()
            .zip(&self.present)
            .map(|(r, p)| RootStatus {
                path: path_string(r),
                present: *p,
            })
            .collect();
        self.set_status(|s| s.roots = roots);
        if identities_changed {
            // Best effort: without the file, the next start sees every root anew.
            let _ = roots::save_identities(self.shared.store.dir(), &self.identities);
        }
    }

    fn fall_back_to_polling(&mut self, e: &notify::Error) {
        if self.follower.is_polling() {
            return;
        }
        let every = Duration::from_secs(30);
        let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
            .map(|t| format!(" ({})", t.trim()))
            .unwrap_or_default();
        self.warn(format!(
            "out of inotify watches{limit}: {e}; polling every {} s instead. Raise the limit \
             with `sudo sysctl fs.inotify.max_user_watches=1048576`",
            every.as_secs()
        ));
        match Follower::start(Some(every), self.tx.clone()) {
            Ok(follower) => self.follower = follower,
            Err(e) => self.warn(format!("cannot poll either: {e}")),
        }
        let config = self.config;
        for (i, root) in config.roots.iter().enumerate() {
            if self.present[i] {
                if let Err(e) = self.follower.watch(root) {
                    self.warn(format!("cannot poll {}: {e}", root.display()));
                }
            }
        }
        self.set_status(|s| s.mode = status::mode(Some(every)));
        self.reconcile.extend(self.config.roots.iter().cloned());
    }

    fn warn(&mut self, message: String) {
        let stamped = Stamped::now(message.clone());
        self.set_status(|s| s.last_error = Some(stamped));
        (self.report)(Report::Warning { message });
    }

    /// Queues the paths that events name. Reads of files (access events) are ignored, so
    /// the daemon's own reading never makes work.
    fn take_events(&mut self, result: EventResult) {
        let event = match result {
            Ok(event) => event,
            Err(e) => {
                if is_out_of_watches(&e) {
                    self.fall_back_to_polling(&e);
                } else {
                    self.warn(format!("file-system events: {e}"));
                    // Whatever was lost, a reconcile finds.
                    self.reconcile.extend(self.config.roots.iter().cloned());
                }
                return;
            }
        };
        if event.need_rescan() {
            // The kernel's queue overflowed: events were lost.
            self.reconcile.extend(self.config.roots.iter().cloned());
            return;
        }
        let Some(writing) = writing_of(&event.kind, self.follower.reports_close()) else {
            return;
        };
        let now = Instant::now();
        for path in &event.paths {
            if !self.wanted(path) {
                continue;
            }
            let what = format!("{:?} {}", event.kind, path.display());
            self.set_status(|s| s.last_event = Some(Stamped::now(what)));
            self.queue.note(path, writing, now);
        }
    }

    /// A path worth a look: under a present root, not skipped by the library walk's rules,
    /// and an image or possibly a folder (a missing path may have been one).
    fn wanted(&self, path: &Path) -> bool {
        let Some(i) = self.config.roots.iter().position(|r| path.starts_with(r)) else {
            return false;
        };
        // The database may sit inside a watched folder: its own writes are no news.
        if !self.present[i] || path.starts_with(self.shared.store.dir()) {
            return false;
        }
        if crate::scan::walk_skips(&self.config.roots[i], path, &self.config.exclude) {
            return false;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => crate::scan::is_image_candidate(path, self.config.sniff),
            Ok(meta) => meta.is_dir(),
            Err(_) => true,
        }
    }

    /// The queued paths that are complete, once the batch is due.
    fn ready_batch(&mut self) -> Option<Vec<PathBuf>> {
        let look = |path: &Path| match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => Some((meta.len(), crate::scan::mtime_ns(&meta))),
            _ => None,
        };
        self.queue
            .ready_batch(Instant::now(), &self.config.timing(), look, age_of)
    }

    fn run_reconciles(&mut self) -> Result<()> {
        if self.reconcile.is_empty() {
            return Ok(());
        }
        let roots: Vec<PathBuf> = self.reconcile.iter().cloned().collect();
        self.sync(&roots, true)?;
        for root in &roots {
            self.reconcile.remove(root);
        }
        Ok(())
    }

    /// A pass that failed as a whole (the database unwritable, the disk full) is reported
    /// and tried again later, its paths still queued: the daemon does not die of it.
    fn after_pass(&mut self, result: Result<()>) {
        match result {
            Ok(()) => {
                self.failures_in_a_row = 0;
                self.failing_until = None;
            }
            Err(e) => {
                let wait = Duration::from_secs(5 << self.failures_in_a_row.min(4));
                self.failures_in_a_row += 1;
                self.failing_until = Some(Instant::now() + wait);
                self.warn(format!("{e}; trying again in {} s", wait.as_secs()));
            }
        }
    }

    /// The writer lock, waited for while `imgsim index` or `tag` holds it; `None` when a
    /// stop was asked for meanwhile.
    fn writer_lock(&mut self) -> Result<Option<WriterLock>> {
        let dir = self.shared.store.dir().to_path_buf();
        let mut told = false;
        loop {
            match WriterLock::acquire(&dir, "imgsim watch", false, |_| {}) {
                Ok(lock) => return Ok(Some(lock)),
                Err(Error::WriterBusy { holder, .. }) => {
                    if !told {
                        told = true;
                        self.warn(format!("waiting for {holder} to finish writing"));
                    }
                    if self.stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Brings each table's filter index to the table's version (a query would otherwise
    /// rebuild it first). A failure is said once; the next query tries again.
    fn update_filters(&mut self) {
        self.filters_behind = false;
        let mut failures = Vec::new();
        for embedder in &self.shared.models {
            let model = embedder.model();
            let table = match self.shared.store.table(&model.id) {
                Ok(Some(table)) => table,
                Ok(None) => continue,
                Err(e) => {
                    failures.push(format!("{}: {e}", model.name));
                    continue;
                }
            };
            let _guard = self.shared.filters.lock();
            if let Err(e) = table.filters() {
                failures.push(format!("{}: {e}", model.name));
            }
        }
        for failure in failures {
            self.warn(format!("the filter index could not be updated: {failure}"));
        }
    }

    /// Compacts the tables after enough writes, so that a day of small events does not leave
    /// thousands of tiny fragments.
    fn compact_if_due(&mut self) -> Result<()> {
        let due = compaction_due(
            self.writes_since_compact,
            self.commits_since_compact,
            self.last_compact.elapsed(),
            self.config.compact_every,
        );
        if !due || self.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(_lock) = self.writer_lock()? else {
            return Ok(());
        };
        for embedder in &self.shared.models {
            let model = embedder.model();
            let Some(table) = self.shared.store.table(&model.id)? else {
                continue;
            };
            let started = Instant::now();
            table.optimize()?;
            let _guard = self.shared.filters.lock();
            table.filters()?;
            (self.report)(Report::Compacted {
                model: model.name.clone(),
                seconds: started.elapsed().as_secs_f64(),
                cache_bytes: self.shared.store.cache_bytes(),
            });
        }
        // What the caches hold of the versions before this compaction is never read again.
        self.shared.store.renew_caches()?;
        self.writes_since_compact = 0;
        self.commits_since_compact = 0;
        self.last_compact = Instant::now();
        Ok(())
    }

    /// One pass over every model's table for `paths` (whole roots when `reconcile`).
    fn sync(&mut self, paths: &[PathBuf], reconcile: bool) -> Result<()> {
        // An event may name a root that just vanished before the periodic check saw it.
        self.check_roots(false);
        let present: Vec<PathBuf> = self
            .config
            .roots
            .iter()
            .zip(&self.present)
            .filter(|(_, p)| **p)
            .map(|(r, _)| r.clone())
            .collect();
        // Paths under a root that has gone meanwhile wait for its return (and its reconcile).
        let (paths, frozen): (Vec<PathBuf>, Vec<PathBuf>) = paths
            .iter()
            .cloned()
            .partition(|p| present.iter().any(|r| p.starts_with(r)));
        for p in &frozen {
            self.queue.take(p);
        }
        if paths.is_empty() {
            return Ok(());
        }
        let batch: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
        self.set_status(|s| s.idle = false);
        self.busy = true;
        let Some(_lock) = self.writer_lock()? else {
            return Ok(()); // stopping
        };
        let now = Instant::now();
        let settle = self.config.settle;
        // Files found but not complete yet: left for later, and queued.
        let late: RefCell<Vec<PathBuf>> = RefCell::new(Vec::new());
        let queue = &self.queue;
        let defer = |f: &Found| {
            if batch.contains(f.path.as_path()) {
                return false;
            }
            let busy = queue.contains(&f.path) || age_of(f.mtime_ns) < settle;
            if busy {
                late.borrow_mut().push(f.path.clone());
            }
            busy
        };
        let pass = Pass {
            roots: &present,
            exclude: &self.config.exclude,
            sniff: self.config.sniff,
            // A reconcile's paths are the roots themselves: the whole walk.
            scope: Scope::Paths(&paths),
            defer: &defer,
            stop: self.stop,
            shard: None,
        };
        let mut failures: HashMap<PathBuf, String> = HashMap::new();
        let mut reports = Vec::new();
        let mut changes = 0u64;
        for embedder in &self.shared.models {
            let model = embedder.model();
            let table = self
                .shared
                .store
                .table_or_create(&model.name, &model.id, model.dim())?;
            let started = Instant::now();
            let mut collect = Failures(&mut failures);
            let summary = indexer::sync(&table, embedder, &pass, &mut collect)?;
            let written = summary.added + summary.updated + summary.moved + summary.removed;
            changes += written as u64;
            // The filter index follows at the next quiet moment (or first query that needs
            // it): rebuilt after every pass, under constant change it started eight threads
            // several times a second. A reconcile also repairs one left behind by a crash.
            if written > 0 || reconcile {
                table.maintain_vector_index()?;
                self.filters_behind = true;
            }
            reports.push(Report::Synced {
                model: model.name.clone(),
                trigger: if reconcile { "reconcile" } else { "events" }.into(),
                paths: paths.len(),
                summary,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let late = late.into_inner();
        self.writes_since_compact += changes as usize;
        self.commits_since_compact += usize::from(changes > 0);
        for report in reports {
            (self.report)(report);
        }
        let mut attempts_of: HashMap<PathBuf, u32> = HashMap::new();
        for p in &paths {
            if let Some(attempts) = self.queue.take(p) {
                attempts_of.insert(p.clone(), attempts);
            }
        }
        for p in late {
            self.queue.defer(p, now);
        }
        // Failed files: again later, with backoff, before they are reported.
        for (path, error) in failures {
            let attempts = attempts_of.get(&path).copied().unwrap_or(0);
            let retried = path.is_file()
                && self
                    .queue
                    .retry(path.clone(), attempts, self.config.retries, now);
            if !retried {
                let stamped = Stamped::now(error.clone());
                self.set_status(|s| s.last_error = Some(stamped));
                (self.report)(Report::FileFailed {
                    path: path.to_string_lossy().into_owned(),
                    error,
                });
            }
        }
        self.set_status(|s| s.changes += changes);
        Ok(())
    }
}

/// Whether the tables are due a compaction: some rows were written, and the interval passed,
/// or many rows were written, or many commits each left a small fragment. Every read goes
/// through every fragment and every manifest lists them, so a busy library (the soak: ~130
/// commits a minute) must not wait the whole interval: it held ~1,300 fragments by then.
fn compaction_due(writes: usize, commits: usize, since: Duration, every: Duration) -> bool {
    const MANY_WRITES: usize = 10_000;
    const MANY_COMMITS: usize = 100;
    writes > 0 && (since >= every || writes >= MANY_WRITES || commits >= MANY_COMMITS)
}

/// Collects the files a pass could not use, by path.
struct Failures<'m>(&'m mut HashMap<PathBuf, String>);

impl Progress for Failures<'_> {
    fn file_failed(&mut self, error: &Error) {
        let path = match error {
            Error::Decode { path, .. } | Error::Io { path, .. } => path.clone(),
            other => PathBuf::from(other.to_string()),
        };
        self.0.insert(path, error.to_string());
    }
}

/// How long ago a modification time (ns since the epoch) was; zero for the future.
fn age_of(mtime_ns: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Duration::from_nanos(now.saturating_sub(mtime_ns).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_is_due_after_the_interval_or_many_rows_or_many_commits() {
        let minute = Duration::from_secs(60);
        let every = 10 * minute;
        // Nothing written: never.
        assert!(!compaction_due(0, 0, 60 * minute, every));
        // A few writes: when the interval has passed.
        assert!(!compaction_due(5, 5, 9 * minute, every));
        assert!(compaction_due(5, 5, 10 * minute, every));
        // Many rows at once, or many small commits: at once.
        assert!(compaction_due(10_000, 1, minute, every));
        assert!(!compaction_due(99, 99, minute, every));
        assert!(compaction_due(100, 100, minute, every));
    }
}
