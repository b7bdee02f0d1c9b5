//! Acting on a report, and undoing it: `Apply::new(&store, &report, action).execute(..)` moves
//! each group's extra images aside, to the trash, or replaces exact copies by hard links to
//! the keeper; `Undo::new(&store).execute(..)` puts back the last plan applied.
//!
//! The rules that keep a user's photos safe:
//! - Nothing is touched that is not what the report saw: before a file is changed, its bytes
//!   are hashed again and must equal the indexed content, and so must its keeper's (a group
//!   whose keeper vanished or changed keeps all its images). A file that vanished, changed or
//!   became something other than a regular file is reported and skipped.
//! - Nothing is overwritten: a move never replaces a file at its destination, an undo never
//!   replaces a file that took the original place.
//! - Every change is in the journal (`journal.rs`) before it is made, with the file's mode,
//!   time and index rows, so that an undo restores the bytes, the time and the rows.
//! - The index follows: a moved file's rows move with it (no embedding again), a trashed
//!   file's rows go, a hard link's rows stay; an undo writes the rows back as they were.
//!
//! Moves within a file system are a hard link then an unlink (never a replacing rename);
//! across file systems a copy (fsynced, with mode and time) then an unlink.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use super::journal::{Action, Entry, Journal, Step, TableRow, Writer};
use super::{Kind, Report};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::{Row, Store};
use crate::util::{path_of, path_string};

/// What became of one image of a plan (or of an undo).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepOutcome {
    pub path: String,
    /// Where a move put it (or, for an undo, where it was).
    pub to: Option<String>,
    pub keeper: String,
    pub bytes: u64,
    /// `None`: done; `Some(reason)`: skipped, the file untouched.
    pub skipped: Option<String>,
}

/// What a plan did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The journal written (none when there was nothing to do).
    pub journal: Option<PathBuf>,
    pub steps: Vec<StepOutcome>,
}

impl Applied {
    pub fn done(&self) -> impl Iterator<Item = &StepOutcome> {
        self.steps.iter().filter(|s| s.skipped.is_none())
    }
}

/// Applies a report's plan: `Apply::new(&store, &report, Action::Trash).execute(..)`.
pub struct Apply<'a> {
    store: &'a Store,
    report: &'a Report,
    action: Action,
    model: String,
}

/// One image to act on, as the report saw it.
struct Target {
    path: String,
    hash: String,
    size: u64,
    keeper: String,
    keeper_hash: String,
    /// Why it is not acted on, known before any file is read (a hard link for a near copy).
    excluded: Option<String>,
}

impl<'a> Apply<'a> {
    pub fn new(store: &'a Store, report: &'a Report, action: Action) -> Self {
        Self {
            store,
            report,
            action,
            model: String::new(),
        }
    }

    /// The model whose report this is (recorded in the journal).
    pub fn model(mut self, model: &str) -> Self {
        self.model = model.to_string();
        self
    }

    /// The changes the plan would make, made nowhere: each image with its destination (for a
    /// move) or the reason it would be left alone.
    pub fn preview(&self) -> Vec<StepOutcome> {
        self.targets()
            .into_iter()
            .map(|t| StepOutcome {
                to: self.destination(&t.path).map(|p| path_string(&p)),
                path: t.path,
                keeper: t.keeper,
                bytes: t.size,
                skipped: t.excluded,
            })
            .collect()
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for group in &self.report.groups {
            if !group.kind.removable() {
                continue;
            }
            let Some(keeper) = group.members.iter().find(|m| m.keep) else {
                continue;
            };
            for m in group.members.iter().filter(|m| !m.keep && m.indexed) {
                let excluded =
                    (self.action == Action::Hardlink && m.hash != keeper.hash).then(|| {
                        format!(
                            "not identical to its keeper (a {} copy): hard links replace only \
                             exact copies",
                            if group.kind == Kind::Near {
                                "near"
                            } else {
                                "different"
                            }
                        )
                    });
                targets.push(Target {
                    path: m.path.clone(),
                    hash: m.hash.clone(),
                    size: m.size,
                    keeper: keeper.path.clone(),
                    keeper_hash: keeper.hash.clone(),
                    excluded,
                });
            }
        }
        targets
    }

