//! The soak in its short form: one minute of random changes to a watched library beside
//! `index`, `tag`, `similar` and `status` loops (`imgsim bench soak`; RELIABILITY.md has the
//! 30-minute run). And the benchmarks' working folder, which they empty first: never a folder
//! a user gave them that they did not make.

use crate::util::*;

#[test]
fn a_minute_of_mixed_use_beside_the_daemon_ends_with_the_table_equal_to_the_disk() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("soak");
    let dir_arg = dir.display().to_string();
    let run = imgsim(&[
        "bench",
        "soak",
        "--minutes",
        "1",
        "--seed",
        "7",
        "--dir",
        &dir_arg,
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(run.stdout().trim())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout(), run.stderr()));
    // Every check must hold but the strict memory one: in one minute the level after the
    // warm-up is the median of 20 seconds, too short to be steady within 10% on a shared CI
    // machine. Memory is checked here with room for that noise (a leak that grows the daemon
    // by tens of MiB within the minute still fails it); RELIABILITY.md has the 30 minutes.
    let failures: Vec<&str> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .filter(|f| !f.starts_with("the daemon's private memory grew"))
        .collect();
    assert!(failures.is_empty(), "{report:#}\n{}", run.stderr());
    let level = report["daemon_private_level_mb"].as_f64().unwrap();
    let end = report["daemon_private_end_mb"].as_f64().unwrap();
    assert!(level > 0.0, "{report:#}");
    assert!(end <= level * 1.5 + 10.0, "{report:#}");
    println!("daemon private memory: {level} MiB after the warm-up, {end} MiB at the end");
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    // It did what it says: changes of every kind and every command, many times.
    for kind in ["add", "edit", "rename", "move", "delete"] {
        assert!(
            report["changes"][kind].as_u64() > Some(0),
            "{kind}: {report:#}"
        );
    }
    for command in ["index", "tag", "similar", "status"] {
        assert!(
            report["commands"][command].as_u64() > Some(2),
            "{command}: {report:#}"
        );
    }
    assert_eq!(report["files_at_end"], report["rows_at_end"], "{report:#}");
    assert!(report["files_at_end"].as_u64() > Some(10), "{report:#}");
}

#[test]
fn a_benchmark_never_empties_a_folder_it_did_not_make() {
    let work = tempfile::tempdir().unwrap();
    let mine = work.path().join("photos");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("holiday.jpg"), b"not really a picture").unwrap();
    let before = tree(&mine);
    let arg = mine.display().to_string();
    for bench in [
        &["bench", "soak", "--minutes", "0.1"][..],
        &["bench", "watch"][..],
    ] {
        let mut args = bench.to_vec();
        args.extend(["--dir", &arg]);
        imgsim(&args)
            .assert_exit(2)
            .assert_stderr_has("not a folder an imgsim benchmark made");
    }
    assert_eq!(tree(&mine), before);
}
