//! The event source: the platform's file-system notifications (inotify, FSEvents, ...) or a
//! poll watcher, both behind notify-debouncer-full; and what an event says of a file's writer.

use std::path::Path;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{
    new_debouncer_opt, DebounceEventResult, Debouncer, NoCache, RecommendedCache,
};

use super::queue::Writing;
use crate::error::{Error, Result};

pub enum Follower {
    Events(Debouncer<notify::RecommendedWatcher, RecommendedCache>),
    Poll(Debouncer<notify::PollWatcher, NoCache>),
}

impl Follower {
    /// The debounce window: bursts within it arrive as one batch of events.
    const DEBOUNCE: Duration = Duration::from_millis(200);

    /// Starts following; events go to `tx`. `poll`: poll at that interval instead.
    pub fn start(
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
}
