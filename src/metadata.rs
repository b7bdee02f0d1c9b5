//! What a photo says about itself (EXIF). For now the shot: the camera and the moment it was
//! taken, which `dupes` uses to tell a burst (several shots within seconds: keep them all)
//! from copies of one shot (keep one). Read with `kamadak-exif` from any container it knows
//! (JPEG, TIFF, PNG, WebP, HEIF); a file without EXIF, or with damaged EXIF, has no shot.

use std::path::Path;

/// The camera and capture time of one photo.
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
    use exif::{In, Tag};
    // A FIFO or device named like a photo would block the reader.
    if !std::fs::symlink_metadata(path).ok()?.file_type().is_file() {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::BufReader::new(file))
        .ok()?;
    let text = |tag: Tag| -> Option<String> {
        let field = exif.get_field(tag, In::PRIMARY)?;
        match &field.value {
            exif::Value::Ascii(parts) => parts
                .first()
                .map(|b| String::from_utf8_lossy(b).trim().to_string()),
            _ => None,
        }
    };
    let camera = format!(
        "{} {}",
        text(Tag::Make).unwrap_or_default(),
        text(Tag::Model).unwrap_or_default()
    )
    .trim()
    .to_string();
    if camera.is_empty() {
        return None;
    }
    let taken = text(Tag::DateTimeOriginal).or_else(|| text(Tag::DateTime))?;
    let mut time = exif::DateTime::from_ascii(taken.as_bytes()).ok()?;
    if let Some(subsec) = text(Tag::SubSecTimeOriginal) {
        let _ = time.parse_subsec(subsec.as_bytes());
    }
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
    Some(Shot {
        camera,
        taken_ns: at.and_utc().timestamp_nanos_opt()?,
    })
}

/// EXIF for tests and fixtures: the APP1 segment of a JPEG that says `camera` (make and
/// model) took it at `taken` (`YYYY:MM:DD HH:MM:SS`) and `subsec`.
pub fn exif_segment(make: &str, model: &str, taken: &str, subsec: &str) -> Vec<u8> {
    use exif::{Field, In, Tag, Value};
    let ascii = |tag: Tag, text: &str| Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![text.as_bytes().to_vec()]),
    };
    let fields = [
        ascii(Tag::Make, make),
        ascii(Tag::Model, model),
        ascii(Tag::DateTimeOriginal, taken),
        ascii(Tag::SubSecTimeOriginal, subsec),
    ];
    let mut writer = exif::experimental::Writer::new();
    for field in &fields {
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
