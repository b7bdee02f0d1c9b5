//! The daemon's state as `imgsim status` shows it, sent over the query socket.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The daemon's state.
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

impl Stamped {
    pub fn now(what: String) -> Self {
        Self {
            what,
            at: crate::util::now_seconds(),
        }
    }
}

/// How the daemon follows the disk, in words.
pub fn mode(poll: Option<Duration>) -> String {
    match poll {
        None => "events".into(),
        Some(every) => format!("polling every {} s", every.as_secs_f64()),
    }
}
