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

/// Every file under `dir` with its bytes and modification time.
fn files_with_times(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut files: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let modified = e.metadata().unwrap().modified().unwrap();
            (
                e.path().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
                modified,
            )
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

impl Library {
    /// The groups the index holds now, read without indexing first (no folder named).
    fn indexed_groups(&self) -> (Vec<Value>, Value) {
        let run = imgsim(&[
            "dupes",
            "--model",
            "phash",
            "--db",
            &self.db,
            "--threshold",
            "0.75",
            "--json",
        ]);
        let mut lines: Vec<Value> = run.json_lines();
        let summary = lines.pop().unwrap();
        (lines, summary)
    }

    fn undo(&self, env: &[(&str, &str)]) -> Run {
        let mut runner = Imgsim::new();
        for (k, v) in env {
            runner = runner.env(k, v);
        }
        runner.run(&["dupes", "undo", "--db", &self.db, "--json"])
    }
}

/// The change lines of a `--json` run, and its changes summary.
fn changes(run: &Run) -> (Vec<Value>, Value) {
    let lines: Vec<Value> = run.json_lines();
    let mut changes: Vec<Value> = lines
        .into_iter()
        .filter(|l| l["type"] == "change" || l["type"] == "changes")
        .collect();
    let summary = changes.pop().expect("a changes line");
    assert_eq!(summary["type"], "changes", "{summary}");
    (changes, summary)
}

#[test]
fn without_apply_a_plan_changes_nothing_and_apply_needs_an_action() {
    let library = Library::new();
    let before = files_with_times(&library.root);
    let target = library.root.parent().unwrap().join("aside");
    let run = library.dupes(&[
        "--threshold",
        "0.75",
        "--move-to",
        &target.display().to_string(),
    ]);
    run.assert_exit(0)
        .assert_stderr_has("with --apply, 4 images")
        .assert_stderr_has("Nothing was changed");
    assert!(run.stdout().contains("would move "), "{}", run.stdout());
    assert_eq!(files_with_times(&library.root), before);
    assert!(!target.exists());
    library
        .dupes(&["--threshold", "0.75", "--apply"])
        .assert_exit(2)
        .assert_stderr_has("--move-to");
    library
        .dupes(&["--threshold", "0.75", "--trash", "--hardlink"])
        .assert_exit(2);
    // Nothing applied: nothing to undo.
    library.undo(&[]).assert_exit(1);
}

#[test]
fn move_to_keeps_the_rows_and_undo_restores_every_file_byte_for_byte_and_the_index() {
    let library = Library::new();
    let target = library.root.parent().unwrap().join("aside");
    // Indexed, then planned and applied.
    library.dupes(&["--threshold", "0.75"]).assert_exit(0);
    let before = files_with_times(&library.root);
    let (groups_before, summary_before) = library.indexed_groups();
    let run = library.dupes(&[
        "--threshold",
        "0.75",
        "--move-to",
        &target.display().to_string(),
        "--apply",
        "--json",
    ]);
    run.assert_exit(0);
    let (steps, summary) = changes(&run);
    assert_eq!(summary["status"], "done");
    assert_eq!(summary["images"], 4, "{steps:#?}");
    assert_eq!(summary["skipped"], 0);
    for copy in library.originals.keys() {
        assert!(!copy.exists(), "{} still there", copy.display());
        let moved = target.join(copy.strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read(&moved).unwrap(),
            before.iter().find(|f| &f.0 == copy).unwrap().1
        );
    }
    // The originals stay; the rows moved with the files (no embedding again): the index still
    // groups each copy, at its new place, with its original.
    for original in library.originals.values() {
        assert!(original.exists());
    }
    let (groups_moved, summary_moved) = library.indexed_groups();
    assert_eq!(summary_moved["rows"], summary_before["rows"]);
    let moved_paths: Vec<String> = groups_moved
        .iter()
        .flat_map(paths)
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        moved_paths
            .iter()
            .filter(|p| p.starts_with(&target.display().to_string()))
            .count()
            == 4,
        "{moved_paths:#?}"
    );
    // The journal is in the database.
    assert!(Path::new(&library.db).join("dupes-journal").is_dir());

    // Undo: every file back, byte for byte, with its time; the index as it was.
    let undone = library.undo(&[]);
    undone.assert_exit(0);
    let (_, summary) = changes(&undone);
    assert_eq!(summary["status"], "undone");
    assert_eq!(summary["images"], 4);
    assert_eq!(files_with_times(&library.root), before);
    assert!(files_with_times(&target).is_empty());
    let (groups_after, summary_after) = library.indexed_groups();
    assert_eq!(groups_after, groups_before);
    assert_eq!(summary_after, summary_before);
    // Undone once: nothing left to undo.
    library.undo(&[]).assert_exit(1);
}

