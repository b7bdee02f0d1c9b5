//! The embedding side of the GPU check (`scripts/gpu-check.sh`): imgsim's embedding pipeline
//! alone, without the index, so that its CUDA build is small enough to carry to a GPU machine
//! (the whole `imgsim` links LanceDB and does not fit in what a run may carry there).
//!
//! ```text
//! gpu_check parity --device cuda         # the parity fixtures against the reference
//! gpu_check bench --device cuda --model-dir CLIP --model-dir DINOV2 --images DIR \
//!     --camera 12 --batch-size 1,16,64,256 --precision f32,f16
//! ```
//!
//! Prints one JSON line per result. Exit codes: 0 all good, 1 a parity bound failed, 2 an
//! error. Built by `scripts/build-cuda.sh --check-binary`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use imgsim::bench::{self, EndToEnd};
use imgsim::device::DeviceChoice;
use imgsim::embed::Embedder;
use imgsim::models::{Model, Pooling, Precision, WeightsSource};
use serde::Deserialize;
use serde_json::json;

#[derive(Parser)]
#[command(about = "imgsim's embedding pipeline on a GPU: parity and throughput")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The parity tests' images through the pipeline, against the committed reference
    /// embeddings, with the CPU tests' bounds (f32); the half precisions are reported beside.
    Parity(ParityArgs),
    /// Images/s of the model alone at each batch size and end to end over folders, and the
    /// cosine of each precision's embeddings with f32's.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct ParityArgs {
    #[arg(long, default_value = "tests/fixtures")]
    fixtures: PathBuf,
    /// Where the references' `coco/` images are.
    #[arg(long, default_value = "../shared/data/coco128/val2017")]
    coco: PathBuf,
    /// Precisions compared with the reference without a bound (their distance is reported).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f16,bf16")]
    also: Vec<Precision>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Model folders in Hugging Face layout (repeat the flag).
    #[arg(long, required = true)]
    model_dir: Vec<PathBuf>,
    /// Photos for the end-to-end runs (read, decode, preprocess, embed).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Also make this many camera-sized photos (4000x3000 JPEGs upscaled from --images) and
    /// embed them end to end.
    #[arg(long, default_value_t = 0)]
    camera: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    batch_size: Vec<usize>,
    /// Batch of the end-to-end runs [default: the device's, as `imgsim index` uses].
    #[arg(long)]
    end_to_end_batch: Option<usize>,
    /// Seconds of work behind each model-only figure.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Seconds of work behind each end-to-end figure (the folder is repeated).
    #[arg(long, default_value_t = 10.0)]
    min_seconds: f64,
    /// f32 first; the others are compared with it.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,f16")]
    precision: Vec<Precision>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Parity(args) => parity(&args),
        Command::Bench(args) => run_bench(&args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("gpu_check: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn device(choice: DeviceChoice) -> anyhow::Result<candle_core::Device> {
    let device = imgsim::device::select(choice)?;
    if let Some(why) = imgsim::device::auto_fallback_reason() {
        eprintln!("gpu_check: {why}");
    }
    Ok(device)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Deserialize)]
struct Reference {
    images: Vec<RefImage>,
}

#[derive(Deserialize)]
struct RefImage {
    image: String,
    embedding: Vec<f32>,
    #[serde(default)]
    embedding_cls: Vec<f32>,
}

/// Runs every reference image through the pipeline; true when every f32 result is within
/// the CPU tests' bound (tests/integration/util.rs, `within_parity_bound`).
fn parity(args: &ParityArgs) -> anyhow::Result<bool> {
    let device = device(args.device)?;
    let mut all_ok = true;
    let cases = [
        ("tiny-clip", None),
        ("tiny-dinov2", None),
        ("tiny-dinov2", Some(Pooling::Cls)),
    ];
    for (name, pooling) in cases {
        let dir = args.fixtures.join(name);
        let file = args
            .fixtures
            .join("reference")
            .join(name)
            .join("embeddings.json");
        let reference: Reference = serde_json::from_str(
            &std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?,
        )
        .with_context(|| format!("{}", file.display()))?;
        let paths: Vec<PathBuf> = reference
            .images
            .iter()
            .map(|i| match i.image.strip_prefix("coco/") {
                Some(f) => args.coco.join(f),
                None => args.fixtures.join(&i.image),
            })
            .collect();
        let master = Model::load(&WeightsSource::Dir(dir), pooling, &device)?;
        for precision in std::iter::once(Precision::F32).chain(args.also.iter().copied()) {
            let model = whole_network(&master, precision)?;
            let embedder = Embedder::new(model, device.clone()).batch_size(3);
            let mut ours: Vec<Option<imgsim::Result<Vec<f32>>>> =
                (0..paths.len()).map(|_| None).collect();
            embedder.embed_files(&paths, |i, r| ours[i] = Some(r))?;
            for ((image, path), ours) in reference.images.iter().zip(&paths).zip(ours) {
                let theirs = if pooling == Some(Pooling::Cls) {
                    &image.embedding_cls
                } else {
                    &image.embedding
                };
                let ours = ours
                    .context("no result")?
                    .with_context(|| format!("{}", path.display()))?;
                let (rel, cos) = (relative_l2(&ours, theirs), cosine(&ours, theirs));
                // PNGs decode identically everywhere; JPEG decoders differ slightly.
                let exact_pixels = image.image.ends_with(".png") || cfg!(feature = "turbojpeg");
                let ok = if precision != Precision::F32 {
                    None
                } else if exact_pixels {
                    Some(rel <= 1e-3)
                } else {
                    Some(cos >= 0.9999)
                };
                all_ok &= ok != Some(false);
                println!(
                    "{}",
                    json!({
                        "check": "parity",
                        "model": name,
                        "pooling": if pooling == Some(Pooling::Cls) { "cls" } else { "default" },
                        "precision": precision.name(),
                        "device": imgsim::device::describe(&device),
                        "image": image.image,
                        "relative_l2": rel,
                        "cosine": cos,
                        "bound": if precision != Precision::F32 { "none (reported)" }
                                 else if exact_pixels { "relative L2 <= 1e-3" }
                                 else { "cosine >= 0.9999" },
                        "ok": ok,
                    })
                );
            }
        }
    }
    Ok(all_ok)
}

