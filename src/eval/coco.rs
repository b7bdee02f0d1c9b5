//! Category retrieval on COCO: each annotated image asks for its `k` nearest other images;
//! a hit is relevant when the two share at least one object category. With words (`--text`,
//! models with a text tower): each category present asks, as "a photo of a {name}", for its
//! `k` nearest images; a hit is relevant when it shows that category (zero-shot retrieval).
//!
//! AP@k of a query = `sum_{i<=k} precision@i * relevant_i / min(k, R)`, with R the number of
//! relevant images in the pool (the query itself excluded); mAP@k averages it over queries
//! with R > 0. precision@k = relevant hits in the top k / k.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache::EmbeddingCache;
use super::metrics::Prediction;
use super::{exact_top_k, extract, ExtractionStats, Image, Progress};
use crate::embed::Embedder;
use crate::error::{Error, Result};

/// The images of a COCO split with the categories each shows.
#[derive(Debug, Clone)]
pub struct CocoSet {
    pub images: Vec<Image>,
    pub categories: Vec<BTreeSet<u32>>,
    /// Category names by id, from the annotation file.
    pub category_names: std::collections::BTreeMap<u32, String>,
    pub annotations: PathBuf,
    /// Images the annotation file lists that are not on disk.
    pub missing_files: usize,
}

#[derive(Deserialize)]
struct Annotations {
    images: Vec<AnnotatedImage>,
    annotations: Vec<Annotation>,
    #[serde(default)]
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct Category {
    id: u32,
    name: String,
}

#[derive(Deserialize)]
struct AnnotatedImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct Annotation {
    image_id: u64,
    category_id: u32,
}

impl CocoSet {
    /// Reads `root/<split>/*.jpg` and `root/annotations/instances_<split>.json`.
    pub fn load(root: &Path, split: &str) -> Result<Self> {
        let images_dir = root.join(split);
        let annotations = root
            .join("annotations")
            .join(format!("instances_{split}.json"));
        let dataset_error = |path: &Path, reason: String| Error::Dataset {
            path: path.to_path_buf(),
            reason,
        };
        if !images_dir.is_dir() {
            return Err(dataset_error(
                root,
                format!("no {split}/ folder of images (COCO layout: {split}/*.jpg and annotations/instances_{split}.json)"),
            ));
        }
        let text = std::fs::read_to_string(&annotations).map_err(|source| Error::Io {
            path: annotations.clone(),
            cause: source,
        })?;
        let parsed: Annotations = serde_json::from_str(&text)
            .map_err(|e| dataset_error(&annotations, format!("not a COCO instances file: {e}")))?;
        let mut by_image: HashMap<u64, BTreeSet<u32>> = HashMap::new();
        for a in &parsed.annotations {
            by_image
                .entry(a.image_id)
                .or_default()
                .insert(a.category_id);
        }
        let mut set = Self {
            images: Vec::new(),
            categories: Vec::new(),
            category_names: parsed
                .categories
                .iter()
                .map(|c| (c.id, c.name.clone()))
                .collect(),
            annotations,
            missing_files: 0,
        };
        let mut listed = parsed.images;
        listed.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        for image in listed {
            // A name, not a path: an annotation file never points outside its folder.
            let plain = Path::new(&image.file_name)
                .file_name()
                .is_some_and(|n| n == image.file_name.as_str());
            let path = images_dir.join(&image.file_name);
            if !plain || !path.is_file() {
                set.missing_files += 1;
                continue;
            }
            set.images.push(Image {
                id: image.file_name.clone(),
                path,
            });
            set.categories
                .push(by_image.remove(&image.id).unwrap_or_default());
        }
        if set.images.is_empty() {
            return Err(dataset_error(
                &images_dir,
                "none of the images the annotation file lists is here".into(),
            ));
        }
        Ok(set)
    }
}

/// One model's retrieval result.
#[derive(Debug, Clone, Serialize)]
pub struct Retrieval {
    pub k: usize,
    pub map_at_k: f64,
    pub precision_at_k: f64,
    /// Mean precision at each rank 1..=k (for the chart).
    pub precision_at_rank: Vec<f64>,
    /// The precision a random ranking would have: the mean share of relevant images in the
    /// pool (COCO has a person in half its images, so this is far from zero).
    pub chance_precision: f64,
    /// Queries scored: embedded, annotated, with at least one relevant image in the pool.
    pub queries: usize,
    pub pool: usize,
    pub extraction: ExtractionStats,
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

pub fn run(
    set: &CocoSet,
    embedder: &Embedder,
    cache: &mut EmbeddingCache,
    k: usize,
    progress: &mut dyn Progress,
) -> Result<Retrieval> {
    let (vectors, extraction) = extract(embedder, cache, &set.images, progress)?;
    let (embedded, pool) = pool_of(&vectors);
    progress.start("searching", pool.len());
    // One more than k: the query finds itself, which does not count.
    let hits = exact_top_k(&pool, &pool, k + 1)?;
    progress.advance(pool.len());

    let mut rankings = Vec::with_capacity(hits.len());
    let mut predictions = Vec::new();
    for (qi, query_hits) in hits.iter().enumerate() {
        let others: Vec<_> = query_hits
            .iter()
            .filter(|h| h.index != qi)
            .take(k)
            .collect();
        for hit in &others {
            predictions.push(Prediction {
                query: set.images[embedded[qi]].id.clone(),
                reference: set.images[embedded[hit.index]].id.clone(),
                score: super::metrics::as_written(hit.score),
            });
        }
        rankings.push(others.iter().map(|h| embedded[h.index]).collect());
    }
    let scores = score(&set.categories, &embedded, &rankings, k);
    if scores.queries == 0 {
        return Err(Error::Dataset {
            path: set.annotations.clone(),
            reason: "no embedded image shares a category with another: nothing to score".into(),
        });
    }
    Ok(Retrieval {
        k,
        map_at_k: scores.map_at_k,
        precision_at_k: scores.precision_at_k,
        precision_at_rank: scores.precision_at_rank,
        chance_precision: scores.chance_precision,
        queries: scores.queries,
        pool: pool.len(),
        extraction,
        predictions,
    })
}

/// The images that were embedded (their indices in the set) and their vectors.
fn pool_of(vectors: &[Option<Vec<f32>>]) -> (Vec<usize>, Vec<&[f32]>) {
    vectors
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.as_deref()?)))
        .unzip()
}