#[test]
fn trash_follows_the_freedesktop_spec_and_undo_restores_from_it() {
    let library = Library::new();
    let data_home = library.root.parent().unwrap().join("data-home");
    let data = data_home.display().to_string();
    library.dupes(&["--threshold", "0.75"]).assert_exit(0);
    let before = files_with_times(&library.root);
    let (groups_before, summary_before) = library.indexed_groups();
    let root = library.root.display().to_string();
    let run = Imgsim::new().env("XDG_DATA_HOME", &data).run(&[
        "dupes",
        &root,
        "--model",
        "phash",
        "--db",
        &library.db,
        "--threshold",
        "0.75",
        "--trash",
        "--apply",
        "--json",
    ]);
    run.assert_exit(0);
    let (_, summary) = changes(&run);
    assert_eq!(summary["images"], 4);
    // In the home trash: the file under files/, its description under info/ with the
    // original path (percent-encoded) and the deletion date.
    let trash = data_home.join("Trash");
    for copy in library.originals.keys() {
        assert!(!copy.exists());
        let name = copy.file_name().unwrap().to_string_lossy().into_owned();
        let kept = trash.join("files").join(&name);
        assert_eq!(
            std::fs::read(&kept).unwrap(),
            before.iter().find(|f| &f.0 == copy).unwrap().1
        );
        let info =
            std::fs::read_to_string(trash.join("info").join(format!("{name}.trashinfo"))).unwrap();
        let mut lines = info.lines();
        assert_eq!(lines.next(), Some("[Trash Info]"), "{info}");
        let path_line = info.lines().find(|l| l.starts_with("Path=")).unwrap();
        assert_eq!(
            path_line,
            format!("Path={}", copy.display()).replace(' ', "%20"),
            "{info}"
        );
        let date = info
            .lines()
            .find_map(|l| l.strip_prefix("DeletionDate="))
            .unwrap_or_else(|| panic!("no DeletionDate in {info}"));
        assert!(
            chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%dT%H:%M:%S").is_ok(),
            "{date}"
        );
    }
    // Their rows left the index.
    let (_, summary_trashed) = library.indexed_groups();
    assert_eq!(
        summary_trashed["rows"].as_u64().unwrap() + 4,
        summary_before["rows"].as_u64().unwrap()
    );

    library.undo(&[("XDG_DATA_HOME", &data)]).assert_exit(0);
    assert_eq!(files_with_times(&library.root), before);
    assert!(files_with_times(&trash.join("files")).is_empty());
    assert!(files_with_times(&trash.join("info")).is_empty());
    let (groups_after, summary_after) = library.indexed_groups();
    assert_eq!(groups_after, groups_before);
    assert_eq!(summary_after, summary_before);
}

#[test]
fn a_file_that_vanished_or_changed_after_indexing_is_skipped_and_nothing_else_is_touched() {
    let library = Library::new();
    library.dupes(&["--threshold", "0.75"]).assert_exit(0);
    let mut copies: Vec<&PathBuf> = library
        .originals
        .keys()
        .filter(|c| !c.ends_with("same-bytes.jpg"))
        .collect();
    copies.sort();
    let (vanished, changed) = (copies[0], copies[1]);
    std::fs::remove_file(vanished).unwrap();
    std::fs::write(changed, b"not the photo the index saw").unwrap();
    let before = files_with_times(&library.root);
    let target = library.root.parent().unwrap().join("aside");
    // The index is not refreshed (no folder named): the plan still names both.
    let run = imgsim(&[
        "dupes",
        "--model",
        "phash",
        "--db",
        &library.db,
        "--threshold",
        "0.75",
        "--move-to",
        &target.display().to_string(),
        "--apply",
        "--json",
    ]);
    run.assert_exit(0)
        .assert_stderr_has("vanished since it was indexed")
        .assert_stderr_has("changed since it was indexed");
    let (steps, summary) = changes(&run);
    assert_eq!(summary["images"], 2, "{steps:#?}");
    assert_eq!(summary["skipped"], 2, "{steps:#?}");
    let skipped: Vec<&str> = steps
        .iter()
        .filter(|s| s["status"] == "skipped")
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(skipped.contains(&vanished.to_str().unwrap()), "{steps:#?}");
    assert!(skipped.contains(&changed.to_str().unwrap()), "{steps:#?}");
    // The changed file and the originals are untouched.
    assert_eq!(
        std::fs::read(changed).unwrap(),
        b"not the photo the index saw"
    );
    for original in library.originals.values() {
        assert!(original.exists());
    }
    // Undo puts back the two that moved; the rest stays as it is.
    library.undo(&[]).assert_exit(0);
    assert_eq!(files_with_times(&library.root), before);
}

