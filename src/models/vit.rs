//! The pre-norm transformer encoder block that CLIP's image tower and DINOv2 share, shaped for
//! speed on CPU: one fused QKV product, linear layers as single 2-D matrix products (candle's
//! `Linear` broadcasts the weight into a batch of small products), and the in-place kernels of
//! `kernels.rs` for activation and softmax. Weight names are each model's own (`BlockNames`).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Shape, Tensor};
use candle_nn::{Init, LayerNorm, VarBuilder};

use super::kernels;
use super::packed::{self, Packed, Precision};
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
///
/// With `--precision bf16|int8` the weight is converted once into the packed form of
/// `packed.rs` and the f32 copy is dropped (`Linear::set_precision`).
#[derive(Clone)]
pub struct Linear {
    weights: Weights,
}

#[derive(Clone)]
enum Weights {
    Dense {
        weight_t: Tensor,
        bias: Option<Tensor>,
    },
    Packed(Packed),
}

impl Linear {
    pub fn load(vb: VarBuilder, inputs: usize, outputs: usize, bias: bool) -> Result<Self> {
        let (weight, bias) = weight_and_bias(&vb, inputs, outputs, bias)?;
        Self::new(&weight, bias)
    }

    /// From a weight as checkpoints store it, `[out, in]`.
    fn new(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self {
            weights: Weights::Dense {
                weight_t: weight.t()?.contiguous()?,
                bias,
            },
        })
    }

    /// Converts the weight to `precision` (CPU only; the caller has checked that this CPU
    /// runs it). f32 leaves the layer as it is.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        let Weights::Dense { weight_t, bias } = &self.weights else {
            return Ok(());
        };
        let (k, n) = weight_t.dims2()?;
        let w: Vec<f32> = weight_t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let b: Option<Vec<f32>> = match bias {
            Some(b) => Some(b.to_dtype(DType::F32)?.to_vec1()?),
            None => None,
        };
        if let Some(packed) = Packed::new(precision, &w, k, n, b.as_deref()) {
            self.weights = Weights::Packed(packed);
        }
        Ok(())
    }

    /// The layer with its weight and bias in `dtype` (on a GPU, `--precision f16|bf16`: every
    /// tensor of the network in that type, the products in it). Packed layers are CPU-only and
    /// stay as they are.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(match &self.weights {
            Weights::Dense { weight_t, bias } => Self {
                weights: Weights::Dense {
                    weight_t: weight_t.to_dtype(dtype)?,
                    bias: bias.as_ref().map(|b| b.to_dtype(dtype)).transpose()?,
                },
            },
            Weights::Packed(_) => self.clone(),
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_activated(xs, None)
    }

    /// `activation(x W^T + b)`: packed layers apply it to each tile as they write it.
    pub fn forward_activated(&self, xs: &Tensor, activation: Option<Activation>) -> Result<Tensor> {
        let dims = xs.dims();
        let inputs = dims[dims.len() - 1];
        let rows = xs.elem_count() / inputs;
        let (ys, outputs) = match &self.weights {
            Weights::Dense { weight_t, bias } => {
                let ys = xs.reshape((rows, inputs))?.matmul(weight_t)?;
                let ys = match bias {
                    Some(b) => ys.broadcast_add(b)?,
                    None => ys,
                };
                let ys = match activation {
                    Some(Activation::Gelu) => kernels::gelu_erf(&ys)?,
                    Some(Activation::QuickGelu) => kernels::quick_gelu(&ys)?,
                    None => ys,
                };
                (ys, weight_t.dim(1)?)
            }
            Weights::Packed(packed) => (
                xs.contiguous()?
                    .reshape((rows, inputs))?
                    .apply_op1_no_bwd(&PackedProduct(packed, activation))?,
                packed.outputs(),
            ),
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = outputs;
        Ok(ys.reshape(out_dims)?)
    }
}

/// A packed layer's product as a candle operation on a `[rows, inputs]` f32 CPU tensor.
struct PackedProduct<'a>(&'a Packed, Option<Activation>);

