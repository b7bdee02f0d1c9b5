//! Linear layers in reduced precision on the CPU (`--precision bf16|int8`): the weights are
//! converted and packed once, at load time, into the panels the micro-kernels read, and every
//! product runs on the instructions this CPU has for it.
//!
//! - **bf16**: weights and activations rounded to bfloat16 (to nearest, ties to even, as
//!   PyTorch's autocast rounds), products accumulated in f32 by AVX-512 BF16's `vdpbf16ps`
//!   (two multiply-adds per f32 lane per instruction: twice fp32 FMA's work).
//! - **int8**: dynamic quantisation as PyTorch's `quantize_dynamic` does it, but finer: weights
//!   to int8 with one scale per output column (symmetric), each activation row to int8 with its
//!   own scale when it is multiplied, products summed in i32 by AVX-512 VNNI's `vpdpbusd` (four
//!   per lane per instruction). `vpdpbusd` multiplies unsigned by signed bytes, so the
//!   activations are stored with 128 added and `128 * sum(w)` of each column is taken off after.
//!
//! Only the linear layers change (as in PyTorch's dynamic quantisation): layer norms,
//! activations, softmax and attention stay in f32. The weights live in a layout no other code
//! reads: `[panel][k step][NR columns][k within step]`, NR = 48 columns per panel (three 512-bit
//! registers), zero-padded to whole panels and whole k steps, so the kernels have no edge cases
//! in `k` and mask only the stores of the last panel.
//!
//! Why our own kernels: candle's CPU products for bf16 go through the `gemm` crate, which
//! widens bf16 to f32 and multiplies in f32 (no faster than f32), and neither candle nor
//! `gemm` has int8 products or keeps packed weights between calls.

use std::fmt;

use rayon::prelude::*;

/// The arithmetic of the linear layers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere: equal to the reference implementation (the parity tests).
    #[default]
    F32,
    /// bfloat16 products with f32 sums (needs AVX-512 BF16: AMD Zen 4 and later, Intel Xeon
    /// since Sapphire Rapids). On a GPU: the whole network in bfloat16 (`models::Model`).
    Bf16,
    /// int8 products of dynamically quantised activations and per-column quantised weights
    /// (needs AVX-512 VNNI). CPU only.
    Int8,
    /// IEEE half precision: the whole network's weights and activations in f16, as
    /// `model.half()` runs it in PyTorch. GPU only (a CPU has no fast f16 products here).
    F16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
            Precision::F16 => "f16",
        }
    }

    /// What the model id gains, so that a table never mixes precisions (f32 ids are unchanged).
    pub fn id_suffix(self) -> &'static str {
        match self {
            Precision::F32 => "",
            Precision::Bf16 => "+bf16",
            Precision::Int8 => "+int8",
            Precision::F16 => "+f16",
        }
    }

    /// `list` without repeats, in its order (`--precision f32,bf16,f32` runs each once).
    pub fn distinct(list: &[Precision]) -> Vec<Precision> {
        let mut out: Vec<Precision> = Vec::new();
        for p in list {
            if !out.contains(p) {
                out.push(*p);
            }
        }
        out
    }

    /// The flag that asks for this precision on a command line (` --precision bf16`), or
    /// nothing for the default, f32: for advice in messages.
    pub fn flag(self) -> String {
        match self {
            Precision::F32 => String::new(),
            p => format!(" --precision {p}"),
        }
    }

    /// The precision a model id was made with (its suffix; f32 when there is none).
    pub fn of_model_id(id: &str) -> Self {
        [Precision::Bf16, Precision::Int8, Precision::F16]
            .into_iter()
            .find(|p| id.ends_with(p.id_suffix()))
            .unwrap_or(Precision::F32)
    }

    /// The CPU instructions this precision needs.
    fn needs(self) -> &'static [&'static str] {
        match self {
            Precision::F32 => &[],
            Precision::Bf16 => &["avx512f", "avx512bw", "avx512bf16"],
            Precision::Int8 => &["avx512f", "avx512bw", "avx512vnni"],
            Precision::F16 => &[],
        }
    }

    /// Why this CPU cannot run the precision, or `None` when it can.
    pub fn unsupported_here(self) -> Option<String> {
        if self == Precision::F16 {
            return Some(
                "--precision f16 runs on a GPU only (a CPU multiplies half floats no faster \
                 than f32); on the CPU use --precision bf16 or f32"
                    .into(),
            );
        }
        missing_reason(self, cpu_has)
    }

    /// Why a GPU cannot run the precision (int8 is CPU only), or `None` when it can.
    pub fn unsupported_on_gpu(self, gpu: &str) -> Option<String> {
        (self == Precision::Int8).then(|| {
            format!(
                "--precision int8 runs on the CPU only; on {gpu} use --precision f16, bf16 or f32"
            )
        })
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The rule behind [`Precision::unsupported_here`], with the CPU's features as a function.
fn missing_reason(precision: Precision, has: impl Fn(&str) -> bool) -> Option<String> {
    let missing: Vec<&str> = precision
        .needs()
        .iter()
        .copied()
        .filter(|f| !has(f))
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "--precision {precision} needs a CPU with {}, which this one lacks ({} missing); \
         use --precision f32",
        precision.needs().join(", "),
        missing.join(", ")
    ))
}

