//! CPU kernels for the parts of a vision transformer that candle's generic CPU path makes slow:
//! GELU (exact), quick GELU and softmax run through scalar `erf`/`exp` one element at a time
//! there, and cost as much as the matrix products. These run in place, on both cores, in code
//! that the compiler vectorises (AVX-512 or AVX2 chosen at run time). On a GPU, or for a tensor
//! that is not a contiguous f32 CPU tensor, the candle operations are used instead.

use candle_core::{CpuStorage, CustomOp3, InplaceOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 14;

/// `x * 0.5 * (1 + erf(x / sqrt(2)))`, in place. The erf is the Abramowitz-Stegun 7.1.26
/// approximation (absolute error < 1.5e-7), the one PyTorch's vectorised CPU GELU uses.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    apply(xs, &Elementwise::GeluErf, || xs.gelu_erf())
}

/// `x * sigmoid(1.702 x)` (CLIP's activation), in place.
pub fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    apply(xs, &Elementwise::QuickGelu, || {
        xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?
    })
}

/// `softmax(scale * x)` over the last dimension, in place.
pub fn scaled_softmax_last_dim(xs: &Tensor, scale: f32) -> Result<Tensor> {
    let row = xs.dim(candle_core::D::Minus1)?;
    apply(xs, &Softmax { row, scale }, || {
        candle_nn::ops::softmax_last_dim(&(xs * f64::from(scale))?)
    })
}

/// Multi-head attention `softmax(q k^T / sqrt(d)) v` for `q`, `k`, `v` of shape
/// `[batch, heads, tokens, d]`, returned as `[batch, tokens, heads * d]` (heads side by side,
/// ready for the output projection). On CPU each (batch, head) pair is one task on its own core,
/// with single-threaded products, the scale folded into the first product and no transpose
/// copies: candle runs these small products one after another, each split over both cores.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, heads, n, d) = q.dims4()?;
    let scale = 1.0 / (d as f32).sqrt();
    let on_cpu = [q, k, v]
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && t.is_contiguous());
    if on_cpu {
        return q.apply_op3_no_bwd(
            k,
            v,
            &Attention {
                b,
                heads,
                n,
                d,
                scale,
            },
        );
    }
    let weights = scaled_softmax_last_dim(&q.matmul(&k.t()?)?, scale)?;
    weights
        .matmul(v)?
        .transpose(1, 2)?
        .reshape((b, n, heads * d))
}

struct Attention {
    b: usize,
    heads: usize,
    n: usize,
    d: usize,
    scale: f32,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "imgsim-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (slice(qs, ql)?, slice(ks, kl)?, slice(vs, vl)?);
        let Attention {
            b,
            heads,
            n,
            d,
            scale,
        } = *self;
        let mut out = vec![0f32; b * n * heads * d];
        // Each task writes the columns of its head in its batch item: disjoint parts of `out`.
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..b * heads).into_par_iter().for_each_init(
            || vec![0f32; n * n],
            |scores, task| {
                let (item, head) = (task / heads, task % heads);
                let offset = task * n * d;
                let (q, k, v) = (
                    &q[offset..][..n * d],
                    &k[offset..][..n * d],
                    &v[offset..][..n * d],
                );
                let out_ptr = &out_ptr;
                // SAFETY: the strides describe `n x d`, `d x n` and `n x n` matrices inside the
                // slices above; the output block of this task is written by this task alone.
                unsafe {
                    // scores = scale * q k^T
                    gemm::gemm(
                        n,
                        n,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        q.as_ptr(),
                        1,
                        d as isize,
                        k.as_ptr(),
                        d as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for row in scores.chunks_exact_mut(n) {
                    softmax_row(row, 1.0);
                }
                unsafe {
                    // out[item, :, head, :] = scores v
                    let dst = out_ptr.0.add((item * n * heads + head) * d);
                    gemm::gemm(
                        n,
                        d,
                        n,
                        dst,
                        1,
                        (heads * d) as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        n as isize,
                        v.as_ptr(),
                        1,
                        d as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, n, heads * d))))
    }
}

struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint regions through it (see `Attention::cpu_fwd`).
unsafe impl Sync for SendPtr {}

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("expected f32 storage")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("expected a contiguous tensor")
    };
    Ok(&data[start..end])
}

fn apply(
    xs: &Tensor,
    op: &impl InplaceOp1,
    fallback: impl FnOnce() -> Result<Tensor>,
) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        xs.inplace_op1(op)?;
        Ok(xs.clone())
    } else {
        fallback()
    }
}

fn slice_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("expected f32 storage")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("expected a contiguous tensor")
    };
    Ok(&mut data[start..end])
}

