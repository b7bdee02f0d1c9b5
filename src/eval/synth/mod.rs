//! A DISC21-style copy-detection benchmark made from any folder of photos: seeded,
//! deterministic edits of the kinds DISC21 queries carry (one to three per query), plus
//! distractor queries made from photos left out of the reference pool.
//!
//! Written in the DISC21 layout (`references/`, `queries/`, `ground_truth.csv`), with
//! `edits.csv` naming each query's edits, so that [`super::disc21`] evaluates it unchanged.
//! References link to the original files; nothing in the source folder is touched.
//!
//! This file builds the benchmark (pool, queries, files) and scores it per edit; `edits.rs`
//! makes the edits.

use std::collections::{BTreeMap, HashMap};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod edits;

pub use edits::Edit;
use edits::{apply, Fonts};

use super::disc21::Layout;
use super::metrics::{rank_by_query, GroundTruth, Prediction};
use super::Progress;
use crate::decode;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthOptions {
    /// Queries in all (copies and distractors); `None`: one per source photo, at most 2000.
    pub queries: Option<usize>,
    /// The share of queries that are distractors (their photo is not in the pool).
    pub distractors: f64,
    pub seed: u64,
}

/// One generated query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthQuery {
    pub id: String,
    /// The reference it copies; `None` for a distractor.
    pub reference: Option<String>,
    pub edits: Vec<Edit>,
}

/// What `build` wrote (and `synth.json` records, so that a re-run with the same options
/// reuses the files and the embedding cache).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthBenchmark {
    pub source: PathBuf,
    pub options: SynthOptions,
    pub references: usize,
    pub queries: Vec<SynthQuery>,
    /// Source photos that could not be decoded (left out).
    pub unreadable: Vec<String>,
    #[serde(skip)]
    pub reused: bool,
}

const MANIFEST: &str = "synth.json";
/// Bumped when the edits change, so that old benchmark folders are rebuilt.
const GENERATOR_VERSION: u32 = 1;
/// Queries are made from the photo scaled down to at most this side (DISC21 images are
/// about this size; it keeps generation quick on camera photos).
const MAX_QUERY_SIDE: u32 = 1024;

#[derive(Serialize, Deserialize)]
struct Manifest {
    generator: u32,
    benchmark: SynthBenchmark,
}

impl SynthBenchmark {
    pub fn layout(&self, out: &Path) -> Layout {
        Layout {
            references: out.join("references"),
            queries: out.join("queries"),
            ground_truth: out.join("ground_truth.csv"),
        }
    }
}

/// Builds the benchmark from the photos under `source` into `out` (or reuses what an earlier
/// run with the same options wrote there).
pub fn build(
    source: &Path,
    out: &Path,
    options: &SynthOptions,
    progress: &mut dyn Progress,
) -> Result<SynthBenchmark> {
    let source = std::fs::canonicalize(source).map_err(|e| Error::Io {
        path: source.to_path_buf(),
        cause: e,
    })?;
    if let Some(previous) = reusable(out, &source, options) {
        return Ok(previous);
    }
    // Not the benchmark's own files, where `out` lies inside `source`.
    let out_canonical = std::fs::canonicalize(out).ok();
    let photos: Vec<PathBuf> = crate::scan::images_under(&source)?
        .into_iter()
        .filter(|p| out_canonical.as_ref().is_none_or(|o| !p.starts_with(o)))
        .collect();
    build_from(source, photos, out, options, progress)
}