/// `precision` as a GPU runs it (the whole network converted), also on the CPU, where a dry
/// run of the check goes through the same path.
fn whole_network(master: &Model, precision: Precision) -> imgsim::Result<Model> {
    match precision {
        Precision::F32 => master.to_precision(precision),
        _ => master.to_whole_network_precision(precision),
    }
}

fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let diff: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (diff / norm).sqrt()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let device = device(args.device)?;
    let paths = match &args.images {
        Some(dir) => imgsim::scan::images_in(dir)?,
        None => Vec::new(),
    };
    let camera = if args.camera > 0 && !paths.is_empty() {
        let dir = std::env::temp_dir().join("imgsim-gpu-check-camera");
        let _ = std::fs::remove_dir_all(&dir);
        bench::make_camera_photos(&paths, &dir, args.camera)?
    } else {
        Vec::new()
    };
    let mut precisions = Precision::distinct(&args.precision);
    precisions.retain(|p| *p != Precision::F32);
    precisions.insert(0, Precision::F32);
    for dir in &args.model_dir {
        let master = Model::load(&WeightsSource::Dir(dir.clone()), None, &device)?;
        let mut reference: Option<Vec<Option<Vec<f32>>>> = None;
        for &precision in &precisions {
            let started = now();
            let model = match whole_network(&master, precision) {
                Ok(m) => m,
                Err(e) => {
                    println!(
                        "{}",
                        json!({"model": master.name, "precision": precision.name(), "error": e.to_string()})
                    );
                    continue;
                }
            };
            let label = model.label();
            let embedder =
                Embedder::new(model, device.clone()).batch_size_or_default(args.end_to_end_batch);
            let budget = Duration::from_secs_f64(args.seconds);
            let model_only: Vec<serde_json::Value> = args
                .batch_size
                .iter()
                .map(|&b| {
                    let t0 = now();
                    match bench::model_only(&embedder, b, budget) {
                        Ok(m) => json!({"batch_size": b, "images": m.images, "seconds": m.seconds,
                                        "images_per_s": m.images_per_s, "started_at": t0, "ended_at": now()}),
                        Err(e) => json!({"batch_size": b, "error": e.to_string()}),
                    }
                })
                .collect();
            let (end_to_end, vectors) = if paths.is_empty() {
                (None, None)
            } else {
                let (figures, vectors) = repeated(&embedder, &paths, args.min_seconds)?;
                (Some(figures), Some(vectors))
            };
            let fidelity = match (&reference, &vectors) {
                (Some(f32_vectors), Some(v)) => bench::fidelity(f32_vectors, v),
                _ => None,
            };
            if precision == Precision::F32 {
                reference = vectors;
            }
            let end_to_end_camera = if camera.is_empty() {
                None
            } else {
                Some(repeated(&embedder, &camera, args.min_seconds)?.0)
            };
            println!(
                "{}",
                json!({
                    "model": label,
                    "precision": precision.name(),
                    "device": imgsim::device::describe(&device),
                    "end_to_end_batch": args.end_to_end_batch
                        .unwrap_or_else(|| imgsim::embed::default_batch_size(&device)),
                    "model_only": model_only,
                    "end_to_end": end_to_end,
                    "end_to_end_camera": end_to_end_camera,
                    "fidelity_vs_f32": fidelity,
                    "started_at": started,
                    "ended_at": now(),
                })
            );
        }
    }
    Ok(())
}

/// One warm pass over `paths` (its embeddings kept, for fidelity), then the folder repeated
/// until `min_seconds` of work: the figure.
fn repeated(
    embedder: &Embedder,
    paths: &[PathBuf],
    min_seconds: f64,
) -> anyhow::Result<(EndToEnd, Vec<Option<Vec<f32>>>)> {
    let (first, vectors) = bench::end_to_end_vectors(embedder, paths)?;
    let per_pass = first.seconds.max(1e-3);
    let passes = ((min_seconds / per_pass).ceil() as usize).max(1);
    let many: Vec<PathBuf> = (0..passes).flat_map(|_| paths.iter().cloned()).collect();
    Ok((bench::end_to_end(embedder, &many)?, vectors))
}
