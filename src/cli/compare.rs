use std::path::PathBuf;

use imgsim::embed::{cosine, Embedder};
use imgsim::models::{registry, WeightsSource};
use imgsim::weights;
use serde::{Deserialize, Serialize};

use super::{print_json, report_error, ModelArgs, Outcome};

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
    let all = args.model.model_dir.is_none() && args.model.model == "all";
    let sources: Vec<WeightsSource> = if all {
        // Only the models already in the cache: `all` never starts gigabytes of downloads.
        let local: Vec<WeightsSource> = registry()
            .iter()
            .filter(|spec| weights::cached(spec).is_ok())
            .map(WeightsSource::Hub)
            .chain([WeightsSource::Phash])
            .collect();
        if local.len() == 1 {
            eprintln!(
                "imgsim: no network's weights are in the Hugging Face cache ({}), so only the \
                 phash baseline runs; fetch some with `imgsim models fetch clip dinov2`",
                weights::cache_dir().display()
            );
        }
        local
    } else {
        vec![args.model.source()?]
    };
    let device = imgsim::device::select(args.model.device)?;
    let mut failed = false;
    for source in &sources {
        // With several models, one that cannot load is reported and the others still run.
        let result = (|| -> anyhow::Result<CompareLine> {
            let model = imgsim::models::Model::load(source, None, &device)?;
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
