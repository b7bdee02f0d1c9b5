//! The library's error types. The binary turns them into messages and exit codes.

use std::path::PathBuf;

/// Why one image could not be turned into pixels. Always reported per file:
/// one bad image never stops the others.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)")]
    UnknownFormat,
    #[error(
        "image is {width}x{height} ({pixels} pixels), over the limit of {limit} pixels \
         (a decompression bomb, or a larger image than imgsim accepts)"
    )]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error("image has no pixels ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

/// Everything else that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },

    #[error("unknown model '{name}'; known models: {known} (see `imgsim models list`)")]
    UnknownModel { name: String, known: String },

    #[error(
        "the weights of model '{model}' are not available locally\n  \
         looked in: {looked_in}\n  reason: {reason}\n  \
         fetch them with: imgsim models fetch {model}\n  \
         or point at a local copy with: --model-dir DIR"
    )]
    WeightsMissing {
        model: String,
        looked_in: String,
        reason: String,
    },

    #[error(
        "the weights of model '{model}' are not in the cache and could not be downloaded\n  \
         looked in: {looked_in}\n  download failed: {reason}\n  \
         fetch them, once online, with: imgsim models fetch {model}\n  \
         or point at a local copy with: --model-dir DIR"
    )]
    Fetch {
        model: String,
        looked_in: String,
        reason: String,
    },

    #[error("{}: {reason}", path.display())]
    ModelFiles { path: PathBuf, reason: String },

    #[error("not supported: {0}")]
    Unsupported(String),

    #[error("device: {0}")]
    Device(String),

    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),

    /// A benchmark folder or file that is not laid out as expected.
    #[error("{}: {reason}", path.display())]
    Dataset { path: PathBuf, reason: String },

    /// The index database could not be read or written.
    #[error("index database {}: {reason}", path.display())]
    Store { path: PathBuf, reason: String },

    #[error(transparent)]
    Metrics(#[from] crate::eval::metrics::MetricsError),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