/// [`build`] from a list of photos (`imgsim dupes --calibrate`: a sample of an index);
/// `source` is recorded as where they came from.
pub fn build_from(
    source: PathBuf,
    mut photos: Vec<PathBuf>,
    out: &Path,
    options: &SynthOptions,
    progress: &mut dyn Progress,
) -> Result<SynthBenchmark> {
    if photos.len() < 2 {
        return Err(Error::Dataset {
            path: source,
            reason: format!(
                "needs at least 2 photos to build a benchmark, found {}",
                photos.len()
            ),
        });
    }
    if !(0.0..1.0).contains(&options.distractors) {
        return Err(Error::Dataset {
            path: source,
            reason: format!(
                "--distractors must be a share in [0, 1), got {}",
                options.distractors
            ),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    photos.shuffle(&mut rng);

    let total = options.queries.unwrap_or(photos.len().min(2000)).max(1);
    let distractor_count =
        ((total as f64 * options.distractors).round() as usize).min(photos.len() - 1);
    let copies = total - distractor_count.min(total);
    // Distractors come from photos held out of the pool; those also serve as backgrounds.
    let (held_out, pool) = photos.split_at(distractor_count);
    let pool: Vec<PathBuf> = pool.to_vec();
    let held_out: Vec<PathBuf> = held_out.to_vec();

    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            path,
            cause: source,
        }
    };
    let references_dir = out.join("references");
    let queries_dir = out.join("queries");
    for dir in [&references_dir, &queries_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let _ = std::fs::remove_file(out.join(MANIFEST));

    // Queries: copies of pool photos (cycling when more are asked for than there are), then
    // distractors from held-out photos.
    let plans: Vec<(usize, Option<usize>, &PathBuf)> = (0..copies)
        .map(|i| (i, Some(i % pool.len()), &pool[i % pool.len()]))
        .chain((0..distractor_count).map(|j| (copies + j, None, &held_out[j])))
        .collect();
    progress.start("generating queries", plans.len());
    let fonts = Fonts::load();
    let made: Vec<Result<Vec<Edit>>> = plans
        .par_iter()
        .map(|&(n, _, photo)| {
            let mut rng = ChaCha8Rng::seed_from_u64(
                options.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let background = held_out.choose(&mut rng).or_else(|| pool.choose(&mut rng));
            let (image, edits) = make_query(photo, background, &fonts, &mut rng)?;
            save_jpeg(&image, &queries_dir.join(format!("Q{n:05}.jpg")), 95)?;
            Ok(edits)
        })
        .collect();
    progress.advance(made.len());
    // Pool photos that no query used are decoded too: a reference must be readable.
    let used: std::collections::HashSet<usize> = plans.iter().filter_map(|p| p.1).collect();
    let checked: Vec<(usize, Result<()>)> = (0..pool.len())
        .into_par_iter()
        .filter(|i| !used.contains(i))
        .map(|i| (i, decode_photo(&pool[i]).map(drop)))
        .collect();

    // A photo that cannot be decoded is reported once and left out: no reference, no query.
    let mut unreadable: BTreeMap<PathBuf, String> = BTreeMap::new();
    let outcomes = plans
        .iter()
        .map(|p| p.2)
        .zip(made.iter().map(|r| r.as_ref().err()))
        .chain(checked.iter().map(|(i, r)| (&pool[*i], r.as_ref().err())));
    for (photo, error) in outcomes {
        match error {
            None => {}
            Some(Error::Decode { error: source, .. }) => {
                unreadable
                    .entry(photo.clone())
                    .or_insert_with(|| source.to_string());
            }
            // Not about the photo (a full disk, say): the benchmark cannot be written.
            Some(other) => {
                return Err(Error::Dataset {
                    path: out.to_path_buf(),
                    reason: format!("writing the benchmark failed: {other}"),
                })
            }
        }
    }
    let unreadable_paths: std::collections::HashSet<PathBuf> = unreadable.keys().cloned().collect();
    let unreadable: Vec<Error> = unreadable
        .into_iter()
        .map(|(path, reason)| Error::Dataset { path, reason })
        .collect();
    unreadable.iter().for_each(|e| progress.file_failed(e));

    // References: the readable pool photos under DISC21 ids, linked (copied where links fail).
    let mut reference_ids: Vec<Option<String>> = vec![None; pool.len()];
    let mut references = 0;
    for (i, photo) in pool.iter().enumerate() {
        if unreadable_paths.contains(photo) {
            continue;
        }
        let ext = photo
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("jpg")
            .to_ascii_lowercase();
        let id = format!("R{references:06}");
        let link = references_dir.join(format!("{id}.{ext}"));
        link_or_copy(photo, &link).map_err(io(&link))?;
        reference_ids[i] = Some(id);
        references += 1;
    }
    let queries: Vec<SynthQuery> = plans
        .iter()
        .zip(made)
        .filter_map(|(&(n, reference, _), result)| {
            // A query exists only where its photo decoded, so its reference did too.
            let edits = result.ok()?;
            Some(SynthQuery {
                id: format!("Q{n:05}"),
                reference: reference.map(|r| reference_ids[r].clone().expect("readable")),
                edits,
            })
        })
        .collect();
    let unreadable: Vec<String> = unreadable.iter().map(|e| e.to_string()).collect();
    let benchmark = SynthBenchmark {
        source,
        options: options.clone(),
        references,
        queries,
        unreadable,
        reused: false,
    };
    write_files(out, &benchmark)?;
    Ok(benchmark)
}

/// Per edit kind, the queries (copies only) that carry it.
pub fn queries_by_edit(benchmark: &SynthBenchmark) -> BTreeMap<Edit, Vec<&SynthQuery>> {
    let mut by_edit: BTreeMap<Edit, Vec<&SynthQuery>> = BTreeMap::new();
    for q in benchmark.queries.iter().filter(|q| q.reference.is_some()) {
        for edit in &q.edits {
            by_edit.entry(*edit).or_default().push(q);
        }
    }
    by_edit
}

/// Recall at rank 1 per edit kind, for each model: which edits each model survives.
#[derive(Debug, Clone, PartialEq)]
pub struct EditRecall {
    pub models: Vec<String>,
    /// Per edit kind: its name, how many copy queries carry it (a query with several edits
    /// counts under each), and each model's recall at rank 1, in the order of `models`.
    pub rows: Vec<(String, usize, Vec<f64>)>,
}

impl EditRecall {
    /// Scores each model's predictions against the ground truth, per edit kind.
    pub fn of(
        benchmark: &SynthBenchmark,
        truth: &[GroundTruth],
        results: &[(String, &[Prediction])],
    ) -> Self {
        let ranks: Vec<HashMap<String, Option<usize>>> = results
            .iter()
            .map(|(_, predictions)| rank_by_query(truth, predictions))
            .collect();
        let recall = |ranks: &HashMap<String, Option<usize>>, queries: &[&SynthQuery]| {
            let found = queries
                .iter()
                .filter(|q| ranks.get(&q.id).copied().flatten() == Some(0))
                .count();
            found as f64 / queries.len().max(1) as f64
        };
        let rows = queries_by_edit(benchmark)
            .iter()
            .map(|(edit, queries)| {
                let recalls = ranks.iter().map(|r| recall(r, queries)).collect();
                (edit.name().to_string(), queries.len(), recalls)
            })
            .collect();
        Self {
            models: results.iter().map(|(name, _)| name.clone()).collect(),
            rows,
        }
    }

    /// One model's recall by edit name.
    pub fn of_model(&self, model: &str) -> Option<BTreeMap<String, f64>> {
        let i = self.models.iter().position(|m| m == model)?;
        Some(
            self.rows
                .iter()
                .map(|(edit, _, recalls)| (edit.clone(), recalls[i]))
                .collect(),
        )
    }
}

fn reusable(out: &Path, source: &Path, options: &SynthOptions) -> Option<SynthBenchmark> {
    let text = std::fs::read_to_string(out.join(MANIFEST)).ok()?;
    let manifest: Manifest = serde_json::from_str(&text).ok()?;
    let mut benchmark = manifest.benchmark;
    let same = manifest.generator == GENERATOR_VERSION
        && benchmark.source == source
        && &benchmark.options == options
        && benchmark
            .queries
            .iter()
            .all(|q| out.join("queries").join(format!("{}.jpg", q.id)).is_file());
    benchmark.reused = true;
    same.then_some(benchmark)
}

fn write_files(out: &Path, benchmark: &SynthBenchmark) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| Error::Io {
            path,
            cause: source,
        })
    };
    let mut gt = String::from("query_id,reference_id\n");
    let mut edits = String::from("query_id,reference_id,edits\n");
    for q in &benchmark.queries {
        let reference = q.reference.as_deref().unwrap_or("");
        gt.push_str(&format!("{},{reference}\n", q.id));
        let names: Vec<&str> = q.edits.iter().map(|e| e.name()).collect();
        edits.push_str(&format!("{},{reference},{}\n", q.id, names.join("+")));
    }
    write("ground_truth.csv", gt)?;
    write("edits.csv", edits)?;
    let manifest = Manifest {
        generator: GENERATOR_VERSION,
        benchmark: benchmark.clone(),
    };
    // Written last: its presence says the folder is complete.
    write(
        MANIFEST,
        serde_json::to_string_pretty(&manifest).expect("serialisable"),
    )
}

