//! File bytes -> upright 8-bit RGB pixels, the way PIL's `Image.open(..).convert("RGB")` does it,
//! plus EXIF orientation (which the reference does not apply: see README).

use std::io::{Cursor, Read};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::error::DecodeError;

/// The largest image accepted: twice PIL's `MAX_IMAGE_PIXELS`, which is where PIL itself refuses
/// an image as a decompression bomb. A 48 MP camera photo is well inside it.
pub const MAX_PIXELS: u64 = 2 * 89_478_485;

/// Decoders may allocate this much while decoding one image (16-bit RGBA at the pixel limit).
const MAX_DECODE_ALLOC: u64 = MAX_PIXELS * 8 + (64 << 20);

/// No image within [`MAX_PIXELS`] needs a larger file (16-bit RGBA, uncompressed, plus room
/// for metadata); a larger file is refused before it is read.
pub const MAX_FILE_BYTES: u64 = MAX_DECODE_ALLOC;

/// Reads an image file's bytes, refusing before reading it whole what cannot be an image: not
/// a regular file (a FIFO would block forever, a device never end), over [`MAX_FILE_BYTES`],
/// or no known format in its first bytes.
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, DecodeError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(DecodeError::NotAFile);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(DecodeError::FileTooLarge {
            bytes: meta.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    // The magic bytes first: a 5 GB file that is no image is not read to find out.
    (&mut file).take(32).read_to_end(&mut bytes)?;
    if crate::metadata::sniff(&bytes).is_none() {
        return Err(DecodeError::UnknownFormat);
    }
    bytes.reserve_exact((meta.len() as usize).saturating_sub(bytes.len()));
    file.take(MAX_FILE_BYTES + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        // It grew while being read.
        return Err(DecodeError::FileTooLarge {
            bytes: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Whether `path` could be read as an image at all (a regular file), said before any model is
/// loaded for it.
pub fn check_readable(path: &Path) -> crate::Result<()> {
    let error = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(_) => DecodeError::NotAFile,
        Err(e) => DecodeError::Io(e),
    };
    Err(crate::Error::Decode {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads and decodes one image file.
pub fn decode_file(path: &Path) -> Result<RgbImage, DecodeError> {
    decode_bytes(&read_image_file(path)?)
}

/// A JPEG is decoded at 1/2, 1/4 or 1/8 of its size (scaled inverse DCT, far less work) only
/// while its shorter side stays at least this many times the size the model resizes it to.
/// `imgsim bench embed --camera` measures the effect on the model input: at this margin the mean
/// absolute difference from full decoding stays under 1/255.
pub const DCT_SCALING_MARGIN: u32 = 2;

/// Reads and decodes one image file for a model that resizes its shorter side to
/// `shortest_edge`: large JPEGs are decoded at reduced size (see [`DCT_SCALING_MARGIN`]).
pub fn decode_file_for(path: &Path, shortest_edge: Option<u32>) -> Result<RgbImage, DecodeError> {
    decode_bytes_for(&read_image_file(path)?, shortest_edge)
}

/// [`decode_bytes`], but a large JPEG may be decoded at reduced size.
pub fn decode_bytes_for(bytes: &[u8], shortest_edge: Option<u32>) -> Result<RgbImage, DecodeError> {
    if let Some(edge) = shortest_edge {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            if let Some(image) = decode_jpeg_reduced(bytes, edge)? {
                return Ok(image);
            }
        }
    }
    decode_bytes(bytes)
}

/// The reduced-size decode, or `None` when the JPEG is too small for it to pay (or is a kind
/// the scaled decoder does not handle, such as CMYK): then the caller decodes at full size.
fn decode_jpeg_reduced(bytes: &[u8], shortest_edge: u32) -> Result<Option<RgbImage>, DecodeError> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    if decoder.read_info().is_err() {
        return Ok(None); // the full decoder gives the precise error
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_size(width, height)?;
    let short = width.min(height);
    let Some(reduction) = [8, 4, 2]
        .into_iter()
        .find(|r| short / r >= DCT_SCALING_MARGIN * shortest_edge)
    else {
        return Ok(None);
    };
    if !matches!(
        info.pixel_format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return Ok(None);
    }
    if !jpeg_has_end_marker(bytes) {
        return Err(DecodeError::Corrupt(
            "JPEG data ends before the image does".into(),
        ));
    }
    #[cfg(feature = "turbojpeg")]
    if let Some(rgb) = turbo::decode(bytes, reduction) {
        return Ok(Some(upright_jpeg(rgb, bytes)));
    }
    let (w, h) = decoder
        .scale(
            width.div_ceil(reduction) as u16,
            height.div_ceil(reduction) as u16,
        )
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let data = decoder
        .decode()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (w, h) = (u32::from(w), u32::from(h));
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => data,
    };
    let Some(rgb) = RgbImage::from_raw(w, h, rgb) else {
        return Err(DecodeError::Corrupt(
            "JPEG decoder returned a short buffer".into(),
        ));
    };
    Ok(Some(upright_jpeg(rgb, bytes)))
}

/// A decoded JPEG turned upright by its EXIF orientation, read without decoding pixels.
fn upright_jpeg(rgb: RgbImage, bytes: &[u8]) -> RgbImage {
    let orientation = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes))
        .and_then(|mut d| d.orientation())
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut upright = DynamicImage::ImageRgb8(rgb);
    upright.apply_orientation(orientation);
    upright.into_rgb8()
}

/// A whole JPEG through libjpeg-turbo: `None` when it does not decode it cleanly, and the
/// pure-Rust decoder takes the file (and gives the precise error, if any).
#[cfg(feature = "turbojpeg")]
fn decode_jpeg_full(bytes: &[u8]) -> Result<Option<RgbImage>, DecodeError> {
    let checked = |width, height| {
        check_size(width, height)?;
        // libjpeg-turbo, like the `image` crate, fills a truncated scan with grey; PIL refuses it.
        if !jpeg_has_end_marker(bytes) {
            return Err(DecodeError::Corrupt(
                "JPEG data ends before the image does".into(),
            ));
        }
        Ok(())
    };
    Ok(turbo::decode_checked(bytes, 1, checked)?.map(|rgb| upright_jpeg(rgb, bytes)))
}

/// Decodes an in-memory image: the first frame of an animation, converted to RGB, turned upright.
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    match crate::metadata::sniff(bytes) {
        Some(format @ ("heic" | "heif" | "avif")) => return heif::decode(bytes, format),
        Some("raw") => return raw::decode(bytes)?.ok_or(DecodeError::UnknownFormat),
        // A camera RAW in a TIFF container (CR2, NEF, ARW, DNG, ...), or a plain TIFF.
        Some("tiff") => match raw::decode(bytes) {
            Ok(Some(image)) => return Ok(image),
            Ok(None) => {}
            // rawler took it for a camera's (a scanner's TIFF may name a camera maker) and
            // failed: a plain TIFF reader may still read it, but what it reads of a damaged
            // RAW is the thumbnail in front, so only a photo-sized image is taken.
            Err(raw_error) => {
                return match decode_plain(bytes) {
                    Ok(image) if image.width().max(image.height()) >= raw::MIN_PREVIEW_EDGE => {
                        Ok(image)
                    }
                    _ => Err(raw_error),
                };
            }
        },
        #[cfg(feature = "turbojpeg")]
        Some("jpeg") => {
            if let Some(image) = decode_jpeg_full(bytes)? {
                return Ok(image);
            }
        }
        _ => {}
    }
    decode_plain(bytes)
}

/// The formats of the `image` crate.
fn decode_plain(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(DecodeError::Io)?;
    let Some(reader_format) = reader.format() else {
        return Err(DecodeError::UnknownFormat);
    };
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height)?;
    // A broken EXIF block should not cost the photo: fall back to "as stored".
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let decoded = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    // The JPEG decoder fills a truncated scan with grey instead of failing; PIL refuses it.
    if reader_format == image::ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        return Err(DecodeError::Corrupt(
            "JPEG data ends before the image does".into(),
        ));
    }
    let mut rgb = DynamicImage::ImageRgb8(to_rgb8(decoded));
    rgb.apply_orientation(orientation);
    Ok(rgb.into_rgb8())
}