    fn destination(&self, key: &str) -> Option<PathBuf> {
        match &self.action {
            Action::MoveTo { dir } => {
                let path = path_of(key);
                Some(dir.join(path.strip_prefix("/").unwrap_or(&path)))
            }
            _ => None,
        }
    }

    /// Makes the changes. Stops between two files when `stop` is set: what was done is in the
    /// journal and the index, the rest untouched.
    pub fn execute(self, progress: &mut dyn Progress, stop: &AtomicBool) -> Result<Applied> {
        let targets = self.targets();
        if targets.iter().all(|t| t.excluded.is_some()) {
            return Ok(Applied {
                journal: None,
                steps: self.preview(),
            });
        }
        let db_dir = self.store.dir().to_path_buf();
        let rows = self.rows_of(&targets)?;
        let mut journal = Writer::create(
            &db_dir,
            &Entry::Plan {
                action: self.action.clone(),
                at: crate::util::now_seconds(),
                model: self.model.clone(),
                threshold: self.report.threshold,
            },
        )?;
        let mut keepers: HashMap<String, std::result::Result<Metadata, String>> = HashMap::new();
        let mut outcomes = Vec::new();
        // Per table: rows to write (moved or relinked) and paths whose rows go.
        let mut upserts: HashMap<String, Vec<Row>> = HashMap::new();
        let mut deletes: HashMap<String, Vec<String>> = HashMap::new();
        progress.start("applying", targets.len());
        for (n, target) in targets.into_iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            progress.advance(1);
            let to = self.destination(&target.path);
            let mut outcome = StepOutcome {
                path: target.path.clone(),
                to: to.as_ref().map(|p| path_string(p)),
                keeper: target.keeper.clone(),
                bytes: target.size,
                skipped: target.excluded.clone(),
            };
            if outcome.skipped.is_none() {
                let keeper = keepers
                    .entry(target.keeper.clone())
                    .or_insert_with(|| unchanged(&target.keeper, &target.keeper_hash));
                outcome.skipped = match keeper {
                    Err(reason) => Some(format!(
                        "kept: the image it duplicates, {}, {reason}",
                        crate::util::display_key(&target.keeper)
                    )),
                    Ok(keeper_meta) => self.check(&target, to.as_deref(), keeper_meta).err(),
                };
            }
            if let Some(reason) = &outcome.skipped {
                if target.excluded.is_none() {
                    progress.file_failed(&Error::Dataset {
                        path: path_of(&target.path),
                        reason: format!("skipped: {reason}"),
                    });
                }
                outcomes.push(outcome);
                continue;
            }
            let path = path_of(&target.path);
            let meta = std::fs::symlink_metadata(&path).map_err(|cause| Error::Io {
                path: path.clone(),
                cause,
            })?;
            let table_rows = rows.get(&target.path).cloned().unwrap_or_default();
            journal.write(&Entry::Step(Step {
                step: n,
                path: target.path.clone(),
                hash: target.hash.clone(),
                size: meta.len(),
                mode: meta.permissions().mode(),
                mtime_ns: mtime_ns(&meta),
                keeper: target.keeper.clone(),
                to: outcome.to.clone(),
                rows: table_rows.clone(),
            }))?;
            let done = match &self.action {
                Action::MoveTo { .. } => move_file(&path, to.as_deref().expect("a destination")),
                Action::Trash => trash::delete(&path).map_err(|e| trash_reason(&e)),
                Action::Hardlink => link_over(&path_of(&target.keeper), &path),
            };
            match done {
                Ok(()) => {
                    journal.write(&Entry::Done { step: n })?;
                    for TableRow { model_id, row } in table_rows {
                        match &self.action {
                            Action::MoveTo { .. } => {
                                let mut moved = row;
                                moved.path = outcome.to.clone().expect("a destination");
                                upserts.entry(model_id.clone()).or_default().push(moved);
                                deletes
                                    .entry(model_id)
                                    .or_default()
                                    .push(target.path.clone());
                            }
                            Action::Trash => deletes
                                .entry(model_id)
                                .or_default()
                                .push(target.path.clone()),
                            Action::Hardlink => {
                                // The link shares its keeper's inode, time included.
                                let mut linked = row;
                                if let Ok(m) = std::fs::metadata(&path) {
                                    linked.mtime_ns = mtime_ns(&m);
                                    linked.size = m.len();
                                }
                                upserts.entry(model_id).or_default().push(linked);
                            }
                        }
                    }
                }
                Err(reason) => {
                    journal.write(&Entry::Skipped {
                        step: n,
                        reason: reason.clone(),
                    })?;
                    progress.file_failed(&Error::Dataset {
                        path: path.clone(),
                        reason: format!("skipped: {reason}"),
                    });
                    outcome.skipped = Some(reason);
                }
            }
            outcomes.push(outcome);
        }
        self.write_rows(upserts, deletes)?;
        Ok(Applied {
            journal: Some(journal.path().to_path_buf()),
            steps: outcomes,
        })
    }

    /// Whether the file is still what the report saw, and its destination free.
    fn check(
        &self,
        target: &Target,
        to: Option<&Path>,
        keeper: &Metadata,
    ) -> std::result::Result<(), String> {
        let meta = unchanged(&target.path, &target.hash)?;
        if let Some(to) = to {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(format!("{} already exists", to.display()));
            }
        }
        if self.action == Action::Hardlink {
            if meta.dev() != keeper.dev() {
                return Err(
                    "on another file system than its keeper: a hard link cannot cross \
                            file systems"
                        .into(),
                );
            }
            if meta.ino() == keeper.ino() {
                return Err("already a hard link to its keeper".into());
            }
        }
        Ok(())
    }

    /// Every table's rows of the targets, by path.
    fn rows_of(&self, targets: &[Target]) -> Result<HashMap<String, Vec<TableRow>>> {
        let paths: Vec<&str> = targets
            .iter()
            .filter(|t| t.excluded.is_none())
            .map(|t| t.path.as_str())
            .collect();
        let mut rows: HashMap<String, Vec<TableRow>> = HashMap::new();
        for info in self.store.tables()? {
            let Some(table) = self.store.table(&info.model_id)? else {
                continue;
            };
            for row in table.rows_of_paths(&paths)? {
                rows.entry(row.path.clone()).or_default().push(TableRow {
                    model_id: info.model_id.clone(),
                    row,
                });
            }
        }
        Ok(rows)
    }

    fn write_rows(
        &self,
        upserts: HashMap<String, Vec<Row>>,
        deletes: HashMap<String, Vec<String>>,
    ) -> Result<()> {
        write_rows(self.store, upserts, deletes)
    }
}

