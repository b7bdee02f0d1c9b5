//! Which layout a database folder holds (`format.json`), and bringing an older one up to date.
//!
//! A database outlives the binary that wrote it: users upgrade imgsim and keep their index,
//! and sometimes run an older imgsim on a database a newer one wrote (two machines, a
//! downgrade). So every database says which format it is in, an older format is brought up
//! to date in place (never by embedding again), and a newer one is refused before anything
//! reads or writes it.
//!
//! Formats:
//! - 1: every database before the marker existed (`models.json` and the tables, no
//!   `format.json`).
//! - 2: `format.json`; file names that are not UTF-8 are stored without loss (see
//!   `util::path_string`). The tables' schema is that of format 1, and format-1 rows of
//!   UTF-8 names are format-2 rows as they are, so the step from 1 is writing the marker.
//!   (A format-1 row of a name that was not UTF-8 names no file; the next `index` of its
//!   folder removes it and adds the file under its true name.)
//! - 3: the tables have the metadata columns (`rows::meta_fields`: format, date taken, camera,
//!   lens, exposure, GPS, orientation). A format-2 table gains them as nulls when a writable
//!   imgsim first opens it (LanceDB adds all-null columns to the schema alone: no data file
//!   is rewritten, no vector is touched); the next `index` or `watch` pass reads each file's
//!   metadata and updates its row in place, without embedding anything. Until then a row
//!   without metadata matches no metadata filter. Format-2 imgsim refuses a format-3
//!   database (it would write rows without the new columns).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The format this imgsim writes.
pub const CURRENT: u32 = 3;

/// A database without a marker was written before markers existed.
const UNMARKED: u32 = 1;

const MARKER: &str = "format.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub format: u32,
    /// The imgsim that last brought the database to this format, for messages.
    pub written_by: String,
}

impl Marker {
    fn ours() -> Self {
        Self {
            format: CURRENT,
            written_by: format!("imgsim {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What to do with a database of a given format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Current,
    /// Older: readable as it is; brought up to date when the database can be written.
    Upgrade {
        from: u32,
    },
    /// Written by a newer imgsim: neither read nor written.
    TooNew,
}

/// The rule, apart from the file system.
pub fn judge(format: u32) -> Verdict {
    match format {
        f if f == CURRENT => Verdict::Current,
        f if f > CURRENT => Verdict::TooNew,
        from => Verdict::Upgrade { from },
    }
}

/// Reads the marker of the database in `dir` (an unmarked database is format 1).
pub fn read(dir: &Path) -> Result<Marker> {
    let path = dir.join(MARKER);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Store {
            path,
            reason: format!("not a database format marker: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Marker {
            format: UNMARKED,
            written_by: "an imgsim without format markers".into(),
        }),
        Err(e) => Err(Error::Store {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Checks the database in `dir` before it is used: refuses a newer format, and brings an older
/// one up to date when `writable` (a read-only database is read in its own format, which
/// every format this imgsim upgrades from can be).
pub fn check(dir: &Path, writable: bool) -> Result<()> {
    let marker = read(dir)?;
    match judge(marker.format) {
        Verdict::Current => Ok(()),
        Verdict::TooNew => Err(Error::Store {
            path: dir.to_path_buf(),
            reason: format!(
                "this database is in format {} (written by {}); this imgsim ({}) reads \
                 formats up to {CURRENT}. Use a newer imgsim; the database was left as it is",
                marker.format,
                marker.written_by,
                env!("CARGO_PKG_VERSION"),
            ),
        }),
        Verdict::Upgrade { from } if writable => upgrade(dir, from),
        Verdict::Upgrade { .. } => Ok(()),
    }
}

/// Marks a new database as written in the current format.
pub fn mark_new(dir: &Path) -> Result<()> {
    write(dir, &Marker::ours())
}

fn upgrade(dir: &Path, from: u32) -> Result<()> {
    // Each step brings format n to n + 1; steps are idempotent, so two processes upgrading
    // at once, or a crash in the middle, end in the same database.
    for format in from..CURRENT {
        match format {
            // 1 -> 2: the tables stay as they are (see the module docs).
            1 => {}
            // 2 -> 3: each table is given its new columns when it is opened (`Store::table`).
            2 => {}
            _ => unreachable!("no format {format} was ever written"),
        }
    }
    write(dir, &Marker::ours())
}

fn write(dir: &Path, marker: &Marker) -> Result<()> {
    let path = dir.join(MARKER);
    let text = serde_json::to_string_pretty(marker).expect("serialisable");
    crate::util::write_atomic(&path, text.as_bytes()).map_err(|e| Error::Store {
        path,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_formats_are_upgraded_and_newer_ones_refused() {
        assert_eq!(judge(CURRENT), Verdict::Current);
        assert_eq!(judge(1), Verdict::Upgrade { from: 1 });
        assert_eq!(judge(CURRENT + 1), Verdict::TooNew);
    }

    #[test]
    fn an_unmarked_database_is_format_1_and_is_marked_only_when_writable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap().format, 1);
        check(dir.path(), false).unwrap();
        assert!(!dir.path().join(MARKER).exists());
        check(dir.path(), true).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Marker::ours());
    }

    #[test]
    fn a_newer_database_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let newer = r#"{"format": 99, "written_by": "imgsim 9.0.0"}"#;
        std::fs::write(dir.path().join(MARKER), newer).unwrap();
        let error = check(dir.path(), true).unwrap_err().to_string();
        assert!(
            error.contains("format 99 (written by imgsim 9.0.0)"),
            "{error}"
        );
        assert!(error.contains("Use a newer imgsim"), "{error}");
        let after = std::fs::read_to_string(dir.path().join(MARKER)).unwrap();
        assert_eq!(after, newer);
    }
}
