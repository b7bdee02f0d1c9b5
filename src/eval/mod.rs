//! `imgsim eval`: which model finds the right image. Copy detection on DISC21 (and on
//! DISC21-style benchmarks that `synth` builds from any folder), category retrieval on COCO,
//! and the official metrics for any predictions file.
//!
//! The flow of every benchmark: list the images ([`disc21`], [`coco`], [`synth`]), embed them
//! once per model ([`extract`], with the [`cache`]), search each query exactly
//! ([`exact_top_k`]), score ([`metrics`]), and report ([`report`]).

pub mod cache;
pub mod coco;
pub mod disc21;
pub mod metrics;
pub mod report;
pub mod synth;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::embed::Embedder;
use crate::error::Result;
use cache::{EmbeddingCache, FileKey};

/// One image of a benchmark: its id (`R000123`, `Q00042`, a COCO file name) and its file.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub path: PathBuf,
}

/// How the embeddings of a run were obtained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExtractionStats {
    pub images: usize,
    /// Embedded in this run (the others came from the cache or failed).
    pub embedded: usize,
    pub from_cache: usize,
    pub failed: usize,
    /// Wall time of the embedding itself (decoding included, cache look-ups excluded).
    pub seconds: f64,
    /// `embedded / seconds`; `None` when nothing was embedded.
    pub images_per_second: Option<f64>,
}

pub use crate::progress::{Progress, Quiet};

/// Embeds `images` (from the cache where it has them). A file that fails yields `None` and is
/// reported through `progress`.
pub fn extract(
    embedder: &Embedder,
    cache: &mut EmbeddingCache,
    images: &[Image],
    progress: &mut dyn Progress,
) -> Result<(Vec<Option<Vec<f32>>>, ExtractionStats)> {
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; images.len()];
    let mut stats = ExtractionStats {
        images: images.len(),
        ..Default::default()
    };
    let mut missing: Vec<(usize, Option<FileKey>)> = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let key = FileKey::of(&image.path).ok();
        match key.as_ref().and_then(|k| cache.get(k)) {
            Some(v) => {
                vectors[i] = Some(v.to_vec());
                stats.from_cache += 1;
            }
            None => missing.push((i, key)),
        }
    }
    progress.start("embedding", images.len());
    progress.advance(stats.from_cache);
    let paths: Vec<PathBuf> = missing
        .iter()
        .map(|(i, _)| images[*i].path.clone())
        .collect();
    let started = Instant::now();
    let mut cache_error = None;
    embedder.embed_files(&paths, |j, result| {
        progress.advance(1);
        let (i, key) = &missing[j];
        match result {
            Ok(vector) => {
                if let Some(key) = key {
                    if let Err(e) = cache.insert(key.clone(), vector.clone()) {
                        cache_error.get_or_insert(e);
                    }
                }
                vectors[*i] = Some(vector);
                stats.embedded += 1;
            }
            Err(e) => {
                progress.file_failed(&e);
                stats.failed += 1;
            }
        }
    })?;
    stats.seconds = started.elapsed().as_secs_f64();
    stats.images_per_second =
        (stats.embedded > 0).then(|| stats.embedded as f64 / stats.seconds.max(1e-9));
    cache.flush()?;
    if let Some(e) = cache_error {
        return Err(e);
    }
    Ok((vectors, stats))
}

/// One search hit: the index of a reference and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

/// The `k` most similar references of each query by inner product (cosine, as the vectors
/// are unit length), best first; ties go to the lower index. Exact: every pair is scored.
pub fn exact_top_k(queries: &[&[f32]], references: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>> {
    let k = k.min(references.len());
    if queries.is_empty() || k == 0 {
        return Ok(vec![Vec::new(); queries.len()]);
    }
    let dim = references[0].len();
    let matrix = |rows: &[&[f32]]| -> Result<Tensor> {
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Ok(Tensor::from_vec(flat, (rows.len(), dim), &Device::Cpu)?)
    };
    // A transposed view: the matrix product reads it in place (no second copy of the pool).
    let references_t = matrix(references)?.t()?;
    let mut out = Vec::with_capacity(queries.len());
    // Chunks keep the score matrix small (256 x 1M floats = 1 GiB at most).
    for chunk in queries.chunks(256) {
        let scores: Vec<Vec<f32>> = matrix(chunk)?.matmul(&references_t)?.to_vec2()?;
        for row in scores {
            out.push(best_k(&row, k));
        }
    }
    Ok(out)
}

fn best_k(scores: &[f32], k: usize) -> Vec<Hit> {
    let better = |a: &Hit, b: &Hit| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.index.cmp(&b.index))
    };
    let mut hits: Vec<Hit> = scores
        .iter()
        .enumerate()
        .map(|(index, &score)| Hit { index, score })
        .collect();
    if k < hits.len() {
        hits.select_nth_unstable_by(k - 1, better);
        hits.truncate(k);
    }
    hits.sort_by(better);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_top_k_orders_by_similarity_and_breaks_ties_by_index() {
        let refs: Vec<Vec<f32>> = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![0.6, 0.8],
            vec![1.0, 0.0],
        ];
        let refs: Vec<&[f32]> = refs.iter().map(Vec::as_slice).collect();
        let query = [0.8f32, 0.6];
        let hits = exact_top_k(&[&query], &refs, 3).unwrap().remove(0);
        let order: Vec<usize> = hits.iter().map(|h| h.index).collect();
        // 0.96, then the tie at 0.8 in index order.
        assert_eq!(order, [2, 0, 3]);
        assert!((hits[0].score - 0.96).abs() < 1e-6);
        assert_eq!(hits[1].score, hits[2].score);
        // k larger than the pool gives the whole pool.
        assert_eq!(exact_top_k(&[&query], &refs, 10).unwrap()[0].len(), 4);
    }
}
