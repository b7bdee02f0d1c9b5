//! Photos as people have them: the metadata in every row (date taken with its time zone,
//! camera, lens, GPS, format by content), the filters on it, EXIF orientation, and an older
//! database gaining the metadata without embedding anything.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::util::*;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SimilarLine {
    Hit { path: String },
    Summary {},
}

#[derive(Debug, Deserialize)]
struct IndexLine {
    added: usize,
    unchanged: usize,
    failed: usize,
    embedded: usize,
    #[serde(default)]
    described: usize,
}

#[derive(Debug, Deserialize)]
struct Photos {
    taken_first: Option<String>,
    taken_last: Option<String>,
    dated_by_file: usize,
    formats: std::collections::BTreeMap<String, usize>,
    with_camera: usize,
    with_gps: usize,
    not_read: usize,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StatusLine {
    Model { photos: Photos },
    Daemon {},
}

#[derive(Debug, Deserialize)]
struct CompareLine {
    cosine: f32,
}

fn exif_fixture(name: &str) -> PathBuf {
    fixtures().join("exif").join(name)
}

/// Sets a file's modification time (seconds since the Unix epoch).
fn set_mtime(path: &Path, seconds: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap();
}

/// The file names `similar` found, sorted.
fn names(out: &Run) -> Vec<String> {
    let mut names: Vec<String> = out
        .json_lines::<SimilarLine>()
        .into_iter()
        .filter_map(|l| match l {
            SimilarLine::Hit { path } => Some(path.rsplit('/').next().unwrap().to_string()),
            SimilarLine::Summary {} => None,
        })
        .collect();
    names.sort();
    names
}

/// `imgsim similar --model phash --json EXTRA... QUERY`: the names it finds, sorted.
fn phash_similar(cmd: &Imgsim, query: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["similar", "--model", "phash", "--json"];
    args.extend_from_slice(extra);
    args.push(query.to_str().unwrap());
    names(&cmd.run(&args))
}

fn photos_of(out: &Run) -> Photos {
    out.json_lines::<StatusLine>()
        .into_iter()
        .find_map(|l| match l {
            StatusLine::Model { photos } => Some(photos),
            StatusLine::Daemon {} => None,
        })
        .expect("a model line")
}

/// A library of the EXIF fixtures (Paris at 00:30 on 1 June, +02:00; New York at 23:30 on
/// 31 May, -04:00; a Nikon in January 2024 without a zone; a PNG without EXIF, its file time
/// 23:30 UTC on 30 June 2023), indexed with phash under the time zone `tz`.
struct Library {
    _dir: tempfile::TempDir,
    photos: PathBuf,
    cmd: Imgsim,
}

impl Library {
    fn new(tz: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("photos");
        std::fs::create_dir(&photos).unwrap();
        for name in ["paris.jpg", "newyork.jpg", "nikon.jpg", "plain.png"] {
            std::fs::copy(exif_fixture(name), photos.join(name)).unwrap();
        }
        set_mtime(&photos.join("plain.png"), 1_688_167_800); // 2023-06-30T23:30:00Z
        let cmd = Imgsim::new().env("TZ", tz);
        let out = cmd.run(&["index", "--model", "phash", photos.to_str().unwrap()]);
        out.assert_exit(0);
        Library {
            _dir: dir,
            photos,
            cmd,
        }
    }