/// The width and height of an image file as stored, read from its header (`None` when it
/// is no image imgsim can read).
pub fn dimensions(path: &Path) -> Option<(u32, u32)> {
    match crate::metadata::sniff_file(path)? {
        format @ ("heic" | "heif" | "avif") => {
            heif::dimensions(&read_image_file(path).ok()?, format).ok()
        }
        "raw" => raw::dimensions(&read_image_file(path).ok()?),
        "tiff" if crate::scan::is_raw_extension(path) => {
            raw::dimensions(&read_image_file(path).ok()?)
        }
        _ => image::image_dimensions(path).ok(),
    }
}

/// Camera RAW files through `rawler`: the full-size JPEG the camera rendered and embedded
/// (fast, and what the camera showed), else a large embedded preview, else a decode of the
/// sensor data (demosaiced and developed by rawler's defaults). The RAW's EXIF orientation is
/// applied to what is taken from it. Bounded as every format: the embedded JPEGs by the
/// `image` crate's default allocation limit (512 MiB), the sensor data by [`MAX_PIXELS`]
/// before it is decoded; a panic in the parser is a corrupt file, not a crash.
mod raw {
    use super::{check_size, to_rgb8, DecodeError};
    use image::{DynamicImage, RgbImage};
    use rawler::decoders::RawDecodeParams;
    use rawler::rawsource::RawSource;

