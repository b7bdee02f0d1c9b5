//! Every pair of vectors at or above a cosine threshold, without an all-pairs matrix.
//!
//! Up to [`EXACT_UP_TO`] vectors, the pairs are exact: blocks of rows against the rows after
//! them, one matrix product per block (never more than a block's scores in memory). Past
//! that, an inverted-file index built here, in memory: spherical k-means puts the vectors in
//! about sqrt(n) lists, and each list is compared with itself and the [`PROBES`] lists whose
//! centres are nearest to its own, again one matrix product per block; a vector near the
//! border of its list is also a guest of the next lists. Duplicates are very
//! close, so they sit in the same or neighbouring lists: the pairs found against exact search
//! are measured by `imgsim bench dupes` (recall of pairs), not assumed. The work is
//! ~n^1.5 * PROBES * dim instead of n^2 * dim: 1M vectors are ~1,000x less work than exact.
//!
//! Vectors are expected L2-normalised (imgsim stores them so), so a dot product is a cosine.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::groups::Link;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Below this many vectors, every pair is scored.
pub const EXACT_UP_TO: usize = 20_000;
/// Lists each list is compared with, its own included.
pub const PROBES: usize = 10;
/// A vector whose next nearest centres score within this much of its nearest is a guest of
/// their lists too (at most [`GUEST_LISTS`] of them). Measured by `imgsim bench dupes` at 1M
/// rows: without guests pair recall 0.9686; one list within 0.05: 0.9891 (827 pairs); two
/// lists within 0.08: 0.9927 (827 pairs), 470 s to pair.
const BORDER: f32 = 0.08;
const GUEST_LISTS: usize = 2;
/// Rows per matrix product (the scores of one block: BLOCK x candidates floats).
const BLOCK: usize = 1024;
const KMEANS_ITERATIONS: usize = 10;
/// Columns per matrix product of the exact check of a sample.
const TRUTH_COLUMNS: usize = 65_536;
/// Training vectors per list for k-means.
const TRAIN_PER_LIST: usize = 64;

/// How the pairs are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    Exact,
    /// The in-memory inverted file, with this many lists.
    Lists(usize),
}

impl Method {
    /// Exact up to [`EXACT_UP_TO`] vectors; past that, about sqrt(n) lists.
    pub fn for_size(n: usize) -> Self {
        if n <= EXACT_UP_TO {
            Method::Exact
        } else {
            Method::Lists(((n as f64).sqrt().round() as usize).max(1))
        }
    }
}

/// The pairs `(a < b)` of rows of `vectors` (row-major, `dim` wide) whose cosine is at least
/// `threshold`. `method`: `None` chooses by size. Returns `Error::Stopped` once `stop` is set.
pub fn pairs_at_least(
    vectors: &[f32],
    dim: usize,
    threshold: f32,
    method: Option<Method>,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Vec<Link>> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    if n < 2 {
        return Ok(Vec::new());
    }
    let method = method.unwrap_or(Method::for_size(n));
    let mut links = match method {
        Method::Exact => exact(vectors, dim, n, threshold, progress, stop)?,
        Method::Lists(lists) => by_lists(vectors, dim, n, lists, threshold, progress, stop)?,
    };
    links.sort_by_key(|l| (l.a, l.b));
    links.dedup_by(|x, y| (x.a, x.b) == (y.a, y.b));
    Ok(links)
}

fn exact(
    vectors: &[f32],
    dim: usize,
    n: usize,
    threshold: f32,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Vec<Link>> {
    let all: Vec<u32> = (0..n as u32).collect();
    let mut links = Vec::new();
    progress.start("comparing every pair", n);
    for start in (0..n).step_by(BLOCK) {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Stopped);
        }
        let end = (start + BLOCK).min(n);
        // The block against itself and every row after it: each pair once.
        scores_above(
            vectors,
            dim,
            &all[start..end],
            &all[start..],
            threshold,
            false,
            &mut links,
        )?;
        progress.advance(end - start);
    }
    Ok(links)
}

