//! The weight-free baseline: the 64-bit DCT perceptual hash of the `imagehash` Python library
//! (`imagehash.phash`), bit for bit. It runs anywhere, needs no download, and gives every
//! comparison a floor.
//!
//! Recipe: PIL `convert("L")`, Lanczos resize to 32x32 (aspect ratio ignored), 2-D DCT-II,
//! the 8x8 lowest frequencies (DC included), each bit = coefficient > their median.
//! As a vector for cosine search each bit becomes +-1/8, so that
//! `cosine = 1 - 2 * hamming_distance / 64`.

use image::RgbImage;

use crate::resize::{resize_window, Filter};

/// Bits in the hash, and the dimension of its vector.
pub const BITS: usize = 64;
const SIDE: usize = 8;
const RESIZED: usize = 32;

/// The hash; the first coefficient (row-major) is the most significant bit, so that
/// `format!("{:016x}", hash)` equals `str(imagehash.phash(image))`.
pub fn hash(image: &RgbImage) -> u64 {
    let pixels = grayscale_32x32(image);
    let coefficients = low_frequencies(&pixels);
    let median = median(&coefficients);
    coefficients
        .iter()
        .fold(0u64, |acc, &c| (acc << 1) | u64::from(c > median))
}

/// The hash as a unit vector: +1/8 for a set bit, -1/8 for a clear one.
pub fn descriptor(image: &RgbImage) -> Vec<f32> {
    hash_to_vector(hash(image))
}

pub fn hash_to_vector(hash: u64) -> Vec<f32> {
    let unit = 1.0 / (BITS as f32).sqrt();
    (0..BITS)
        .map(|i| {
            if hash >> (BITS - 1 - i) & 1 == 1 {
                unit
            } else {
                -unit
            }
        })
        .collect()
}

/// PIL's `convert("L")` (ITU-R 601-2 luma in 16-bit fixed point), then its Lanczos resize.
fn grayscale_32x32(image: &RgbImage) -> [f64; RESIZED * RESIZED] {
    let mut gray = image.clone();
    for px in gray.pixels_mut() {
        let [r, g, b] = px.0.map(u32::from);
        let l = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8;
        px.0 = [l, l, l];
    }
    let side = RESIZED as u32;
    let small = resize_window(&gray, side, side, (0, 0, side, side), Filter::Lanczos);
    std::array::from_fn(|i| f64::from(small.as_raw()[i * 3]))
}

/// `scipy.fftpack.dct(scipy.fftpack.dct(x, axis=0), axis=1)[:8, :8]`, row-major. The scale
/// (scipy's unnormalised DCT-II) does not change the bits.
fn low_frequencies(pixels: &[f64; RESIZED * RESIZED]) -> [f64; SIDE * SIDE] {
    let n = RESIZED as f64;
    let basis: Vec<f64> = (0..SIDE)
        .flat_map(|k| {
            (0..RESIZED).map(move |i| {
                2.0 * (std::f64::consts::PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n)).cos()
            })
        })
        .collect();
    // Along axis 0 (down each column), keeping the first 8 frequencies.
    let mut columns = [0.0; SIDE * RESIZED];
    for k in 0..SIDE {
        for x in 0..RESIZED {
            columns[k * RESIZED + x] = (0..RESIZED)
                .map(|y| basis[k * RESIZED + y] * pixels[y * RESIZED + x])
                .sum();
        }
    }
    // Then along axis 1.
    std::array::from_fn(|i| {
        let (k, l) = (i / SIDE, i % SIDE);
        (0..RESIZED)
            .map(|x| basis[l * RESIZED + x] * columns[k * RESIZED + x])
            .sum()
    })
}

/// numpy's median: the mean of the two middle values of an even count.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    (sorted[mid - 1] + sorted[mid]) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_cosine_is_one_minus_twice_the_hamming_fraction() {
        let (a, b) = (
            0xF0F0_0000_FFFF_1234u64,
            0xF0F0_0000_FFFF_1235u64 ^ (1 << 40),
        );
        let dot: f32 = hash_to_vector(a)
            .iter()
            .zip(hash_to_vector(b))
            .map(|(x, y)| x * y)
            .sum();
        let hamming = (a ^ b).count_ones() as f32;
        assert!((dot - (1.0 - 2.0 * hamming / 64.0)).abs() < 1e-6);
        let norm: f32 = hash_to_vector(a).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-6);
    }

    #[test]
    fn brightness_barely_moves_the_hash_and_a_flip_does() {
        // Smooth 2-D structure, so that every low frequency carries energy.
        let scene = |gain: f64, offset: f64| {
            RgbImage::from_fn(96, 64, |x, y| {
                let (x, y) = (f64::from(x), f64::from(y));
                let v = 120.0
                    + 50.0 * (x / 9.0).sin()
                    + 40.0 * (y / 6.0).cos()
                    + 30.0 * ((x + 2.0 * y) / 13.0).sin();
                image::Rgb([(v * gain + offset).clamp(0.0, 255.0) as u8; 3])
            })
        };
        let h = hash(&scene(1.0, 0.0));
        assert!((h ^ hash(&scene(0.8, 30.0))).count_ones() <= 4);
        let flipped = image::imageops::flip_horizontal(&scene(1.0, 0.0));
        assert!((h ^ hash(&flipped)).count_ones() >= 10);
    }
}
