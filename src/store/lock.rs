//! One writer per database: an advisory lock on `<db>/writer.lock`; and one watch daemon per
//! database: `<db>/daemon.lock`, held for the daemon's life. The operating system releases a
//! lock when its holder exits, however it exits, so a lock left by a killed process is simply
//! taken by the next one. Readers (`similar`, `status`) never take either.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The right to write to a database: at most one process holds it at a time.
pub struct WriterLock {
    _file: Locked,
}

/// The right to run the watch daemon of a database, held for the daemon's life.
pub struct DaemonLock {
    _file: Locked,
}

impl WriterLock {
    /// Takes the writer lock; if another process holds it, `on_wait(holder)` is called once
    /// and the lock is waited for (`wait`), or [`Error::WriterBusy`] names the holder.
    pub fn acquire(
        db_dir: &Path,
        doing: &str,
        wait: bool,
        on_wait: impl FnOnce(&str),
    ) -> Result<Self> {
        let file = take(db_dir, "writer.lock", doing, wait, on_wait, |holder| {
            Error::WriterBusy {
                path: db_dir.to_path_buf(),
                holder,
            }
        })?;
        Ok(Self { _file: file })
    }
}

impl DaemonLock {
    /// Takes the daemon lock, or fails at once with [`Error::DaemonRunning`].
    pub fn acquire(db_dir: &Path, doing: &str) -> Result<Self> {
        let file = take(
            db_dir,
            "daemon.lock",
            doing,
            false,
            |_| {},
            |holder| Error::DaemonRunning {
                path: db_dir.to_path_buf(),
                holder,
            },
        )?;
        Ok(Self { _file: file })
    }
}

/// What the holder is, as it wrote into the lock file.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "another imgsim process".into()
    } else {
        text.to_string()
    }
}

/// A locked lock file, holding its holder's description; emptied and unlocked on drop.
struct Locked(File);

fn take(
    db_dir: &Path,
    name: &str,
    doing: &str,
    wait: bool,
    on_wait: impl FnOnce(&str),
    busy: impl FnOnce(String) -> Error,
) -> Result<Locked> {
    let path = db_dir.join(name);
    let io = |source| Error::Io {
        path: path.clone(),
        cause: source,
    };
    // The folder is not created here: a lock taken after the database was deleted (under a
    // running daemon) must fail, not make a new, empty database.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = holder(&mut file);
            if !wait {
                return Err(busy(holder));
            }
            on_wait(&holder);
            file.lock().map_err(io)?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "pid {}: {doing}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(Locked(file))
}

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = self.0.set_len(0);
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_name_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path(), "imgsim index /photos", false, |_| {}).unwrap();
        let err = WriterLock::acquire(dir.path(), "imgsim tag", false, |_| {})
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("imgsim index /photos") && err.contains("pid"),
            "{err}"
        );
        drop(first);
        WriterLock::acquire(dir.path(), "imgsim tag", false, |_| {}).unwrap();
    }

    #[test]
    fn one_daemon_per_database_and_the_writer_lock_is_apart() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = DaemonLock::acquire(dir.path(), "imgsim watch /photos").unwrap();
        match DaemonLock::acquire(dir.path(), "imgsim watch /other") {
            Err(Error::DaemonRunning { holder, .. }) => {
                assert!(holder.contains("imgsim watch /photos"), "{holder}")
            }
            other => panic!("expected DaemonRunning, got {:?}", other.err()),
        }
        // The daemon writes only while it holds the writer lock too.
        let writer = WriterLock::acquire(dir.path(), "imgsim index", false, |_| {}).unwrap();
        drop((writer, daemon));
        DaemonLock::acquire(dir.path(), "imgsim watch /other").unwrap();
    }
}
