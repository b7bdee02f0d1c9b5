//! The vector-search benchmark behind `imgsim bench ann`: recall@k against exact search and
//! query latency of imgsim's store (LanceDB, exact and IVF-PQ), on the same vectors that the
//! FAISS peer (`bench/peer_faiss.py`) searches in the same run. Reports, never asserts.
//!
//! The vectors are clustered like image embeddings (a mixture of Gaussians around random unit
//! centres, then normalised); uniform random vectors would be an unrealistically hard case for
//! any partition-based index. Queries are perturbed copies of stored vectors, as edited photos
//! are of their originals.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::percentile;
use crate::error::{Error, Result};
use crate::eval::exact_top_k;
use crate::store::{Row, Store};

#[derive(Debug, Clone)]
pub struct AnnConfig {
    pub rows: usize,
    pub dim: usize,
    pub queries: usize,
    pub k: usize,
    pub clusters: usize,
    pub seed: u64,
    /// Where the table and the vector files go.
    pub dir: PathBuf,
    /// Queries run against the exact (unindexed) table; it scans every row, so fewer.
    pub exact_queries: usize,
    /// Another database for the table (its folder, as `--db` gives it: a remote database's
    /// is its local folder); the table is made for the run and dropped after it.
    pub db: Option<PathBuf>,
}

/// One method's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnRow {
    pub method: String,
    pub rows: usize,
    pub build_seconds: Option<f64>,
    pub recall_at_k: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub queries: usize,
}

/// Unit vectors in clusters; deterministic for a seed.
pub fn clustered_vectors(rows: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| normalized((0..dim).map(|_| StandardNormal.sample(&mut rng)).collect()))
        .collect();
    // Spread within a cluster comparable to the spread between near-duplicate photos and
    // merely similar ones.
    let spread = 0.6 / (dim as f32).sqrt();
    let mut out = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        let centre = &centres[rng.random_range(0..centres.len())];
        let v: Vec<f32> = centre
            .iter()
            .map(|c| {
                let n: f32 = StandardNormal.sample(&mut rng);
                c + spread * n
            })
            .collect();
        out.extend(normalized(v));
    }
    out
}

/// Queries: stored vectors with noise (edited copies of stored photos).
pub fn perturbed_queries(data: &[f32], dim: usize, queries: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5151);
    let rows = data.len() / dim;
    let noise = 0.3 / (dim as f32).sqrt();
    let mut out = Vec::with_capacity(queries * dim);
    for _ in 0..queries {
        let i = rng.random_range(0..rows);
        let v: Vec<f32> = data[i * dim..(i + 1) * dim]
            .iter()
            .map(|x| {
                let n: f32 = StandardNormal.sample(&mut rng);
                x + noise * n
            })
            .collect();
        out.extend(normalized(v));
    }
    out
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Raw little-endian f32, row after row (`numpy.fromfile(path, "<f4").reshape(-1, dim)`).
pub fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// The ids of the exact top k of each query.
pub fn ground_truth(
    data: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
) -> Result<Vec<Vec<usize>>> {
    let refs: Vec<&[f32]> = data.chunks(dim).collect();
    let qs: Vec<&[f32]> = queries.chunks(dim).collect();
    Ok(exact_top_k(&qs, &refs, k)?
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| h.index).collect())
        .collect())
}

/// Runs imgsim's side: loads the vectors into a fresh table, measures exact search, builds
/// the IVF-PQ index, measures indexed search. Calls `report` after each method.
pub fn run(
    cfg: &AnnConfig,
    data: &[f32],
    queries: &[f32],
    truth: &[Vec<usize>],
    mut report: impl FnMut(&AnnRow),
) -> Result<Vec<AnnRow>> {
    let (store, model_id) = match &cfg.db {
        Some(db) => {
            let model_id = format!("bench-ann-{}-{}", cfg.rows, std::process::id());
            (Store::open(db, true)?, model_id)
        }
        None => {
            let db = cfg.dir.join("lancedb");
            if db.exists() {
                std::fs::remove_dir_all(&db).map_err(|source| Error::Io {
                    path: db.clone(),
                    cause: source,
                })?;
            }
            (Store::open(&db, true)?, "bench-ann".to_string())
        }
    };
    let table = store.table_or_create("bench", &model_id, cfg.dim)?;
    let measured = measure_table(cfg, &table, data, queries, truth, &mut report);
    drop(table);
    if cfg.db.is_some() {
        store.drop_table(&model_id)?;
    }
    measured
}

