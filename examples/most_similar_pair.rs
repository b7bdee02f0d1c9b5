//! Embeds every image in a folder and prints the two most alike: the library in a few lines.
//!
//!     cargo run --example most_similar_pair -- tests/fixtures/tiny-dinov2 ../shared/data/coco128/val2017
//!
//! The first argument is a model directory in Hugging Face layout (or a registry name such as
//! `dinov2` when its weights are in the Hugging Face cache).

use std::path::PathBuf;

use candle_core::Device;
use imgsim::embed::{cosine, Embedder};
use imgsim::models::{find, Model, WeightsSource};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(folder)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: most_similar_pair MODEL_DIR_OR_NAME FOLDER");
    };
    let source = if PathBuf::from(&model).is_dir() {
        WeightsSource::Dir(model.into())
    } else {
        WeightsSource::Hub(find(&model)?)
    };
    let embedder = Embedder::new(Model::load(&source, None, &Device::Cpu)?, Device::Cpu);

    let paths = imgsim::scan::images_in(folder.as_ref())?;
    let mut vectors = Vec::new();
    embedder.embed_files(&paths, |i, result| match result {
        Ok(v) => vectors.push((i, v)),
        Err(e) => eprintln!("skipped: {e}"),
    })?;

    let mut best = (f32::MIN, 0, 0);
    for (a, (i, va)) in vectors.iter().enumerate() {
        for (j, vb) in &vectors[a + 1..] {
            let score = cosine(va, vb);
            if score > best.0 {
                best = (score, *i, *j);
            }
        }
    }
    if vectors.len() < 2 {
        anyhow::bail!("need at least two images");
    }
    println!(
        "{:.4}  {}  {}",
        best.0,
        paths[best.1].display(),
        paths[best.2].display()
    );
    Ok(())
}
