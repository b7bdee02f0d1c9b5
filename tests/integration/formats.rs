//! Databases written by other versions of imgsim: an older one opens and is brought up to
//! date in place without embedding again; a newer one is refused and left as it is.

use crate::util::*;

/// A database in format 1, written by imgsim at commit 97bbca1 (the last release without a
/// format marker) from the four fixture PNGs copied to `/tmp/imgsim-format1/photos`:
///
/// ```text
/// imgsim index --db tests/fixtures/db-format1 --model phash /tmp/imgsim-format1/photos
/// imgsim tag add --db tests/fixtures/db-format1 -t holiday /tmp/imgsim-format1/photos/tall.png
/// ```
fn format_1_database(dir: &std::path::Path) -> std::path::PathBuf {
    let db = dir.join("db");
    copy_dir(&fixtures().join("db-format1"), &db);
    assert!(!db.join("format.json").exists());
    db
}

#[test]
fn a_database_of_the_previous_release_opens_and_is_upgraded_without_embedding_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = format_1_database(dir.path());
    let db_arg = db.to_str().unwrap();
    let cmd = Imgsim::new().current_dir(dir.path());

    let status = cmd.run(&["status", "--db", db_arg]);
    status.assert_exit(0);
    assert!(status.stdout().contains("4 images"), "{}", status.stdout());

    // Its rows, tags and filter index answer as they did.
    let query = fixtures().join("images/gray.png");
    let query = query.to_str().unwrap();
    let tagged = cmd.run(&[
        "similar",
        "--db",
        db_arg,
        "--model",
        "phash",
        "--where",
        "tag:holiday",
        query,
    ]);
    tagged.assert_exit(0);
    assert!(
        tagged
            .stdout()
            .contains("/tmp/imgsim-format1/photos/tall.png"),
        "{}",
        tagged.stdout()
    );

    // Upgraded in place: the same pictures in a new folder reuse the stored vectors.
    let photos = dir.path().join("photos");
    copy_dir(&fixtures().join("images"), &photos);
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
    assert!(
        index.stdout().contains(r#""added":4"#) && index.stdout().contains(r#""embedded":0"#),
        "{}",
        index.stdout()
    );
    let marker = std::fs::read_to_string(db.join("format.json")).unwrap();
    assert!(marker.contains(r#""format": 3"#), "{marker}");
    let all = cmd.run(&[
        "similar", "--db", db_arg, "--model", "phash", "-k", "20", query,
    ]);
    all.assert_exit(0);
    assert_eq!(all.stdout().lines().count(), 8, "{}", all.stdout());
}

#[test]
fn a_database_of_a_newer_version_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = format_1_database(dir.path());
    std::fs::write(
        db.join("format.json"),
        r#"{"format": 99, "written_by": "imgsim 9.0.0"}"#,
    )
    .unwrap();
    let before = tree(&db);
    let db_arg = db.to_str().unwrap();
    let query = fixtures().join("images/gray.png");
    let photos = fixtures().join("images");
    let cmd = Imgsim::new().current_dir(dir.path());
    for args in [
        vec!["status", "--db", db_arg],
        vec![
            "similar",
            "--db",
            db_arg,
            "--model",
            "phash",
            query.to_str().unwrap(),
        ],
        vec![
            "index",
            "--db",
            db_arg,
            "--model",
            "phash",
            photos.to_str().unwrap(),
        ],
        vec![
            "tag",
            "add",
            "--db",
            db_arg,
            "-t",
            "x",
            query.to_str().unwrap(),
        ],
    ] {
        cmd.run(&args)
            .assert_exit(2)
            .assert_stderr_has("format 99 (written by imgsim 9.0.0)")
            .assert_stderr_has("Use a newer imgsim");
    }
    assert!(tree(&db) == before, "a newer database was changed");
}
