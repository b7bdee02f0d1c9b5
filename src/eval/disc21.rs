//! DISC21 (Meta's Image Similarity Challenge 2021) copy detection: the folder layout, the
//! choice of references and queries, and one model's run (embed, search, predict, score).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cache::EmbeddingCache;
use super::metrics::{self, GroundTruth, Metrics, Prediction};
use super::{exact_top_k, extract, ExtractionStats, Image, Progress};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::scan::has_image_extension;

/// Reference folders, in the order they are looked for: the official layout, then the usual
/// alternatives.
pub const REFERENCE_DIRS: &[&str] = &[
    "images/references",
    "references",
    "reference_images",
    "val_ref",
];
pub const QUERY_DIRS: &[&str] = &[
    "images/queries",
    "queries",
    "dev_queries",
    "query_images",
    "val_query",
];
/// Ground-truth files looked for when `--gt` is not given.
pub const GROUND_TRUTH_FILES: &[&str] = &[
    "public_ground_truth.csv",
    "dev_ground_truth.csv",
    "ground_truth.csv",
    "gt.csv",
    "list_files/public_ground_truth.csv",
];

/// Where a DISC21-style benchmark keeps its parts.
#[derive(Debug, Clone)]
pub struct Layout {
    pub references: PathBuf,
    pub queries: PathBuf,
    pub ground_truth: PathBuf,
}

impl Layout {
    /// Finds the parts under `root`; `ground_truth` overrides the search for the CSV.
    pub fn find(root: &Path, ground_truth: Option<&Path>) -> Result<Self> {
        let dataset_error = |reason: String| Error::Dataset {
            path: root.to_path_buf(),
            reason,
        };
        if !root.is_dir() {
            return Err(dataset_error("not a directory".into()));
        }
        let first_dir = |names: &[&str], what: &str| {
            names
                .iter()
                .map(|n| root.join(n))
                .find(|p| p.is_dir())
                .ok_or_else(|| {
                    dataset_error(format!("no {what} folder: looked for {}", names.join(", ")))
                })
        };
        let references = first_dir(REFERENCE_DIRS, "reference")?;
        let queries = first_dir(QUERY_DIRS, "query")?;
        let ground_truth = match ground_truth {
            Some(path) => path.to_path_buf(),
            None => GROUND_TRUTH_FILES
                .iter()
                .map(|n| root.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    dataset_error(format!(
                        "no ground-truth CSV: looked for {}; name one with --gt",
                        GROUND_TRUTH_FILES.join(", ")
                    ))
                })?,
        };
        Ok(Self {
            references,
            queries,
            ground_truth,
        })
    }
}

/// Which queries take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuerySet {
    /// Only queries whose reference is in the pool (the published comparison's setup).
    Matched,
    /// Distractor queries too (the official setup).
    All,
}

/// The references and queries of one evaluation, and what was left out.
#[derive(Debug, Clone)]
pub struct Selection {
    pub references: Vec<Image>,
    pub queries: Vec<Image>,
    /// Pairs whose query and reference both take part.
    pub ground_truth: Vec<GroundTruth>,
    /// Queries that take part without a reference in the pool.
    pub distractors: usize,
    /// Queries named by the ground truth whose file is not in the query folder.
    pub missing_query_files: usize,
    /// Ground-truth pairs whose reference is outside the pool (`--refs`). A query left with
    /// no reference in the pool is dropped with `matched` and a distractor with `all`.
    pub copies_outside_pool: usize,
}

impl Selection {
    /// The first `max_references` references by id, and the queries of `set`.
    pub fn new(layout: &Layout, max_references: Option<usize>, set: QuerySet) -> Result<Self> {
        let mut references = images_by_id(&layout.references)?;
        if let Some(n) = max_references {
            references.truncate(n);
        }
        let pool: HashSet<&str> = references.iter().map(|r| r.id.as_str()).collect();
        let files = images_by_id(&layout.queries)?;
        let query_files: HashMap<&str, &Image> = files.iter().map(|q| (q.id.as_str(), q)).collect();
        let truth = metrics::read_ground_truth(&layout.ground_truth)?;

        // Every query the ground truth names, with its references inside the pool.
        let mut named: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for q in &truth.distractors {
            named.entry(q.as_str()).or_default();
        }
        let mut copies_outside_pool = 0;
        for pair in &truth.pairs {
            let refs = named.entry(pair.query.as_str()).or_default();
            if pool.contains(pair.reference.as_str()) {
                refs.push(pair.reference.as_str());
            } else {
                copies_outside_pool += 1;
            }
        }

        let mut selection = Self {
            references: references.clone(),
            queries: Vec::new(),
            ground_truth: Vec::new(),
            distractors: 0,
            missing_query_files: 0,
            copies_outside_pool,
        };
        for (query, refs) in named {
            if refs.is_empty() && set == QuerySet::Matched {
                continue;
            }
            let Some(file) = query_files.get(query) else {
                selection.missing_query_files += 1;
                continue;
            };
            selection.queries.push((*file).clone());
            if refs.is_empty() {
                selection.distractors += 1;
            }
            selection
                .ground_truth
                .extend(refs.into_iter().map(|r| GroundTruth {
                    query: query.to_string(),
                    reference: r.to_string(),
                }));
        }
        if selection.ground_truth.is_empty() {
            return Err(Error::Dataset {
                path: layout.ground_truth.clone(),
                reason: format!(
                    "no query has its reference among the {} references in the pool{}",
                    selection.references.len(),
                    if max_references.is_some() {
                        " (raise --refs)"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(selection)
    }
}

/// The images of a folder (not recursive), id = file name without extension, sorted by id.
pub fn images_by_id(dir: &Path) -> Result<Vec<Image>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    let mut images = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                cause: source,
            })?
            .path();
        if !has_image_extension(&path) {
            continue;
        }
        let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        images.push(Image {
            id: id.to_string(),
            path: path.clone(),
        });
    }
    images.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = images.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(Error::Dataset {
            path: dir.to_path_buf(),
            reason: format!(
                "two images share the id {}: {} and {}",
                w[0].id,
                w[0].path.display(),
                w[1].path.display()
            ),
        });
    }
    Ok(images)
}

