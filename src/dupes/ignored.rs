//! Decisions remembered: images the user said are not duplicates of each other.
//!
//! Kept by content hash, so that a decision follows a file that is moved or renamed, and
//! stays with the bytes it was made about (an edited file is a new question). The paths are
//! kept beside the hashes only to show the decision. Stored in the database folder
//! (`dupes-ignored.json`), written atomically.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

const FILE: &str = "dupes-ignored.json";

/// Images that are not duplicates of each other, whatever their scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Apart {
    pub hashes: Vec<String>,
    /// The paths as they were when the decision was made.
    pub paths: Vec<String>,
    /// Seconds since the Unix epoch.
    pub decided_at: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ignored {
    decisions: Vec<Apart>,
}

impl Ignored {
    /// What `db_dir` holds (nothing yet: none).
    pub fn load(db_dir: &Path) -> Result<Self> {
        super::load_json(
            db_dir,
            FILE,
            "it holds your 'not duplicates' decisions: fix or delete it",
        )
    }

    pub fn save(&self, db_dir: &Path) -> Result<()> {
        super::save_json(db_dir, FILE, self)
    }

    pub fn decisions(&self) -> &[Apart] {
        &self.decisions
    }

    /// Records that the images of `decision` are not duplicates of each other.
    pub fn add(&mut self, decision: Apart) {
        self.decisions.push(decision);
    }

    /// Forgets every decision that names one of `hashes`; returns how many.
    pub fn forget(&mut self, hashes: &HashSet<String>) -> usize {
        let before = self.decisions.len();
        self.decisions
            .retain(|d| !d.hashes.iter().any(|h| hashes.contains(h)));
        before - self.decisions.len()
    }

    /// The pairs of contents kept apart, each once as (smaller, larger) hash.
    pub fn pairs(&self) -> HashSet<(String, String)> {
        let mut out = HashSet::new();
        for d in &self.decisions {
            for (i, a) in d.hashes.iter().enumerate() {
                for b in &d.hashes[i + 1..] {
                    if a != b {
                        out.insert(ordered(a, b));
                    }
                }
            }
        }
        out
    }
}

/// The pair `(a, b)` in the order [`Ignored::pairs`] holds it.
pub fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apart(hashes: &[&str]) -> Apart {
        Apart {
            hashes: hashes.iter().map(|h| h.to_string()).collect(),
            paths: hashes.iter().map(|h| format!("/p/{h}.jpg")).collect(),
            decided_at: 0,
        }
    }

    #[test]
    fn decisions_are_pairs_kept_and_forgotten_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut ignored = Ignored::load(dir.path()).unwrap();
        assert!(ignored.pairs().is_empty());
        ignored.add(apart(&["b", "a", "c"]));
        ignored.add(apart(&["x", "y"]));
        ignored.save(dir.path()).unwrap();
        let ignored = Ignored::load(dir.path()).unwrap();
        let pairs = ignored.pairs();
        assert_eq!(pairs.len(), 4);
        assert!(pairs.contains(&ordered("c", "a")) && pairs.contains(&ordered("y", "x")));
        let mut ignored = ignored;
        let forgotten = ignored.forget(&HashSet::from(["y".to_string()]));
        assert_eq!(forgotten, 1);
        assert_eq!(ignored.pairs().len(), 3);
    }
}
