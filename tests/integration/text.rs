//! Parity of CLIP's text side with the reference (transformers' `CLIPTokenizer` and
//! `CLIPModel.get_text_features`), on the tiny CLIP whose text tower uses the real 49,408-token
//! vocabulary (`scripts/make_text_fixtures.py`), and `imgsim search` as a user runs it. The
//! negative controls (no causal mask, pooling one position early) must fail the same bound.

use candle_core::Device;
use imgsim::models::clip_text::Deviation;
use imgsim::models::{normalized, TextModel, WeightsSource};
use serde::Deserialize;

use crate::util::*;

#[derive(Deserialize)]
struct TextReference {
    context: usize,
    strings: Vec<TextCase>,
}

#[derive(Deserialize)]
struct TextCase {
    text: String,
    /// Padded to `context` with the end token.
    ids: Vec<u32>,
    /// How many of `ids` are not padding.
    length: usize,
    embedding: Vec<f32>,
}

fn text_reference() -> TextReference {
    let path = fixtures().join("reference/tiny-clip/text.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text_model() -> TextModel {
    TextModel::load(&WeightsSource::Dir(model_dir("tiny-clip")), &Device::Cpu).unwrap()
}

/// The bound of the text embeddings: relative L2 distance to the reference.
const BOUND: f32 = 1e-4;

#[test]
fn token_ids_equal_the_reference_tokenizer_on_every_test_string() {
    let reference = text_reference();
    let model = text_model();
    assert!(reference.strings.len() >= 250);
    let mut truncated = 0;
    for case in &reference.strings {
        let ours = model.tokens(&case.text).unwrap();
        assert_eq!(ours, case.ids[..case.length], "{:?}", case.text);
        assert_eq!(case.ids.len(), reference.context);
        truncated += usize::from(case.length == reference.context);
    }
    // The long texts reach the limit, and keep their end token there.
    assert!(truncated >= 3, "{truncated}");
}

#[test]
fn text_embeddings_match_the_reference() {
    let reference = text_reference();
    let model = text_model();
    let mut worst = 0f32;
    for case in &reference.strings {
        let ours = model.embed(&case.text).unwrap();
        let d = relative_l2(&ours, &case.embedding);
        worst = worst.max(d);
        assert!(d < BOUND, "{:?}: relative L2 {d:.2e}", case.text);
    }
    eprintln!(
        "worst relative L2 over {}: {worst:.2e}",
        reference.strings.len()
    );
}

#[test]
fn negative_controls_a_wrong_pooling_position_or_no_causal_mask_fail_the_bound() {
    let reference = text_reference();
    let model = text_model();
    for deviation in [
        Deviation {
            no_causal_mask: true,
            ..Default::default()
        },
        Deviation {
            pool_before_end: true,
            ..Default::default()
        },
    ] {
        let failing = reference
            .strings
            .iter()
            .filter(|case| {
                let ids = &case.ids[..case.length];
                let ours =
                    normalized(&model.tower().forward_deviating(ids, deviation).unwrap()).unwrap();
                relative_l2(&ours, &case.embedding) >= BOUND
            })
            .count();
        // Every string but the empty ones (where both deviations can coincide) fails.
        assert!(
            failing >= reference.strings.len() - 3,
            "{deviation:?}: only {failing} of {} fail",
            reference.strings.len()
        );
    }
}

#[test]
fn a_model_without_a_text_tower_is_refused_with_the_models_that_have_one() {
    let err = TextModel::load(&WeightsSource::Dir(model_dir("tiny-dinov2")), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no text tower") && err.contains("clip-vit-b32"),
        "{err}"
    );
    let err = TextModel::load(&WeightsSource::Phash, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("phash has no text tower"), "{err}");
}

#[test]
fn a_clip_folder_without_its_tokenizer_says_so() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&model_dir("tiny-clip"), dir.path());
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = TextModel::load(&WeightsSource::Dir(dir.path().to_path_buf()), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tokenizer.json is missing"), "{err}");
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SearchLine {
    Hit {
        rank: usize,
        score: f32,
        path: String,
    },
    Summary {
        terms: Vec<TermLine>,
        hits: usize,
        indexed: usize,
    },
}

#[derive(Debug, Deserialize)]
struct TermLine {
    weight: f32,
    kind: String,
}

/// Six coco128 photos in two folders, indexed with the tiny CLIP.
struct Library {
    _dir: tempfile::TempDir,
    photos: std::path::PathBuf,
    model: String,
    cmd: Imgsim,
}

impl Library {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("Pictures");
        std::fs::create_dir_all(photos.join("2023")).unwrap();
        for (i, name) in [
            "000000000009.jpg",
            "000000000025.jpg",
            "000000000030.jpg",
            "000000000034.jpg",
            "000000000036.jpg",
            "000000000042.jpg",
        ]
        .iter()
        .enumerate()
        {
            let sub = if i % 2 == 0 { "" } else { "2023" };
            std::fs::copy(coco().join(name), photos.join(sub).join(name)).unwrap();
        }
        let model = model_dir("tiny-clip").display().to_string();
        let cmd = Imgsim::new();
        cmd.run(&["index", "--model-dir", &model, photos.to_str().unwrap()])
            .assert_exit(0);
        Library {
            _dir: dir,
            photos,
            model,
            cmd,
        }
    }

    fn search(&self, query: &[&str], more: &[&str]) -> Run {
        let mut args = vec!["search", "--model-dir", &self.model];
        args.extend(more);
        args.extend(query);
        self.cmd.run(&args)
    }

    fn photo(&self, rel: &str) -> String {
        self.photos.join(rel).display().to_string()
    }
}

