//! Where a model's files come from: a local directory in Hugging Face layout, or the Hugging
//! Face cache (shared with Python's `huggingface_hub`) filled through `hf-hub` at a pinned revision.

use std::path::{Path, PathBuf};

use hf_hub::{HFClientBuilder, HFError};

use crate::error::{Error, Result};
use crate::models::ModelSpec;

/// The files of one checkpoint.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
    /// Only in a `--model-dir`; registry models carry their preprocessing in `models/*.toml`.
    pub preprocessor: Option<PathBuf>,
}

const CONFIG: &str = "config.json";
const WEIGHTS: &str = "model.safetensors";
const PREPROCESSOR: &str = "preprocessor_config.json";

impl ModelFiles {
    /// A directory in Hugging Face layout; every file must be there.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelFiles {
                path: dir.to_path_buf(),
                reason: "not a directory (--model-dir wants a folder holding config.json, \
                         model.safetensors and preprocessor_config.json)"
                    .into(),
            });
        }
        let need = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::ModelFiles {
                    path: dir.to_path_buf(),
                    reason: format!("{name} is missing from the model directory"),
                })
            }
        };
        Ok(Self {
            config: need(CONFIG)?,
            weights: need(WEIGHTS)?,
            preprocessor: Some(need(PREPROCESSOR)?),
        })
    }
}

/// True when `HF_HUB_OFFLINE` asks for the cache only (hf-hub does not read it itself).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// The Hugging Face hub cache directory in use (`HF_HUB_CACHE`, `HF_HOME/hub`, ...).
pub fn cache_dir() -> PathBuf {
    hf_hub::resolve_cache_dir()
}

/// The registry model's files from the cache, without touching the network.
pub fn cached(spec: &ModelSpec) -> Result<ModelFiles> {
    resolve(spec, true)
}

/// The registry model's files: from the cache, else downloaded (unless `HF_HUB_OFFLINE`).
pub fn fetch(spec: &ModelSpec) -> Result<ModelFiles> {
    match resolve(spec, true) {
        Ok(files) => Ok(files),
        Err(_) if !offline() => resolve(spec, false),
        Err(e) => Err(e),
    }
}

fn resolve(spec: &ModelSpec, local_only: bool) -> Result<ModelFiles> {
    let client = HFClientBuilder::new()
        .build_sync()
        .map_err(|e| missing(spec, e.to_string()))?;
    let (owner, name) = spec
        .repo
        .split_once('/')
        .unwrap_or(("", spec.repo.as_str()));
    let repo = client.model(owner, name);
    let get = |filename: &str| -> Result<PathBuf> {
        repo.download_file()
            .filename(filename)
            .revision(spec.revision.clone())
            .local_files_only(local_only)
            .send()
            .map_err(|e| match e {
                HFError::LocalEntryNotFound { .. } => missing(
                    spec,
                    if offline() {
                        format!("{filename} is not in the cache and HF_HUB_OFFLINE is set")
                    } else {
                        format!("{filename} is not in the cache")
                    },
                ),
                other if local_only => missing(spec, other.to_string()),
                other => Error::Fetch {
                    model: spec.name.clone(),
                    looked_in: looked_in(spec),
                    reason: other.to_string(),
                },
            })
    };
    Ok(ModelFiles {
        config: get(CONFIG)?,
        weights: get(WEIGHTS)?,
        preprocessor: None,
    })
}

fn missing(spec: &ModelSpec, reason: String) -> Error {
    Error::WeightsMissing {
        model: spec.name.clone(),
        looked_in: looked_in(spec),
        reason,
    }
}

fn looked_in(spec: &ModelSpec) -> String {
    format!(
        "{} (Hugging Face cache; {}@{})",
        cache_dir().display(),
        spec.repo,
        spec.revision
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_dir_must_hold_every_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG), "{}").unwrap();
        let err = ModelFiles::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("model.safetensors is missing"), "{err}");
        let err = ModelFiles::from_dir(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