    /// The photos that a filter keeps, for a query picture from outside the library.
    fn filtered(&self, filter: &str) -> Vec<String> {
        let query = fixtures().join("images/tiny.png");
        let out = self.cmd.run(&[
            "similar",
            "--model",
            "phash",
            "-k",
            "10",
            "--json",
            "--where",
            filter,
            query.to_str().unwrap(),
        ]);
        let found = names(&out);
        out.assert_exit(if found.is_empty() { 1 } else { 0 });
        found
    }
}

#[test]
fn filters_narrow_by_date_camera_lens_place_and_format() {
    let library = Library::new("UTC0");
    let f = |q: &str| library.filtered(q);
    // The photo's own clock decides its day: Paris at 00:30 is 1 June although it was
    // still 31 May in UTC; New York at 23:30 is 31 May although it was already 1 June in UTC.
    assert_eq!(f("taken:2023-06-01"), ["paris.jpg"]);
    assert_eq!(f("taken:2023-05-31"), ["newyork.jpg"]);
    assert_eq!(
        f("taken:[2023-06-01 TO 2023-08-31]"),
        ["paris.jpg", "plain.png"]
    );
    assert_eq!(f("taken:2023"), ["newyork.jpg", "paris.jpg", "plain.png"]);
    assert_eq!(f("taken:>=2024-01"), ["nikon.jpg"]);
    assert_eq!(f("camera:pixel*"), ["newyork.jpg"]);
    assert_eq!(f("camera:nikon"), ["nikon.jpg"]);
    assert_eq!(f("lens:*"), ["nikon.jpg", "paris.jpg"]);
    assert_eq!(f("has:gps"), ["newyork.jpg", "paris.jpg"]);
    assert_eq!(f("near:48.8584,2.2945,1"), ["paris.jpg"]);
    assert_eq!(f("near:40.7,-74.0,10"), ["newyork.jpg"]);
    assert_eq!(f("near:0,0,500"), Vec::<String>::new());
    assert_eq!(f("format:png"), ["plain.png"]);
    assert_eq!(f("format:jpg -has:gps"), ["nikon.jpg"]);
    assert_eq!(f("iso:[100 TO 400]"), ["nikon.jpg"]);
    assert_eq!(f("iso:[400 TO *]"), ["newyork.jpg"]);
    // Pillow writes focal lengths as floats, cameras as rationals: both are read.
    assert_eq!(f("focal:[20 TO *]"), ["nikon.jpg"]);

    // A date that is no date is refused with the forms that are.
    let query = fixtures().join("images/tiny.png");
    let out = library.cmd.run(&[
        "similar",
        "--model",
        "phash",
        "--where",
        "taken:2023-02-30",
        query.to_str().unwrap(),
    ]);
    out.assert_exit(2);
    out.assert_stderr_has("`2023-02-30` is not a date");

    // `status` shows the span of dates and the formats.
    let status = library.cmd.run(&["status", "--json"]);
    status.assert_exit(0);
    let photos = photos_of(&status);
    assert_eq!(
        photos.taken_first.as_deref(),
        Some("2023-05-31T23:30:00-04:00")
    );
    assert_eq!(photos.taken_last.as_deref(), Some("2024-01-15T12:00:00"));
    assert_eq!(photos.dated_by_file, 1);
    assert_eq!(photos.formats.get("jpeg"), Some(&3));
    assert_eq!(photos.formats.get("png"), Some(&1));
    assert_eq!(
        (photos.with_camera, photos.with_gps, photos.not_read),
        (3, 2, 0)
    );
    let text = library.cmd.run(&["status"]);
    assert!(
        text.stdout().contains("taken 2023-05-31 to 2024-01-15")
            && text.stdout().contains("jpeg 3, png 1"),
        "{}",
        text.stdout()
    );
    let _ = &library.photos;
}

#[test]
fn a_file_time_is_dated_in_the_local_zone() {
    // The PNG's file time is 23:30 UTC on 30 June: 1 July in a zone two hours east.
    let east = Library::new("<+02>-2");
    assert_eq!(east.filtered("taken:2023-07-01"), ["plain.png"]);
    assert_eq!(east.filtered("taken:2023-06-30"), Vec::<String>::new());
    let utc = Library::new("UTC0");
    assert_eq!(utc.filtered("taken:2023-06-30"), ["plain.png"]);
    // A camera's own date does not move with the machine's zone.
    assert_eq!(east.filtered("taken:2023-06-01"), ["paris.jpg"]);
}

#[test]
fn photos_stored_turned_are_embedded_upright() {
    let compare = |a: &str, b: &str| -> f32 {
        let out = imgsim(&[
            "compare",
            "--model",
            "phash",
            "--json",
            exif_fixture(a).to_str().unwrap(),
            exif_fixture(b).to_str().unwrap(),
        ]);
        out.assert_exit(0);
        out.json_lines::<CompareLine>()[0].cosine
    };
    let six = compare("upright.jpg", "orientation6.jpg");
    let eight = compare("upright.jpg", "orientation8.jpg");
    // The negative control: the same stored pixels as orientation6.jpg, without the tag.
    let sideways = compare("upright.jpg", "sideways.jpg");
    assert!(six > 0.9 && eight > 0.9, "{six} {eight}");
    assert!(sideways < six - 0.2, "{sideways} vs {six}");
}

#[test]
fn formats_are_told_by_content_and_a_false_image_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    // A PNG named .jpg, a text file named .jpg, and a real JPEG.
    std::fs::copy(exif_fixture("plain.png"), photos.join("really-a-png.jpg")).unwrap();
    std::fs::write(photos.join("notes.jpg"), "shopping list: milk, bread").unwrap();
    std::fs::copy(exif_fixture("nikon.jpg"), photos.join("nikon.jpg")).unwrap();
    let cmd = Imgsim::new();
    let out = cmd.run(&[
        "index",
        "--model",
        "phash",
        "--json",
        photos.to_str().unwrap(),
    ]);
    out.assert_exit(2);
    out.assert_stderr_has("notes.jpg");
    let line = &out.json_lines::<IndexLine>()[0];
    assert_eq!((line.added, line.failed), (2, 1), "{}", out.stdout());
    let query = fixtures().join("images/tiny.png");
    let found = cmd.run(&[
        "similar",
        "--model",
        "phash",
        "--json",
        "--where",
        "format:png",
        query.to_str().unwrap(),
    ]);
    assert_eq!(names(&found), ["really-a-png.jpg"]);
}