#[cfg(target_arch = "x86_64")]
fn cpu_has(feature: &str) -> bool {
    match feature {
        "avx512f" => std::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::is_x86_feature_detected!("avx512bw"),
        "avx512bf16" => std::is_x86_feature_detected!("avx512bf16"),
        "avx512vnni" => std::is_x86_feature_detected!("avx512vnni"),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has(_feature: &str) -> bool {
    false
}

/// Output columns per panel: three 512-bit registers of f32 (or i32) sums.
const NR: usize = 48;
/// Rows per micro-kernel call: 8 x 3 = 24 of the 32 vector registers hold sums.
const MR: usize = 8;
/// Rows per parallel task: enough work per task to amortise scheduling.
const ROWS_PER_TASK: usize = 12 * MR;

/// `f32` to bfloat16 bits, rounded to nearest, ties to even (NaN stays NaN).
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// A bf16 value back to f32 (exact).
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// A linear layer's weight in one of the packed forms, with its bias.
#[derive(Clone)]
pub enum Packed {
    Bf16(PackedBf16),
    Int8(PackedInt8),
}

impl Packed {
    /// Packs `W^T` (`k` rows of `n` columns, row-major: the layout `vit::Linear` keeps).
    /// The caller has checked [`Precision::unsupported_here`].
    pub fn new(
        precision: Precision,
        weight_t: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
    ) -> Option<Self> {
        match precision {
            Precision::F32 | Precision::F16 => None,
            Precision::Bf16 => Some(Packed::Bf16(PackedBf16::new(weight_t, k, n, bias))),
            Precision::Int8 => Some(Packed::Int8(PackedInt8::new(weight_t, k, n, bias))),
        }
    }

    pub fn inputs(&self) -> usize {
        match self {
            Packed::Bf16(p) => p.k,
            Packed::Int8(p) => p.k,
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            Packed::Bf16(p) => p.n,
            Packed::Int8(p) => p.n,
        }
    }

    /// `x W^T + b` for `m` rows of `x` (row-major, `m x k`), into `out` (`m x n`), with
    /// `activation` applied in place to each tile as soon as it is written (while it is in
    /// the cache: a separate pass over DINOv2's 50 MB MLP activations at batch 16 was bound by
    /// memory).
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], activation: Option<Activation>) {
        match self {
            Packed::Bf16(p) => p.forward(x, m, out, activation),
            Packed::Int8(p) => p.forward(x, m, out, activation),
        }
    }
}

/// An element-wise function applied in place to a layer's output.
pub type Activation = fn(&mut [f32]);