/// Puts back the last plan applied: `Undo::new(&store).execute(..)`.
pub struct Undo<'a> {
    store: &'a Store,
}

/// What an undo did.
#[derive(Debug, Clone)]
pub struct Undone {
    pub journal: PathBuf,
    pub action: Action,
    /// When the plan was applied (seconds since the Unix epoch).
    pub applied_at: i64,
    pub steps: Vec<StepOutcome>,
}

impl<'a> Undo<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// `Ok(None)`: no plan to undo.
    pub fn execute(self, progress: &mut dyn Progress, stop: &AtomicBool) -> Result<Option<Undone>> {
        let Some(plan) = Journal::latest_to_undo(self.store.dir())? else {
            return Ok(None);
        };
        let mut journal = Writer::append_to(&plan.path)?;
        let steps: Vec<_> = plan.steps.iter().filter(|s| s.to_undo()).collect();
        // The trash is listed once, for every file of the plan.
        let mut trashed = if plan.action == Action::Trash && !steps.is_empty() {
            Some(TrashIndex::read()?)
        } else {
            None
        };
        let mut upserts: HashMap<String, Vec<Row>> = HashMap::new();
        let mut deletes: HashMap<String, Vec<String>> = HashMap::new();
        let mut outcomes = Vec::new();
        progress.start("undoing", steps.len());
        // The newest change first, as a stack unwinds.
        for state in steps.iter().rev() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            progress.advance(1);
            let step = &state.step;
            let result = match &plan.action {
                Action::MoveTo { .. } => undo_move(step),
                Action::Trash => undo_trash(step, trashed.as_mut().expect("listed")),
                Action::Hardlink => undo_link(step),
            };
            let mut outcome = StepOutcome {
                path: step.path.clone(),
                to: step.to.clone(),
                keeper: step.keeper.clone(),
                bytes: step.size,
                skipped: None,
            };
            match result {
                Ok(put) => {
                    journal.write(&Entry::Restored { step: step.step })?;
                    if matches!(put, Put::NeverChanged) {
                        // Cut short before the change: the file is where it was. Its rows
                        // are written back all the same (the index may have followed it).
                        outcome.skipped = Some("was never changed".into());
                    }
                    for TableRow { model_id, row } in &step.rows {
                        upserts
                            .entry(model_id.clone())
                            .or_default()
                            .push(row.clone());
                        if let Some(to) = &step.to {
                            deletes
                                .entry(model_id.clone())
                                .or_default()
                                .push(to.clone());
                        }
                    }
                }
                Err(reason) => {
                    journal.write(&Entry::NotRestored {
                        step: step.step,
                        reason: reason.clone(),
                    })?;
                    progress.file_failed(&Error::Dataset {
                        path: path_of(&step.path),
                        reason: format!("not put back: {reason}"),
                    });
                    outcome.skipped = Some(reason);
                }
            }
            outcomes.push(outcome);
        }
        write_rows(self.store, upserts, deletes)?;
        let complete = !stop.load(Ordering::Relaxed)
            && outcomes.iter().all(|o| {
                o.skipped
                    .as_deref()
                    .is_none_or(|r| r == "was never changed")
            });
        if complete {
            journal.write(&Entry::Undone {
                at: crate::util::now_seconds(),
            })?;
        }
        outcomes.reverse();
        Ok(Some(Undone {
            journal: plan.path.clone(),
            action: plan.action.clone(),
            applied_at: plan.at,
            steps: outcomes,
        }))
    }
}

