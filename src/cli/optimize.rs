//! `imgsim optimize`: compacts every table and builds or refreshes its vector index.

use std::time::Instant;

use imgsim::store::{Store, MIN_INDEX_ROWS};

use super::common::{lock_for_writing, DbArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct OptimizeArgs {
    #[command(flatten)]
    db: DbArgs,
}

/// Compacts every model's table and builds or refreshes its vector index.
pub fn run(args: OptimizeArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let store = Store::open(&db_dir, false)?;
    let _lock = lock_for_writing(&db_dir, "imgsim optimize")?;
    for info in store.tables()? {
        let Some(table) = store.table(&info.model_id)? else {
            continue;
        };
        // Compaction reads every row: a damaged table is repaired first.
        if let Some(damaged) = table.damaged_files()?.first() {
            anyhow::bail!(
                "{}: not compacted: {}: {} (run `imgsim repair` first)",
                info.model,
                damaged.path.display(),
                damaged.reason
            );
        }
        let started = Instant::now();
        let built = if table.vector_index()?.is_none() {
            table.build_vector_index()?
        } else {
            false
        };
        table.optimize()?;
        table.filters()?;
        let state = match table.vector_index()? {
            Some((indexed, unindexed)) => {
                format!("IVF-PQ index over {indexed} rows ({unindexed} not in it)")
            }
            None => format!(
                "no vector index (fewer than {} rows: exact search)",
                MIN_INDEX_ROWS
            ),
        };
        println!(
            "{}: {}compacted; {state} ({:.1} s)",
            info.model,
            if built { "index built, " } else { "" },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Outcome::Done)
}
