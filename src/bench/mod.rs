//! Benchmarks: measured, never asserted. Each reports figures beside a peer run on the same
//! machine in the same run (PyTorch, FAISS), because machines vary and only ratios within one
//! run compare.
//!
//! - `embed.rs`: `imgsim bench embed`: the model alone, the pipeline end to end, decoding and
//!   resizing, beside PyTorch (`bench/peer_torch.py`)
//! - `ann.rs`: `imgsim bench ann`: recall and latency of the store's vector search, exact and
//!   IVF-PQ, beside FAISS (`bench/peer_faiss.py`)
//! - `dupes.rs`: `imgsim bench dupes`: grouping time at a library's size, and the recall of
//!   its pairs against exact search
//!
//! - `browser.rs`: headless Chromium through ChromeDriver (WebDriver), and a small HTTP client:
//!   `imgsim bench serve` and the page's tests drive the page with it
//!
//! (`imgsim bench watch` measures the daemon from outside, as whole processes: it lives in the
//! CLI.)

pub mod ann;
pub mod browser;
pub mod dupes;
pub mod embed;

pub use embed::*;

/// The value at quantile `p` (0 to 1) of sorted measurements; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
