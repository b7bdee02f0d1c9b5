//! `imgsim index`, `similar` and `status` on a folder of coco128 photos, with the tiny
//! DINOv2 test model: incremental indexing, moves, copies, deletions, bad files, search.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use serde::Deserialize;

use crate::util::*;

#[derive(Debug, Deserialize, PartialEq, Default)]
struct IndexLine {
    model: String,
    added: usize,
    updated: usize,
    moved: usize,
    removed: usize,
    unchanged: usize,
    failed: usize,
    embedded: usize,
    images: usize,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SimilarLine {
    Hit {
        rank: usize,
        score: f32,
        path: String,
    },
    Summary {
        hits: usize,
        indexed: usize,
        query_indexed: bool,
    },
}

const PHOTOS: [&str; 8] = [
    "000000000009.jpg",
    "000000000025.jpg",
    "000000000030.jpg",
    "000000000034.jpg",
    "000000000036.jpg",
    "000000000042.jpg",
    "000000000049.jpg",
    "000000000061.jpg",
];

/// A library of small copies of coco128 photos (small keeps the debug build quick).
fn library(dir: &Path) -> PathBuf {
    let photos = dir.join("Pictures");
    std::fs::create_dir_all(photos.join("2023")).unwrap();
    for (i, name) in PHOTOS.iter().enumerate() {
        let image = image::open(coco().join(name)).unwrap().to_rgb8();
        let small = imageops::resize(&image, 192, 144, FilterType::Triangle);
        let sub = if i % 2 == 0 { "" } else { "2023" };
        small.save(photos.join(sub).join(name)).unwrap();
    }
    photos
}

/// A photo library in a temporary folder, indexed with tiny-dinov2 into a database of its own.
struct Index {
    dir: tempfile::TempDir,
    photos: PathBuf,
    model: PathBuf,
    cmd: Imgsim,
}

impl Index {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let photos = library(dir.path());
        Self {
            cmd: Imgsim::new().current_dir(dir.path()),
            dir,
            photos,
            model: model_dir("tiny-dinov2"),
        }
    }

    fn db(&self) -> String {
        self.cmd.db().display().to_string()
    }

    /// `imgsim ARGS --model-dir tiny-dinov2` on this library's database.
    fn run(&self, args: &[&str]) -> Run {
        let model = self.model.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--model-dir", &model]);
        self.cmd.run(&all)
    }

    fn index(&self) -> (IndexLine, Run) {
        let photos = self.photos.display().to_string();
        let out = self.run(&["index", &photos, "--json"]);
        let lines: Vec<IndexLine> = out.json_lines();
        assert_eq!(lines.len(), 1, "{}", out.stderr());
        (lines.into_iter().next().unwrap(), out)
    }

    fn similar(&self, query: &Path) -> Vec<SimilarLine> {
        let query = query.display().to_string();
        let out = self.run(&["similar", &query, "-k", "3", "--json"]);
        out.assert_exit(0);
        out.json_lines()
    }
}

/// The paths of a `similar --json` run's hits, best first.
fn hit_paths(out: &Run) -> Vec<String> {
    out.json_lines::<SimilarLine>()
        .into_iter()
        .filter_map(|l| match l {
            SimilarLine::Hit { path, .. } => Some(path),
            _ => None,
        })
        .collect()
}

fn counts(l: &IndexLine) -> [usize; 7] {
    [
        l.added,
        l.updated,
        l.moved,
        l.removed,
        l.unchanged,
        l.failed,
        l.embedded,
    ]
}