#[test]
fn a_group_whose_keeper_changed_keeps_all_its_images() {
    let library = Library::new();
    library.dupes(&["--threshold", "0.75"]).assert_exit(0);
    let exact = library
        .originals
        .keys()
        .find(|c| c.ends_with("same-bytes.jpg"))
        .unwrap();
    let keeper = &library.originals[exact];
    std::fs::write(keeper, b"edited in place").unwrap();
    let run = imgsim(&[
        "dupes",
        "--model",
        "phash",
        "--db",
        &library.db,
        "--threshold",
        "0.75",
        "--trash",
        "--apply",
        "--json",
    ]);
    // Any outcome but a removal of the copy whose original changed.
    let (steps, _) = changes(&run);
    assert!(exact.exists(), "{steps:#?}");
    let step = steps
        .iter()
        .find(|s| s["path"].as_str() == exact.to_str())
        .unwrap();
    assert_eq!(step["status"], "skipped");
    assert!(
        step["reason"]
            .as_str()
            .unwrap()
            .contains("the image it duplicates"),
        "{step}"
    );
    // (The other copies went to the trash: put them back for the next tests' sake.)
    let _ = library.undo(&[]);
}

#[test]
fn hardlink_replaces_only_exact_copies_and_undo_makes_them_independent_again() {
    use std::os::unix::fs::MetadataExt;
    let library = Library::new();
    library.dupes(&["--threshold", "0.75"]).assert_exit(0);
    let before = files_with_times(&library.root);
    let run = library.dupes(&["--threshold", "0.75", "--hardlink", "--apply", "--json"]);
    run.assert_exit(0);
    let (steps, summary) = changes(&run);
    assert_eq!(summary["images"], 1, "{steps:#?}");
    let exact = library
        .originals
        .keys()
        .find(|c| c.ends_with("same-bytes.jpg"))
        .unwrap();
    let original = &library.originals[exact];
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(inode(exact), inode(original));
    // Near copies are left alone, with the reason.
    for step in steps.iter().filter(|s| s["status"] == "skipped") {
        assert!(
            step["reason"].as_str().unwrap().contains("exact copies"),
            "{step}"
        );
    }
    for copy in library.originals.keys().filter(|c| *c != exact) {
        assert_eq!(std::fs::metadata(copy).unwrap().nlink(), 1);
    }
    library.undo(&[]).assert_exit(0);
    assert_ne!(inode(exact), inode(original));
    assert_eq!(files_with_times(&library.root), before);
}

#[test]
fn shots_seconds_apart_are_a_burst_kept_whole_and_copies_of_one_shot_stay_duplicates() {
    use imgsim::metadata::{exif_segment, with_exif};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    std::fs::create_dir_all(&root).unwrap();
    let mut photos: Vec<PathBuf> = std::fs::read_dir(coco())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    let jpeg = |image: &image::RgbImage| {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(image)
            .unwrap();
        bytes
    };
    // Three shots of one scene, a second apart: the frame moves by a few pixels.
    let scene = image::open(&photos[0]).unwrap().to_rgb8();
    let (w, h) = (scene.width() - 12, scene.height() - 12);
    for (i, shift) in [0u32, 4, 8].into_iter().enumerate() {
        let frame = imageops::crop_imm(&scene, shift, shift, w, h).to_image();
        let exif = exif_segment("Canon", "EOS R6", &format!("2024:07:14 10:20:3{i}"), "0");
        std::fs::write(
            root.join(format!("burst-{i}.jpg")),
            with_exif(&jpeg(&frame), &exif),
        )
        .unwrap();
    }
    // One shot and a smaller copy of it: the copy keeps the shot's EXIF.
    let shot = image::open(&photos[1]).unwrap().to_rgb8();
    let exif = exif_segment("Canon", "EOS R6", "2024:07:15 08:00:00", "0");
    std::fs::write(root.join("shot.jpg"), with_exif(&jpeg(&shot), &exif)).unwrap();
    let small = imageops::resize(
        &shot,
        shot.width() / 2,
        shot.height() / 2,
        FilterType::Triangle,
    );
    std::fs::write(root.join("shot-small.jpg"), with_exif(&jpeg(&small), &exif)).unwrap();

    let db = dir.path().join("db").display().to_string();
    let root_arg = root.display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "dupes",
            &root_arg,
            "--model",
            "phash",
            "--db",
            &db,
            "--threshold",
            "0.75",
        ];
        args.extend(extra);
        imgsim(&args)
    };
    let out = run(&["--json"]);
    out.assert_exit(0);
    let lines: Vec<Value> = out.json_lines();
    let kind_of = |name: &str| {
        lines
            .iter()
            .find(|g| g["type"] == "group" && paths(g).iter().any(|p| p.ends_with(name)))
            .map(|g| {
                (
                    g["kind"].as_str().unwrap().to_string(),
                    g["removable"].clone(),
                )
            })
    };
    let (kind, removable) = kind_of("burst-0.jpg").expect("the burst is grouped");
    assert_eq!(kind, "burst", "{lines:#?}");
    assert_eq!(removable, false);
    assert_eq!(kind_of("shot-small.jpg").unwrap().0, "near", "{lines:#?}");
    // Acting never touches a burst.
    let trash = dir.path().join("aside").display().to_string();
    run(&["--move-to", &trash, "--apply"]).assert_exit(0);
    for i in 0..3 {
        assert!(root.join(format!("burst-{i}.jpg")).exists());
    }
    assert!(!root.join("shot-small.jpg").exists());
}

