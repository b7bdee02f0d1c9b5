//! The journal of applied plans: one JSON Lines file per `imgsim dupes --apply`, in
//! `<db>/dupes-journal/`. Every change is written ahead: the step (what will be done to which
//! file, with the file's mode, time and index rows), flushed to disk, then the change, then its
//! outcome. So `imgsim dupes undo` can put back what a plan did even when the plan was cut
//! short (a crash, a full disk, a kill): a step without an outcome is checked on disk.
//!
//! A journal is never rewritten: undoing appends its own outcomes, and a plan is undone when
//! every step it did has been put back.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Row;

/// The journals' folder inside the database folder.
pub const FOLDER: &str = "dupes-journal";

/// What a plan does to each image that is not its group's keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Moved under `dir`, at its full path (`/home/me/a.jpg` -> `DIR/home/me/a.jpg`).
    MoveTo { dir: PathBuf },
    /// Moved to the desktop's trash (the freedesktop.org trash on Linux).
    Trash,
    /// Replaced by a hard link to its keeper (exact copies only).
    Hardlink,
}

impl Action {
    /// "moved to DIR", "moved to the trash", "replaced by hard links".
    pub fn done_verb(&self) -> String {
        match self {
            Action::MoveTo { dir } => format!("moved to {}", dir.display()),
            Action::Trash => "moved to the trash".into(),
            Action::Hardlink => "replaced by hard links to their keepers".into(),
        }
    }
}

/// One image's row in one model's table, as it was before the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    pub model_id: String,
    pub row: Row,
}

/// What a plan will do to one file, written before it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub step: usize,
    /// The file's path key.
    pub path: String,
    /// Its content hash, checked before the change and before it is put back.
    pub hash: String,
    pub size: u64,
    /// Permission bits and modification time, restored with the bytes.
    pub mode: u32,
    pub mtime_ns: i64,
    /// The image it duplicates (kept).
    pub keeper: String,
    /// Where a move puts it.
    pub to: Option<String>,
    /// Its rows before the plan, in every table that had one.
    pub rows: Vec<TableRow>,
}

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    Plan {
        #[serde(flatten)]
        action: Action,
        /// Seconds since the Unix epoch.
        at: i64,
        model: String,
        threshold: f32,
    },
    Step(Step),
    Done {
        step: usize,
    },
    Skipped {
        step: usize,
        reason: String,
    },
    Restored {
        step: usize,
    },
    NotRestored {
        step: usize,
        reason: String,
    },
    Undone {
        at: i64,
    },
}

/// A journal being written.
pub struct Writer {
    path: PathBuf,
    file: File,
}

