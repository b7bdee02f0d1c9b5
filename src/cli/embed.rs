use std::path::PathBuf;

use imgsim::models::Pooling;
use serde::{Deserialize, Serialize};

use super::common::{print_json, progress_bar, report_file_error, ModelArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Image files (JPEG, PNG, WebP, GIF, BMP, TIFF).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// DINOv2 only: `mean` of all tokens (default, the published recipe) or the `cls` token.
    #[arg(long, value_enum)]
    pooling: Option<Pooling>,
    /// Images per forward pass [default: 16 on the CPU, 64 on a GPU].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// One JSON line per image: {"path", "model", "dim", "embedding"}.
    #[arg(long)]
    json: bool,
}

/// One `--json` line.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmbeddingLine {
    pub path: String,
    pub model: String,
    pub dim: usize,
    pub embedding: Vec<f32>,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<Outcome> {
    let embedder = args
        .model
        .embedder(args.pooling)?
        .batch_size_or_default(args.batch_size);
    let name = embedder.model().name.clone();
    let bar = progress_bar(args.images.len(), args.json);
    let mut failed = 0;
    embedder.embed_files(&args.images, |i, result| {
        bar.inc(1);
        let path = args.images[i].display().to_string();
        match result {
            Ok(embedding) if args.json => print_json(&EmbeddingLine {
                path,
                model: name.clone(),
                dim: embedding.len(),
                embedding,
            }),
            Ok(embedding) => bar.suspend(|| {
                let head: Vec<String> = embedding
                    .iter()
                    .take(4)
                    .map(|v| format!("{v:+.4}"))
                    .collect();
                println!(
                    "{path}\t{name}\tdim={}\t[{}, ...]",
                    embedding.len(),
                    head.join(", ")
                );
            }),
            Err(err) => {
                failed += 1;
                bar.suspend(|| report_file_error(&err));
            }
        }
    })?;
    bar.finish_and_clear();
    if failed > 0 {
        eprintln!(
            "imgsim: {failed} of {} images could not be embedded",
            args.images.len()
        );
        return Ok(Outcome::SomeFailed);
    }
    Ok(Outcome::Done)
}