enum Elementwise {
    GeluErf,
    QuickGelu,
}

impl InplaceOp1 for Elementwise {
    fn name(&self) -> &'static str {
        match self {
            Elementwise::GeluErf => "imgsim-gelu-erf",
            Elementwise::QuickGelu => "imgsim-quick-gelu",
        }
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let data = slice_mut(storage, layout)?;
        let f: fn(&mut [f32]) = match self {
            Elementwise::GeluErf => gelu_erf_slice,
            Elementwise::QuickGelu => quick_gelu_slice,
        };
        data.par_chunks_mut(CHUNK).for_each(f);
        Ok(())
    }
}

struct Softmax {
    row: usize,
    scale: f32,
}

impl InplaceOp1 for Softmax {
    fn name(&self) -> &'static str {
        "imgsim-scaled-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let data = slice_mut(storage, layout)?;
        let rows_per_task = (CHUNK / self.row).max(1);
        data.par_chunks_mut(rows_per_task * self.row)
            .for_each(|rows| {
                for row in rows.chunks_exact_mut(self.row) {
                    softmax_row(row, self.scale);
                }
            });
        Ok(())
    }
}

/// Runs `body` compiled for the best vector unit this CPU has.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { generic($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { generic($($arg),*) }
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

multiversion! {
    /// Exact GELU in place (also applied by packed linear layers to each tile they write).
    pub(crate) fn gelu_erf_slice(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// Quick GELU in place (also applied by packed linear layers to each tile they write).
    pub(crate) fn quick_gelu_slice(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x /= 1.0 + exp(-1.702 * *x);
        }
    }
}

/// Lanes of the independent accumulators in reductions, so that they vectorise.
const LANES: usize = 16;

multiversion! {
    fn softmax_row(row: &mut [f32], scale: f32) {
        let mut maxes = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (m, &v) in maxes.iter_mut().zip(chunk) {
                *m = if v > *m { v } else { *m };
            }
        }
        let tail_max = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        let max = maxes.iter().fold(tail_max, |m, &v| if v > m { v } else { m }) * scale;
        let mut sums = [0f32; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for (s, v) in sums.iter_mut().zip(chunk.iter_mut()) {
                *v = exp(*v * scale - max);
                *s += *v;
            }
        }
        let mut sum: f32 = 0.0;
        for v in chunks.into_remainder() {
            *v = exp(*v * scale - max);
            sum += *v;
        }
        let inv = 1.0 / (sum + sums.iter().sum::<f32>());
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// `e^x`, branch-free (Cephes' polynomial after reduction by ln 2), relative error ~1e-7.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5); // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let y = p.mul_add(r * r, r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Abramowitz-Stegun 7.1.26, as PyTorch's `Vectorized<float>::erf`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1_f32.mul_add(a, 1.0);
    let mut r = 1.061_405_4_f32;
    r = r.mul_add(t, -1.453_152);
    r = r.mul_add(t, 1.421_413_7);
    r = r.mul_add(t, -0.284_496_74);
    r = r.mul_add(t, 0.254_829_6);
    let y = 1.0 - r * t * exp(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let e = exp(x);
            assert!(((e - x.exp()) / x.exp()).abs() < 3e-7, "exp({x}) = {e}");
            let reference = libm_erf(f64::from(x));
            assert!((f64::from(erf(x)) - reference).abs() < 3e-7, "erf({x})");
        }
        assert_eq!(exp(-1000.0).min(1e-30), exp(-1000.0));
    }

    /// erf in f64 by its series/continued-fraction-free definition: numerical integration.
    fn libm_erf(x: f64) -> f64 {
        let steps = 20_000;
        let h = x / steps as f64;
        let f = |t: f64| (-t * t).exp();
        let mut sum = f(0.0) + f(x);
        for i in 1..steps {
            sum += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        sum * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn kernels_match_candle() {
        let xs = Tensor::randn(0f32, 3.0, (7, 300), &Device::Cpu).unwrap();
        let close = |a: &Tensor, b: &Tensor| {
            let d: f32 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d < 1e-5, "{d}");
        };
        close(
            &gelu_erf(&xs.copy().unwrap()).unwrap(),
            &xs.gelu_erf().unwrap(),
        );
        let quick = (&xs * candle_nn::ops::sigmoid(&(&xs * 1.702).unwrap()).unwrap()).unwrap();
        close(&quick_gelu(&xs.copy().unwrap()).unwrap(), &quick);
        let soft = candle_nn::ops::softmax_last_dim(&(&xs * 0.125).unwrap()).unwrap();
        close(
            &scaled_softmax_last_dim(&xs.copy().unwrap(), 0.125).unwrap(),
            &soft,
        );
    }
}
