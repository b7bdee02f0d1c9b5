//! The database under faults from outside: a damaged data file, a full disk.

use std::path::{Path, PathBuf};

use crate::util::*;

/// A folder of `n` coco128 photos (whole files: different content, quick with phash).
fn coco_photos(dir: &Path, skip: usize, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(coco())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .skip(skip)
        .take(n)
        .map(|from| {
            let to = dir.join(from.file_name().unwrap());
            std::fs::copy(from, &to).unwrap();
            to
        })
        .collect()
}

fn data_files(db: &Path) -> Vec<PathBuf> {
    let table = std::fs::read_dir(db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "lance"))
        .expect("a table");
    let mut files: Vec<_> = std::fs::read_dir(table.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[derive(serde::Deserialize)]
struct Counts {
    added: usize,
    embedded: usize,
    images: usize,
}

#[test]
fn a_damaged_data_file_is_named_and_repair_keeps_every_other_row() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    let cmd = Imgsim::new().current_dir(dir.path());
    let photos_arg = photos.to_str().unwrap();
    let index = || cmd.run(&["index", "--model", "phash", "--json", photos_arg]);
    // Two commits: two data files of 3 and 5 rows.
    coco_photos(&photos, 0, 3);
    index().assert_exit(0);
    coco_photos(&photos, 3, 5);
    index().assert_exit(0);
    let files = data_files(&cmd.db());
    assert_eq!(files.len(), 2, "{files:?}");
    let damaged = files
        .iter()
        .find(|f| {
            // The file of the first commit: the smaller one.
            let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len();
            files.iter().all(|g| size(f) <= size(g))
        })
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(damaged)
        .unwrap();
    file.set_len(100).unwrap();
    let name = damaged.file_name().unwrap().to_str().unwrap();

    let query = photos.join(
        std::fs::read_dir(&photos)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name(),
    );
    let query = query.to_str().unwrap();
    for args in [
        vec!["similar", "--model", "phash", query],
        vec!["index", "--model", "phash", photos_arg],
    ] {
        let out = cmd.run(&args);
        out.assert_exit(2)
            .assert_stderr_has(name)
            .assert_stderr_has("truncated (100 of")
            .assert_stderr_has("imgsim repair");
        assert!(!out.stderr().contains(".rs:"), "{}", out.stderr());
    }
    let status = cmd.run(&["status"]);
    status.assert_exit(2);
    assert!(status.stdout().contains(name), "{}", status.stdout());
    cmd.run(&["optimize"])
        .assert_exit(2)
        .assert_stderr_has("run `imgsim repair` first");

    let dry = cmd.run(&["repair", "--dry-run", "--json"]);
    dry.assert_exit(0);
    assert!(
        dry.stdout().contains(r#""rows_dropped":0"#),
        "{}",
        dry.stdout()
    );
    assert!(dry.stdout().contains(r#""rows":8"#), "{}", dry.stdout());
    let repair = cmd.run(&["repair", "--json"]);
    repair.assert_exit(0);
    assert!(
        repair.stdout().contains(r#""rows_dropped":3"#) && repair.stdout().contains(r#""rows":5"#),
        "{}",
        repair.stdout()
    );
    cmd.run(&["status"]).assert_exit(0);
    let again: Vec<Counts> = index().assert_exit(0).json_lines();
    assert_eq!(
        (again[0].added, again[0].embedded, again[0].images),
        (3, 3, 8)
    );
    cmd.run(&["similar", "--model", "phash", query])
        .assert_exit(0);
}

#[test]
fn a_full_disk_stops_the_write_keeps_committed_rows_and_the_next_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let Some(_disk) = small_disk(&db, "1m") else {
        return;
    };
    let photos = dir.path().join("photos");
    let cmd = Imgsim::new().current_dir(dir.path());
    let db_arg = db.to_str().unwrap();
    let photos_arg = photos.to_str().unwrap();
    let index = || {
        cmd.run(&[
            "index", "--db", db_arg, "--model", "phash", "--json", photos_arg,
        ])
    };
    let first = coco_photos(&photos, 0, 4);
    index().assert_exit(0);

    // Room for the lock and little else: the table's write fails half-way.
    let filler = fill_disk(&db, 8192);
    coco_photos(&photos, 4, 60);
    let full = index();
    full.assert_exit(2)
        .assert_stderr_has("No space left on device")
        .assert_stderr_has("the disk is full");
    assert!(!full.stderr().contains(".rs:"), "{}", full.stderr());

    // Nothing committed before is lost, and the table still answers.
    let status = cmd.run(&["status", "--db", db_arg]);
    status.assert_exit(0);
    assert!(status.stdout().contains("4 images"), "{}", status.stdout());
    let query = first[0].to_str().unwrap();
    cmd.run(&[
        "similar", "--db", db_arg, "--model", "phash", "--where", "name:0*", query,
    ])
    .assert_exit(0);

    std::fs::remove_file(filler).unwrap();
    let done: Vec<Counts> = index().assert_exit(0).json_lines();
    assert_eq!((done[0].added, done[0].images), (60, 64));
    let repair = cmd.run(&["repair", "--db", db_arg, "--dry-run"]);
    repair.assert_exit(0);
    assert!(
        repair.stdout().contains("no damaged data file"),
        "{}",
        repair.stdout()
    );
}

/// A process killed while it created a table (here: the folder a creation leaves before its
/// first version, as a kill during `create` on a slow link left it on S3) does not make the
/// database unusable: the table is not there yet, and the next `index` creates it.
#[test]
fn a_table_whose_creation_was_cut_short_is_created_by_the_next_index() {
    let photos = fixtures().join("images");
    let photos = photos.to_str().unwrap();
    // The table's name, as a first database shows it.
    let first = Imgsim::new();
    first.run(&["index", photos, "-m", "phash"]).assert_exit(0);
    let table = std::fs::read_dir(first.db())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".lance"))
        .expect("a table folder");

    let imgsim = Imgsim::new();
    let tiny_clip = model_dir("tiny-clip");
    imgsim
        .run(&["index", photos, "--model-dir", tiny_clip.to_str().unwrap()])
        .assert_exit(0);
    for part in ["data", "_transactions"] {
        std::fs::create_dir_all(imgsim.db().join(&table).join(part)).unwrap();
    }
    imgsim.run(&["status"]).assert_exit(0);
    let out = imgsim.run(&["index", photos, "-m", "phash", "--json"]);
    out.assert_exit(0);
    imgsim
        .run(&["similar", &format!("{photos}/tall.png"), "-m", "phash"])
        .assert_exit(0);
}
