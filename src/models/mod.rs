//! The model registry (`models/*.toml`, one file per supported model) and model loading:
//! a registry name, a `--model-dir`, or the real architecture with random weights.
//!
//! One file per network (`clip.rs`, `dinov2.rs`, `phash.rs`, configs read from the model's
//! own `config.json`), the encoder block they share (`vit.rs`), CPU kernels (`kernels.rs`), and
//! where the files come from (`weights.rs`).

pub mod clip;
pub mod clip_text;
pub mod dinov2;
#[doc(hidden)] // public for examples/profile_block.rs only
pub mod kernels;
pub mod packed;
pub mod phash;
pub mod vit;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::preprocess::Preprocess;
use clip::{Clip, ClipConfig};
use clip_text::{ClipText, ClipTextConfig, ClipTokenizer};
use dinov2::{Dinov2, Dinov2Config, Dinov2Pooling};
pub use packed::Precision;
use weights::ModelFiles;

/// The registry files, compiled in so that the binary needs nothing beside it.
const REGISTRY_FILES: &[(&str, &str)] = &[
    (
        "clip-vit-b32.toml",
        include_str!("../../models/clip-vit-b32.toml"),
    ),
    (
        "clip-vit-l14.toml",
        include_str!("../../models/clip-vit-l14.toml"),
    ),
    (
        "dinov2-small.toml",
        include_str!("../../models/dinov2-small.toml"),
    ),
    (
        "dinov2-base.toml",
        include_str!("../../models/dinov2-base.toml"),
    ),
    (
        "dinov2-large.toml",
        include_str!("../../models/dinov2-large.toml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Clip,
    Dinov2,
    /// The weight-free perceptual-hash baseline.
    Phash,
}

/// How the network's output becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// CLIP: `visual_projection` of the normed CLS token (`get_image_features`).
    Projection,
    /// DINOv2: mean of `last_hidden_state` over all tokens, CLS included.
    Mean,
    /// DINOv2: the normed CLS token (`pooler_output`).
    Cls,
    /// The perceptual hash's bits (no network).
    #[value(skip)]
    Hash,
}

/// The name of the weight-free baseline, accepted wherever a model name is.
pub const PHASH: &str = "phash";

/// One registry entry: a file in `models/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelSpec {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub family: Family,
    pub repo: String,
    pub revision: String,
    pub dim: usize,
    pub weights_mb: u64,
    pub pooling: Pooling,
    pub preprocess: Preprocess,
    /// The network's shape (the `config.json` fields), used with `--random-weights`.
    pub architecture: serde_json::Value,
}

/// Every supported model, in registry order.
pub fn registry() -> &'static [ModelSpec] {
    static REGISTRY: OnceLock<Vec<ModelSpec>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        REGISTRY_FILES
            .iter()
            .map(|(file, text)| {
                toml::from_str(text).unwrap_or_else(|e| panic!("models/{file} is invalid: {e}"))
            })
            .collect()
    })
}