/// Applies `activation` to the `rows x cols` block at `c` (row stride `ldc`).
///
/// # Safety
/// The block must be valid, and written by the caller's task alone.
unsafe fn activate(
    activation: Option<Activation>,
    c: *mut f32,
    rows: usize,
    cols: usize,
    ldc: usize,
) {
    if let Some(f) = activation {
        for r in 0..rows {
            f(std::slice::from_raw_parts_mut(c.add(r * ldc), cols));
        }
    }
}

/// Where weight `(kk, col)` lies in the packed layout `[panel][k / step][NR][step]`, for `k`
/// padded to `k_padded` (a multiple of `step`: 2 values per bf16 pair, 4 per int8 quad).
fn packed_at(kk: usize, col: usize, k_padded: usize, step: usize) -> usize {
    let (panel, c) = (col / NR, col % NR);
    panel * k_padded * NR + (kk / step) * NR * step + c * step + kk % step
}

/// Bias padded to whole panels (zeros where there is none).
fn padded_bias(bias: Option<&[f32]>, n: usize) -> Vec<f32> {
    let mut padded = vec![0f32; n.div_ceil(NR) * NR];
    if let Some(b) = bias {
        padded[..n].copy_from_slice(&b[..n]);
    }
    padded
}

/// Work items: (panel, first row) pairs, panel-major so that neighbouring tasks share a panel.
fn tasks(m: usize, n: usize) -> Vec<(usize, usize)> {
    let panels = n.div_ceil(NR);
    (0..panels)
        .flat_map(|p| (0..m).step_by(ROWS_PER_TASK).map(move |r| (p, r)))
        .collect()
}

struct SendPtr(*mut f32);
// SAFETY: each task writes its own (rows x panel columns) block of the output; see `run`.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

impl SendPtr {
    /// Through a method, so that closures capture the wrapper (Sync), not the raw pointer.
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Runs `tile(panel, row, rows, out_ptr)` over every block of the output, in parallel.
fn run(m: usize, n: usize, out: &mut [f32], tile: impl Fn(usize, usize, usize, *mut f32) + Sync) {
    assert_eq!(out.len(), m * n, "output size");
    let ptr = SendPtr(out.as_mut_ptr());
    let ptr = &ptr;
    tasks(m, n).into_par_iter().for_each(|(panel, first)| {
        let last = (first + ROWS_PER_TASK).min(m);
        let mut row = first;
        while row < last {
            let rows = (last - row).min(MR);
            tile(panel, row, rows, ptr.get());
            row += rows;
        }
    });
}

/// A weight in bfloat16, packed as `[panel][k / 2][NR][2]`.
#[derive(Clone)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    /// `k` rounded up to even: the kernels read pairs.
    k2: usize,
    data: Vec<u16>,
    bias: Vec<f32>,
}

impl PackedBf16 {
    pub fn new(weight_t: &[f32], k: usize, n: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight_t.len(), k * n, "weight size");
        let k2 = k.div_ceil(2) * 2;
        let panels = n.div_ceil(NR);
        let mut data = vec![0u16; panels * k2 * NR];
        for kk in 0..k {
            for col in 0..n {
                data[packed_at(kk, col, k2, 2)] = bf16_bits(weight_t[kk * n + col]);
            }
        }
        Self {
            k,
            n,
            k2,
            data,
            bias: padded_bias(bias, n),
        }
    }

    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], activation: Option<Activation>) {
        assert_eq!(x.len(), m * self.k, "input size");
        // Each row rounded to bf16 once, padded to an even length.
        let mut a = vec![0u16; m * self.k2];
        a.par_chunks_mut(self.k2 * 64)
            .zip(x.par_chunks(self.k * 64))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_mut(self.k2).zip(src.chunks(self.k)) {
                    to_bf16(s, &mut d[..self.k]);
                }
            });
        let (k2, n) = (self.k2, self.n);
        run(m, n, out, |panel, row, rows, out| {
            let cols = (n - panel * NR).min(NR);
            // SAFETY: `a` holds rows `row..row + rows` of `k2` values; the panel holds `k2 * NR`
            // values; the block of `out` written (rows x cols at column panel * NR) is inside
            // `out` and belongs to this task alone (`run`). The CPU has AVX-512 BF16 (checked
            // before the weights were packed).
            unsafe {
                let c = out.add(row * n + panel * NR);
                bf16_tile(
                    a.as_ptr().add(row * k2),
                    k2,
                    rows,
                    self.data.as_ptr().add(panel * k2 * NR),
                    self.bias.as_ptr().add(panel * NR),
                    c,
                    n,
                    cols,
                );
                activate(activation, c, rows, cols, n);
            }
        });
    }
}

