//! What a photo says about itself: its format (by content, not by name) and its EXIF: when
//! it was taken (with the time zone where the file says it), the camera, lens and exposure,
//! where (GPS) and which way up. The rows keep it ([`Meta`]), the filters search it
//! (`taken:2023`, `camera:pixel*`, `near:48.85,2.35,10`), and `dupes` uses the shot (camera
//! and moment) to tell a burst from copies of one shot.
//!
//! EXIF is read with `kamadak-exif` from any container it knows (JPEG, TIFF, PNG, WebP,
//! HEIF). A file without EXIF, or with damaged EXIF, still has a format and the file's time;
//! a broken tag costs that tag, never the photo.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What one photo says about itself. Every field but `format` may be missing from a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The format its bytes are in (`jpeg`, `png`, `webp`, `gif`, `bmp`, `tiff`, `heic`,
    /// `avif`, ...), whatever its name says. `None`: not read yet (a row written before
    /// imgsim kept metadata; the next `index` or `watch` pass reads it).
    pub format: Option<String>,
    pub taken: Option<Taken>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub lens: Option<String>,
    pub focal_mm: Option<f32>,
    pub iso: Option<u32>,
    /// Exposure time, seconds.
    pub exposure_s: Option<f32>,
    pub gps: Option<Gps>,
    /// EXIF orientation, 1-8 (1: upright as stored). The embeddings are of the upright photo.
    pub orientation: Option<u16>,
    /// The other file of the same shot: the rendered JPEG/HEIC of a camera RAW, or the RAW of
    /// a rendered file (see `pairs`). Set by the indexer from the file's neighbours.
    #[serde(default)]
    pub pair: Option<String>,
}

/// When a photo was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// The wall clock where it was taken, in nanoseconds from 1970-01-01 00:00 of that clock
    /// (what the date filters compare: a photo taken at 00:30 on 1 June in Paris is a photo
    /// of 1 June, wherever it is searched from).
    pub local_ns: i64,
    /// Minutes east of UTC, where known (EXIF `OffsetTimeOriginal`; the machine's zone for a
    /// file time).
    pub offset_min: Option<i32>,
    pub source: TakenFrom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TakenFrom {
    /// The camera's `DateTimeOriginal` (or `DateTime`).
    Exif,
    /// No date in the file: its modification time, in this machine's time zone.
    File,
}

impl TakenFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            TakenFrom::Exif => "exif",
            TakenFrom::File => "file",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "exif" => Some(TakenFrom::Exif),
            "file" => Some(TakenFrom::File),
            _ => None,
        }
    }
}

/// Where a photo was taken: degrees (north and east positive), metres above sea level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
    pub alt: Option<f64>,
}

impl Meta {
    /// Make and model as one name, without the make twice (`Canon Canon EOS R5` is
    /// `Canon EOS R5`).
    pub fn camera(&self) -> Option<String> {
        camera_name(self.make.as_deref(), self.model.as_deref())
    }

    /// Whether this row's metadata was read (rows of older databases have none yet).
    pub fn is_read(&self) -> bool {
        self.format.is_some()
    }
}

impl Taken {
    /// The local date and time, as `2023-06-01T00:30:00+02:00` (without the offset when it is
    /// not known).
    pub fn display(&self) -> String {
        let local = chrono::DateTime::from_timestamp_nanos(self.local_ns).naive_utc();
        let text = local.format("%Y-%m-%dT%H:%M:%S").to_string();
        match self.offset_min {
            Some(m) => format!(
                "{text}{}{:02}:{:02}",
                if m < 0 { '-' } else { '+' },
                m.abs() / 60,
                m.abs() % 60
            ),
            None => text,
        }
    }
}

fn camera_name(make: Option<&str>, model: Option<&str>) -> Option<String> {
    match (make, model) {
        (Some(make), Some(model)) if model.to_lowercase().starts_with(&make.to_lowercase()) => {
            Some(model.to_string())
        }
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_string()),
        (None, None) => None,
    }
}

/// The camera and capture time of one photo (for bursts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shot {
    /// Make and model, as the camera writes them.
    pub camera: String,
    /// The camera's clock when the shot was taken (wall time, sub-seconds where written),
    /// in nanoseconds from 1970-01-01 00:00 of that clock: comparable between shots of one
    /// camera, whatever its time zone.
    pub taken_ns: i64,
}

