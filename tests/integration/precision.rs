//! `--precision bf16|int8`: embeddings near f32's with the same weights (and not equal to them),
//! a table per precision, and clear errors where a precision cannot run.

use std::path::Path;

use imgsim::models::Precision;
use serde::Deserialize;

use crate::util::*;

#[derive(Debug, Deserialize)]
struct EmbeddingLine {
    path: String,
    embedding: Vec<f32>,
}

/// Whether this CPU runs `precision`; says why not (and the test then checks nothing more).
fn runs_here(precision: Precision) -> bool {
    match precision.unsupported_here() {
        None => true,
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn embed(model: &Path, precision: &str) -> Vec<EmbeddingLine> {
    let mut args = vec![
        "embed",
        "--json",
        "--precision",
        precision,
        "--model-dir",
        model.to_str().unwrap(),
    ];
    let photos: Vec<String> = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg"]
        .iter()
        .map(|p| coco().join(p).display().to_string())
        .collect();
    args.extend(photos.iter().map(String::as_str));
    let out = imgsim(&args);
    out.assert_exit(0);
    out.json_lines()
}

#[test]
fn reduced_precisions_stay_near_f32_with_the_same_weights() {
    for (precision, name, bound) in [
        (Precision::Bf16, "bf16", 0.999),
        (Precision::Int8, "int8", 0.99),
    ] {
        if !runs_here(precision) {
            continue;
        }
        for model in ["tiny-clip", "tiny-dinov2"] {
            let dir = model_dir(model);
            let f32_lines = embed(&dir, "f32");
            let lines = embed(&dir, name);
            assert_eq!(lines.len(), f32_lines.len());
            for (a, b) in lines.iter().zip(&f32_lines) {
                assert_eq!(a.path, b.path);
                let c = cosine(&a.embedding, &b.embedding);
                assert!(
                    c >= bound,
                    "{model} {name}: cosine {c} with f32 for {}",
                    a.path
                );
                // The negative control: the precision really changed the arithmetic.
                assert_ne!(
                    a.embedding, b.embedding,
                    "{model} {name} gave f32's embedding"
                );
            }
        }
    }
}

#[test]
fn each_precision_has_its_own_table_and_is_searched_in_it() {
    if !runs_here(Precision::Bf16) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg"] {
        std::fs::copy(coco().join(name), photos.join(name)).unwrap();
    }
    let cmd = Imgsim::new().current_dir(dir.path());
    let model = model_dir("tiny-clip").display().to_string();
    let query = photos.join("000000000025.jpg").display().to_string();
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--model-dir", &model]);
        cmd.run(&all)
    };
    with(&["index", "photos", "--precision", "bf16", "--json"]).assert_exit(0);
    // Nothing was indexed in f32: a search in f32 says so and what to run.
    with(&["similar", &query, "--json"])
        .assert_exit(2)
        .assert_stderr_has("has not been indexed")
        .assert_stderr_has("indexed: tiny-clip+bf16")
        .assert_stderr_has("search it with --precision bf16");
    let hits = with(&[
        "similar",
        &query,
        "--precision",
        "bf16",
        "-k",
        "1",
        "--json",
    ]);
    hits.assert_exit(0);
    assert!(
        hits.stdout().contains("000000000025.jpg"),
        "{}",
        hits.stdout()
    );
    // Indexing in f32 too makes a second table; the bf16 one keeps its rows.
    with(&["index", "photos", "--json"]).assert_exit(0);
    let status = cmd.run(&["status", "--json"]);
    status.assert_exit(0);
    let text = status.stdout();
    assert!(text.contains("+bf16"), "{text}");
    assert_eq!(text.matches("\"images\":3").count(), 2, "{text}");
}

