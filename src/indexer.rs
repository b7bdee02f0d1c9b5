//! `imgsim index`: makes one model's table equal to the image files under some folders,
//! doing as little work as possible.
//!
//! - unchanged size and modification time: not read at all;
//! - changed: embedded again;
//! - gone: removed (only rows under the folders being indexed);
//! - moved or renamed (a new path whose content hash is that of a gone row): re-linked, the
//!   vector reused;
//! - identical copies (same hash as another row, or as another new file): embedded once.
//!
//! Writes go in batches (never one commit per file); new and moved rows are written before
//! gone rows are deleted, so a crash can leave an extra row (removed by the next run) but
//! never lose one. Rows are upserted by path, so a path never gets two rows; should a table
//! hold some anyway (written by another tool), the next pass keeps one.
//!
//! The same pass serves `imgsim index` (everything under the roots) and the watch daemon
//! (only the paths that file-system events named, see [`Scope`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::metadata::Meta;
use crate::progress::Progress;
use crate::scan::{walk_library, walk_paths, Found};
use crate::store::{FileState, ModelTable, Row};
use crate::util::{now_seconds, path_of, path_string};

/// Rows written per commit.
pub const WRITE_BATCH: usize = 512;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexSummary {
    /// New files (embedded, or copies of content already known).
    pub added: usize,
    /// Files whose size or modification time changed (embedded again).
    pub updated: usize,
    /// Files found under a new path with the content of a gone one (not embedded again).
    pub moved: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Files that could not be read or decoded (reported one by one).
    pub failed: usize,
    /// Of the added and updated files, how many went through the model.
    pub embedded: usize,
    /// Files left for a later pass (still being written).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferred: usize,
    /// Unchanged files whose rows had no metadata yet (a database from before imgsim kept
    /// it): read and written into their rows, vectors as they were (nothing embedded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub described: usize,
    /// The pass was stopped before the end (a signal); the next one completes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What one pass compares with the disk.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Everything under the roots (`imgsim index`, the daemon's reconcile).
    Roots,
    /// Only these paths under the roots, and what is under those that are folders (what
    /// file-system events named). Rows at or under them whose file is gone are removed.
    Paths(&'a [PathBuf]),
}

/// One pass: where to look and what to leave alone.
pub struct Pass<'a> {
    /// Canonical paths of the folders being indexed (only those present: rows under a root
    /// that is not listed are never touched).
    pub roots: &'a [PathBuf],
    pub exclude: &'a globset::GlobSet,
    /// Also take files of other names whose first bytes are an image (`--sniff`).
    pub sniff: bool,
    pub scope: Scope<'a>,
    /// Files found but left for a later pass (still being written): neither read nor removed.
    pub defer: &'a dyn Fn(&Found) -> bool,
    /// Set to end the pass early (a signal): rows embedded so far are written, nothing is
    /// removed, and the next pass finishes the work.
    pub stop: &'a AtomicBool,
    /// Only this share of the paths (`index --shard I/N`): files and rows of other shards are
    /// neither read nor removed.
    pub shard: Option<Shard>,
}