/// A registry model by name or alias (`clip`, `dinov2`), case-insensitively.
pub fn find(name: &str) -> Result<&'static ModelSpec> {
    let wanted = name.trim().to_ascii_lowercase();
    registry()
        .iter()
        .find(|m| m.name == wanted || m.aliases.contains(&wanted))
        .ok_or_else(|| Error::UnknownModel {
            name: name.to_string(),
            known: registry()
                .iter()
                .map(|m| m.name.as_str())
                .chain([PHASH])
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Where a model name's weights come from: the registry (hub cache), or none for `phash`.
pub fn source_for(name: &str) -> Result<WeightsSource> {
    if name.trim().eq_ignore_ascii_case(PHASH) {
        return Ok(WeightsSource::Phash);
    }
    find(name).map(WeightsSource::Hub)
}

/// The word that names every local model at once (`--model all`).
pub const ALL: &str = "all";

/// Whether a model name asks for every local model (`all`, in any case).
pub fn is_all(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case(ALL)
}

/// Every registry model whose weights are in the cache (`all` never starts gigabytes of
/// downloads), then the weight-free `phash`.
pub fn local_sources() -> Vec<WeightsSource> {
    registry()
        .iter()
        .filter(|spec| weights::cached(spec).is_ok())
        .map(WeightsSource::Hub)
        .chain([WeightsSource::Phash])
        .collect()
}

/// Where the weights of a model come from.
#[derive(Debug, Clone)]
pub enum WeightsSource {
    /// A registry model, from the Hugging Face cache or the hub.
    Hub(&'static ModelSpec),
    /// A directory in Hugging Face layout, read entirely from its own files.
    Dir(PathBuf),
    /// The registry model's real architecture with random weights (for benchmarks).
    Random(&'static ModelSpec),
    /// The weight-free perceptual hash.
    Phash,
}

impl WeightsSource {
    /// The model as a user names it: its registry name, `phash`, or the folder.
    pub fn label(&self) -> String {
        match self {
            WeightsSource::Hub(spec) | WeightsSource::Random(spec) => spec.name.clone(),
            WeightsSource::Dir(dir) => dir.display().to_string(),
            WeightsSource::Phash => PHASH.to_string(),
        }
    }
}

#[derive(Clone)]
enum Network {
    Clip(Clip),
    Dinov2(Dinov2),
    Phash,
}

/// A loaded model: network, preprocessing and identity.
pub struct Model {
    /// Registry name, or the directory's name for `--model-dir`.
    pub name: String,
    pub family: Family,
    pub pooling: Pooling,
    pub preprocess: Preprocess,
    pub random_weights: bool,
    /// What the embeddings depend on (weights, pooling, preprocessing, imgsim's pipeline
    /// version, and the precision when it is not f32): equal ids give equal embeddings, so
    /// caches and indexes key on it, and a table never mixes precisions.
    pub id: String,
    /// The arithmetic of the linear layers (`--precision`).
    pub precision: Precision,
    network: Network,
}

/// Bumped whenever a change to imgsim alters the embeddings of unchanged weights.
pub const PIPELINE_VERSION: u32 = 1;

impl Model {
    /// Loads a model in f32. `pooling` overrides the default (DINOv2 only).
    pub fn load(source: &WeightsSource, pooling: Option<Pooling>, device: &Device) -> Result<Self> {
        Self::load_with(source, pooling, device, Precision::F32)
    }

    /// Loads a model that runs in `precision`. On the CPU, bf16 and int8 run the linear layers
    /// on the CPU's own instructions (`packed.rs`; a clear error where it lacks them) and f16 is
    /// refused; on a GPU, f16 and bf16 convert the whole network to that type and int8 is
    /// refused. The weight-free `phash` ignores it.
    pub fn load_with(
        source: &WeightsSource,
        pooling: Option<Pooling>,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        if !matches!(source, WeightsSource::Phash) {
            check_precision(precision, device)?;
        }
        let mut model = Self::load_f32(source, pooling, device)?;
        model.convert(precision, !device.is_cpu())?;
        Ok(model)
    }

    /// A copy of this f32 model whose linear layers run in `precision`, with the same weights
    /// (the benchmark compares precisions this way). The f32 tensors are shared, not copied.
    pub fn to_precision(&self, precision: Precision) -> Result<Self> {
        if self.precision != Precision::F32 {
            return Err(Error::Unsupported(format!(
                "{} is already {}: convert from f32",
                self.name, self.precision
            )));
        }
        if let Some(device) = self.device() {
            check_precision(precision, &device)?;
        }
        let mut model = Self {
            name: self.name.clone(),
            family: self.family,
            pooling: self.pooling,
            preprocess: self.preprocess.clone(),
            random_weights: self.random_weights,
            id: self.id.clone(),
            precision: Precision::F32,
            network: self.network.clone(),
        };
        let on_gpu = self.device().is_some_and(|d| !d.is_cpu());
        model.convert(precision, on_gpu)?;
        Ok(model)
    }

    /// To `precision`: the whole network (a GPU's f16 and bf16), or the CPU's packed layers.
    fn convert(&mut self, precision: Precision, whole_network: bool) -> Result<()> {
        if self.family == Family::Phash || precision == Precision::F32 {
            return Ok(());
        }
        if whole_network {
            self.convert_whole_network(precision)?;
        } else {
            match &mut self.network {
                Network::Clip(m) => m.set_precision(precision)?,
                Network::Dinov2(m) => m.set_precision(precision)?,
                Network::Phash => {}
            }
        }
        self.id.push_str(precision.id_suffix());
        self.precision = precision;
        Ok(())
    }

    /// A GPU's f16 and bf16: every tensor of the network converted to that type, the input
    /// converted as it enters ([`Self::forward`]), f32 out.
    fn convert_whole_network(&mut self, precision: Precision) -> Result<()> {
        let dtype = match precision {
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
            other => {
                return Err(Error::Unsupported(format!(
                    "--precision {other} does not convert a whole network"
                )))
            }
        };
        match &mut self.network {
            Network::Clip(m) => *m = m.to_dtype(dtype)?,
            Network::Dinov2(m) => *m = m.to_dtype(dtype)?,
            Network::Phash => {}
        }
        Ok(())
    }

    /// The GPU's whole-network f16 or bf16 on whatever device this f32 model is on: the CPU
    /// tests check that path's arithmetic with it (candle runs it on the CPU too, slowly).
    #[doc(hidden)]
    pub fn to_whole_network_precision(&self, precision: Precision) -> Result<Self> {
        let mut model = self.to_precision(Precision::F32)?;
        model.convert(precision, true)?;
        Ok(model)
    }

    /// The name with the precision when it is not f32 (`dinov2-base+bf16`): reports.
    pub fn label(&self) -> String {
        format!("{}{}", self.name, self.precision.id_suffix())
    }

    fn load_f32(source: &WeightsSource, pooling: Option<Pooling>, device: &Device) -> Result<Self> {
        match source {
            WeightsSource::Hub(spec) => {
                let files = weights::fetch(spec)?;
                let config = read_json(&files.config)?;
                let vb = mmap_safetensors(&files.weights, device)?;
                let pooling =
                    pick_pooling(spec.family, pooling.or(Some(spec.pooling)), &files.config)?;
                let network = build(spec.family, &config, pooling, vb, &files.config)?;
                Ok(Self {
                    name: spec.name.clone(),
                    family: spec.family,
                    pooling,
                    preprocess: spec.preprocess.clone(),
                    random_weights: false,
                    id: identity(&format!("{}@{}", spec.name, spec.revision), pooling),
                    precision: Precision::F32,
                    network,
                })
            }
            WeightsSource::Dir(dir) => {
                let files = ModelFiles::from_dir(dir)?;
                let config = read_json(&files.config)?;
                let family = family_of(&config).map_err(|reason| Error::ModelFiles {
                    path: files.config.clone(),
                    reason,
                })?;
                let preprocess =
                    Preprocess::from_hf_file(files.preprocessor.as_deref().expect("dir"))?;
                let vb = mmap_safetensors(&files.weights, device)?;
                let pooling = pick_pooling(family, pooling, &files.config)?;
                let network = build(family, &config, pooling, vb, &files.config)?;
                let name = dir_label(dir);
                Ok(Self {
                    id: identity(&format!("{name}@{}", dir_fingerprint(&files)?), pooling),
                    name,
                    family,
                    pooling,
                    preprocess,
                    random_weights: false,
                    precision: Precision::F32,
                    network,
                })
            }
            WeightsSource::Random(spec) => {
                // Drawn on the CPU and then moved: a GPU then needs no cuRAND.
                let varmap = VarMap::new();
                let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
                let pooling =
                    pick_pooling(spec.family, pooling.or(Some(spec.pooling)), Path::new(""))?;
                let config = match spec.family {
                    Family::Clip => serde_json::json!({ "vision_config": spec.architecture }),
                    Family::Dinov2 => spec.architecture.clone(),
                    Family::Phash => unreachable!("the registry holds networks only"),
                };
                // The first build only makes the variables, each with its initialisation. The
                // network is then built again from plain copies of them: a candle `Var` makes
                // every result computed from it keep its inputs for backpropagation, so a
                // forward pass held every activation of every layer until its end (DINOv2-base
                // at batch 16: 4.2 GB resident, against 0.8 GB from weights in a file).
                drop(build(
                    spec.family,
                    &config,
                    pooling,
                    vb,
                    Path::new(&spec.name),
                )?);
                let plain: std::collections::HashMap<String, Tensor> = varmap
                    .data()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(name, var)| {
                        Ok((name.clone(), var.as_tensor().detach().to_device(device)?))
                    })
                    .collect::<Result<_>>()?;
                drop(varmap);
                let vb = VarBuilder::from_tensors(plain, DType::F32, device);
                let network = build(spec.family, &config, pooling, vb, Path::new(&spec.name))?;
                Ok(Self {
                    name: spec.name.clone(),
                    family: spec.family,
                    pooling,
                    preprocess: spec.preprocess.clone(),
                    random_weights: true,
                    // Random weights differ at every load: nothing may reuse their vectors.
                    id: format!("{}@random-{:016x}", spec.name, rand::random::<u64>()),
                    precision: Precision::F32,
                    network,
                })
            }
            WeightsSource::Phash => Ok(Self {
                pooling: pick_pooling(Family::Phash, pooling, Path::new(PHASH))?,
                name: PHASH.to_string(),
                family: Family::Phash,
                // Describes what the hash does; it runs its own resize (see phash.rs).
                preprocess: Preprocess {
                    shortest_edge: None,
                    crop: None,
                    resample: crate::preprocess::Resample::Lanczos,
                    rescale: 1.0,
                    mean: [0.0; 3],
                    std: [1.0; 3],
                },
                random_weights: false,
                id: identity("phash@imagehash-4", Pooling::Hash),
                precision: Precision::F32,
                network: Network::Phash,
            }),
        }
    }

    /// The descriptor of a decoded image for models that need no network (`phash`), which
    /// the embedding pipeline computes on its decoding threads; `None` for networks.
    pub fn describe_without_network(&self, image: &image::RgbImage) -> Option<Vec<f32>> {
        match self.network {
            Network::Phash => Some(phash::descriptor(image)),
            _ => None,
        }
    }

    /// The embeddings (not yet L2-normalised) of `[B, 3, H, W]` pixel values, computed where
    /// and in the type the weights are (a half-precision network gets its input converted);
    /// f32 out.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let input = |(device, dtype): (Device, DType)| -> Result<Tensor> {
            Ok(pixel_values.to_device(&device)?.to_dtype(dtype)?)
        };
        let out = match &self.network {
            Network::Clip(m) => m.forward(&input(m.placement())?),
            Network::Dinov2(m) => m.forward(&input(m.placement())?),
            Network::Phash => Err(Error::Unsupported(
                "phash hashes whole images, not model input tensors".into(),
            )),
        }?;
        Ok(out.to_dtype(DType::F32)?)
    }

    /// Where the network's weights live (`None` for the weight-free phash).
    pub fn device(&self) -> Option<Device> {
        match &self.network {
            Network::Clip(m) => Some(m.placement().0),
            Network::Dinov2(m) => Some(m.placement().0),
            Network::Phash => None,
        }
    }

    pub fn dim(&self) -> usize {
        match &self.network {
            Network::Clip(m) => m.dim(),
            Network::Dinov2(m) => m.dim(),
            Network::Phash => phash::BITS,
        }
    }
}

/// Whether `precision` runs on `device` (f32 runs everywhere), and why not.
pub fn check_precision(precision: Precision, device: &Device) -> Result<()> {
    let why = if precision == Precision::F32 {
        None
    } else if device.is_cpu() {
        precision.unsupported_here()
    } else {
        precision.unsupported_on_gpu(crate::device::describe(device))
    };
    why.map_or(Ok(()), |why| Err(Error::Unsupported(why)))
}

/// CLIP's text tower and tokenizer, for queries in words. Its vectors live in the same space
/// as the image tower's, so they are searched in the image model's table (`id` is that
/// table's model id). Loaded apart from the image tower: a text query needs no image weights
/// in memory, and image commands never load this.
pub struct TextModel {
    pub name: String,
    /// The id of the image model whose table the text vectors are searched in.
    pub id: String,
    tokenizer: ClipTokenizer,
    tower: ClipText,
}

impl TextModel {
    pub fn load(source: &WeightsSource, device: &Device) -> Result<Self> {
        let no_text = |model: String| Error::NoTextTower {
            model,
            with_text: registry()
                .iter()
                .filter(|m| m.family == Family::Clip)
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let (name, id, files, tokenizer) = match source {
            WeightsSource::Hub(spec) => {
                if spec.family != Family::Clip {
                    return Err(no_text(spec.name.clone()));
                }
                let files = weights::fetch(spec)?;
                let tokenizer = weights::fetch_tokenizer(spec)?;
                let id = identity(
                    &format!("{}@{}", spec.name, spec.revision),
                    Pooling::Projection,
                );
                (spec.name.clone(), id, files, tokenizer)
            }
            WeightsSource::Dir(dir) => {
                let files = ModelFiles::from_dir(dir)?;
                let name = dir_label(dir);
                let config = read_json(&files.config)?;
                if family_of(&config).ok() != Some(Family::Clip) {
                    return Err(no_text(name));
                }
                let tokenizer = files.tokenizer.clone().ok_or_else(|| Error::ModelFiles {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "{} is missing from the model directory (searching by words needs it)",
                        weights::TOKENIZER
                    ),
                })?;
                let id = identity(
                    &format!("{name}@{}", dir_fingerprint(&files)?),
                    Pooling::Projection,
                );
                (name, id, files, tokenizer)
            }
            WeightsSource::Random(spec) => {
                return Err(Error::Unsupported(format!(
                    "{} with random weights has no tokenizer: text queries need real weights",
                    spec.name
                )))
            }
            WeightsSource::Phash => return Err(no_text(PHASH.to_string())),
        };
        let config = read_json(&files.config)?;
        let bad = |reason: String| Error::ModelFiles {
            path: files.config.clone(),
            reason,
        };
        let cfg = ClipTextConfig::from_hf_json(&config).map_err(bad)?;
        let vb = mmap_safetensors(&files.weights, device)?;
        Ok(Self {
            name,
            id,
            tokenizer: ClipTokenizer::from_file(&tokenizer, cfg.max_position_embeddings)?,
            tower: ClipText::new(vb, &cfg)?,
        })
    }

    /// The token ids of `text` as the checkpoint's tokenizer gives them.
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// The L2-normalised embedding of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.tokens(text)?;
        normalized(&self.tower.forward(&ids)?)
    }

    /// The text tower itself (for the parity tests' negative controls).
    #[doc(hidden)]
    pub fn tower(&self) -> &ClipText {
        &self.tower
    }
}