fn by_lists(
    vectors: &[f32],
    dim: usize,
    n: usize,
    lists: usize,
    threshold: f32,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Vec<Link>> {
    let lists = lists.clamp(1, n);
    let centres = kmeans(vectors, dim, n, lists, stop)?;
    // Each vector in the list of its nearest centre.
    // Each vector in the list of its nearest centre (its own), and, when it lies near the
    // border with the second nearest, in that list too as a guest: a duplicate across the
    // border is then met from either side.
    let nearest = nearest_centres(vectors, dim, &centres, (1 + GUEST_LISTS).min(lists))?;
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); lists];
    let mut guests: Vec<Vec<u32>> = vec![Vec::new(); lists];
    let centre = |c: u32| &centres[c as usize * dim..(c as usize + 1) * dim];
    for (i, best) in nearest.iter().enumerate() {
        members[best[0] as usize].push(i as u32);
        let v = &vectors[i * dim..(i + 1) * dim];
        let dot = |c: &[f32]| v.iter().zip(c).map(|(x, y)| x * y).sum::<f32>();
        let own = dot(centre(best[0]));
        for &next in &best[1..] {
            if dot(centre(next)) >= own - BORDER {
                guests[next as usize].push(i as u32);
            }
        }
    }
    // Each list's neighbouring lists, by their centres.
    let probes = nearest_centres(&centres, dim, &centres, PROBES.min(lists))?;
    let mut links = Vec::new();
    progress.start("comparing neighbouring images", n);
    for (list, own) in members.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Stopped);
        }
        if own.is_empty() {
            continue;
        }
        let mut candidates: Vec<u32> = probes[list]
            .iter()
            .flat_map(|&p| {
                members[p as usize]
                    .iter()
                    .chain(&guests[p as usize])
                    .copied()
            })
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        // Either side of a pair may be the one whose list probes the other's (neighbouring
        // lists are not a symmetric relation): every pair found is kept, and pairs met twice
        // are merged at the end.
        for block in own.chunks(BLOCK) {
            scores_above(
                vectors,
                dim,
                block,
                &candidates,
                threshold,
                true,
                &mut links,
            )?;
        }
        progress.advance(own.len());
    }
    Ok(links)
}

/// The exact pairs `(a < b)` at or above `threshold` that involve one of `rows`: the ground
/// truth for the recall of [`pairs_at_least`] on a sample (`imgsim bench dupes`).
pub fn exact_pairs_of(
    vectors: &[f32],
    dim: usize,
    rows: &[u32],
    threshold: f32,
) -> Result<Vec<Link>> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    let all: Vec<u32> = (0..n as u32).collect();
    let mut links = Vec::new();
    // Blocks of rows against columns of [`TRUTH_COLUMNS`]: the scores in memory at once stay
    // BLOCK x TRUTH_COLUMNS floats (256 MiB) whatever n is (the whole width peaked at 16 GB
    // for 1M rows).
    for block in rows.chunks(BLOCK) {
        for columns in all.chunks(TRUTH_COLUMNS) {
            scores_above(vectors, dim, block, columns, threshold, true, &mut links)?;
        }
    }
    links.sort_by_key(|l| (l.a, l.b));
    links.dedup_by_key(|l| (l.a, l.b));
    Ok(links)
}

/// Appends the pairs with `a` in `rows` and `b` in `candidates` scoring at least `threshold`,
/// as `(min, max)`: only those with `a < b` (each pair once when every row meets every later
/// one), or with `both_ways`, every `a != b` (the caller merges pairs met twice).
fn scores_above(
    vectors: &[f32],
    dim: usize,
    rows: &[u32],
    candidates: &[u32],
    threshold: f32,
    both_ways: bool,
    links: &mut Vec<Link>,
) -> Result<()> {
    if rows.is_empty() || candidates.is_empty() {
        return Ok(());
    }
    let scores = products(vectors, dim, rows, candidates)?;
    for (r, &a) in rows.iter().enumerate() {
        let line = &scores[r * candidates.len()..(r + 1) * candidates.len()];
        for (c, &score) in line.iter().enumerate() {
            let b = candidates[c];
            if score >= threshold && (b > a || (both_ways && b < a)) {
                links.push(Link {
                    a: a.min(b),
                    b: a.max(b),
                    score,
                });
            }
        }
    }
    Ok(())
}

/// The dot products of `rows` with `columns` (rows of `vectors`), row-major.
fn products(vectors: &[f32], dim: usize, rows: &[u32], columns: &[u32]) -> Result<Vec<f32>> {
    let gather = |ids: &[u32]| -> Result<Tensor> {
        let mut flat = Vec::with_capacity(ids.len() * dim);
        for &i in ids {
            flat.extend_from_slice(&vectors[i as usize * dim..(i as usize + 1) * dim]);
        }
        Ok(Tensor::from_vec(flat, (ids.len(), dim), &Device::Cpu)?)
    };
    let scores = gather(rows)?.matmul(&gather(columns)?.t()?)?;
    Ok(scores.flatten_all()?.to_vec1()?)
}

/// For each row of `vectors`, the indices of its `k` nearest `centres`, nearest first.
fn nearest_centres(
    vectors: &[f32],
    dim: usize,
    centres: &[f32],
    k: usize,
) -> Result<Vec<Vec<u32>>> {
    let n = vectors.len() / dim;
    let lists = centres.len() / dim;
    let all_centres: Vec<u32> = (0..lists as u32).collect();
    let centres_t = { Tensor::from_slice(centres, (lists, dim), &Device::Cpu)?.t()? };
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let block = Tensor::from_slice(
            &vectors[start * dim..end * dim],
            (end - start, dim),
            &Device::Cpu,
        )?;
        let scores: Vec<f32> = block.matmul(&centres_t)?.flatten_all()?.to_vec1()?;
        for line in scores.chunks(lists) {
            let mut order = all_centres.clone();
            let k = k.min(lists);
            order.select_nth_unstable_by(k - 1, |&x, &y| {
                line[y as usize]
                    .total_cmp(&line[x as usize])
                    .then(x.cmp(&y))
            });
            order.truncate(k);
            order.sort_by(|&x, &y| {
                line[y as usize]
                    .total_cmp(&line[x as usize])
                    .then(x.cmp(&y))
            });
            out.push(order);
        }
    }
    Ok(out)
}

