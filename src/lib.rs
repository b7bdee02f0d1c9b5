//! imgsim: local image-similarity search with CLIP and DINOv2.
//!
//! The modules follow the data flow: `scan` (finding images), `decode` (file -> pixels),
//! `resize` (PIL's resampling), `preprocess` (pixels -> model input), `models` (registry,
//! weights, networks), `embed` (the batched pipeline), `store` (LanceDB tables), `indexer`
//! (keeping a table equal to the disk), `watch` (the daemon that keeps it so), `filter`
//! (tantivy filters), `search` (similar images), `daemon` (the daemon's query socket), `lock`
//! (one writer, one daemon).
//! Beside them: `eval` (which model finds the right image) and `bench` (throughput).
//! See ARCHITECTURE.md.

pub mod bench;
pub mod bench_ann;
#[cfg(unix)]
pub mod daemon;
pub mod decode;
pub mod device;
pub mod embed;
pub mod error;
pub mod eval;
pub mod filter;
pub mod indexer;
pub mod lock;
pub mod models;
pub mod preprocess;
pub mod progress;
pub mod resize;
pub mod scan;
pub mod search;
pub mod store;
pub mod watch;
pub mod weights;

pub use error::{DecodeError, Error, Result};