/// Whether the model has a text tower to load: a CLIP checkpoint (registry or folder with a
/// `text_config`). Reads a folder's `config.json` only.
pub fn has_text_tower(source: &WeightsSource) -> bool {
    match source {
        WeightsSource::Hub(spec) => spec.family == Family::Clip,
        WeightsSource::Dir(dir) => read_json(&dir.join("config.json")).is_ok_and(|config| {
            family_of(&config).ok() == Some(Family::Clip) && config.get("text_config").is_some()
        }),
        WeightsSource::Random(_) | WeightsSource::Phash => false,
    }
}

/// The one row of `[1, dim]`, divided by its L2 norm (at least 1e-12, as
/// `torch.nn.functional.normalize`).
pub fn normalized(embedding: &Tensor) -> Result<Vec<f32>> {
    let mut rows = crate::embed::l2_normalize_rows(embedding)?;
    Ok(rows.swap_remove(0))
}

fn build(
    family: Family,
    config: &serde_json::Value,
    pooling: Pooling,
    vb: VarBuilder,
    config_path: &Path,
) -> Result<Network> {
    let bad = |reason: String| Error::ModelFiles {
        path: config_path.to_path_buf(),
        reason,
    };
    Ok(match family {
        Family::Clip => {
            let cfg = ClipConfig::from_hf_json(config).map_err(bad)?;
            cfg.check_supported().map_err(bad)?;
            Network::Clip(Clip::new(vb, &cfg)?)
        }
        Family::Phash => unreachable!("phash has no config.json"),
        Family::Dinov2 => {
            let cfg: Dinov2Config = serde_json::from_value(config.clone())
                .map_err(|e| bad(format!("bad DINOv2 config: {e}")))?;
            cfg.check_supported().map_err(bad)?;
            let pooling = match pooling {
                Pooling::Cls => Dinov2Pooling::Cls,
                _ => Dinov2Pooling::Mean,
            };
            Network::Dinov2(Dinov2::new(vb, &cfg, pooling)?)
        }
    })
}