/// Reads `edits.csv` back (for reports on a benchmark folder).
pub fn read_edits(path: &Path) -> Result<BTreeMap<String, Vec<Edit>>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            let id = fields.next()?.to_string();
            let edits = fields
                .nth(1)?
                .split('+')
                .filter_map(Edit::from_name)
                .collect();
            Some((id, edits))
        })
        .collect())
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if std::os::unix::fs::symlink(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map(|_| ())
}

fn save_jpeg(image: &RgbImage, path: &Path, quality: u8) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    image::codecs::jpeg::JpegEncoder::new_with_quality(BufWriter::new(file), quality)
        .encode_image(image)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::other(e),
        })
}

/// Decodes a photo and applies one to three distinct random edits.
fn make_query(
    photo: &Path,
    background: Option<&PathBuf>,
    fonts: &Fonts,
    rng: &mut ChaCha8Rng,
) -> Result<(RgbImage, Vec<Edit>)> {
    let mut image = decode_photo(photo)?;
    let count = rng.random_range(1..=3);
    let mut edits: Vec<Edit> = Edit::ALL.choose_multiple(rng, count).copied().collect();
    // A background that cannot be decoded (or the photo itself) makes paste a plain
    // downscale into noise: still an edit of the same kind.
    let background = background
        .filter(|b| b.as_path() != photo)
        .and_then(|b| decode_photo(b).ok());
    for edit in &edits {
        image = apply(*edit, image, background.as_ref(), fonts, rng);
    }
    edits.sort();
    Ok((image, edits))
}