#[test]
fn an_apply_cut_short_before_its_outcomes_were_written_is_still_undone() {
    let library = Library::new();
    library.dupes(&["--threshold", "0.75"]).assert_exit(0);
    let before = files_with_times(&library.root);
    let (groups_before, _) = library.indexed_groups();
    let target = library.root.parent().unwrap().join("aside");
    library
        .dupes(&[
            "--threshold",
            "0.75",
            "--move-to",
            &target.display().to_string(),
            "--apply",
        ])
        .assert_exit(0);
    // A crash after each change but before its outcome reached the journal: only the steps
    // (written first) are there. One change never happened at all: its file is back in place.
    let journals: Vec<PathBuf> = std::fs::read_dir(Path::new(&library.db).join("dupes-journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(journals.len(), 1);
    let text = std::fs::read_to_string(&journals[0]).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"type\":\"done\""))
        .collect();
    std::fs::write(&journals[0], kept.join("\n") + "\n").unwrap();
    let (copy, _) = library.originals.iter().next().unwrap();
    let moved = target.join(copy.strip_prefix("/").unwrap());
    std::fs::rename(&moved, copy).unwrap();

    library.undo(&[]).assert_exit(0);
    assert_eq!(files_with_times(&library.root), before);
    assert!(files_with_times(&target).is_empty());
    let (groups_after, _) = library.indexed_groups();
    assert_eq!(groups_after, groups_before);
}

#[test]
fn a_chain_of_two_photos_and_their_blend_is_not_one_group() {
    // A ~ B ~ C with A and C unrelated: B is half of each.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    std::fs::create_dir_all(&root).unwrap();
    let mut photos: Vec<PathBuf> = std::fs::read_dir(coco())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    let square = |p: &Path| {
        imageops::resize(
            &image::open(p).unwrap().to_rgb8(),
            256,
            256,
            FilterType::Triangle,
        )
    };
    let (a, c) = (square(&photos[0]), square(&photos[2]));
    let b = image::RgbImage::from_fn(256, 256, |x, y| {
        let (p, q) = (a.get_pixel(x, y), c.get_pixel(x, y));
        image::Rgb([0, 1, 2].map(|i| ((p[i] as u16 + q[i] as u16) / 2) as u8))
    });
    let path = |name: &str| root.join(name).display().to_string();
    a.save(path("a.png")).unwrap();
    b.save(path("b.png")).unwrap();
    c.save(path("c.png")).unwrap();
    let score = |x: &str, y: &str| -> f64 {
        let run = imgsim(&["compare", "--model", "phash", "--json", &path(x), &path(y)]);
        run.assert_exit(0);
        let line: Value = serde_json::from_str(run.stdout().trim()).unwrap();
        line["cosine"].as_f64().unwrap()
    };
    let (ab, bc, ac) = (
        score("a.png", "b.png"),
        score("b.png", "c.png"),
        score("a.png", "c.png"),
    );
    let threshold = ab.min(bc);
    assert!(ac < threshold, "not a chain: ab {ab}, bc {bc}, ac {ac}");

    let db = dir.path().join("db").display().to_string();
    let root_arg = root.display().to_string();
    let run = imgsim(&[
        "dupes",
        &root_arg,
        "--model",
        "phash",
        "--db",
        &db,
        "--threshold",
        &threshold.to_string(),
        "--json",
    ]);
    run.assert_exit(0);
    let lines: Vec<Value> = run.json_lines();
    let groups: Vec<Vec<PathBuf>> = lines
        .iter()
        .filter(|l| l["type"] == "group")
        .map(paths)
        .collect();
    let named = |g: &Vec<PathBuf>, n: &str| g.iter().any(|p| p.ends_with(n));
    assert!(
        !groups
            .iter()
            .any(|g| named(g, "a.png") && named(g, "c.png")),
        "{groups:#?}"
    );
    // The blend is in a group with one of them: the pair of closest images.
    assert!(
        groups
            .iter()
            .any(|g| g.len() == 2 && named(g, "b.png") && (named(g, "a.png") || named(g, "c.png"))),
        "{groups:#?}"
    );
}
