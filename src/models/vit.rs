//! The pre-norm transformer encoder block that CLIP's image tower and DINOv2 share, shaped for
//! speed on CPU: one fused QKV product, linear layers as single 2-D matrix products (candle's
//! `Linear` broadcasts the weight into a batch of small products), and the in-place kernels of
//! `kernels.rs` for activation and softmax. Weight names are each model's own (`BlockNames`).

use candle_core::{Module, Tensor};
use candle_nn::{Init, LayerNorm, VarBuilder};

use super::kernels;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU: DINOv2.
    Gelu,
    /// `x * sigmoid(1.702 x)`: CLIP.
    QuickGelu,
}

#[derive(Debug, Clone)]
pub struct BlockConfig {
    pub hidden: usize,
    pub heads: usize,
    pub mlp_hidden: usize,
    pub eps: f64,
    pub activation: Activation,
    pub layer_scale: bool,
    pub qkv_bias: bool,
}

/// Where a block's weights live in a checkpoint, relative to the block's prefix.
pub struct BlockNames {
    pub norm1: &'static str,
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub out: &'static str,
    pub norm2: &'static str,
    pub fc1: &'static str,
    pub fc2: &'static str,
    pub layer_scale1: &'static str,
    pub layer_scale2: &'static str,
}

/// `y = x W^T + b` for x of any rank, as one 2-D matrix product.
///
/// The weight is kept transposed (`W^T`, contiguous) so that gemm reads it as it lies. Laid out
/// as stored (`[out, in]`, used through a transposed view), gemm copies the whole weight into
/// its packed layout on every product, which at batch 1 cost as much as the product itself
/// (CLIP B/32: 50 rows per image; a text query: ~10). Kept transposed, CLIP ViT-B/32 went from
/// 4.4 to 11.8 images/s at batch 1 and from 15.5 to 20.4 at batch 16 (`imgsim bench embed
/// --random-weights`, release build, 2 cores).
pub struct Linear {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn load(vb: VarBuilder, inputs: usize, outputs: usize, bias: bool) -> Result<Self> {
        let (weight, bias) = weight_and_bias(&vb, inputs, outputs, bias)?;
        Self::new(&weight, bias)
    }

    /// From a weight as checkpoints store it, `[out, in]`.
    fn new(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims();
        let inputs = dims[dims.len() - 1];
        let rows = xs.elem_count() / inputs;
        let ys = xs.reshape((rows, inputs))?.matmul(&self.weight_t)?;
        let ys = match &self.bias {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = self.weight_t.dim(1)?;
        Ok(ys.reshape(out_dims)?)
    }
}

/// A linear layer's weight (`[outputs, inputs]`) and bias as the checkpoint stores them.
fn weight_and_bias(
    vb: &VarBuilder,
    inputs: usize,
    outputs: usize,
    bias: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let weight = vb.get_with_hints(
        (outputs, inputs),
        "weight",
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )?;
    let bias = if bias {
        Some(vb.get(outputs, "bias")?)
    } else {
        None
    };
    Ok((weight, bias))
}

pub struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    out: Linear,
    layer_scale1: Option<Tensor>,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    layer_scale2: Option<Tensor>,
    cfg: BlockConfig,
}

impl Block {
    pub fn load(vb: VarBuilder, cfg: &BlockConfig, names: &BlockNames) -> Result<Self> {
        let h = cfg.hidden;
        // Q, K and V become one [3h, h] product.
        let part = |name: &str| weight_and_bias(&vb.pp(name), h, h, cfg.qkv_bias);
        let (q, k, v) = (part(names.query)?, part(names.key)?, part(names.value)?);
        let qkv = Linear::new(
            &Tensor::cat(&[&q.0, &k.0, &v.0], 0)?,
            match (q.1, k.1, v.1) {
                (Some(qb), Some(kb), Some(vb)) => Some(Tensor::cat(&[qb, kb, vb], 0)?),
                _ => None,
            },
        )?;
        let scale = |name: &str| -> Result<Option<Tensor>> {
            Ok(if cfg.layer_scale {
                Some(vb.pp(name).get_with_hints(h, "lambda1", Init::Const(1.0))?)
            } else {
                None
            })
        };
        Ok(Self {
            norm1: candle_nn::layer_norm(h, cfg.eps, vb.pp(names.norm1))?,
            qkv,
            out: Linear::load(vb.pp(names.out), h, h, true)?,
            layer_scale1: scale(names.layer_scale1)?,
            norm2: candle_nn::layer_norm(h, cfg.eps, vb.pp(names.norm2))?,
            fc1: Linear::load(vb.pp(names.fc1), h, cfg.mlp_hidden, true)?,
            fc2: Linear::load(vb.pp(names.fc2), cfg.mlp_hidden, h, true)?,
            layer_scale2: scale(names.layer_scale2)?,
            cfg: cfg.clone(),
        })
    }

    /// Every token attends to every token (the image towers).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_masked(xs, false)
    }

    /// Token i attends to tokens 0..=i only (CLIP's text tower: a causal mask).
    pub fn forward_causal(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_masked(xs, true)
    }

    fn forward_masked(&self, xs: &Tensor, causal: bool) -> Result<Tensor> {
        let attn = self.attention(&self.norm1.forward(xs)?, causal)?;
        let xs = residual(xs, &attn, self.layer_scale1.as_ref())?;
        let hidden = self.fc1.forward(&self.norm2.forward(&xs)?)?;
        let hidden = match self.cfg.activation {
            Activation::Gelu => kernels::gelu_erf(&hidden)?,
            Activation::QuickGelu => kernels::quick_gelu(&hidden)?,
        };
        residual(&xs, &self.fc2.forward(&hidden)?, self.layer_scale2.as_ref())
    }

    fn attention(&self, xs: &Tensor, causal: bool) -> Result<Tensor> {
        let (b, n, c) = xs.dims3()?;
        let heads = self.cfg.heads;
        let d = c / heads;
        // [b, n, 3c] -> [3, b, heads, n, d] in one copy.
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((b, n, 3, heads, d))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let out = if causal {
            causal_attention(&q, &k, &v)?
        } else {
            kernels::attention(&q, &k, &v)?
        };
        self.out.forward(&out)
    }
}

/// `softmax(q k^T / sqrt(d) + mask) v` with `-inf` above the diagonal, for `q`, `k`, `v` of
/// shape `[batch, heads, tokens, d]`, returned as `[batch, tokens, heads * d]`. Text queries
/// are a few dozen tokens: candle's generic operations are fast enough here.
fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, heads, n, d) = q.dims4()?;
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (n, n), q.device())?;
    let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?.broadcast_add(&mask)?;
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(weights
        .matmul(v)?
        .transpose(1, 2)?
        .reshape((b, n, heads * d))?)
}

fn residual(xs: &Tensor, branch: &Tensor, scale: Option<&Tensor>) -> Result<Tensor> {
    Ok(match scale {
        Some(s) => (xs + branch.broadcast_mul(s)?)?,
        None => (xs + branch)?,
    })
}

/// The fused attention kernel, exposed for `examples/profile_ops.rs`.
#[doc(hidden)]
pub fn attention_for_profiling(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    Ok(kernels::attention(q, k, v)?)
}