#[test]
fn a_precision_that_cannot_run_is_a_clear_error() {
    let model = model_dir("tiny-clip").display().to_string();
    let photo = coco().join("000000000009.jpg").display().to_string();
    // A build without CUDA says so; a CUDA build on this GPU-less machine names what is
    // missing (the tests also run against the CUDA binary: IMGSIM_TEST_BINARY).
    let out = imgsim(&[
        "embed",
        "--precision",
        "bf16",
        "--device",
        "cuda",
        "--model-dir",
        &model,
        &photo,
    ]);
    out.assert_exit(2);
    let stderr = out.stderr();
    assert!(
        stderr.contains("built without CUDA") || stderr.contains("no CUDA GPU: "),
        "{stderr}"
    );
    // f16 is a GPU's half precision.
    imgsim(&["embed", "--precision", "f16", "--model-dir", &model, &photo])
        .assert_exit(2)
        .assert_stderr_has("--precision f16 runs on a GPU only")
        .assert_stderr_has("use --precision bf16 or f32");
    imgsim(&["embed", "--precision", "fp8", "--model-dir", &model, &photo])
        .assert_exit(2)
        .assert_stderr_has("possible values: f32, bf16, int8, f16");
}

/// A GPU's f16 and bf16 convert the whole network (not the CPU's packed layers). candle runs
/// that arithmetic on the CPU too, so its embeddings are checked here against f32's with the
/// same weights, through the file pipeline; `scripts/gpu-check.sh` repeats it on a GPU.
#[test]
fn whole_network_half_precision_stays_near_f32() {
    use candle_core::Device;
    use imgsim::embed::Embedder;
    use imgsim::models::{Model, WeightsSource};
    let photos: Vec<std::path::PathBuf> = ["000000000009.jpg", "000000000025.jpg"]
        .iter()
        .map(|p| coco().join(p))
        .chain([fixtures().join("images/tall.png")])
        .collect();
    let embed_all = |model: Model| -> Vec<Vec<f32>> {
        let mut out = vec![Vec::new(); photos.len()];
        Embedder::new(model, Device::Cpu)
            .batch_size(2)
            .embed_files(&photos, |i, r| out[i] = r.unwrap())
            .unwrap();
        out
    };
    for name in ["tiny-clip", "tiny-dinov2"] {
        let f32_model =
            Model::load(&WeightsSource::Dir(model_dir(name)), None, &Device::Cpu).unwrap();
        let reference = embed_all(f32_model.to_precision(Precision::F32).unwrap());
        for (precision, bound) in [(Precision::F16, 0.999), (Precision::Bf16, 0.99)] {
            let model = f32_model.to_whole_network_precision(precision).unwrap();
            assert!(model.id.ends_with(precision.id_suffix()), "{}", model.id);
            let ours = embed_all(model);
            for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
                let c = cosine(a, b);
                assert!(c >= bound, "{name} {precision}: cosine {c} for photo {i}");
                assert_ne!(a, b, "{name} {precision} gave f32's embedding");
            }
        }
        // int8 has no whole-network form.
        assert!(f32_model
            .to_whole_network_precision(Precision::Int8)
            .is_err());
    }
}

#[test]
fn eval_runs_a_model_at_each_precision_and_phash_once() {
    if !runs_here(Precision::Bf16) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in [
        "000000000009.jpg",
        "000000000025.jpg",
        "000000000030.jpg",
        "000000000034.jpg",
    ] {
        std::fs::copy(coco().join(name), photos.join(name)).unwrap();
    }
    let model = model_dir("tiny-clip").display().to_string();
    let out = imgsim_in(
        &[
            "eval",
            "synth",
            "photos",
            "--queries",
            "6",
            "--seed",
            "1",
            "--models",
            "phash",
            "--model-dir",
            &model,
            "--precision",
            "f32,bf16",
            "--no-cache",
            "--out",
            "out",
            "--json",
        ],
        dir.path(),
    );
    out.assert_exit(0);
    let models: Vec<String> = out
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("model").and_then(|m| m.as_str()).map(String::from))
        .collect();
    assert_eq!(
        models,
        ["phash", "tiny-clip", "tiny-clip+bf16"],
        "{}",
        out.stdout()
    );
    let files: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("predictions-"))
        .collect();
    assert_eq!(files.len(), 3, "one predictions file per run: {files:?}");
    assert!(files.iter().any(|f| f.contains("bf16")), "{files:?}");
}