fn hits(lines: &[SearchLine]) -> Vec<(String, f32)> {
    lines
        .iter()
        .filter_map(|l| match l {
            SearchLine::Hit { path, score, rank } => {
                assert!(*rank >= 1);
                Some((path.clone(), *score))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn search_by_words_ranks_the_library_by_the_text_embedding() {
    let lib = Library::new();
    let out = lib.search(&["a photo of a dog"], &["--json", "-k", "4"]);
    out.assert_exit(0);
    let lines: Vec<SearchLine> = out.json_lines();
    let found = hits(&lines);
    assert_eq!(found.len(), 4);
    assert!(found.windows(2).all(|w| w[0].1 >= w[1].1), "{found:?}");
    let Some(SearchLine::Summary {
        terms,
        hits,
        indexed,
    }) = lines.last()
    else {
        panic!("no summary: {lines:?}")
    };
    assert_eq!((*hits, *indexed), (4, 6));
    assert_eq!(terms[0].kind, "text");

    // The scores are the cosine of the text and image embeddings that the reference gives.
    let model = text_model();
    let text = model.embed("a photo of a dog").unwrap();
    let embedded = lib
        .cmd
        .run(&["embed", "--model-dir", &lib.model, "--json", &found[0].0]);
    embedded.assert_exit(0);
    let line: serde_json::Value =
        serde_json::from_str(embedded.stdout().lines().next().unwrap()).unwrap();
    let image: Vec<f32> = serde_json::from_value(line["embedding"].clone()).unwrap();
    let cos: f32 = text.iter().zip(&image).map(|(a, b)| a * b).sum();
    assert!((cos - found[0].1).abs() < 1e-4, "{cos} vs {}", found[0].1);

    // Plain output: one line per hit.
    let plain = lib.search(&["a", "photo", "of", "a", "dog"], &["-k", "2"]);
    plain.assert_exit(0);
    assert_eq!(plain.stdout().lines().count(), 2, "{}", plain.stdout());
}

#[test]
fn words_and_pictures_mix_and_the_filter_applies() {
    let lib = Library::new();
    let picture = lib.photo("000000000009.jpg");
    let out = lib.search(
        &["2:a bowl of food", "+", &picture, "-", "people"],
        &["--json", "--where", "dir:2023"],
    );
    out.assert_exit(0);
    let lines: Vec<SearchLine> = out.json_lines();
    let found = hits(&lines);
    // Only the three photos in 2023/, and never the query picture itself.
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().all(|(p, _)| p.contains("/2023/")), "{found:?}");
    let Some(SearchLine::Summary { terms, .. }) = lines.last() else {
        panic!("no summary")
    };
    let read: Vec<(f32, &str)> = terms.iter().map(|t| (t.weight, t.kind.as_str())).collect();
    assert_eq!(read, vec![(2.0, "text"), (1.0, "indexed"), (-1.0, "text")]);

    // The mix is not the words alone, nor the picture alone.
    let words = hits(
        &lib.search(&["a bowl of food"], &["--json", "--where", "dir:2023"])
            .json_lines(),
    );
    let mixed: Vec<f32> = found.iter().map(|h| h.1).collect();
    let alone: Vec<f32> = words.iter().map(|h| h.1).collect();
    assert_ne!(mixed, alone);

    // A picture that is not indexed is embedded on the spot.
    let outside = coco().join("000000000049.jpg").display().to_string();
    let out = lib.search(&[&outside], &["--json", "-k", "2"]);
    out.assert_exit(0);
    let lines: Vec<SearchLine> = out.json_lines();
    let Some(SearchLine::Summary { terms, .. }) = lines.last() else {
        panic!("no summary")
    };
    assert_eq!(terms[0].kind, "image");
}

#[test]
fn bad_queries_are_clear_errors_with_exit_2() {
    let lib = Library::new();
    lib.search(&["./missing.jpg"], &[])
        .assert_exit(2)
        .assert_stderr_has("missing.jpg: no such file");
    lib.search(&[""], &[])
        .assert_exit(2)
        .assert_stderr_has("empty term");
    lib.search(&["dog", "+"], &[])
        .assert_exit(2)
        .assert_stderr_has("ends with an operator");
    lib.search(&["dog", "-", "dog"], &[])
        .assert_exit(2)
        .assert_stderr_has("cancel out");
    let picture = lib.photo("000000000009.jpg");
    lib.search(&["dog", &picture], &[])
        .assert_exit(2)
        .assert_stderr_has("put `+` or `-` between");
    // A model without a text tower names the ones that have one.
    let dino = model_dir("tiny-dinov2").display().to_string();
    lib.cmd
        .run(&["search", "--model-dir", &dino, "a dog"])
        .assert_exit(2)
        .assert_stderr_has("no text tower");
    lib.cmd
        .run(&["search", "--model", "phash", "a dog"])
        .assert_exit(2)
        .assert_stderr_has("phash has no text tower");
}

#[test]
fn the_daemon_answers_text_queries_as_the_database_does() {
    let lib = Library::new();
    let db = lib.cmd.db();
    let mut daemon = std::process::Command::new(imgsim_binary())
        .args([
            "watch",
            "--settle",
            "0.5",
            "--model-dir",
            &lib.model,
            "--db",
        ])
        .arg(&db)
        .arg(&lib.photos)
        .env("HF_HUB_OFFLINE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let picture = lib.photo("2023/000000000025.jpg");
    let query = ["a red bus", "-", "0.5:trees", "+", picture.as_str()];
    let summary = |run: &Run| -> serde_json::Value {
        run.assert_exit(0);
        serde_json::from_str(run.stdout().lines().last().unwrap()).unwrap()
    };
    let started = std::time::Instant::now();
    let by_daemon = loop {
        let run = lib.search(&query, &["--json"]);
        if summary(&run)["by_daemon"] == true {
            break run;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the daemon never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // Twice: the second answer comes from the remembered text embeddings.
    let again = lib.search(&query, &["--json"]);
    let direct = lib.search(&query, &["--json", "--no-daemon"]);
    assert_eq!(summary(&direct)["by_daemon"], false);
    let (a, b, c): (Vec<SearchLine>, Vec<SearchLine>, Vec<SearchLine>) = (
        by_daemon.json_lines(),
        again.json_lines(),
        direct.json_lines(),
    );
    let (a, b, c) = (hits(&a), hits(&b), hits(&c));
    assert_eq!(a.len(), 5, "{a:?}");
    assert_eq!(a, b);
    assert_eq!(a.len(), c.len());
    for (x, y) in a.iter().zip(&c) {
        assert_eq!(x.0, y.0);
        assert!((x.1 - y.1).abs() < 1e-5, "{x:?} {y:?}");
    }
    // Errors come back as errors.
    lib.search(&["dog", "-", "dog"], &[])
        .assert_exit(2)
        .assert_stderr_has("cancel out");
    lib.search(&["/nowhere/x.jpg"], &[])
        .assert_exit(2)
        .assert_stderr_has("no such file");
    let _ = daemon.kill();
    let _ = daemon.wait();
}