fn pick_pooling(family: Family, wanted: Option<Pooling>, config_path: &Path) -> Result<Pooling> {
    match (family, wanted) {
        (Family::Clip, None | Some(Pooling::Projection)) => Ok(Pooling::Projection),
        (Family::Dinov2, None) => Ok(Pooling::Mean),
        (Family::Phash, None) => Ok(Pooling::Hash),
        (Family::Dinov2, Some(p @ (Pooling::Mean | Pooling::Cls))) => Ok(p),
        (family, Some(p)) => Err(Error::ModelFiles {
            path: config_path.to_path_buf(),
            reason: format!("pooling `{p:?}` does not apply to a {family:?} model").to_lowercase(),
        }),
    }
}

/// The family from `model_type` in `config.json`.
fn family_of(config: &serde_json::Value) -> std::result::Result<Family, String> {
    match config.get("model_type").and_then(|v| v.as_str()) {
        Some("clip" | "clip_vision_model") => Ok(Family::Clip),
        Some("dinov2") => Ok(Family::Dinov2),
        Some(other) => Err(format!(
            "model_type `{other}` is not supported (imgsim runs `clip` and `dinov2`)"
        )),
        None => Err("config.json has no `model_type`".into()),
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::ModelFiles {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
}

fn mmap_safetensors(path: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    // SAFETY: the file is mapped read-only; imgsim never writes weight files while running.
    unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device) }.map_err(|e| {
        Error::ModelFiles {
            path: path.to_path_buf(),
            reason: format!("cannot read the weights: {e}"),
        }
    })
}

