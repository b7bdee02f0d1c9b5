//! One integration-test binary (as ripgrep does): each test is one readable scenario.

mod cli;
mod eval;
mod parity;
mod util;