    /// An embedded preview smaller than this on its longer side is not used (the sensor
    /// data is decoded instead): it would be a thumbnail, not the photo.
    pub const MIN_PREVIEW_EDGE: u32 = 1024;

    /// The photo in a RAW file, or `None` when rawler knows no camera format in `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Option<RgbImage>, DecodeError> {
        quietly(|| decode_unguarded(bytes))
            .unwrap_or_else(|| Err(corrupt("the RAW parser failed on this file")))
    }

    std::thread_local! {
        static IN_RAWLER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Runs `f`, turning a panic in it into `None` without the panic message on standard
    /// error: rawler panics on some damaged files (an `assert` on a zero chunk size, found by
    /// fuzzing), which is this file's error, not a crash to report. Panics elsewhere, on other
    /// threads or outside `f`, are printed as before.
    fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !IN_RAWLER.with(|flag| flag.get()) {
                    previous(info);
                }
            }));
        });
        IN_RAWLER.with(|flag| flag.set(true));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        IN_RAWLER.with(|flag| flag.set(false));
        result.ok()
    }

    fn corrupt(reason: impl std::fmt::Display) -> DecodeError {
        DecodeError::Corrupt(format!("RAW: {reason}"))
    }

    /// Whether every entry of the TIFF structure rawler will read (the IFD chain and the
    /// sub-IFDs it follows) keeps its data inside the file. rawler allocates what an entry's
    /// count says before reading it: a damaged count of 4 billion asked for 30 GB and ended
    /// the process (found by fuzzing). Non-TIFF containers (CR3, RAF) pass.
    pub fn tiff_is_sound(bytes: &[u8]) -> bool {
        let big = match bytes.get(..2) {
            Some(b"II") => false,
            Some(b"MM") => true,
            _ => return true,
        };
        let u16_at = |at: usize| -> Option<u32> {
            let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
            Some(u32::from(if big {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }))
        };
        let u32_at = |at: usize| -> Option<u32> {
            let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
            Some(if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        };
        // Byte size of one value of each TIFF type (rawler reads unknown types as bytes).
        const SHIFT: [u32; 14] = [0, 0, 0, 1, 2, 3, 0, 0, 1, 2, 3, 2, 3, 2];
        const SUB_IFDS: [u32; 4] = [330, 34665, 34853, 34675];
        let Some(first) = u32_at(4) else {
            return false;
        };
        let mut pending = vec![first];
        let mut seen = std::collections::HashSet::new();
        while let Some(offset) = pending.pop() {
            let at = offset as usize;
            if offset == 0 || !seen.insert(offset) || seen.len() > 256 {
                continue;
            }
            let Some(count) = u16_at(at) else {
                return false;
            };
            for i in 0..count.min(10_000) as usize {
                let entry = at + 2 + i * 12;
                let (Some(tag), Some(kind), Some(n)) =
                    (u16_at(entry), u16_at(entry + 2), u32_at(entry + 4))
                else {
                    break; // a truncated IFD: rawler stops there too
                };
                let kind = if kind == 0 || kind > 12 { 7 } else { kind };
                let size = u64::from(n) << SHIFT[kind as usize];
                let data = if size <= 4 {
                    (entry + 8) as u64
                } else {
                    u64::from(u32_at(entry + 8).unwrap_or(u32::MAX))
                };
                if data + size > bytes.len() as u64 {
                    return false;
                }
                if SUB_IFDS.contains(&tag) && matches!(kind, 4 | 13) {
                    for k in 0..u64::from(n).min(64) {
                        if let Some(sub) = u32_at((data + k * 4) as usize) {
                            pending.push(sub);
                        }
                    }
                }
            }
            if let Some(next) = u32_at(at + 2 + count as usize * 12) {
                pending.push(next);
            }
        }
        true
    }

    fn decode_unguarded(bytes: &[u8]) -> Result<Option<RgbImage>, DecodeError> {
        if !tiff_is_sound(bytes) {
            return Err(corrupt(
                "an entry of its TIFF structure points past the end of the file",
            ));
        }
        let source = RawSource::new_from_slice(bytes);
        let Ok(decoder) = rawler::get_decoder(&source) else {
            return Ok(None);
        };
        let params = RawDecodeParams::default();
        let orientation = decoder
            .raw_metadata(&source, &params)
            .ok()
            .and_then(|m| m.exif.orientation)
            .and_then(|o| image::metadata::Orientation::from_exif(o.min(255) as u8))
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        let large = |image: &DynamicImage| image.width().max(image.height()) >= MIN_PREVIEW_EDGE;
        let embedded = match decoder.full_image(&source, &params) {
            Ok(Some(image)) => Some(image),
            _ => decoder
                .preview_image(&source, &params)
                .ok()
                .flatten()
                .filter(large),
        };
        let mut image = match embedded {
            Some(image) => image,
            None => develop(&source, &params)?,
        };
        check_size(image.width(), image.height())?;
        image.apply_orientation(orientation);
        Ok(Some(to_rgb8(image)))
    }

    /// The sensor data, demosaiced and developed, for a RAW without a usable preview.
    fn develop(source: &RawSource, params: &RawDecodeParams) -> Result<DynamicImage, DecodeError> {
        // The size first, without decoding pixels (rawler's dummy decode).
        let shape = rawler::global_loader()
            .decode(source, params, true)
            .map_err(corrupt)?;
        check_size(
            u32::try_from(shape.width).unwrap_or(u32::MAX),
            u32::try_from(shape.height).unwrap_or(u32::MAX),
        )?;
        let raw = rawler::decode(source, params).map_err(corrupt)?;
        rawler::imgop::develop::RawDevelop::default()
            .develop_intermediate(&raw)
            .map_err(corrupt)?
            .to_dynamic_image()
            .ok_or_else(|| corrupt("the developed image has no pixels"))
    }

    /// Width and height of the sensor image in a RAW file, read without decoding pixels.
    pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
        if !tiff_is_sound(bytes) {
            return None;
        }
        quietly(|| {
            let source = RawSource::new_from_slice(bytes);
            let shape = rawler::global_loader()
                .decode(&source, &RawDecodeParams::default(), true)
                .ok()?;
            Some((
                u32::try_from(shape.width).ok()?,
                u32::try_from(shape.height).ok()?,
            ))
        })
        .flatten()
    }
}