/// The prompt of a category in zero-shot retrieval (CLIP's paper's basic template).
pub fn prompt(category: &str) -> String {
    format!("a photo of a {category}")
}

/// Zero-shot retrieval: each category that some embedded image shows is a text query
/// ([`prompt`]) over all embedded images; relevant = the image shows the category. `embed_text`
/// gives the L2-normalised embedding of a prompt.
pub fn run_text(
    set: &CocoSet,
    embedder: &Embedder,
    embed_text: &dyn Fn(&str) -> Result<Vec<f32>>,
    cache: &mut EmbeddingCache,
    k: usize,
    progress: &mut dyn Progress,
) -> Result<Retrieval> {
    let (vectors, extraction) = extract(embedder, cache, &set.images, progress)?;
    let (embedded, pool) = pool_of(&vectors);
    let present: BTreeSet<u32> = embedded
        .iter()
        .flat_map(|&i| set.categories[i].iter().copied())
        .collect();
    let mut names = Vec::new();
    for id in &present {
        let name = set.category_names.get(id).ok_or_else(|| Error::Dataset {
            path: set.annotations.clone(),
            reason: format!("category {id} has no name in the annotation file"),
        })?;
        names.push((*id, name.clone()));
    }
    if names.is_empty() {
        return Err(Error::Dataset {
            path: set.annotations.clone(),
            reason: "no embedded image shows an annotated category: nothing to score".into(),
        });
    }
    progress.start("searching by words", names.len());
    let mut texts = Vec::with_capacity(names.len());
    for (_, name) in &names {
        texts.push(embed_text(&prompt(name))?);
        progress.advance(1);
    }
    let queries: Vec<&[f32]> = texts.iter().map(Vec::as_slice).collect();
    let hits = exact_top_k(&queries, &pool, k)?;
    let mut predictions = Vec::new();
    let mut ranked = Vec::with_capacity(hits.len());
    for ((id, name), query_hits) in names.iter().zip(&hits) {
        for hit in query_hits {
            predictions.push(Prediction {
                query: prompt(name),
                reference: set.images[embedded[hit.index]].id.clone(),
                score: super::metrics::as_written(hit.score),
            });
        }
        let relevance: Vec<bool> = query_hits
            .iter()
            .map(|h| set.categories[embedded[h.index]].contains(id))
            .collect();
        let total = embedded
            .iter()
            .filter(|&&i| set.categories[i].contains(id))
            .count();
        ranked.push((relevance, total));
    }
    let scores = score_rankings(&ranked, k, pool.len());
    Ok(Retrieval {
        k,
        map_at_k: scores.map_at_k,
        precision_at_k: scores.precision_at_k,
        precision_at_rank: scores.precision_at_rank,
        chance_precision: scores.chance_precision,
        queries: scores.queries,
        pool: pool.len(),
        extraction,
        predictions,
    })
}

struct Scores {
    map_at_k: f64,
    precision_at_k: f64,
    precision_at_rank: Vec<f64>,
    chance_precision: f64,
    queries: usize,
}

