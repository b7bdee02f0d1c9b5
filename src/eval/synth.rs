//! A DISC21-style copy-detection benchmark made from any folder of photos: seeded,
//! deterministic edits of the kinds DISC21 queries carry (one to three per query), plus
//! distractor queries made from photos left out of the reference pool.
//!
//! Written in the DISC21 layout (`references/`, `queries/`, `ground_truth.csv`), with
//! `edits.csv` naming each query's edits, so that [`super::disc21`] evaluates it unchanged.
//! References link to the original files; nothing in the source folder is touched.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ab_glyph::{FontRef, PxScale};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::{rotate_about_center, warp, Interpolation, Projection};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::disc21::Layout;
use super::Progress;
use crate::decode;
use crate::error::{Error, Result};

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

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthOptions {
    /// Queries in all (copies and distractors); `None`: one per source photo, at most 2000.
    pub queries: Option<usize>,
    /// The share of queries that are distractors (their photo is not in the pool).
    pub distractors: f64,
    pub seed: u64,
}

/// One generated query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthQuery {
    pub id: String,
    /// The reference it copies; `None` for a distractor.
    pub reference: Option<String>,
    pub edits: Vec<Edit>,
}

/// What `build` wrote (and `synth.json` records, so that a re-run with the same options
/// reuses the files and the embedding cache).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthBenchmark {
    pub source: PathBuf,
    pub options: SynthOptions,
    pub references: usize,
    pub queries: Vec<SynthQuery>,
    /// Source photos that could not be decoded (left out).
    pub unreadable: Vec<String>,
    #[serde(skip)]
    pub reused: bool,
}

const MANIFEST: &str = "synth.json";
/// Bumped when the edits change, so that old benchmark folders are rebuilt.
const GENERATOR_VERSION: u32 = 1;
/// Queries are made from the photo scaled down to at most this side (DISC21 images are
/// about this size; it keeps generation quick on camera photos).
const MAX_QUERY_SIDE: u32 = 1024;

#[derive(Serialize, Deserialize)]
struct Manifest {
    generator: u32,
    benchmark: SynthBenchmark,
}

impl SynthBenchmark {
    pub fn layout(&self, out: &Path) -> Layout {
        Layout {
            references: out.join("references"),
            queries: out.join("queries"),
            ground_truth: out.join("ground_truth.csv"),
        }
    }
}

