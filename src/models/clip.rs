//! CLIP's image tower: candle's `ClipVisionTransformer` plus `visual_projection`, which is
//! `CLIPModel.get_image_features`. The text tower is never loaded.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use serde::Deserialize;

use crate::error::Result;

/// The fields of CLIP's `vision_config` that shape the network. Defaults are transformers'.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ClipConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub projection_dim: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_channels() -> usize {
    3
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

impl ClipConfig {
    /// Reads a CLIP `config.json`: a full `CLIPModel` (`vision_config` inside) or a
    /// `CLIPVisionModelWithProjection` (vision fields at the top).
    pub fn from_hf_json(v: &serde_json::Value) -> std::result::Result<Self, String> {
        let mut vision = v.get("vision_config").cloned().unwrap_or_else(|| v.clone());
        // In a full CLIPModel config the projection size is the top-level `projection_dim`;
        // `vision_config.projection_dim` there is an unused default.
        if let (Some(_), Some(p)) = (v.get("vision_config"), v.get("projection_dim")) {
            vision["projection_dim"] = p.clone();
        }
        serde_json::from_value(vision).map_err(|e| format!("bad CLIP vision config: {e}"))
    }

    /// candle's tower hard-codes these; refuse configs it would silently get wrong.
    pub fn check_supported(&self) -> std::result::Result<(), String> {
        if self.hidden_act != "quick_gelu" {
            return Err(format!(
                "activation `{}` is not supported (only `quick_gelu`)",
                self.hidden_act
            ));
        }
        if (self.layer_norm_eps - 1e-5).abs() > 1e-12 {
            return Err(format!(
                "layer_norm_eps {} is not supported (only 1e-5)",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    fn candle(&self) -> ClipVisionConfig {
        ClipVisionConfig {
            embed_dim: self.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            projection_dim: self.projection_dim,
            num_channels: self.num_channels,
            image_size: self.image_size,
            patch_size: self.patch_size,
        }
    }
}

pub struct Clip {
    vision: ClipVisionTransformer,
    projection: Linear,
    dim: usize,
}

impl Clip {
    /// `vb` is rooted at the checkpoint's top (names `vision_model.*`, `visual_projection.*`).
    /// `require_all` refuses a checkpoint that lacks the class embedding, which candle would
    /// otherwise replace with random values.
    pub fn new(vb: VarBuilder, cfg: &ClipConfig, require_all: bool) -> Result<Self> {
        let class_embedding = "vision_model.embeddings.class_embedding";
        if require_all && !vb.contains_tensor(class_embedding) {
            return Err(candle_core::Error::CannotFindTensor {
                path: class_embedding.to_string(),
            }
            .into());
        }
        let vision = ClipVisionTransformer::new(vb.pp("vision_model"), &cfg.candle())?;
        let projection = candle_nn::linear_no_bias(
            cfg.hidden_size,
            cfg.projection_dim,
            vb.pp("visual_projection"),
        )?;
        Ok(Self {
            vision,
            projection,
            dim: cfg.projection_dim,
        })
    }

    /// The embedding (not yet L2-normalised), `[B, projection_dim]`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let pooled = self.vision.forward(pixel_values)?;
        Ok(self.projection.forward(&pooled)?)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
}
