//! DINOv2 (`Dinov2Model` of transformers), loading the Hugging Face weight names.
//!
//! Candle's own `dinov2` module expects Meta's original checkpoints and differs from the
//! reference in several ways (see ARCHITECTURE.md); this one follows `modeling_dinov2.py`:
//! exact GELU, layer norm eps from the config, layer scale, and position embeddings
//! interpolated bicubically (as `torch.nn.functional.interpolate`) to the input's patch grid.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, LayerNorm, VarBuilder};
use serde::Deserialize;

use super::packed::Precision;
use super::vit::{layer_norm_to_dtype, Activation, Block, BlockConfig, BlockNames, PatchEmbed};
use crate::error::Result;

/// The fields of a DINOv2 `config.json` that shape the network. Defaults are transformers'.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Dinov2Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
}

fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_image_size() -> usize {
    224
}
fn default_patch_size() -> usize {
    16
}
fn default_channels() -> usize {
    3
}
fn default_act() -> String {
    "gelu".into()
}
fn default_true() -> bool {
    true
}

impl Dinov2Config {
    /// What this implementation does not cover, said before any weight is read.
    pub fn check_supported(&self) -> std::result::Result<(), String> {
        if self.use_swiglu_ffn {
            return Err("SwiGLU feed-forward (DINOv2 giant) is not supported".into());
        }
        if self.hidden_act != "gelu" {
            return Err(format!(
                "activation `{}` is not supported (only `gelu`)",
                self.hidden_act
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err("hidden_size is not a multiple of num_attention_heads".into());
        }
        Ok(())
    }
}

/// Which token summary becomes the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dinov2Pooling {
    /// Mean of `last_hidden_state` over all tokens, CLS included (the published recipe).
    Mean,
    /// `pooler_output`: the final-normed CLS token.
    Cls,
}

const NAMES: BlockNames = BlockNames {
    norm1: "norm1",
    query: "attention.attention.query",
    key: "attention.attention.key",
    value: "attention.attention.value",
    out: "attention.output.dense",
    norm2: "norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
    layer_scale1: "layer_scale1",
    layer_scale2: "layer_scale2",
};

pub struct Dinov2 {
    patch_embed: PatchEmbed,
    cls_token: Tensor,
    /// `[1, 1 + g*g, hidden]` for the checkpoint's own `g x g` patch grid.
    position_embeddings: Tensor,
    layers: Vec<Block>,
    layernorm: LayerNorm,
    cfg: Dinov2Config,
    pooling: Dinov2Pooling,
    /// Position embeddings per input patch grid, interpolated once.
    positions_by_grid: Mutex<HashMap<(usize, usize), Tensor>>,
}

impl Clone for Dinov2 {
    fn clone(&self) -> Self {
        Self {
            patch_embed: self.patch_embed.clone(),
            cls_token: self.cls_token.clone(),
            position_embeddings: self.position_embeddings.clone(),
            layers: self.layers.clone(),
            layernorm: self.layernorm.clone(),
            cfg: self.cfg.clone(),
            pooling: self.pooling,
            positions_by_grid: Mutex::new(
                self.positions_by_grid
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
        }
    }
}

impl Dinov2 {
    pub fn new(vb: VarBuilder, cfg: &Dinov2Config, pooling: Dinov2Pooling) -> Result<Self> {
        let h = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let grid = cfg.image_size / cfg.patch_size;
        let small_random = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let projection = emb.pp("patch_embeddings").pp("projection");
        let fan_in = cfg.num_channels * cfg.patch_size * cfg.patch_size;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let patch_embed = PatchEmbed::new(
            &projection.get_with_hints(
                (h, cfg.num_channels, cfg.patch_size, cfg.patch_size),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?,
            Some(projection.get_with_hints(
                h,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?),
        )?;
        let cls_token = emb.get_with_hints((1, 1, h), "cls_token", small_random)?;
        let position_embeddings =
            emb.get_with_hints((1, 1 + grid * grid, h), "position_embeddings", small_random)?;
        let block = BlockConfig {
            hidden: h,
            heads: cfg.num_attention_heads,
            mlp_hidden: (h as f64 * cfg.mlp_ratio) as usize,
            eps: cfg.layer_norm_eps,
            activation: Activation::Gelu,
            layer_scale: true,
            qkv_bias: cfg.qkv_bias,
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(vb.pp("encoder").pp("layer").pp(i), &block, &NAMES))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed,
            cls_token,
            position_embeddings,
            layers,
            layernorm: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("layernorm"))?,
            cfg: cfg.clone(),
            pooling,
            positions_by_grid: Mutex::new(HashMap::new()),
        })
    }

    /// The position embeddings for a `rows x cols` patch grid, computed once per grid.
    fn positions(&self, rows: usize, cols: usize) -> Result<Tensor> {
        let grid = self.cfg.image_size / self.cfg.patch_size;
        if rows == grid && cols == grid {
            return Ok(self.position_embeddings.clone());
        }
        let mut cache = self.positions_by_grid.lock().expect("cache lock");
        if let Some(t) = cache.get(&(rows, cols)) {
            return Ok(t.clone());
        }
        let dim = self.cfg.hidden_size;
        let table = self.position_embeddings.to_dtype(DType::F32)?.squeeze(0)?;
        let cls = table.narrow(0, 0, 1)?;
        let patches: Vec<f32> = table.narrow(0, 1, grid * grid)?.flatten_all()?.to_vec1()?;
        let resized = bicubic_resize_channels_last(&patches, grid, grid, dim, rows, cols);
        let resized = Tensor::from_vec(resized, (rows * cols, dim), table.device())?;
        let all = Tensor::cat(&[cls, resized], 0)?
            .unsqueeze(0)?
            .to_dtype(self.position_embeddings.dtype())?;
        cache.insert((rows, cols), all.clone());
        Ok(all)
    }

