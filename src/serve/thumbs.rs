//! Thumbnails for the page: made on demand with imgsim's own decoder (every format it
//! indexes, EXIF orientation applied, the same bounds against bombs), kept on disk beside
//! the database, keyed by the file's content hash and the size, so a renamed or moved photo
//! keeps its thumbnail and an edited one gets a new one. The cache never grows past its
//! limit: the least recently served files go first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// The sizes the page asks for (longest side, pixels): a grid cell and the large view.
pub const SIZES: [u32; 2] = [320, 1600];

/// The thumbnail cache: `<db>/thumbs/<hash>-<size>.jpg`.
pub struct Thumbs {
    dir: PathBuf,
    max_bytes: u64,
    /// File name -> (bytes, last served), loaded at start and kept in step.
    files: Mutex<HashMap<String, (u64, SystemTime)>>,
}

impl Thumbs {
    /// The cache under `db_dir`, trimmed to `max_bytes` from the start.
    pub fn open(db_dir: &Path, max_bytes: u64) -> Self {
        let dir = db_dir.join("thumbs");
        let mut files = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Ok(meta) = entry.metadata() {
                    let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    files.insert(name, (meta.len(), used));
                }
            }
        }
        let thumbs = Self {
            dir,
            max_bytes,
            files: Mutex::new(files),
        };
        thumbs.trim();
        thumbs
    }

    /// Bytes the cache holds now.
    pub fn bytes(&self) -> u64 {
        self.files
            .lock()
            .map_or(0, |f| f.values().map(|(b, _)| b).sum())
    }

    /// Deletes every cached thumbnail; returns how many bytes were freed.
    pub fn clear(&self) -> u64 {
        let mut files = match self.files.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        let mut freed = 0;
        for (name, (bytes, _)) in files.drain() {
            if std::fs::remove_file(self.dir.join(&name)).is_ok() {
                freed += bytes;
            }
        }
        freed
    }

    /// The JPEG thumbnail of the file at `path` (content `hash`) whose longest side is at
    /// most `size`, made now if it is not cached. Only the server's own rows reach here: the
    /// path comes from the index, never from a request.
    pub fn get(&self, path: &Path, hash: &str, size: u32) -> Result<Vec<u8>> {
        let name = cache_name(hash, size);
        let file = self.dir.join(&name);
        if let Ok(bytes) = std::fs::read(&file) {
            self.used(&name, bytes.len() as u64);
            return Ok(bytes);
        }
        let bytes = make(path, size)?;
        // A cache that cannot be written (a read-only database) still serves.
        if std::fs::create_dir_all(&self.dir).is_ok()
            && crate::util::write_atomic(&file, &bytes).is_ok()
        {
            self.used(&name, bytes.len() as u64);
            self.trim();
        }
        Ok(bytes)
    }

    fn used(&self, name: &str, bytes: u64) {
        let now = SystemTime::now();
        if let Ok(mut files) = self.files.lock() {
            files.insert(name.to_string(), (bytes, now));
        }
        // The order survives a restart through the files' times.
        if let Ok(f) = std::fs::File::options()
            .append(true)
            .open(self.dir.join(name))
        {
            let _ = f.set_modified(now);
        }
    }

    /// Removes the least recently served thumbnails until the cache fits its limit.
    fn trim(&self) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        let mut total: u64 = files.values().map(|(b, _)| b).sum();
        if total <= self.max_bytes {
            return;
        }
        let mut by_age: Vec<(String, u64, SystemTime)> = files
            .iter()
            .map(|(n, (b, t))| (n.clone(), *b, *t))
            .collect();
        by_age.sort_by_key(|(n, _, t)| (*t, n.clone()));
        for (name, bytes, _) in by_age {
            if total <= self.max_bytes {
                break;
            }
            let _ = std::fs::remove_file(self.dir.join(&name));
            files.remove(&name);
            total -= bytes;
        }
    }
}

/// `<hash>-<size>.jpg`; the hash is checked to be hex, so a name never leaves the folder.
fn cache_name(hash: &str, size: u32) -> String {
    let clean: String = hash
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(64)
        .collect();
    format!("{clean}-{size}.jpg")
}

/// Decodes, turns upright, shrinks to fit `size` and encodes as JPEG.
fn make(path: &Path, size: u32) -> Result<Vec<u8>> {
    let image =
        crate::decode::decode_file_for(path, Some(size)).map_err(|error| Error::Decode {
            path: path.to_path_buf(),
            error,
        })?;
    let (w, h) = image.dimensions();
    let image = if w.max(h) > size {
        let scale = f64::from(size) / f64::from(w.max(h));
        let (tw, th) = (
            ((f64::from(w) * scale).round() as u32).max(1),
            ((f64::from(h) * scale).round() as u32).max(1),
        );
        image::imageops::resize(&image, tw, th, image::imageops::FilterType::Triangle)
    } else {
        image
    };
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
        .encode_image(&image)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::other(e.to_string()),
        })?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
        let path = dir.join(name);
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        })
        .save(&path)
        .unwrap();
        path
    }

    #[test]
    fn a_thumbnail_fits_its_size_and_is_cached_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = photo(dir.path(), "wide.png", 800, 400);
        let thumbs = Thumbs::open(dir.path(), 10 << 20);
        let first = thumbs.get(&path, "abc123", 320).unwrap();
        let image = image::load_from_memory(&first).unwrap();
        assert_eq!((image.width(), image.height()), (320, 160));
        assert!(dir.path().join("thumbs/abc123-320.jpg").is_file());
        // Served from the cache: the file is not read again.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(thumbs.get(&path, "abc123", 320).unwrap(), first);
        // A hash that is not hex cannot name a file outside the folder.
        assert_eq!(cache_name("../../etc/passwd", 320), "ecad-320.jpg");
    }

    #[test]
    fn the_cache_stays_under_its_limit_dropping_the_least_recently_served() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..4)
            .map(|i| photo(dir.path(), &format!("p{i}.png"), 300, 300))
            .collect();
        let one = {
            let t = Thumbs::open(&dir.path().join("probe"), u64::MAX);
            t.get(&paths[0], "0", 320).unwrap().len() as u64
        };
        let thumbs = Thumbs::open(dir.path(), one * 2 + one / 2);
        for (i, p) in paths.iter().enumerate() {
            thumbs.get(p, &format!("{i}"), 320).unwrap();
            if i == 1 {
                // 0 served again: 1 is now the least recent.
                std::thread::sleep(std::time::Duration::from_millis(20));
                thumbs.get(&paths[0], "0", 320).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(thumbs.bytes() <= one * 2 + one / 2, "{}", thumbs.bytes());
        let cached = |i: usize| dir.path().join(format!("thumbs/{i}-320.jpg")).is_file();
        assert!(
            !cached(1) && cached(3),
            "the least recently served go first"
        );
        assert!(thumbs.clear() > 0);
        assert_eq!(thumbs.bytes(), 0);
        assert!(!cached(3));
    }
}