/// The shot of the photo at `path`, if its EXIF names the camera and the time taken.
pub fn shot(path: &Path) -> Option<Shot> {
    let exif = exif_of(path)?;
    let camera = camera_name(
        text(&exif, exif::Tag::Make).as_deref(),
        text(&exif, exif::Tag::Model).as_deref(),
    )?;
    let (taken_ns, _) = exif_taken(&exif)?;
    Some(Shot { camera, taken_ns })
}

/// Everything [`Meta`] holds about the file at `path`, whose modification time is
/// `mtime_ns` (the date when the file has none). `None` when the file cannot be read or is
/// in no format imgsim knows.
pub fn describe(path: &Path, mtime_ns: i64) -> Option<Meta> {
    let mut format = sniff_file(path)?.to_string();
    // A camera RAW is named by its kind (`cr2`, `nef`, `dng`): most are TIFF inside.
    if matches!(format.as_str(), "tiff" | "raw") && crate::scan::is_raw_extension(path) {
        if let Some(ext) = path.extension() {
            format = ext.to_string_lossy().to_ascii_lowercase();
        }
    }
    let mut meta = Meta {
        format: Some(format),
        ..Meta::default()
    };
    if let Some(exif) = exif_of(path) {
        read_exif(&exif, &mut meta);
    }
    if meta.taken.is_none() {
        meta.taken = Some(file_time(mtime_ns));
    }
    Some(meta)
}

/// A file time as the local wall clock of this machine (`TZ` where set).
pub fn file_time(mtime_ns: i64) -> Taken {
    use chrono::{Offset, TimeZone};
    let utc = chrono::DateTime::from_timestamp_nanos(mtime_ns);
    let offset_s = chrono::Local
        .offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc();
    Taken {
        local_ns: mtime_ns.saturating_add(i64::from(offset_s) * 1_000_000_000),
        offset_min: Some(offset_s / 60),
        source: TakenFrom::File,
    }
}

/// The format of a file by its first bytes (a FIFO or device is no format: never opened).
pub fn sniff_file(path: &Path) -> Option<&'static str> {
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)
        .ok()?
        .take(64)
        .read_to_end(&mut head)
        .ok()?;
    sniff(&head)
}

/// The format of an image by its first bytes (at least 32 for the ISO-BMFF brands).
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    use image::ImageFormat as F;
    if let Some(brand) = iso_bmff_brand(head) {
        return match brand {
            b"avif" | b"avis" => Some("avif"),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => Some("heic"),
            b"mif1" | b"msf1" => Some("heif"),
            b"crx " => Some("raw"), // Canon CR3
            _ => None,
        };
    }
    // Camera RAWs whose first bytes are not TIFF's: Fujifilm RAF, Olympus ORF, Panasonic RW2.
    // (CR2, NEF, ARW, DNG and most others are TIFF inside: "tiff" here.)
    if head.starts_with(b"FUJIFILMCCD-RAW")
        || head.starts_with(b"IIRO")
        || head.starts_with(b"IIRS")
        || head.starts_with(b"MMOR")
        || head.starts_with(b"IIU\0")
    {
        return Some("raw");
    }
    Some(match image::guess_format(head).ok()? {
        F::Jpeg => "jpeg",
        F::Png => "png",
        F::WebP => "webp",
        F::Gif => "gif",
        F::Bmp => "bmp",
        F::Tiff => "tiff",
        F::Avif => "avif",
        F::Ico => "ico",
        F::Pnm => "pnm",
        F::Tga => "tga",
        F::Dds => "dds",
        F::Hdr => "hdr",
        F::OpenExr => "exr",
        F::Farbfeld => "farbfeld",
        F::Qoi => "qoi",
        _ => return None,
    })
}

/// The major brand of an ISO base media file (`....ftypheic`), if `head` starts one.
fn iso_bmff_brand(head: &[u8]) -> Option<&[u8; 4]> {
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return None;
    }
    head[8..12].try_into().ok()
}

/// The EXIF of a file, when it has readable EXIF.
fn exif_of(path: &Path) -> Option<exif::Exif> {
    // A FIFO or device named like a photo would block the reader; a file too large to be an
    // image is not read to look for EXIF in it.
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > crate::decode::MAX_FILE_BYTES {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    exif::Reader::new()
        .read_from_container(&mut std::io::BufReader::new(file))
        .ok()
}

fn field(exif: &exif::Exif, tag: exif::Tag) -> Option<&exif::Field> {
    exif.get_field(tag, exif::In::PRIMARY)
}

/// An ASCII tag, trimmed; empty is none.
fn text(exif: &exif::Exif, tag: exif::Tag) -> Option<String> {
    match &field(exif, tag)?.value {
        exif::Value::Ascii(parts) => parts
            .first()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .trim_matches(['\0', ' '])
                    .to_string()
            })
            .filter(|t| !t.is_empty()),
        _ => None,
    }
}

