//! The `imgsim` binary: parse the command line, run the command, map the outcome to an exit
//! code (0 done, 1 nothing found, 2 error). Everything else lives in the library and `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            cli::report_error(&err);
            ExitCode::from(2)
        }
    }
}
