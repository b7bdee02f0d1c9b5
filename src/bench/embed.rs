//! Throughput measurements behind `imgsim bench embed`, and the PyTorch peer run beside them.
//! A benchmark, not a test: it reports numbers and asserts nothing about them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::decode;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::preprocess::Preprocess;

/// Images per second of the model alone, on random pixel values of the model's input size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelOnly {
    pub batch_size: usize,
    pub images: usize,
    pub seconds: f64,
    pub images_per_s: f64,
}

/// Images per second from file to embedding: read, decode, preprocess, embed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndToEnd {
    pub images: usize,
    pub failed: usize,
    pub seconds: f64,
    pub images_per_s: f64,
}

/// One side's figures for one model (imgsim's, or the peer's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub model_only: Vec<ModelOnly>,
    pub end_to_end: Option<EndToEnd>,
    /// End to end over the camera-sized photos.
    #[serde(default)]
    pub end_to_end_camera: Option<EndToEnd>,
    /// imgsim: both decode paths; the peer: PIL's open, convert and image processor.
    #[serde(default)]
    pub decode_resize_ms: Option<f64>,
    /// Peak resident memory (MiB) while these figures were measured.
    #[serde(default)]
    pub peak_rss_mb: Option<f64>,
}

/// How far a precision's embeddings are from f32's with the same weights, over the same
/// images: per image the cosine of the two embeddings, and the overlap of each image's 10
/// nearest neighbours among the others (the retrieval a user sees).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fidelity {
    pub images: usize,
    pub mean_cosine: f64,
    pub worst_cosine: f64,
    /// `k` of the neighbour overlap (10, or fewer for a small folder).
    pub k: usize,
    /// Mean over images of |top-k by f32 ∩ top-k by this precision| / k.
    pub top_k_overlap: f64,
}

/// [`Fidelity`] of `other` against `reference` (L2-normalised embeddings of the same images,
/// in the same order; an image either side failed on is left out). `None` under 2 images.
pub fn fidelity(reference: &[Option<Vec<f32>>], other: &[Option<Vec<f32>>]) -> Option<Fidelity> {
    let pairs: Vec<(&[f32], &[f32])> = reference
        .iter()
        .zip(other)
        .filter_map(|(a, b)| Some((a.as_deref()?, b.as_deref()?)))
        .collect();
    let n = pairs.len();
    if n < 2 {
        return None;
    }
    let dot = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    };
    let cosines: Vec<f64> = pairs.iter().map(|(a, b)| dot(a, b)).collect();
    let k = 10.min(n - 1);
    let sides: [Vec<&[f32]>; 2] = [
        pairs.iter().map(|p| p.0).collect(),
        pairs.iter().map(|p| p.1).collect(),
    ];
    let top = |side: usize, i: usize| -> Vec<usize> {
        let vectors = &sides[side];
        let mut scored: Vec<(f64, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| (dot(vectors[i], vectors[j]), j))
            .collect();
        scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        scored.into_iter().take(k).map(|(_, j)| j).collect()
    };
    let overlap: f64 = (0..n)
        .map(|i| {
            let (a, b) = (top(0, i), top(1, i));
            a.iter().filter(|j| b.contains(j)).count() as f64 / k as f64
        })
        .sum::<f64>()
        / n as f64;
    Some(Fidelity {
        images: n,
        mean_cosine: cosines.iter().sum::<f64>() / n as f64,
        worst_cosine: cosines.iter().copied().fold(f64::INFINITY, f64::min),
        k,
        top_k_overlap: overlap,
    })
}

