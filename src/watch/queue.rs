//! The daemon's queue: paths that events named, waiting until their files are complete and
//! enough of them are ready to be worth one pass (one commit for many files), and files that
//! failed, waiting for their retry.
//!
//! The rules are pure functions of what was seen and when, so that they are tested here
//! without a file system or a clock; [`Queue::ready_batch`] takes the look at the disk and the
//! age of a modification time as arguments.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What is known of a file's completeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writing {
    /// Opened for writing and not closed yet (events say so).
    Open,
    /// Closed after its last write.
    Closed,
    /// No word either way (moved in, polled, metadata change).
    Unknown,
}

/// What an event says of a file, given what was known: an event with no word on writing
/// (a metadata change, say) does not end an open write.
pub fn writing_after(known: Writing, event: Writing) -> Writing {
    match (known, event) {
        (Writing::Open, Writing::Unknown) => Writing::Open,
        (_, event) => event,
    }
}

/// How long the queue waits. The defaults are in `WatchConfig`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A file nobody is known to be writing is complete once unchanged this long.
    pub settle: Duration,
    /// A file held open for writing is taken anyway once unchanged this long.
    pub open_write_limit: Duration,
    /// Ready paths wait this long for others to join their batch.
    pub batch_wait: Duration,
    /// At most this many paths per pass.
    pub batch_max: usize,
}

/// A closed file, or a path that is gone, is taken after this much quiet (events of one write
/// arrive in bursts).
const QUICK: Duration = Duration::from_millis(100);

/// Whether a queued path can be compared with the disk now. `seen` is its (size, mtime) now
/// (`None`: missing or a folder), `quiet` how long nothing changed, `age` how old its mtime is.
pub fn is_complete(
    seen: Option<(u64, i64)>,
    writing: Writing,
    quiet: Duration,
    age: Duration,
    timing: &Timing,
) -> bool {
    match (seen, writing) {
        (None, _) | (Some(_), Writing::Closed) => quiet >= QUICK,
        (Some(_), Writing::Open) => quiet >= timing.open_write_limit,
        // An old file that was just moved in needs no settling.
        (Some(_), Writing::Unknown) => {
            quiet >= timing.settle || age >= timing.settle && quiet >= QUICK
        }
    }
}

/// Whether the ready paths are worth a pass now: the batch is full, nothing else is waiting,
/// or the oldest ready path has waited long enough for others to join.
pub fn batch_is_due(ready: usize, waiting: usize, oldest_ready: Duration, timing: &Timing) -> bool {
    ready >= timing.batch_max || ready > 0 && (waiting == 0 || oldest_ready >= timing.batch_wait)
}

/// When a file that failed `attempts` times before is tried again (1, 2, 4, ... s), or `None`
/// once its retries are spent and it is reported.
pub fn retry_after(attempts: u32, retries: u32) -> Option<Duration> {
    (attempts < retries).then(|| Duration::from_secs(1 << attempts.min(16)))
}

