//! Throughput measurements behind `imgsim bench embed`, and the PyTorch peer run beside them.
//! A benchmark, not a test: it reports numbers and asserts nothing about them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::embed::Embedder;
use crate::error::Result;

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

/// What the PyTorch peer script is asked to measure.
pub struct PeerRequest<'a> {
    pub python: &'a str,
    pub script: &'a Path,
    pub family: &'a str,
    /// The architecture (`config.json` fields) to build with random weights.
    pub architecture: &'a serde_json::Value,
    pub images: Option<&'a Path>,
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