fn identity(weights: &str, pooling: Pooling) -> String {
    format!("{weights}/{pooling:?}/v{PIPELINE_VERSION}").to_lowercase()
}

/// A model directory's content, cheaply: the config files' bytes, and the weights file's
/// size and modification time.
fn dir_fingerprint(files: &ModelFiles) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            path,
            cause: source,
        }
    };
    for path in [Some(&files.config), files.preprocessor.as_ref()]
        .into_iter()
        .flatten()
    {
        hasher.update(&std::fs::read(path).map_err(io(path))?);
    }
    let meta = std::fs::metadata(&files.weights).map_err(io(&files.weights))?;
    hasher.update(&meta.len().to_le_bytes());
    if let Ok(modified) = meta.modified() {
        hasher.update(format!("{modified:?}").as_bytes());
    }
    Ok(hasher.finalize().to_hex()[..16].to_string())
}

fn dir_label(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_file_parses_and_names_a_pinned_revision() {
        let names: Vec<_> = registry().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clip-vit-b32",
                "clip-vit-l14",
                "dinov2-small",
                "dinov2-base",
                "dinov2-large"
            ]
        );
        for m in registry() {
            assert!(!m.revision.is_empty() && m.revision != "main", "{}", m.name);
            assert_eq!(m.preprocess.crop, Some(224), "{}", m.name);
        }
    }

    #[test]
    fn aliases_pick_the_defaults() {
        assert_eq!(find("clip").unwrap().name, "clip-vit-b32");
        assert_eq!(find("DINOv2").unwrap().name, "dinov2-base");
        let err = find("resnet").unwrap_err().to_string();
        assert!(
            err.contains("unknown model 'resnet'") && err.contains("dinov2-large"),
            "{err}"
        );
    }

    #[test]
    fn random_weights_build_the_real_architecture() {
        let spec = find("dinov2-small").unwrap();
        let model = Model::load(&WeightsSource::Random(spec), None, &Device::Cpu).unwrap();
        assert_eq!(model.dim(), 384);
        assert!(model.random_weights);
    }

    #[test]
    fn pooling_must_fit_the_family() {
        assert!(pick_pooling(Family::Clip, Some(Pooling::Mean), Path::new("x")).is_err());
        assert_eq!(
            pick_pooling(Family::Dinov2, Some(Pooling::Cls), Path::new("x")).unwrap(),
            Pooling::Cls
        );
    }
}
