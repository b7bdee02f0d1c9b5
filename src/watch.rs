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

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{
    new_debouncer_opt, DebounceEventResult, Debouncer, NoCache, RecommendedCache,
};
use serde::{Deserialize, Serialize};

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::indexer::{self, now_seconds, IndexSummary, Pass, Scope};
use crate::lock::WriterLock;
use crate::progress::Progress;
use crate::scan::Found;
use crate::store::Store;

/// How the daemon waits, batches and retries. The defaults suit a desktop photo folder.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Canonical paths of the watched folders.
    pub roots: Vec<PathBuf>,
    pub exclude: globset::GlobSet,
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
    },
    Stopped,
}

/// The daemon's state, as `imgsim status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DaemonStatus {
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started_at: i64,
    pub roots: Vec<RootStatus>,
    pub models: Vec<String>,
    /// `events` or `polling every N s`.
    pub mode: String,
    /// `starting`, `reconciling`, `watching` or `stopping`.
    pub phase: String,
    /// Paths waiting to be compared with the disk.
    pub queue: usize,
    /// Nothing queued and no pass running: the index equals what the daemon has seen.
    pub idle: bool,
    pub last_event: Option<Stamped>,
    pub last_error: Option<Stamped>,
    /// Files added, updated, moved or removed since the start.
    pub changes: u64,
    pub resident_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RootStatus {
    pub path: String,
    pub present: bool,
}

/// A message and when it happened (seconds since the Unix epoch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stamped {
    pub what: String,
    pub at: i64,
}

/// Everything the daemon shares with its query server.
pub struct Shared {
    pub store: Store,
    pub models: Vec<Arc<Embedder>>,
    pub status: Mutex<DaemonStatus>,
    /// Filter (tantivy) rebuilds must not run twice at once.
    pub filters: Mutex<()>,
}

/// What is known of a file's completeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writing {
    /// Opened for writing and not closed yet (events say so).
    Open,
    /// Closed after its last write.
    Closed,
    /// No word either way (moved in, polled, metadata change).
    Unknown,
}

#[derive(Debug, Clone)]
struct Queued {
    writing: Writing,
    /// Last time an event or a change of size or mtime was seen.
    changed: Instant,
    /// (size, mtime) at the last look; `None`: missing, or a folder.
    seen: Option<(u64, i64)>,
    attempts: u32,
    not_before: Instant,
}

impl Queued {
    fn new(now: Instant) -> Self {
        Self {
            writing: Writing::Unknown,
            changed: now,
            seen: None,
            attempts: 0,
            not_before: now,
        }
    }
}

/// The event source: the platform's notifications, or polling.
enum Follower {
    Events(Debouncer<notify::RecommendedWatcher, RecommendedCache>),
    Poll(Debouncer<notify::PollWatcher, NoCache>),
}

impl Follower {
    /// The debounce window: bursts within it arrive as one batch of events.
    const DEBOUNCE: Duration = Duration::from_millis(200);

    fn start(
        poll: Option<Duration>,
        tx: crossbeam_channel::Sender<DebounceEventResult>,
    ) -> Result<Self> {
        let handler = move |result: DebounceEventResult| {
            let _ = tx.send(result);
        };
        let follower = match poll {
            None => Follower::Events(
                new_debouncer_opt::<_, notify::RecommendedWatcher, _>(
                    Self::DEBOUNCE,
                    None,
                    handler,
                    RecommendedCache::new(),
                    notify::Config::default(),
                )
                .map_err(watch_error)?,
            ),
            Some(every) => Follower::Poll(
                new_debouncer_opt::<_, notify::PollWatcher, _>(
                    Self::DEBOUNCE,
                    None,
                    handler,
                    NoCache,
                    notify::Config::default().with_poll_interval(every),
                )
                .map_err(watch_error)?,
            ),
        };
        Ok(follower)
    }

    fn watch(&mut self, root: &Path) -> notify::Result<()> {
        match self {
            Follower::Events(d) => d.watch(root, RecursiveMode::Recursive),
            Follower::Poll(d) => d.watch(root, RecursiveMode::Recursive),
        }
    }

    fn unwatch(&mut self, root: &Path) {
        let _ = match self {
            Follower::Events(d) => d.unwatch(root),
            Follower::Poll(d) => d.unwatch(root),
        };
    }

    /// Whether close-after-write is reported (Linux's inotify does; polling does not).
    fn reports_close(&self) -> bool {
        matches!(self, Follower::Events(_)) && cfg!(target_os = "linux")
    }
}

fn watch_error(e: notify::Error) -> Error {
    Error::Io {
        path: e.paths.first().cloned().unwrap_or_default(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn is_out_of_watches(e: &notify::Error) -> bool {
    matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(28))
}

/// A root's identity (device and inode): an empty folder with another identity where a root
/// was is an unmounted drive's mount point, not a root whose photos were all deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
}

fn identity(meta: &std::fs::Metadata) -> Identity {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Identity { dev: 0, ino: 0 }
    }
}

