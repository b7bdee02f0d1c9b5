//! Where a model's files come from: a local directory in Hugging Face layout, or the Hugging
//! Face cache (shared with Python's `huggingface_hub`) filled through `hf-hub` at a pinned revision.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};
use crate::models::ModelSpec;

/// The files of one checkpoint.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
    /// Only in a `--model-dir`; registry models carry their preprocessing in `models/*.toml`.
    pub preprocessor: Option<PathBuf>,
    /// A `--model-dir`'s `tokenizer.json` where it has one (text queries need it; registry
    /// models fetch theirs with `fetch_tokenizer` when a text query first needs it).
    pub tokenizer: Option<PathBuf>,
}

const CONFIG: &str = "config.json";
const WEIGHTS: &str = "model.safetensors";
const PREPROCESSOR: &str = "preprocessor_config.json";
pub const TOKENIZER: &str = "tokenizer.json";

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
            tokenizer: Some(dir.join(TOKENIZER)).filter(|p| p.is_file()),
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

/// The Hugging Face hub cache directory, found as `huggingface_hub` finds it:
/// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = set("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    dirs::home_dir()
        .unwrap_or_default()
        .join(".cache/huggingface/hub")
}

/// The registry model's files from the cache, without touching the network. Weights that are
/// there but not whole (a download cut short, a damaged disk) are an error that says how to
/// fetch them again, not a file that fails later inside the model loader.
pub fn cached(spec: &ModelSpec) -> Result<ModelFiles> {
    let files = cached_unchecked(spec)?;
    check_safetensors(&files.weights).map_err(|reason| Error::WeightsDamaged {
        model: spec.name.clone(),
        path: files.weights.clone(),
        folder: cache_dir().join(repo_folder(&spec.repo)),
        reason,
    })?;
    Ok(files)
}

fn cached_unchecked(spec: &ModelSpec) -> Result<ModelFiles> {
    let get = |filename: &str| -> Result<PathBuf> {
        cached_file(&cache_dir(), &spec.repo, &spec.revision, filename).ok_or_else(|| {
            missing(
                spec,
                if offline() {
                    format!("{filename} is not in the cache and HF_HUB_OFFLINE is set")
                } else {
                    format!("{filename} is not in the cache")
                },
            )
        })
    };
    Ok(ModelFiles {
        config: get(CONFIG)?,
        weights: get(WEIGHTS)?,
        preprocessor: None,
        tokenizer: None,
    })
}

/// The registry model's files: from the cache, else downloaded (unless `HF_HUB_OFFLINE`).
/// The endpoint is `HF_ENDPOINT` when set, as in `huggingface_hub`.
pub fn fetch(spec: &ModelSpec) -> Result<ModelFiles> {
    match cached(spec) {
        Ok(files) => Ok(files),
        Err(Error::WeightsMissing { .. }) if !offline() => {
            download(spec, &[CONFIG, WEIGHTS])?;
            cached(spec)
        }
        Err(e) => Err(e),
    }
}

/// The registry model's `tokenizer.json` (for text queries): from the cache, else downloaded
/// (unless `HF_HUB_OFFLINE`).
pub fn fetch_tokenizer(spec: &ModelSpec) -> Result<PathBuf> {
    let cached = || cached_file(&cache_dir(), &spec.repo, &spec.revision, TOKENIZER);
    if let Some(path) = cached() {
        return Ok(path);
    }
    if offline() {
        return Err(missing(
            spec,
            format!("{TOKENIZER} is not in the cache and HF_HUB_OFFLINE is set"),
        ));
    }
    download(spec, &[TOKENIZER])?;
    cached().ok_or_else(|| missing(spec, format!("{TOKENIZER} is not in the cache")))
}