/// Runs `batch_size` images through the model, once to warm up, then until `budget` has passed
/// (at least twice).
pub fn model_only(embedder: &Embedder, batch_size: usize, budget: Duration) -> Result<ModelOnly> {
    let side = embedder.model().preprocess.crop.unwrap_or(224) as usize;
    // Drawn on the CPU (a GPU would need cuRAND) and copied once.
    let pixels = Tensor::randn(
        0f32,
        1f32,
        (batch_size, 3, side, side),
        &candle_core::Device::Cpu,
    )?
    .to_device(embedder.device())?
    .to_dtype(DType::F32)?;
    embedder.embed_pixel_values(&pixels)?;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 2 || start.elapsed() < budget {
        embedder.embed_pixel_values(&pixels)?;
        runs += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let images = runs * batch_size;
    Ok(ModelOnly {
        batch_size,
        images,
        seconds,
        images_per_s: images as f64 / seconds,
    })
}

/// Embeds every file once through the full pipeline.
pub fn end_to_end(embedder: &Embedder, paths: &[PathBuf]) -> Result<EndToEnd> {
    Ok(end_to_end_vectors(embedder, paths)?.0)
}

/// [`end_to_end`], keeping the embeddings (in the order of `paths`; `None` where a file
/// failed).
pub fn end_to_end_vectors(
    embedder: &Embedder,
    paths: &[PathBuf],
) -> Result<(EndToEnd, Vec<Option<Vec<f32>>>)> {
    let start = Instant::now();
    let mut vectors = vec![None; paths.len()];
    embedder.embed_files(paths, |i, r| vectors[i] = r.ok())?;
    let seconds = start.elapsed().as_secs_f64();
    let failed = vectors.iter().filter(|v| v.is_none()).count();
    Ok((
        EndToEnd {
            images: paths.len(),
            failed,
            seconds,
            images_per_s: (paths.len() - failed) as f64 / seconds,
        },
        vectors,
    ))
}

/// Decoding and resizing camera-sized photos: imgsim's full decode, its reduced-size (DCT
/// scaling) decode, and how far apart the model inputs of the two are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecodeResize {
    pub images: usize,
    pub width: u32,
    pub height: u32,
    /// Milliseconds per image, one thread: read, decode, resize and crop (imgsim's full path).
    pub full_ms: f64,
    /// The decoding part of `full_ms`; the rest is resize and crop.
    pub full_decode_ms: f64,
    /// The same with the reduced-size decode that imgsim uses.
    pub reduced_ms: f64,
    /// The decoding part of `reduced_ms`.
    pub reduced_decode_ms: f64,
    /// Mean absolute difference of the 8-bit model inputs, full vs reduced, in units of 1/255:
    /// the mean over images, and the largest of any image.
    pub mean_abs_diff: f64,
    pub max_image_abs_diff: f64,
}

/// Writes `count` camera-sized JPEGs (the shorter side 3000 px, quality 90), upscaled from
/// `sources`, into `dir`.
pub fn make_camera_photos(sources: &[PathBuf], dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    use crate::resize::{resize_window, Filter};
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    let mut out = Vec::new();
    for src in sources.iter().take(count) {
        let Ok(image) = decode::decode_file(src) else {
            continue;
        };
        let (w, h) = image.dimensions();
        let (cw, ch) = if w >= h { (4000, 3000) } else { (3000, 4000) };
        let big = resize_window(&image, cw, ch, (0, 0, cw, ch), Filter::Bicubic);
        let path = dir
            .join(src.file_name().unwrap_or_default())
            .with_extension("jpg");
        let file = std::fs::File::create(&path).map_err(|source| Error::Io {
            path: path.clone(),
            cause: source,
        })?;
        image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90)
            .encode_image(&big)
            .map_err(|e| Error::Io {
                path: path.clone(),
                cause: std::io::Error::other(e),
            })?;
        out.push(path);
    }
    Ok(out)
}

/// Times both decode paths on one thread and compares their model inputs.
pub fn decode_resize(paths: &[PathBuf], preprocess: &Preprocess) -> Result<DecodeResize> {
    // Decode and resize are timed apart: (decode, resize) seconds per path.
    // The first photo's decoded size, for the report.
    let mut first_size = (0, 0);
    let mut run = |shortest_edge: Option<u32>| -> Result<(Vec<image::RgbImage>, f64, f64)> {
        let (mut inputs, mut decode_s, mut resize_s) = (Vec::new(), 0.0, 0.0);
        for path in paths {
            let start = Instant::now();
            let image = decode_for_bench(path, shortest_edge)?;
            decode_s += start.elapsed().as_secs_f64();
            if shortest_edge.is_none() && inputs.is_empty() {
                first_size = image.dimensions();
            }
            let start = Instant::now();
            inputs.push(preprocess.resize_and_crop(&image));
            resize_s += start.elapsed().as_secs_f64();
        }
        Ok((inputs, decode_s, resize_s))
    };
    let per_image_ms = |s: f64| s * 1000.0 / paths.len() as f64;
    let (full, full_decode, full_resize) = run(None)?;
    let (reduced, reduced_decode, reduced_resize) = run(preprocess.shortest_edge)?;
    let full_ms = per_image_ms(full_decode + full_resize);
    let reduced_ms = per_image_ms(reduced_decode + reduced_resize);
    let diffs: Vec<f64> = full
        .iter()
        .zip(&reduced)
        .map(|(a, b)| {
            let total: u64 = a
                .as_raw()
                .iter()
                .zip(b.as_raw())
                .map(|(x, y)| u64::from(x.abs_diff(*y)))
                .sum();
            total as f64 / a.as_raw().len() as f64
        })
        .collect();
    Ok(DecodeResize {
        images: paths.len(),
        width: first_size.0,
        height: first_size.1,
        full_ms,
        full_decode_ms: per_image_ms(full_decode),
        reduced_ms,
        reduced_decode_ms: per_image_ms(reduced_decode),
        mean_abs_diff: diffs.iter().sum::<f64>() / diffs.len() as f64,
        max_image_abs_diff: diffs.iter().cloned().fold(0.0, f64::max),
    })
}

