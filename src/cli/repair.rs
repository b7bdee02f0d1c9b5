//! `imgsim repair`: makes every table readable again, keeping every row it can.
//!
//! Reads each table whole; drops the fragments whose data files are damaged (a truncated or
//! missing file: see `store/damage.rs`), gives a path held by two rows one row, and rebuilds
//! the filter index. The files of dropped rows are still on disk: `imgsim index` embeds them
//! again.

use std::time::Instant;

use imgsim::store::Store;
use serde::{Deserialize, Serialize};

use super::common::{lock_for_writing, print_json, DbArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Only say what is damaged; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON line per table.
    #[arg(long)]
    json: bool,
}

/// `imgsim repair --json` lines.
#[derive(Debug, Serialize, Deserialize)]
pub struct RepairLine {
    pub model: String,
    /// The damaged data files, with why.
    pub damaged: Vec<String>,
    /// Rows dropped with them (0 on a dry run).
    pub rows_dropped: usize,
    /// Second rows of a path, removed.
    pub duplicates_removed: usize,
    pub rows: usize,
    pub seconds: f64,
}

pub fn run(args: RepairArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let store = Store::open(&db_dir, false)?;
    let _lock = lock_for_writing(&db_dir, "imgsim repair")?;
    let mut dropped_any = false;
    for info in store.tables()? {
        let Some(table) = store.table(&info.model_id)? else {
            continue;
        };
        let started = Instant::now();
        let damaged = table.check_thoroughly()?;
        let (rows_dropped, duplicates_removed) = if args.dry_run {
            (0, 0)
        } else {
            let dropped = table.drop_damaged(&damaged)?;
            (dropped, table.repair_duplicates()?)
        };
        if !args.dry_run {
            table.filters()?;
        }
        dropped_any |= !damaged.is_empty();
        let line = RepairLine {
            model: info.model.clone(),
            damaged: damaged
                .iter()
                .map(|f| format!("{}: {}", f.path.display(), f.reason))
                .collect(),
            rows_dropped,
            duplicates_removed,
            rows: table.count()?,
            seconds: started.elapsed().as_secs_f64(),
        };
        if args.json {
            print_json(&line);
            continue;
        }
        for file in &line.damaged {
            println!("{}: damaged: {file}", line.model);
        }
        let verdict = match (damaged.is_empty(), args.dry_run) {
            (true, _) => "no damaged data file".to_string(),
            (false, true) => format!(
                "{} damaged data files (dry run: nothing changed)",
                damaged.len()
            ),
            (false, false) => format!("dropped {rows_dropped} rows with their damaged data files"),
        };
        // A dry run does not look for duplicate rows: it says nothing of them.
        let duplicates = if args.dry_run {
            String::new()
        } else {
            format!("; {duplicates_removed} duplicate rows removed")
        };
        println!(
            "{}: {verdict}{duplicates}; {} rows ({:.1} s)",
            line.model, line.rows, line.seconds
        );
    }
    if dropped_any && !args.dry_run {
        eprintln!(
            "imgsim: the files of the dropped rows are still on disk: `imgsim index DIR` (or a \
             running `imgsim watch`) embeds them again; their tags are lost"
        );
    }
    Ok(Outcome::Done)
}
