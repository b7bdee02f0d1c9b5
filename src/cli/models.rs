use imgsim::models::weights;
use imgsim::models::{find, registry, ModelSpec};
use serde::{Deserialize, Serialize};

use super::common::print_json;
use super::Outcome;

#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// Every supported model: dimension, download size, and whether its weights are local.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download a model's weights into the Hugging Face cache (at its pinned revision).
    Fetch {
        /// Model names or aliases.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ModelLine {
    pub name: String,
    pub aliases: Vec<String>,
    pub family: String,
    pub dim: usize,
    pub weights_mb: u64,
    pub repo: String,
    pub revision: String,
    pub pooling: String,
    pub local: bool,
    pub path: Option<String>,
}

fn line(spec: &ModelSpec) -> ModelLine {
    let cached = weights::cached(spec).ok();
    ModelLine {
        name: spec.name.clone(),
        aliases: spec.aliases.clone(),
        family: format!("{:?}", spec.family).to_lowercase(),
        dim: spec.dim,
        weights_mb: spec.weights_mb,
        repo: spec.repo.clone(),
        revision: spec.revision.clone(),
        pooling: format!("{:?}", spec.pooling).to_lowercase(),
        local: cached.is_some(),
        path: cached.map(|f| f.weights.display().to_string()),
    }
}

/// The weight-free baseline, listed so that users find it.
fn phash_line() -> ModelLine {
    ModelLine {
        name: imgsim::models::PHASH.to_string(),
        aliases: Vec::new(),
        family: "phash".into(),
        dim: imgsim::models::phash::BITS,
        weights_mb: 0,
        repo: String::new(),
        revision: String::new(),
        pooling: "hash".into(),
        local: true,
        path: None,
    }
}

pub fn run(command: ModelsCommand) -> anyhow::Result<Outcome> {
    match command {
        ModelsCommand::List { json } => {
            let mut lines: Vec<ModelLine> = registry().iter().map(line).collect();
            lines.push(phash_line());
            if json {
                lines.iter().for_each(print_json);
            } else {
                println!(
                    "{:<14} {:<8} {:>5} {:>8}  {:<6} SOURCE",
                    "MODEL", "ALIAS", "DIM", "SIZE", "LOCAL"
                );
                for l in &lines {
                    if l.repo.is_empty() {
                        println!(
                            "{:<14} {:<8} {:>5} {:>5} MB  {:<6} built in (weight-free baseline)",
                            l.name, "", l.dim, 0, "yes"
                        );
                        continue;
                    }
                    println!(
                        "{:<14} {:<8} {:>5} {:>5} MB  {:<6} {}@{}",
                        l.name,
                        l.aliases.join(","),
                        l.dim,
                        l.weights_mb,
                        if l.local { "yes" } else { "no" },
                        l.repo,
                        short(&l.revision)
                    );
                }
                println!("\nHugging Face cache: {}", weights::cache_dir().display());
            }
            Ok(Outcome::Done)
        }
        ModelsCommand::Fetch { names } => {
            for name in names {
                if name.eq_ignore_ascii_case(imgsim::models::PHASH) {
                    eprintln!("imgsim: phash needs no weights");
                    continue;
                }
                let spec = find(&name)?;
                eprintln!(
                    "imgsim: fetching {} ({} MB) from {}@{}",
                    spec.name, spec.weights_mb, spec.repo, spec.revision
                );
                // The library's message suggests this very command: say what to check instead.
                let files = weights::fetch(spec).map_err(|e| match e {
                    imgsim::Error::Fetch {
                        model,
                        looked_in,
                        reason,
                    } => anyhow::anyhow!(
                        "could not download the weights of '{model}'\n  into: {looked_in}\n  \
                         download failed: {reason}\n  check the network (HF_ENDPOINT names \
                         another hub), or point commands at a local copy with --model-dir DIR"
                    ),
                    other => other.into(),
                })?;
                // CLIP's tokenizer too, so that searching by words works offline later.
                if spec.family == imgsim::models::Family::Clip {
                    weights::fetch_tokenizer(spec).map_err(|e| {
                        anyhow::anyhow!(
                            "fetched the weights of '{}', but not its tokenizer (searching by \
                             words needs it): {e}",
                            spec.name
                        )
                    })?;
                }
                println!("{}\t{}", spec.name, files.weights.display());
            }
            Ok(Outcome::Done)
        }
    }
}

fn short(revision: &str) -> &str {
    if revision.len() == 40 {
        &revision[..12]
    } else {
        revision
    }
}
