//! `imgsim dupes` on real photos (coco128) with the weight-free phash: exact copies, edited
//! copies (smaller and recompressed), a RAW file beside its JPEG, and the formats scripts read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use serde_json::Value;

use crate::util::*;

/// A library of 12 coco photos, an exact copy of one, a smaller recompressed copy of three,
/// and a RAW file named like one of them.
struct Library {
    _dir: tempfile::TempDir,
    root: PathBuf,
    db: String,
    /// Each copy's original.
    originals: HashMap<PathBuf, PathBuf>,
}

impl Library {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        std::fs::create_dir_all(root.join("edits")).unwrap();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(coco())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        photos.sort();
        let mut originals = HashMap::new();
        for (i, photo) in photos.iter().take(12).enumerate() {
            let name = if i == 5 {
                "IMG_0005.JPG".to_string()
            } else {
                photo.file_name().unwrap().to_string_lossy().into_owned()
            };
            std::fs::copy(photo, root.join(&name)).unwrap();
            let original = root.join(&name).canonicalize().unwrap();
            if i < 3 {
                // Half the size, JPEG quality 50: what a messenger does to a photo.
                let image = image::open(photo).unwrap().to_rgb8();
                let small = imageops::resize(
                    &image,
                    image.width() / 2,
                    image.height() / 2,
                    FilterType::Triangle,
                );
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 50)
                    .encode_image(&small)
                    .unwrap();
                let copy = root.join("edits").join(format!("small-{name}"));
                std::fs::write(&copy, bytes).unwrap();
                originals.insert(copy.canonicalize().unwrap(), original.clone());
            }
            if i == 4 {
                let copy = root.join("edits").join("same-bytes.jpg");
                std::fs::copy(photo, &copy).unwrap();
                originals.insert(copy.canonicalize().unwrap(), original.clone());
            }
        }
        std::fs::write(root.join("img_0005.cr2"), b"raw sensor data").unwrap();
        let db = dir.path().join("db").display().to_string();
        Library {
            _dir: dir,
            root,
            db,
            originals,
        }
    }

    fn dupes(&self, extra: &[&str]) -> Run {
        let root = self.root.display().to_string();
        let mut args = vec!["dupes", &root, "--model", "phash", "--db", &self.db];
        args.extend(extra);
        imgsim(&args)
    }
}

fn paths(group: &Value) -> Vec<PathBuf> {
    group["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| PathBuf::from(m["path"].as_str().unwrap()))
        .collect()
}

#[test]
fn copies_and_edited_copies_group_with_their_originals_and_raw_pairs_are_kept() {
    let library = Library::new();
    let run = library.dupes(&["--threshold", "0.75", "--json"]);
    run.assert_exit(0);
    let lines: Vec<Value> = run.json_lines();
    let (summary, groups) = lines.split_last().unwrap();
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["rows"], 12 + 3 + 1, "{summary}");
    assert_eq!(summary["threshold_from"], "given");

    // Every copy is in a group with its original, and the exact copy is classified so.
    for (copy, original) in &library.originals {
        let group = groups
            .iter()
            .find(|g| paths(g).contains(copy))
            .unwrap_or_else(|| panic!("{} in no group: {lines:#?}", copy.display()));
        assert!(paths(group).contains(original), "{group:#}");
        let kind = if copy.ends_with("same-bytes.jpg") {
            "exact"
        } else {
            "near"
        };
        assert_eq!(group["kind"], kind, "{group:#}");
        assert_eq!(group["removable"], true);
        // The original is the keeper (more pixels, or older for the same bytes... both are
        // the same size there: then the shorter path).
        assert_eq!(group["images"][0]["keep"], true);
        assert_eq!(
            PathBuf::from(group["images"][0]["path"].as_str().unwrap()),
            *original,
            "{group:#}"
        );
        assert!(group["images"][1]["score"].as_f64().unwrap() >= 0.75);
    }

    // The RAW file and its JPEG: a pair of their own kind, never proposed for removal.
    let raw = groups
        .iter()
        .find(|g| g["kind"] == "raw_jpeg")
        .unwrap_or_else(|| panic!("no RAW pair: {lines:#?}"));
    assert_eq!(raw["removable"], false);
    let names: Vec<String> = paths(raw)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["IMG_0005.JPG", "img_0005.cr2"]);
    assert_eq!(raw["images"][1]["indexed"], false);

    // Nothing was changed on disk.
    assert!(library.root.join("edits/same-bytes.jpg").exists());
}

#[test]
fn csv_has_a_line_per_image_and_text_says_what_could_go() {
    let library = Library::new();
    let run = library.dupes(&["--threshold", "0.75", "--csv"]);
    run.assert_exit(0);
    let mut reader = csv::Reader::from_reader(run.out.stdout.as_slice());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "group");
    assert_eq!(&header[3], "path");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    // 4 groups of 2 and the RAW pair.
    assert_eq!(records.len(), 10, "{}", run.stdout());
    assert_eq!(records.iter().filter(|r| &r[2] == "true").count(), 5);

    let text = library.dupes(&["--threshold", "0.75"]);
    text.assert_exit(0)
        .assert_stderr_has("; 4 images (")
        .assert_stderr_has("Nothing was changed");
    assert!(text.stdout().contains("keep "), "{}", text.stdout());
}

