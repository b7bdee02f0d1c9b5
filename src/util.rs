//! Small helpers that several layers use: the string key of a path, a file written whole or
//! not at all, the clock, and the process's memory.

use std::io::Write;
use std::path::Path;

/// The string under which a path is stored: the path itself when it is UTF-8 (every format-1
/// database's rows stay valid), and without loss when it is not: Linux file names are bytes,
/// and two names that differ only in bytes that are not UTF-8 must not share a row.
///
/// Each byte that is not part of valid UTF-8 (always 0x80..=0xFF) becomes the private-use
/// character U+10FF00 + byte; a name that really holds one of those characters has the bytes
/// of that character escaped the same way, so [`path_of`] reverses every key exactly.
pub fn path_string(path: &Path) -> String {
    let key = local_key(path);
    match root_aliases().iter().find(|a| a.covers(&key)) {
        Some(alias) => format!("{}:{}", alias.name, &key[alias.root_key.len()..]),
        None => key,
    }
}

/// [`path_string`] without the root aliases.
fn local_key(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes) {
        if !text.chars().any(is_escape) {
            return text.to_string();
        }
    }
    let mut key = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                let mut buf = [0; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .for_each(|b| key.push(escape(b)));
            } else {
                key.push(c);
            }
        }
        chunk.invalid().iter().for_each(|&b| key.push(escape(b)));
    }
    key
}

/// The path a stored key names (the inverse of [`path_string`]).
pub fn path_of(key: &str) -> std::path::PathBuf {
    if let Some((name, rest)) = key.split_once(":/") {
        if let Some(alias) = root_aliases().iter().find(|a| a.name == name) {
            return local_path(&format!("{}/{rest}", alias.root_key.trim_end_matches('/')));
        }
    }
    local_path(key)
}

fn local_path(key: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    if !key.chars().any(is_escape) {
        return key.into();
    }
    let mut bytes = Vec::with_capacity(key.len());
    for c in key.chars() {
        if is_escape(c) {
            bytes.push((c as u32 - ESCAPE_BASE) as u8);
        } else {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    std::ffi::OsString::from_vec(bytes).into()
}

/// One root alias (`--root-alias NAME=PATH`): rows of files under PATH are stored as
/// `NAME:/rest/of/path`, so that machines that mount one library at different places (a NAS
/// at `/mnt/nas/photos` here, `/Volumes/photos` there) share its rows. A machine that has no
/// such alias shows those rows as they are stored (`NAME:/rest/of/path`) and never takes
/// them for files under its own folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootAlias {
    pub name: String,
    /// The local folder's key (canonical when it exists here).
    root_key: String,
}

impl RootAlias {
    /// `NAME=PATH`; NAME of letters, digits, `-` and `_`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, path) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not a root alias: write NAME=PATH"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{name:?} is not an alias name: use letters, digits, '-' and '_'"
            ));
        }
        let path = Path::new(path);
        if !path.is_absolute() && !path.exists() {
            return Err(format!(
                "{}: the folder of an alias must be an absolute path",
                path.display()
            ));
        }
        let path = path
            .canonicalize()
            .or_else(|_| std::path::absolute(path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            name: name.to_string(),
            root_key: local_key(&path),
        })
    }

    fn covers(&self, key: &str) -> bool {
        key.strip_prefix(&self.root_key)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

static ROOT_ALIASES: std::sync::OnceLock<Vec<RootAlias>> = std::sync::OnceLock::new();

/// Sets this process's root aliases, once, before any key is made; longer roots are tried
/// first. Two aliases of one name are refused.
pub fn set_root_aliases(mut aliases: Vec<RootAlias>) -> Result<(), String> {
    for (i, a) in aliases.iter().enumerate() {
        if aliases[..i].iter().any(|b| b.name == a.name) {
            return Err(format!("the root alias {} is given twice", a.name));
        }
    }
    aliases.sort_by_key(|a| std::cmp::Reverse(a.root_key.len()));
    if let Some(set) = ROOT_ALIASES.get() {
        return if *set == aliases {
            Ok(())
        } else {
            Err("root aliases were already set differently".into())
        };
    }
    let _ = ROOT_ALIASES.set(aliases);
    Ok(())
}

fn root_aliases() -> &'static [RootAlias] {
    ROOT_ALIASES.get().map_or(&[], Vec::as_slice)
}

/// A stored key as people read it: the path, with bytes that are not UTF-8 shown as U+FFFD.
pub fn display_key(key: &str) -> String {
    path_of(key).to_string_lossy().into_owned()
}

const ESCAPE_BASE: u32 = 0x10FF00;

