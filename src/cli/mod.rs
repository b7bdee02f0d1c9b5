//! Command-line definitions and the commands themselves. The library computes; this layer
//! draws progress, prints results and turns failures into messages.

mod bench;
mod bench_watch;
mod compare;
mod embed;
mod eval;
mod index;
mod models;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imgsim::device::DeviceChoice;
use imgsim::models::{Pooling, WeightsSource};

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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Index the images under folders (incremental: unchanged files are not read again).
    Index(index::IndexArgs),
    /// Keep the index equal to folders as files come, change, move and go (a daemon).
    Watch(watch::WatchArgs),
    /// The indexed images most like a picture.
    Similar(index::SimilarArgs),
    /// What the index holds, per model.
    Status(index::StatusArgs),
    /// Compact the index and build or refresh its vector (IVF-PQ) index.
    Optimize(index::OptimizeArgs),
    /// Add, remove or list tags of indexed images (searchable with --where 'tag:...').
    #[command(subcommand)]
    Tag(index::TagCommand),
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

/// Options shared by every command that loads a model.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model name or alias: clip, dinov2, clip-vit-b32, clip-vit-l14, dinov2-small,
    /// dinov2-base, dinov2-large, or phash (the weight-free perceptual-hash baseline).
    /// `index`, `watch` and `compare` also take `all`: every model whose weights are local, and
    /// phash.
    #[arg(long, short = 'm', default_value = "clip")]
    model: String,
    /// Load the model from this directory (Hugging Face layout: config.json,
    /// model.safetensors, preprocessor_config.json) instead of the registry.
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

impl ModelArgs {
    fn source(&self) -> anyhow::Result<WeightsSource> {
        Ok(match &self.model_dir {
            Some(dir) => WeightsSource::Dir(dir.clone()),
            None => imgsim::models::source_for(&self.model)?,
        })
    }

    /// The model, or with `--model all` every registry model whose weights are local, plus
    /// the weight-free `phash`.
    fn sources_or_all(&self) -> anyhow::Result<Vec<WeightsSource>> {
        if self.model_dir.is_none() && self.model.eq_ignore_ascii_case("all") {
            let mut all: Vec<WeightsSource> = imgsim::models::registry()
                .iter()
                .filter(|spec| imgsim::weights::cached(spec).is_ok())
                .map(WeightsSource::Hub)
                .collect();
            all.push(WeightsSource::Phash);
            return Ok(all);
        }
        Ok(vec![self.source()?])
    }

    /// Loads the model on the chosen device, ready to embed.
    fn embedder(&self, pooling: Option<Pooling>) -> anyhow::Result<imgsim::embed::Embedder> {
        let device = imgsim::device::select(self.device)?;
        let model = imgsim::models::Model::load(&self.source()?, pooling, &device)?;
        Ok(imgsim::embed::Embedder::new(model, device))
    }
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
    match args.command {
        Command::Index(a) => index::run_index(a),
        Command::Watch(a) => watch::run(a),
        Command::Similar(a) => index::run_similar(a),
        Command::Status(a) => index::run_status(a),
        Command::Tag(c) => index::run_tag(c),
        Command::Optimize(a) => index::run_optimize(a),
        Command::Embed(a) => embed::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Models(c) => models::run(c),
        Command::Eval(c) => eval::run(c),
        Command::Bench(c) => bench::run(c),
    }
}

/// `imgsim: <error>: <cause>: ...` on stderr.
pub fn report_error(err: &anyhow::Error) {
    let mut message = format!("imgsim: {err}");
    for cause in err.chain().skip(1) {
        message.push_str(&format!(": {cause}"));
    }
    eprintln!("{message}");
}

/// One file-level problem: reported, counted, never fatal.
pub fn report_file_error(err: &imgsim::Error) {
    eprintln!("imgsim: {err}");
}

/// Prints one JSON line on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string(value).expect("serialisable"));
}

/// A progress bar on stderr when it is a terminal and output is not JSON; hidden otherwise.
pub fn progress_bar(len: usize, json: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}  {wide_msg}",
        )
        .expect("valid template"),
    );
    bar
}
