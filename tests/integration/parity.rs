//! Parity with the reference implementation (transformers + PIL), on the tiny models and
//! fixtures that `scripts/make_fixtures.py` wrote. The negative controls show that the bounds
//! catch a wrong filter, normalisation, pooling or position interpolation.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use imgsim::embed::Embedder;
use imgsim::models::{Model, Pooling, WeightsSource};
use imgsim::preprocess::{Preprocess, Resample};

use crate::util::*;

fn embedder(model: &str, pooling: Option<Pooling>) -> Embedder {
    let source = WeightsSource::Dir(model_dir(model));
    let model = Model::load(&source, pooling, &Device::Cpu).unwrap();
    Embedder::new(model, Device::Cpu).batch_size(3)
}

/// Our embeddings of every reference image, through the full file pipeline.
fn embed_reference_images(embedder: &Embedder, reference: &Reference) -> Vec<Vec<f32>> {
    let paths: Vec<PathBuf> = reference.images.iter().map(|i| i.path()).collect();
    let mut out = vec![Vec::new(); paths.len()];
    embedder
        .embed_files(&paths, |i, r| out[i] = r.unwrap())
        .unwrap();
    out
}

fn check_embeddings(model: &str) {
    let reference = reference(model);
    let ours = embed_reference_images(&embedder(model, None), &reference);
    assert_eq!(ours.len(), reference.images.len());
    for (image, ours) in reference.images.iter().zip(&ours) {
        assert!(
            within_parity_bound(image, ours, &image.embedding),
            "{model} {}: relative L2 {:.2e}, cosine {:.6}",
            image.image,
            relative_l2(ours, &image.embedding),
            cosine(ours, &image.embedding)
        );
    }
}

#[test]
fn clip_embeddings_match_the_reference() {
    check_embeddings("tiny-clip");
}

#[test]
fn dinov2_embeddings_match_the_reference() {
    check_embeddings("tiny-dinov2");
}

#[test]
fn dinov2_cls_pooling_is_the_pooler_output() {
    let reference = reference("tiny-dinov2");
    let ours = embed_reference_images(&embedder("tiny-dinov2", Some(Pooling::Cls)), &reference);
    for (image, ours) in reference.images.iter().zip(&ours) {
        assert_eq!(image.embedding_cls.len(), ours.len(), "{}", image.image);
        assert!(
            within_parity_bound(image, ours, &image.embedding_cls),
            "{}",
            image.image
        );
    }
}

