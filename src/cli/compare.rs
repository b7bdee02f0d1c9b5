//! `imgsim compare`: the cosine similarity of two images under one model or all local ones.

use std::path::PathBuf;

use imgsim::embed::{cosine, Embedder};
use serde::{Deserialize, Serialize};

use super::common::{print_json, ModelArgs};
use super::{report_error, Outcome};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    image_a: PathBuf,
    image_b: PathBuf,
    /// `--model all` compares under every registry model whose weights are in the cache.
    #[command(flatten)]
    model: ModelArgs,
    /// One JSON line per model: {"model", "image_a", "image_b", "cosine"}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CompareLine {
    pub model: String,
    pub image_a: String,
    pub image_b: String,
    pub cosine: f32,
}

pub fn run(args: CompareArgs) -> anyhow::Result<Outcome> {
    // The inputs first: a missing file is said before any model is loaded or fetched.
    for image in [&args.image_a, &args.image_b] {
        imgsim::decode::check_readable(image)?;
    }
    let sources = args.model.sources_or_all()?;
    let device = super::common::select_device(args.model.device)?;
    let mut failed = false;
    for source in &sources {
        // With several models, one that cannot load is reported and the others still run.
        let result = (|| -> anyhow::Result<CompareLine> {
            let model = args.model.load(source, None, &device)?;
            let embedder = Embedder::new(model, device.clone());
            let mut vectors = Vec::new();
            let paths = [args.image_a.clone(), args.image_b.clone()];
            let mut first_error = None;
            embedder.embed_files(&paths, |_, r| match r {
                Ok(v) => vectors.push(v),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            })?;
            if let Some(e) = first_error {
                return Err(e.into());
            }
            Ok(CompareLine {
                model: embedder.model().name.clone(),
                image_a: args.image_a.display().to_string(),
                image_b: args.image_b.display().to_string(),
                cosine: cosine(&vectors[0], &vectors[1]),
            })
        })();
        match result {
            Ok(line) if args.json => print_json(&line),
            Ok(line) => println!("{:<14} {:.4}", line.model, line.cosine),
            Err(err) if sources.len() == 1 => return Err(err),
            Err(err) => {
                report_error(&err);
                failed = true;
            }
        }
    }
    Ok(if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    })
}