/// Builds the benchmark from the photos under `source` into `out` (or reuses what an earlier
/// run with the same options wrote there).
pub fn build(
    source: &Path,
    out: &Path,
    options: &SynthOptions,
    progress: &mut dyn Progress,
) -> Result<SynthBenchmark> {
    let source = std::fs::canonicalize(source).map_err(|e| Error::Io {
        path: source.to_path_buf(),
        source: e,
    })?;
    if let Some(previous) = reusable(out, &source, options) {
        return Ok(previous);
    }
    if !(0.0..1.0).contains(&options.distractors) {
        return Err(Error::Dataset {
            path: source,
            reason: format!(
                "--distractors must be a share in [0, 1), got {}",
                options.distractors
            ),
        });
    }
    // Not the benchmark's own files, where `out` lies inside `source`.
    let out_canonical = std::fs::canonicalize(out).ok();
    let mut photos: Vec<PathBuf> = crate::scan::images_under(&source)?
        .into_iter()
        .filter(|p| out_canonical.as_ref().is_none_or(|o| !p.starts_with(o)))
        .collect();
    if photos.len() < 2 {
        return Err(Error::Dataset {
            path: source,
            reason: format!(
                "needs at least 2 photos to build a benchmark, found {}",
                photos.len()
            ),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    photos.shuffle(&mut rng);

    let total = options.queries.unwrap_or(photos.len().min(2000)).max(1);
    let distractor_count =
        ((total as f64 * options.distractors).round() as usize).min(photos.len() - 1);
    let copies = total - distractor_count.min(total);
    // Distractors come from photos held out of the pool; those also serve as backgrounds.
    let (held_out, pool) = photos.split_at(distractor_count);
    let pool: Vec<PathBuf> = pool.to_vec();
    let held_out: Vec<PathBuf> = held_out.to_vec();

    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let references_dir = out.join("references");
    let queries_dir = out.join("queries");
    for dir in [&references_dir, &queries_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let _ = std::fs::remove_file(out.join(MANIFEST));

    // Queries: copies of pool photos (cycling when more are asked for than there are), then
    // distractors from held-out photos.
    let plans: Vec<(usize, Option<usize>, &PathBuf)> = (0..copies)
        .map(|i| (i, Some(i % pool.len()), &pool[i % pool.len()]))
        .chain((0..distractor_count).map(|j| (copies + j, None, &held_out[j])))
        .collect();
    progress.start("generating queries", plans.len());
    let fonts = Fonts::load();
    let made: Vec<Result<Vec<Edit>>> = plans
        .par_iter()
        .map(|&(n, _, photo)| {
            let mut rng = ChaCha8Rng::seed_from_u64(
                options.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let background = held_out.choose(&mut rng).or_else(|| pool.choose(&mut rng));
            let (image, edits) = make_query(photo, background, &fonts, &mut rng)?;
            save_jpeg(&image, &queries_dir.join(format!("Q{n:05}.jpg")), 95)?;
            Ok(edits)
        })
        .collect();
    progress.advance(made.len());
    // Pool photos that no query used are decoded too: a reference must be readable.
    let used: std::collections::HashSet<usize> = plans.iter().filter_map(|p| p.1).collect();
    let checked: Vec<(usize, Result<()>)> = (0..pool.len())
        .into_par_iter()
        .filter(|i| !used.contains(i))
        .map(|i| (i, decode_photo(&pool[i]).map(drop)))
        .collect();

    // A photo that cannot be decoded is reported once and left out: no reference, no query.
    let mut unreadable: BTreeMap<PathBuf, String> = BTreeMap::new();
    let outcomes = plans
        .iter()
        .map(|p| p.2)
        .zip(made.iter().map(|r| r.as_ref().err()))
        .chain(checked.iter().map(|(i, r)| (&pool[*i], r.as_ref().err())));
    for (photo, error) in outcomes {
        match error {
            None => {}
            Some(Error::Decode { source, .. }) => {
                unreadable
                    .entry(photo.clone())
                    .or_insert_with(|| source.to_string());
            }
            // Not about the photo (a full disk, say): the benchmark cannot be written.
            Some(other) => {
                return Err(Error::Dataset {
                    path: out.to_path_buf(),
                    reason: format!("writing the benchmark failed: {other}"),
                })
            }
        }
    }
    let unreadable_paths: std::collections::HashSet<PathBuf> = unreadable.keys().cloned().collect();
    let unreadable: Vec<Error> = unreadable
        .into_iter()
        .map(|(path, reason)| Error::Dataset { path, reason })
        .collect();
    unreadable.iter().for_each(|e| progress.file_failed(e));

    // References: the readable pool photos under DISC21 ids, linked (copied where links fail).
    let mut reference_ids: Vec<Option<String>> = vec![None; pool.len()];
    let mut references = 0;
    for (i, photo) in pool.iter().enumerate() {
        if unreadable_paths.contains(photo) {
            continue;
        }
        let ext = photo
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("jpg")
            .to_ascii_lowercase();
        let id = format!("R{references:06}");
        let link = references_dir.join(format!("{id}.{ext}"));
        link_or_copy(photo, &link).map_err(io(&link))?;
        reference_ids[i] = Some(id);
        references += 1;
    }
    let queries: Vec<SynthQuery> = plans
        .iter()
        .zip(made)
        .filter_map(|(&(n, reference, _), result)| {
            // A query exists only where its photo decoded, so its reference did too.
            let edits = result.ok()?;
            Some(SynthQuery {
                id: format!("Q{n:05}"),
                reference: reference.map(|r| reference_ids[r].clone().expect("readable")),
                edits,
            })
        })
        .collect();
    let unreadable: Vec<String> = unreadable.iter().map(|e| e.to_string()).collect();
    let benchmark = SynthBenchmark {
        source,
        options: options.clone(),
        references,
        queries,
        unreadable,
        reused: false,
    };
    write_files(out, &benchmark)?;
    Ok(benchmark)
}

/// Per edit kind, the queries (copies only) that carry it.
pub fn queries_by_edit(benchmark: &SynthBenchmark) -> BTreeMap<Edit, Vec<&SynthQuery>> {
    let mut by_edit: BTreeMap<Edit, Vec<&SynthQuery>> = BTreeMap::new();
    for q in benchmark.queries.iter().filter(|q| q.reference.is_some()) {
        for edit in &q.edits {
            by_edit.entry(*edit).or_default().push(q);
        }
    }
    by_edit
}

fn reusable(out: &Path, source: &Path, options: &SynthOptions) -> Option<SynthBenchmark> {
    let text = std::fs::read_to_string(out.join(MANIFEST)).ok()?;
    let manifest: Manifest = serde_json::from_str(&text).ok()?;
    let mut benchmark = manifest.benchmark;
    let same = manifest.generator == GENERATOR_VERSION
        && benchmark.source == source
        && &benchmark.options == options
        && benchmark
            .queries
            .iter()
            .all(|q| out.join("queries").join(format!("{}.jpg", q.id)).is_file());
    benchmark.reused = true;
    same.then_some(benchmark)
}

fn write_files(out: &Path, benchmark: &SynthBenchmark) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| Error::Io { path, source })
    };
    let mut gt = String::from("query_id,reference_id\n");
    let mut edits = String::from("query_id,reference_id,edits\n");
    for q in &benchmark.queries {
        let reference = q.reference.as_deref().unwrap_or("");
        gt.push_str(&format!("{},{reference}\n", q.id));
        let names: Vec<&str> = q.edits.iter().map(|e| e.name()).collect();
        edits.push_str(&format!("{},{reference},{}\n", q.id, names.join("+")));
    }
    write("ground_truth.csv", gt)?;
    write("edits.csv", edits)?;
    let manifest = Manifest {
        generator: GENERATOR_VERSION,
        benchmark: benchmark.clone(),
    };
    // Written last: its presence says the folder is complete.
    write(
        MANIFEST,
        serde_json::to_string_pretty(&manifest).expect("serialisable"),
    )
}

/// Reads `edits.csv` back (for reports on a benchmark folder).
pub fn read_edits(path: &Path) -> Result<BTreeMap<String, Vec<Edit>>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            let id = fields.next()?.to_string();
            let edits = fields
                .nth(1)?
                .split('+')
                .filter_map(Edit::from_name)
                .collect();
            Some((id, edits))
        })
        .collect())
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if std::os::unix::fs::symlink(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map(|_| ())
}

