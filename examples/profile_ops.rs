//! Times imgsim's fused multi-head attention against candle's generic path, at the shapes of
//! DINOv2-base (257 tokens) and CLIP B/32 (50 tokens): a tool for the speed work.
//!
//!     cargo run --release --example profile_ops
//!
//! Under `perf record`, build it with line tables: `--profile profiling` instead of `--release`.

use candle_core::{Device, Tensor};
use std::time::Instant;

fn time<F: FnMut() -> candle_core::Result<Tensor>>(name: &str, iters: usize, mut f: F) {
    f().unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        f().unwrap();
    }
    println!(
        "{name:<50} {:8.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / iters as f64
    );
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for (b, n) in [(16usize, 257usize), (1, 257), (16, 50)] {
        let q = Tensor::randn(0f32, 1., (b, 12, n, 64), &dev)?;
        let k = Tensor::randn(0f32, 1., (b, 12, n, 64), &dev)?;
        let v = Tensor::randn(0f32, 1., (b, 12, n, 64), &dev)?;
        time(&format!("b{b} n{n} candle"), 10, || {
            let w = candle_nn::ops::softmax_last_dim(&(q.matmul(&k.t()?)? * 0.125)?)?;
            w.matmul(&v)?.transpose(1, 2)?.reshape((b, n, 768))
        });
        time(&format!("b{b} n{n} fused"), 10, || {
            imgsim::models::vit::attention_for_profiling(&q, &k, &v)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        });
    }
    Ok(())
}