/// JPEG through the system libjpeg-turbo (the `turbojpeg` feature), the library PIL decodes
/// JPEGs with, at its defaults (accurate integer inverse DCT, smooth chroma upsampling): the
/// same pixels as the reference, bit for bit (checked over coco128 against PIL 13 with
/// libjpeg-turbo 3.2 and Debian's 2.1.5), and, scaled by 1/2, 1/4 or 1/8 in the inverse DCT,
/// PIL's `draft` mode. What it does not decode cleanly (CMYK, or a warning about damaged data)
/// goes to the pure-Rust decoder instead, so no file reads worse than without it.
#[cfg(feature = "turbojpeg")]
mod turbo {
    use std::cell::RefCell;

    use super::DecodeError;
    use image::RgbImage;
    use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat};

    thread_local! {
        /// One decompressor per thread, made on first use (it keeps libjpeg's work buffers).
        static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
    }

    /// Runs `f` with this thread's decompressor; a failure drops it, so that the next file
    /// starts from a fresh one.
    fn with_decompressor<T>(f: impl FnOnce(&mut Decompressor) -> Option<T>) -> Option<T> {
        DECOMPRESSOR.with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = Decompressor::new().ok();
            }
            let result = f(slot.as_mut()?);
            if result.is_none() {
                *slot = None;
            }
            result
        })
    }

    /// The image at 1/`reduction` of its size (1, 2, 4 or 8: each side rounded up, as the
    /// scaled inverse DCT gives it), as RGB, or `None`. The caller has checked the size.
    pub fn decode(bytes: &[u8], reduction: u32) -> Option<RgbImage> {
        decode_checked(bytes, reduction, |_, _| Ok(()))
            .ok()
            .flatten()
    }

    /// [`decode`], with `check` given the full size from the header before any pixel is
    /// decoded: its error is the file's.
    pub fn decode_checked(
        bytes: &[u8],
        reduction: u32,
        check: impl FnOnce(u32, u32) -> Result<(), DecodeError>,
    ) -> Result<Option<RgbImage>, DecodeError> {
        let mut refused = None;
        let image = with_decompressor(|d| {
            let header = d.read_header(bytes).ok()?;
            if matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK) {
                return None;
            }
            let size = (
                header.width.try_into().ok()?,
                header.height.try_into().ok()?,
            );
            if let Err(e) = check(size.0, size.1) {
                refused = Some(e);
                return None;
            }
            let reduction = reduction as usize;
            let width = header.width.div_ceil(reduction);
            let height = header.height.div_ceil(reduction);
            let mut pixels = Vec::new();
            pixels.try_reserve_exact(width * height * 3).ok()?;
            pixels.resize(width * height * 3, 0);
            // Asked for a smaller size, TurboJPEG scales by the largest factor that fits it:
            // 1/`reduction` exactly, for these sizes.
            let image = Image {
                pixels: &mut pixels[..],
                width,
                pitch: width * 3,
                height,
                format: PixelFormat::RGB,
            };
            // An error here includes libjpeg's warnings (damaged data it decoded around).
            d.decompress(bytes, image).ok()?;
            RgbImage::from_raw(width.try_into().ok()?, height.try_into().ok()?, pixels)
        });
        match refused {
            Some(e) => Err(e),
            None => Ok(image),
        }
    }
}