impl CustomOp1 for PackedProduct<'_> {
    fn name(&self) -> &'static str {
        "imgsim-packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("a packed linear layer takes f32 input")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("a packed linear layer takes a contiguous input")
        };
        let (rows, inputs) = layout.shape().dims2()?;
        if inputs != self.0.inputs() {
            candle_core::bail!("input width {inputs}, layer takes {}", self.0.inputs())
        }
        let outputs = self.0.outputs();
        let mut out = vec![0f32; rows * outputs];
        let activation: Option<packed::Activation> = match self.1 {
            Some(Activation::Gelu) => Some(kernels::gelu_erf_slice),
            Some(Activation::QuickGelu) => Some(kernels::quick_gelu_slice),
            None => None,
        };
        self.0
            .forward(&data[start..end], rows, &mut out, activation);
        Ok((CpuStorage::F32(out), Shape::from((rows, outputs))))
    }
}

/// The patch embedding: a convolution whose stride equals its kernel, computed as what it is,
/// one linear layer over the flattened patches. candle's CPU convolution (im2col, then a
/// product that repacks the weight on every call) took 6.3 ms per image for CLIP B/32's
/// 115 M multiply-adds at batch 1 (`cargo run --release --example profile_block`); a fifth of
/// the whole forward pass in bf16. Stays f32 in every precision: the first layer reads pixels.
#[derive(Clone)]
pub struct PatchEmbed {
    proj: Linear,
    patch: usize,
    channels: usize,
}

impl PatchEmbed {
    /// From the convolution's weight `[hidden, channels, patch, patch]` (as checkpoints store
    /// it) and bias.
    pub fn new(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (hidden, channels, patch, _) = weight.dims4()?;
        Ok(Self {
            proj: Linear::new(&weight.reshape((hidden, channels * patch * patch))?, bias)?,
            patch,
            channels,
        })
    }

    /// The same layer in `dtype` (see [`Linear::to_dtype`]).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            proj: self.proj.to_dtype(dtype)?,
            ..self.clone()
        })
    }

    /// `[B, C, H, W]` pixels to `[B, (H / P) * (W / P), hidden]` tokens, row by row of patches
    /// (the order of the convolution's flattened output); pixels past the last whole patch are
    /// ignored, as the convolution ignores them.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (b, c, height, width) = pixel_values.dims4()?;
        let p = self.patch;
        let (rows, cols) = (height / p, width / p);
        let pixels = if rows * p != height || cols * p != width {
            pixel_values
                .narrow(2, 0, rows * p)?
                .narrow(3, 0, cols * p)?
        } else {
            pixel_values.clone()
        };
        let patches = pixels
            .reshape((b, c, rows, p, cols, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b, rows * cols, self.channels * p * p))?;
        self.proj.forward(&patches)
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

#[derive(Clone)]
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

    /// Converts the block's linear layers to `precision` (see `Linear::set_precision`).
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        for layer in [&mut self.qkv, &mut self.out, &mut self.fc1, &mut self.fc2] {
            layer.set_precision(precision)?;
        }
        Ok(())
    }

    /// The block with every tensor in `dtype` (see [`Linear::to_dtype`]).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let scale = |s: &Option<Tensor>| s.as_ref().map(|t| t.to_dtype(dtype)).transpose();
        Ok(Self {
            norm1: layer_norm_to_dtype(&self.norm1, dtype)?,
            qkv: self.qkv.to_dtype(dtype)?,
            out: self.out.to_dtype(dtype)?,
            layer_scale1: scale(&self.layer_scale1)?,
            norm2: layer_norm_to_dtype(&self.norm2, dtype)?,
            fc1: self.fc1.to_dtype(dtype)?,
            fc2: self.fc2.to_dtype(dtype)?,
            layer_scale2: scale(&self.layer_scale2)?,
            cfg: self.cfg.clone(),
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
        let hidden = self
            .fc1
            .forward_activated(&self.norm2.forward(&xs)?, Some(self.cfg.activation))?;
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
    let mask = Tensor::from_vec(mask, (n, n), q.device())?.to_dtype(q.dtype())?;
    let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?.broadcast_add(&mask)?;
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(weights
        .matmul(v)?
        .transpose(1, 2)?
        .reshape((b, n, heads * d))?)
}

/// A layer norm with its weight and bias in `dtype` (candle's kernel normalises in f32 inside).
pub fn layer_norm_to_dtype(norm: &LayerNorm, dtype: DType) -> Result<LayerNorm> {
    let weight = norm.weight().to_dtype(dtype)?;
    Ok(match norm.bias() {
        Some(bias) => LayerNorm::new(weight, bias.to_dtype(dtype)?, norm.eps()),
        None => LayerNorm::new_no_bias(weight, norm.eps()),
    })
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