/// A rational (or integer) tag as a number.
fn number(exif: &exif::Exif, tag: exif::Tag, index: usize) -> Option<f64> {
    let value = match &field(exif, tag)?.value {
        exif::Value::Rational(v) => v.get(index).map(|r| r.to_f64()),
        exif::Value::SRational(v) => v.get(index).map(|r| r.to_f64()),
        exif::Value::Short(v) => v.get(index).map(|&n| f64::from(n)),
        exif::Value::Long(v) => v.get(index).map(|&n| f64::from(n)),
        // Cameras write rationals; some tools (Pillow, for one) write floats.
        exif::Value::Float(v) => v.get(index).map(|&n| f64::from(n)),
        exif::Value::Double(v) => v.get(index).copied(),
        _ => None,
    }?;
    value.is_finite().then_some(value)
}

/// The camera's time of the shot (local wall clock, ns) and its UTC offset where written.
fn exif_taken(exif: &exif::Exif) -> Option<(i64, Option<i32>)> {
    use exif::Tag;
    let (taken, subsec, offset) = match text(exif, Tag::DateTimeOriginal) {
        Some(t) => (t, Tag::SubSecTimeOriginal, Tag::OffsetTimeOriginal),
        None => (text(exif, Tag::DateTime)?, Tag::SubSecTime, Tag::OffsetTime),
    };
    let mut time = exif::DateTime::from_ascii(taken.as_bytes()).ok()?;
    if let Some(subsec) = text(exif, subsec) {
        let _ = time.parse_subsec(subsec.as_bytes());
    }
    let offset = text(exif, offset).and_then(|o| parse_offset(&o));
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::from(time.year),
        u32::from(time.month),
        u32::from(time.day),
    )?;
    let at = date.and_hms_nano_opt(
        u32::from(time.hour),
        u32::from(time.minute),
        u32::from(time.second),
        time.nanosecond.unwrap_or(0),
    )?;
    Some((at.and_utc().timestamp_nanos_opt()?, offset))
}

/// `+02:00`, `-05:30` -> minutes east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
}

fn read_exif(exif: &exif::Exif, meta: &mut Meta) {
    use exif::Tag;
    meta.make = text(exif, Tag::Make);
    meta.model = text(exif, Tag::Model);
    meta.lens = text(exif, Tag::LensModel);
    meta.taken = exif_taken(exif).map(|(local_ns, offset_min)| Taken {
        local_ns,
        offset_min,
        source: TakenFrom::Exif,
    });
    meta.focal_mm = number(exif, Tag::FocalLength, 0).map(|f| f as f32);
    meta.iso = number(exif, Tag::PhotographicSensitivity, 0)
        .filter(|&n| n > 0.0)
        .map(|n| n as u32);
    meta.exposure_s = number(exif, Tag::ExposureTime, 0).map(|e| e as f32);
    meta.orientation = field(exif, Tag::Orientation)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|o| u16::try_from(o).ok())
        .filter(|o| (1..=8).contains(o));
    meta.gps = gps(exif);
}

fn gps(exif: &exif::Exif) -> Option<Gps> {
    use exif::Tag;
    let degrees = |tag: Tag, reference: Tag, negative: &str| -> Option<f64> {
        let d = number(exif, tag, 0)?;
        let m = number(exif, tag, 1).unwrap_or(0.0);
        let s = number(exif, tag, 2).unwrap_or(0.0);
        let value = d + m / 60.0 + s / 3600.0;
        let sign = match text(exif, reference) {
            Some(r) if r.eq_ignore_ascii_case(negative) => -1.0,
            _ => 1.0,
        };
        Some(sign * value)
    };
    let lat = degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S")?;
    let lon = degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W")?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return None;
    }
    let below = field(exif, Tag::GPSAltitudeRef)
        .and_then(|f| f.value.get_uint(0))
        .is_some_and(|r| r == 1);
    let alt = number(exif, Tag::GPSAltitude, 0).map(|a| if below { -a } else { a });
    Some(Gps { lat, lon, alt })
}

/// EXIF for tests and fixtures: the APP1 segment of a JPEG that says `camera` (make and
/// model) took it at `taken` (`YYYY:MM:DD HH:MM:SS`) and `subsec`.
pub fn exif_segment(make: &str, model: &str, taken: &str, subsec: &str) -> Vec<u8> {
    use exif::Tag;
    exif_segment_of(&[
        ascii_field(Tag::Make, make),
        ascii_field(Tag::Model, model),
        ascii_field(Tag::DateTimeOriginal, taken),
        ascii_field(Tag::SubSecTimeOriginal, subsec),
    ])
}

