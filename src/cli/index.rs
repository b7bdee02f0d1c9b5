//! `imgsim index`, `imgsim similar` and `imgsim status`: the store as users see it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use imgsim::indexer::{self, IndexSummary};
use imgsim::search::Query;
use imgsim::store::Store;
use serde::{Deserialize, Serialize};

use super::{print_json, progress_bar, report_file_error, ModelArgs, Outcome};

/// Where the index lives.
#[derive(clap::Args, Debug, Clone)]
pub struct DbArgs {
    /// The index database folder. Default: $IMGSIM_DB, else ~/.local/share/imgsim.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

impl DbArgs {
    pub(super) fn dir(&self) -> anyhow::Result<PathBuf> {
        self.db
            .clone()
            .or_else(Store::default_dir)
            .ok_or_else(|| anyhow::anyhow!("no data folder is known here; name one with --db"))
    }
}

/// A photo library: its folders, the model(s), the database, what to leave out. Shared by
/// `index` and `watch`.
#[derive(clap::Args, Debug)]
pub struct LibraryArgs {
    /// Folders to index (recursively). Links are not followed.
    #[arg(required = true, value_name = "DIR")]
    pub(super) dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub(super) model: ModelArgs,
    #[command(flatten)]
    pub(super) db: DbArgs,
    /// Skip paths matching this glob (repeatable), e.g. '**/Screenshots' or '*.gif'.
    #[arg(long, value_name = "GLOB")]
    pub(super) exclude: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    #[command(flatten)]
    library: LibraryArgs,
    /// Images per forward pass.
    #[arg(long, default_value_t = imgsim::embed::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// One JSON summary line on stdout; no progress bar.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SimilarArgs {
    /// An image file (indexed or not). An indexed file's stored vector is reused.
    #[arg(value_name = "QUERY")]
    query: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    db: DbArgs,
    /// How many images to show.
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// Only hits with at least this cosine similarity.
    #[arg(long, value_name = "S")]
    min_score: Option<f32>,
    /// Only images matching this filter, in tantivy's query syntax over the fields name,
    /// dir, ext and tag: e.g. 'name:beach* AND tag:2023 -ext:png'.
    #[arg(long = "where", value_name = "FILTER")]
    filter: Option<String>,
    /// One JSON line per hit, then a summary line.
    #[arg(long)]
    json: bool,
    /// Work on the database directly even when a watch daemon could answer (with its
    /// models already loaded).
    #[arg(long)]
    no_daemon: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    db: DbArgs,
    /// One JSON line per model, and one for the daemon.
    #[arg(long)]
    json: bool,
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

/// `imgsim similar --json` lines.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SimilarLine {
    Hit {
        rank: usize,
        score: f32,
        path: String,
    },
    Summary {
        query: String,
        model: String,
        hits: usize,
        indexed: usize,
        /// Whether the query's stored vector was used (it is indexed).
        query_indexed: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StatusLine {
    pub model: String,
    pub model_id: String,
    pub dim: usize,
    pub images: usize,
    pub bytes: u64,
    pub table: String,
    /// Whether an IVF-PQ index exists, and how many rows it does not cover yet.
    pub vector_index: bool,
    pub unindexed_rows: usize,
}

#[derive(clap::Args, Debug)]
pub struct OptimizeArgs {
    #[command(flatten)]
    db: DbArgs,
}

struct Bar {
    bar: indicatif::ProgressBar,
    json: bool,
}

impl imgsim::progress::Progress for Bar {
    fn start(&mut self, label: &str, total: usize) {
        self.bar.finish_and_clear();
        self.bar = progress_bar(total, self.json);
        self.bar.set_message(label.to_string());
    }
    fn advance(&mut self, n: usize) {
        self.bar.inc(n as u64);
    }
    fn file_failed(&mut self, error: &imgsim::Error) {
        self.bar.suspend(|| report_file_error(error));
    }
}

pub fn run_index(args: IndexArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let library = &args.library;
    let mut roots = Vec::new();
    for dir in &library.dirs {
        let root =
            std::fs::canonicalize(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        anyhow::ensure!(root.is_dir(), "{}: not a folder", dir.display());
        roots.push(root);
    }
    let exclude = exclude_globs(&library.exclude)?;
    let sources = library.model.sources_or_all()?;
    let device = imgsim::device::select(library.model.device)?;
    let db_dir = library.db.dir()?;
    let _lock = lock_for_writing(
        &db_dir,
        &format!("imgsim index {}", describe(&library.dirs)),
    )?;
    let store = Store::open(&db_dir, true)?;
    let mut any_failed = false;
    for source in sources {
        let model = imgsim::models::Model::load(&source, None, &device)?;
        let embedder =
            imgsim::embed::Embedder::new(model, device.clone()).batch_size(args.batch_size);
        let model = embedder.model();
        let table = store.table_or_create(&model.name, &model.id, model.dim())?;
        let mut bar = Bar {
            bar: indicatif::ProgressBar::hidden(),
            json: args.json,
        };
        let summary = indexer::index(&table, &embedder, &roots, &exclude, &mut bar)?;
        bar.bar.finish_and_clear();
        // A large table gets (or refreshes) its vector index; then the filter index follows
        // the table's new version.
        match table.maintain_vector_index()? {
            imgsim::store::IndexUpkeep::Built if !args.json => {
                eprintln!("imgsim: built the vector index (IVF-PQ) of {}", model.name)
            }
            _ => {}
        }
        table.filters()?;
        let images = table.count()?;
        any_failed |= summary.failed > 0;
        let line = IndexLine {
            model: model.name.clone(),
            db: db_dir.display().to_string(),
            summary,
            images,
            seconds: started.elapsed().as_secs_f64(),
        };
        if args.json {
            print_json(&line);
        } else {
            let s = &line.summary;
            println!(
                "{}: {} added, {} updated, {} moved, {} removed, {} unchanged, {} failed \
                 ({} embedded) in {:.1} s; {} images in {}",
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

pub fn run_similar(args: SimilarArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let canonical = std::fs::canonicalize(&args.query)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.query.display()))?;
    let query_path = indexer::path_string(&canonical);
    if !args.no_daemon {
        if let Some(outcome) = similar_by_daemon(&args, &db_dir, &canonical, &query_path)? {
            return Ok(outcome);
        }
    }
    let store = Store::open(&db_dir, false)?;
    let embedder = args.model.embedder(None)?;
    let model = embedder.model();
    let Some(table) = store.table(&model.id)? else {
        anyhow::bail!(
            "model {} has not been indexed in {} (indexed: {}); run `imgsim index --model {} DIR`",
            model.name,
            db_dir.display(),
            indexed_models(&store),
            model.name
        );
    };
    let query = Query {
        path: &query_path,
        k: args.k,
        filter: args.filter.as_deref(),
        min_score: args.min_score,
    };
    let results =
        imgsim::search::similar(&table, &query, || embed_query(&embedder, &canonical), None)?;
    let hits: Vec<(String, f32)> = results
        .hits
        .into_iter()
        .map(|h| (h.path, h.score))
        .collect();
    Ok(print_hits(
        &args,
        &db_dir,
        &model.name,
        &query_path,
        &hits,
        results.indexed,
        results.query_indexed,
    ))
}

/// The daemon's answer, if a daemon runs on this database and holds the model. The query's
/// bytes are read here and sent: the daemon never opens a file for a client.
#[cfg(unix)]
fn similar_by_daemon(
    args: &SimilarArgs,
    db_dir: &Path,
    canonical: &Path,
    query_path: &str,
) -> anyhow::Result<Option<Outcome>> {
    use imgsim::daemon::{Request, Response, SimilarRequest};
    let image =
        std::fs::read(canonical).map_err(|e| anyhow::anyhow!("{}: {e}", canonical.display()))?;
    let model_dir = match &args.model.model_dir {
        Some(dir) => Some(
            std::fs::canonicalize(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?,
        ),
        None => None,
    };
    let request = Request::Similar(SimilarRequest {
        model: args.model.model.clone(),
        model_dir,
        query_path: query_path.to_string(),
        k: args.k,
        filter: args.filter.clone(),
        min_score: args.min_score,
        image_bytes: image.len() as u64,
    });
    match imgsim::daemon::ask(db_dir, &request, &image)? {
        None | Some(Response::NotLoaded { .. }) => Ok(None),
        Some(Response::Hits {
            model,
            hits,
            indexed,
            query_indexed,
        }) => {
            let hits: Vec<(String, f32)> = hits.into_iter().map(|h| (h.path, h.score)).collect();
            Ok(Some(print_hits(
                args,
                db_dir,
                &model,
                query_path,
                &hits,
                indexed,
                query_indexed,
            )))
        }
        Some(Response::Error { message }) => anyhow::bail!("{message}"),
        Some(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}

#[cfg(not(unix))]
fn similar_by_daemon(
    _: &SimilarArgs,
    _: &Path,
    _: &Path,
    _: &str,
) -> anyhow::Result<Option<Outcome>> {
    Ok(None)
}

fn print_hits(
    args: &SimilarArgs,
    db_dir: &Path,
    model: &str,
    query_path: &str,
    hits: &[(String, f32)],
    indexed: usize,
    query_indexed: bool,
) -> Outcome {
    if indexed == 0 {
        eprintln!("imgsim: the {model} index in {} is empty", db_dir.display());
        return Outcome::NothingFound;
    }
    for (i, (path, score)) in hits.iter().enumerate() {
        if args.json {
            print_json(&SimilarLine::Hit {
                rank: i + 1,
                score: *score,
                path: path.clone(),
            });
        } else {
            println!("{:>3}  {:.4}  {}", i + 1, score, path);
        }
    }
    if args.json {
        print_json(&SimilarLine::Summary {
            query: query_path.to_string(),
            model: model.to_string(),
            hits: hits.len(),
            indexed,
            query_indexed,
        });
    }
    if hits.is_empty() {
        Outcome::NothingFound
    } else {
        Outcome::Done
    }
}

fn embed_query(embedder: &imgsim::embed::Embedder, path: &Path) -> imgsim::Result<Vec<f32>> {
    let mut out = None;
    embedder.embed_files(&[path.to_path_buf()], |_, r| out = Some(r))?;
    out.expect("one result per file")
}

fn indexed_models(store: &Store) -> String {
    match store.tables() {
        Ok(t) if !t.is_empty() => t
            .iter()
            .map(|t| t.model.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    }
}

pub fn run_status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let store = Store::open(&db_dir, false)?;
    let mut lines = Vec::new();
    for info in store.tables()? {
        let Some(table) = store.table(&info.model_id)? else {
            continue;
        };
        let vector_index = table.vector_index()?;
        let images = table.count()?;
        lines.push(StatusLine {
            vector_index: vector_index.is_some(),
            unindexed_rows: vector_index.map_or(images, |(_, unindexed)| unindexed),
            images,
            bytes: dir_size(&db_dir.join(format!("{}.lance", info.table)))
                + dir_size(&db_dir.join(format!("{}.filters", info.table))),
            model: info.model,
            model_id: info.model_id,
            dim: info.dim,
            table: info.table,
        });
    }
    let daemon = daemon_status(&db_dir);
    if args.json {
        for line in lines {
            print_json(&StatusJson::Model(line));
        }
        print_json(&StatusJson::Daemon {
            running: daemon.is_some(),
            status: daemon,
        });
    } else {
        println!("index: {}", db_dir.display());
        print_daemon(daemon.as_ref());
        if lines.is_empty() {
            println!("no model indexed yet: run `imgsim index DIR`");
        }
        for l in &lines {
            let index = if l.vector_index {
                format!("IVF-PQ index, {} rows not in it yet", l.unindexed_rows)
            } else {
                "exact search (no vector index)".into()
            };
            println!(
                "{:<16} {:>8} images  {:>9}  dim {:<5} {index}",
                l.model,
                l.images,
                human_bytes(l.bytes),
                l.dim
            );
        }
    }
    Ok(Outcome::Done)
}

/// `imgsim status --json` lines.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StatusJson {
    Model(StatusLine),
    Daemon {
        running: bool,
        #[serde(flatten)]
        status: Option<imgsim::watch::DaemonStatus>,
    },
}

/// The state of the watch daemon on this database, if one answers.
#[cfg(unix)]
fn daemon_status(db_dir: &Path) -> Option<imgsim::watch::DaemonStatus> {
    match imgsim::daemon::ask(db_dir, &imgsim::daemon::Request::Status, &[]) {
        Ok(Some(imgsim::daemon::Response::Status(status))) => Some(status),
        _ => None,
    }
}

#[cfg(not(unix))]
fn daemon_status(_: &Path) -> Option<imgsim::watch::DaemonStatus> {
    None
}

fn print_daemon(daemon: Option<&imgsim::watch::DaemonStatus>) {
    let Some(d) = daemon else {
        println!("daemon: not running (start one with `imgsim watch DIR`)");
        return;
    };
    let ago = |at: i64| {
        let seconds = (imgsim::indexer::now_seconds() - at).max(0);
        if seconds < 120 {
            format!("{seconds} s ago")
        } else if seconds < 7200 {
            format!("{} min ago", seconds / 60)
        } else {
            format!("{} h ago", seconds / 3600)
        }
    };
    println!(
        "daemon: running (pid {}, since {}), {}, {}, {} queued, {} changes",
        d.pid,
        ago(d.started_at),
        d.mode,
        d.phase,
        d.queue,
        d.changes
    );
    for root in &d.roots {
        let state = if root.present {
            ""
        } else {
            "  (missing: rows kept)"
        };
        println!("  root: {}{state}", root.path);
    }
    println!("  models: {}", d.models.join(", "));
    println!("  memory: {}", human_bytes(d.resident_bytes));
    match &d.last_event {
        Some(e) => println!("  last event: {} ({})", e.what, ago(e.at)),
        None => println!("  last event: none yet"),
    }
    if let Some(e) = &d.last_error {
        println!("  last error: {} ({})", e.what, ago(e.at));
    }
}

/// Compacts every model's table and builds or refreshes its vector index.
pub fn run_optimize(args: OptimizeArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let _lock = lock_for_writing(&db_dir, "imgsim optimize")?;
    let store = Store::open(&db_dir, false)?;
    for info in store.tables()? {
        let Some(table) = store.table(&info.model_id)? else {
            continue;
        };
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
                imgsim::store::MIN_INDEX_ROWS
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

fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn human_bytes(bytes: u64) -> String {
    let kib = bytes as f64 / 1024.0;
    if kib < 1024.0 {
        format!("{kib:.0} KiB")
    } else if kib < 1024.0 * 1024.0 {
        format!("{:.1} MiB", kib / 1024.0)
    } else {
        format!("{:.1} GiB", kib / (1024.0 * 1024.0))
    }
}

/// The `--exclude` patterns as one matcher.
pub(super) fn exclude_globs(patterns: &[String]) -> anyhow::Result<globset::GlobSet> {
    let mut globs = globset::GlobSetBuilder::new();
    for pattern in patterns {
        globs.add(
            globset::Glob::new(pattern).map_err(|e| anyhow::anyhow!("--exclude {pattern}: {e}"))?,
        );
    }
    Ok(globs.build()?)
}

pub(super) fn describe(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The database's writer lock; while another process holds it, says so once and waits.
fn lock_for_writing(db_dir: &Path, doing: &str) -> anyhow::Result<imgsim::lock::WriterLock> {
    Ok(imgsim::lock::WriterLock::acquire(
        db_dir,
        doing,
        true,
        |holder| {
            eprintln!(
                "imgsim: waiting for {holder} to finish writing to {}",
                db_dir.display()
            )
        },
    )?)
}

#[derive(clap::Subcommand, Debug)]
pub enum TagCommand {
    /// Add tags to indexed images.
    Add(TagArgs),
    /// Remove tags from indexed images.
    Rm(TagArgs),
    /// Show the tags of indexed images.
    Ls {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// A tag (repeatable).
    #[arg(long = "tag", short = 't', required = true, value_name = "TAG")]
    tags: Vec<String>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TagLine {
    pub path: String,
    pub tags: Vec<String>,
}

/// Tags belong to files, so they are set in every model's table that holds the file.
pub fn run_tag(command: TagCommand) -> anyhow::Result<Outcome> {
    match command {
        TagCommand::Add(args) => change_tags(args, true),
        TagCommand::Rm(args) => change_tags(args, false),
        TagCommand::Ls { paths, db, json } => {
            let store = Store::open(&db.dir()?, false)?;
            let mut missing = 0;
            for path in &paths {
                let key = canonical_string(path)?;
                let mut tags: Vec<String> = Vec::new();
                let mut found = false;
                for info in store.tables()? {
                    if let Some(row) = store
                        .table(&info.model_id)?
                        .and_then(|t| t.row(&key).ok().flatten())
                    {
                        found = true;
                        for tag in row.tags {
                            if !tags.contains(&tag) {
                                tags.push(tag);
                            }
                        }
                    }
                }
                if !found {
                    missing += 1;
                    eprintln!("imgsim: {key}: not indexed");
                    continue;
                }
                if json {
                    print_json(&TagLine { path: key, tags });
                } else {
                    println!("{key}\t{}", tags.join(", "));
                }
            }
            Ok(if missing > 0 {
                Outcome::SomeFailed
            } else {
                Outcome::Done
            })
        }
    }
}

fn canonical_string(path: &Path) -> anyhow::Result<String> {
    let canonical =
        std::fs::canonicalize(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(indexer::path_string(&canonical))
}

fn change_tags(args: TagArgs, add: bool) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let _lock = lock_for_writing(&db_dir, "imgsim tag")?;
    let store = Store::open(&db_dir, false)?;
    let keys: Vec<String> = args
        .paths
        .iter()
        .map(|p| canonical_string(p))
        .collect::<anyhow::Result<_>>()?;
    let mut seen = std::collections::HashSet::new();
    for info in store.tables()? {
        let Some(table) = store.table(&info.model_id)? else {
            continue;
        };
        let mut changed = Vec::new();
        for key in &keys {
            if let Some(mut row) = table.row(key)? {
                seen.insert(key.clone());
                for tag in &args.tags {
                    let has = row.tags.contains(tag);
                    if add && !has {
                        row.tags.push(tag.clone());
                    } else if !add && has {
                        row.tags.retain(|t| t != tag);
                    }
                }
                changed.push(row);
            }
        }
        table.upsert(&changed)?;
        table.filters()?;
    }
    let missing: Vec<&String> = keys.iter().filter(|k| !seen.contains(*k)).collect();
    for key in &missing {
        eprintln!("imgsim: {key}: not indexed, so not tagged");
    }
    Ok(if missing.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeFailed
    })
}