#[test]
fn resize_and_crop_match_pil_for_png_inputs() {
    for model in ["tiny-clip", "tiny-dinov2"] {
        let preprocess =
            Preprocess::from_hf_file(&model_dir(model).join("preprocessor_config.json")).unwrap();
        let reference = reference(model);
        let pngs: Vec<&RefImage> = reference.images.iter().filter(|i| i.is_png()).collect();
        assert!(!pngs.is_empty());
        for image in pngs {
            let decoded = imgsim::decode::decode_file(&image.path()).unwrap();
            let ours = preprocess.resize_and_crop(&decoded);
            let theirs = reference_crop(model, image);
            assert_eq!(ours.dimensions(), theirs.dimensions());
            let max_diff = ours
                .as_raw()
                .iter()
                .zip(theirs.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(
                max_diff <= 1,
                "{model} {}: max pixel difference {max_diff}",
                image.image
            );
        }
    }
}

/// Given the reference's own pixel values, the networks agree to 1e-4.
#[test]
fn same_pixel_values_give_the_same_embedding() {
    for model in ["tiny-clip", "tiny-dinov2"] {
        let tensors = candle_core::safetensors::load(
            fixtures()
                .join("reference")
                .join(model)
                .join("pixels.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let ours = embedder(model, None)
            .embed_pixel_values(&tensors["pixel_values"])
            .unwrap();
        let theirs: Vec<Vec<f32>> = tensors["embedding"].to_vec2().unwrap();
        assert_eq!(ours[0].len(), theirs[0].len(), "{model}");
        assert!(!ours[0].is_empty(), "{model}");
        let max_diff = ours[0]
            .iter()
            .zip(&theirs[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_diff <= 1e-4, "{model}: max difference {max_diff:.2e}");
    }
}

/// The 37x37 position grid of an `image_size` 518 checkpoint, interpolated to 16x16 as
/// transformers does (bicubic, a = -0.75, no antialiasing).
#[test]
fn dinov2_position_interpolation_matches_torch() {
    let weights = candle_core::safetensors::load(
        model_dir("tiny-dinov2").join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let table: Vec<f32> = weights["embeddings.position_embeddings"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let dim = 32;
    let patches = &table[dim..];
    let ours = imgsim::models::dinov2::bicubic_resize_channels_last(patches, 37, 37, dim, 16, 16);
    let reference = candle_core::safetensors::load(
        fixtures().join("reference/tiny-dinov2/pixels.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let theirs: Vec<f32> = reference["positions_16x16"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(
        &theirs[..dim],
        &table[..dim],
        "the CLS position is kept as is"
    );
    let max_diff = ours
        .iter()
        .zip(&theirs[dim..])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff <= 1e-5, "max difference {max_diff:.2e}");

    // Negative control: nearest-neighbour interpolation (candle's own dinov2) is far off.
    let grid = Tensor::from_slice(patches, (1, 37, 37, dim), &Device::Cpu)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap();
    let nearest: Vec<f32> = grid
        .upsample_nearest2d(16, 16)
        .unwrap()
        .permute((0, 2, 3, 1))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let nearest_diff = nearest
        .iter()
        .zip(&theirs[dim..])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        nearest_diff > 1e-2,
        "nearest differs by only {nearest_diff:.2e}"
    );
}

/// The bounds are tight enough to notice each plausible mistake.
#[test]
fn parity_bounds_catch_wrong_preprocessing_and_pooling() {
    let failures = |model: &str,
                    pooling: Option<Pooling>,
                    change: &dyn Fn(&mut Preprocess),
                    use_cls: bool|
     -> usize {
        let reference = reference(model);
        let source = WeightsSource::Dir(model_dir(model));
        let mut loaded = Model::load(&source, pooling, &Device::Cpu).unwrap();
        change(&mut loaded.preprocess);
        let ours = embed_reference_images(&Embedder::new(loaded, Device::Cpu), &reference);
        reference
            .images
            .iter()
            .zip(&ours)
            .filter(|(image, _)| image.is_png())
            .filter(|(image, ours)| {
                let theirs = if use_cls {
                    &image.embedding_cls
                } else {
                    &image.embedding
                };
                !within_parity_bound(image, ours, theirs)
            })
            .count()
    };
    // Every PNG input (exact decoding, relative L2 bound) must fail under each mistake.
    let n = reference("tiny-clip")
        .images
        .iter()
        .filter(|i| i.is_png())
        .count();
    assert_eq!(n, 4);
    let bilinear = |p: &mut Preprocess| p.resample = Resample::Bilinear;
    let imagenet_mean = |p: &mut Preprocess| p.mean = [0.485, 0.456, 0.406];
    let unchanged = |_: &mut Preprocess| {};
    assert_eq!(
        failures("tiny-clip", None, &bilinear, false),
        n,
        "bilinear instead of bicubic"
    );
    assert_eq!(
        failures("tiny-dinov2", None, &bilinear, false),
        n,
        "bilinear instead of bicubic"
    );
    assert_eq!(
        failures("tiny-clip", None, &imagenet_mean, false),
        n,
        "ImageNet mean for CLIP"
    );
    assert_eq!(
        failures("tiny-dinov2", Some(Pooling::Cls), &unchanged, false),
        n,
        "CLS instead of mean"
    );
    assert_eq!(
        failures("tiny-dinov2", None, &unchanged, true),
        n,
        "mean instead of CLS"
    );
}

/// The weight-free baseline equals `imagehash.phash`: bit for bit on PNGs and, through
/// libjpeg-turbo (the `turbojpeg` feature), on JPEGs; within 2 of 64 bits on JPEGs through the
/// pure-Rust decoder (over coco128, 127 of 128 photos match exactly).
#[test]
fn phash_matches_imagehash() {
    #[derive(serde::Deserialize)]
    struct PhashReference {
        hashes: std::collections::BTreeMap<String, String>,
    }
    let path = fixtures().join("reference/phash.json");
    let reference: PhashReference =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let embedder = Embedder::new(
        Model::load(&WeightsSource::Phash, None, &Device::Cpu).unwrap(),
        Device::Cpu,
    );
    let (names, paths): (Vec<&String>, Vec<PathBuf>) = reference
        .hashes
        .keys()
        .map(|rel| {
            let path = match rel.strip_prefix("coco/") {
                Some(file) => coco().join(file),
                None => fixtures().join(rel),
            };
            (rel, path)
        })
        .unzip();
    let pngs = names.iter().filter(|n| n.ends_with(".png")).count();
    assert!(
        pngs >= 3 && names.len() - pngs >= 3,
        "too few phash references: {pngs} PNG of {}",
        names.len()
    );
    let mut ours = vec![0u64; paths.len()];
    embedder
        .embed_files(&paths, |i, r| {
            let bits = r
                .unwrap()
                .iter()
                .fold(0u64, |h, &v| (h << 1) | u64::from(v > 0.0));
            ours[i] = bits;
        })
        .unwrap();
    for (name, ours) in names.iter().zip(ours) {
        let theirs = u64::from_str_radix(&reference.hashes[*name], 16).unwrap();
        let differing = (ours ^ theirs).count_ones();
        let exact = name.ends_with(".png") || cfg!(feature = "turbojpeg");
        let allowed = if exact { 0 } else { 2 };
        assert!(
            differing <= allowed,
            "{name}: ours {ours:016x}, imagehash {theirs:016x}"
        );
    }
}