/// One model's copy-detection result.
#[derive(Debug, Clone, Serialize)]
pub struct CopyDetection {
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
    pub metrics: Metrics,
    /// `imgsim dupes`' groups of references and queries at the threshold of precision 0.9,
    /// scored by pairs (copies of one original are duplicates of it and of each other);
    /// `None` when not asked or when precision never reaches 0.9.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<crate::dupes::groups::PairQuality>,
    pub extraction: ExtractionStats,
    /// References that could not be embedded (left out of the pool).
    pub failed_references: usize,
    /// Queries that could not be embedded (they predict nothing: their copies count as not
    /// found).
    pub failed_queries: usize,
}

/// Embeds references and queries, searches each query's top `k`, and scores the predictions.
/// `imgsim dupes` on the benchmark's images (references and queries together) at
/// `threshold`, scored against the ground truth as pairs.
fn group_quality(
    selection: &Selection,
    pool: &[(&Image, &[f32])],
    asked: &[(&Image, &[f32])],
    threshold: f32,
) -> Result<crate::dupes::groups::PairQuality> {
    use crate::dupes::{groups, neighbours};
    let images: Vec<(&Image, &[f32])> = pool.iter().chain(asked).copied().collect();
    let dim = images.first().map_or(0, |(_, v)| v.len());
    let index: HashMap<&str, u32> = images
        .iter()
        .enumerate()
        .map(|(i, (image, _))| (image.id.as_str(), i as u32))
        .collect();
    // Copies of one reference: each with it, and with each other.
    let mut copies: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for pair in &selection.ground_truth {
        if let (Some(&q), Some(&r)) = (
            index.get(pair.query.as_str()),
            index.get(pair.reference.as_str()),
        ) {
            copies.entry(r).or_default().push(q);
        }
    }
    let mut truth = HashSet::new();
    for (reference, queries) in &copies {
        let members: Vec<u32> = std::iter::once(*reference)
            .chain(queries.iter().copied())
            .collect();
        for (i, &a) in members.iter().enumerate() {
            for &b in &members[i + 1..] {
                truth.insert((a.min(b), a.max(b)));
            }
        }
    }
    let flat: Vec<f32> = images.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let links = neighbours::pairs_at_least(
        &flat,
        dim,
        threshold,
        None,
        &mut crate::progress::Quiet,
        &std::sync::atomic::AtomicBool::new(false),
    )?;
    Ok(groups::pair_quality(&groups::cliques(&links, 2), &truth))
}

pub fn run(
    selection: &Selection,
    embedder: &Embedder,
    cache: &mut EmbeddingCache,
    k: usize,
    group: bool,
    progress: &mut dyn Progress,
) -> Result<CopyDetection> {
    let all: Vec<Image> = selection
        .references
        .iter()
        .chain(&selection.queries)
        .cloned()
        .collect();
    let (vectors, extraction) = extract(embedder, cache, &all, progress)?;
    let (reference_vectors, query_vectors) = vectors.split_at(selection.references.len());

    let pool: Vec<(&Image, &[f32])> = selection
        .references
        .iter()
        .zip(reference_vectors)
        .filter_map(|(image, v)| Some((image, v.as_deref()?)))
        .collect();
    let asked: Vec<(&Image, &[f32])> = selection
        .queries
        .iter()
        .zip(query_vectors)
        .filter_map(|(image, v)| Some((image, v.as_deref()?)))
        .collect();
    progress.start("searching", asked.len());
    let pool_vectors: Vec<&[f32]> = pool.iter().map(|(_, v)| *v).collect();
    let query_vectors: Vec<&[f32]> = asked.iter().map(|(_, v)| *v).collect();
    let hits = exact_top_k(&query_vectors, &pool_vectors, k)?;
    progress.advance(asked.len());

    let predictions: Vec<Prediction> = asked
        .iter()
        .zip(&hits)
        .flat_map(|((query, _), hits)| {
            hits.iter().map(|hit| Prediction {
                query: query.id.clone(),
                reference: pool[hit.index].0.id.clone(),
                score: metrics::as_written(hit.score),
            })
        })
        .collect();
    let metrics = metrics::evaluate(&selection.ground_truth, &predictions)?;
    let groups = match metrics.threshold_at_p90 {
        Some(t) if group => Some(group_quality(selection, &pool, &asked, t as f32)?),
        _ => None,
    };
    Ok(CopyDetection {
        predictions,
        metrics,
        groups,
        extraction,
        failed_references: selection.references.len() - pool.len(),
        failed_queries: selection.queries.len() - asked.len(),
    })
}