fn is_escape(c: char) -> bool {
    (ESCAPE_BASE + 0x80..=ESCAPE_BASE + 0xFF).contains(&(c as u32))
}

fn escape(byte: u8) -> char {
    char::from_u32(ESCAPE_BASE + byte as u32).expect("a private-use character")
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

/// Starts a new peak for [`resident_memory_mb`]: the kernel's `VmHWM` is set to the current
/// resident memory (`/proc/self/clear_refs`, value 5), so that one phase of a benchmark reports
/// its own peak. Does nothing where there is no /proc.
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// [`resident_memory_mb`] of another process (a daemon the benchmark started).
pub fn resident_memory_mb_of(pid: u32) -> Option<(f64, f64)> {
    memory_mb_in(&format!("/proc/{pid}/status"))
}

/// The private (anonymous) resident memory of a process, in MiB: its heap and stacks, without
/// the pages of its binary and libraries, which the kernel maps in as code runs for the first
/// time (a daemon's first compaction touches ~40 MiB of code) and can drop at any time.
/// What grows when a process leaks.
pub fn anonymous_memory_mb_of(pid: u32) -> Option<f64> {
    status_field_mb(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "RssAnon:",
    )
}

fn memory_mb_in(status_file: &str) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(status_file).ok()?;
    Some((
        status_field_mb(&status, "VmHWM:")?,
        status_field_mb(&status, "VmRSS:")?,
    ))
}

/// A field of `/proc/PID/status` given in kB, in MiB.
fn status_field_mb(status: &str, name: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test that sets root aliases (they are the process's): a root no other test
    /// uses.
    #[test]
    fn root_aliases_store_paths_under_their_name_and_read_them_back_here() {
        let root = "/imgsim-alias-test/nas/photos";
        let aliases = vec![
            RootAlias::parse(&format!("nas={root}")).unwrap(),
            RootAlias::parse("deep=/imgsim-alias-test/nas/photos/2020").unwrap(),
        ];
        set_root_aliases(aliases.clone()).unwrap();
        set_root_aliases(aliases).unwrap();
        assert!(set_root_aliases(Vec::new()).is_err());

        let photo = Path::new("/imgsim-alias-test/nas/photos/2019/a b.jpg");
        assert_eq!(path_string(photo), "nas:/2019/a b.jpg");
        assert_eq!(path_of("nas:/2019/a b.jpg"), photo);
        // The longer root wins.
        let deep = Path::new("/imgsim-alias-test/nas/photos/2020/x.jpg");
        assert_eq!(path_string(deep), "deep:/x.jpg");
        assert_eq!(path_of("deep:/x.jpg"), deep);
        // A sibling that shares the prefix is not under the root.
        let beside = Path::new("/imgsim-alias-test/nas/photos2/a.jpg");
        assert_eq!(path_string(beside), "/imgsim-alias-test/nas/photos2/a.jpg");
        // An alias this machine does not have: the row as it is stored.
        assert_eq!(path_of("studio:/x.jpg"), Path::new("studio:/x.jpg"));
        assert_eq!(path_of("/home/a:/b.jpg"), Path::new("/home/a:/b.jpg"));

        for bad in ["nas", "=/x", "n a=/x", "nas=relative/not/here"] {
            assert!(RootAlias::parse(bad).is_err(), "{bad}");
        }
    }

    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn every_path_is_stored_without_loss_and_utf8_paths_as_they_are() {
        let name = |bytes: &[u8]| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
        assert_eq!(path_string(Path::new("/photos/été.jpg")), "/photos/été.jpg");
        let latin1 = name(b"/photos/\xe9t\xe9.jpg");
        let other = name(b"/photos/\xe9t\xe8.jpg");
        assert_ne!(path_string(&latin1), path_string(&other));
        assert_eq!(
            display_key(&path_string(&latin1)),
            "/photos/\u{fffd}t\u{fffd}.jpg"
        );
        // A real name holding an escape character is escaped in turn.
        let tricky = format!("/a/{}\u{10ff80}b", char::from_u32(0x10ffe9).unwrap());
        let mut cases = vec![
            latin1,
            other,
            name(tricky.as_bytes()),
            name(b"/\xff\xfe\x80"),
        ];
        cases.push(name(b"/ok/\xf4\x8f\xbf\xbf/\xf4\x8f"));
        for path in cases {
            let key = path_string(&path);
            assert_eq!(path_of(&key), path, "{key:?}");
            assert_eq!(path_string(&path_of(&key)), key);
        }
        assert_ne!(path_string(&name(tricky.as_bytes())), tricky);
    }

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
