//! A duplicate threshold measured on the user's own photos, and where it is kept.
//!
//! No single threshold works for every library (rclip's and Immich's maintainers say so), and
//! no peer says what precision its threshold has. `imgsim dupes --calibrate` builds the
//! copy-detection benchmark of `imgsim eval synth` from a seeded sample of the indexed photos
//! (edited copies of some, distractors made from others), embeds it with the table's model,
//! and takes the lowest cosine that keeps the asked precision: the official metric's
//! operating point ([`crate::eval::metrics::operating_point`]) at that precision. The result
//! is stored per model and precision in the database (`dupes-thresholds.json`), so later runs
//! use it without measuring again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::eval::cache::EmbeddingCache;
use crate::eval::disc21::{self, QuerySet, Selection};
use crate::eval::metrics::operating_point;
use crate::eval::synth::{self, SynthOptions};
use crate::progress::Progress;
use crate::store::ModelTable;

const FILE: &str = "dupes-thresholds.json";
/// Photos sampled when none is said.
pub const DEFAULT_SAMPLE: usize = 1000;

/// One measured threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The precision asked for.
    pub precision: f64,
    /// The lowest cosine that keeps it.
    pub threshold: f32,
    /// The share of edited copies found at that threshold.
    pub recall: f64,
    /// Photos of the library the benchmark was made from.
    pub photos: usize,
    /// Edited copies and distractors made from them.
    pub queries: usize,
    /// Seconds since the Unix epoch.
    pub measured_at: i64,
}

/// Measures the threshold of `table`'s model (`embedder` must hold it) at `precision` on a
/// sample of at most `photos` of the table's images.
pub fn calibrate(
    table: &ModelTable<'_>,
    embedder: &Embedder,
    precision: f64,
    photos: usize,
    seed: u64,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Calibration> {
    // One path per content: an exact copy of a reference in the pool would count as a wrong
    // answer. (Near copies already in the library do too: the threshold errs high there.)
    let mut files: Vec<(String, String)> = table
        .files()?
        .into_iter()
        .map(|(key, state)| (state.hash, key))
        .collect();
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);
    let mut paths: Vec<PathBuf> = files
        .iter()
        .map(|(_, key)| crate::util::path_of(key))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let chosen: Vec<PathBuf> = sample(&mut rng, paths.len(), photos.min(paths.len()))
        .into_iter()
        .map(|i| paths[i].clone())
        .collect();
    if chosen.len() < 10 {
        return Err(Error::Dataset {
            path: table.store_dir().to_path_buf(),
            reason: format!(
                "calibration needs at least 10 indexed photos that are on disk, found {}",
                chosen.len()
            ),
        });
    }
    let work = tempfile::Builder::new()
        .prefix("imgsim-calibrate-")
        .tempdir()
        .map_err(|cause| Error::Io {
            path: std::env::temp_dir(),
            cause,
        })?;
    let options = SynthOptions {
        queries: None,
        distractors: 0.2,
        seed,
    };
    let benchmark = synth::build_from(
        table.store_dir().to_path_buf(),
        chosen.clone(),
        work.path(),
        &options,
        progress,
    )?;
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Stopped);
    }
    let selection = Selection::new(&benchmark.layout(work.path()), None, QuerySet::All)?;
    let mut cache = EmbeddingCache::disabled(embedder.model().dim());
    let result = disc21::run(&selection, embedder, &mut cache, 10, false, progress)?;
    let point =
        operating_point(&result.metrics.curve, precision).ok_or_else(|| Error::Dataset {
            path: table.store_dir().to_path_buf(),
            reason: format!(
            "{} never reaches precision {precision} on {} of your photos: no threshold keeps it \
             (try a lower --precision)",
            embedder.model().name,
            chosen.len()
        ),
        })?;
    Ok(Calibration {
        precision,
        threshold: point.score as f32,
        recall: point.recall,
        photos: chosen.len(),
        queries: benchmark.queries.len(),
        measured_at: crate::util::now_seconds(),
    })
}

/// Thresholds measured so far, by model id, then precision (`"0.95"`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Thresholds(BTreeMap<String, BTreeMap<String, Calibration>>);

impl Thresholds {
    /// What `db_dir` holds (nothing yet: empty).
    pub fn load(db_dir: &Path) -> Result<Self> {
        super::load_json(db_dir, FILE, "delete it and calibrate again")
    }

    /// Keeps `calibration` for `model_id` (replacing one at the same precision), written
    /// atomically.
    pub fn save(db_dir: &Path, model_id: &str, calibration: &Calibration) -> Result<()> {
        let mut all = Self::load(db_dir)?;
        all.0
            .entry(model_id.to_string())
            .or_default()
            .insert(key(calibration.precision), calibration.clone());
        super::save_json(db_dir, FILE, &all)
    }

    /// The calibration of `model_id` at `precision`, if measured.
    pub fn at(&self, model_id: &str, precision: f64) -> Option<&Calibration> {
        self.0.get(model_id)?.get(&key(precision))
    }

    /// The most recent calibration of `model_id`, if any.
    pub fn latest(&self, model_id: &str) -> Option<&Calibration> {
        self.0.get(model_id)?.values().max_by_key(|c| c.measured_at)
    }
}

fn key(precision: f64) -> String {
    format!("{precision:.4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration(precision: f64, threshold: f32, measured_at: i64) -> Calibration {
        Calibration {
            precision,
            threshold,
            recall: 0.5,
            photos: 100,
            queries: 100,
            measured_at,
        }
    }

    #[test]
    fn thresholds_are_kept_per_model_and_precision() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Thresholds::load(dir.path())
            .unwrap()
            .at("m", 0.95)
            .is_none());
        Thresholds::save(dir.path(), "m", &calibration(0.95, 0.9, 1)).unwrap();
        Thresholds::save(dir.path(), "m", &calibration(0.9, 0.8, 2)).unwrap();
        Thresholds::save(dir.path(), "other", &calibration(0.95, 0.7, 3)).unwrap();
        // The same precision again replaces the first.
        Thresholds::save(dir.path(), "m", &calibration(0.950, 0.91, 4)).unwrap();
        let all = Thresholds::load(dir.path()).unwrap();
        assert_eq!(all.at("m", 0.95).unwrap().threshold, 0.91);
        assert_eq!(all.at("m", 0.9).unwrap().threshold, 0.8);
        assert_eq!(all.latest("m").unwrap().measured_at, 4);
        assert_eq!(all.at("other", 0.95).unwrap().threshold, 0.7);
        assert!(all.at("m", 0.99).is_none());
    }

    #[test]
    fn a_damaged_file_is_named_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{ not json").unwrap();
        let err = Thresholds::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(FILE) && err.contains("calibrate again"),
            "{err}"
        );
        assert!(Thresholds::save(dir.path(), "m", &calibration(0.9, 0.8, 1)).is_err());
        assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap(), b"{ not json");
    }
}