/// HEIC, HEIF and AVIF through libheif (the `heif` feature): the primary image, with the
/// container's own rotation and mirroring applied (HEIF stores them as transforms, not as
/// the EXIF tag, which libheif tells readers to ignore), alpha dropped as PIL's
/// `convert("RGB")` does, under the same pixel bound as every other format.
#[cfg(feature = "heif")]
mod heif {
    use super::{check_size, DecodeError};
    use image::RgbImage;
    use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};

    fn library() -> &'static LibHeif {
        static LIBRARY: std::sync::OnceLock<LibHeif> = std::sync::OnceLock::new();
        LIBRARY.get_or_init(LibHeif::new)
    }

    fn corrupt(e: libheif_rs::HeifError) -> DecodeError {
        DecodeError::Corrupt(format!("libheif: {}", e.message))
    }

    pub fn dimensions(bytes: &[u8], _format: &str) -> Result<(u32, u32), DecodeError> {
        let context = HeifContext::read_from_bytes(bytes).map_err(corrupt)?;
        let handle = context.primary_image_handle().map_err(corrupt)?;
        Ok((handle.width(), handle.height()))
    }

    pub fn decode(bytes: &[u8], _format: &str) -> Result<RgbImage, DecodeError> {
        let library = library();
        let context = HeifContext::read_from_bytes(bytes).map_err(corrupt)?;
        let handle = context.primary_image_handle().map_err(corrupt)?;
        check_size(handle.width(), handle.height())?;
        let image = library
            .decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None)
            .map_err(corrupt)?;
        let planes = image.planes();
        let Some(plane) = planes.interleaved else {
            return Err(DecodeError::Corrupt("libheif returned no RGB plane".into()));
        };
        let (width, height) = (plane.width, plane.height);
        check_size(width, height)?;
        let row = width as usize * 3;
        let mut rgb = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            let start = y * plane.stride;
            let Some(line) = plane.data.get(start..start + row) else {
                return Err(DecodeError::Corrupt(
                    "libheif returned a short buffer".into(),
                ));
            };
            rgb.extend_from_slice(line);
        }
        RgbImage::from_raw(width, height, rgb)
            .ok_or_else(|| DecodeError::Corrupt("libheif returned a short buffer".into()))
    }
}

