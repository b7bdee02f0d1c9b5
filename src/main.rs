//! The `imgsim` binary: parse the command line, run the command, map the outcome to an exit
//! code (0 done, 1 nothing found, 2 error). Everything else lives in the library and `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v3): milliseconds before freed memory goes
/// back to the OS (1000 by default). The forward pass frees and reallocates tens of megabytes per layer; with
/// purging, every reuse page-faults fresh zeroed pages (measured: 16% of the time).
pub(crate) const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Batch commands keep freed memory for reuse (purge delay -1); the daemon gives it back at
/// once (0). mimalloc's own variable, when set, wins (to measure the difference).
fn set_purge_delay(runs_for_long: bool) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let delay = if runs_for_long { 0 } else { -1 };
    // SAFETY: sets a process-wide allocator option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay) };
}

/// mimalloc v3's `mi_option_page_reclaim_on_free` (0 by default: a page left by a thread that
/// ended is taken back only by a thread of its own heap; 1: by any thread that frees in it).
const MI_OPTION_PAGE_RECLAIM_ON_FREE: libmimalloc_sys::mi_option_t = 35;
/// mimalloc v3's `mi_option_allow_thp` (1 by default).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// The daemon's memory, kept at its level for weeks: no transparent huge pages and pages of
/// ended threads (a thread per socket client) reused by the threads that free into them.
/// Measured with the 16-minute soak (seed 2026, the same build, options given through
/// mimalloc's variables): with the defaults the daemon's private memory rose from ~45 MiB to
/// 130 MiB between minutes 11 and 13 and stayed ~90 MiB, 44 MiB of it in huge pages; with
/// reclaiming alone the same; with both, 31-40 MiB throughout (highest 59 MiB). The process
/// opts out of THP itself (`PR_SET_THP_DISABLE`), because mimalloc decides on huge pages for
/// its first mappings before `main` runs. Batch commands keep the defaults (speed).
fn keep_daemon_memory_flat() {
    // SAFETY: a process-wide flag of the kernel, and process-wide allocator options; no memory
    // is touched.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
        }
        if std::env::var_os("MIMALLOC_PAGE_RECLAIM_ON_FREE").is_none() {
            libmimalloc_sys::mi_option_set(MI_OPTION_PAGE_RECLAIM_ON_FREE, 1);
        }
    }
}

fn main() -> ExitCode {
    die_quietly_on_closed_pipe();
    let args = cli::Args::parse();
    // A batch job keeps freed memory for reuse; the daemon does not. Kept, or given back only
    // after mimalloc's default second, every thread's high-water mark (a compaction, a burst
    // of queries) stayed resident: in a 5-minute soak the daemon's private memory was ~80 MiB
    // with the default delay and ~45 MiB with none, at the same rate of changes.
    set_purge_delay(args.runs_for_long());
    if args.runs_for_long() {
        keep_daemon_memory_flat();
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

    #[test]
    fn the_daemon_options_have_their_documented_defaults() {
        // Guards the indices of the options the daemon sets (mimalloc v3's options.c).
        // SAFETY: reads process-wide allocator options.
        let (reclaim, thp) = unsafe {
            (
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PAGE_RECLAIM_ON_FREE),
                libmimalloc_sys::mi_option_get(super::MI_OPTION_ALLOW_THP),
            )
        };
        assert_eq!((reclaim, thp), (0, 1));
    }
}
