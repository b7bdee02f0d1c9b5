//! The library's error types. The binary turns them into messages and exit codes.
//!
//! Each message says its cause once: a variant that wraps another error writes it into its own
//! message and does not also expose it as `source()`, so that a printer that walks the chain
//! (as the CLI does for `anyhow` contexts) never repeats it.

use std::path::PathBuf;

/// Why one image could not be turned into pixels. Always reported per file:
/// one bad image never stops the others.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read file: {0}")]
    Io(std::io::Error),
    #[error("not an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF)")]
    UnknownFormat,
    /// A format this build cannot decode (built without its optional library).
    #[error("{format} files need imgsim built with the `{feature}` feature ({needs})")]
    NotBuiltIn {
        format: &'static str,
        feature: &'static str,
        needs: &'static str,
    },
    #[error("not a regular file (a folder, a FIFO or a device)")]
    NotAFile,
    #[error("file of {bytes} bytes is over the limit of {limit} bytes for an image")]
    FileTooLarge { bytes: u64, limit: u64 },
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

impl From<std::io::Error> for DecodeError {
    fn from(e: std::io::Error) -> Self {
        DecodeError::Io(e)
    }
}

/// Everything else that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {error}", path.display())]
    Decode { path: PathBuf, error: DecodeError },

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

    #[error(
        "the weights of model '{model}' in the cache are damaged\n  file: {}\n  reason: \
         {reason}\n  fetch them again: rm -r '{}' && imgsim models fetch {model}",
        path.display(),
        folder.display()
    )]
    WeightsDamaged {
        model: String,
        path: PathBuf,
        folder: PathBuf,
        reason: String,
    },

    #[error("{}: {reason}", path.display())]
    ModelFiles { path: PathBuf, reason: String },

    #[error(
        "the {model} table is damaged, so it cannot be read:\n  {}\n  \
         repair it with: imgsim repair (drops the rows in damaged files and keeps the others; \
         `imgsim index DIR` then embeds those files again)",
        files.join("\n  ")
    )]
    TableDamaged { model: String, files: Vec<String> },

    #[error("not supported: {0}")]
    Unsupported(String),

    #[error("device: {0}")]
    Device(String),

    #[error("model computation failed: {0}")]
    Candle(candle_core::Error),

    /// An embedding with NaN or infinite values (never stored).
    #[error("{}: the model's output is not a number (NaN or infinite){hint}", path.display())]
    NonFinite { path: PathBuf, hint: String },

    /// A `--where` filter that does not parse.
    #[error(
        "--where {query:?}: {reason} (fields: name, dir, ext, tag, taken, camera, lens, \
         format, iso, focal, has, near; e.g. 'name:beach* AND tag:2023 -ext:png', \
         'taken:[2023-06-01 TO 2023-08-31] AND camera:pixel*', 'has:gps near:48.86,2.29,10')"
    )]
    Query { query: String, reason: String },

    /// Words that the text tower cannot take.
    #[error("text {text:?}: {reason}")]
    Text { text: String, reason: String },

    /// A query term that reads as a path but is neither a file nor an indexed image.
    #[error(
        "{path}: no such file, and no indexed image has this path (a term with a `/` or an \
         image extension is read as a path)"
    )]
    UnknownPath { path: String },

    /// A query whose weighted terms add up to nothing.
    #[error("the query's terms cancel out, so there is nothing to search for")]
    TermsCancel,

    /// A text query for a model that has no text tower.
    #[error(
        "model {model} has no text tower: searching by words needs a CLIP model ({with_text}, \
         or a --model-dir holding a CLIP checkpoint with its tokenizer.json)"
    )]
    NoTextTower { model: String, with_text: String },

    /// Another process writes to the database (the writer lock is taken).
    #[error(
        "index database {}: {holder} is writing to it; try again when it is done",
        path.display()
    )]
    WriterBusy { path: PathBuf, holder: String },

    /// A watch daemon runs on the database already.
    #[error(
        "index database {}: a watch daemon already runs on it ({holder}); stop it first",
        path.display()
    )]
    DaemonRunning { path: PathBuf, holder: String },

    /// A vector that does not fit its table (another model's, or a bug).
    #[error("{path}: a {got}-d vector for a {want}-d table")]
    VectorSize {
        path: String,
        got: usize,
        want: usize,
    },

    /// A benchmark folder or file that is not laid out as expected.
    #[error("{}: {reason}", path.display())]
    Dataset { path: PathBuf, reason: String },

    /// The index database could not be read or written.
    #[error("index database {}: {reason}", path.display())]
    Store { path: PathBuf, reason: String },

    #[error(transparent)]
    Metrics(#[from] crate::eval::metrics::MetricsError),

    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    /// The work was asked to stop (a stop flag was set) before it was done.
    #[error("stopped before the work was done")]
    Stopped,
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