#[derive(Debug, Clone)]
struct Queued {
    writing: Writing,
    /// Last time an event or a change of size or mtime was seen.
    changed: Instant,
    /// (size, mtime) at the last look; `None`: missing, or a folder.
    seen: Option<(u64, i64)>,
    /// Failed passes so far.
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

/// The paths waiting for a pass.
#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<PathBuf, Queued>,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
    }

    /// An event named `path`.
    pub fn note(&mut self, path: &Path, writing: Writing, now: Instant) {
        let queued = self
            .entries
            .entry(path.to_path_buf())
            .or_insert_with(|| Queued::new(now));
        queued.changed = now;
        queued.writing = writing_after(queued.writing, writing);
    }

    /// A file that a pass found but left for later (still being written): queued, unless it
    /// is already.
    pub fn defer(&mut self, path: PathBuf, now: Instant) {
        self.entries.entry(path).or_insert_with(|| Queued::new(now));
    }

    /// Takes `path` out (its pass is done); returns how often it had failed.
    pub fn take(&mut self, path: &Path) -> Option<u32> {
        self.entries.remove(path).map(|q| q.attempts)
    }

    /// Queues a file again after its pass failed for the `attempts`-th time, or returns false
    /// when its retries are spent.
    pub fn retry(&mut self, path: PathBuf, attempts: u32, retries: u32, now: Instant) -> bool {
        let Some(wait) = retry_after(attempts, retries) else {
            return false;
        };
        let mut q = Queued::new(now);
        q.attempts = attempts + 1;
        q.not_before = now + wait;
        self.entries.insert(path, q);
        true
    }

    /// Drops every path under `root` (it vanished; its reconcile will look again).
    pub fn forget_under(&mut self, root: &Path) {
        self.entries.retain(|p, _| !p.starts_with(root));
    }

    /// The queued paths that are complete, sorted, once the batch is due ([`batch_is_due`]).
    /// `look` gives a path's (size, mtime) now (`None`: missing or not a file), `age` how long
    /// ago an mtime was.
    pub fn ready_batch(
        &mut self,
        now: Instant,
        timing: &Timing,
        look: impl Fn(&Path) -> Option<(u64, i64)>,
        age: impl Fn(i64) -> Duration,
    ) -> Option<Vec<PathBuf>> {
        let mut ready = Vec::new();
        let mut oldest_ready = Duration::ZERO;
        let mut waiting = 0;
        for (path, q) in self.entries.iter_mut() {
            if now < q.not_before {
                waiting += 1;
                continue;
            }
            let seen = look(path);
            if seen != q.seen {
                q.seen = seen;
                q.changed = now;
            }
            let quiet = now.saturating_duration_since(q.changed);
            let age = seen.map_or(Duration::ZERO, |(_, mtime)| age(mtime));
            if is_complete(seen, q.writing, quiet, age, timing) {
                oldest_ready = oldest_ready.max(quiet);
                ready.push(path.clone());
            } else {
                waiting += 1;
            }
        }
        if !batch_is_due(ready.len(), waiting, oldest_ready, timing) {
            return None;
        }
        ready.sort();
        ready.truncate(timing.batch_max);
        Some(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> Timing {
        Timing {
            settle: 1000 * MS,
            open_write_limit: 60_000 * MS,
            batch_wait: 300 * MS,
            batch_max: 3,
        }
    }

    #[test]
    fn a_file_is_complete_by_what_is_known_of_its_writer() {
        let t = timing();
        let file = Some((10, 0));
        let fresh = Duration::ZERO;
        let old = Duration::from_secs(3600);
        // Closed after writing, or gone: after a short quiet.
        assert!(!is_complete(file, Writing::Closed, 99 * MS, fresh, &t));
        assert!(is_complete(file, Writing::Closed, 100 * MS, fresh, &t));
        assert!(!is_complete(None, Writing::Open, 99 * MS, fresh, &t));
        assert!(is_complete(None, Writing::Open, 100 * MS, fresh, &t));
        // Held open: not before the open-write limit, however long it was quiet otherwise.
        assert!(!is_complete(file, Writing::Open, 59_999 * MS, old, &t));
        assert!(is_complete(file, Writing::Open, 60_000 * MS, fresh, &t));
        // Unknown: settled, or an old file (moved in) after a short quiet.
        assert!(!is_complete(file, Writing::Unknown, 999 * MS, fresh, &t));
        assert!(is_complete(file, Writing::Unknown, 1000 * MS, fresh, &t));
        assert!(!is_complete(file, Writing::Unknown, 99 * MS, old, &t));
        assert!(is_complete(file, Writing::Unknown, 100 * MS, old, &t));
        assert!(!is_complete(file, Writing::Unknown, 100 * MS, 999 * MS, &t));
    }

    #[test]
    fn an_event_without_word_on_writing_does_not_end_an_open_write() {
        assert_eq!(
            writing_after(Writing::Open, Writing::Unknown),
            Writing::Open
        );
        assert_eq!(
            writing_after(Writing::Open, Writing::Closed),
            Writing::Closed
        );
        assert_eq!(writing_after(Writing::Closed, Writing::Open), Writing::Open);
        assert_eq!(
            writing_after(Writing::Closed, Writing::Unknown),
            Writing::Unknown
        );
    }

    #[test]
    fn a_batch_is_due_when_full_alone_or_waited_for() {
        let t = timing();
        assert!(!batch_is_due(0, 0, Duration::ZERO, &t));
        assert!(batch_is_due(1, 0, Duration::ZERO, &t));
        assert!(!batch_is_due(1, 1, 299 * MS, &t));
        assert!(batch_is_due(1, 1, 300 * MS, &t));
        assert!(batch_is_due(3, 5, Duration::ZERO, &t));
    }

    #[test]
    fn failures_are_retried_with_doubling_waits_then_reported() {
        assert_eq!(retry_after(0, 3), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(1, 3), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(2, 3), Some(Duration::from_secs(4)));
        assert_eq!(retry_after(3, 3), None);
        assert_eq!(retry_after(0, 0), None);
    }

    #[test]
    fn the_queue_releases_complete_files_in_batches_and_holds_growing_ones() {
        let t = timing();
        let start = Instant::now();
        let mut queue = Queue::default();
        let (a, b, growing) = (
            Path::new("/r/a.jpg"),
            Path::new("/r/b.jpg"),
            Path::new("/r/c.jpg"),
        );
        queue.note(a, Writing::Closed, start);
        queue.note(b, Writing::Closed, start);
        queue.note(growing, Writing::Open, start);
        let size = std::cell::Cell::new(1u64);
        let look = |p: &Path| {
            Some(if p == growing {
                (size.get(), 0)
            } else {
                (5, 0)
            })
        };
        let age = |_| Duration::ZERO;
        // Too soon for the closed files; the open one waits for the limit.
        assert_eq!(queue.ready_batch(start, &t, look, age), None);
        // The closed files are ready, but another path still waits: not before batch_wait.
        assert_eq!(queue.ready_batch(start + 200 * MS, &t, look, age), None);
        let batch = queue.ready_batch(start + 300 * MS, &t, look, age).unwrap();
        assert_eq!(batch, [a, b]);
        for p in &batch {
            assert_eq!(queue.take(p), Some(0));
        }
        // A file that keeps growing is never taken; once it stops, after the open limit.
        for s in 1..=5 {
            size.set(s * 100);
            let at = start + Duration::from_secs(s * 20);
            assert_eq!(queue.ready_batch(at, &t, look, age), None);
        }
        let at = start + Duration::from_secs(100) + t.open_write_limit;
        assert_eq!(queue.ready_batch(at, &t, look, age).unwrap(), [growing]);
    }

    #[test]
    fn a_full_batch_goes_at_once_and_a_retry_waits_its_turn() {
        let t = timing();
        let start = Instant::now();
        let mut queue = Queue::default();
        for i in 0..5 {
            queue.note(
                &PathBuf::from(format!("/r/{i}.jpg")),
                Writing::Closed,
                start,
            );
        }
        let look = |_: &Path| Some((5, 0));
        // Files that fail are usually complete and old.
        let age = |_| Duration::from_secs(3600);
        // The first look is news (a size appeared): nothing is ready at once.
        assert_eq!(queue.ready_batch(start, &t, look, age), None);
        let batch = queue.ready_batch(start + 100 * MS, &t, look, age).unwrap();
        assert_eq!(batch.len(), t.batch_max);
        for p in &batch {
            assert_eq!(queue.take(p), Some(0));
        }
        assert_eq!(queue.len(), 2);

        let failed = PathBuf::from("/r/bad.jpg");
        assert!(queue.retry(failed.clone(), 0, 3, start + 100 * MS));
        queue.forget_under(Path::new("/r/0.jpg")); // nothing under it
        assert_eq!(queue.len(), 3);
        // The two old paths go; the failed one waits for its second.
        let batch = queue.ready_batch(start + 500 * MS, &t, look, age).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(!batch.contains(&failed));
        for p in &batch {
            queue.take(p);
        }
        assert_eq!(queue.ready_batch(start + 1050 * MS, &t, look, age), None);
        assert_eq!(queue.ready_batch(start + 1100 * MS, &t, look, age), None);
        let batch = queue.ready_batch(start + 1200 * MS, &t, look, age).unwrap();
        assert_eq!(batch, std::slice::from_ref(&failed));
        assert_eq!(queue.take(&failed), Some(1));
        assert!(!queue.retry(failed, 3, 3, start));
        assert!(queue.is_empty());
        queue.defer(PathBuf::from("/r/x/late.jpg"), start);
        queue.forget_under(Path::new("/r/x"));
        assert!(queue.is_empty());
    }
}