fn save_jpeg(image: &RgbImage, path: &Path, quality: u8) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    image::codecs::jpeg::JpegEncoder::new_with_quality(BufWriter::new(file), quality)
        .encode_image(image)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })
}

/// The fonts compiled into imgsim (see Cargo.toml): text and emoji overlays.
struct Fonts {
    text: FontRef<'static>,
    emoji: FontRef<'static>,
}

impl Fonts {
    fn load() -> Self {
        Self {
            text: FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
                .expect("the bundled font parses"),
            emoji: FontRef::try_from_slice(epaint_default_fonts::NOTO_EMOJI_REGULAR)
                .expect("the bundled font parses"),
        }
    }
}

/// Decodes a photo and applies one to three distinct random edits.
fn make_query(
    photo: &Path,
    background: Option<&PathBuf>,
    fonts: &Fonts,
    rng: &mut ChaCha8Rng,
) -> Result<(RgbImage, Vec<Edit>)> {
    let mut image = decode_photo(photo)?;
    let count = rng.random_range(1..=3);
    let mut edits: Vec<Edit> = Edit::ALL.choose_multiple(rng, count).copied().collect();
    // A background that cannot be decoded (or the photo itself) makes paste a plain
    // downscale into noise: still an edit of the same kind.
    let background = background
        .filter(|b| b.as_path() != photo)
        .and_then(|b| decode_photo(b).ok());
    for edit in &edits {
        image = apply(*edit, image, background.as_ref(), fonts, rng);
    }
    edits.sort();
    Ok((image, edits))
}

/// A photo at the size queries are made from. Large JPEGs decode at reduced size (they are
/// shrunk to `MAX_QUERY_SIDE` anyway).
fn decode_photo(path: &Path) -> Result<RgbImage> {
    decode::decode_file_for(path, Some(MAX_QUERY_SIDE / 2))
        .map(shrink)
        .map_err(|source| Error::Decode {
            path: path.to_path_buf(),
            source,
        })
}

fn shrink(image: RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let longest = w.max(h);
    if longest <= MAX_QUERY_SIDE {
        return image;
    }
    let scale = f64::from(MAX_QUERY_SIDE) / f64::from(longest);
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    imageops::resize(&image, nw, nh, FilterType::Triangle)
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
fn apply(
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