#[test]
fn a_strict_threshold_finds_only_exact_copies_and_none_exits_1() {
    let library = Library::new();
    let run = library.dupes(&["--threshold", "1", "--json"]);
    run.assert_exit(0);
    let lines: Vec<Value> = run.json_lines();
    let kinds: Vec<&str> = lines[..lines.len() - 1]
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    // phash of a recompressed half-size copy may still equal the original's bit for bit:
    // those are near duplicates at 1.0; the copy with the same bytes is always exact.
    assert!(kinds.contains(&"exact"), "{kinds:?}");

    // A folder without duplicates: exit 1, as a search that finds nothing.
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("lonely");
    std::fs::create_dir(&lonely).unwrap();
    for photo in std::fs::read_dir(coco()).unwrap().take(3) {
        let photo = photo.unwrap().path();
        std::fs::copy(&photo, lonely.join(photo.file_name().unwrap())).unwrap();
    }
    let db = dir.path().join("db");
    imgsim(&[
        "dupes",
        &lonely.display().to_string(),
        "--model",
        "phash",
        "--threshold",
        "0.99",
        "--db",
        &db.display().to_string(),
    ])
    .assert_exit(1)
    .assert_stderr_has("0 groups");
}

#[test]
fn a_model_without_a_measured_threshold_asks_for_one() {
    let library = Library::new();
    let root = library.root.display().to_string();
    let model = model_dir("tiny-clip").display().to_string();
    imgsim(&["dupes", &root, "--model-dir", &model, "--db", &library.db])
        .assert_exit(2)
        .assert_stderr_has("--threshold");
    // Nothing was indexed for it either.
    assert!(!Path::new(&library.db).exists());
    // Wrong values are refused by name.
    imgsim(&["dupes", "--model", "phash", "--threshold", "1.5"])
        .assert_exit(2)
        .assert_stderr_has("not a cosine similarity");
    imgsim(&["dupes", "--model", "phash", "--keep", "biggest"])
        .assert_exit(2)
        .assert_stderr_has("path:PREFIX");
}

#[test]
fn calibration_measures_a_threshold_on_the_library_and_later_runs_use_it() {
    let library = Library::new();
    let run = library.dupes(&["--calibrate", "--precision", "0.9", "--json"]);
    run.assert_exit(0);
    // The line a user reads: the threshold, its precision, how many photos, the recall.
    let said = run.stderr();
    assert!(
        said.contains("phash: cosine >= ")
            && said.contains("keeps 90% precision on 15 of your photos"),
        "{said}"
    );
    let lines: Vec<Value> = run.json_lines();
    let summary = lines.last().unwrap();
    assert_eq!(summary["threshold_from"], "calibrated", "{summary}");
    let measured = summary["threshold"].as_f64().unwrap();

    // Kept in the database: a later run uses it, and --precision picks it.
    let stored: Value = serde_json::from_slice(
        &std::fs::read(Path::new(&library.db).join("dupes-thresholds.json")).unwrap(),
    )
    .unwrap();
    let (_, by_precision) = stored.as_object().unwrap().iter().next().unwrap();
    assert_eq!(by_precision["0.9000"]["threshold"].as_f64(), Some(measured));
    for extra in [&["--json"][..], &["--precision", "0.9", "--json"][..]] {
        let again = library.dupes(extra);
        again.assert_exit(0);
        let lines: Vec<Value> = again.json_lines();
        let summary = lines.last().unwrap();
        assert_eq!(summary["threshold"].as_f64(), Some(measured), "{summary}");
        assert_eq!(summary["threshold_from"], "calibrated");
    }
    // A precision never measured is said, with the command that measures it.
    library
        .dupes(&["--precision", "0.99"])
        .assert_exit(2)
        .assert_stderr_has("--calibrate --precision 0.99");
}

#[test]
fn images_marked_as_not_duplicates_stay_apart_until_forgotten() {
    let library = Library::new();
    let groups = |library: &Library| -> Vec<Vec<PathBuf>> {
        let run = library.dupes(&["--threshold", "0.75", "--json"]);
        let lines: Vec<Value> = run.json_lines();
        lines[..lines.len() - 1].iter().map(paths).collect()
    };
    let before = groups(&library);
    let (copy, original) = library
        .originals
        .iter()
        .find(|(copy, _)| !copy.ends_with("same-bytes.jpg"))
        .unwrap();
    let together = |groups: &[Vec<PathBuf>]| {
        groups
            .iter()
            .any(|g| g.contains(copy) && g.contains(original))
    };
    assert!(together(&before));
    let (copy_arg, original_arg) = (copy.display().to_string(), original.display().to_string());
    imgsim(&[
        "dupes",
        "ignore",
        &copy_arg,
        &original_arg,
        "--db",
        &library.db,
    ])
    .assert_exit(0);
    let after = groups(&library);
    assert!(!together(&after), "{after:#?}");
    assert_eq!(after.len(), before.len() - 1);
    // Listed, and a decision follows the file when it is renamed (it is kept by content).
    let listed = imgsim(&["dupes", "ignored", "--db", &library.db, "--json"]);
    listed.assert_exit(0);
    assert!(listed.stdout().contains(&copy_arg));
    let renamed = copy.with_file_name("renamed.jpg");
    std::fs::rename(copy, &renamed).unwrap();
    let after_rename = groups(&library);
    assert!(!after_rename
        .iter()
        .any(|g| g.contains(&renamed) && g.contains(original)));
    // Forgotten: together again.
    imgsim(&[
        "dupes",
        "ignored",
        "--forget",
        &original_arg,
        "--db",
        &library.db,
    ])
    .assert_exit(0);
    assert!(groups(&library)
        .iter()
        .any(|g| g.contains(&renamed) && g.contains(original)));
    // Copies with the same bytes cannot be kept apart: said, not stored.
    let exact = library
        .originals
        .iter()
        .find(|(copy, _)| copy.ends_with("same-bytes.jpg"))
        .unwrap();
    imgsim(&[
        "dupes",
        "ignore",
        &exact.0.display().to_string(),
        &exact.1.display().to_string(),
        "--db",
        &library.db,
    ])
    .assert_exit(2)
    .assert_stderr_has("same bytes");
}