/// Spherical k-means (cosine) on a seeded sample: `lists` unit centres, row-major.
fn kmeans(
    vectors: &[f32],
    dim: usize,
    n: usize,
    lists: usize,
    stop: &AtomicBool,
) -> Result<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x1D5);
    let mut ids: Vec<usize> = (0..n).collect();
    ids.shuffle(&mut rng);
    ids.truncate((lists * TRAIN_PER_LIST).min(n));
    let train: Vec<f32> = ids
        .iter()
        .flat_map(|&i| vectors[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let t = ids.len();
    // Start from distinct training vectors.
    let mut centres: Vec<f32> = train[..lists * dim].to_vec();
    for _ in 0..KMEANS_ITERATIONS {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Stopped);
        }
        let assigned = nearest_centres(&train, dim, &centres, 1)?;
        let mut sums = vec![0f32; lists * dim];
        let mut counts = vec![0usize; lists];
        for (i, best) in assigned.iter().enumerate() {
            let c = best[0] as usize;
            counts[c] += 1;
            for (s, v) in sums[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&train[i * dim..(i + 1) * dim])
            {
                *s += v;
            }
        }
        for c in 0..lists {
            let centre = &mut sums[c * dim..(c + 1) * dim];
            let norm = centre.iter().map(|x| x * x).sum::<f32>().sqrt();
            if counts[c] == 0 || norm == 0.0 {
                // An empty list restarts at a training vector (seeded choice).
                let pick = (c * 7919 + 13) % t;
                centre.copy_from_slice(&train[pick * dim..(pick + 1) * dim]);
            } else {
                centre.iter_mut().for_each(|x| *x /= norm);
            }
        }
        centres = sums;
    }
    Ok(centres)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Quiet;
    use rand::Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// Clustered unit vectors, and a near copy of every tenth one.
    fn library(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect())
            .collect();
        let mut out = Vec::new();
        let mut rows = 0;
        while rows < n {
            let c = &centres[rng.random_range(0..centres.len())];
            let v: Vec<f32> = c.iter().map(|x| x + 1.5 * normal(&mut rng)).collect();
            out.extend(unit(&v));
            rows += 1;
            if rows % 10 == 0 && rows < n {
                let near: Vec<f32> = v.iter().map(|x| x + 0.1 * normal(&mut rng)).collect();
                out.extend(unit(&near));
                rows += 1;
            }
        }
        out
    }

    fn normal(rng: &mut ChaCha8Rng) -> f32 {
        StandardNormal.sample(rng)
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    fn brute_force(vectors: &[f32], dim: usize, threshold: f32) -> Vec<(u32, u32)> {
        let n = vectors.len() / dim;
        let mut out = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                let dot: f32 = vectors[a * dim..(a + 1) * dim]
                    .iter()
                    .zip(&vectors[b * dim..(b + 1) * dim])
                    .map(|(x, y)| x * y)
                    .sum();
                if dot >= threshold {
                    out.push((a as u32, b as u32));
                }
            }
        }
        out
    }

    fn found(links: &[Link]) -> Vec<(u32, u32)> {
        links.iter().map(|l| (l.a, l.b)).collect()
    }

    #[test]
    fn exact_pairs_equal_brute_force_across_blocks() {
        let dim = 16;
        let vectors = library(2_500, dim, 1);
        let links = pairs_at_least(
            &vectors,
            dim,
            0.9,
            Some(Method::Exact),
            &mut Quiet,
            &AtomicBool::new(false),
        )
        .unwrap();
        let expected = brute_force(&vectors, dim, 0.9);
        assert!(expected.len() > 200, "{}", expected.len());
        assert_eq!(found(&links), expected);
        assert!(links.iter().all(|l| l.a < l.b && l.score >= 0.9));
    }

    #[test]
    fn lists_find_the_near_copies() {
        let dim = 16;
        let vectors = library(3_000, dim, 2);
        let expected = brute_force(&vectors, dim, 0.95);
        let links = pairs_at_least(
            &vectors,
            dim,
            0.95,
            Some(Method::Lists(40)),
            &mut Quiet,
            &AtomicBool::new(false),
        )
        .unwrap();
        let found = found(&links);
        // Never a pair below the threshold, and nearly all of the real ones.
        assert!(found.iter().all(|p| expected.binary_search(p).is_ok()));
        let recall = found.len() as f64 / expected.len() as f64;
        assert!(recall >= 0.97, "{recall} of {}", expected.len());
    }

    #[test]
    fn a_stop_ends_the_work() {
        let vectors = library(100, 8, 3);
        let stop = AtomicBool::new(true);
        assert!(matches!(
            pairs_at_least(&vectors, 8, 0.9, None, &mut Quiet, &stop),
            Err(Error::Stopped)
        ));
        assert!(
            pairs_at_least(&[], 8, 0.9, None, &mut Quiet, &AtomicBool::new(false))
                .unwrap()
                .is_empty()
        );
    }
}
