//! Small helpers that several layers use: the string key of a path, a file written whole or
//! not at all, the clock, and the process's memory.

use std::io::Write;
use std::path::Path;

/// The string under which a path is stored and printed.
pub fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename, so that a reader
/// (or a crash) sees the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Seconds since the Unix epoch.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The process's peak resident memory so far and its current resident memory, in MiB
/// (`VmHWM`, `VmRSS` of /proc/self/status; `None` where there is no /proc).
pub fn resident_memory_mb() -> Option<(f64, f64)> {
    memory_mb_in("/proc/self/status")
}

/// [`resident_memory_mb`] of another process (a daemon the benchmark started).
pub fn resident_memory_mb_of(pid: u32) -> Option<(f64, f64)> {
    memory_mb_in(&format!("/proc/{pid}/status"))
}

fn memory_mb_in(status_file: &str) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(status_file).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.json");
        write_atomic(&path, b"old and long").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert!(write_atomic(&dir.path().join("no/such/folder"), b"x").is_err());
    }
}
