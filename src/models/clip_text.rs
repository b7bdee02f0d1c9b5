//! CLIP's text tower plus `text_projection`: `CLIPModel.get_text_features`, on the Hugging Face
//! weight names (`text_model.*`), and the tokenizer that feeds it (the checkpoint's own
//! `tokenizer.json`, read by the `tokenizers` crate). Loaded only when a query has words:
//! image-only commands never read these weights.
//!
//! What `transformers` does, and so what this does: token plus position embeddings, pre-norm
//! blocks with a causal mask and quick GELU, the final layer norm, then the hidden state at one
//! position, projected. The position is where the sequence ends, chosen as transformers
//! chooses it for the checkpoint's config (`pool_position`).

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use super::clip::NAMES;
use super::vit::{Activation, Block, BlockConfig, Linear};
use crate::error::{Error, Result};

/// The fields of CLIP's `text_config` that shape the network. Defaults are transformers'.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextConfig {
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// 2 in OpenAI's checkpoints (a legacy value): transformers then pools at the highest id.
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// The top-level `projection_dim` of the `CLIPModel` config.
    #[serde(skip)]
    pub projection_dim: usize,
}

fn default_vocab() -> usize {
    49408
}
fn default_positions() -> usize {
    77
}
fn default_eos() -> u32 {
    49407
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

impl ClipTextConfig {
    /// Reads the `text_config` of a full `CLIPModel` `config.json`.
    pub fn from_hf_json(v: &serde_json::Value) -> std::result::Result<Self, String> {
        let text = v
            .get("text_config")
            .ok_or("config.json has no `text_config` (an image-only CLIP checkpoint)")?;
        let mut cfg: Self = serde_json::from_value(text.clone())
            .map_err(|e| format!("bad CLIP text config: {e}"))?;
        cfg.projection_dim = v
            .get("projection_dim")
            .and_then(|p| p.as_u64())
            .unwrap_or(512) as usize;
        if cfg.hidden_act != "quick_gelu" {
            return Err(format!(
                "text activation `{}` is not supported (only `quick_gelu`)",
                cfg.hidden_act
            ));
        }
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err("text hidden_size is not a multiple of num_attention_heads".into());
        }
        Ok(cfg)
    }
}

/// Where transformers reads the pooled output: with the legacy `eos_token_id` 2 of OpenAI's
/// configs, the first position of the highest id (`input_ids.argmax(-1)`: the end token, the
/// highest id of CLIP's vocabulary); otherwise the first position of `eos_token_id` (0 if
/// there is none, as `argmax` of an all-false mask gives).
pub fn pool_position(ids: &[u32], eos_token_id: u32) -> usize {
    if eos_token_id == 2 {
        let max = ids.iter().copied().max().unwrap_or(0);
        ids.iter().position(|&id| id == max).unwrap_or(0)
    } else {
        ids.iter().position(|&id| id == eos_token_id).unwrap_or(0)
    }
}

pub struct ClipText {
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<Block>,
    final_layer_norm: LayerNorm,
    projection: Linear,
    eos_token_id: u32,
    device: Device,
}

/// How a forward pass deviates from the reference: for the negative controls of the parity
/// tests, which must fail.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Deviation {
    /// Every token sees every token.
    pub no_causal_mask: bool,
    /// Pool at the last token before the end token instead.
    pub pool_before_end: bool,
}