/// Appends the vectors as rows whose path is their index ("0", "1", ...), 50,000 a commit.
pub fn fill_table(table: &crate::store::ModelTable<'_>, data: &[f32], dim: usize) -> Result<()> {
    for (chunk_index, chunk) in data.chunks(dim * 50_000).enumerate() {
        let rows: Vec<Row> = chunk
            .chunks(dim)
            .enumerate()
            .map(|(i, v)| Row {
                path: (chunk_index * 50_000 + i).to_string(),
                size: 0,
                mtime_ns: 0,
                hash: String::new(),
                width: 0,
                height: 0,
                indexed_at: 0,
                tags: Vec::new(),
                vector: v.to_vec(),
                meta: Default::default(),
            })
            .collect();
        table.append(&rows)?;
    }
    Ok(())
}

fn measure_table(
    cfg: &AnnConfig,
    table: &crate::store::ModelTable<'_>,
    data: &[f32],
    queries: &[f32],
    truth: &[Vec<usize>],
    report: &mut impl FnMut(&AnnRow),
) -> Result<Vec<AnnRow>> {
    let load = Instant::now();
    fill_table(table, data, cfg.dim)?;
    let load_seconds = load.elapsed().as_secs_f64();

    let mut out = Vec::new();
    let measure = |method: &str, build: Option<f64>, n: usize| -> Result<AnnRow> {
        let mut latencies = Vec::with_capacity(n);
        let mut found = 0usize;
        for (q, truth) in queries.chunks(cfg.dim).zip(truth).take(n) {
            let start = Instant::now();
            let hits = table.nearest(q, cfg.k, None)?;
            latencies.push(start.elapsed().as_secs_f64() * 1000.0);
            found += hits
                .iter()
                .filter(|h| truth.contains(&h.path.parse::<usize>().unwrap_or(usize::MAX)))
                .count();
        }
        latencies.sort_by(f64::total_cmp);
        Ok(AnnRow {
            method: method.to_string(),
            rows: cfg.rows,
            build_seconds: build,
            recall_at_k: found as f64 / (n.max(1) * cfg.k) as f64,
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            queries: n,
        })
    };
    let exact = measure(
        "imgsim (LanceDB, exact)",
        Some(load_seconds),
        cfg.exact_queries.min(cfg.queries),
    )?;
    report(&exact);
    out.push(exact);
    let build = Instant::now();
    table.build_vector_index()?;
    let build_seconds = build.elapsed().as_secs_f64();
    let indexed = measure("imgsim (LanceDB, IVF-PQ)", Some(build_seconds), cfg.queries)?;
    report(&indexed);
    out.push(indexed);
    Ok(out)
}

pub struct AnnPeerRequest<'a> {
    pub python: &'a str,
    pub script: &'a Path,
    pub vectors: &'a Path,
    pub queries: &'a Path,
    pub truth: &'a Path,
    pub dim: usize,
    pub k: usize,
    pub nlist: u32,
    pub m: u32,
    pub nprobe: usize,
    pub refine: usize,
}

/// Runs `bench/peer_faiss.py` and reads its JSON lines.
pub fn run_peer(req: &AnnPeerRequest) -> std::result::Result<Vec<AnnRow>, String> {
    let out = Command::new(req.python)
        .arg(req.script)
        .args(["--vectors", &req.vectors.display().to_string()])
        .args(["--queries", &req.queries.display().to_string()])
        .args(["--truth", &req.truth.display().to_string()])
        .args(["--dim", &req.dim.to_string()])
        .args(["--k", &req.k.to_string()])
        .args(["--nlist", &req.nlist.to_string()])
        .args(["--m", &req.m.to_string()])
        .args(["--nprobe", &req.nprobe.to_string()])
        .args(["--refine", &req.refine.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", req.python))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("peer output {l:?}: {e}")))
        .collect()
}