/// An ASCII EXIF field (for [`exif_segment_of`]).
pub fn ascii_field(tag: exif::Tag, text: &str) -> exif::Field {
    exif::Field {
        tag,
        ifd_num: exif::In::PRIMARY,
        value: exif::Value::Ascii(vec![text.as_bytes().to_vec()]),
    }
}

/// EXIF for tests and fixtures: the APP1 segment of a JPEG holding `fields` (GPS tags go to
/// the GPS directory by themselves).
pub fn exif_segment_of(fields: &[exif::Field]) -> Vec<u8> {
    let mut writer = exif::experimental::Writer::new();
    for field in fields {
        writer.push_field(field);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer
        .write(&mut tiff, false)
        .expect("EXIF of valid fields");
    let tiff = tiff.into_inner();
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    segment
}

/// A JPEG's bytes with an EXIF segment put right after its start marker.
pub fn with_exif(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_jpeg() -> Vec<u8> {
        let image = image::RgbImage::from_pixel(8, 8, image::Rgb([90, 120, 200]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&image)
            .unwrap();
        bytes
    }

    #[test]
    fn a_shot_is_read_back_with_its_sub_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        let segment = exif_segment("Canon", "EOS R6", "2024:07:14 10:20:30", "25");
        std::fs::write(&path, with_exif(&tiny_jpeg(), &segment)).unwrap();
        let shot = shot(&path).unwrap();
        assert_eq!(shot.camera, "Canon EOS R6");
        let expected = chrono::NaiveDate::from_ymd_opt(2024, 7, 14)
            .unwrap()
            .and_hms_milli_opt(10, 20, 30, 250)
            .unwrap()
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap();
        assert_eq!(shot.taken_ns, expected);
        // Still an image.
        assert!(image::open(&path).is_ok());
    }

    #[test]
    fn everything_the_exif_says_is_read() {
        use exif::{Field, In, Rational, Tag, Value};
        let rational = |tag: Tag, values: &[(u32, u32)]| Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Rational(
                values
                    .iter()
                    .map(|&(n, d)| Rational::from((n, d)))
                    .collect(),
            ),
        };
        let short = |tag: Tag, v: u16| Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![v]),
        };
        let segment = exif_segment_of(&[
            ascii_field(Tag::Make, "Canon"),
            ascii_field(Tag::Model, "Canon EOS R5"),
            ascii_field(Tag::LensModel, "RF24-105mm F4 L IS USM"),
            ascii_field(Tag::DateTimeOriginal, "2023:06:01 00:30:15"),
            ascii_field(Tag::OffsetTimeOriginal, "+02:00"),
            rational(Tag::FocalLength, &[(105, 1)]),
            short(Tag::PhotographicSensitivity, 400),
            rational(Tag::ExposureTime, &[(1, 250)]),
            short(Tag::Orientation, 6),
            ascii_field(Tag::GPSLatitudeRef, "S"),
            rational(Tag::GPSLatitude, &[(33, 1), (51, 1), (3600, 100)]),
            ascii_field(Tag::GPSLongitudeRef, "W"),
            rational(Tag::GPSLongitude, &[(70, 1), (30, 1), (0, 1)]),
            Field {
                tag: Tag::GPSAltitudeRef,
                ifd_num: In::PRIMARY,
                value: Value::Byte(vec![1]),
            },
            rational(Tag::GPSAltitude, &[(125, 10)]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("named.png"); // a JPEG by content
        std::fs::write(&path, with_exif(&tiny_jpeg(), &segment)).unwrap();
        let meta = describe(&path, 0).unwrap();
        assert_eq!(meta.format.as_deref(), Some("jpeg"));
        assert_eq!(meta.camera().as_deref(), Some("Canon EOS R5"));
        assert_eq!(meta.lens.as_deref(), Some("RF24-105mm F4 L IS USM"));
        let taken = meta.taken.unwrap();
        assert_eq!(taken.source, TakenFrom::Exif);
        assert_eq!(taken.offset_min, Some(120));
        assert_eq!(taken.display(), "2023-06-01T00:30:15+02:00");
        assert_eq!(meta.focal_mm, Some(105.0));
        assert_eq!(meta.iso, Some(400));
        assert_eq!(meta.exposure_s, Some(0.004));
        assert_eq!(meta.orientation, Some(6));
        let gps = meta.gps.unwrap();
        assert!((gps.lat - -33.86).abs() < 1e-9, "{gps:?}");
        assert!((gps.lon - -70.5).abs() < 1e-9, "{gps:?}");
        assert_eq!(gps.alt, Some(-12.5));
    }

    #[test]
    fn without_exif_the_date_is_the_file_time_in_the_local_zone() {
        use chrono::{Offset, TimeZone};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.jpg");
        std::fs::write(&path, tiny_jpeg()).unwrap();
        let mtime = 1_700_000_000_123_000_000;
        let meta = describe(&path, mtime).unwrap();
        let taken = meta.taken.unwrap();
        assert_eq!(taken.source, TakenFrom::File);
        let offset = chrono::Local
            .offset_from_utc_datetime(&chrono::DateTime::from_timestamp_nanos(mtime).naive_utc())
            .fix()
            .local_minus_utc();
        assert_eq!(taken.offset_min, Some(offset / 60));
        assert_eq!(taken.local_ns, mtime + i64::from(offset) * 1_000_000_000);
        assert_eq!((meta.camera(), meta.gps, meta.iso), (None, None, None));
    }

    #[test]
    fn formats_are_told_by_content() {
        let ftyp = |brand: &[u8]| {
            let mut head = vec![0, 0, 0, 24];
            head.extend_from_slice(b"ftyp");
            head.extend_from_slice(brand);
            head.extend_from_slice(&[0; 12]);
            head
        };
        assert_eq!(sniff(&ftyp(b"heic")), Some("heic"));
        assert_eq!(sniff(&ftyp(b"avif")), Some("avif"));
        assert_eq!(sniff(&ftyp(b"mif1")), Some("heif"));
        assert_eq!(sniff(&ftyp(b"isom")), None); // an MP4 video
        assert_eq!(sniff(&ftyp(b"crx ")), Some("raw")); // Canon CR3
        assert_eq!(sniff(b"FUJIFILMCCD-RAW 0201FF383501"), Some("raw"));
        assert_eq!(sniff(b"IIRO\x08\0\0\0"), Some("raw")); // Olympus ORF
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some("tiff")); // TIFF, and CR2/NEF/ARW/DNG
        assert_eq!(sniff(&tiny_jpeg()), Some("jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n rest"), Some("png"));
        assert_eq!(sniff(b"hello, this is text"), None);
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("photo.jpg");
        std::fs::write(&text, "not an image").unwrap();
        assert_eq!(describe(&text, 0), None);
        assert_eq!(sniff_file(dir.path()), None);
        // A RAW in a TIFF container is named by its kind; the same bytes named .tif are TIFF.
        let raw =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/raw/scene.dng");
        assert_eq!(describe(&raw, 0).unwrap().format.as_deref(), Some("dng"));
        let renamed = dir.path().join("scene.TIF");
        std::fs::copy(&raw, &renamed).unwrap();
        assert_eq!(
            describe(&renamed, 0).unwrap().format.as_deref(),
            Some("tiff")
        );
    }

    #[test]
    fn offsets_and_camera_names() {
        assert_eq!(parse_offset("+05:30"), Some(330));
        assert_eq!(parse_offset("-03:00"), Some(-180));
        assert_eq!(parse_offset("02:00"), None);
        assert_eq!(parse_offset("+25:00"), None);
        assert_eq!(
            camera_name(Some("NIKON CORPORATION"), Some("NIKON Z 6")).as_deref(),
            Some("NIKON CORPORATION NIKON Z 6")
        );
        assert_eq!(
            camera_name(Some("Google"), Some("Pixel 7")).as_deref(),
            Some("Google Pixel 7")
        );
        assert_eq!(
            camera_name(Some("Apple"), Some("apple iPhone")).as_deref(),
            Some("apple iPhone")
        );
        assert_eq!(camera_name(None, None), None);
    }

    #[test]
    fn no_exif_or_no_camera_is_no_shot() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.jpg");
        std::fs::write(&plain, tiny_jpeg()).unwrap();
        assert_eq!(shot(&plain), None);
        let anonymous = dir.path().join("anonymous.jpg");
        let segment = exif_segment("", "", "2024:07:14 10:20:30", "0");
        std::fs::write(&anonymous, with_exif(&tiny_jpeg(), &segment)).unwrap();
        assert_eq!(shot(&anonymous), None);
        assert_eq!(shot(&dir.path().join("missing.jpg")), None);
        assert_eq!(shot(dir.path()), None);
    }
}