impl ClipText {
    /// `vb` is rooted at the checkpoint's top (names `text_model.*`, `text_projection.*`).
    pub fn new(vb: VarBuilder, cfg: &ClipTextConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let text = vb.pp("text_model");
        let emb = text.pp("embeddings");
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
            .map(|i| Block::load(text.pp("encoder").pp("layers").pp(i), &block, &NAMES))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding: candle_nn::embedding(cfg.vocab_size, h, emb.pp("token_embedding"))?,
            position_embedding: emb
                .pp("position_embedding")
                .get((cfg.max_position_embeddings, h), "weight")?,
            layers,
            final_layer_norm: candle_nn::layer_norm(
                h,
                cfg.layer_norm_eps,
                text.pp("final_layer_norm"),
            )?,
            projection: Linear::load(vb.pp("text_projection"), h, cfg.projection_dim, false)?,
            eos_token_id: cfg.eos_token_id,
            device: vb.device().clone(),
        })
    }

    /// The embedding (not yet L2-normalised) of one token sequence, `[1, projection_dim]`.
    /// No padding is needed: with the causal mask, tokens after the pooled one change nothing.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        self.forward_deviating(ids, Deviation::default())
    }

    #[doc(hidden)]
    pub fn forward_deviating(&self, ids: &[u32], deviation: Deviation) -> Result<Tensor> {
        let positions = self.position_embedding.dim(0)?;
        if ids.is_empty() || ids.len() > positions {
            return Err(Error::Unsupported(format!(
                "a text of {} tokens (the text tower takes 1 to {positions})",
                ids.len()
            )));
        }
        let n = ids.len();
        let tokens = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let mut xs = self
            .token_embedding
            .forward(&tokens)?
            .broadcast_add(&self.position_embedding.narrow(0, 0, n)?)?;
        for layer in &self.layers {
            xs = if deviation.no_causal_mask {
                layer.forward(&xs)?
            } else {
                layer.forward_causal(&xs)?
            };
        }
        let xs = self.final_layer_norm.forward(&xs)?;
        let mut at = pool_position(ids, self.eos_token_id);
        if deviation.pool_before_end {
            at = at.saturating_sub(1);
        }
        self.projection.forward(&xs.narrow(1, at, 1)?.squeeze(1)?)
    }
}

/// The checkpoint's tokenizer: `tokenizer.json` as transformers' `CLIPTokenizer(Fast)` uses
/// it (lower-casing, whitespace and Unicode clean-up, byte-level BPE), with the start and end
/// tokens added and truncation to the text tower's positions keeping the end token.
pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
}

impl ClipTokenizer {
    pub fn from_file(path: &Path, context: usize) -> Result<Self> {
        let bad = |reason: String| Error::ModelFiles {
            path: path.to_path_buf(),
            reason,
        };
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| bad(format!("cannot read the tokenizer: {e}")))?;
        inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: context,
                ..Default::default()
            }))
            .map_err(|e| bad(format!("cannot set truncation: {e}")))?;
        inner.with_padding(None);
        Ok(Self { inner })
    }

    /// The token ids of `text`, start and end tokens included, at most `context` of them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, true).map_err(|e| Error::Text {
            text: text.to_string(),
            reason: format!("cannot tokenize: {e}"),
        })?;
        Ok(encoding.get_ids().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_configs_pool_at_the_highest_id_others_at_the_first_end_token() {
        // OpenAI's eos_token_id 2: the first position of the largest id.
        assert_eq!(pool_position(&[49406, 320, 49407, 49407], 2), 2);
        assert_eq!(pool_position(&[49406, 2, 320, 49407], 2), 3);
        // A fixed config: the first end token, even when a higher id comes before it.
        assert_eq!(pool_position(&[49406, 320, 49407, 49407], 49407), 2);
        assert_eq!(pool_position(&[5, 9, 7, 9], 7), 2);
        // No end token: position 0, as transformers' argmax of an all-false mask.
        assert_eq!(pool_position(&[49406, 320], 49407), 0);
    }

    #[test]
    fn a_text_config_is_read_with_the_top_level_projection() {
        let v = serde_json::json!({
            "projection_dim": 32,
            "text_config": {"hidden_size": 16, "intermediate_size": 32,
                            "num_hidden_layers": 1, "num_attention_heads": 2}
        });
        let cfg = ClipTextConfig::from_hf_json(&v).unwrap();
        assert_eq!((cfg.projection_dim, cfg.vocab_size), (32, 49408));
        assert_eq!((cfg.max_position_embeddings, cfg.eos_token_id), (77, 49407));
        let mut gelu = v.clone();
        gelu["text_config"]["hidden_act"] = "gelu".into();
        assert!(ClipTextConfig::from_hf_json(&gelu).is_err());
        assert!(ClipTextConfig::from_hf_json(&serde_json::json!({"vision_config": {}})).is_err());
    }
}
