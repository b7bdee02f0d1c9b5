//! PIL's `Image.resize` for 8-bit RGB, bit for bit (Pillow's `Resample.c`): separable
//! convolution with the filter widened by the downscale factor (antialiasing), coefficients in
//! fixed point with 22 fractional bits, a horizontal pass rounded to 8 bits, then a vertical one.
//!
//! SIMD resizers (fast_image_resize, Pillow-SIMD) use 16-bit coefficients and differ from PIL by
//! up to two levels per pixel, which is enough to move embeddings past the parity bounds; hence
//! this port. It also computes only the output pixels that survive the center crop.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's resampling filters that go through its convolution path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Bilinear,
    Bicubic,
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if x < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// For each output position: the first input index and the fixed-point weights.
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for outputs `range`.
fn taps(in_size: usize, out_size: usize, range: std::ops::Range<usize>, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let mut start = Vec::with_capacity(range.len());
    let mut weights = Vec::with_capacity(range.len());
    for out in range {
        let center = (out as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let w: Vec<f64> = (xmin..xmax)
            .map(|x| filter.weight((x as f64 - center + 0.5) / filter_scale))
            .collect();
        let total: f64 = w.iter().sum();
        let fixed = w
            .iter()
            .map(|&v| {
                let v = if total != 0.0 { v / total } else { v };
                let scaled = v * f64::from(1u32 << PRECISION_BITS);
                (if scaled < 0.0 {
                    scaled - 0.5
                } else {
                    scaled + 0.5
                }) as i32
            })
            .collect();
        start.push(xmin);
        weights.push(fixed);
    }
    Taps { start, weights }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    if acc >= (1 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

/// The `window` (x, y, width, height) of `image` resized to `out_w x out_h`, exactly as
/// `image.resize((out_w, out_h), filter).crop(window)` in PIL. The window must lie inside.
pub fn resize_window(
    image: &RgbImage,
    out_w: u32,
    out_h: u32,
    window: (u32, u32, u32, u32),
    filter: Filter,
) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (wx, wy, ww, wh) = (
        window.0 as usize,
        window.1 as usize,
        window.2 as usize,
        window.3 as usize,
    );
    let src = image.as_raw();
    let need_horizontal = in_w != out_w as usize;
    let need_vertical = in_h != out_h as usize;

    // Horizontal pass over the source rows that the vertical pass will read.
    let vertical = need_vertical.then(|| taps(in_h, out_h as usize, wy..wy + wh, filter));
    let (row_first, row_last) = match &vertical {
        Some(v) => (
            v.start[0],
            v.start
                .iter()
                .zip(&v.weights)
                .map(|(s, w)| s + w.len())
                .max()
                .unwrap_or(0),
        ),
        None => (wy, wy + wh),
    };
    let rows = row_last - row_first;
    let temp: Vec<u8> = if need_horizontal {
        let h = taps(in_w, out_w as usize, wx..wx + ww, filter);
        let mut temp = vec![0u8; rows * ww * 3];
        for (r, out_row) in temp.chunks_exact_mut(ww * 3).enumerate() {
            let in_row = &src[(row_first + r) * in_w * 3..][..in_w * 3];
            for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
                let base = h.start[x] * 3;
                let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                for (k, &w) in h.weights[x].iter().enumerate() {
                    let p = &in_row[base + k * 3..base + k * 3 + 3];
                    acc[0] += i32::from(p[0]) * w;
                    acc[1] += i32::from(p[1]) * w;
                    acc[2] += i32::from(p[2]) * w;
                }
                px.copy_from_slice(&[clip8(acc[0]), clip8(acc[1]), clip8(acc[2])]);
            }
        }
        temp
    } else {
        let mut temp = Vec::with_capacity(rows * ww * 3);
        for r in row_first..row_last {
            temp.extend_from_slice(&src[(r * in_w + wx) * 3..][..ww * 3]);
        }
        temp
    };

    let Some(v) = vertical else {
        let first = (wy - row_first) * ww * 3;
        return RgbImage::from_raw(
            ww as u32,
            wh as u32,
            temp[first..first + wh * ww * 3].to_vec(),
        )
        .expect("window size");
    };
    let stride = ww * 3;
    let mut out = vec![0u8; wh * stride];
    let mut acc = vec![0i32; stride];
    for (y, out_row) in out.chunks_exact_mut(stride).enumerate() {
        acc.fill(1 << (PRECISION_BITS - 1));
        for (k, &w) in v.weights[y].iter().enumerate() {
            let row = &temp[(v.start[y] + k - row_first) * stride..][..stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    RgbImage::from_raw(ww as u32, wh as u32, out).expect("window size")
}

/// PIL's NEAREST resize: the source pixel under each output pixel's centre.
pub fn resize_window_nearest(
    image: &RgbImage,
    out_w: u32,
    out_h: u32,
    window: (u32, u32, u32, u32),
) -> RgbImage {
    let sx = f64::from(image.width()) / f64::from(out_w);
    let sy = f64::from(image.height()) / f64::from(out_h);
    RgbImage::from_fn(window.2, window.3, |x, y| {
        let src_x = ((f64::from(x + window.0) + 0.5) * sx) as u32;
        let src_y = ((f64::from(y + window.1) + 0.5) * sy) as u32;
        *image.get_pixel(src_x.min(image.width() - 1), src_y.min(image.height() - 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo_like(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x ^ y) as u8, ((x * y) % 251) as u8])
        })
    }

    #[test]
    fn a_window_equals_the_same_part_of_the_full_resize() {
        let img = photo_like(97, 61);
        for filter in [Filter::Bilinear, Filter::Bicubic, Filter::Lanczos] {
            let full = resize_window(&img, 40, 30, (0, 0, 40, 30), filter);
            let part = resize_window(&img, 40, 30, (5, 7, 20, 13), filter);
            for (x, y, p) in part.enumerate_pixels() {
                assert_eq!(p, full.get_pixel(x + 5, y + 7), "{filter:?} at {x},{y}");
            }
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let img = RgbImage::from_pixel(50, 80, image::Rgb([10, 128, 250]));
        let out = resize_window(&img, 224, 358, (0, 67, 224, 224), Filter::Bicubic);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }

    #[test]
    fn same_size_is_a_crop() {
        let img = photo_like(30, 20);
        let out = resize_window(&img, 30, 20, (3, 4, 10, 10), Filter::Bicubic);
        assert_eq!(out.get_pixel(0, 0), img.get_pixel(3, 4));
    }

    /// Values computed with Pillow 13: `Image.frombytes("RGB", (4, 1), bytes([0,0,0, 255,255,255,
    /// 0,0,0, 255,255,255])).resize((2, 1), Image.BICUBIC).tobytes()`.
    #[test]
    fn matches_pillow_on_a_tiny_downscale() {
        let img = RgbImage::from_raw(
            4,
            1,
            [0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255].to_vec(),
        )
        .unwrap();
        let out = resize_window(&img, 2, 1, (0, 0, 2, 1), Filter::Bicubic);
        assert_eq!(out.as_raw(), &PILLOW_TINY_DOWNSCALE.to_vec());
    }

    const PILLOW_TINY_DOWNSCALE: [u8; 6] = [107, 107, 107, 148, 148, 148];
}
