//! Shared helpers: fixture paths, the reference embeddings, vector comparisons, and running
//! the `imgsim` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// The real photos shared by the project: `../shared/data/coco128`.
pub fn coco() -> PathBuf {
    root().join("../shared/data/coco128/val2017")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join(name)
}

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub images: Vec<RefImage>,
}

#[derive(Debug, Deserialize)]
pub struct RefImage {
    /// `coco/<file>` or `images/<file>` (relative to tests/fixtures).
    pub image: String,
    pub crop: String,
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub embedding_cls: Vec<f32>,
}

impl RefImage {
    pub fn path(&self) -> PathBuf {
        match self.image.strip_prefix("coco/") {
            Some(file) => coco().join(file),
            None => fixtures().join(&self.image),
        }
    }

    /// PNG inputs decode identically everywhere; JPEG decoders differ slightly.
    pub fn is_png(&self) -> bool {
        self.image.ends_with(".png")
    }
}

pub fn reference(model: &str) -> Reference {
    let path = fixtures()
        .join("reference")
        .join(model)
        .join("embeddings.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub fn reference_crop(model: &str, image: &RefImage) -> image::RgbImage {
    let path = fixtures().join("reference").join(model).join(&image.crop);
    image::open(path).unwrap().into_rgb8()
}

/// ||a - b|| / ||b||
pub fn relative_l2(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let diff: f32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt();
    diff / b.iter().map(|y| y * y).sum::<f32>().sqrt()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The parity bound of an embedding: relative L2 <= 1e-3 for PNG, cosine >= 0.9999 for JPEG.
pub fn within_parity_bound(image: &RefImage, ours: &[f32], reference: &[f32]) -> bool {
    if image.is_png() {
        relative_l2(ours, reference) <= 1e-3
    } else {
        cosine(ours, reference) >= 0.9999
    }
}

/// `imgsim ARGS...` with an empty, private Hugging Face cache and no network use.
pub fn imgsim(args: &[&str]) -> Output {
    imgsim_in(args, &root())
}

pub fn imgsim_in(args: &[&str], dir: &Path) -> Output {
    let cache = std::env::temp_dir().join("imgsim-tests-empty-hf-cache");
    Command::new(env!("CARGO_BIN_EXE_imgsim"))
        .args(args)
        .current_dir(dir)
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run imgsim")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// JSON Lines output parsed back into typed messages.
pub fn parse_lines<T: for<'a> Deserialize<'a>>(out: &str) -> Vec<T> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
