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

struct Index {
    dir: tempfile::TempDir,
    photos: PathBuf,
    model: PathBuf,
}

impl Index {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let photos = library(dir.path());
        Self {
            dir,
            photos,
            model: model_dir("tiny-dinov2"),
        }
    }

    fn db(&self) -> String {
        self.dir.path().join("db").display().to_string()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let db = self.db();
        let model = self.model.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--db", &db, "--model-dir", &model]);
        imgsim_in(&all, self.dir.path())
    }

    fn index(&self) -> (IndexLine, std::process::Output) {
        let photos = self.photos.display().to_string();
        let out = self.run(&["index", &photos, "--json"]);
        let lines: Vec<IndexLine> = parse_lines(&stdout(&out));
        assert_eq!(lines.len(), 1, "{}", stderr(&out));
        (lines.into_iter().next().unwrap(), out)
    }

    fn similar(&self, query: &Path) -> Vec<SimilarLine> {
        let query = query.display().to_string();
        let out = self.run(&["similar", &query, "-k", "3", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        parse_lines(&stdout(&out))
    }
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
    assert!(out.status.success(), "{}", stderr(&out));
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
    assert!(out.status.success(), "{}", stderr(&out));
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
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(
        text.contains("\"images\":8") && text.contains("\"vector_index\":false"),
        "{text}"
    );
}

#[test]
fn similar_finds_the_original_of_an_edited_copy() {
    let ix = Index::new();
    let (_, out) = ix.index();
    assert!(out.status.success(), "{}", stderr(&out));
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
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.jpg"), "{}", stderr(&out));
    assert_eq!(counts(&line), [8, 0, 0, 0, 0, 1, 8]);
    assert_eq!(line.images, 8);
}

#[test]
fn similar_without_an_index_says_what_to_do() {
    let ix = Index::new();
    let query = ix.photos.join(PHOTOS[0]).display().to_string();
    let out = ix.run(&["similar", &query]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("imgsim index"), "{}", stderr(&out));

    // Indexed with another model: this one has no table yet.
    let photos = ix.photos.display().to_string();
    let db = ix.db();
    let out = imgsim_in(
        &["index", &photos, "--db", &db, "--model", "phash", "--json"],
        ix.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ix.run(&["similar", &query]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("has not been indexed") && err.contains("phash"),
        "{err}"
    );
}

#[test]
fn where_narrows_results_and_tags_are_searchable_at_once() {
    let ix = Index::new();
    let (_, out) = ix.index();
    assert!(out.status.success(), "{}", stderr(&out));
    let query = ix.photos.join(PHOTOS[0]).display().to_string();
    let search = |filter: &str| -> Vec<String> {
        let out = ix.run(&["similar", &query, "-k", "3", "--json", "--where", filter]);
        assert!(
            out.status.success() || out.status.code() == Some(1),
            "{}",
            stderr(&out)
        );
        parse_lines::<SimilarLine>(&stdout(&out))
            .into_iter()
            .filter_map(|l| match l {
                SimilarLine::Hit { path, .. } => Some(path),
                _ => None,
            })
            .collect()
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
    assert!(out.status.success(), "{}", stderr(&out));
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
        stdout(&out).contains("\"tags\":[\"beach\"]"),
        "{}",
        stdout(&out)
    );

    let out = ix.run(&["similar", &query, "--where", "name:("]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--where"), "{}", stderr(&out));
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
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<IndexLine> = parse_lines(&stdout(&out));
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].model.as_str(), lines[0].added), ("phash", 8));
}
