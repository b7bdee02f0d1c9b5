//! Damaged data files of a table: found by name, and dropped on request (`imgsim repair`).
//!
//! Lance never rewrites a data file, so a damaged one comes from outside: a disk that lost
//! blocks, a copy or sync tool cut half-way, a hand that truncated it. Lance then fails every
//! read of the table with an error that names no file. imgsim checks the files the table's
//! current version names (missing, of another size than Lance recorded, or without the Lance
//! footer: metadata and 8 bytes a file, cheap enough to run whenever a read fails) so that the
//! error names them, and `repair` drops the fragments that hold them: a new table version in
//! which every other row is kept. The dropped rows' files are still on disk; the next
//! `imgsim index` embeds them again (their tags are lost).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use lance::dataset::transaction::{Operation, Transaction};
use lance::dataset::{CommitBuilder, Dataset};

use super::table::ModelTable;
use crate::error::{Error, Result};

/// A data file the table cannot be read through.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedFile {
    pub path: PathBuf,
    pub reason: String,
    /// The fragment (group of rows) the file belongs to, and how many live rows it held.
    pub fragment: u64,
    pub rows: usize,
}

/// A Lance file ends in its footer's magic.
const MAGIC: &[u8; 4] = b"LANC";

/// The rule for one data file, apart from the file system: `recorded` is the size Lance wrote
/// into the manifest (if it did), `actual` the size on disk, `tail` its last 4 bytes.
pub fn judge_file(recorded: Option<u64>, actual: u64, tail: &[u8]) -> Option<String> {
    match recorded {
        Some(recorded) if actual < recorded => {
            Some(format!("truncated ({actual} of {recorded} bytes)"))
        }
        Some(recorded) if actual > recorded => {
            Some(format!("{actual} bytes where Lance wrote {recorded}"))
        }
        _ if tail != MAGIC => Some("not a whole Lance file (its footer is missing)".into()),
        _ => None,
    }
}

fn check_file(path: &Path, recorded: Option<u64>) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some("missing".into()),
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    let actual = match file.metadata() {
        Ok(meta) => meta.len(),
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    let mut tail = [0u8; 4];
    let read =
        actual >= 4 && file.seek(SeekFrom::End(-4)).is_ok() && file.read_exact(&mut tail).is_ok();
    judge_file(recorded, actual, if read { &tail } else { &[] })
}

impl ModelTable<'_> {
    fn dataset(&self) -> Result<Arc<Dataset>> {
        let wrapper = self.table.dataset().ok_or_else(|| Error::Store {
            path: self.store.dir().to_path_buf(),
            reason: "not a local table".into(),
        })?;
        self.store.block_on(wrapper.get())
    }

    /// The table's folder on disk.
    pub fn folder(&self) -> PathBuf {
        self.store.dir().join(format!("{}.lance", self.info.table))
    }

    /// The data files of the current version that are missing, cut short or not whole Lance
    /// files (cheap: metadata and 8 bytes a file).
    /// On object storage there are no local files to check (an object is written whole or
    /// not at all): none.
    pub fn damaged_files(&self) -> Result<Vec<DamagedFile>> {
        if self.store.is_remote() {
            return Ok(Vec::new());
        }
        let dataset = self.dataset()?;
        let data = self.folder().join("data");
        let mut damaged = Vec::new();
        for fragment in dataset.get_fragments() {
            let meta = fragment.metadata();
            let rows = live_rows(meta);
            for file in meta.files.iter().filter(|f| f.base_id.is_none()) {
                let path = data.join(file.path.trim_start_matches("data/"));
                let recorded = file.file_size_bytes.get().map(u64::from);
                if let Some(reason) = check_file(&path, recorded) {
                    damaged.push(DamagedFile {
                        path,
                        reason,
                        fragment: meta.id,
                        rows,
                    });
                }
            }
        }
        Ok(damaged)
    }

    /// [`Self::damaged_files`], then every other fragment read whole (finds damage inside a
    /// file too). Reads the whole table: for `imgsim repair`, not for every command.
    pub fn check_thoroughly(&self) -> Result<Vec<DamagedFile>> {
        let mut damaged = self.damaged_files()?;
        let dataset = self.dataset()?;
        for fragment in dataset.get_fragments() {
            let id = fragment.id() as u64;
            if damaged.iter().any(|d| d.fragment == id) {
                continue;
            }
            let read: lance::Result<usize> = self.store.runtime().block_on(async {
                let stream = fragment.scan().try_into_stream().await?;
                stream
                    .try_fold(0, |n, batch| async move { Ok(n + batch.num_rows()) })
                    .await
            });
            if let Err(e) = read {
                let meta = fragment.metadata();
                let file = meta
                    .files
                    .first()
                    .map(|f| f.path.clone())
                    .unwrap_or_default();
                damaged.push(DamagedFile {
                    path: self.folder().join("data").join(file),
                    reason: format!("cannot be read: {e}"),
                    fragment: id,
                    rows: live_rows(meta),
                });
            }
        }
        Ok(damaged)
    }

    /// Drops the fragments that hold damaged files, keeping every other row; returns how many
    /// rows were dropped. The version before stays in the table's history (Lance's time
    /// travel) until `imgsim optimize` cleans old versions up.
    pub fn drop_damaged(&self, damaged: &[DamagedFile]) -> Result<usize> {
        let mut ids: Vec<u64> = damaged.iter().map(|d| d.fragment).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(0);
        }
        let rows = ids
            .iter()
            .map(|id| {
                damaged
                    .iter()
                    .find(|d| d.fragment == *id)
                    .map_or(0, |d| d.rows)
            })
            .sum();
        let dataset = self.dataset()?;
        let operation = Operation::Delete {
            updated_fragments: Vec::new(),
            deleted_fragment_ids: ids,
            predicate: "imgsim repair: fragments with damaged data files".into(),
        };
        let transaction = Transaction::new(dataset.manifest().version, operation, None);
        self.store
            .runtime()
            .block_on(CommitBuilder::new(dataset).execute(transaction))
            .map_err(|e| Error::Store {
                path: self.folder(),
                reason: e.to_string(),
            })?;
        self.store.block_on(self.table.checkout_latest())?;
        Ok(rows)
    }

    /// The error for a read that failed: names the damaged files when there are some.
    pub(super) fn explain(&self, error: Error) -> Error {
        match self.damaged_files() {
            Ok(files) if !files.is_empty() => Error::TableDamaged {
                model: self.info.model.clone(),
                files: files
                    .iter()
                    .map(|f| format!("{}: {}", f.path.display(), f.reason))
                    .collect(),
            },
            _ => error,
        }
    }
}

fn live_rows(meta: &lance::table::format::Fragment) -> usize {
    let deleted = meta
        .deletion_file
        .as_ref()
        .and_then(|d| d.num_deleted_rows)
        .unwrap_or(0);
    meta.physical_rows.unwrap_or(0).saturating_sub(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_file_is_whole_only_at_its_recorded_size_with_its_footer() {
        assert_eq!(judge_file(Some(3799), 3799, b"LANC"), None);
        assert_eq!(judge_file(None, 3799, b"LANC"), None);
        assert_eq!(
            judge_file(Some(3799), 100, b"\0\0\0\0").as_deref(),
            Some("truncated (100 of 3799 bytes)")
        );
        assert!(judge_file(Some(10), 12, b"LANC").is_some());
        assert!(judge_file(None, 3799, b"LAN\0").is_some());
        assert!(judge_file(None, 2, b"").is_some());
    }
}
