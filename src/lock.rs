//! One writer per database: an advisory lock on `<db>/writer.lock`; and one watch daemon per
//! database: `<db>/daemon.lock`, held for the daemon's life. The operating system releases a
//! lock when its holder exits, however it exits, so a lock left by a killed process is simply
//! taken by the next one. Readers (`similar`, `status`) never take either.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

pub struct WriterLock {
    file: File,
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

impl WriterLock {
    /// Takes the writer lock; if another process holds it, `on_wait(holder)` is called once
    /// and the lock is waited for (`wait`), or an error naming the holder is returned.
    pub fn acquire(
        db_dir: &Path,
        doing: &str,
        wait: bool,
        on_wait: impl FnOnce(&str),
    ) -> Result<Self> {
        take(db_dir, "writer.lock", doing, wait, on_wait, |holder| {
            format!("{holder} is writing to this index; try again when it is done")
        })
    }

    /// Takes the daemon lock, or fails at once naming the daemon that holds it.
    pub fn acquire_daemon(db_dir: &Path, doing: &str) -> Result<Self> {
        take(
            db_dir,
            "daemon.lock",
            doing,
            false,
            |_| {},
            |holder| format!("a watch daemon already runs on this index ({holder}); stop it first"),
        )
    }

    /// What the holder of the daemon lock wrote, if a live process holds it.
    pub fn daemon_holder(db_dir: &Path) -> Option<String> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(db_dir.join("daemon.lock"))
            .ok()?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(_) => Some(holder(&mut file)),
        }
    }
}

fn take(
    db_dir: &Path,
    name: &str,
    doing: &str,
    wait: bool,
    on_wait: impl FnOnce(&str),
    busy: impl FnOnce(&str) -> String,
) -> Result<WriterLock> {
    let path = db_dir.join(name);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(db_dir).map_err(io)?;
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
                return Err(Error::Store {
                    path: db_dir.to_path_buf(),
                    reason: busy(&holder),
                });
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
    Ok(WriterLock { file })
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
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
}