/// Rows written back (upserts first, so that a crash between the two leaves a row too many,
/// which the next index removes, never one too few).
fn write_rows(
    store: &Store,
    upserts: HashMap<String, Vec<Row>>,
    deletes: HashMap<String, Vec<String>>,
) -> Result<()> {
    for (model_id, rows) in &upserts {
        if let Some(table) = store.table(model_id)? {
            table.upsert(rows)?;
        }
    }
    for (model_id, paths) in &deletes {
        // A path both written and removed (an undo onto the same place) keeps its row.
        let written: Vec<&str> = upserts
            .get(model_id)
            .map(|rows| rows.iter().map(|r| r.path.as_str()).collect())
            .unwrap_or_default();
        let paths: Vec<&str> = paths
            .iter()
            .map(String::as_str)
            .filter(|p| !written.contains(p))
            .collect();
        if let Some(table) = store.table(model_id)? {
            table.delete(&paths)?;
        }
    }
    Ok(())
}

/// A file's metadata when it is still a regular file with these bytes; else why not.
fn unchanged(key: &str, hash: &str) -> std::result::Result<Metadata, String> {
    let path = path_of(key);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("vanished since it was indexed".into())
        }
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    if !meta.file_type().is_file() {
        return Err("is no longer a regular file".into());
    }
    match crate::indexer::hash_file(&path) {
        Ok(h) if h == hash => Ok(meta),
        Ok(_) => Err(
            "changed since it was indexed (run `imgsim index` or wait for the daemon, \
                      then plan again)"
                .into(),
        ),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

fn mtime_ns(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

fn io_reason(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Moves a file without ever replacing one: a hard link and an unlink on one file system, a
/// copy (with mode and time, flushed) and an unlink across file systems.
fn move_file(from: &Path, to: &Path) -> std::result::Result<(), String> {
    let folder = to.parent().expect("an absolute destination");
    std::fs::create_dir_all(folder).map_err(|e| io_reason("creating", folder, e))?;
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(format!("{} already exists", to.display()))
        }
        // Another file system (EXDEV), or one without hard links: copy.
        Err(_) => copy_no_clobber(from, to)?,
    }
    sync_folder(folder);
    std::fs::remove_file(from).map_err(|e| {
        // Both names hold the file: take the new one back, so that nothing is doubled.
        let _ = std::fs::remove_file(to);
        io_reason("removing", from, e)
    })?;
    if let Some(parent) = from.parent() {
        sync_folder(parent);
    }
    Ok(())
}

/// Copies `from` to `to` (which must not exist) with its permissions and time, flushed.
fn copy_no_clobber(from: &Path, to: &Path) -> std::result::Result<(), String> {
    let folder = to.parent().expect("an absolute destination");
    let meta = std::fs::metadata(from).map_err(|e| io_reason("reading", from, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".imgsim-move-")
        .tempfile_in(folder)
        .map_err(|e| io_reason("writing in", folder, e))?;
    let mut source = std::fs::File::open(from).map_err(|e| io_reason("reading", from, e))?;
    std::io::copy(&mut source, tmp.as_file_mut())
        .and_then(|_| tmp.as_file().set_permissions(meta.permissions()))
        .and_then(|()| {
            let modified = meta.modified()?;
            tmp.as_file().set_modified(modified)
        })
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io_reason("copying to", to, e))?;
    tmp.persist_noclobber(to).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} already exists", to.display())
        } else {
            io_reason("writing", to, e.error)
        }
    })?;
    Ok(())
}

