//! `imgsim bench decode DIR...`: how fast each format's photos become pixels, by imgsim's own
//! decode path (bounds, orientation, RGB): HEIC and AVIF through libheif and camera RAWs
//! through their embedded preview beside the JPEG path. One thread, every file of a format
//! decoded `--repeat` times; what a model then does with the pixels is `bench embed`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::common::print_json;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct DecodeBenchArgs {
    /// Folders (not walked into) or files to decode.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Times each file is decoded (the first pass also warms the page cache and is not timed).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// One JSON line per format.
    #[arg(long)]
    json: bool,
}

/// `imgsim bench decode --json`: one line per format.
#[derive(Debug, Serialize, Deserialize)]
pub struct DecodeLine {
    /// The format by content, or the RAW kind (`dng`, `cr2`, ...).
    pub format: String,
    pub files: usize,
    /// The decoded size of the first file.
    pub width: u32,
    pub height: u32,
    /// Milliseconds per image and images per second, one thread (read and decode).
    pub ms: f64,
    pub images_per_s: f64,
    pub failed: usize,
}

pub fn run(args: DecodeBenchArgs) -> anyhow::Result<Outcome> {
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    let mut by_format: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        if let Some(meta) = imgsim::metadata::describe(&file, 0) {
            by_format
                .entry(meta.format.unwrap_or_default())
                .or_default()
                .push(file);
        }
    }
    anyhow::ensure!(!by_format.is_empty(), "no image among the paths given");
    let repeat = args.repeat.max(1);
    for (format, files) in by_format {
        let mut failed = 0;
        let mut size = (0, 0);
        for file in &files {
            match imgsim::decode::decode_file(file) {
                Ok(image) if size == (0, 0) => size = image.dimensions(),
                Ok(_) => {}
                Err(e) => {
                    failed += 1;
                    eprintln!("imgsim: {}: {e}", file.display());
                }
            }
        }
        let started = Instant::now();
        for _ in 0..repeat {
            for file in &files {
                let _ = std::hint::black_box(imgsim::decode::decode_file(file));
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let decoded = (files.len() * repeat) as f64;
        let line = DecodeLine {
            format,
            files: files.len(),
            width: size.0,
            height: size.1,
            ms: seconds * 1000.0 / decoded,
            images_per_s: decoded / seconds,
            failed,
        };
        if args.json {
            print_json(&line);
        } else {
            println!(
                "{:<6} {:>4} files  {:>5}x{:<5} {:>8.1} ms/image  {:>7.2} images/s (one thread){}",
                line.format,
                line.files,
                line.width,
                line.height,
                line.ms,
                line.images_per_s,
                if failed > 0 {
                    format!("  {failed} failed")
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(Outcome::Done)
}
