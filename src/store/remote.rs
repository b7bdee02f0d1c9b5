//! A database on object storage (`--db s3://bucket/prefix`): its tables live there, written and
//! read by any machine, through LanceDB's own object-store support and commit protocol
//! (a commit is a conditional write: two machines never both write the same version; the
//! loser rebases and retries).
//!
//! What cannot live on object storage stays on each machine, in a local folder keyed by the
//! address (`$XDG_CACHE_HOME/imgsim/remote/<address>-<hash>`): the locks (one writer and one
//! daemon per machine), the daemon's socket, the filter index behind `--where` (derived from
//! the table and rebuilt when it lags, as for a local database) and the decisions of `dupes`.
//! That folder holds `remote.json`, the address, so that the rest of imgsim opens it like any
//! database folder and [`super::Store::open`] connects to the address instead.
//!
//! Which table holds which model is read from the tables themselves (their schema's
//! metadata), not from a `models.json` beside them: two machines that add a model at once
//! would overwrite each other's file; creating a table is a commit like any other.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const POINTER: &str = "remote.json";

/// The schemes of object stores, as LanceDB names them.
const SCHEMES: &[&str] = &["s3", "s3+ddb", "gs", "az", "abfss", "memory"];

/// Whether a `--db` value is the address of a database on object storage (`s3://...`), not
/// a folder. A name with another scheme (`http://...`) is refused by [`local_folder`].
pub fn is_address(value: &str) -> bool {
    value
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.is_empty() && scheme.chars().all(is_scheme_char))
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'
}

/// The local folder of the database at `address`, created with its pointer on first use.
pub fn local_folder(address: &str) -> Result<PathBuf> {
    let address = address.trim_end_matches('/');
    let (scheme, rest) = address.split_once("://").unwrap_or(("", address));
    let bad = |reason: &str| Error::Store {
        path: PathBuf::from(address),
        reason: reason.to_string(),
    };
    if !SCHEMES.contains(&scheme) {
        return Err(bad(&format!(
            "not a database address imgsim knows (object stores: {}://bucket/prefix)",
            SCHEMES.join("://, ")
        )));
    }
    if rest.split('/').next().unwrap_or("").is_empty() {
        return Err(bad("no bucket named: write it as s3://bucket/prefix"));
    }
    let cache = std::env::var_os("IMGSIM_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("imgsim")))
        .ok_or_else(|| bad("no cache folder is known here (set IMGSIM_CACHE)"))?;
    let folder = cache
        .join("remote")
        .join(super::readable_name(&format!("{scheme}-{rest}"), address));
    std::fs::create_dir_all(&folder).map_err(|e| Error::Store {
        path: folder.clone(),
        reason: e.to_string(),
    })?;
    let pointer = folder.join(POINTER);
    if read_pointer(&folder).as_deref() != Some(address) {
        let text = serde_json::json!({ "address": address }).to_string();
        crate::util::write_atomic(&pointer, text.as_bytes()).map_err(|e| Error::Store {
            path: pointer.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(folder)
}

/// The address a local folder stands for, if it is a remote database's folder.
pub fn read_pointer(folder: &Path) -> Option<String> {
    let text = std::fs::read_to_string(folder.join(POINTER)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["address"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_from_folders() {
        assert!(is_address("s3://bucket/prefix"));
        assert!(is_address("s3+ddb://bucket/prefix?ddbTableName=t"));
        assert!(is_address("gs://b"));
        assert!(!is_address("/home/me/db"));
        assert!(!is_address("db"));
        assert!(!is_address("./odd://name"));
        assert!(!is_address("://x"));
    }

    #[test]
    fn each_address_has_its_own_folder_that_points_back_at_it() {
        let cache = tempfile::tempdir().unwrap();
        // SAFETY: this is the only test of the crate that reads or sets IMGSIM_CACHE.
        unsafe { std::env::set_var("IMGSIM_CACHE", cache.path()) };
        let a = local_folder("s3://photos/library").unwrap();
        let b = local_folder("s3://photos/library2").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(cache.path()));
        assert_eq!(local_folder("s3://photos/library/").unwrap(), a);
        assert_eq!(read_pointer(&a).as_deref(), Some("s3://photos/library"));
        assert_eq!(read_pointer(cache.path()), None);
        let err = local_folder("http://example.com/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a database address"), "{err}");
        let err = local_folder("s3:///prefix").unwrap_err().to_string();
        assert!(err.contains("no bucket"), "{err}");
    }
}
