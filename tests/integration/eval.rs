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

fn eval_json(args: &[&str], dir: &Path) -> (Vec<EvalLine>, Run) {
    let out = imgsim_in(args, dir);
    (out.json_lines(), out)
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
    out.assert_exit(0);
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
    // µAP as the DISC21 definition computes it, from the files themselves.
    let expected = micro_ap(
        &std::fs::read_to_string(root.join("public_ground_truth.csv")).unwrap(),
        &std::fs::read_to_string(dir.path().join(&predictions)).unwrap(),
    );
    assert!(
        (phash.micro_ap - expected).abs() < 1e-9,
        "{} != {expected}",
        phash.micro_ap
    );

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
    out.assert_exit(0);
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
    out.assert_exit(0);
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
    out.assert_exit(2);
    assert!(out.stderr().contains("R000004.jpg"), "{}", out.stderr());
    let report = out.stdout();
    assert!(report.contains("| phash |"), "{report}");
}

#[test]
fn a_missing_layout_or_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = imgsim_in(
        &["eval", "disc21", "--root", dir.path().to_str().unwrap()],
        dir.path(),
    );
    out.assert_exit(2);
    assert!(
        out.stderr()
            .contains("no reference folder: looked for images/references"),
        "{}",
        out.stderr()
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
    out.assert_exit(2);
    assert!(lines.is_empty());
    assert!(
        out.stderr().contains("unknown model 'resnet'"),
        "{}",
        out.stderr()
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
    out.assert_exit(2);
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
    out.assert_exit(0);
    let EvalLine::Retrieval { model, result } = &lines[0] else {
        panic!("{lines:?}")
    };
    assert_eq!(model, "phash");
    assert_eq!((result.k, result.pool), (5, 12));
    assert!(result.queries > 0 && result.queries <= 12);
    assert!(dir.path().join("out/precision-at-rank.png").is_file());
    let predictions =
        std::fs::read_to_string(dir.path().join("out/predictions-phash.csv")).unwrap();
    // Precision at k and the chance level, recomputed from the predictions and annotations.
    let mut categories: std::collections::HashMap<String, std::collections::BTreeSet<u64>> =
        std::collections::HashMap::new();
    for image in &images[..12] {
        let id = image["id"].as_u64().unwrap();
        let cats = annotations
            .iter()
            .filter(|a| a["image_id"].as_u64() == Some(id))
            .map(|a| a["category_id"].as_u64().unwrap())
            .collect();
        categories.insert(image["file_name"].as_str().unwrap().to_string(), cats);
    }
    let shares = |a: &str, b: &str| !categories[a].is_disjoint(&categories[b]);
    let (mut precision, mut chance, mut map, mut queries) = (0.0, 0.0, 0.0, 0);
    for query in categories.keys() {
        let relevant = categories
            .keys()
            .filter(|other| *other != query && shares(query, other))
            .count();
        if relevant == 0 {
            continue;
        }
        queries += 1;
        chance += relevant as f64 / 11.0;
        // The file lists each query's hits best first.
        let hits: Vec<bool> = predictions
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(&format!("{query},")))
            .map(|l| shares(query, l.split(',').nth(1).unwrap()))
            .collect();
        let (mut found, mut ap) = (0, 0.0);
        for (rank, hit) in hits.iter().enumerate() {
            if *hit {
                found += 1;
                ap += found as f64 / (rank + 1) as f64;
            }
        }
        precision += found as f64 / 5.0;
        map += ap / relevant.min(5) as f64;
    }
    assert_eq!(result.queries, queries);
    assert!((result.precision_at_k - precision / queries as f64).abs() < 1e-9);
    assert!((result.chance_precision - chance / queries as f64).abs() < 1e-9);
    assert!((result.map_at_k - map / queries as f64).abs() < 1e-9);
    assert_eq!(
        predictions.lines().count(),
        1 + 12 * 5,
        "no image retrieves itself"
    );
}

