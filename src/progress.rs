//! Progress of long work, reported to whoever watches: the library draws nothing, the CLI
//! renders bars and messages (as czkawka's core does).

use crate::error::Error;

pub trait Progress {
    /// A step of `total` units starts.
    fn start(&mut self, _label: &str, _total: usize) {}
    /// `n` more units are done.
    fn advance(&mut self, _n: usize) {}
    /// One file could not be used; the work goes on without it.
    fn file_failed(&mut self, _error: &Error) {}
}

/// Progress that nobody watches.
pub struct Quiet;
impl Progress for Quiet {}