/// Downloads the files into the cache (hf-hub writes each to a `.part` file and renames it
/// when complete: a cut connection leaves nothing that a later run would load).
fn download(spec: &ModelSpec, files: &[&str]) -> Result<()> {
    let failed = |reason: String| Error::Fetch {
        model: spec.name.clone(),
        looked_in: looked_in(spec),
        reason,
    };
    let mut builder = ApiBuilder::from_cache(Cache::new(cache_dir()))
        .with_progress(std::io::stderr().is_terminal());
    if let Some(endpoint) = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()) {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
    }
    let api = builder.build().map_err(|e| failed(e.to_string()))?;
    let repo = api.repo(Repo::with_revision(
        spec.repo.clone(),
        RepoType::Model,
        spec.revision.clone(),
    ));
    let get = |filename: &str| -> Result<PathBuf> {
        repo.download(filename)
            .map_err(|e| failed(format!("{filename}: {e}")))
    };
    for file in files {
        get(file)?;
    }
    Ok(())
}

/// A file of `repo` at `revision` in a hub cache (the layout `huggingface_hub` writes):
/// `models--owner--name/snapshots/<commit>/<file>`, the commit being the revision itself
/// when it is a commit hash, else the one that `refs/<revision>` records.
fn cached_file(cache: &Path, repo: &str, revision: &str, filename: &str) -> Option<PathBuf> {
    let folder = cache.join(repo_folder(repo));
    let is_commit = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    let commit = if is_commit {
        revision.to_string()
    } else {
        std::fs::read_to_string(folder.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    let path = folder.join("snapshots").join(commit).join(filename);
    path.is_file().then_some(path)
}

/// The cache folder of a model repository: `models--owner--name`.
fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// Checks that a safetensors file is whole: its header parses, and its tensors end where the
/// file ends. Reads the header only.
pub fn check_safetensors(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 8];
    file.read_exact(&mut head)
        .map_err(|_| format!("{size} bytes: shorter than a safetensors header"))?;
    let header_len = u64::from_le_bytes(head);
    if header_len > 100 << 20 || 8 + header_len > size {
        return Err(format!(
            "a header of {header_len} bytes does not fit in {size} bytes (truncated?)"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("unreadable header: {e}"))?;
    let end = header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .filter_map(|(_, tensor)| tensor.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let expected = 8 + header_len + end;
    if expected != size {
        return Err(format!(
            "its tensors need {expected} bytes but the file has {size} (truncated or damaged)"
        ));
    }
    Ok(())
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

    #[test]
    fn a_truncated_safetensors_file_is_found_out() {
        let dir = tempfile::tempdir().unwrap();
        let whole = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tiny-clip/model.safetensors"),
        )
        .unwrap();
        let path = dir.path().join(WEIGHTS);
        std::fs::write(&path, &whole).unwrap();
        check_safetensors(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        let err = check_safetensors(&path).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&path, &whole[..4]).unwrap();
        assert!(check_safetensors(&path).is_err());
        let mut longer = whole.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(check_safetensors(&path).is_err());
    }

    #[test]
    fn the_cache_is_read_in_huggingface_hub_layout() {
        let cache = tempfile::tempdir().unwrap();
        let commit = "32bd64288804d66eefd0ccbe215aa642df71cc41";
        let repo = cache.path().join("models--openai--clip-vit-base-patch32");
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::write(repo.join("snapshots").join(commit).join(CONFIG), "{}").unwrap();
        std::fs::create_dir_all(repo.join("refs/refs/pr")).unwrap();
        std::fs::write(repo.join("refs/refs/pr/15"), commit).unwrap();
        let want = repo.join("snapshots").join(commit).join(CONFIG);
        let find = |rev: &str, file: &str| {
            cached_file(cache.path(), "openai/clip-vit-base-patch32", rev, file)
        };
        assert_eq!(find(commit, CONFIG), Some(want.clone()));
        assert_eq!(find("refs/pr/15", CONFIG), Some(want));
        assert_eq!(find("refs/pr/15", WEIGHTS), None);
        assert_eq!(find("main", CONFIG), None);
    }
}
