//! The edits of a synthetic query, of the kinds DISC21's automated transformations (AugLy)
//! make: geometry (crop, rotate, flips, padding, perspective), colour, blur, JPEG quality,
//! pixelisation and overlays (text, emoji, shapes, pasting into another photo). Each is a pure
//! function of the image and a seeded RNG, so that a benchmark is byte-for-byte reproducible.

use ab_glyph::{FontRef, PxScale};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::{rotate_about_center, warp, Interpolation, Projection};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The kinds of edit, as DISC21's automated transformations (AugLy) name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edit {
    Crop,
    Rotate,
    Hflip,
    Vflip,
    Color,
    Grayscale,
    Blur,
    Jpeg,
    Pixelize,
    Pad,
    Perspective,
    Text,
    Emoji,
    Shapes,
    Paste,
}

impl Edit {
    pub const ALL: [Edit; 15] = [
        Edit::Crop,
        Edit::Rotate,
        Edit::Hflip,
        Edit::Vflip,
        Edit::Color,
        Edit::Grayscale,
        Edit::Blur,
        Edit::Jpeg,
        Edit::Pixelize,
        Edit::Pad,
        Edit::Perspective,
        Edit::Text,
        Edit::Emoji,
        Edit::Shapes,
        Edit::Paste,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Edit::Crop => "crop",
            Edit::Rotate => "rotate",
            Edit::Hflip => "hflip",
            Edit::Vflip => "vflip",
            Edit::Color => "color",
            Edit::Grayscale => "grayscale",
            Edit::Blur => "blur",
            Edit::Jpeg => "jpeg",
            Edit::Pixelize => "pixelize",
            Edit::Pad => "pad",
            Edit::Perspective => "perspective",
            Edit::Text => "text",
            Edit::Emoji => "emoji",
            Edit::Shapes => "shapes",
            Edit::Paste => "paste",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// The fonts compiled into imgsim (see Cargo.toml): text and emoji overlays.
pub(super) struct Fonts {
    text: FontRef<'static>,
    emoji: FontRef<'static>,
}

impl Fonts {
    pub(super) fn load() -> Self {
        Self {
            text: FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
                .expect("the bundled font parses"),
            emoji: FontRef::try_from_slice(epaint_default_fonts::NOTO_EMOJI_REGULAR)
                .expect("the bundled font parses"),
        }
    }
}

/// Draws `text` at `size` pixels in a random colour, starting in the left three quarters of
/// the image and above row `bottom`.
fn stamp(
    image: &mut RgbImage,
    font: &FontRef<'static>,
    text: &str,
    size: f64,
    bottom: u32,
    rng: &mut ChaCha8Rng,
) {
    let x = rng.random_range(0..image.width().max(2) * 3 / 4) as i32;
    let y = rng.random_range(0..bottom) as i32;
    let color = random_color(rng);
    imageproc::drawing::draw_text_mut(image, color, x, y, PxScale::from(size as f32), font, text);
}

fn random_color(rng: &mut ChaCha8Rng) -> Rgb<u8> {
    Rgb([rng.random(), rng.random(), rng.random()])
}

const WORDS: &[&str] = &[
    "SALE", "hello", "2021", "lol", "imgsim", "copy", "meme", "WOW", "summer", "#tbt", "news",
    "© photo", "best day", "OMG", "share",
];
const EMOJI: &[&str] = &[
    "😀", "😂", "❤", "👍", "🔥", "⭐", "🎉", "🐱", "🍕", "⚽", "😎", "🌈",
];

/// One edit; the parameter ranges follow AugLy's defaults where it has them.
pub(super) fn apply(
    edit: Edit,
    image: RgbImage,
    background: Option<&RgbImage>,
    fonts: &Fonts,
    rng: &mut ChaCha8Rng,
) -> RgbImage {
    let (w, h) = image.dimensions();
    match edit {
        Edit::Crop => {
            let (fw, fh) = (rng.random_range(0.4..0.9), rng.random_range(0.4..0.9));
            let (cw, ch) = (
                ((f64::from(w) * fw) as u32).max(1),
                ((f64::from(h) * fh) as u32).max(1),
            );
            let (x, y) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
            imageops::crop_imm(&image, x, y, cw, ch).to_image()
        }
        Edit::Rotate => {
            let degrees: f32 = if rng.random_bool(0.3) {
                *[90.0, 180.0, 270.0].choose(rng).expect("not empty")
            } else {
                rng.random_range(5.0..45.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 }
            };
            match degrees as i32 {
                90 => imageops::rotate90(&image),
                180 => imageops::rotate180(&image),
                270 => imageops::rotate270(&image),
                _ => rotate_about_center(
                    &image,
                    degrees.to_radians(),
                    Interpolation::Bilinear,
                    Rgb([0, 0, 0]),
                ),
            }
        }
        Edit::Hflip => imageops::flip_horizontal(&image),
        Edit::Vflip => imageops::flip_vertical(&image),
        Edit::Color => {
            let mut out = imageops::colorops::brighten(&image, rng.random_range(-60..60));
            out = imageops::colorops::contrast(&out, rng.random_range(-40.0..60.0));
            imageops::colorops::huerotate(&out, rng.random_range(-120..120))
        }
        Edit::Grayscale => {
            let gray = imageops::grayscale(&image);
            RgbImage::from_fn(w, h, |x, y| {
                let l = gray.get_pixel(x, y).0[0];
                Rgb([l, l, l])
            })
        }
        Edit::Blur => imageproc::filter::gaussian_blur_f32(&image, rng.random_range(1.5..5.0)),
        Edit::Jpeg => {
            let mut bytes = Vec::new();
            let quality = rng.random_range(5..30);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
                .encode_image(&image)
                .ok()
                .and_then(|()| image::load_from_memory(&bytes).ok())
                .map_or(image, |decoded| decoded.to_rgb8())
        }
        Edit::Pixelize => {
            let factor = rng.random_range(8..20);
            let small = imageops::resize(
                &image,
                (w / factor).max(1),
                (h / factor).max(1),
                FilterType::Triangle,
            );
            imageops::resize(&small, w, h, FilterType::Nearest)
        }
        Edit::Pad => {
            let pad = |rng: &mut ChaCha8Rng, side: u32| {
                (f64::from(side) * rng.random_range(0.0..0.3)) as u32
            };
            let (left, right, top, bottom) = (pad(rng, w), pad(rng, w), pad(rng, h), pad(rng, h));
            let mut out =
                RgbImage::from_pixel(w + left + right, h + top + bottom, random_color(rng));
            imageops::replace(&mut out, &image, i64::from(left), i64::from(top));
            out
        }
        Edit::Perspective => {
            let (wf, hf) = (w as f32, h as f32);
            let mut jitter = |x: f32, y: f32| {
                (
                    x + rng.random_range(-0.15..0.15) * wf,
                    y + rng.random_range(-0.15..0.15) * hf,
                )
            };
            let corners = [(0.0, 0.0), (wf, 0.0), (wf, hf), (0.0, hf)];
            let moved = [
                jitter(0.0, 0.0),
                jitter(wf, 0.0),
                jitter(wf, hf),
                jitter(0.0, hf),
            ];
            match Projection::from_control_points(corners, moved) {
                Some(p) => warp(&image, &p, Interpolation::Bilinear, Rgb([0, 0, 0])),
                None => image,
            }
        }
        Edit::Text => {
            let mut out = image;
            for _ in 0..rng.random_range(1..=3) {
                let size = f64::from(h) * rng.random_range(0.06..0.2);
                let text = *WORDS.choose(rng).expect("not empty");
                let bottom = h.max(2) * 4 / 5;
                stamp(&mut out, &fonts.text, text, size, bottom, rng);
            }
            out
        }
        Edit::Emoji => {
            let mut out = image;
            let size = f64::from(h.min(w)) * rng.random_range(0.2..0.5);
            let emoji = *EMOJI.choose(rng).expect("not empty");
            let bottom = h.max(2) * 3 / 4;
            stamp(&mut out, &fonts.emoji, emoji, size, bottom, rng);
            out
        }
        Edit::Shapes => {
            let mut out = image;
            for _ in 0..rng.random_range(1..=4) {
                let color = random_color(rng);
                let (x, y) = (
                    rng.random_range(0..w.max(1)) as i32,
                    rng.random_range(0..h.max(1)) as i32,
                );
                let size = (f64::from(w.min(h)) * rng.random_range(0.05..0.25)) as u32 + 1;
                if rng.random_bool(0.5) {
                    imageproc::drawing::draw_filled_circle_mut(
                        &mut out,
                        (x, y),
                        size as i32,
                        color,
                    );
                } else {
                    let rect = imageproc::rect::Rect::at(x, y).of_size(size * 2, size);
                    imageproc::drawing::draw_filled_rect_mut(&mut out, rect, color);
                }
            }
            out
        }
        Edit::Paste => {
            let mut canvas = match background {
                Some(b) => b.clone(),
                None => RgbImage::from_fn(w, h, |_, _| random_color(rng)),
            };
            let (cw, ch) = canvas.dimensions();
            let scale = rng.random_range(0.3..0.7)
                * (f64::from(cw) / f64::from(w)).min(f64::from(ch) / f64::from(h));
            let (pw, ph) = (
                ((f64::from(w) * scale) as u32).max(1),
                ((f64::from(h) * scale) as u32).max(1),
            );
            let small = imageops::resize(&image, pw, ph, FilterType::Triangle);
            let (x, y) = (
                rng.random_range(0..=cw.saturating_sub(pw)),
                rng.random_range(0..=ch.saturating_sub(ph)),
            );
            imageops::replace(&mut canvas, &small, i64::from(x), i64::from(y));
            canvas
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn photo() -> RgbImage {
        RgbImage::from_fn(120, 80, |x, y| {
            Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
        })
    }

    #[test]
    fn every_edit_changes_the_image_and_is_deterministic() {
        let fonts = Fonts::load();
        let background = RgbImage::from_pixel(200, 150, Rgb([10, 200, 30]));
        for edit in Edit::ALL {
            let run = || {
                let mut rng = ChaCha8Rng::seed_from_u64(7);
                apply(edit, photo(), Some(&background), &fonts, &mut rng)
            };
            let (a, b) = (run(), run());
            assert_eq!(a, b, "{edit:?} is not deterministic");
            assert!(a.width() > 0 && a.height() > 0);
            assert_ne!(a, photo(), "{edit:?} left the image unchanged");
        }
    }

    #[test]
    fn edit_names_round_trip() {
        for edit in Edit::ALL {
            assert_eq!(Edit::from_name(edit.name()), Some(edit));
        }
    }
}