    /// `last_hidden_state` for a batch `[B, C, H, W]` of pixel values.
    pub fn last_hidden_state(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (b, _, height, width) = pixel_values.dims4()?;
        let (rows, cols) = (height / self.cfg.patch_size, width / self.cfg.patch_size);
        let patches = self.patch_embed.forward(pixel_values)?;
        let cls = self.cls_token.broadcast_as((b, 1, self.cfg.hidden_size))?;
        let mut xs =
            Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.positions(rows, cols)?)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        Ok(self.layernorm.forward(&xs)?)
    }

    /// The embedding (not yet L2-normalised), `[B, hidden]`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let hidden = self.last_hidden_state(pixel_values)?;
        Ok(match self.pooling {
            // Summed in f32 whatever the network's type (257 tokens in half precision would
            // lose digits).
            Dinov2Pooling::Mean => hidden.to_dtype(DType::F32)?.mean(1)?,
            Dinov2Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        })
    }

    /// Runs the encoder's linear layers in `precision` (the patch embedding, norms and
    /// the final projection stay f32: a small share of the work).
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        for layer in &mut self.layers {
            layer.set_precision(precision)?;
        }
        Ok(())
    }

    /// The model with every tensor in `dtype` (a GPU's `--precision f16|bf16`).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            patch_embed: self.patch_embed.to_dtype(dtype)?,
            cls_token: self.cls_token.to_dtype(dtype)?,
            position_embeddings: self.position_embeddings.to_dtype(dtype)?,
            layers: self
                .layers
                .iter()
                .map(|l| l.to_dtype(dtype))
                .collect::<Result<_>>()?,
            layernorm: layer_norm_to_dtype(&self.layernorm, dtype)?,
            cfg: self.cfg.clone(),
            pooling: self.pooling,
            positions_by_grid: Mutex::new(HashMap::new()),
        })
    }

    /// The device and type of the weights (the input is brought to both).
    pub fn placement(&self) -> (Device, DType) {
        (self.cls_token.device().clone(), self.cls_token.dtype())
    }

    pub fn dim(&self) -> usize {
        self.cfg.hidden_size
    }
}

/// `torch.nn.functional.interpolate(mode="bicubic", align_corners=False)` without antialiasing,
/// on a channels-last grid: Keys cubic with a = -0.75, source index `scale * (i + 0.5) - 0.5`,
/// border samples clamped, width pass inside the height pass as PyTorch does, in f32.
pub fn bicubic_resize_channels_last(
    src: &[f32],
    in_rows: usize,
    in_cols: usize,
    channels: usize,
    out_rows: usize,
    out_cols: usize,
) -> Vec<f32> {
    let taps = |in_size: usize, out_size: usize, i: usize| -> ([usize; 4], [f32; 4]) {
        let scale = in_size as f32 / out_size as f32;
        let real = scale * (i as f32 + 0.5) - 0.5;
        let index = (real.floor() as i64).min(in_size as i64 - 1);
        let t = (real - index as f32).clamp(0.0, 1.0);
        let clamp = |j: i64| j.clamp(0, in_size as i64 - 1) as usize;
        (
            [
                clamp(index - 1),
                clamp(index),
                clamp(index + 1),
                clamp(index + 2),
            ],
            cubic_coefficients(t),
        )
    };
    let mut out = vec![0f32; out_rows * out_cols * channels];
    for oy in 0..out_rows {
        let (ys, wy) = taps(in_rows, out_rows, oy);
        for ox in 0..out_cols {
            let (xs, wx) = taps(in_cols, out_cols, ox);
            let dst = &mut out[(oy * out_cols + ox) * channels..][..channels];
            for (c, value) in dst.iter_mut().enumerate() {
                let row = |y: usize| -> f32 {
                    (0..4)
                        .map(|k| src[(y * in_cols + xs[k]) * channels + c] * wx[k])
                        .sum()
                };
                *value = (0..4).map(|k| row(ys[k]) * wy[k]).sum();
            }
        }
    }
    out
}

/// PyTorch's `get_cubic_upsample_coefficients` (A = -0.75).
fn cubic_coefficients(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_weights_sum_to_one() {
        for t in [0.0, 0.25, 0.5, 0.9] {
            let w = cubic_coefficients(t);
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert_eq!(cubic_coefficients(0.0), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn same_size_resize_is_the_identity() {
        let src: Vec<f32> = (0..3 * 3 * 2).map(|v| v as f32).collect();
        let out = bicubic_resize_channels_last(&src, 3, 3, 2, 3, 3);
        for (a, b) in src.iter().zip(&out) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn constant_grid_stays_constant_when_downsampled() {
        let src = vec![0.5f32; 37 * 37 * 4];
        let out = bicubic_resize_channels_last(&src, 37, 37, 4, 16, 16);
        assert!(out.iter().all(|v| (v - 0.5).abs() < 1e-5));
    }
}