#[test]
fn coco_by_words_scores_zero_shot_retrieval_of_each_category_present() {
    let dir = tempfile::tempdir().unwrap();
    let root = coco().join("..");
    let clip = model_dir("tiny-clip").display().to_string();
    let dino = model_dir("tiny-dinov2").display().to_string();
    let (lines, out) = eval_json(
        &[
            "eval",
            "coco",
            "--text",
            "--root",
            root.to_str().unwrap(),
            "--models",
            "phash",
            "--model-dir",
            &clip,
            "--model-dir",
            &dino,
            "-k",
            "10",
            "--no-cache",
            "--out",
            "out",
            "--json",
        ],
        dir.path(),
    );
    out.assert_exit(0);
    out.assert_stderr_has("left out (no text tower): phash, ")
        .assert_stderr_has("tiny-dinov2\n");
    let EvalLine::Retrieval { model, result } = &lines[0] else {
        panic!("{lines:?}")
    };
    assert_eq!(model, "tiny-clip");
    assert!(matches!(lines[1], EvalLine::Summary { .. }), "{lines:?}");

    // Recomputed from the official annotations and the predictions file: one query per
    // category shown by an image on disk, "a photo of a {name}", its hits best first.
    let all: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(coco().join("../annotations/instances_val2017.json")).unwrap(),
    )
    .unwrap();
    let on_disk: std::collections::HashMap<u64, String> = all["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_u64().unwrap(),
                i["file_name"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(_, name)| coco().join(name).is_file())
        .collect();
    let mut shows: std::collections::HashMap<u64, std::collections::BTreeSet<String>> =
        Default::default();
    for a in all["annotations"].as_array().unwrap() {
        if let Some(name) = on_disk.get(&a["image_id"].as_u64().unwrap()) {
            shows
                .entry(a["category_id"].as_u64().unwrap())
                .or_default()
                .insert(name.clone());
        }
    }
    let names: std::collections::HashMap<u64, String> = all["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(result.queries, shows.len());
    assert_eq!(result.pool, on_disk.len());
    let predictions =
        std::fs::read_to_string(dir.path().join("out/predictions-tiny-clip.csv")).unwrap();
    let (mut map, mut precision) = (0.0, 0.0);
    for (category, images) in &shows {
        let query = format!("a photo of a {}", names[category]);
        let hits: Vec<bool> = predictions
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(&format!("{query},")))
            .map(|l| images.contains(l.split(',').nth(1).unwrap()))
            .collect();
        assert_eq!(hits.len(), 10, "{query}");
        let (mut found, mut ap) = (0, 0.0);
        for (rank, hit) in hits.iter().enumerate() {
            if *hit {
                found += 1;
                ap += found as f64 / (rank + 1) as f64;
            }
        }
        map += ap / images.len().min(10) as f64;
        precision += found as f64 / 10.0;
    }
    let n = shows.len() as f64;
    assert!(
        (result.map_at_k - map / n).abs() < 1e-9,
        "{} {}",
        result.map_at_k,
        map / n
    );
    assert!((result.precision_at_k - precision / n).abs() < 1e-9);
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
    out.assert_exit(0);
    let bench = dir.path().join("a/benchmark");
    // `dupes`' groups of the same images, scored by pairs, when precision reaches 0.9.
    let report = std::fs::read_to_string(dir.path().join("a/report.md")).unwrap();
    assert!(
        report.contains("`imgsim dupes` at that threshold"),
        "{report}"
    );
    let row = report
        .lines()
        .find(|l| l.starts_with("| phash |") && l.matches('|').count() == 6)
        .unwrap_or_else(|| panic!("{report}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    if cells[2] != "-" {
        let (grouped, right): (usize, usize) =
            (cells[2].parse().unwrap(), cells[3].parse().unwrap());
        assert!(right <= grouped, "{row}");
        // Recall is of every true pair: each copy with its original and with its siblings.
        assert!(cells[5].ends_with(')'), "{row}");
    }
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
    // Each edit's recall, recomputed from edits.csv and the predictions: the share of the
    // copies carrying that edit whose reference ranks first.
    let edits = std::fs::read_to_string(bench.join("edits.csv")).unwrap();
    let predictions = std::fs::read_to_string(dir.path().join("a/predictions-phash.csv")).unwrap();
    let scored: Vec<(&str, &str, f64)> = predictions
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0], f[1], f[2].parse().unwrap())
        })
        .collect();
    // Rank 1 as the official metric counts it: ties count against.
    let first = |q: &str, r: &str| {
        let Some(&(_, _, own)) = scored.iter().find(|p| p.0 == q && p.1 == r) else {
            return false;
        };
        scored.iter().all(|p| p.0 != q || p.1 == r || p.2 < own)
    };
    assert!(!by_edit.is_empty());
    for (edit, recall) in by_edit {
        let carrying: Vec<(&str, &str)> = edits
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| !f[1].is_empty() && f[2].split('+').any(|e| e == edit.as_str()))
            .map(|f| (f[0], f[1]))
            .collect();
        assert!(!carrying.is_empty(), "{edit}");
        let found = carrying.iter().filter(|(q, r)| first(q, r)).count();
        assert!(
            (recall - found as f64 / carrying.len() as f64).abs() < 1e-9,
            "{edit}: {recall} vs {found}/{}",
            carrying.len()
        );
    }

    // The same seed gives the same queries, byte for byte.
    let (_, out) = run("b");
    out.assert_exit(0);
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
    out.assert_exit(0);
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
    out.assert_exit(2);
    let err = out.stderr();
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
    assert!(out.stdout().contains("| phash |"));
}

/// µAP as the DISC21 metric defines it (facebookresearch/isc2021, `isc/metrics.py`): every
/// prediction pooled and sorted by score, ties with the negatives first; precision summed at
/// each step of recall over the ground-truth pairs.
fn micro_ap(ground_truth: &str, predictions: &str) -> f64 {
    let truth: std::collections::HashSet<(String, String)> = ground_truth
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .filter(|(_, r)| !r.is_empty())
        .map(|(q, r)| (q.to_string(), r.to_string()))
        .collect();
    let mut scored: Vec<(f64, bool)> = predictions
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let pair = (f[0].to_string(), f[1].to_string());
            (f[2].parse().unwrap(), truth.contains(&pair))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let (mut tp, mut ap) = (0.0, 0.0);
    for (i, (_, positive)) in scored.iter().enumerate() {
        if *positive {
            tp += 1.0;
            ap += tp / (i + 1) as f64 / truth.len() as f64;
        }
    }
    ap
}