/// mAP@k and precision@k of `rankings` (per pool image, the images it retrieved, best first);
/// `pool` holds the image indices that took part.
fn score(
    categories: &[BTreeSet<u32>],
    pool: &[usize],
    rankings: &[Vec<usize>],
    k: usize,
) -> Scores {
    let relevant = |a: usize, b: usize| !categories[a].is_disjoint(&categories[b]);
    let ranked: Vec<(Vec<bool>, usize)> = pool
        .iter()
        .zip(rankings)
        .filter(|(&query, _)| !categories[query].is_empty())
        .map(|(&query, ranked)| {
            let relevance = ranked.iter().map(|&image| relevant(query, image)).collect();
            let total = pool
                .iter()
                .filter(|&&other| other != query && relevant(query, other))
                .count();
            (relevance, total)
        })
        .collect();
    score_rankings(&ranked, k, pool.len().saturating_sub(1))
}

/// mAP@k and precision@k from, per query, whether each of its hits (best first) is relevant
/// and how many relevant images there are among the `candidates` it was searched in. A query
/// with none relevant is not scored.
fn score_rankings(ranked: &[(Vec<bool>, usize)], k: usize, candidates: usize) -> Scores {
    let (mut ap_sum, mut precision_sum, mut chance_sum, mut queries) = (0.0, 0.0, 0.0, 0usize);
    let mut precision_at_rank = vec![0.0; k];
    for (relevance, total_relevant) in ranked {
        if *total_relevant == 0 {
            continue;
        }
        queries += 1;
        chance_sum += *total_relevant as f64 / candidates as f64;
        let (mut found, mut ap) = (0usize, 0.0);
        for (rank, slot) in precision_at_rank.iter_mut().enumerate() {
            // Fewer hits than k: the missing ranks hold nothing relevant.
            if relevance.get(rank).copied().unwrap_or(false) {
                found += 1;
                ap += found as f64 / (rank + 1) as f64;
            }
            *slot += found as f64 / (rank + 1) as f64;
        }
        ap_sum += ap / (*total_relevant).min(k) as f64;
        precision_sum += found as f64 / k as f64;
    }
    let n = queries.max(1) as f64;
    Scores {
        map_at_k: ap_sum / n,
        precision_at_k: precision_sum / n,
        precision_at_rank: precision_at_rank.into_iter().map(|p| p / n).collect(),
        chance_precision: chance_sum / n,
        queries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_map_and_precision() {
        // Image 0 (cat) retrieves 2 (dog), 1 (cat); 1 and 3 are relevant: AP@2 = (1/2) / 2.
        // Image 1 (cat) retrieves 0 (cat), 3 (cat, dog): AP@2 = (1 + 1) / 2.
        // Image 2 (dog) retrieves 3 (dog), 0; only 3 is relevant: AP@2 = 1 / 1.
        // Image 4 has no annotation: not a query.
        let cats = |ids: &[u32]| ids.iter().copied().collect::<BTreeSet<u32>>();
        let categories = vec![cats(&[1]), cats(&[1]), cats(&[2]), cats(&[1, 2]), cats(&[])];
        let rankings = vec![vec![2, 1], vec![0, 3], vec![3, 0], vec![0, 1], vec![0, 1]];
        let s = score(&categories, &[0, 1, 2, 3, 4], &rankings, 2);
        assert_eq!(s.queries, 4);
        // Image 3 (cat, dog) has three relevant images; it finds 0 and 1: AP@2 = 2 / 2.
        assert!((s.map_at_k - (0.25 + 1.0 + 1.0 + 1.0) / 4.0).abs() < 1e-12);
        // precision@2: 1/2, 1, 1/2, 1.
        assert!((s.precision_at_k - 0.75).abs() < 1e-12);
        // precision@1: 0, 1, 1, 1.
        assert!((s.precision_at_rank[0] - 0.75).abs() < 1e-12);
        // Relevant shares of the 4 others: 2/4, 2/4, 1/4, 3/4.
        assert!((s.chance_precision - 0.5).abs() < 1e-12);
    }

    #[test]
    fn text_queries_are_scored_against_every_image_showing_the_category() {
        // "cat" (3 cat images among 5) retrieves cat, dog, cat: AP@3 = (1 + 2/3) / 3.
        // "dog" (1 dog image) retrieves it second: AP@3 = (1/2) / 1.
        // "zebra" (none in the pool) is not scored.
        let ranked = vec![
            (vec![true, false, true], 3),
            (vec![false, true, false], 1),
            (vec![false, false, false], 0),
        ];
        let s = score_rankings(&ranked, 3, 5);
        assert_eq!(s.queries, 2);
        let want = ((1.0 + 2.0 / 3.0) / 3.0 + 0.5) / 2.0;
        assert!((s.map_at_k - want).abs() < 1e-12, "{}", s.map_at_k);
        assert!((s.precision_at_k - (2.0 / 3.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((s.chance_precision - (3.0 / 5.0 + 1.0 / 5.0) / 2.0).abs() < 1e-12);
    }
}