/// Without libheif: HEIC, HEIF and AVIF files get a per-file error that says what to build.
#[cfg(not(feature = "heif"))]
mod heif {
    use super::DecodeError;
    use image::RgbImage;

    fn not_built_in(format: &str) -> DecodeError {
        DecodeError::NotBuiltIn {
            format: if format == "avif" {
                "AVIF"
            } else {
                "HEIC/HEIF"
            },
            feature: "heif",
            needs: "libheif-dev at build time",
        }
    }

    pub fn dimensions(_bytes: &[u8], format: &str) -> Result<(u32, u32), DecodeError> {
        Err(not_built_in(format))
    }

    pub fn decode(_bytes: &[u8], format: &str) -> Result<RgbImage, DecodeError> {
        Err(not_built_in(format))
    }
}

/// Refuses empty images and decompression bombs before any pixel is decoded.
fn check_size(width: u32, height: u32) -> Result<(), DecodeError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(DecodeError::Empty { width, height });
    }
    if pixels > MAX_PIXELS {
        return Err(DecodeError::TooLarge {
            width,
            height,
            pixels,
            limit: MAX_PIXELS,
        });
    }
    Ok(())
}

/// PIL's `convert("RGB")`: grey is replicated, alpha is dropped (not composited over a
/// background), 16-bit samples keep their high byte (PIL's own 16-bit PNG unpacking).
fn to_rgb8(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_) => {
            let rgb16 = image.into_rgb16();
            let (w, h) = rgb16.dimensions();
            let high_bytes = rgb16.into_raw().into_iter().map(|v| (v >> 8) as u8);
            RgbImage::from_raw(w, h, high_bytes.collect()).expect("same dimensions")
        }
        // Luma, LumaA, Rgba: replicate grey and drop alpha. Float images: clamped to [0, 1].
        other => other.into_rgb8(),
    }
}

/// True when the end-of-image marker follows the first scan of the main image. (An EXIF
/// thumbnail carries its own end marker, earlier in the file: skip the header segments.)
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    while pos + 4 <= bytes.len() {
        if bytes[pos] != 0xFF {
            return false;
        }
        let marker = bytes[pos + 1];
        if marker == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        let length = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        if marker == 0xDA {
            let scan = &bytes[(pos + 2 + length).min(bytes.len())..];
            return scan.windows(2).rev().any(|w| w == [0xFF, 0xD9]);
        }
        pos += 2 + length;
    }
    false
}