/// One of N shares of a library, by a hash of each path, so that N processes (on N machines)
/// can index one library into one table together, each file by exactly one of them. The
/// share of a path never changes; a shard whose process died is simply run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1 to `count`.
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the path (as rows store it) is in this shard.
    pub fn contains(&self, path: &str) -> bool {
        let hash = blake3::hash(path.as_bytes());
        let first = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
        first % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N`, 1 <= I <= N.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{text:?} is not a shard: write I/N, from 1/N to N/N (e.g. 2/3)");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Indexes the image files under `roots` (canonical paths) into `table`.
/// With `sniff`, files of other names whose first bytes are an image are indexed too.
pub fn index(
    table: &ModelTable<'_>,
    embedder: &Embedder,
    roots: &[PathBuf],
    exclude: &globset::GlobSet,
    sniff: bool,
    progress: &mut dyn Progress,
) -> Result<IndexSummary> {
    index_shard(table, embedder, roots, exclude, sniff, None, progress)
}

/// [`index`], of one shard of the files only (all of them with `None`).
pub fn index_shard(
    table: &ModelTable<'_>,
    embedder: &Embedder,
    roots: &[PathBuf],
    exclude: &globset::GlobSet,
    sniff: bool,
    shard: Option<Shard>,
    progress: &mut dyn Progress,
) -> Result<IndexSummary> {
    let pass = Pass {
        roots,
        exclude,
        sniff,
        scope: Scope::Roots,
        defer: &|_| false,
        stop: &AtomicBool::new(false),
        shard,
    };
    sync(table, embedder, &pass, progress)
}

/// Makes the rows of `table` in the pass's scope equal to the files on disk.
pub fn sync(
    table: &ModelTable<'_>,
    embedder: &Embedder,
    pass: &Pass<'_>,
    progress: &mut dyn Progress,
) -> Result<IndexSummary> {
    let roots = pass.roots;
    let mut summary = IndexSummary::default();
    progress.start("scanning", 0);
    let (mut found, walk_errors) = match pass.scope {
        Scope::Roots => walk_library(roots, pass.exclude, pass.sniff),
        Scope::Paths(paths) => walk_paths(roots, paths, pass.exclude, pass.sniff),
    };
    let in_shard = |key: &str| pass.shard.is_none_or(|shard| shard.contains(key));
    found.retain(|f| in_shard(&path_string(&f.path)));
    let scope: &[PathBuf] = match pass.scope {
        Scope::Roots => roots,
        Scope::Paths(paths) => paths,
    };
    for e in &walk_errors {
        progress.file_failed(e);
    }
    summary.failed += walk_errors.len();
    let existing = table.files()?;
    if table.count()? > existing.len() {
        table.repair_duplicates()?;
    }

    let found_paths: HashSet<String> = found.iter().map(|f| path_string(&f.path)).collect();
    let (deferred, found): (Vec<Found>, Vec<Found>) = found.into_iter().partition(pass.defer);
    summary.deferred = deferred.len();
    // A folder that could not be read is not a folder whose files are gone.
    let unreadable: Vec<&Path> = walk_errors
        .iter()
        .filter_map(|e| match e {
            Error::Io { path, .. } => Some(path.as_path()),
            _ => None,
        })
        .collect();
    // Nor is a root that is not there (an unmounted drive, a folder renamed away): a walk of
    // it finds nothing, which must not read as "every file was deleted".
    let missing_roots: Vec<&PathBuf> = roots.iter().filter(|r| !r.is_dir()).collect();
    let gone: Vec<(&String, &FileState)> = existing
        .iter()
        .filter(|(key, _)| {
            let path = path_of(key);
            !found_paths.contains(key.as_str())
                && in_shard(key)
                && roots.iter().any(|r| path.starts_with(r))
                && scope.iter().any(|s| path.starts_with(s))
                && !unreadable.iter().any(|u| path.starts_with(u))
                && !missing_roots.iter().any(|m| path.starts_with(m))
        })
        .collect();

    // New and changed files need their content hash and metadata; unchanged ones are not
    // read (but for the metadata of rows written before imgsim kept it).
    let mut to_hash: Vec<(&Found, bool)> = Vec::new();
    let mut to_describe: Vec<&Found> = Vec::new();
    for f in &found {
        match existing.get(&path_string(&f.path)) {
            Some(state) if state.size == f.size && state.mtime_ns == f.mtime_ns => {
                summary.unchanged += 1;
                if !state.described {
                    to_describe.push(f);
                }
            }
            Some(_) => to_hash.push((f, true)),
            None => to_hash.push((f, false)),
        }
    }
    describe_unchanged(table, &to_describe, &mut summary, progress)?;
    progress.start("hashing", to_hash.len());
    let hashed: Vec<(&Found, bool, std::io::Result<String>)> = to_hash
        .par_iter()
        .map(|&(f, changed)| (f, changed, hash_file(&f.path)))
        .collect();
    progress.advance(hashed.len());
    // Read beside the hashing (the file is in the page cache by then).
    let metas: HashMap<&Path, Meta> = hashed
        .par_iter()
        .filter(|(_, _, hash)| hash.is_ok())
        .map(|(f, _, _)| (f.path.as_path(), describe_found(f)))
        .collect();
    let meta_of = |f: &Found| metas.get(f.path.as_path()).cloned().unwrap_or_default();

    let mut gone_by_hash: HashMap<&str, Vec<&String>> = HashMap::new();
    for (path, state) in &gone {
        gone_by_hash
            .entry(state.hash.as_str())
            .or_default()
            .push(path);
    }
    let known_hashes: HashSet<&str> = existing.values().map(|s| s.hash.as_str()).collect();

    // Decide per file: move, copy of known content, or embedding (one per new hash).
    let mut moves: Vec<(&Found, String, String)> = Vec::new(); // (file, hash, old path)
    let mut copies: Vec<(&Found, String)> = Vec::new();
    let mut to_embed: Vec<(&Found, String)> = Vec::new();
    let mut later_copies: HashMap<String, Vec<&Found>> = HashMap::new();
    let mut moved_from: HashSet<String> = HashSet::new();
    // Files deleted between the walk and their reading: gone, not failed.
    let mut vanished: Vec<String> = Vec::new();
    for (f, changed, hash) in hashed {
        let hash = match hash {
            Ok(h) => h,
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
                if changed {
                    vanished.push(path_string(&f.path));
                }
                continue;
            }
            Err(source) => {
                summary.failed += 1;
                progress.file_failed(&Error::Io {
                    path: f.path.clone(),
                    cause: source,
                });
                continue;
            }
        };
        if changed {
            summary.updated += 1;
            to_embed.push((f, hash));
            continue;
        }
        summary.added += 1;
        if let Some(old) = gone_by_hash.get_mut(hash.as_str()).and_then(Vec::pop) {
            summary.added -= 1;
            summary.moved += 1;
            moved_from.insert(old.clone());
            moves.push((f, hash, old.clone()));
        } else if known_hashes.contains(hash.as_str()) {
            copies.push((f, hash));
        } else if let Some(copies_of_new) = later_copies.get_mut(&hash) {
            copies_of_new.push(f);
        } else {
            later_copies.insert(hash.clone(), Vec::new());
            to_embed.push((f, hash));
        }
    }

    // Moves and copies of known content reuse stored vectors.
    let reused_hashes: Vec<&str> = moves
        .iter()
        .map(|(_, h, _)| h.as_str())
        .chain(copies.iter().map(|(_, h)| h.as_str()))
        .collect();
    let stored = table.rows_by_hash(&reused_hashes)?;
    let now = now_seconds();
    let mut pending: Vec<Row> = Vec::new();
    for (f, hash, old) in &moves {
        let from = stored.get(hash).ok_or_else(|| missing_row(table, old))?;
        pending.push(row_for(f, from.clone(), now, meta_of(f)));
    }
    for (f, hash) in &copies {
        let from = stored.get(hash).ok_or_else(|| missing_row(table, hash))?;
        // A copy is another file: it does not inherit the original's tags.
        pending.push(Row {
            tags: Vec::new(),
            ..row_for(f, from.clone(), now, meta_of(f))
        });
    }
    flush_if_full(table, &mut pending, 0)?;

    // Embed the rest, writing in batches as results come. A file deleted before it was read
    // whose content is still on disk under its copies: the first copy is embedded in another
    // round, and the others copy it.
    progress.start("embedding", to_embed.len());
    let mut round = to_embed;
    while !round.is_empty() {
        let paths: Vec<PathBuf> = round.iter().map(|(f, _)| f.path.clone()).collect();
        let mut write_error = None;
        let mut settled = 0;
        let mut next_round: Vec<(&Found, String)> = Vec::new();
        embedder.embed_files_until(&paths, pass.stop, |i, result| {
            settled += 1;
            progress.advance(1);
            let (f, hash) = &round[i];
            let key = path_string(&f.path);
            // New files embedded are the first of their content; changed ones own no copies.
            let leader = !existing.contains_key(&key);
            match result {
                Ok(vector) => {
                    summary.embedded += 1;
                    let (width, height) = crate::decode::dimensions(&f.path).unwrap_or((0, 0));
                    let row = Row {
                        path: key,
                        size: f.size,
                        mtime_ns: f.mtime_ns,
                        hash: hash.clone(),
                        width,
                        height,
                        indexed_at: now,
                        tags: Vec::new(),
                        vector,
                        meta: meta_of(f),
                    };
                    if leader {
                        for copy in later_copies.get(hash).into_iter().flatten() {
                            pending.push(row_for(copy, row.clone(), now, meta_of(copy)));
                        }
                    }
                    pending.push(row);
                    if write_error.is_none() {
                        if let Err(e) = flush_if_full(table, &mut pending, WRITE_BATCH) {
                            write_error = Some(e);
                        }
                    }
                }
                Err(e) => {
                    let gone = is_vanished(&e);
                    let copies = if leader {
                        later_copies.remove(hash).unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    if !leader {
                        summary.updated -= 1;
                        if gone {
                            vanished.push(key);
                        }
                    } else {
                        summary.added -= 1;
                    }
                    if gone {
                        // Gone, not failed; its copies are still to embed.
                        if let Some((first, rest)) = copies.split_first() {
                            later_copies.insert(hash.clone(), rest.to_vec());
                            next_round.push((*first, hash.clone()));
                        }
                    } else {
                        // Copies of a file that cannot be decoded cannot be either.
                        summary.failed += 1 + copies.len();
                        summary.added -= copies.len();
                        progress.file_failed(&e);
                    }
                }
            }
        })?;
        if let Some(e) = write_error {
            return Err(e);
        }
        flush_if_full(table, &mut pending, 0)?;
        if settled < round.len() {
            // Stopped: what was not embedded is neither added nor updated; the next pass will.
            summary.stopped = true;
            for (f, hash) in round[settled..].iter().chain(&next_round) {
                if existing.contains_key(&path_string(&f.path)) {
                    summary.updated -= 1;
                } else {
                    summary.added -= 1 + later_copies.get(hash).map_or(0, Vec::len);
                }
            }
            return Ok(summary);
        }
        round = next_round;
    }

    // Last: rows whose file is gone (moved ones were re-linked above).
    let removed: Vec<&str> = gone
        .iter()
        .map(|(p, _)| p.as_str())
        .chain(vanished.iter().map(String::as_str))
        .collect();
    summary.removed = removed.len() - moved_from.len();
    table.delete(&removed)?;

    // RAW + rendered files of one shot, where this pass changed either.
    let touched: Vec<PathBuf> = to_hash
        .iter()
        .map(|(f, _)| f.path.clone())
        .chain(to_describe.iter().map(|f| f.path.clone()))
        .chain(removed.iter().map(|p| path_of(p)))
        .collect();
    link_pairs(table, &touched)?;
    Ok(summary)
}

/// Links the rows of RAW + rendered files of one shot (see `pairs`) in the folders of
/// `touched` (files this pass added, changed, moved, read or removed), and unlinks rows whose
/// partner is gone. Only where a RAW file is involved (by name, or on disk beside a touched
/// file): a library without RAW files never pays for it.
fn link_pairs(table: &ModelTable<'_>, touched: &[PathBuf]) -> Result<()> {
    let mut folders: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    for path in touched {
        if let (Some(folder), Some(stem)) = (path.parent(), path.file_stem()) {
            folders
                .entry(folder.to_path_buf())
                .or_default()
                .insert(stem.to_string_lossy().to_lowercase());
        }
    }
    let involves_raw = |folder: &Path, stems: &HashSet<String>| {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return true; // gone: its rows' partners may need unlinking
        };
        entries.flatten().any(|e| {
            let path = e.path();
            crate::scan::is_raw_extension(&path)
                && path
                    .file_stem()
                    .is_some_and(|s| stems.contains(&s.to_string_lossy().to_lowercase()))
        })
    };
    folders.retain(|folder, stems| {
        touched
            .iter()
            .any(|p| p.parent() == Some(folder.as_path()) && crate::scan::is_raw_extension(p))
            || involves_raw(folder, stems)
    });
    if folders.is_empty() {
        return Ok(());
    }
    let rows = table.filter_rows()?;
    let mut in_folder: HashMap<&Path, Vec<&crate::store::FilterRow>> = HashMap::new();
    let paths: Vec<PathBuf> = rows.iter().map(|r| path_of(&r.path)).collect();
    for (row, path) in rows.iter().zip(&paths) {
        if let Some(folder) = path.parent() {
            if folders.contains_key(folder) {
                in_folder.entry(folder).or_default().push(row);
            }
        }
    }
    let mut changed: HashMap<String, Option<String>> = HashMap::new();
    for members in in_folder.values() {
        let entries: Vec<crate::pairs::Entry<'_>> = members
            .iter()
            .map(|r| crate::pairs::Entry {
                path: &r.path,
                meta: &r.meta,
            })
            .collect();
        let pairs = crate::pairs::pairs_in_folder(&entries);
        for row in members {
            let want = pairs.get(&row.path).cloned();
            if want != row.meta.pair {
                changed.insert(row.path.clone(), want);
            }
        }
    }
    let keys: Vec<&str> = changed.keys().map(String::as_str).collect();
    for chunk in keys.chunks(WRITE_BATCH) {
        let mut rows = table.rows_of_paths(chunk)?;
        for row in &mut rows {
            if let Some(pair) = changed.get(&row.path) {
                row.meta.pair = pair.clone();
            }
        }
        table.upsert(&rows)?;
    }
    Ok(())
}

/// Whether a file's error says it was deleted after the walk found it.
fn is_vanished(error: &Error) -> bool {
    match error {
        Error::Decode {
            error: crate::error::DecodeError::Io(e),
            ..
        }
        | Error::Io { cause: e, .. } => e.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// `content`'s row (hash, size in pixels, vector, tags) for the file `f`, with `f`'s own
/// metadata (a copy's file time is its own).
fn row_for(f: &Found, content: Row, now: i64, meta: Meta) -> Row {
    Row {
        path: path_string(&f.path),
        size: f.size,
        mtime_ns: f.mtime_ns,
        indexed_at: now,
        meta,
        ..content
    }
}

/// The metadata of a file found by the walk; a file in no known format (it will fail to
/// decode and be reported then) gets its file time alone.
fn describe_found(f: &Found) -> Meta {
    crate::metadata::describe(&f.path, f.mtime_ns).unwrap_or_else(|| Meta {
        taken: Some(crate::metadata::file_time(f.mtime_ns)),
        ..Meta::default()
    })
}

/// Reads the metadata of unchanged files whose rows have none (written before imgsim kept
/// it) and writes it into their rows: the vectors are copied as they are, nothing is
/// embedded. In batches, each one commit.
fn describe_unchanged(
    table: &ModelTable<'_>,
    files: &[&Found],
    summary: &mut IndexSummary,
    progress: &mut dyn Progress,
) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    progress.start("reading metadata", files.len());
    for chunk in files.chunks(WRITE_BATCH) {
        let metas: HashMap<String, Meta> = chunk
            .par_iter()
            .map(|f| (path_string(&f.path), describe_found(f)))
            .collect();
        let keys: Vec<&str> = metas.keys().map(String::as_str).collect();
        let mut rows = table.rows_of_paths(&keys)?;
        for row in &mut rows {
            if let Some(meta) = metas.get(&row.path) {
                row.meta = meta.clone();
            }
        }
        table.upsert(&rows)?;
        summary.described += rows.len();
        progress.advance(chunk.len());
    }
    Ok(())
}

fn flush_if_full(table: &ModelTable<'_>, pending: &mut Vec<Row>, at_least: usize) -> Result<()> {
    if !pending.is_empty() && pending.len() >= at_least {
        table.upsert(pending)?;
        pending.clear();
    }
    Ok(())
}

fn missing_row(table: &ModelTable<'_>, what: &str) -> Error {
    Error::Store {
        path: PathBuf::from(&table.info.table),
        reason: format!("the row of {what} vanished while indexing (another writer?)"),
    }
}

/// A file's content hash as the index stores it (blake3, hex).
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Model, WeightsSource};
    use crate::progress::Quiet;
    use crate::store::Store;

    /// An event pass over a root that has just vanished (renamed away, unmounted) finds no
    /// files there; its rows must stay.
    /// A folder of photos in `dir`, the weight-free phash model, and a database beside them.
    fn phash_library(dir: &Path) -> (PathBuf, Embedder, Store) {
        let root = dir.join("photos");
        std::fs::create_dir_all(&root).unwrap();
        let device = candle_core::Device::Cpu;
        let embedder = Embedder::new(
            Model::load(&WeightsSource::Phash, None, &device).unwrap(),
            device,
        );
        (root, embedder, Store::open(&dir.join("db"), true).unwrap())
    }

    /// A small gradient picture `name` in `root`; `shade` makes it differ from the others.
    fn save_png(root: &Path, name: &str, shade: u8) {
        image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, shade]))
            .save(root.join(name))
            .unwrap();
    }

    #[test]
    fn a_pass_over_a_vanished_root_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (root, embedder, store) = phash_library(dir.path());
        save_png(&root, "a.png", 90);
        let table = store.table_or_create("phash", "phash@test", 64).unwrap();
        let none = globset::GlobSet::empty();
        let roots = [root.clone()];
        let first = index(&table, &embedder, &roots, &none, false, &mut Quiet).unwrap();
        assert_eq!(first.added, 1);

        std::fs::rename(&root, dir.path().join("away")).unwrap();
        let pass = Pass {
            roots: &roots,
            exclude: &none,
            sniff: false,
            scope: Scope::Paths(&roots),
            defer: &|_| false,
            stop: &AtomicBool::new(false),
            shard: None,
        };
        let summary = sync(&table, &embedder, &pass, &mut Quiet).unwrap();
        assert_eq!(summary.removed, 0);
        assert_eq!(table.count().unwrap(), 1);
        // A full pass does not remove them either.
        let again = index(&table, &embedder, &roots, &none, false, &mut Quiet).unwrap();
        assert_eq!((again.removed, table.count().unwrap()), (0, 1));
    }

    #[test]
    fn shards_are_read_as_i_of_n_and_share_out_every_path_once() {
        let shard = |text: &str| text.parse::<Shard>();
        assert_eq!(shard("2/3"), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "-1/3"] {
            assert!(shard(bad).is_err(), "{bad}");
        }
        let three: Vec<Shard> = (1..=3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut sizes = [0; 3];
        for n in 0..3000 {
            let path = format!("/photos/{n}.jpg");
            let owners: Vec<usize> = (0..3).filter(|&i| three[i].contains(&path)).collect();
            assert_eq!(owners.len(), 1, "{path}");
            sizes[owners[0]] += 1;
        }
        // By a hash: about a third each.
        assert!(sizes.iter().all(|&n| (850..1150).contains(&n)), "{sizes:?}");
    }

    /// Three shards fill one table with every file once, and a shard's pass neither reads
    /// nor removes the rows of the others.
    #[test]
    fn shards_together_index_every_file_once_and_leave_each_other_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (root, embedder, store) = phash_library(dir.path());
        for i in 0..12u8 {
            save_png(&root, &format!("{i}.png"), i * 20);
        }
        let table = store.table_or_create("phash", "phash@test", 64).unwrap();
        let none = globset::GlobSet::empty();
        let roots = [root.clone()];
        // A pass of shard `index` of 3.
        let shard = |index| {
            let shard = Some(Shard { index, count: 3 });
            index_shard(&table, &embedder, &roots, &none, false, shard, &mut Quiet).unwrap()
        };
        let mut added = 0;
        for i in 1..=3 {
            let summary = shard(i);
            assert_eq!((summary.removed, summary.unchanged), (0, 0));
            added += summary.added;
        }
        assert_eq!((added, table.count().unwrap()), (12, 12));
        let again = shard(2);
        assert_eq!((again.added, again.removed), (0, 0));
        assert!(again.unchanged < 12);
        // A file of shard 1 deleted: shard 2 leaves its row, shard 1 removes it.
        let victim = (0..12)
            .map(|i| root.join(format!("{i}.png")))
            .find(|p| Shard { index: 1, count: 3 }.contains(&path_string(p)))
            .unwrap();
        std::fs::remove_file(&victim).unwrap();
        let two = shard(2);
        assert_eq!((two.removed, table.count().unwrap()), (0, 12));
        let one = shard(1);
        assert_eq!((one.removed, table.count().unwrap()), (1, 11));
    }

    /// Deletes a file when a step of the pass starts, as a user might at that moment.
    struct DeleteAt {
        step: &'static str,
        file: PathBuf,
        failures: usize,
    }
    impl Progress for DeleteAt {
        fn start(&mut self, label: &str, _total: usize) {
            if label == self.step {
                std::fs::remove_file(&self.file).unwrap();
            }
        }
        fn file_failed(&mut self, _error: &Error) {
            self.failures += 1;
        }
    }

    /// A file deleted after the walk found it (before its hash is read, or before it is
    /// decoded) is gone, not failed: no error, no row, whether it was new or changed.
    /// (The soak found `index` exiting 2 on such files beside a busy library.)
    #[test]
    fn files_deleted_during_a_pass_are_gone_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let (root, embedder, store) = phash_library(dir.path());
        let save = |name: &str, shade: u8| save_png(&root, name, shade);
        let table = store.table_or_create("phash", "phash@test", 64).unwrap();
        let none = globset::GlobSet::empty();
        let roots = [root.clone()];
        save("keep.png", 10);
        save("old.png", 20);
        index(&table, &embedder, &roots, &none, false, &mut Quiet).unwrap();
        // `index`, deleting `name` when `step` starts; checks that nothing failed.
        let index_deleting = |step: &'static str, name: &str| {
            let mut progress = DeleteAt {
                step,
                file: root.join(name),
                failures: 0,
            };
            let summary = index(&table, &embedder, &roots, &none, false, &mut progress).unwrap();
            assert_eq!(
                (summary.failed, progress.failures),
                (0, 0),
                "{step}: {summary:?}"
            );
            (summary, table.paths().unwrap())
        };

        for (step, name) in [("hashing", "new-1.png"), ("embedding", "new-2.png")] {
            save(name, 30);
            // An indexed file changed, then deleted: its old row must go too.
            std::thread::sleep(std::time::Duration::from_millis(20));
            save("old.png", 40);
            let (_, paths) = index_deleting(step, name);
            assert!(
                !paths.iter().any(|p| p.ends_with(name)),
                "{step}: {paths:?}"
            );
            assert_eq!(table.count().unwrap(), 2, "{step}: {paths:?}");
        }
        // The first of two identical new files deleted before it is read: the copy is
        // embedded in its place.
        save("twin-a.png", 60);
        std::fs::copy(root.join("twin-a.png"), root.join("twin-b.png")).unwrap();
        let (summary, paths) = index_deleting("embedding", "twin-a.png");
        assert_eq!((summary.added, summary.embedded), (1, 1), "{summary:?}");
        assert!(paths.iter().any(|p| p.ends_with("twin-b.png")), "{paths:?}");
        assert_eq!(paths.len(), 3, "{paths:?}");
        std::fs::remove_file(root.join("twin-b.png")).unwrap();
        index(&table, &embedder, &roots, &none, false, &mut Quiet).unwrap();

        // Deleted after its change was seen: the changed file's row goes with it.
        save("old.png", 50);
        let (_, paths) = index_deleting("embedding", "old.png");
        assert_eq!(paths.len(), 1, "{paths:?}");
        assert!(paths[0].ends_with("keep.png"), "{paths:?}");
    }
}
