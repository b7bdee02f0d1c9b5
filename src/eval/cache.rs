//! Embeddings kept between eval runs, so that a re-run with other options (more references,
//! another k, distractors on or off) embeds nothing again.
//!
//! One append-only file per model identity; a record is keyed on the file's canonical path,
//! size and modification time (a changed file is embedded again). A run killed mid-write
//! leaves at most a partial last record, which the next open cuts off.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"IMGSIMEC";
const FORMAT_VERSION: u32 = 1;

/// Identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileKey {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let canonical = std::fs::canonicalize(path)?;
        let meta = std::fs::metadata(&canonical)?;
        let mtime_ns = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Ok(Self {
            path: crate::util::path_string(&canonical),
            size: meta.len(),
            mtime_ns,
        })
    }
}

pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    vectors: HashMap<FileKey, Vec<f32>>,
    writer: Option<BufWriter<File>>,
}

impl EmbeddingCache {
    /// Opens (or creates) the cache of one model under `dir`. `model_id` must change whenever
    /// the embeddings would (weights, pooling, preprocessing).
    pub fn open(dir: &Path, model_id: &str, dim: usize) -> Result<Self> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                path,
                cause: source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let name = format!(
            "{}-{}.bin",
            sanitize(model_id),
            &blake3::hash(model_id.as_bytes()).to_hex()[..16]
        );
        let path = dir.join(name);
        let mut vectors = HashMap::new();
        let mut valid_len = 0u64;
        if let Ok(mut file) = File::open(&path) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io(&path))?;
            valid_len = parse(&bytes, dim, &mut vectors);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        // Drop a torn last record (or a file from another format) before appending.
        file.set_len(valid_len).map_err(io(&path))?;
        let mut writer = BufWriter::new(file);
        if valid_len == 0 {
            writer.write_all(MAGIC).map_err(io(&path))?;
            writer
                .write_all(&FORMAT_VERSION.to_le_bytes())
                .map_err(io(&path))?;
            writer
                .write_all(&(dim as u32).to_le_bytes())
                .map_err(io(&path))?;
        }
        Ok(Self {
            path,
            dim,
            vectors,
            writer: Some(writer),
        })
    }

    /// A cache that keeps nothing (`--no-cache`).
    pub fn disabled(dim: usize) -> Self {
        Self {
            path: PathBuf::new(),
            dim,
            vectors: HashMap::new(),
            writer: None,
        }
    }

    pub fn get(&self, key: &FileKey) -> Option<&[f32]> {
        self.vectors.get(key).map(Vec::as_slice)
    }

    pub fn insert(&mut self, key: FileKey, vector: Vec<f32>) -> Result<()> {
        debug_assert_eq!(vector.len(), self.dim);
        if let Some(writer) = &mut self.writer {
            let mut record = Vec::with_capacity(24 + key.path.len() + 4 * vector.len());
            record.extend_from_slice(&(key.path.len() as u32).to_le_bytes());
            record.extend_from_slice(key.path.as_bytes());
            record.extend_from_slice(&key.size.to_le_bytes());
            record.extend_from_slice(&key.mtime_ns.to_le_bytes());
            for v in &vector {
                record.extend_from_slice(&v.to_le_bytes());
            }
            writer.write_all(&record).map_err(|source| Error::Io {
                path: self.path.clone(),
                cause: source,
            })?;
        }
        self.vectors.insert(key, vector);
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        if let Some(writer) = &mut self.writer {
            writer.flush().map_err(|source| Error::Io {
                path: self.path.clone(),
                cause: source,
            })?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
}

impl Drop for EmbeddingCache {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Reads records into `vectors`; returns the length of the valid prefix (0: start afresh).
fn parse(bytes: &[u8], dim: usize, vectors: &mut HashMap<FileKey, Vec<f32>>) -> u64 {
    let header = MAGIC.len() + 8;
    if bytes.len() < header
        || &bytes[..8] != MAGIC
        || bytes[8..12] != FORMAT_VERSION.to_le_bytes()
        || bytes[12..16] != (dim as u32).to_le_bytes()
    {
        return 0;
    }
    let mut at = header;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let slice = bytes.get(*at..*at + n)?;
        *at += n;
        Some(slice)
    };
    loop {
        let start = at;
        let record = (|| {
            let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?) as usize;
            let path = String::from_utf8(take(&mut at, len)?.to_vec()).ok()?;
            let size = u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
            let mtime_ns = i64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
            let vector: Vec<f32> = take(&mut at, 4 * dim)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            Some((
                FileKey {
                    path,
                    size,
                    mtime_ns,
                },
                vector,
            ))
        })();
        match record {
            Some((key, vector)) => {
                vectors.insert(key, vector);
            }
            None => return start as u64,
        }
    }
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, mtime_ns: i64) -> FileKey {
        FileKey {
            path: path.into(),
            size: 10,
            mtime_ns,
        }
    }

    #[test]
    fn vectors_survive_reopening_and_a_torn_record_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut cache = EmbeddingCache::open(dir.path(), "m@1", 3).unwrap();
            cache.insert(key("/a.jpg", 1), vec![1.0, 2.0, 3.0]).unwrap();
            cache.insert(key("/b.jpg", 1), vec![4.0, 5.0, 6.0]).unwrap();
        }
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // A crash in the middle of a third record.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(&[9, 0, 0, 0, b'/', b'c']);
        std::fs::write(&file, &bytes).unwrap();

        let mut cache = EmbeddingCache::open(dir.path(), "m@1", 3).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key("/b.jpg", 1)), Some(&[4.0, 5.0, 6.0][..]));
        // A changed modification time is another file.
        assert_eq!(cache.get(&key("/b.jpg", 2)), None);
        cache.insert(key("/c.jpg", 1), vec![7.0, 8.0, 9.0]).unwrap();
        drop(cache);
        let cache = EmbeddingCache::open(dir.path(), "m@1", 3).unwrap();
        assert_eq!(cache.len(), 3);
        // Another model (or dimension) has its own file.
        let other = EmbeddingCache::open(dir.path(), "m@2", 3).unwrap();
        assert!(other.is_empty());
    }
}