/// A database in format 2 (before the metadata columns), written by imgsim at commit 63f9200
/// from `tests/fixtures/exif/{paris,newyork,nikon}.jpg` and `plain.png` copied to
/// `/tmp/imgsim-format2/photos`, every file's time set to 2024-02-03T04:05:06Z:
///
/// ```text
/// imgsim index --db tests/fixtures/db-format2 --model phash /tmp/imgsim-format2/photos
/// imgsim tag add --db tests/fixtures/db-format2 -t holiday /tmp/imgsim-format2/photos/paris.jpg
/// ```
#[test]
fn a_database_without_metadata_gains_it_without_embedding_anything() {
    const MTIME: u64 = 1_706_933_106;
    let photos = Path::new("/tmp/imgsim-format2/photos");
    let _ = std::fs::remove_dir_all(photos);
    std::fs::create_dir_all(photos).unwrap();
    for name in ["paris.jpg", "newyork.jpg", "nikon.jpg", "plain.png"] {
        std::fs::copy(exif_fixture(name), photos.join(name)).unwrap();
        set_mtime(&photos.join(name), MTIME);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    copy_dir(&fixtures().join("db-format2"), &db);
    let db_arg = db.to_str().unwrap();
    let cmd = Imgsim::new().env("TZ", "UTC0");

    let before = cmd.run(&["status", "--json", "--db", db_arg]);
    before.assert_exit(0);
    assert_eq!(photos_of(&before).not_read, 4);

    let index = cmd.run(&[
        "index",
        "--db",
        db_arg,
        "--model",
        "phash",
        "--json",
        photos.to_str().unwrap(),
    ]);
    index.assert_exit(0);
    let line = &index.json_lines::<IndexLine>()[0];
    assert_eq!(
        (line.unchanged, line.described, line.embedded, line.added),
        (4, 4, 0, 0),
        "{}",
        index.stdout()
    );
    let marker = std::fs::read_to_string(db.join("format.json")).unwrap();
    assert!(marker.contains(r#""format": 3"#), "{marker}");

    // The metadata filters answer; the tags and vectors are those that were stored.
    let query = fixtures().join("images/tiny.png");
    let search = |filter: &str| phash_similar(&cmd, &query, &["--db", db_arg, "--where", filter]);
    assert_eq!(search("camera:pixel*"), ["newyork.jpg"]);
    assert_eq!(search("taken:2023-06-01 AND tag:holiday"), ["paris.jpg"]);
    assert_eq!(search("taken:2024-02-03"), ["plain.png"]);
    let self_match = cmd.run(&[
        "similar",
        "--db",
        db_arg,
        "--model",
        "phash",
        "--json",
        "-k",
        "1",
        exif_fixture("nikon.jpg").to_str().unwrap(),
    ]);
    assert_eq!(names(&self_match), ["nikon.jpg"]);

    // A second pass has nothing left to read.
    let again = cmd.run(&[
        "index",
        "--db",
        db_arg,
        "--model",
        "phash",
        "--json",
        photos.to_str().unwrap(),
    ]);
    let line = &again.json_lines::<IndexLine>()[0];
    assert_eq!(
        (line.described, line.embedded),
        (0, 0),
        "{}",
        again.stdout()
    );
}

#[cfg(feature = "heif")]
#[test]
fn heic_and_avif_photos_are_read_with_their_exif_and_found_beside_their_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for name in [
        "paris.jpg",
        "paris.heic",
        "nikon.jpg",
        "nikon.avif",
        "newyork.jpg",
        "upright.jpg",
    ] {
        std::fs::copy(exif_fixture(name), photos.join(name)).unwrap();
    }
    // A HEIC cut short: reported by name, the others indexed.
    let whole = std::fs::read(exif_fixture("paris.heic")).unwrap();
    std::fs::write(photos.join("cut.heic"), &whole[..whole.len() / 2]).unwrap();
    let cmd = Imgsim::new();
    let out = cmd.run(&[
        "index",
        "--model",
        "phash",
        "--json",
        photos.to_str().unwrap(),
    ]);
    out.assert_exit(2);
    out.assert_stderr_has("cut.heic");
    let line = &out.json_lines::<IndexLine>()[0];
    assert_eq!((line.added, line.failed), (6, 1), "{}", out.stdout());

    // Each is the other's first hit (the query itself is left out).
    let first = |query: &str| phash_similar(&cmd, &photos.join(query), &["-k", "1"]);
    assert_eq!(first("paris.heic"), ["paris.jpg"]);
    assert_eq!(first("paris.jpg"), ["paris.heic"]);
    assert_eq!(first("nikon.avif"), ["nikon.jpg"]);
    assert_eq!(first("nikon.jpg"), ["nikon.avif"]);

    // Their EXIF is read as a JPEG's is.
    let query = fixtures().join("images/tiny.png");
    let filtered = |filter: &str| phash_similar(&cmd, &query, &["--where", filter]);
    assert_eq!(filtered("format:heic AND has:gps"), ["paris.heic"]);
    assert_eq!(filtered("format:avif AND camera:nikon"), ["nikon.avif"]);
}

#[cfg(not(feature = "heif"))]
#[test]
fn without_libheif_a_heic_gets_an_error_that_says_what_to_build() {
    let out = imgsim(&[
        "embed",
        "--model",
        "phash",
        exif_fixture("paris.heic").to_str().unwrap(),
    ]);
    out.assert_exit(2);
    out.assert_stderr_has("built with the `heif` feature");
}

#[test]
fn raw_files_are_read_through_their_preview_or_their_sensor_data() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for name in ["scene.dng", "nopreview.dng", "scene.jpg", "sony.arw"] {
        std::fs::copy(fixtures().join("raw").join(name), photos.join(name)).unwrap();
    }
    for name in ["paris.jpg", "nikon.jpg", "upright.jpg"] {
        std::fs::copy(exif_fixture(name), photos.join(name)).unwrap();
    }
    // A RAW cut short, and a text file named like one.
    let whole = std::fs::read(fixtures().join("raw/scene.dng")).unwrap();
    std::fs::write(photos.join("cut.dng"), &whole[..whole.len() / 3]).unwrap();
    std::fs::write(photos.join("notes.nef"), "not a raw file").unwrap();
    let cmd = Imgsim::new().env("TZ", "UTC0");
    let out = cmd.run(&[
        "index",
        "--model",
        "phash",
        "--json",
        photos.to_str().unwrap(),
    ]);
    out.assert_exit(2);
    out.assert_stderr_has("cut.dng");
    out.assert_stderr_has("notes.nef");
    let line = &out.json_lines::<IndexLine>()[0];
    assert_eq!((line.added, line.failed), (7, 2), "{}", out.stdout());

    // The preview (the camera's own rendering) and the developed sensor data both find
    // the JPEG of the same scene first.
    let first = |query: &str| {
        phash_similar(
            &cmd,
            &photos.join(query),
            &["-k", "1", "--where", "format:jpeg"],
        )
    };
    assert_eq!(first("scene.dng"), ["scene.jpg"]);
    assert_eq!(first("nopreview.dng"), ["scene.jpg"]);
    assert_eq!(first("sony.arw"), ["scene.jpg"]);
    // The ARW's preview is stored turned (orientation 8): upright, it is the JPEG's scene.
    let compare = |a: &str| -> f32 {
        let out = cmd.run(&[
            "compare",
            "--model",
            "phash",
            "--json",
            photos.join(a).to_str().unwrap(),
            photos.join("scene.jpg").to_str().unwrap(),
        ]);
        out.assert_exit(0);
        out.json_lines::<CompareLine>()[0].cosine
    };
    let (arw, dng) = (compare("sony.arw"), compare("scene.dng"));
    assert!(arw > 0.9 && (arw - dng).abs() < 0.05, "{arw} {dng}");

    // Their EXIF, and their kind as the format.
    let query = fixtures().join("images/tiny.png");
    let filtered = |filter: &str| phash_similar(&cmd, &query, &["--where", filter]);
    assert_eq!(filtered("format:dng"), ["nopreview.dng", "scene.dng"]);
    assert_eq!(filtered("format:arw"), ["sony.arw"]);
    assert_eq!(filtered("camera:sony AND taken:2025-01-02"), ["sony.arw"]);
    assert_eq!(
        filtered("taken:2024-05-04 AND camera:imgsim"),
        ["nopreview.dng", "scene.dng", "scene.jpg"]
    );
}

#[test]
fn a_raw_and_the_jpeg_of_its_shot_are_linked_and_never_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for name in ["scene.dng", "scene.jpg"] {
        std::fs::copy(fixtures().join("raw").join(name), photos.join(name)).unwrap();
    }
    // A RAW with a JPEG of its name taken at another time: not one shot (and not alike).
    std::fs::copy(fixtures().join("raw/scene.dng"), photos.join("other.dng")).unwrap();
    std::fs::copy(exif_fixture("nikon.jpg"), photos.join("other.jpg")).unwrap();
    let cmd = Imgsim::new();
    let index = || {
        let out = cmd.run(&["index", "--model", "phash", photos.to_str().unwrap()]);
        out.assert_exit(0);
    };
    index();
    let query = fixtures().join("images/tiny.png");
    let paired = || phash_similar(&cmd, &query, &["--where", "has:pair"]);
    assert_eq!(paired(), ["scene.dng", "scene.jpg"]);

    // dupes shows them as a RAW + rendered pair, with nothing to remove.
    let dupes = cmd.run(&[
        "dupes",
        "--model",
        "phash",
        "--threshold",
        "0.5",
        "--json",
        "--no-daemon",
    ]);
    // (The two DNGs are copies of one file: duplicates, rightly.) The JPEG is in no group but
    // its pair's: a RAW and its JPEG look alike by design, they are no near duplicates or burst.
    let out = dupes.stdout();
    for line in out.lines().filter(|l| l.contains("scene.jpg")) {
        assert!(line.contains("\"kind\":\"raw_jpeg\""), "{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.contains("raw_jpeg") && l.contains("scene.jpg") && l.contains("scene.dng")),
        "{out}"
    );

    // The JPEG goes: the RAW is alone again.
    std::fs::remove_file(photos.join("scene.jpg")).unwrap();
    index();
    assert_eq!(paired(), Vec::<String>::new());
}

#[test]
fn sniffing_takes_images_of_any_name_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(exif_fixture("nikon.jpg"), photos.join("nikon.jpg")).unwrap();
    std::fs::copy(exif_fixture("paris.jpg"), photos.join("paris.jpg.backup")).unwrap();
    std::fs::copy(exif_fixture("paris.heic"), photos.join("IMG_0001")).unwrap();
    std::fs::write(photos.join("notes.txt"), "not a picture").unwrap();
    let by_name = Imgsim::new();
    let out = by_name.run(&[
        "index",
        "--model",
        "phash",
        "--json",
        photos.to_str().unwrap(),
    ]);
    out.assert_exit(0);
    assert_eq!(
        out.json_lines::<IndexLine>()[0].added,
        1,
        "{}",
        out.stdout()
    );

    let sniffed = Imgsim::new();
    let out = sniffed.run(&[
        "index",
        "--model",
        "phash",
        "--json",
        "--sniff",
        photos.to_str().unwrap(),
    ]);
    let expected = if cfg!(feature = "heif") {
        (3, 0)
    } else {
        (2, 1)
    };
    let line = &out.json_lines::<IndexLine>()[0];
    assert_eq!((line.added, line.failed), expected, "{}", out.stdout());
}