/// A row of f32 to bf16 bits (RNE), vectorised where the CPU can.
fn to_bf16(src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the feature is present; lengths are equal (checked inside).
        unsafe { x86::to_bf16(src, dst) };
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = bf16_bits(*s);
    }
}

/// One `rows x cols` block of the output (rows <= MR, cols <= NR).
///
/// # Safety
/// Pointers as in `PackedBf16::forward`; the CPU must have AVX-512 BF16.
#[allow(clippy::too_many_arguments)]
unsafe fn bf16_tile(
    a: *const u16,
    lda: usize,
    rows: usize,
    b: *const u16,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! call {
            ($($r:literal)*) => {
                match rows {
                    $($r => x86::bf16_kernel::<$r>(a, lda, b, bias, c, ldc, cols),)*
                    _ => unreachable!("rows <= MR"),
                }
            };
        }
        call!(1 2 3 4 5 6 7 8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, lda, rows, b, bias, c, ldc, cols);
        unreachable!("bf16 is refused on this architecture")
    }
}

/// A weight in int8 with one scale per output column, packed as `[panel][k / 4][NR][4]`.
#[derive(Clone)]
pub struct PackedInt8 {
    k: usize,
    n: usize,
    /// `k` rounded up to a multiple of 4: the kernels read quads.
    k4: usize,
    data: Vec<i8>,
    /// Per column (padded): the weight's scale.
    scale: Vec<f32>,
    /// Per column (padded): `128 * sum(w)` over the column's quantised weights.
    offset: Vec<i32>,
    bias: Vec<f32>,
}

impl PackedInt8 {
    pub fn new(weight_t: &[f32], k: usize, n: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight_t.len(), k * n, "weight size");
        let k4 = k.div_ceil(4) * 4;
        let panels = n.div_ceil(NR);
        let padded = panels * NR;
        let mut scale = vec![0f32; padded];
        for (col, s) in scale.iter_mut().enumerate().take(n) {
            let max = (0..k)
                .map(|kk| weight_t[kk * n + col].abs())
                .fold(0f32, f32::max);
            *s = if max > 0.0 { max / 127.0 } else { 1.0 };
        }
        let mut data = vec![0i8; panels * k4 * NR];
        let mut offset = vec![0i32; padded];
        for kk in 0..k {
            for col in 0..n {
                let q = quantise(weight_t[kk * n + col], 1.0 / scale[col]);
                data[packed_at(kk, col, k4, 4)] = q;
                offset[col] += 128 * i32::from(q);
            }
        }
        Self {
            k,
            n,
            k4,
            data,
            scale,
            offset,
            bias: padded_bias(bias, n),
        }
    }

    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], activation: Option<Activation>) {
        assert_eq!(x.len(), m * self.k, "input size");
        // Each row quantised with its own scale, stored as unsigned (q + 128), padded with
        // 128 (zero) to a multiple of four.
        let mut a = vec![128u8; m * self.k4];
        let mut row_scale = vec![0f32; m];
        a.par_chunks_mut(self.k4)
            .zip(x.par_chunks(self.k))
            .zip(row_scale.par_iter_mut())
            .for_each(|((dst, src), scale)| {
                *scale = quantise_row(src, &mut dst[..self.k]);
            });
        let (k4, n) = (self.k4, self.n);
        run(m, n, out, |panel, row, rows, out| {
            let cols = (n - panel * NR).min(NR);
            // SAFETY: as in `PackedBf16::forward`; the CPU has AVX-512 VNNI.
            unsafe {
                let c = out.add(row * n + panel * NR);
                int8_tile(
                    a.as_ptr().add(row * k4),
                    k4,
                    rows,
                    row_scale.as_ptr().add(row),
                    self.data.as_ptr().add(panel * k4 * NR),
                    self.scale.as_ptr().add(panel * NR),
                    self.offset.as_ptr().add(panel * NR),
                    self.bias.as_ptr().add(panel * NR),
                    c,
                    n,
                    cols,
                );
                activate(activation, c, rows, cols, n);
            }
        });
    }
}

