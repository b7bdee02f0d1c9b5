//! Mutation fuzzing on stable Rust (cargo-fuzz needs nightly): seeded random mutations of valid
//! inputs (bit flips, byte overwrites, interesting values, truncations, duplicated and deleted
//! runs, splices of two inputs) sent through imgsim's own entry points. A panic, or a result
//! other than a clean value or error, fails the test and names the seed and the case to replay.
//!
//! CI runs the short form; `IMGSIM_FUZZ_EXECS=N` sets the executions per target (the figures in
//! RELIABILITY.md come from a longer run).

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use imgsim::store::{FilterIndex, FilterRow};

pub fn execs(default: usize) -> usize {
    std::env::var("IMGSIM_FUZZ_EXECS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// One mutation of `input` (sometimes spliced with `other`).
pub fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if out.is_empty() {
            out.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..7) {
            0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => out[at] = rng.random(),
            2 => {
                const INTERESTING: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
                let n = rng.random_range(1..=4).min(out.len() - at);
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                out[at..at + n].fill(v);
            }
            3 => out.truncate(at),
            4 => {
                let n = rng.random_range(1..=64).min(out.len() - at);
                let run = out[at..at + n].to_vec();
                out.splice(at..at, run);
            }
            5 => {
                let n = rng.random_range(1..=64).min(out.len() - at);
                out.drain(at..at + n);
            }
            _ => {
                let from = rng.random_range(0..other.len().max(1));
                out.truncate(at);
                out.extend_from_slice(&other[from.min(other.len())..]);
            }
        }
    }
    out
}

/// Runs `target` on `execs` mutations of the seeds; returns the slowest case's time.
fn fuzz(
    name: &str,
    seed: u64,
    seeds: &[Vec<u8>],
    execs: usize,
    target: impl Fn(&[u8]),
) -> Duration {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut slowest = Duration::ZERO;
    for case in 0..execs {
        let a = &seeds[rng.random_range(0..seeds.len())];
        let b = &seeds[rng.random_range(0..seeds.len())];
        let input = mutate(&mut rng, a, b);
        let started = Instant::now();
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let path = std::env::temp_dir().join(format!("imgsim-fuzz-{name}-{seed}-{case}.bin"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{name}: case {case} of seed {seed} panicked; input in {}",
                path.display()
            );
        }
        slowest = slowest.max(started.elapsed());
    }
    println!("{name}: {execs} executions, slowest {slowest:?}");
    slowest
}

fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// A small image in every format imgsim reads.
fn image_seeds() -> Vec<Vec<u8>> {
    let rgb = RgbImage::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, 77]));
    let rgba = RgbaImage::from_fn(9, 7, |x, y| Rgba([(x * 20) as u8, (y * 30) as u8, 5, 128]));
    let mut seeds = vec![
        encoded(rgb.clone().into(), ImageFormat::Jpeg),
        encoded(rgb.clone().into(), ImageFormat::Png),
        encoded(rgba.clone().into(), ImageFormat::Png),
        encoded(rgb.clone().into(), ImageFormat::Gif),
        encoded(rgb.clone().into(), ImageFormat::Bmp),
        encoded(rgb.clone().into(), ImageFormat::Tiff),
        encoded(rgba.into(), ImageFormat::WebP),
        encoded(DynamicImage::ImageRgb8(rgb).grayscale(), ImageFormat::Png),
    ];
    // A real photo too (EXIF, a real JPEG's tables).
    let photo = std::fs::read(crate::util::coco().join("000000000009.jpg")).unwrap();
    let small = image::load_from_memory(&photo).unwrap().thumbnail(64, 64);
    seeds.push(encoded(small, ImageFormat::Jpeg));
    // HEIC and AVIF (libheif), with EXIF.
    for name in ["paris.heic", "nikon.avif"] {
        seeds.push(std::fs::read(crate::util::fixtures().join("exif").join(name)).unwrap());
    }
    // Camera RAW (rawler): a DNG with a JPEG preview, and one with sensor data alone.
    for name in ["scene.dng", "nopreview.dng"] {
        seeds.push(std::fs::read(crate::util::fixtures().join("raw").join(name)).unwrap());
    }
    seeds
}

