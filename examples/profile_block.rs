//! Times one encoder block of CLIP ViT-B/32 (50 tokens per image) at each precision, and its
//! four linear layers alone: how much of a block is the products, and how much the rest
//! (norms, attention, activation, copies). A tool for the speed work.
//!
//!     cargo run --release --example profile_block

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use imgsim::models::clip::NAMES;
use imgsim::models::packed::{Packed, Precision};
use imgsim::models::vit::{Activation, Block, BlockConfig};

fn ms(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() * 1000.0 / iters as f64
}

fn main() -> imgsim::Result<()> {
    parts().unwrap();
    let dev = Device::Cpu;
    let cfg = BlockConfig {
        hidden: 768,
        heads: 12,
        mlp_hidden: 3072,
        eps: 1e-5,
        activation: Activation::QuickGelu,
        layer_scale: false,
        qkv_bias: true,
    };
    // Made once to initialise the variables, then from plain copies of them (a candle `Var`
    // makes results keep their inputs for backpropagation; see `Model::load`).
    let varmap = VarMap::new();
    Block::load(
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        &cfg,
        &NAMES,
    )?;
    let plain = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
        .collect();
    let block = Block::load(
        VarBuilder::from_tensors(plain, DType::F32, &dev),
        &cfg,
        &NAMES,
    )?;
    for batch in [1usize, 16] {
        let rows = batch * 50;
        let xs = Tensor::randn(0f32, 1., (batch, 50, 768), &dev)?;
        for precision in [Precision::F32, Precision::Bf16, Precision::Int8] {
            if precision.unsupported_here().is_some() {
                continue;
            }
            let mut b = block.clone();
            b.set_precision(precision)?;
            let iters = if batch == 1 { 200 } else { 20 };
            let whole = ms(iters, || {
                b.forward(&xs).unwrap();
            });
            let products = if precision == Precision::F32 {
                None
            } else {
                let shapes = [(768, 2304), (768, 768), (768, 3072), (3072, 768)];
                let layers: Vec<(Packed, Vec<f32>, usize)> = shapes
                    .iter()
                    .map(|&(k, n)| {
                        let w: Vec<f32> = (0..k * n)
                            .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
                            .collect();
                        let x: Vec<f32> = (0..rows * k)
                            .map(|i| ((i % 89) as f32 - 44.0) / 89.0)
                            .collect();
                        (Packed::new(precision, &w, k, n, None).unwrap(), x, n)
                    })
                    .collect();
                Some(ms(iters, || {
                    for (p, x, n) in &layers {
                        let mut out = vec![0f32; rows * n];
                        p.forward(x, rows, &mut out, None);
                    }
                }))
            };
            let macs = rows as f64 * 768.0 * (2304.0 + 768.0 + 2.0 * 3072.0);
            match products {
                Some(p) => println!(
                    "batch {batch:>2} {precision:<4}: block {whole:7.3} ms, its 4 products {p:7.3} ms \
                     ({:.0} GMAC/s), the rest {:7.3} ms",
                    macs / p / 1e6,
                    whole - p
                ),
                None => println!("batch {batch:>2} {precision:<4}: block {whole:7.3} ms"),
            }
        }
    }
    Ok(())
}

#[allow(dead_code)]
fn parts() -> candle_core::Result<()> {
    use candle_core::Module;
    let dev = Device::Cpu;
    for batch in [1usize, 16] {
        let iters = if batch == 1 { 200 } else { 20 };
        let xs = Tensor::randn(0f32, 1., (batch, 50, 768), &dev)?;
        let h = Tensor::randn(0f32, 1., (batch, 50, 3072), &dev)?;
        let varmap = VarMap::new();
        let ln = candle_nn::layer_norm(
            768,
            1e-5,
            VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        )?;
        let qkv = Tensor::randn(0f32, 1., (batch, 50, 2304), &dev)?;
        let conv = candle_nn::Conv2d::new(
            Tensor::randn(0f32, 1., (768, 3, 32, 32), &dev)?,
            None,
            candle_nn::Conv2dConfig {
                stride: 32,
                ..Default::default()
            },
        );
        let px = Tensor::randn(0f32, 1., (batch, 3, 224, 224), &dev)?;
        println!(
            "batch {batch}: patch conv {:.3} ms",
            ms(iters, || {
                conv.forward(&px).unwrap();
            })
        );
        println!(
            "batch {batch}: layernorm {:.3} ms",
            ms(iters, || {
                ln.forward(&xs).unwrap();
            })
        );
        println!(
            "batch {batch}: quick_gelu {:.3} ms",
            ms(iters, || {
                imgsim::models::kernels::quick_gelu(&h).unwrap();
            })
        );
        println!(
            "batch {batch}: residual add {:.3} ms",
            ms(iters, || {
                (&xs + &xs).unwrap();
            })
        );
        println!(
            "batch {batch}: qkv permute {:.3} ms",
            ms(iters, || {
                qkv.reshape((batch, 50, 3, 12, 64))
                    .unwrap()
                    .permute((2, 0, 3, 1, 4))
                    .unwrap()
                    .contiguous()
                    .unwrap();
            })
        );
        let q = qkv
            .reshape((batch, 50, 3, 12, 64))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (a, b, c) = (q.get(0)?, q.get(1)?, q.get(2)?);
        println!(
            "batch {batch}: attention {:.3} ms",
            ms(iters, || {
                imgsim::models::kernels::attention(&a, &b, &c).unwrap();
            })
        );
        // DINOv2-base at 224 pixels: 257 tokens.
        let q = Tensor::randn(0f32, 1., (batch, 12, 257, 64), &dev)?;
        println!(
            "batch {batch}: attention, 257 tokens {:.3} ms",
            ms(iters / 4, || {
                imgsim::models::kernels::attention(&q, &q, &q).unwrap();
            })
        );
        let h = Tensor::randn(0f32, 1., (batch, 257, 3072), &dev)?;
        println!(
            "batch {batch}: gelu, 257 tokens {:.3} ms",
            ms(iters / 4, || {
                imgsim::models::kernels::gelu_erf(&h).unwrap();
            })
        );
    }
    Ok(())
}