const IDENTITIES: &str = "watch-roots.json";

/// The daemon's loop. Returns when `stop` is set (after writing what it holds).
pub struct Daemon<'a> {
    shared: &'a Shared,
    config: &'a WatchConfig,
    stop: &'a AtomicBool,
    report: &'a mut dyn FnMut(Report),
    follower: Follower,
    events: crossbeam_channel::Receiver<DebounceEventResult>,
    tx: crossbeam_channel::Sender<DebounceEventResult>,
    present: Vec<bool>,
    identities: HashMap<String, Identity>,
    queue: HashMap<PathBuf, Queued>,
    /// Roots to reconcile (all of them after an overflow; one that came back).
    reconcile: HashSet<PathBuf>,
    writes_since_compact: usize,
    last_compact: Instant,
    /// Work was done since the last `Idle` report.
    busy: bool,
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
        let identities = std::fs::read_to_string(shared.store.dir().join(IDENTITIES))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
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
            queue: HashMap::new(),
            reconcile: config.roots.iter().cloned().collect(),
            writes_since_compact: 0,
            last_compact: Instant::now(),
            busy: true,
            failing_until: None,
            failures_in_a_row: 0,
        };
        daemon.set_status(|s| {
            s.mode = daemon_mode(config.poll);
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
        let roots = self.config.roots.iter().map(|r| display(r)).collect();
        let mode = daemon_mode(self.config.poll);
        (self.report)(Report::Watching { roots, mode });
        self.set_status(|s| s.phase = "watching".into());
        let tick = Duration::from_millis(100);
        let mut last_root_check = Instant::now();
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
            self.compact_if_due()?;
            let queue = self.queue.len();
            self.set_status(|s| {
                s.queue = queue;
                s.idle = queue == 0;
            });
            if queue == 0 && self.busy {
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
            let key = display(root);
            let now_present = match std::fs::metadata(root) {
                Ok(meta) if meta.is_dir() => {
                    let id = identity(&meta);
                    let empty = std::fs::read_dir(root).map_or(true, |mut d| d.next().is_none());
                    match self.identities.get(&key) {
                        // Another, empty folder where the root was: a mount point.
                        Some(known) if *known != id && empty => false,
                        Some(known) if *known == id => true,
                        _ => {
                            self.identities.insert(key.clone(), id);
                            identities_changed = true;
                            true
                        }
                    }
                }
                _ => false,
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
                self.queue.retain(|p, _| !p.starts_with(root));
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
                path: display(r),
                present: *p,
            })
            .collect();
        self.set_status(|s| s.roots = roots);
        if identities_changed {
            let path = self.shared.store.dir().join(IDENTITIES);
            let tmp = path.with_extension("json.tmp");
            let text = serde_json::to_string_pretty(&self.identities).expect("serialisable");
            let _ = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
        }
    }

    fn fall_back_to_polling(&mut self, e: &notify::Error) {
        if matches!(self.follower, Follower::Poll(_)) {
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
        self.set_status(|s| s.mode = daemon_mode(Some(every)));
        self.reconcile.extend(self.config.roots.iter().cloned());
    }

    fn warn(&mut self, message: String) {
        let at = now_seconds();
        self.set_status(|s| {
            s.last_error = Some(Stamped {
                what: message.clone(),
                at,
            })
        });
        (self.report)(Report::Warning { message });
    }

    /// Queues the paths that events name. Reads of files (access events) are ignored, so
    /// the daemon's own reading never makes work.
    fn take_events(&mut self, result: DebounceEventResult) {
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                for e in errors {
                    if is_out_of_watches(&e) {
                        self.fall_back_to_polling(&e);
                    } else {
                        self.warn(format!("file-system events: {e}"));
                        // Whatever was lost, a reconcile finds.
                        self.reconcile.extend(self.config.roots.iter().cloned());
                    }
                }
                return;
            }
        };
        let now = Instant::now();
        let reports_close = self.follower.reports_close();
        for event in events {
            if event.need_rescan() {
                // The kernel's queue overflowed: events were lost.
                self.reconcile.extend(self.config.roots.iter().cloned());
                continue;
            }
            let writing = match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => Writing::Closed,
                EventKind::Access(_) | EventKind::Other => continue,
                EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_))
                    if reports_close =>
                {
                    Writing::Open
                }
                _ => Writing::Unknown,
            };
            for path in &event.paths {
                if !self.wanted(path) {
                    continue;
                }
                let kind = format!("{:?}", event.kind);
                let what = format!("{kind} {}", path.display());
                self.set_status(|s| {
                    s.last_event = Some(Stamped {
                        what,
                        at: now_seconds(),
                    })
                });
                let queued = self
                    .queue
                    .entry(path.clone())
                    .or_insert_with(|| Queued::new(now));
                queued.changed = now;
                match writing {
                    Writing::Unknown if queued.writing == Writing::Open => {}
                    w => queued.writing = w,
                }
            }
        }
    }

    /// A path worth a look: under a present root, not hidden or excluded, and an image or
    /// possibly a folder (a missing path may have been one).
    fn wanted(&self, path: &Path) -> bool {
        let Some(i) = self.config.roots.iter().position(|r| path.starts_with(r)) else {
            return false;
        };
        // The database may sit inside a watched folder: its own writes are no news.
        if !self.present[i] || path.starts_with(self.shared.store.dir()) {
            return false;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.starts_with('.') || self.config.exclude.is_match(path) {
            return false;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => crate::scan::has_image_extension(path),
            Ok(meta) => meta.is_dir(),
            Err(_) => true,
        }
    }

    /// The queued paths that are complete, once the batch is worth a pass.
    fn ready_batch(&mut self) -> Option<Vec<PathBuf>> {
        let now = Instant::now();
        let settle = self.config.settle;
        let quick = Duration::from_millis(100);
        let open_limit = self.config.open_write_limit;
        let mut ready = Vec::new();
        let mut oldest_ready = Duration::ZERO;
        let mut waiting = 0;
        for (path, q) in self.queue.iter_mut() {
            if now < q.not_before {
                waiting += 1;
                continue;
            }
            let seen = match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_file() => Some((meta.len(), crate::scan::mtime_ns(&meta))),
                _ => None,
            };
            if seen != q.seen {
                q.seen = seen;
                q.changed = now;
            }
            let quiet = now.saturating_duration_since(q.changed);
            let complete = match (seen, q.writing) {
                (None, _) => quiet >= quick,
                (Some(_), Writing::Closed) => quiet >= quick,
                (Some(_), Writing::Open) => quiet >= open_limit,
                (Some((_, mtime)), Writing::Unknown) => {
                    quiet >= settle || age_of(mtime) >= settle && quiet >= quick
                }
            };
            if complete {
                oldest_ready = oldest_ready.max(quiet);
                ready.push(path.clone());
            } else {
                waiting += 1;
            }
        }
        let full = ready.len() >= self.config.batch_max;
        let worth =
            full || (!ready.is_empty() && (waiting == 0 || oldest_ready >= self.config.batch_wait));
        if !worth {
            return None;
        }
        ready.sort();
        ready.truncate(self.config.batch_max);
        Some(ready)
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
                Err(Error::Store { reason, .. }) => {
                    if !told {
                        told = true;
                        self.warn(format!("waiting: {reason}"));
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

    /// Compacts the tables after enough writes, so that a day of small events does not leave
    /// thousands of tiny fragments.
    fn compact_if_due(&mut self) -> Result<()> {
        let due = self.writes_since_compact > 0
            && (self.last_compact.elapsed() >= self.config.compact_every
                || self.writes_since_compact >= 10_000);
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
            });
        }
        self.writes_since_compact = 0;
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
            self.queue.remove(p);
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
            let busy = queue.contains_key(&f.path) || age_of(f.mtime_ns) < settle;
            if busy {
                late.borrow_mut().push(f.path.clone());
            }
            busy
        };
        let pass = Pass {
            roots: &present,
            exclude: &self.config.exclude,
            // A reconcile's paths are the roots themselves: the whole walk.
            scope: Scope::Paths(&paths),
            defer: &defer,
            stop: self.stop,
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
            // A reconcile also repairs a filter index left behind by a crash.
            if written > 0 || reconcile {
                let _guard = self.shared.filters.lock();
                table.maintain_vector_index()?;
                table.filters()?;
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
        for report in reports {
            (self.report)(report);
        }
        let mut attempts_of: HashMap<PathBuf, u32> = HashMap::new();
        for p in &paths {
            if let Some(q) = self.queue.remove(p) {
                attempts_of.insert(p.clone(), q.attempts);
            }
        }
        for p in late {
            self.queue.entry(p).or_insert_with(|| Queued::new(now));
        }
        // Failed files: again later, with backoff, before they are reported.
        for (path, error) in failures {
            let attempts = attempts_of.get(&path).copied().unwrap_or(0);
            if attempts < self.config.retries && path.is_file() {
                let mut q = Queued::new(now);
                q.attempts = attempts + 1;
                q.not_before = now + Duration::from_secs(1 << attempts);
                self.queue.insert(path, q);
            } else {
                let message = error.clone();
                self.set_status(|s| {
                    s.last_error = Some(Stamped {
                        what: message,
                        at: now_seconds(),
                    })
                });
                (self.report)(Report::FileFailed {
                    path: display(&path),
                    error,
                });
            }
        }
        self.set_status(|s| s.changes += changes);
        Ok(())
    }
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

fn daemon_mode(poll: Option<Duration>) -> String {
    match poll {
        None => "events".into(),
        Some(every) => format!("polling every {} s", every.as_secs_f64()),
    }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// How long ago a modification time (ns since the epoch) was; zero for the future.
fn age_of(mtime_ns: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Duration::from_nanos(now.saturating_sub(mtime_ns).max(0) as u64)
}