#[test]
fn decoders_never_panic_on_mutated_images() {
    let seeds = image_seeds();
    let n = execs(3000);
    fuzz("decode", 1, &seeds, n, |bytes| {
        let _ = imgsim::decode::decode_bytes(bytes);
    });
    // The reduced-size JPEG path (scaled IDCT) of large photos.
    fuzz("decode-for-224", 2, &seeds, n / 2, |bytes| {
        let _ = imgsim::decode::decode_bytes_for(bytes, Some(8));
    });
}

#[test]
fn where_filters_never_panic() {
    let rows: Vec<FilterRow> = ["/p/2023/beach one.jpg", "/p/cats/x.PNG", "/p/y"]
        .iter()
        .map(|p| FilterRow {
            path: p.to_string(),
            tags: vec!["2023".into(), "holiday trip".into()],
            meta: Default::default(),
        })
        .collect();
    let dir = std::env::temp_dir().join("imgsim-fuzz-filters");
    let filters = FilterIndex::in_memory(&dir, &rows, 1).unwrap();
    let seeds: Vec<Vec<u8>> = [
        "name:beach* AND tag:2023 -ext:png",
        "dir:2023 OR (tag:\"holiday trip\" AND NOT name:x?)",
        "ext:[a TO z] +name:*one*",
        "name:/be.*h/ tag:2023^2",
        "(((dir:cats)))",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("where", 3, &seeds, execs(3000), |bytes| {
        let _ = filters.matching_paths(&String::from_utf8_lossy(bytes));
    });
}

#[test]
fn eval_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = crate::util::fixtures().join("metrics");
    let seeds: Vec<Vec<u8>> = ["gt.csv", "preds_sparse.csv"]
        .iter()
        .map(|f| std::fs::read(fixtures.join(f)).unwrap())
        .collect();
    let file = dir.path().join("input.csv");
    fuzz("eval-csv", 4, &seeds, execs(1000), |bytes| {
        std::fs::write(&file, bytes).unwrap();
        let truth = imgsim::eval::metrics::read_ground_truth(&file);
        let predictions = imgsim::eval::metrics::read_predictions(&file);
        if let (Ok(truth), Ok(predictions)) = (truth, predictions) {
            let _ = imgsim::eval::metrics::evaluate(&truth.pairs, &predictions);
        }
    });
}

#[test]
fn coco_annotation_reader_never_panics() {
    // A COCO instances file of a few images, cut from the official coco128 one.
    let official = crate::util::coco().join("../annotations/instances_val2017.json");
    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(official).unwrap()).unwrap();
    let images: Vec<serde_json::Value> = full["images"].as_array().unwrap()[..4].to_vec();
    let ids: Vec<u64> = images.iter().map(|i| i["id"].as_u64().unwrap()).collect();
    let annotations: Vec<serde_json::Value> = full["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| ids.contains(&a["image_id"].as_u64().unwrap()))
        .take(12)
        .cloned()
        .collect();
    let small = serde_json::json!({
        "images": images,
        "annotations": annotations,
        "categories": full["categories"].as_array().unwrap()[..3],
    });
    let seeds = vec![
        serde_json::to_vec(&small).unwrap(),
        serde_json::to_vec_pretty(&small).unwrap(),
    ];
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("annotations")).unwrap();
    std::fs::create_dir_all(root.path().join("val2017")).unwrap();
    for image in &small["images"].as_array().unwrap()[..2] {
        let name = image["file_name"].as_str().unwrap();
        std::fs::write(root.path().join("val2017").join(name), b"").unwrap();
    }
    // Outside the images folder: never taken as one of its images.
    std::fs::write(root.path().join("secret.jpg"), b"").unwrap();
    let file = root.path().join("annotations/instances_val2017.json");
    let mut escaped = small.clone();
    escaped["images"][2]["file_name"] = "../secret.jpg".into();
    std::fs::write(&file, serde_json::to_vec(&escaped).unwrap()).unwrap();
    let set = imgsim::eval::coco::CocoSet::load(root.path(), "val2017").unwrap();
    assert_eq!((set.images.len(), set.missing_files), (2, 2));

    fuzz("coco-json", 6, &seeds, execs(1000), |bytes| {
        std::fs::write(&file, bytes).unwrap();
        if let Ok(set) = imgsim::eval::coco::CocoSet::load(root.path(), "val2017") {
            assert!(set
                .images
                .iter()
                .all(|i| i.path.starts_with(root.path().join("val2017"))));
            assert_eq!(set.images.len(), set.categories.len());
        }
    });
}
