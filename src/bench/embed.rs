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
}

/// Runs `batch_size` images through the model, once to warm up, then until `budget` has passed
/// (at least twice).
pub fn model_only(embedder: &Embedder, batch_size: usize, budget: Duration) -> Result<ModelOnly> {
    let side = embedder.model().preprocess.crop.unwrap_or(224) as usize;
    let pixels = Tensor::randn(0f32, 1f32, (batch_size, 3, side, side), embedder.device())?
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
    let start = Instant::now();
    let mut failed = 0;
    embedder.embed_files(paths, |_, r| failed += usize::from(r.is_err()))?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(EndToEnd {
        images: paths.len(),
        failed,
        seconds,
        images_per_s: (paths.len() - failed) as f64 / seconds,
    })
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
}

/// Runs the committed PyTorch + transformers peer script and reads its JSON figures.
pub fn run_peer(req: &PeerRequest) -> std::result::Result<Figures, String> {
    let mut cmd = Command::new(req.python);
    cmd.arg(req.script)
        .args(["--family", req.family])
        .args(["--architecture", &req.architecture.to_string()])
        .args(["--threads", &req.threads.to_string()])
        .args(["--seconds", &req.seconds.to_string()]);
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