fn image_error(err: image::ImageError) -> DecodeError {
    match err {
        image::ImageError::IoError(e) => DecodeError::Corrupt(e.to_string()),
        image::ImageError::Limits(e) => DecodeError::Corrupt(format!("decoder limit reached: {e}")),
        image::ImageError::Unsupported(e) => DecodeError::Corrupt(format!("unsupported: {e}")),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageFormat, Luma, Rgba, RgbaImage};

    #[test]
    fn a_scanners_tiff_that_names_a_camera_maker_is_read_as_a_tiff() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/raw/scan.tif");
        let image = decode_file(&path).unwrap();
        assert_eq!(image.dimensions(), (1040, 24));
        // A DNG cut short is an error, not its thumbnail.
        let dng = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/raw/scene.dng"),
        )
        .unwrap();
        assert!(decode_bytes(&dng[..dng.len() / 3]).is_err());
        // An entry whose count says 4 billion values (rawler would allocate 30 GB for it).
        let mut huge = dng.clone();
        let ifd = u32::from_le_bytes(huge[4..8].try_into().unwrap()) as usize;
        huge[ifd + 2 + 4..ifd + 2 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!raw::tiff_is_sound(&huge));
        assert!(decode_bytes(&huge).is_err());
        assert!(raw::tiff_is_sound(&dng));
        assert_eq!(decode_bytes(&dng).unwrap().dimensions(), (1200, 800));
    }

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    }

    /// With libjpeg-turbo, a JPEG's pixels are PIL's exactly, at full size and at 1/4 (PIL's
    /// `draft`), for each kind of JPEG in the fixtures (scripts/make_jpeg_pixel_fixtures.py).
    /// The negative control: the pure-Rust decoder's pixels are not.
    #[cfg(feature = "turbojpeg")]
    #[test]
    fn jpeg_pixels_are_pils_exactly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg-pixels");
        let pil = |name: String| image::open(dir.join(name)).unwrap().into_rgb8();
        let mut pure_rust_differs = Vec::new();
        for kind in ["yuv420", "yuv422", "yuv444", "progressive", "grey"] {
            let bytes = std::fs::read(dir.join(format!("{kind}.jpg"))).unwrap();
            let full = pil(format!("{kind}.pil.png"));
            assert!(
                decode_bytes(&bytes).unwrap() == full,
                "{kind}: not PIL's pixels"
            );
            let quarter = turbo::decode(&bytes, 4).unwrap();
            assert!(
                quarter == pil(format!("{kind}.pil-quarter.png")),
                "{kind} at 1/4: not PIL's draft pixels"
            );
            if decode_plain(&bytes).unwrap() != full {
                pure_rust_differs.push(kind);
            }
        }
        assert!(
            pure_rust_differs.len() >= 3,
            "the pure-Rust decoder should differ from PIL (the negative control): {pure_rust_differs:?}"
        );
    }

    /// What libjpeg-turbo does not decode to RGB (a CMYK JPEG, as print workflows write)
    /// goes to the pure-Rust decoder instead.
    #[cfg(feature = "turbojpeg")]
    #[test]
    fn a_cmyk_jpeg_is_read_by_the_fallback_decoder() {
        let cmyk = turbojpeg::Image {
            pixels: [10u8, 200, 30, 0].repeat(32 * 16),
            width: 32,
            pitch: 32 * 4,
            height: 16,
            format: turbojpeg::PixelFormat::CMYK,
        };
        let bytes = turbojpeg::compress(cmyk.as_deref(), 95, turbojpeg::Subsamp::None).unwrap();
        assert!(turbo::decode(&bytes, 1).is_none());
        let rgb = decode_bytes(&bytes).unwrap();
        assert_eq!(rgb.dimensions(), (32, 16));
    }

    #[test]
    fn grey_is_replicated_and_alpha_dropped() {
        let grey = GrayImage::from_pixel(3, 2, Luma([77]));
        let rgb = decode_bytes(&encode(grey.into(), ImageFormat::Png)).unwrap();
        assert_eq!(rgb.get_pixel(2, 1).0, [77, 77, 77]);

        // Fully transparent red stays red: PIL drops alpha, it does not composite.
        let rgba = RgbaImage::from_pixel(2, 2, Rgba([200, 10, 20, 0]));
        let rgb = decode_bytes(&encode(rgba.into(), ImageFormat::Png)).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [200, 10, 20]);
    }

    #[test]
    fn not_an_image_is_a_clear_error() {
        let err = decode_bytes(b"hello, this is text").unwrap_err();
        assert!(matches!(err, DecodeError::UnknownFormat), "{err}");
    }

    #[test]
    fn files_that_cannot_be_images_are_refused_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("ok.png");
        let grey = GrayImage::from_pixel(3, 2, Luma([77]));
        std::fs::write(&png, encode(grey.into(), ImageFormat::Png)).unwrap();
        assert_eq!(decode_file(&png).unwrap().dimensions(), (3, 2));
        // Over the size limit: a sparse file, so nothing is written or read.
        let huge = dir.path().join("big.jpg");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let err = read_image_file(&huge).unwrap_err();
        assert!(matches!(err, DecodeError::FileTooLarge { .. }), "{err}");
        // Large, but no image in its first bytes.
        let zeros = dir.path().join("zeros.jpg");
        std::fs::File::create(&zeros)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let err = read_image_file(&zeros).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownFormat), "{err}");
        let err = read_image_file(dir.path()).unwrap_err();
        assert!(matches!(err, DecodeError::NotAFile), "{err}");
        assert!(check_readable(dir.path()).is_err());
        assert!(check_readable(&png).is_ok());
    }

    #[test]
    fn truncated_png_is_an_error_not_a_panic() {
        let grey = GrayImage::from_fn(64, 64, |x, y| Luma([(x * 7 + y * 3) as u8]));
        let bytes = encode(grey.into(), ImageFormat::Png);
        let err = decode_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(err, DecodeError::Corrupt(_)), "{err}");
    }

    #[test]
    fn truncated_jpeg_is_an_error_but_a_complete_one_is_not() {
        let photo =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let jpeg = encode(DynamicImage::ImageRgb8(photo), ImageFormat::Jpeg);
        assert!(decode_bytes(&jpeg).is_ok());
        let err = decode_bytes(&jpeg[..jpeg.len() - 40]).unwrap_err();
        assert!(matches!(err, DecodeError::Corrupt(_)), "{err}");
        // Trailing bytes after the end marker (some cameras write them) are fine.
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 100]);
        assert!(decode_bytes(&padded).is_ok());
    }

    #[test]
    fn large_jpegs_are_decoded_at_reduced_size_and_small_ones_are_not() {
        let photo = image::RgbImage::from_fn(1000, 800, |x, y| {
            image::Rgb([(x / 4) as u8, (y / 4) as u8, 90])
        });
        let jpeg = encode(DynamicImage::ImageRgb8(photo), ImageFormat::Jpeg);
        // 800 / 2 >= 2 * 200, 800 / 4 < 2 * 200: half size.
        assert_eq!(
            decode_bytes_for(&jpeg, Some(200)).unwrap().dimensions(),
            (500, 400)
        );
        // Too small to reduce: the full decode.
        assert_eq!(
            decode_bytes_for(&jpeg, Some(224)).unwrap().dimensions(),
            (1000, 800)
        );
        assert_eq!(
            decode_bytes_for(&jpeg, None).unwrap().dimensions(),
            (1000, 800)
        );
        // Orientation still applies; truncation is still an error.
        let rotated = insert_exif_orientation(&jpeg, 6);
        assert_eq!(
            decode_bytes_for(&rotated, Some(100)).unwrap().dimensions(),
            (200, 250)
        );
        assert!(decode_bytes_for(&jpeg[..jpeg.len() - 50], Some(100)).is_err());
    }

    #[test]
    fn decompression_bomb_is_refused_before_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        // The decoder reads the header up to the first image-data chunk: give it an empty one.
        let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
        png.extend_from_slice(&8u32.to_be_bytes());
        png.extend_from_slice(idat);
        png.extend_from_slice(&crc32(idat).to_be_bytes());
        let err = decode_bytes(&png).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn exif_orientation_turns_the_photo_upright() {
        // A 2x1 JPEG whose EXIF says "rotate 90 degrees clockwise" decodes as 1x2.
        let wide = image::RgbImage::from_fn(32, 16, |x, _| image::Rgb([(x * 8) as u8, 0, 0]));
        let jpeg = encode(DynamicImage::ImageRgb8(wide), ImageFormat::Jpeg);
        let with_exif = insert_exif_orientation(&jpeg, 6);
        let upright = decode_bytes(&with_exif).unwrap();
        assert_eq!(upright.dimensions(), (16, 32));
    }

    /// Puts an APP1 EXIF segment holding only an orientation tag right after the SOI marker.
    fn insert_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes());
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut app1 = b"Exif\x00\x00".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
