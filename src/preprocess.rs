//! Upright RGB pixels -> the model's input tensor, equal to the Hugging Face image processors
//! (`CLIPImageProcessor`, `BitImageProcessor`): resize the shortest edge (bicubic, antialiased
//! like PIL), center crop, scale by 1/255, normalise with the model's mean and std.

use std::path::Path;

use image::RgbImage;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::resize::{resize_window, resize_window_nearest, Filter};

/// The resampling filter of the resize step (PIL's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resample {
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
}

impl Resample {
    /// PIL's integer codes, as `preprocessor_config.json` stores them.
    fn from_pil_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Nearest),
            1 => Some(Self::Lanczos),
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            _ => None,
        }
    }

    fn filter(self) -> Option<Filter> {
        match self {
            Self::Nearest => None,
            Self::Bilinear => Some(Filter::Bilinear),
            Self::Bicubic => Some(Filter::Bicubic),
            Self::Lanczos => Some(Filter::Lanczos),
        }
    }
}

/// One model's preprocessing recipe.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Preprocess {
    /// Resize so that the shorter side has this many pixels (`None`: no resize).
    pub shortest_edge: Option<u32>,
    /// Center crop to this square size (`None`: no crop).
    pub crop: Option<u32>,
    pub resample: Resample,
    #[serde(default = "default_rescale")]
    pub rescale: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

fn default_rescale() -> f64 {
    1.0 / 255.0
}

impl Preprocess {
    /// Reads a Hugging Face `preprocessor_config.json` (CLIP and BiT processors).
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            cause: source,
        })?;
        Self::from_hf_json(&text).map_err(|reason| Error::ModelFiles {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn from_hf_json(text: &str) -> std::result::Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let flag = |key: &str| v.get(key).and_then(|x| x.as_bool()).unwrap_or(true);
        let shortest_edge = if flag("do_resize") {
            let size = v.get("size").ok_or("no `size`")?;
            let edge = size
                .as_u64()
                .or_else(|| size.get("shortest_edge").and_then(|x| x.as_u64()))
                .ok_or("only `size` as a shortest edge is supported")?;
            Some(edge as u32)
        } else {
            None
        };
        let crop = if flag("do_center_crop") {
            let size = v.get("crop_size").ok_or("no `crop_size`")?;
            let (h, w) = match size.as_u64() {
                Some(s) => (s, s),
                None => (
                    size.get("height")
                        .and_then(|x| x.as_u64())
                        .ok_or("bad crop_size")?,
                    size.get("width")
                        .and_then(|x| x.as_u64())
                        .ok_or("bad crop_size")?,
                ),
            };
            if h != w {
                return Err(format!("only square crops are supported, not {h}x{w}"));
            }
            Some(h as u32)
        } else {
            None
        };
        let resample = match v.get("resample").and_then(|x| x.as_u64()) {
            None => Resample::Bicubic,
            Some(code) => Resample::from_pil_code(code)
                .ok_or_else(|| format!("unsupported resample code {code}"))?,
        };
        let rescale = if flag("do_rescale") {
            v.get("rescale_factor")
                .and_then(|x| x.as_f64())
                .unwrap_or(1.0 / 255.0)
        } else {
            1.0
        };
        let triple = |key: &str, default: [f32; 3]| -> std::result::Result<[f32; 3], String> {
            if !flag("do_normalize") {
                return Ok(default);
            }
            let values: Vec<f32> = match v.get(key) {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| x as f32)
                    .collect(),
                _ => return Err(format!("no `{key}`")),
            };
            values
                .try_into()
                .map_err(|_| format!("`{key}` must have three values"))
        };
        Ok(Self {
            shortest_edge,
            crop,
            resample,
            rescale,
            mean: triple("image_mean", [0.0; 3])?,
            std: triple("image_std", [1.0; 3])?,
        })
    }

    /// The size after the shortest-edge resize, as (width, height); transformers'
    /// `get_resize_output_image_size`, including its truncation of the long side.
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        let Some(edge) = self.shortest_edge else {
            return (width, height);
        };
        let (short, long) = if width <= height {
            (width, height)
        } else {
            (height, width)
        };
        let new_long = (f64::from(edge) * f64::from(long) / f64::from(short)) as u32;
        if width <= height {
            (edge, new_long)
        } else {
            (new_long, edge)
        }
    }

    /// Resize and crop: the 8-bit image the model sees, before scaling and normalisation.
    /// Only the pixels inside the crop are computed; they equal PIL's resize-then-crop.
    pub fn resize_and_crop(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = image.dimensions();
        let (rw, rh) = self.resized_size(w, h);
        let Some(size) = self.crop else {
            return self.resize_window(image, rw, rh, (0, 0, rw, rh));
        };
        // transformers' `center_crop`: the window starts at `(side - size) // 2` (floor
        // division); where the image is smaller than the crop, the rest is zeros.
        let top = (i64::from(rh) - i64::from(size)).div_euclid(2);
        let left = (i64::from(rw) - i64::from(size)).div_euclid(2);
        let (x0, y0) = (left.max(0), top.max(0));
        let x1 = (left + i64::from(size)).min(i64::from(rw));
        let y1 = (top + i64::from(size)).min(i64::from(rh));
        let inside = (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32);
        let part = self.resize_window(image, rw, rh, inside);
        if part.dimensions() == (size, size) {
            return part;
        }
        let mut padded = RgbImage::new(size, size);
        image::imageops::replace(&mut padded, &part, x0 - left, y0 - top);
        padded
    }

    fn resize_window(
        &self,
        image: &RgbImage,
        rw: u32,
        rh: u32,
        window: (u32, u32, u32, u32),
    ) -> RgbImage {
        match self.resample.filter() {
            Some(filter) => resize_window(image, rw, rh, window, filter),
            None => resize_window_nearest(image, rw, rh, window),
        }
    }

    /// The full recipe: a `3 x H x W` planar float tensor, as `pixel_values[i]` of transformers.
    pub fn pixel_values(&self, image: &RgbImage) -> Vec<f32> {
        let cropped = self.resize_and_crop(image);
        self.normalize(&cropped)
    }

    /// Scale and normalise an 8-bit image into planar floats. transformers rescales in f64 and
    /// casts to f32, then normalises in f32; a 256-entry table per channel reproduces it exactly.
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let tables: [[f32; 256]; 3] = std::array::from_fn(|c| {
            std::array::from_fn(|v| {
                let scaled = (v as f64 * self.rescale) as f32;
                (scaled - self.mean[c]) / self.std[c]
            })
        });
        let plane = (image.width() * image.height()) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, px) in image.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = tables[c][px.0[c] as usize];
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // the constants as transformers publishes them
mod tests {
    use super::*;

