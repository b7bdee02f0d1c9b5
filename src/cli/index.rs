//! `imgsim index`: makes the index equal to folders of photos, incrementally (unchanged files
//! are not read again; moves and copies are recognised by content).

use std::time::Instant;

use imgsim::indexer::{self, IndexSummary};
use imgsim::store::{IndexUpkeep, Store};
use serde::{Deserialize, Serialize};

use super::common::{lock_for_writing, print_json, Bar, LibraryArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    #[command(flatten)]
    library: LibraryArgs,
    /// Images per forward pass [default: 16 on the CPU, 64 on a GPU].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// One JSON summary line on stdout; no progress bar.
    #[arg(long)]
    json: bool,
    /// Only shard I of N (by a hash of each path), so that N processes or machines index one
    /// library into one database together: run 1/N ... N/N, each once. Files and rows of the
    /// other shards are left alone; a shard that was stopped is simply run again.
    #[arg(long, value_name = "I/N")]
    shard: Option<indexer::Shard>,
}

/// `imgsim index --json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexLine {
    pub model: String,
    pub db: String,
    #[serde(flatten)]
    pub summary: IndexSummary,
    pub images: usize,
    pub seconds: f64,
}

pub fn run(args: IndexArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let library = &args.library;
    let roots = library.roots(false)?;
    let exclude = library.exclude()?;
    let sources = library.model.sources_or_all()?;
    let device = super::common::select_device(library.model.device)?;
    let db_dir = library.db.dir()?;
    let store = Store::open(&db_dir, true)?;
    let _lock = lock_for_writing(&db_dir, &library.doing("index"))?;
    let mut any_failed = false;
    for source in sources {
        let model = library.model.load(&source, None, &device)?;
        let embedder = imgsim::embed::Embedder::new(model, device.clone())
            .batch_size_or_default(args.batch_size);
        let model = embedder.model();
        let table = store.table_or_create(&model.name, &model.id, model.dim())?;
        let mut bar = Bar::new(args.json);
        let summary = indexer::index_shard(
            &table,
            &embedder,
            &roots,
            &exclude,
            library.sniff,
            args.shard,
            &mut bar,
        )?;
        drop(bar);
        // A large table gets (or refreshes) its vector index; then the filter index follows
        // the table's new version.
        match table.maintain_vector_index()? {
            IndexUpkeep::Built if !args.json => {
                eprintln!("imgsim: built the vector index (IVF-PQ) of {}", model.name)
            }
            _ => {}
        }
        table.filters()?;
        let images = table.count()?;
        any_failed |= summary.failed > 0;
        let line = IndexLine {
            model: model.name.clone(),
            db: store.name(),
            summary,
            images,
            seconds: started.elapsed().as_secs_f64(),
        };
        if args.json {
            print_json(&line);
        } else {
            let s = &line.summary;
            let described = if s.described > 0 {
                format!(", metadata read for {} already indexed", s.described)
            } else {
                String::new()
            };
            println!(
                "{}: {} added, {} updated, {} moved, {} removed, {} unchanged, {} failed \
                 ({} embedded{described}) in {:.1} s; {} images in {}",
                line.model,
                s.added,
                s.updated,
                s.moved,
                s.removed,
                s.unchanged,
                s.failed,
                s.embedded,
                line.seconds,
                images,
                line.db
            );
        }
    }
    Ok(if any_failed {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    })
}
