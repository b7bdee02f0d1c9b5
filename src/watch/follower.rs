//! The event source: the platform's file-system notifications (inotify, FSEvents, ...) or a
//! poll watcher, straight from notify; and what an event says of a file's writer.
//!
//! Every raw event goes to the daemon's queue, which does its own settling and batching
//! (`queue.rs`). A debouncer in between (notify-debouncer-full, used before) drops the events
//! of a file that was created and deleted, or created and renamed, within its window: right
//! for a viewer of the folder, wrong here, because another writer (`imgsim index` beside the
//! daemon) may have stored a row for that file meanwhile, and the daemon then never looked
//! at its path again (a 25-minute soak ended with such a row for a deleted file).

use std::path::Path;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use super::queue::Writing;
use crate::error::{Error, Result};

/// What the event source sends: one raw event, or an error of the watcher.
pub type EventResult = notify::Result<notify::Event>;

pub enum Follower {
    Events(notify::RecommendedWatcher),
    Poll(notify::PollWatcher),
}

impl Follower {
    /// Starts following; events go to `tx`. `poll`: poll at that interval instead.
    pub fn start(
        poll: Option<Duration>,
        tx: crossbeam_channel::Sender<EventResult>,
    ) -> Result<Self> {
        let handler = move |result: EventResult| {
            let _ = tx.send(result);
        };
        let follower = match poll {
            None => Follower::Events(
                notify::RecommendedWatcher::new(handler, notify::Config::default())
                    .map_err(watch_error)?,
            ),
            Some(every) => Follower::Poll(
                notify::PollWatcher::new(
                    handler,
                    notify::Config::default().with_poll_interval(every),
                )
                .map_err(watch_error)?,
            ),
        };
        Ok(follower)
    }

    pub fn is_polling(&self) -> bool {
        matches!(self, Follower::Poll(_))
    }

    pub fn watch(&mut self, root: &Path) -> notify::Result<()> {
        match self {
            Follower::Events(d) => d.watch(root, RecursiveMode::Recursive),
            Follower::Poll(d) => d.watch(root, RecursiveMode::Recursive),
        }
    }

    pub fn unwatch(&mut self, root: &Path) {
        let _ = match self {
            Follower::Events(d) => d.unwatch(root),
            Follower::Poll(d) => d.unwatch(root),
        };
    }

    /// Whether close-after-write is reported (Linux's inotify does; polling does not).
    pub fn reports_close(&self) -> bool {
        matches!(self, Follower::Events(_)) && cfg!(target_os = "linux")
    }
}

/// What an event says of the writing of the files it names; `None`: the event is no news
/// (a read of the file, the daemon's own reads included, or an unknown kind).
pub fn writing_of(kind: &EventKind, reports_close: bool) -> Option<Writing> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Writing::Closed),
        EventKind::Access(_) | EventKind::Other => None,
        EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_))
            if reports_close =>
        {
            Some(Writing::Open)
        }
        _ => Some(Writing::Unknown),
    }
}

fn watch_error(e: notify::Error) -> Error {
    Error::Io {
        path: e.paths.first().cloned().unwrap_or_default(),
        cause: std::io::Error::other(e.to_string()),
    }
}

/// The system's limit of inotify watches was reached (ENOSPC from inotify_add_watch).
pub fn is_out_of_watches(e: &notify::Error) -> bool {
    matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(28))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, MetadataKind, RenameMode};

    #[test]
    fn reads_are_no_news_and_writes_are_open_until_closed() {
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let read = EventKind::Access(AccessKind::Open(AccessMode::Read));
        let create = EventKind::Create(CreateKind::File);
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let meta = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        assert_eq!(writing_of(&close, true), Some(Writing::Closed));
        assert_eq!(writing_of(&read, true), None);
        assert_eq!(writing_of(&EventKind::Other, true), None);
        assert_eq!(writing_of(&create, true), Some(Writing::Open));
        assert_eq!(writing_of(&data, true), Some(Writing::Open));
        // Without close events a write's end is unknown: the settle time decides.
        assert_eq!(writing_of(&create, false), Some(Writing::Unknown));
        assert_eq!(writing_of(&data, false), Some(Writing::Unknown));
        assert_eq!(writing_of(&rename, true), Some(Writing::Unknown));
        assert_eq!(writing_of(&meta, true), Some(Writing::Unknown));
    }

    /// The paths that events name within `wait` of the last one.
    fn paths_named(
        rx: &crossbeam_channel::Receiver<EventResult>,
        wait: Duration,
    ) -> Vec<std::path::PathBuf> {
        let mut paths = Vec::new();
        while let Ok(result) = rx.recv_timeout(wait) {
            paths.extend(result.unwrap().paths);
        }
        paths
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_file_that_lived_a_moment_is_still_named() {
        // Another writer (`imgsim index`) may store a row for such a file meanwhile: its path
        // must reach the queue, or the row outlives the file. A debouncer dropped both cases.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut follower = Follower::start(None, tx).unwrap();
        follower.watch(&root).unwrap();
        let (gone, renamed, new_name) = (
            root.join("gone.png"),
            root.join("a.png"),
            root.join("b.png"),
        );
        std::fs::write(&gone, b"x").unwrap();
        std::fs::remove_file(&gone).unwrap();
        std::fs::write(&renamed, b"x").unwrap();
        std::fs::rename(&renamed, &new_name).unwrap();
        let named = paths_named(&rx, Duration::from_millis(500));
        for path in [&gone, &renamed, &new_name] {
            assert!(
                named.contains(path),
                "{} not named in {named:?}",
                path.display()
            );
        }
    }
}