/// Replaces `path` by a hard link to `keeper`, atomically (a link beside it, renamed over it).
fn link_over(keeper: &Path, path: &Path) -> std::result::Result<(), String> {
    let folder = path.parent().expect("an absolute path");
    let tmp = folder.join(format!(".imgsim-link-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(keeper, &tmp).map_err(|e| io_reason("linking to", keeper, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_reason("replacing", path, e)
    })?;
    sync_folder(folder);
    Ok(())
}

fn sync_folder(folder: &Path) {
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
}

fn trash_reason(e: &trash::Error) -> String {
    format!("the trash refused it: {e}")
}

/// What an undo found for one step.
enum Put {
    Back,
    /// The step was written but its change never made.
    NeverChanged,
}

/// Whether the file at `key` is the step's file (same bytes).
fn is_the_file(key: &str, step: &Step) -> bool {
    unchanged(key, &step.hash).is_ok()
}

fn undo_move(step: &Step) -> std::result::Result<Put, String> {
    let to = step.to.as_deref().ok_or("the journal has no destination")?;
    let (here, there) = (is_the_file(&step.path, step), is_the_file(to, step));
    match (here, there) {
        (true, false) => Ok(Put::NeverChanged),
        (_, true) => {
            let (from, back) = (path_of(to), path_of(&step.path));
            if here {
                // Cut short between the link and the unlink: the original is in place.
                std::fs::remove_file(&from).map_err(|e| io_reason("removing", &from, e))?;
                return Ok(Put::Back);
            }
            if std::fs::symlink_metadata(&back).is_ok() {
                return Err(format!(
                    "another file is at its place now; it stays at {}",
                    from.display()
                ));
            }
            move_file(&from, &back)?;
            restore_time(&back, step);
            Ok(Put::Back)
        }
        (false, false) => Err(format!(
            "it is no longer at {} with the bytes that were moved",
            crate::util::display_key(to)
        )),
    }
}