    fn clip() -> Preprocess {
        Preprocess {
            shortest_edge: Some(224),
            crop: Some(224),
            resample: Resample::Bicubic,
            rescale: 1.0 / 255.0,
            mean: [0.48145466, 0.4578275, 0.40821073],
            std: [0.26862954, 0.26130258, 0.27577711],
        }
    }

    fn crop_only(size: u32) -> Preprocess {
        Preprocess {
            shortest_edge: None,
            crop: Some(size),
            ..clip()
        }
    }

    #[test]
    fn shortest_edge_truncates_the_long_side_like_transformers() {
        let p = clip();
        assert_eq!(p.resized_size(640, 480), (298, 224)); // 224 * 640 / 480 = 298.67
        assert_eq!(p.resized_size(480, 640), (224, 298));
        assert_eq!(p.resized_size(10, 10), (224, 224));
        assert_eq!(p.resized_size(100, 1000), (224, 2240));
    }

    #[test]
    fn center_crop_takes_the_floor_centred_window() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = crop_only(2).resize_and_crop(&img);
        // top = (3 - 2) // 2 = 0, left = (5 - 2) // 2 = 1
        assert_eq!(c.get_pixel(0, 0).0, [1, 0, 0]);
        assert_eq!(c.get_pixel(1, 1).0, [2, 1, 0]);
    }

    #[test]
    fn center_crop_pads_a_small_image_with_zeros() {
        let img = RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]));
        let c = crop_only(3).resize_and_crop(&img);
        // transformers pads by ceil((3 - 1) / 2) = 1 on the top and left.
        assert_eq!(c.get_pixel(1, 1).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn normalise_is_planar_and_uses_mean_and_std() {
        let p = clip();
        let img = RgbImage::from_pixel(2, 1, image::Rgb([255, 0, 128]));
        let v = p.normalize(&img);
        assert_eq!(v.len(), 6);
        assert!((v[0] - (1.0 - 0.48145466) / 0.26862954).abs() < 1e-6);
        assert!((v[2] - (0.0 - 0.4578275) / 0.26130258).abs() < 1e-6);
        assert_eq!(v[4], v[5]);
    }

    #[test]
    fn reads_hugging_face_processor_configs() {
        let bit = r#"{"do_resize": true, "size": {"shortest_edge": 256}, "resample": 3,
            "do_center_crop": true, "crop_size": {"height": 224, "width": 224},
            "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}"#;
        let p = Preprocess::from_hf_json(bit).unwrap();
        assert_eq!(p.shortest_edge, Some(256));
        assert_eq!(p.crop, Some(224));
        assert_eq!(p.resample, Resample::Bicubic);
        assert_eq!(p.mean, [0.485, 0.456, 0.406]);
        let old_clip = r#"{"size": 224, "crop_size": 224, "resample": 3,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#;
        assert_eq!(Preprocess::from_hf_json(old_clip).unwrap().crop, Some(224));
        assert!(Preprocess::from_hf_json(r#"{"size": 224, "resample": 9}"#).is_err());
    }
}
