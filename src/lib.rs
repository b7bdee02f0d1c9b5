//! imgsim: local image-similarity search with CLIP and DINOv2.
//!
//! Three layers and two side tools; ARCHITECTURE.md has a heading per folder.
//! - The embedding pipeline, one flat file per step of the data flow: `scan` (finding
//!   images), `decode` (file -> pixels), `resize` (PIL's resampling), `preprocess` (pixels ->
//!   model input), `models/` (registry, weights, networks), `embed` (the batched pipeline).
//! - The library: `store/` (LanceDB tables, the vector index, the tantivy filters, locks),
//!   `indexer` (keeping a table equal to the disk), `metadata` (what a photo says about
//!   itself), `pairs` (RAW + rendered files of one shot) and `search` (similar images).
//! - The daemon: `watch/` (events, the queue, roots, the query socket).
//! - Beside them: `dupes/` (groups of duplicate images), `eval/` (which model finds the right
//!   image) and `bench/` (throughput).
//!
//! `error`, `progress`, `device` and `util` are shared by all.

pub mod bench;
pub mod decode;
pub mod device;
pub mod dupes;
pub mod embed;
pub mod error;
pub mod eval;
pub mod indexer;
pub mod metadata;
pub mod models;
pub mod pairs;
pub mod preprocess;
pub mod progress;
pub mod resize;
pub mod scan;
pub mod search;
pub mod serve;
pub mod store;
pub mod util;
pub mod watch;

pub use error::{DecodeError, Error, Result};