fn undo_link(step: &Step) -> std::result::Result<Put, String> {
    let path = path_of(&step.path);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| io_reason("reading", &path, e))?;
    if !is_the_file(&step.path, step) {
        return Err("its bytes changed since the hard link was made".into());
    }
    let keeper = std::fs::symlink_metadata(path_of(&step.keeper)).ok();
    let linked = keeper.is_some_and(|k| k.dev() == meta.dev() && k.ino() == meta.ino());
    if !linked {
        // Not linked to its keeper: cut short before the change, or the keeper is gone since
        // (the file then holds the bytes alone already).
        if mtime_ns(&meta) == step.mtime_ns {
            return Ok(Put::NeverChanged);
        }
    } else {
        // An independent copy of the same bytes, renamed over the link.
        let folder = path.parent().expect("an absolute path");
        let tmp = folder.join(format!(".imgsim-unlink-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        copy_no_clobber(&path, &tmp)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_reason("replacing", &path, e)
        })?;
        sync_folder(folder);
    }
    restore_time(&path, step);
    Ok(Put::Back)
}

/// The step's permissions and modification time, on the file put back.
fn restore_time(path: &Path, step: &Step) {
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(step.mode));
    // Setting the time needs ownership, not write permission: a read-only photo gets it too.
    if let Ok(file) = std::fs::File::open(path) {
        let time = UNIX_EPOCH + Duration::from_nanos(step.mtime_ns.max(0) as u64);
        let _ = file.set_modified(time);
    }
}

/// The items in the trash, by original path.
struct TrashIndex {
    by_path: HashMap<PathBuf, Vec<trash::TrashItem>>,
}

impl TrashIndex {
    fn read() -> Result<Self> {
        let items = trash::os_limited::list().map_err(|e| Error::Dataset {
            path: PathBuf::from("trash"),
            reason: format!("the trash cannot be listed: {e}"),
        })?;
        let mut by_path: HashMap<PathBuf, Vec<trash::TrashItem>> = HashMap::new();
        for item in items {
            by_path.entry(item.original_path()).or_default().push(item);
        }
        Ok(Self { by_path })
    }
}

/// The file of a trash item: freedesktop keeps `<trash>/files/NAME` beside its description
/// `<trash>/info/NAME.trashinfo`, and the item's id is that description's path.
fn trashed_file(item: &trash::TrashItem) -> Option<PathBuf> {
    let info = Path::new(&item.id);
    let name = info.file_name()?.to_str()?.strip_suffix(".trashinfo")?;
    Some(info.parent()?.parent()?.join("files").join(name))
}

fn undo_trash(step: &Step, trashed: &mut TrashIndex) -> std::result::Result<Put, String> {
    let path = path_of(&step.path);
    let candidates = trashed.by_path.get_mut(&path);
    // The newest item of that path with the step's bytes.
    let found = candidates.and_then(|items| {
        items.sort_by_key(|i| std::cmp::Reverse(i.time_deleted));
        let at = items.iter().position(|item| {
            trashed_file(item).is_some_and(|f| is_the_file(&path_string(&f), step))
        })?;
        Some(items.remove(at))
    });
    let Some(item) = found else {
        if is_the_file(&step.path, step) {
            return Ok(Put::NeverChanged);
        }
        return Err("it is no longer in the trash (emptied, or restored by hand)".into());
    };
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err("another file is at its place now; it stays in the trash".into());
    }
    trash::os_limited::restore_all([item]).map_err(|e| format!("the trash refused: {e}"))?;
    restore_time(&path, step);
    Ok(Put::Back)
}