#[test]
fn index_is_incremental_through_touches_renames_copies_and_deletions() {
    let ix = Index::new();
    let (first, out) = ix.index();
    out.assert_exit(0);
    assert_eq!(first.model, "tiny-dinov2");
    assert_eq!(counts(&first), [8, 0, 0, 0, 0, 0, 8]);
    assert_eq!(first.images, 8);

    let (second, _) = ix.index();
    assert_eq!(
        counts(&second),
        [0, 0, 0, 0, 8, 0, 0],
        "nothing is embedded again"
    );

    // A touched file is embedded again.
    let touched = ix.photos.join(PHOTOS[0]);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&touched)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (third, _) = ix.index();
    assert_eq!(counts(&third), [0, 1, 0, 0, 7, 0, 1]);

    // A renamed file keeps its row (moved, not embedded); a copy is not embedded either;
    // a deleted file disappears.
    std::fs::rename(
        ix.photos.join("2023").join(PHOTOS[1]),
        ix.photos.join("renamed.jpg"),
    )
    .unwrap();
    std::fs::copy(ix.photos.join(PHOTOS[2]), ix.photos.join("2023/copy.jpg")).unwrap();
    std::fs::remove_file(ix.photos.join(PHOTOS[4])).unwrap();
    let (fourth, out) = ix.index();
    out.assert_exit(0);
    assert_eq!(counts(&fourth), [1, 0, 1, 1, 6, 0, 0]);
    assert_eq!(fourth.images, 8);

    // The renamed file is searchable under its new name, with its old vector.
    let hits = ix.similar(&ix.photos.join("renamed.jpg"));
    assert!(matches!(
        hits.last(),
        Some(SimilarLine::Summary {
            query_indexed: true,
            indexed: 8,
            ..
        })
    ));
    // The copy is the best match of its original (the same vector: cosine 1).
    let hits = ix.similar(&ix.photos.join(PHOTOS[2]));
    let SimilarLine::Hit { rank, score, path } = &hits[0] else {
        panic!("{hits:?}")
    };
    assert_eq!(*rank, 1);
    assert!(path.ends_with("2023/copy.jpg"), "{path}");
    assert!((score - 1.0).abs() < 1e-5);
    let db = ix.db();
    let status = imgsim_in(&["status", "--json", "--db", &db], ix.dir.path());
    status.assert_exit(0);
    let text = status.stdout();
    assert!(
        text.contains("\"images\":8") && text.contains("\"vector_index\":false"),
        "{text}"
    );
}

#[test]
fn similar_finds_the_original_of_an_edited_copy() {
    let ix = Index::new();
    let (_, out) = ix.index();
    out.assert_exit(0);
    let outside = ix.dir.path().join("edited");
    std::fs::create_dir_all(&outside).unwrap();
    for (i, name) in PHOTOS.iter().enumerate() {
        let sub = if i % 2 == 0 { "" } else { "2023" };
        let original = ix.photos.join(sub).join(name);
        // Cropped by a few pixels on each side and recompressed at JPEG quality 60.
        let image = image::open(&original).unwrap().to_rgb8();
        let cropped = imageops::crop_imm(&image, 6, 4, 180, 136).to_image();
        let edited = outside.join(name);
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 60)
            .encode_image(&cropped)
            .unwrap();
        std::fs::write(&edited, bytes).unwrap();

        let hits = ix.similar(&edited);
        let SimilarLine::Hit { path, .. } = &hits[0] else {
            panic!("{hits:?}")
        };
        assert_eq!(
            Path::new(path),
            std::fs::canonicalize(&original).unwrap(),
            "{name}"
        );
        assert!(matches!(
            hits.last(),
            Some(SimilarLine::Summary {
                hits: 3,
                query_indexed: false,
                ..
            })
        ));
    }
}

#[test]
fn a_corrupt_file_is_reported_and_the_rest_indexed() {
    let ix = Index::new();
    std::fs::write(ix.photos.join("broken.jpg"), b"\xFF\xD8\xFF garbage").unwrap();
    let (line, out) = ix.index();
    out.assert_exit(2);
    assert!(out.stderr().contains("broken.jpg"), "{}", out.stderr());
    assert_eq!(counts(&line), [8, 0, 0, 0, 0, 1, 8]);
    assert_eq!(line.images, 8);
}

#[test]
fn similar_without_an_index_says_what_to_do() {
    let ix = Index::new();
    let query = ix.photos.join(PHOTOS[0]).display().to_string();
    let out = ix.run(&["similar", &query]);
    out.assert_exit(2);
    assert!(out.stderr().contains("imgsim index"), "{}", out.stderr());

    // Indexed with another model: this one has no table yet.
    let photos = ix.photos.display().to_string();
    let db = ix.db();
    let out = imgsim_in(
        &["index", &photos, "--db", &db, "--model", "phash", "--json"],
        ix.dir.path(),
    );
    out.assert_exit(0);
    let out = ix.run(&["similar", &query]);
    out.assert_exit(2);
    let err = out.stderr();
    assert!(
        err.contains("has not been indexed") && err.contains("phash"),
        "{err}"
    );
}