/// `x / scale` rounded to nearest (ties to even, as PyTorch's quantisation rounds: one vector
/// instruction, where ties away from zero is a libm call per value) and clamped to [-127, 127].
#[inline(always)]
fn quantise(x: f32, inv_scale: f32) -> i8 {
    (x * inv_scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// One activation row to `q + 128`; returns its scale (`max |x| / 127`, 1 for a zero row).
fn quantise_row(src: &[f32], dst: &mut [u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature is present.
        return unsafe { x86::quantise_row(src, dst) };
    }
    quantise_row_generic(src, dst)
}

/// [`quantise_row`] in code the compiler vectorises for whatever the caller enables.
#[inline(always)]
fn quantise_row_generic(src: &[f32], dst: &mut [u8]) -> f32 {
    // Sixteen running maxima side by side: a reduction in one variable does not vectorise.
    let mut lanes = [0f32; 16];
    let chunks = src.chunks_exact(16);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, x) in lanes.iter_mut().zip(chunk) {
            *m = m.max(x.abs());
        }
    }
    let max = tail.iter().chain(&lanes).fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    let inv = 1.0 / scale;
    for (d, s) in dst.iter_mut().zip(src) {
        *d = (i16::from(quantise(*s, inv)) + 128) as u8;
    }
    scale
}

