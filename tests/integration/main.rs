//! One integration-test binary (as ripgrep does): each test is one readable scenario.

mod cli;
mod dupes;
mod eval;
mod faults;
mod formats;
mod fuzz;
mod hub;
mod index;
mod parity;
mod photos;
mod precision;
mod s3;
mod serve;
mod soak;
mod text;
mod util;
mod watch;
