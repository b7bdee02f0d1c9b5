//! `imgsim eval` end to end: DISC21 and COCO layouts made from coco128 photos, the synthetic
//! benchmark, the embedding cache, `eval score`, and bad files among good ones.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::Deserialize;

use crate::util::*;

/// The `--json` lines of `imgsim eval`, parsed back.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EvalLine {
    CopyDetection {
        model: String,
        metrics: Metrics,
        extraction: Option<Extraction>,
        predictions_file: Option<String>,
        #[serde(default)]
        recall_at_rank1_by_edit: Option<std::collections::BTreeMap<String, f64>>,
    },
    Retrieval {
        model: String,
        result: Retrieval,
    },
    ModelFailed {
        model: String,
        error: String,
    },
    Summary {
        references: usize,
        queries: usize,
        distractors: usize,
        k: usize,
        models: usize,
        failed_models: usize,
        failed_files: usize,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Metrics {
    micro_ap: f64,
    recall_at_p90: Option<f64>,
    threshold_at_p90: Option<f64>,
    recall_at_rank1: f64,
    recall_at_rank10: f64,
    accuracy_top1: f64,
    accuracy_top3: f64,
    ground_truth_pairs: usize,
    predictions: usize,
}

#[derive(Debug, Clone, Deserialize)]
struct Extraction {
    images: usize,
    embedded: usize,
    from_cache: usize,
    failed: usize,
}

#[derive(Debug, Deserialize)]
struct Retrieval {
    k: usize,
    map_at_k: f64,
    precision_at_k: f64,
    chance_precision: f64,
    queries: usize,
    pool: usize,
}

fn photo(name: &str, side: u32) -> RgbImage {
    let image = image::open(coco().join(name)).unwrap().to_rgb8();
    imageops::resize(&image, side, side * 3 / 4, FilterType::Triangle)
}

const PHOTOS: [&str; 7] = [
    "000000000009.jpg",
    "000000000025.jpg",
    "000000000030.jpg",
    "000000000034.jpg",
    "000000000036.jpg",
    "000000000042.jpg",
    "000000000049.jpg",
];

/// A DISC21 folder: 6 references, 4 edited copies, 1 distractor (a photo not in the pool),
/// and the ground truth with a header, as the official files have.
fn disc21_fixture(root: &Path) {
    let refs = root.join("references");
    let queries = root.join("dev_queries");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::create_dir_all(&queries).unwrap();
    for (i, name) in PHOTOS[..6].iter().enumerate() {
        photo(name, 160)
            .save(refs.join(format!("R{i:06}.jpg")))
            .unwrap();
    }
    type Edit = fn(&RgbImage) -> RgbImage;
    let copies: [(usize, Edit); 4] = [
        (0, |p| imageops::crop_imm(p, 10, 8, 130, 100).to_image()),
        (2, |p| imageops::resize(p, 120, 90, FilterType::Triangle)),
        (3, |p| imageops::colorops::brighten(p, 25)),
        (5, |p| imageops::blur(p, 1.5)),
    ];
    let mut gt = String::from("query_id,reference_id\n");
    for (q, (r, edit)) in copies.iter().enumerate() {
        let image = edit(&photo(PHOTOS[*r], 160));
        image.save(queries.join(format!("Q{q:05}.jpg"))).unwrap();
        gt.push_str(&format!("Q{q:05},R{r:06}\n"));
    }
    photo(PHOTOS[6], 160)
        .save(queries.join("Q00004.jpg"))
        .unwrap();
    gt.push_str("Q00004,\n");
    std::fs::write(root.join("public_ground_truth.csv"), gt).unwrap();
}

fn eval_json(args: &[&str], dir: &Path) -> (Vec<EvalLine>, std::process::Output) {
    let out = imgsim_in(args, dir);
    (parse_lines(&stdout(&out)), out)
}

fn copy_detection(lines: &[EvalLine], wanted: &str) -> (Metrics, Extraction, PathBuf) {
    for line in lines {
        if let EvalLine::CopyDetection {
            model,
            metrics,
            extraction,
            predictions_file,
            ..
        } = line
        {
            if model == wanted {
                return (
                    metrics.clone(),
                    extraction.clone().unwrap(),
                    predictions_file.clone().unwrap().into(),
                );
            }
        }
    }
    panic!("no result for {wanted} in {lines:?}")
}

#[test]
fn disc21_layout_runs_end_to_end_and_reuses_its_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("disc21");
    disc21_fixture(&root);
    let tiny = model_dir("tiny-dinov2");
    let args = [
        "eval",
        "disc21",
        "--root",
        root.to_str().unwrap(),
        "--queries",
        "all",
        "--models",
        "phash",
        "--model-dir",
        tiny.to_str().unwrap(),
        "--cache",
        "cache",
        "--out",
        "out",
        "--json",
    ];
    let (lines, out) = eval_json(&args, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let Some(EvalLine::Summary {
        references,
        queries,
        distractors,
        k,
        models,
        failed_models,
        failed_files,
    }) = lines.last()
    else {
        panic!("no summary: {lines:?}")
    };
    assert_eq!(
        (*references, *queries, *distractors, *k, *models),
        (6, 5, 1, 10, 2)
    );
    assert_eq!((*failed_models, *failed_files), (0, 0));

    let (phash, extraction, predictions) = copy_detection(&lines, "phash");
    assert_eq!(
        (extraction.images, extraction.embedded, extraction.failed),
        (11, 11, 0)
    );
    assert_eq!(phash.ground_truth_pairs, 4);
    // k = 10 > 6 references: every query predicts every reference.
    assert_eq!(phash.predictions, 5 * 6);
    // A perceptual hash survives resizing, brightening and a light blur.
    assert!(phash.recall_at_rank1 >= 0.75, "{phash:?}");
    assert!((0.0..=1.0).contains(&phash.micro_ap));

    // The predictions file is in the official format, and scoring it gives the same numbers.
    let predictions = dir.path().join(predictions);
    let text = std::fs::read_to_string(&predictions).unwrap();
    assert!(text.starts_with("query_id,reference_id,score\nQ00000,"));
    let gt = root.join("public_ground_truth.csv");
    let (scored, out) = eval_json(
        &[
            "eval",
            "score",
            "--gt",
            gt.to_str().unwrap(),
            "--preds",
            predictions.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let EvalLine::CopyDetection { metrics, .. } = &scored[0] else {
        panic!("{scored:?}")
    };
    assert_eq!(metrics, &phash);

    for file in ["pr-curves.png", "report.md", "report.json"] {
        assert!(dir.path().join("out").join(file).is_file(), "{file}");
    }

    // Again with only the matched queries: nothing is embedded twice.
    let mut matched = args.to_vec();
    matched[5] = "matched";
    let (lines, out) = eval_json(&matched, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, extraction, _) = copy_detection(&lines, "tiny-dinov2");
    assert_eq!((extraction.embedded, extraction.from_cache), (0, 10));
    assert!(matches!(
        lines.last(),
        Some(EvalLine::Summary {
            queries: 4,
            distractors: 0,
            ..
        })
    ));
}

#[test]
fn a_corrupt_reference_is_reported_and_the_rest_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("disc21");
    disc21_fixture(&root);
    std::fs::write(root.join("references/R000004.jpg"), b"\xFF\xD8 not really").unwrap();
    let out = imgsim_in(
        &[
            "eval",
            "disc21",
            "--root",
            root.to_str().unwrap(),
            "--models",
            "phash",
            "--no-cache",
            "--out",
            "out",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("R000004.jpg"), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("| phash |"), "{report}");
}

#[test]
fn a_missing_layout_or_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = imgsim_in(
        &["eval", "disc21", "--root", dir.path().to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no reference folder: looked for images/references"),
        "{}",
        stderr(&out)
    );

    let root = dir.path().join("disc21");
    disc21_fixture(&root);
    let (lines, out) = eval_json(
        &[
            "eval",
            "disc21",
            "--root",
            root.to_str().unwrap(),
            "--models",
            "phash,resnet",
            "--no-cache",
            "--json",
        ],
        dir.path(),
    );
    // The unknown model fails before anything runs.
    assert_eq!(out.status.code(), Some(2));
    assert!(lines.is_empty());
    assert!(
        stderr(&out).contains("unknown model 'resnet'"),
        "{}",
        stderr(&out)
    );

    // A model directory that cannot load is skipped; the others still run.
    let (lines, out) = eval_json(
        &[
            "eval",
            "disc21",
            "--root",
            root.to_str().unwrap(),
            "--model-dir",
            "no/such/model",
            "--no-cache",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(lines
        .iter()
        .any(|l| matches!(l, EvalLine::ModelFailed { model, error } if model == "no/such/model" && error.contains("not a directory"))));
    copy_detection(&lines, "phash");
}

#[test]
fn coco_layout_scores_category_retrieval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("coco");
    std::fs::create_dir_all(root.join("val2017")).unwrap();
    std::fs::create_dir_all(root.join("annotations")).unwrap();
    // Twelve photos and their annotations, cut from coco128's official file; one listed image
    // is missing from disk.
    let all: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(coco().join("../annotations/instances_val2017.json")).unwrap(),
    )
    .unwrap();
    let images: Vec<serde_json::Value> = all["images"].as_array().unwrap()[..13].to_vec();
    for image in &images[..12] {
        let name = image["file_name"].as_str().unwrap();
        photo(name, 128)
            .save(root.join("val2017").join(name))
            .unwrap();
    }
    let ids: Vec<u64> = images.iter().map(|i| i["id"].as_u64().unwrap()).collect();
    let annotations: Vec<&serde_json::Value> = all["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| ids.contains(&a["image_id"].as_u64().unwrap()))
        .collect();
    let subset = serde_json::json!({ "images": images, "annotations": annotations });
    std::fs::write(
        root.join("annotations/instances_val2017.json"),
        subset.to_string(),
    )
    .unwrap();

    let (lines, out) = eval_json(
        &[
            "eval",
            "coco",
            "--root",
            root.to_str().unwrap(),
            "--models",
            "phash",
            "-k",
            "5",
            "--no-cache",
            "--out",
            "out",
            "--json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let EvalLine::Retrieval { model, result } = &lines[0] else {
        panic!("{lines:?}")
    };
    assert_eq!(model, "phash");
    assert_eq!((result.k, result.pool), (5, 12));
    assert!(result.queries > 0 && result.queries <= 12);
    for v in [
        result.map_at_k,
        result.precision_at_k,
        result.chance_precision,
    ] {
        assert!((0.0..=1.0).contains(&v), "{result:?}");
    }
    assert!(dir.path().join("out/precision-at-rank.png").is_file());
    let predictions =
        std::fs::read_to_string(dir.path().join("out/predictions-phash.csv")).unwrap();
    assert_eq!(
        predictions.lines().count(),
        1 + 12 * 5,
        "no image retrieves itself"
    );
}

#[test]
fn synth_builds_a_deterministic_benchmark_and_reports_each_edit() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos/nested");
    std::fs::create_dir_all(&photos).unwrap();
    for name in &PHOTOS {
        photo(name, 200).save(photos.join(name)).unwrap();
    }
    let run = |out: &str| {
        eval_json(
            &[
                "eval",
                "synth",
                "photos",
                "--queries",
                "10",
                "--distractors",
                "0.3",
                "--seed",
                "7",
                "--models",
                "phash",
                "--cache",
                "cache",
                "--out",
                out,
                "--json",
            ],
            dir.path(),
        )
    };
    let (lines, out) = run("a");
    assert!(out.status.success(), "{}", stderr(&out));
    let bench = dir.path().join("a/benchmark");
    let gt = std::fs::read_to_string(bench.join("ground_truth.csv")).unwrap();
    // 10 queries: 3 distractors from 3 held-out photos, 7 copies of the 4 pool photos.
    assert_eq!(gt.lines().count(), 11);
    assert_eq!(gt.lines().filter(|l| l.ends_with(',')).count(), 3);
    assert_eq!(
        std::fs::read_dir(bench.join("references")).unwrap().count(),
        4
    );
    let Some(EvalLine::CopyDetection {
        recall_at_rank1_by_edit: Some(by_edit),
        ..
    }) = lines.first()
    else {
        panic!("{lines:?}")
    };
    assert!(!by_edit.is_empty());
    assert!(by_edit.values().all(|r| (0.0..=1.0).contains(r)));

    // The same seed gives the same queries, byte for byte.
    let (_, out) = run("b");
    assert!(out.status.success(), "{}", stderr(&out));
    let other = dir.path().join("b/benchmark");
    assert_eq!(
        std::fs::read_to_string(bench.join("edits.csv")).unwrap(),
        std::fs::read_to_string(other.join("edits.csv")).unwrap()
    );
    for q in 0..10 {
        let name = format!("queries/Q{q:05}.jpg");
        assert_eq!(
            std::fs::read(bench.join(&name)).unwrap(),
            std::fs::read(other.join(&name)).unwrap(),
            "{name}"
        );
    }

    // Run again in the same place: the benchmark and its embeddings are reused.
    let (lines, out) = run("a");
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, extraction, _) = copy_detection(&lines, "phash");
    assert_eq!((extraction.embedded, extraction.from_cache), (0, 14));
}

#[test]
fn synth_leaves_out_unreadable_photos_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in &PHOTOS[..4] {
        photo(name, 160).save(photos.join(name)).unwrap();
    }
    let good = std::fs::read(photos.join(PHOTOS[0])).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
    std::fs::write(photos.join("notes.png"), b"not a picture").unwrap();
    let out = imgsim_in(
        &[
            "eval",
            "synth",
            "photos",
            "--distractors",
            "0",
            "--models",
            "phash",
            "--no-cache",
            "--out",
            "out",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("truncated.jpg") && err.contains("notes.png"),
        "{err}"
    );
    // Four readable photos: four references, four copies; the report still comes.
    let gt = std::fs::read_to_string(dir.path().join("out/benchmark/ground_truth.csv")).unwrap();
    assert_eq!(gt.lines().count(), 1 + 4, "{gt}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("out/benchmark/references"))
            .unwrap()
            .count(),
        4
    );
    assert!(stdout(&out).contains("| phash |"));
}
