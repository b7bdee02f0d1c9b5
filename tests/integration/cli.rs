//! The `imgsim` binary as a user runs it: output formats, exit codes, error messages.

use serde::Deserialize;

use crate::util::*;

#[derive(Debug, Deserialize)]
struct EmbeddingLine {
    path: String,
    model: String,
    dim: usize,
    embedding: Vec<f32>,
}

#[test]
fn embed_json_gives_the_reference_embeddings() {
    let reference = reference("tiny-dinov2");
    let dir = model_dir("tiny-dinov2");
    let paths: Vec<String> = reference
        .images
        .iter()
        .map(|i| i.path().display().to_string())
        .collect();
    let mut args = vec!["embed", "--json", "--model-dir", dir.to_str().unwrap()];
    args.extend(paths.iter().map(String::as_str));
    let out = imgsim(&args);
    out.assert_exit(0);
    let lines: Vec<EmbeddingLine> = out.json_lines();
    assert_eq!(lines.len(), reference.images.len());
    for ((line, image), path) in lines.iter().zip(&reference.images).zip(&paths) {
        assert_eq!(&line.path, path, "output keeps input order");
        assert_eq!(line.model, "tiny-dinov2");
        assert_eq!(line.dim, 32);
        assert!(
            within_parity_bound(image, &line.embedding, &image.embedding),
            "{}",
            image.image
        );
        let norm: f32 = line.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "L2-normalised");
    }
}