fn decode_for_bench(path: &Path, shortest_edge: Option<u32>) -> Result<image::RgbImage> {
    decode::decode_file_for(path, shortest_edge).map_err(|source| Error::Decode {
        path: path.to_path_buf(),
        error: source,
    })
}

/// What the PyTorch peer script is asked to measure.
pub struct PeerRequest<'a> {
    pub python: &'a str,
    pub script: &'a Path,
    pub family: &'a str,
    /// The architecture (`config.json` fields) to build with random weights.
    pub architecture: &'a serde_json::Value,
    pub images: Option<&'a Path>,
    pub camera: Option<&'a Path>,
    pub batch_sizes: &'a [usize],
    pub threads: usize,
    pub seconds: f64,
    /// f32, bf16 (autocast on the CPU, the whole model on a GPU), int8 (dynamic quantisation
    /// of the linear layers; CPU) or f16 (the whole model; GPU).
    pub precision: &'a str,
    /// `cpu` or `cuda`.
    pub device: &'a str,
}

/// Runs the committed PyTorch + transformers peer script and reads its JSON figures.
pub fn run_peer(req: &PeerRequest) -> std::result::Result<Figures, String> {
    let mut cmd = Command::new(req.python);
    cmd.arg(req.script)
        .args(["--family", req.family])
        .args(["--architecture", &req.architecture.to_string()])
        .args(["--threads", &req.threads.to_string()])
        .args(["--seconds", &req.seconds.to_string()])
        .args(["--precision", req.precision])
        .args(["--device", req.device]);
    for b in req.batch_sizes {
        cmd.args(["--batch-size", &b.to_string()]);
    }
    if let Some(images) = req.images {
        cmd.arg("--images").arg(images);
    }
    if let Some(camera) = req.camera {
        cmd.arg("--camera").arg(camera);
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", req.python))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "the peer script failed ({}): {last}",
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("the peer script printed no figures ({e})"))
}

#[cfg(test)]
mod fidelity_tests {
    use super::*;

    fn unit(v: &[f32]) -> Option<Vec<f32>> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Some(v.iter().map(|x| x / n).collect())
    }

    #[test]
    fn equal_embeddings_are_faithful_and_a_swap_of_neighbours_is_seen() {
        let reference: Vec<_> = (0..12)
            .map(|i| unit(&[1.0, i as f32 * 0.1, (i * i) as f32 * 0.01]))
            .collect();
        let same = fidelity(&reference, &reference).unwrap();
        assert_eq!(same.images, 12);
        assert!((same.mean_cosine - 1.0).abs() < 1e-6);
        assert_eq!(same.k, 10);
        assert_eq!(same.top_k_overlap, 1.0);
        // Image 0 moved far away: its own cosine drops, and it leaves others' top 10.
        let mut moved = reference.clone();
        moved[0] = unit(&[-1.0, 0.0, 0.0]);
        let f = fidelity(&reference, &moved).unwrap();
        assert!(f.worst_cosine < 0.0, "{f:?}");
        assert!(f.top_k_overlap < 1.0, "{f:?}");
        // A failed image is left out on both sides.
        let mut failed = reference.clone();
        failed[3] = None;
        assert_eq!(fidelity(&reference, &failed).unwrap().images, 11);
        assert_eq!(fidelity(&reference[..1], &reference[..1]), None);
    }
}