impl Writer {
    /// A new journal for a plan, named by its time (and process, so two never share one).
    pub fn create(db_dir: &Path, plan: &Entry) -> Result<Self> {
        let folder = db_dir.join(FOLDER);
        std::fs::create_dir_all(&folder).map_err(|cause| Error::Io {
            path: folder.clone(),
            cause,
        })?;
        let name = format!(
            "{}-{}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        );
        let path = folder.join(name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|cause| Error::Io {
                path: path.clone(),
                cause,
            })?;
        let mut writer = Self { path, file };
        writer.write(plan)?;
        // The journal's name must survive a crash too.
        if let Ok(dir) = File::open(&folder) {
            let _ = dir.sync_all();
        }
        Ok(writer)
    }

    /// Opens an existing journal to append outcomes (of an undo).
    pub fn append_to(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|cause| Error::Io {
                path: path.to_path_buf(),
                cause,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and flushes it to disk before returning: what follows may change a
    /// file, and the journal must know first.
    pub fn write(&mut self, entry: &Entry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).expect("serialisable");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|cause| Error::Io {
                path: self.path.clone(),
                cause,
            })
    }
}

/// A journal as read back.
#[derive(Debug, Clone)]
pub struct Journal {
    pub path: PathBuf,
    pub action: Action,
    pub at: i64,
    pub model: String,
    pub steps: Vec<StepState>,
    /// Whether an undo put back every step the plan did.
    pub undone: bool,
}

/// A step and what became of it.
#[derive(Debug, Clone)]
pub struct StepState {
    pub step: Step,
    /// `Some(true)`: done; `Some(false)`: skipped; `None`: no outcome (cut short).
    pub done: Option<bool>,
    /// Put back by an undo.
    pub restored: bool,
}

impl StepState {
    /// Whether an undo has something to look at: the step was done, or may have been.
    pub fn to_undo(&self) -> bool {
        self.done != Some(false) && !self.restored
    }
}

impl Journal {
    /// Reads one journal. A last line cut short by a crash is ignored; any other unreadable
    /// line is an error naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        let unreadable = |reason: String| Error::Dataset {
            path: path.to_path_buf(),
            reason: format!("an unreadable dupes journal: {reason}"),
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut entries = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            match serde_json::from_str::<Entry>(line) {
                Ok(entry) => entries.push(entry),
                Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(e) => return Err(unreadable(format!("line {}: {e}", n + 1))),
            }
        }
        let mut entries = entries.into_iter();
        let Some(Entry::Plan {
            action, at, model, ..
        }) = entries.next()
        else {
            return Err(unreadable("it does not start with a plan".into()));
        };
        let mut journal = Journal {
            path: path.to_path_buf(),
            action,
            at,
            model,
            steps: Vec::new(),
            undone: false,
        };
        for entry in entries {
            let find = |steps: &mut Vec<StepState>, n: usize| -> Option<usize> {
                steps.iter().rposition(|s| s.step.step == n)
            };
            match entry {
                Entry::Plan { .. } => return Err(unreadable("a second plan".into())),
                Entry::Step(step) => journal.steps.push(StepState {
                    step,
                    done: None,
                    restored: false,
                }),
                Entry::Done { step } | Entry::Skipped { step, .. } => {
                    let done = matches!(entry, Entry::Done { .. });
                    if let Some(i) = find(&mut journal.steps, step) {
                        journal.steps[i].done = Some(done);
                    }
                }
                Entry::Restored { step } => {
                    if let Some(i) = find(&mut journal.steps, step) {
                        journal.steps[i].restored = true;
                    }
                }
                Entry::NotRestored { .. } => {}
                Entry::Undone { .. } => journal.undone = true,
            }
        }
        Ok(journal)
    }

    /// The journals of a database, oldest first (their names sort by time).
    pub fn paths(db_dir: &Path) -> Result<Vec<PathBuf>> {
        let folder = db_dir.join(FOLDER);
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(cause) => {
                return Err(Error::Io {
                    path: folder,
                    cause,
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// The newest plan that is not undone yet.
    pub fn latest_to_undo(db_dir: &Path) -> Result<Option<Self>> {
        for path in Self::paths(db_dir)?.iter().rev() {
            let journal = Self::read(path)?;
            if !journal.undone {
                return Ok(Some(journal));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: usize) -> Entry {
        Entry::Step(Step {
            step: n,
            path: format!("/p/{n}.jpg"),
            hash: "h".into(),
            size: 1,
            mode: 0o644,
            mtime_ns: 5,
            keeper: "/p/k.jpg".into(),
            to: None,
            rows: vec![],
        })
    }

    fn write(entries: &[Entry]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::create(
            dir.path(),
            &Entry::Plan {
                action: Action::Trash,
                at: 7,
                model: "phash".into(),
                threshold: 0.5,
            },
        )
        .unwrap();
        for e in entries {
            writer.write(e).unwrap();
        }
        let path = writer.path().to_path_buf();
        (dir, path)
    }

    #[test]
    fn a_step_without_an_outcome_is_one_to_undo() {
        let (_dir, path) = write(&[step(0), Entry::Done { step: 0 }, step(1)]);
        let journal = Journal::read(&path).unwrap();
        assert_eq!(journal.steps.len(), 2);
        assert_eq!(journal.steps[0].done, Some(true));
        assert_eq!(journal.steps[1].done, None);
        assert!(journal.steps.iter().all(StepState::to_undo));
    }

    #[test]
    fn skipped_and_restored_steps_are_not_undone_again() {
        let (_dir, path) = write(&[
            step(0),
            Entry::Skipped {
                step: 0,
                reason: "vanished".into(),
            },
            step(1),
            Entry::Done { step: 1 },
            Entry::Restored { step: 1 },
        ]);
        let journal = Journal::read(&path).unwrap();
        assert!(journal.steps.iter().all(|s| !s.to_undo()));
        assert!(!journal.undone);
    }

    #[test]
    fn a_last_line_cut_short_is_ignored_and_a_damaged_middle_is_an_error() {
        let (_dir, path) = write(&[step(0), Entry::Done { step: 0 }]);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"type\":\"st");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(Journal::read(&path).unwrap().steps.len(), 1);
        std::fs::write(&path, text.replacen("\"done\"", "\"dxne\"", 1) + "\n").unwrap();
        let err = Journal::read(&path).unwrap_err().to_string();
        assert!(err.contains("unreadable dupes journal"), "{err}");
    }

    #[test]
    fn the_latest_plan_not_undone_is_found() {
        let (dir, first) = write(&[step(0), Entry::Done { step: 0 }]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut second = Writer::create(
            dir.path(),
            &Entry::Plan {
                action: Action::Hardlink,
                at: 8,
                model: "phash".into(),
                threshold: 0.5,
            },
        )
        .unwrap();
        second.write(&Entry::Undone { at: 9 }).unwrap();
        let latest = Journal::latest_to_undo(dir.path()).unwrap().unwrap();
        assert_eq!(latest.path, first);
        assert_eq!(latest.action, Action::Trash);
    }
}