/// A photo at the size queries are made from. Large JPEGs decode at reduced size (they are
/// shrunk to `MAX_QUERY_SIDE` anyway).
fn decode_photo(path: &Path) -> Result<RgbImage> {
    decode::decode_file_for(path, Some(MAX_QUERY_SIDE / 2))
        .map(shrink)
        .map_err(|source| Error::Decode {
            path: path.to_path_buf(),
            error: source,
        })
}

fn shrink(image: RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let longest = w.max(h);
    if longest <= MAX_QUERY_SIDE {
        return image;
    }
    let scale = f64::from(MAX_QUERY_SIDE) / f64::from(longest);
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    imageops::resize(&image, nw, nh, FilterType::Triangle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: &str, reference: Option<&str>, edits: &[Edit]) -> SynthQuery {
        SynthQuery {
            id: id.into(),
            reference: reference.map(str::to_string),
            edits: edits.to_vec(),
        }
    }

    fn prediction(query: &str, reference: &str, score: f64) -> Prediction {
        Prediction {
            query: query.into(),
            reference: reference.into(),
            score,
        }
    }

    #[test]
    fn recall_by_edit_counts_each_copy_under_each_of_its_edits() {
        let benchmark = SynthBenchmark {
            source: PathBuf::from("/photos"),
            options: SynthOptions {
                queries: None,
                distractors: 0.2,
                seed: 0,
            },
            references: 2,
            queries: vec![
                query("Q1", Some("R1"), &[Edit::Crop, Edit::Blur]),
                query("Q2", Some("R2"), &[Edit::Crop]),
                query("Q3", None, &[Edit::Text]),
            ],
            unreadable: Vec::new(),
            reused: false,
        };
        let truth = vec![
            GroundTruth {
                query: "Q1".into(),
                reference: "R1".into(),
            },
            GroundTruth {
                query: "Q2".into(),
                reference: "R2".into(),
            },
        ];
        // a: Q1 first, Q2 second. b: Q1 second, Q2 first.
        let a = vec![
            prediction("Q1", "R1", 0.9),
            prediction("Q2", "R9", 0.8),
            prediction("Q2", "R2", 0.5),
            prediction("Q3", "R1", 0.4),
        ];
        let b = vec![
            prediction("Q1", "R5", 0.9),
            prediction("Q1", "R1", 0.1),
            prediction("Q2", "R2", 0.7),
        ];
        let recall = EditRecall::of(
            &benchmark,
            &truth,
            &[("a".into(), a.as_slice()), ("b".into(), b.as_slice())],
        );
        assert_eq!(recall.models, ["a", "b"]);
        assert_eq!(
            recall.rows,
            vec![
                ("crop".to_string(), 2, vec![0.5, 0.5]),
                ("blur".to_string(), 1, vec![1.0, 0.0]),
            ]
        );
        let b_by_edit = recall.of_model("b").unwrap();
        assert_eq!(b_by_edit["blur"], 0.0);
        assert_eq!(b_by_edit["crop"], 0.5);
        assert!(recall.of_model("c").is_none());
    }
}
