//! Command-line definitions and the commands themselves, one file per command. The library
//! computes; this layer draws progress, prints results and turns failures into messages.
//! `common.rs` holds what the commands share.

mod bench;
mod bench_decode;
mod bench_serve;
mod bench_soak;
mod bench_text;
mod bench_watch;
mod common;
mod compare;
mod dupes;
mod embed;
mod eval;
mod index;
mod models;
mod optimize;
mod repair;
mod search;
mod serve;
mod similar;
mod status;
mod tag;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "imgsim",
    version,
    about = "Local image-similarity search with CLIP and DINOv2",
    long_about = "Local image-similarity search with CLIP and DINOv2.\n\n\
        Models: `clip` (= clip-vit-b32) and `dinov2` (= dinov2-base), plus clip-vit-l14, \
        dinov2-small and dinov2-large. Weights come from the Hugging Face cache \
        (fetch with `imgsim models fetch NAME`) or from --model-dir.\n\n\
        Exit codes: 0 done, 1 nothing found, 2 error (including any file that could not be read)."
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// Store paths under PATH as NAME:/... (repeatable, or comma-separated in
    /// IMGSIM_ROOT_ALIAS), so that machines that mount one library at different places
    /// share its rows: each machine names its own mount point under the same NAME. Give the
    /// same aliases to every command on a database.
    #[arg(
        long = "root-alias",
        global = true,
        value_name = "NAME=PATH",
        env = "IMGSIM_ROOT_ALIAS",
        value_delimiter = ','
    )]
    root_alias: Vec<String>,
}

impl Args {
    /// A process that runs for weeks (the daemon): it gives freed memory back to the system
    /// instead of keeping it for speed (see main.rs).
    pub fn runs_for_long(&self) -> bool {
        matches!(self.command, Command::Watch(_) | Command::Serve(_))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Index the images under folders (incremental: unchanged files are not read again).
    Index(index::IndexArgs),
    /// Keep the index equal to folders as files come, change, move and go (a daemon).
    Watch(watch::WatchArgs),
    /// The indexed images most like a picture.
    Similar(similar::SimilarArgs),
    /// The indexed images nearest words, pictures, or a mix ("beach" + ./sunset.jpg - people);
    /// words need CLIP.
    Search(search::SearchArgs),
    /// Groups of duplicate and near-duplicate images, and the one of each to keep (changes
    /// nothing).
    Dupes(dupes::DupesArgs),
    /// What the index holds, per model.
    Status(status::StatusArgs),
    /// A local web page to search, browse and clean up the library (127.0.0.1:8417).
    Serve(serve::ServeArgs),
    /// Compact the index and build or refresh its vector (IVF-PQ) index.
    Optimize(optimize::OptimizeArgs),
    /// Make a damaged index readable again, keeping every row it can (then `index` re-embeds
    /// the files of dropped rows).
    Repair(repair::RepairArgs),
    /// Add, remove or list tags of indexed images (searchable with --where 'tag:...').
    #[command(subcommand)]
    Tag(tag::TagCommand),
    /// Print the embedding of each image (L2-normalised).
    Embed(embed::EmbedArgs),
    /// Cosine similarity of two images under one or more models.
    Compare(compare::CompareArgs),
    /// List, or fetch, the supported models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Measure which model finds the right image: DISC21, COCO, or a benchmark built from
    /// your own photos (synth); score any predictions file with the official metrics.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Measure throughput (a benchmark, not a test).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// How a command ended when it did not fail outright.
pub enum Outcome {
    Done,
    /// A search found nothing: exit code 1.
    NothingFound,
    /// Finished, but some inputs failed (reported already): exit code 2.
    SomeFailed,
}

impl Outcome {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::NothingFound => ExitCode::from(1),
            Outcome::SomeFailed => ExitCode::from(2),
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let aliases = args
        .root_alias
        .iter()
        // `IMGSIM_ROOT_ALIAS=` (set but empty) names none.
        .filter(|text| !text.trim().is_empty())
        .map(|text| imgsim::util::RootAlias::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--root-alias: {e}"))?;
    imgsim::util::set_root_aliases(aliases).map_err(|e| anyhow::anyhow!("--root-alias: {e}"))?;
    match args.command {
        Command::Index(a) => index::run(a),
        Command::Watch(a) => watch::run(a),
        Command::Similar(a) => similar::run(a),
        Command::Search(a) => search::run(a),
        Command::Dupes(a) => dupes::run(a),
        Command::Status(a) => status::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Tag(c) => tag::run(c),
        Command::Optimize(a) => optimize::run(a),
        Command::Repair(a) => repair::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Models(c) => models::run(c),
        Command::Eval(c) => eval::run(c),
        Command::Bench(c) => bench::run(c),
    }
}

/// `imgsim: <error>: <cause>: ...` on stderr, each cause once. (The library's errors carry
/// their causes in their own messages, and expose none as `source`: see `error.rs`.)
pub fn report_error(err: &anyhow::Error) {
    // anyhow's alternate form: the error, then each cause of its chain after `: `.
    eprintln!("imgsim: {err:#}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_line_definition_is_valid() {
        // clap checks a subcommand's arguments (unique names and flags, ...) only when that
        // subcommand is used: this checks them all at once.
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
