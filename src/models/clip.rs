//! CLIP's image tower plus `visual_projection`: `CLIPModel.get_image_features`, on the
//! Hugging Face weight names (`vision_model.*`). The text tower is never loaded. The encoder
//! blocks are the shared, CPU-tuned ones of `vit.rs` (candle's own CLIP tower runs them through
//! slower generic operations).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, LayerNorm, VarBuilder};
use serde::Deserialize;

use super::packed::Precision;
use super::vit::{
    layer_norm_to_dtype, Activation, Block, BlockConfig, BlockNames, Linear, PatchEmbed,
};
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

    /// Refuse what this implementation would silently get wrong.
    pub fn check_supported(&self) -> std::result::Result<(), String> {
        if self.hidden_act != "quick_gelu" {
            return Err(format!(
                "activation `{}` is not supported (only `quick_gelu`)",
                self.hidden_act
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err("hidden_size is not a multiple of num_attention_heads".into());
        }
        Ok(())
    }
}

/// Block weight names, the same in both CLIP towers.
/// The weight names of CLIP's encoder blocks (also used by `examples/profile_block.rs`).
pub const NAMES: BlockNames = BlockNames {
    norm1: "layer_norm1",
    query: "self_attn.q_proj",
    key: "self_attn.k_proj",
    value: "self_attn.v_proj",
    out: "self_attn.out_proj",
    norm2: "layer_norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
    layer_scale1: "",
    layer_scale2: "",
};

#[derive(Clone)]
pub struct Clip {
    patch_embed: PatchEmbed,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_layernorm: LayerNorm,
    layers: Vec<Block>,
    post_layernorm: LayerNorm,
    projection: Linear,
    dim: usize,
}

impl Clip {
    /// `vb` is rooted at the checkpoint's top (names `vision_model.*`, `visual_projection.*`).
    pub fn new(vb: VarBuilder, cfg: &ClipConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let vision = vb.pp("vision_model");
        let emb = vision.pp("embeddings");
        let positions = (cfg.image_size / cfg.patch_size).pow(2) + 1;
        let random = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let patch_embed = PatchEmbed::new(
            &emb.pp("patch_embedding").get_with_hints(
                (h, cfg.num_channels, cfg.patch_size, cfg.patch_size),
                "weight",
                random,
            )?,
            None,
        )?;
        let block = BlockConfig {
            hidden: h,
            heads: cfg.num_attention_heads,
            mlp_hidden: cfg.intermediate_size,
            eps: cfg.layer_norm_eps,
            activation: Activation::QuickGelu,
            layer_scale: false,
            qkv_bias: true,
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(vision.pp("encoder").pp("layers").pp(i), &block, &NAMES))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed,
            class_embedding: emb.get_with_hints(h, "class_embedding", random)?,
            position_embedding: emb.pp("position_embedding").get_with_hints(
                (positions, h),
                "weight",
                random,
            )?,
            pre_layernorm: candle_nn::layer_norm(h, cfg.layer_norm_eps, vision.pp("pre_layrnorm"))?,
            layers,
            post_layernorm: candle_nn::layer_norm(
                h,
                cfg.layer_norm_eps,
                vision.pp("post_layernorm"),
            )?,
            projection: Linear::load(vb.pp("visual_projection"), h, cfg.projection_dim, false)?,
            dim: cfg.projection_dim,
        })
    }

    /// The embedding (not yet L2-normalised), `[B, projection_dim]`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let b = pixel_values.dim(0)?;
        let h = self.class_embedding.dim(0)?;
        let patches = self.patch_embed.forward(pixel_values)?;
        let class = self
            .class_embedding
            .reshape((1, 1, h))?
            .broadcast_as((b, 1, h))?;
        let mut xs =
            Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        xs = self.pre_layernorm.forward(&xs)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        let cls = self
            .post_layernorm
            .forward(&xs.narrow(1, 0, 1)?.squeeze(1)?)?;
        self.projection.forward(&cls)
    }

    /// Runs the encoder's linear layers in `precision` (the patch embedding, norms and
    /// the final projection stay f32: a small share of the work).
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        for layer in &mut self.layers {
            layer.set_precision(precision)?;
        }
        Ok(())
    }

    /// The tower with every tensor in `dtype` (a GPU's `--precision f16|bf16`).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            patch_embed: self.patch_embed.to_dtype(dtype)?,
            class_embedding: self.class_embedding.to_dtype(dtype)?,
            position_embedding: self.position_embedding.to_dtype(dtype)?,
            pre_layernorm: layer_norm_to_dtype(&self.pre_layernorm, dtype)?,
            layers: self
                .layers
                .iter()
                .map(|l| l.to_dtype(dtype))
                .collect::<Result<_>>()?,
            post_layernorm: layer_norm_to_dtype(&self.post_layernorm, dtype)?,
            projection: self.projection.to_dtype(dtype)?,
            dim: self.dim,
        })
    }

    /// The device and type of the weights (the input is brought to both).
    pub fn placement(&self) -> (Device, DType) {
        (
            self.class_embedding.device().clone(),
            self.class_embedding.dtype(),
        )
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
}