/// # Safety
/// Pointers as in `PackedInt8::forward`; the CPU must have AVX-512 VNNI.
#[allow(clippy::too_many_arguments)]
unsafe fn int8_tile(
    a: *const u8,
    lda: usize,
    rows: usize,
    row_scale: *const f32,
    b: *const i8,
    scale: *const f32,
    offset: *const i32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! call {
            ($($r:literal)*) => {
                match rows {
                    $($r => x86::int8_kernel::<$r>(
                        a, lda, row_scale, b, scale, offset, bias, c, ldc, cols,
                    ),)*
                    _ => unreachable!("rows <= MR"),
                }
            };
        }
        call!(1 2 3 4 5 6 7 8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (
            a, lda, rows, row_scale, b, scale, offset, bias, c, ldc, cols,
        );
        unreachable!("int8 is refused on this architecture")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::NR;

    /// Columns of the last register of a panel that are real (a store mask).
    #[inline(always)]
    fn mask(cols: usize, register: usize) -> __mmask16 {
        let live = cols.saturating_sub(register * 16).min(16);
        ((1u32 << live) - 1) as __mmask16
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantise_row(src: &[f32], dst: &mut [u8]) -> f32 {
        super::quantise_row_generic(src, dst)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn to_bf16(src: &[f32], dst: &mut [u16]) {
        assert_eq!(src.len(), dst.len());
        let chunks = src.len() / 32;
        for i in 0..chunks {
            let lo = _mm512_loadu_ps(src.as_ptr().add(i * 32));
            let hi = _mm512_loadu_ps(src.as_ptr().add(i * 32 + 16));
            let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(dst.as_mut_ptr().add(i * 32) as *mut __m512i, packed);
        }
        for i in chunks * 32..src.len() {
            dst[i] = super::bf16_bits(src[i]);
        }
    }

    /// `R` rows of the output against one panel: 3 x R f32 sums in registers, two products
    /// per lane per `vdpbf16ps`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn bf16_kernel<const R: usize>(
        a: *const u16,
        lda: usize,
        b: *const u16,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 3]; R];
        let steps = lda / 2;
        for s in 0..steps {
            let panel = b.add(s * NR * 2) as *const __m512i;
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(1)));
            let b2: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(2)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = (a.add(r * lda + s * 2) as *const i32).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
                acc[2] = _mm512_dpbf16_ps(acc[2], av, b2);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, sum) in acc.iter().enumerate() {
                let v = _mm512_add_ps(*sum, _mm512_loadu_ps(bias.add(j * 16)));
                let m = mask(cols, j);
                if m != 0 {
                    _mm512_mask_storeu_ps(c.add(r * ldc + j * 16), m, v);
                }
            }
        }
    }

    /// `R` rows of the output against one panel: 3 x R i32 sums in registers, four products
    /// per lane per `vpdpbusd`, scaled back to f32 at the end.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn int8_kernel<const R: usize>(
        a: *const u8,
        lda: usize,
        row_scale: *const f32,
        b: *const i8,
        scale: *const f32,
        offset: *const i32,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm512_setzero_si512(); 3]; R];
        let steps = lda / 4;
        for s in 0..steps {
            let panel = b.add(s * NR * 4) as *const __m512i;
            let b0 = _mm512_loadu_si512(panel);
            let b1 = _mm512_loadu_si512(panel.add(1));
            let b2 = _mm512_loadu_si512(panel.add(2));
            for (r, acc) in acc.iter_mut().enumerate() {
                let quad = (a.add(r * lda + s * 4) as *const i32).read_unaligned();
                let av = _mm512_set1_epi32(quad);
                acc[0] = _mm512_dpbusd_epi32(acc[0], av, b0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], av, b1);
                acc[2] = _mm512_dpbusd_epi32(acc[2], av, b2);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let rs = _mm512_set1_ps(*row_scale.add(r));
            for (j, sum) in acc.iter().enumerate() {
                let exact = _mm512_sub_epi32(*sum, _mm512_loadu_si512(offset.add(j * 16) as _));
                let scaled = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(exact),
                    _mm512_mul_ps(rs, _mm512_loadu_ps(scale.add(j * 16))),
                );
                let v = _mm512_add_ps(scaled, _mm512_loadu_ps(bias.add(j * 16)));
                let m = mask(cols, j);
                if m != 0 {
                    _mm512_mask_storeu_ps(c.add(r * ldc + j * 16), m, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        // A small xorshift: the tests need varied values, not good randomness.
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 20_001) as f32 / 10_000.0 - 1.0
            })
            .collect()
    }

    /// `x W^T + b` in f64, from the given (already rounded) inputs.
    fn reference(x: &[f32], w_t: &[f32], bias: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                let dot: f64 = (0..k)
                    .map(|kk| f64::from(x[r * k + kk]) * f64::from(w_t[kk * n + c]))
                    .sum();
                out[r * n + c] = dot + f64::from(bias[c]);
            }
        }
        out
    }

    /// Shapes that exercise every row remainder, a partial panel, odd k and several tasks.
    const SHAPES: &[(usize, usize, usize)] = &[
        (1, 8, 16),
        (3, 7, 50),
        (8, 64, 48),
        (13, 33, 97),
        (50, 768, 100),
        (200, 96, 144),
    ];

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_value(bf16_bits(-2.5)), -2.5);
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_value(bf16_bits(f32::INFINITY)), f32::INFINITY);
    }

    #[test]
    fn bf16_products_equal_the_rounded_inputs_summed_in_f32() {
        if let Some(why) = Precision::Bf16.unsupported_here() {
            eprintln!("skipped: {why}");
            return;
        }
        for &(m, k, n) in SHAPES {
            let (x, w, bias) = (random(m * k, 1), random(k * n, 2), random(n, 3));
            let packed = PackedBf16::new(&w, k, n, Some(&bias));
            let mut out = vec![f32::NAN; m * n];
            packed.forward(&x, m, &mut out, None);
            let round = |v: &[f32]| v.iter().map(|x| bf16_value(bf16_bits(*x))).collect();
            let (xr, wr): (Vec<f32>, Vec<f32>) = (round(&x), round(&w));
            let want = reference(&xr, &wr, &bias, m, k, n);
            for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                // f32 sums of k products of magnitude <= 1: error well under k * 2^-24 * k.
                let bound = 1e-6 * k as f64 + 1e-6;
                assert!(
                    (f64::from(*got) - want).abs() <= bound,
                    "{m}x{k}x{n} at {i}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn int8_products_are_within_the_quantisation_error() {
        if let Some(why) = Precision::Int8.unsupported_here() {
            eprintln!("skipped: {why}");
            return;
        }
        for &(m, k, n) in SHAPES {
            let (x, w, bias) = (random(m * k, 4), random(k * n, 5), random(n, 6));
            let packed = PackedInt8::new(&w, k, n, Some(&bias));
            let mut out = vec![f32::NAN; m * n];
            packed.forward(&x, m, &mut out, None);
            // Exact integer arithmetic on the quantised values, done here in f64.
            let mut want = vec![0f64; m * n];
            for r in 0..m {
                let row = &x[r * k..][..k];
                let mut q = vec![0u8; k];
                let sx = quantise_row(row, &mut q);
                for c in 0..n {
                    let dot: f64 = (0..k)
                        .map(|kk| {
                            let wq = quantise(w[kk * n + c], 1.0 / packed.scale[c]);
                            (f64::from(q[kk]) - 128.0) * f64::from(wq)
                        })
                        .sum();
                    want[r * n + c] =
                        dot * f64::from(sx) * f64::from(packed.scale[c]) + f64::from(bias[c]);
                }
            }
            let exact = reference(&x, &w, &bias, m, k, n);
            for i in 0..m * n {
                let got = f64::from(out[i]);
                assert!(
                    (got - want[i]).abs() <= 1e-5 * (1.0 + want[i].abs()),
                    "{m}x{k}x{n} at {i}: {got} vs the integer sum {}",
                    want[i]
                );
                // And near the f32 product: each factor is off by at most half a step.
                let bound = k as f64 * (1.0 / 127.0) + 1e-3;
                assert!(
                    (got - exact[i]).abs() <= bound,
                    "{got} vs exact {}",
                    exact[i]
                );
            }
        }
    }

    #[test]
    fn the_activation_is_applied_to_every_output_once() {
        fn plus_1000(xs: &mut [f32]) {
            xs.iter_mut().for_each(|x| *x += 1000.0);
        }
        for precision in [Precision::Bf16, Precision::Int8] {
            if precision.unsupported_here().is_some() {
                continue;
            }
            for &(m, k, n) in SHAPES {
                let (x, w) = (random(m * k, 9), random(k * n, 10));
                let packed = Packed::new(precision, &w, k, n, None).unwrap();
                let (mut plain, mut activated) = (vec![0f32; m * n], vec![0f32; m * n]);
                packed.forward(&x, m, &mut plain, None);
                packed.forward(&x, m, &mut activated, Some(plus_1000));
                for (p, a) in plain.iter().zip(&activated) {
                    assert_eq!(p + 1000.0, *a, "{precision} {m}x{k}x{n}");
                }
            }
        }
    }

    #[test]
    fn a_zero_row_gives_the_bias() {
        if Precision::Int8.unsupported_here().is_some() {
            return;
        }
        let (k, n) = (16, 20);
        let bias = random(n, 7);
        let packed = PackedInt8::new(&random(k * n, 8), k, n, Some(&bias));
        let mut out = vec![0f32; n];
        packed.forward(&vec![0f32; k], 1, &mut out, None);
        assert_eq!(out, bias);
    }

    #[test]
    fn the_missing_instructions_are_named() {
        assert_eq!(missing_reason(Precision::F32, |_| false), None);
        assert_eq!(missing_reason(Precision::Bf16, |_| true), None);
        let why = missing_reason(Precision::Bf16, |f| f != "avx512bf16").unwrap();
        assert!(why.contains("--precision bf16"), "{why}");
        assert!(why.contains("avx512bf16 missing"), "{why}");
        assert!(why.contains("use --precision f32"), "{why}");
        let why = missing_reason(Precision::Int8, |_| false).unwrap();
        assert!(
            why.contains("avx512f, avx512bw, avx512vnni missing"),
            "{why}"
        );
    }
}