#[test]
fn where_narrows_results_and_tags_are_searchable_at_once() {
    let ix = Index::new();
    let (_, out) = ix.index();
    out.assert_exit(0);
    let query = ix.photos.join(PHOTOS[0]).display().to_string();
    let search = |filter: &str| -> Vec<String> {
        let out = ix.run(&["similar", &query, "-k", "3", "--json", "--where", filter]);
        let hits = hit_paths(&out);
        // Exit code 1 exactly when nothing matched.
        out.assert_exit(if hits.is_empty() { 1 } else { 0 });
        hits
    };
    let in_2023 = search("dir:2023");
    assert_eq!(in_2023.len(), 3);
    assert!(in_2023.iter().all(|p| p.contains("/2023/")), "{in_2023:?}");

    let tagged = [
        ix.photos.join(PHOTOS[2]),
        ix.photos.join("2023").join(PHOTOS[3]),
    ];
    let db = ix.db();
    let out = imgsim_in(
        &[
            "tag",
            "add",
            tagged[0].to_str().unwrap(),
            tagged[1].to_str().unwrap(),
            "--tag",
            "beach",
            "--db",
            &db,
        ],
        ix.dir.path(),
    );
    out.assert_exit(0);
    let mut found = search("tag:beach");
    found.sort();
    let mut expected: Vec<String> = tagged
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap().display().to_string())
        .collect();
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(search("tag:beach -name:000000000030").len(), 1);
    assert!(search("tag:nothing").is_empty());

    let out = imgsim_in(
        &[
            "tag",
            "ls",
            tagged[0].to_str().unwrap(),
            "--db",
            &db,
            "--json",
        ],
        ix.dir.path(),
    );
    assert!(
        out.stdout().contains("\"tags\":[\"beach\"]"),
        "{}",
        out.stdout()
    );

    let out = ix.run(&["similar", &query, "--where", "name:("]);
    out.assert_exit(2);
    assert!(out.stderr().contains("--where"), "{}", out.stderr());
}

#[test]
fn index_model_all_covers_every_local_model_and_phash() {
    let ix = Index::new();
    let photos = ix.photos.display().to_string();
    let db = ix.db();
    // The tests' Hugging Face cache is empty: `all` is phash alone.
    let out = imgsim_in(
        &["index", &photos, "--db", &db, "--model", "all", "--json"],
        ix.dir.path(),
    );
    out.assert_exit(0);
    let lines: Vec<IndexLine> = out.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].model.as_str(), lines[0].added), ("phash", 8));
}

#[test]
fn any_k_the_command_line_takes_returns_at_most_the_table() {
    let ix = Index::new();
    ix.index().1.assert_exit(0);
    let query = ix.photos.join(PHOTOS[0]).display().to_string();
    for filter in [None, Some("dir:2023")] {
        let mut args = vec!["similar", &query, "--json", "-k", "18446744073709551615"];
        args.extend(filter.iter().flat_map(|f| ["--where", *f]));
        let out = ix.run(&args);
        out.assert_exit(0);
        let expected = if filter.is_some() {
            4
        } else {
            PHOTOS.len() - 1
        };
        assert_eq!(hit_paths(&out).len(), expected, "{filter:?}");
    }
}

