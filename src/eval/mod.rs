//! `imgsim eval`: which model finds the right image. Copy detection on DISC21 (and on
//! DISC21-style benchmarks built from any folder by `synth`), category retrieval on COCO, and
//! the official metrics for any predictions file.

pub mod metrics;
