use candle_core::{DType, Device, Module, Tensor, D};
use std::time::Instant;

fn time<F: FnMut() -> candle_core::Result<Tensor>>(name: &str, iters: usize, mut f: F) {
    f().unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        f().unwrap();
    }
    println!(
        "{name:<40} {:8.2} ms",
        t.elapsed().as_secs_f64() * 1000.0 / iters as f64
    );
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let (b, n, c) = (16, 257, 768);
    let x = Tensor::randn(0f32, 1., (b, n, c), &dev)?;
    let w = Tensor::randn(0f32, 0.02, (c, c), &dev)?;
    let w4 = Tensor::randn(0f32, 0.02, (4 * c, c), &dev)?;
    let bias = Tensor::randn(0f32, 0.02, c, &dev)?;
    let lin = candle_nn::Linear::new(w.clone(), Some(bias.clone()));
    time("linear 768x768 (candle broadcast)", 5, || lin.forward(&x));
    let wt = w.t()?.contiguous()?;
    time("linear 768x768 (2D, pre-transposed)", 5, || {
        x.reshape((b * n, c))?.matmul(&wt)?.broadcast_add(&bias)
    });
    time("linear 768x768 (2D, w.t())", 5, || {
        x.reshape((b * n, c))?.matmul(&w.t()?)
    });
    time("linear 768x3072 (2D, w.t())", 5, || {
        x.reshape((b * n, c))?.matmul(&w4.t()?)
    });
    let h = Tensor::randn(0f32, 1., (b * n, 4 * c), &dev)?;
    time("gelu_erf [16*257, 3072]", 5, || h.gelu_erf());
    time("add [16,257,768]", 5, || &x + &x);
    let ln = candle_nn::LayerNorm::new(
        Tensor::ones(c, DType::F32, &dev)?,
        Tensor::zeros(c, DType::F32, &dev)?,
        1e-6,
    );
    time("layer_norm", 5, || ln.forward(&x));
    let q = Tensor::randn(0f32, 1., (b, 12, n, 64), &dev)?;
    time("q@k^T (contiguous k^T)", 5, || {
        q.matmul(&q.t()?.contiguous()?)
    });
    time("q@k^T (strided k^T)", 5, || q.matmul(&q.t()?));
    let s = q.matmul(&q.t()?)?;
    time("softmax_last_dim", 5, || {
        candle_nn::ops::softmax_last_dim(&s)
    });
    time("attn@v", 5, || s.matmul(&q));
    time("transpose(1,2).contiguous", 5, || {
        x.reshape((b, n, 12, 64))?.transpose(1, 2)?.contiguous()
    });
    let _ = D::Minus1;
    Ok(())
}