#[test]
fn a_search_that_keeps_nothing_exits_1() {
    let ix = Index::new();
    ix.index().1.assert_exit(0);
    let query = ix.photos.join(PHOTOS[0]).display().to_string();
    let hits = ix.similar(ix.photos.join(PHOTOS[0]).as_path());
    let best = match hits.first() {
        Some(SimilarLine::Hit { score, .. }) => *score,
        other => panic!("{other:?}"),
    };
    let search = |min: f32| {
        let min = format!("{min}");
        ix.run(&["similar", &query, "--json", "--min-score", &min])
    };
    // Just under the best score: that hit only.
    let out = search(best - 1e-4);
    out.assert_exit(0);
    let kept = out.json_lines::<SimilarLine>();
    assert!(
        matches!(kept.first(), Some(SimilarLine::Hit { .. })),
        "{kept:?}"
    );
    // Just over it: nothing, exit code 1, and a summary that says so.
    let out = search(best + 1e-4);
    out.assert_exit(1);
    match out.json_lines::<SimilarLine>().as_slice() {
        [SimilarLine::Summary {
            hits: 0,
            indexed: 8,
            query_indexed: true,
        }] => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_database_that_cannot_be_written_still_answers_searches() {
    let ix = Index::new();
    ix.index().1.assert_exit(0);
    // No filter index on disk: a read-only database must build it in memory.
    for entry in std::fs::read_dir(ix.db()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "filters") {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let ro = ix.dir.path().join("read-only");
    let ro_arg = ro.to_str().unwrap();
    let Some(_unmount) = read_only_view(Path::new(&ix.db()), &ro) else {
        return;
    };

    let query = ix.photos.join(PHOTOS[0]).display().to_string();
    let model = ix.model.display().to_string();
    let out = ix.cmd.run(&[
        "similar",
        &query,
        "--db",
        ro_arg,
        "--model-dir",
        &model,
        "--where",
        "dir:2023",
        "--json",
    ]);
    out.assert_exit(0);
    let hits = hit_paths(&out);
    assert_eq!(hits.len(), 4, "{hits:?}");
    assert!(hits.iter().all(|p| p.contains("/2023/")), "{hits:?}");
    ix.cmd.run(&["status", "--db", ro_arg]).assert_exit(0);
    let photos = ix.photos.display().to_string();
    ix.cmd
        .run(&["index", &photos, "--db", ro_arg, "--model-dir", &model])
        .assert_exit(2)
        .assert_stderr_has("Read-only file system");
}

#[test]
fn names_that_are_not_utf8_keep_a_row_each_and_print_as_they_are() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    // Two Latin-1 names that differ only in bytes that are not UTF-8, and different pictures.
    let names: [&[u8]; 2] = [b"caf\xe9.png", b"caf\xe8.png"];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| photos.join(std::ffi::OsStr::from_bytes(n)))
        .collect();
    std::fs::copy(fixtures().join("images/tall.png"), &files[0]).unwrap();
    std::fs::copy(fixtures().join("images/rgba.png"), &files[1]).unwrap();
    let cmd = Imgsim::new().current_dir(dir.path());
    let photos_arg = photos.to_str().unwrap();
    let index = |expect: &str| {
        let out = cmd.run(&["index", "--model", "phash", "--json", photos_arg]);
        out.assert_exit(0);
        assert!(out.stdout().contains(expect), "{}", out.stdout());
    };
    index(r#""added":2,"updated":0,"moved":0,"removed":0,"unchanged":0"#);
    index(r#""added":0,"updated":0,"moved":0,"removed":0,"unchanged":2"#);

    // Printed with their own bytes, so that the printed path opens the file.
    let query = fixtures().join("images/gray.png");
    let query = query.to_str().unwrap();
    let text = cmd.run(&["similar", "--model", "phash", query]);
    text.assert_exit(0);
    for file in &files {
        let printed = text
            .stdout
            .split(|&b| b == b'\n')
            .any(|line| line.ends_with(file.as_os_str().as_bytes()));
        assert!(printed, "{file:?} not in {:?}", text.stdout());
    }
    // JSON carries the bytes in base64 beside the readable text.
    use base64::Engine;
    let json = cmd.run(&["similar", "--model", "phash", "--json", query]);
    let mut decoded: Vec<PathBuf> = json
        .json_lines::<serde_json::Value>()
        .iter()
        .filter_map(|l| l["path_bytes"].as_str())
        .map(|b| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
            PathBuf::from(std::ffi::OsString::from_vec(bytes))
        })
        .collect();
    decoded.sort();
    let mut expected = files.clone();
    expected.sort();
    assert_eq!(decoded, expected);

    // Tags find the row of the name given, and a deleted one is removed by name.
    let tag = std::process::Command::new(imgsim_binary())
        .args(["tag", "add", "-t", "paris", "--db"])
        .arg(cmd.db())
        .arg(&files[0])
        .output()
        .unwrap();
    Run::from(tag).assert_exit(0);
    let tagged = cmd.run(&[
        "similar",
        "--model",
        "phash",
        "--where",
        "tag:paris",
        "--json",
        query,
    ]);
    let paths: Vec<_> = tagged
        .json_lines::<serde_json::Value>()
        .iter()
        .filter_map(|l| l["path_bytes"].as_str().map(str::to_string))
        .collect();
    assert_eq!(paths.len(), 1, "{}", tagged.stdout());
    std::fs::remove_file(&files[1]).unwrap();
    index(r#""added":0,"updated":0,"moved":0,"removed":1,"unchanged":1"#);
}

#[test]
fn photos_on_a_read_only_share_are_indexed_normally() {
    let ix = Index::new();
    let share = ix.dir.path().join("share");
    let share_arg = share.to_str().unwrap();
    let Some(_unmount) = read_only_view(&ix.photos, &share) else {
        return;
    };
    let model = ix.model.display().to_string();
    let index = || {
        let out = ix
            .cmd
            .run(&["index", share_arg, "--model-dir", &model, "--json"]);
        out.assert_exit(0);
        out.json_lines::<IndexLine>().remove(0)
    };
    let first = index();
    assert_eq!(
        (first.added, first.failed, first.images),
        (PHOTOS.len(), 0, PHOTOS.len())
    );
    assert_eq!(counts(&index()), [0, 0, 0, 0, PHOTOS.len(), 0, 0]);
}
