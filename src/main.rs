//! The `imgsim` binary: parse the command line, run the command, map the outcome to an exit
//! code (0 done, 1 nothing found, 2 error). Everything else lives in the library and `cli/`.

mod allocator;
mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: allocator::Chosen = allocator::Chosen;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v3): milliseconds before freed memory goes
/// back to the OS (1000 by default). The forward pass frees and reallocates tens of megabytes
/// per layer; with purging, every reuse page-faults fresh zeroed pages (measured: 16% of the
/// time). Batch commands keep freed memory for reuse (-1); mimalloc's own variable, when set,
/// wins (to measure the difference).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory_for_reuse() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a process-wide allocator option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// The daemons' memory, kept at its level for weeks: the C library's malloc (see
/// allocator.rs), and no transparent huge pages (a huge page stays resident for one live
/// object in it).
fn keep_daemon_memory_flat() {
    allocator::configure_for_daemon();
    // SAFETY: a process-wide flag of the kernel; no memory is touched.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    die_quietly_on_closed_pipe();
    let args = cli::Args::parse();
    // The allocator was chosen at the first allocation (allocator.rs); the command line
    // parsed since says the same.
    debug_assert_eq!(allocator::is_system(), args.runs_for_long());
    if allocator::is_system() {
        keep_daemon_memory_flat();
    } else {
        keep_freed_memory_for_reuse();
    }
    match cli::run(args) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            cli::report_error(&err);
            ExitCode::from(2)
        }
    }
}

/// `imgsim embed ... | head` closes the pipe early: end quietly, as Unix tools do, instead of
/// failing on the next write (Rust ignores SIGPIPE by default).
fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_has_its_documented_default() {
        // Guards the option's index: purge_delay defaults to 1000 ms in mimalloc v3's options.c
        // (10 in v2), a value no neighbouring option has.
        // SAFETY: reads a process-wide allocator option.
        let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(matches!(value, 1000 | 10 | -1), "{value}");
    }
}