#[test]
fn a_corrupt_file_is_reported_and_the_others_are_embedded() {
    let tmp = tempfile::tempdir().unwrap();
    let corrupt = tmp.path().join("broken.jpg");
    let photo = std::fs::read(coco().join("000000000009.jpg")).unwrap();
    std::fs::write(&corrupt, &photo[..photo.len() / 3]).unwrap();
    let text = tmp.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let good = coco().join("000000000025.jpg");
    let dir = model_dir("tiny-clip");
    let out = imgsim(&[
        "embed",
        "--json",
        "--model-dir",
        dir.to_str().unwrap(),
        corrupt.to_str().unwrap(),
        good.to_str().unwrap(),
        text.to_str().unwrap(),
        tmp.path().join("missing.png").to_str().unwrap(),
    ]);
    out.assert_exit(2);
    let lines: Vec<EmbeddingLine> = out.json_lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].path.ends_with("000000000025.jpg"));
    let err = out.stderr();
    assert!(
        err.contains("broken.jpg: corrupt or truncated image"),
        "{err}"
    );
    assert!(err.contains("notes.png: not an image"), "{err}");
    assert!(err.contains("missing.png: cannot read file"), "{err}");
    assert!(err.contains("3 of 4 images could not be embedded"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_weights_say_how_to_fetch_them() {
    let out = imgsim(&["embed", "--model", "clip", "tests/fixtures/images/tiny.png"]);
    out.assert_exit(2);
    let err = out.stderr();
    assert!(
        err.contains("weights of model 'clip-vit-b32' are not available"),
        "{err}"
    );
    assert!(
        err.contains("imgsim-tests-empty-hf-cache"),
        "says where it looked: {err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains("imgsim models fetch clip-vit-b32"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs imgsim, expecting exit code 2 and `needle` in the error message.
fn assert_fails_with(args: &[&str], needle: &str) {
    imgsim(args).assert_exit(2).assert_stderr_has(needle);
}

#[test]
fn unknown_model_and_bad_model_dir_are_clear_errors() {
    let image = "tests/fixtures/images/tiny.png";
    assert_fails_with(
        &["embed", "--model", "resnet50", image],
        "unknown model 'resnet50'",
    );
    assert_fails_with(
        &["embed", "--model-dir", "tests/fixtures/images", image],
        "config.json is missing",
    );
    assert_fails_with(
        &[
            "embed",
            "--pooling",
            "cls",
            "--model-dir",
            "tests/fixtures/tiny-clip",
            image,
        ],
        "does not apply to a clip model",
    );
    // clap's usage errors exit with 2 too.
    assert_fails_with(&["embed", "--frobnicate", "x.png"], "--frobnicate");
}

#[derive(Debug, Deserialize)]
struct CompareLine {
    model: String,
    cosine: f32,
}

#[test]
fn compare_scores_an_image_with_itself_and_a_different_one() {
    let dir = model_dir("tiny-clip");
    let a = coco().join("000000000009.jpg");
    let b = coco().join("000000000030.jpg");
    let same = imgsim(&[
        "compare",
        "--json",
        "--model-dir",
        dir.to_str().unwrap(),
        a.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    same.assert_exit(0);
    let same: Vec<CompareLine> = same.json_lines();
    assert_eq!(same[0].model, "tiny-clip");
    assert!((same[0].cosine - 1.0).abs() < 1e-5);
    let other = imgsim(&[
        "compare",
        "--json",
        "--model-dir",
        dir.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    let other: Vec<CompareLine> = other.json_lines();
    assert!(other[0].cosine < 0.999, "{}", other[0].cosine);
}

#[derive(Debug, Deserialize)]
struct ModelLine {
    name: String,
    dim: usize,
    local: bool,
}

#[test]
fn models_list_shows_every_model_and_that_only_phash_is_local() {
    let out = imgsim(&["models", "list", "--json"]);
    out.assert_exit(0);
    let lines: Vec<ModelLine> = out.json_lines();
    let names: Vec<_> = lines.iter().map(|l| (l.name.as_str(), l.dim)).collect();
    assert_eq!(
        names,
        [
            ("clip-vit-b32", 512),
            ("clip-vit-l14", 768),
            ("dinov2-small", 384),
            ("dinov2-base", 768),
            ("dinov2-large", 1024),
            ("phash", 64)
        ]
    );
    // The baseline needs no weights; the networks' are not in the (empty) cache.
    assert!(lines.iter().all(|l| l.local == (l.name == "phash")));
}

#[test]
fn a_model_in_a_python_filled_cache_is_found() {
    // The layout huggingface_hub writes: refs/<revision> -> commit, snapshots/<commit>/<file>.
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--facebook--dinov2-small");
    let commit = "ed25f3a31f01632728cabb09d1542f84ab7b0056";
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(model_dir("tiny-dinov2").join(file), snapshot.join(file)).unwrap();
    }
    let cmd = Imgsim::new().env("HF_HUB_CACHE", cache.path().to_str().unwrap());
    let run = |args: &[&str]| cmd.run(args);
    let out = run(&["models", "list", "--json"]);
    let lines: Vec<ModelLine> = out.json_lines();
    let local: Vec<_> = lines
        .iter()
        .filter(|l| l.local)
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(local, ["dinov2-small", "phash"]);

    // `compare --model all` runs the local models only, and never downloads the others.
    let a = coco().join("000000000009.jpg");
    let out = run(&[
        "compare",
        "--json",
        "--model",
        "all",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    out.assert_exit(0);
    let lines: Vec<CompareLine> = out.json_lines();
    let models: Vec<&str> = lines.iter().map(|l| l.model.as_str()).collect();
    assert_eq!(models, ["dinov2-small", "phash"]);
    assert!(lines.iter().all(|l| (l.cosine - 1.0).abs() < 1e-5));
}

#[test]
fn compare_all_without_local_weights_runs_phash_and_says_how_to_fetch_them() {
    let a = coco().join("000000000009.jpg");
    let b = coco().join("000000000025.jpg");
    let out = imgsim(&[
        "compare",
        "--json",
        "--model",
        "all",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    out.assert_exit(0);
    assert!(
        out.stderr().contains("imgsim models fetch"),
        "{}",
        out.stderr()
    );
    let lines: Vec<CompareLine> = out.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].model, "phash");
    // Two different photos: a cosine of 1 - 2 * (differing bits) / 64, below 1.
    let differing_bits = (1.0 - lines[0].cosine) * 32.0;
    assert!(differing_bits > 1.0 && (differing_bits - differing_bits.round()).abs() < 1e-4);
}

/// A copy of a fixture model directory without one tensor.
fn model_dir_without(model: &str, tensor: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for file in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(model_dir(model).join(file), tmp.path().join(file)).unwrap();
    }
    let mut tensors = candle_core::safetensors::load(
        model_dir(model).join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(
        tensors.remove(tensor).is_some(),
        "{tensor} is in the fixture"
    );
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    tmp
}

#[test]
fn a_checkpoint_missing_a_weight_is_refused_not_randomised() {
    let image = fixtures().join("images/tiny.png");
    for (model, tensor) in [
        ("tiny-clip", "vision_model.embeddings.class_embedding"),
        ("tiny-clip", "visual_projection.weight"),
        ("tiny-dinov2", "embeddings.position_embeddings"),
        ("tiny-dinov2", "encoder.layer.1.layer_scale2.lambda1"),
    ] {
        let dir = model_dir_without(model, tensor);
        let out = imgsim(&[
            "embed",
            "--model-dir",
            dir.path().to_str().unwrap(),
            image.to_str().unwrap(),
        ]);
        out.assert_exit(2);
        assert!(out.stderr().contains(tensor), "{}", out.stderr());
        assert!(out.stdout().is_empty());
    }
}

#[test]
fn each_cause_of_an_error_is_said_once() {
    let missing = "tests/fixtures/images/no-such-photo.jpg";
    let present = "tests/fixtures/images/tiny.png";
    let dir = model_dir("tiny-clip");
    let dir = dir.to_str().unwrap();
    for args in [
        // The default model (clip) has no weights here: the missing input is said first.
        vec!["compare", missing, present],
        vec!["compare", present, missing, "--model-dir", dir],
        vec!["similar", missing],
        vec!["embed", "--model-dir", dir, missing],
    ] {
        let out = imgsim(&args);
        out.assert_exit(2);
        let err = out.stderr();
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{args:?}: {err}"
        );
        assert!(err.contains("no-such-photo.jpg"), "{args:?}: {err}");
        assert!(!err.contains("weights"), "{args:?}: {err}");
    }
}

#[test]
fn a_fifo_named_like_a_photo_is_refused_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.jpg");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let model = model_dir("tiny-clip");
    let fifo = fifo.to_str().unwrap();
    let present = "tests/fixtures/images/tiny.png";
    for args in [
        vec!["embed", "--model-dir", model.to_str().unwrap(), fifo],
        vec![
            "compare",
            fifo,
            present,
            "--model-dir",
            model.to_str().unwrap(),
        ],
    ] {
        let out = imgsim(&args);
        out.assert_exit(2).assert_stderr_has("not a regular file");
    }
}

#[test]
fn a_database_named_relative_to_the_working_folder_is_a_folder_there() {
    // LanceDB reads a bare name starting with "db" as a LanceDB Cloud address.
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    let photo = std::fs::read_dir(coco())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&photo, photos.join("a.jpg")).unwrap();
    for db in ["db", "dbs/photos", "./library.db"] {
        imgsim_in(
            &["index", "photos", "--model", "phash", "--db", db],
            dir.path(),
        )
        .assert_exit(0);
        assert!(dir.path().join(db).join("models.json").exists(), "{db}");
    }
}

/// A root alias is checked before anything runs; `IMGSIM_ROOT_ALIAS=` (set but empty) names
/// none.
#[test]
fn a_bad_root_alias_is_said_and_an_empty_one_names_none() {
    let empty = Imgsim::new().env("IMGSIM_ROOT_ALIAS", "");
    empty
        .run(&["status"])
        .assert_exit(2)
        .assert_stderr_has("no index here yet");
    let bad = Imgsim::new().env("IMGSIM_ROOT_ALIAS", "photos");
    bad.run(&["status"])
        .assert_exit(2)
        .assert_stderr_has("--root-alias: \"photos\" is not a root alias: write NAME=PATH");
}
