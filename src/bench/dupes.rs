//! `imgsim bench dupes`: how long grouping takes at a library's size, and the recall of its
//! pairs against exact all-pairs search. Reports, never asserts.
//!
//! The library is synthetic, shaped like photo embeddings: clustered unit vectors (similar
//! photos, below a duplicate threshold of each other), and a near copy of every tenth (an
//! edited copy: cosine ~0.96 with its original). Exact search over all pairs is n^2 work, so
//! the recall is measured on a seeded sample of rows: every pair that involves one of them.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ann::{clustered_vectors, perturbed_queries};
use crate::dupes::groups::cliques;
use crate::dupes::neighbours::{exact_pairs_of, pairs_at_least, Method};
use crate::error::Result;
use crate::progress::Progress;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DupesFigures {
    pub rows: usize,
    pub dim: usize,
    pub threshold: f32,
    /// `exact` or `lists:N`.
    pub method: String,
    /// Finding the pairs.
    pub pairs_seconds: f64,
    /// Forming the groups from them.
    pub groups_seconds: f64,
    pub pairs: usize,
    pub groups: usize,
    /// Rows whose pairs were checked against exact search.
    pub sampled_rows: usize,
    /// Exact pairs involving a sampled row.
    pub sampled_pairs: usize,
    /// The share of them found.
    pub pair_recall: f64,
    /// With a database (`--db`): writing the vectors into a table there, and reading them
    /// back as `dupes` does (every row), in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_seconds: Option<f64>,
}

/// One measurement at `rows` vectors of `dim`.
pub fn run(
    rows: usize,
    dim: usize,
    threshold: f32,
    sampled: usize,
    seed: u64,
    db: Option<&std::path::Path>,
    progress: &mut dyn Progress,
) -> Result<DupesFigures> {
    let copies = rows / 10;
    let mut vectors = clustered_vectors(rows - copies, dim, ((rows - copies) / 100).max(1), seed);
    vectors.extend(perturbed_queries(&vectors, dim, copies, seed));
    let (mut write_seconds, mut read_seconds) = (None, None);
    if let Some(db) = db {
        // Through a table, as `dupes` reads one: the vectors come back from it.
        let store = crate::store::Store::open(db, true)?;
        let model_id = format!("bench-dupes-{rows}-{}", std::process::id());
        let table = store.table_or_create("bench", &model_id, dim)?;
        let started = Instant::now();
        super::ann::fill_table(&table, &vectors, dim)?;
        write_seconds = Some(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let read = table.all_rows();
        read_seconds = Some(started.elapsed().as_secs_f64());
        drop(table);
        store.drop_table(&model_id)?;
        let mut read = read?;
        read.sort_by_key(|row| row.path.parse::<usize>().unwrap_or(usize::MAX));
        vectors = read.into_iter().flat_map(|row| row.vector).collect();
    }

    let started = Instant::now();
    let method = Method::for_size(rows);
    let links = pairs_at_least(
        &vectors,
        dim,
        threshold,
        Some(method),
        progress,
        &AtomicBool::new(false),
    )?;
    let pairs_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let groups = cliques(&links, 2);
    let groups_seconds = started.elapsed().as_secs_f64();

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xD0_0D);
    let sample_rows: Vec<u32> = sample(&mut rng, rows, sampled.min(rows))
        .into_iter()
        .map(|i| i as u32)
        .collect();
    let truth = exact_pairs_of(&vectors, dim, &sample_rows, threshold)?;
    let found: std::collections::HashSet<(u32, u32)> = links.iter().map(|l| (l.a, l.b)).collect();
    let hit = truth.iter().filter(|l| found.contains(&(l.a, l.b))).count();
    Ok(DupesFigures {
        rows,
        dim,
        threshold,
        method: match method {
            Method::Exact => "exact".into(),
            Method::Lists(n) => format!("lists:{n}"),
        },
        pairs_seconds,
        groups_seconds,
        pairs: links.len(),
        groups: groups.len(),
        sampled_rows: sample_rows.len(),
        sampled_pairs: truth.len(),
        pair_recall: if truth.is_empty() {
            1.0
        } else {
            hit as f64 / truth.len() as f64
        },
        write_seconds,
        read_seconds,
    })
}
