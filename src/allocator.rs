//! The binary's memory allocator, chosen once per process by what the process is.
//!
//! - Commands that run and end (`index`, `similar`, `eval`, `bench`, ...): mimalloc, keeping
//!   freed memory for reuse. The forward pass frees and reallocates tens of megabytes per layer;
//!   the C library's malloc maps anything over 32 MiB afresh every time (its ceiling for
//!   `M_MMAP_THRESHOLD`), and every reuse page-faults zeroed pages. Measured on this 2-core
//!   machine (`imgsim bench embed --random-weights -m dinov2-base`, three runs each): mimalloc
//!   3.05 and 3.86 images/s at batch 1 and 16, glibc's malloc at its best settings 2.87 and
//!   3.42, at its defaults 2.80 and 2.88.
//! - The daemons (`watch`, `serve`), which run for weeks: the C library's malloc, with two
//!   arenas, trimmed whenever the daemon goes idle (`trim`). Under the 10-minute soak
//!   (`imgsim bench soak --minutes 10 --seed 2026`) its private memory stayed at 24 -> 26 MiB;
//!   under mimalloc it grew 36 -> 52 MiB (and 38 -> 45, 36 -> 54 in other runs), with purging
//!   at once, no huge pages and reclaim-on-free, while the live heap stayed near 6 MiB
//!   (heaptrack): pages kept by a few live objects each, which mimalloc cannot give back.
//!
//! Every block must go back to the allocator that made it, so the choice is made at the first
//! allocation (from `/proc/self/cmdline`, read without allocating) and never changes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// The global allocator of the `imgsim` binary.
pub struct Chosen;

const UNDECIDED: u8 = 0;
const MIMALLOC: u8 = 1;
const SYSTEM: u8 = 2;

static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// Whether this process is a daemon (`imgsim watch ...`, `imgsim serve ...`): its first
/// argument, the subcommand (imgsim has no options before it).
fn is_daemon(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|&b| b == 0);
    let _program = args.next();
    matches!(args.next(), Some(b"watch" | b"serve"))
}

/// This process's command line, read into a stack buffer: no allocation, as this runs inside
/// the first one. Empty where /proc cannot be read (then: mimalloc).
fn read_cmdline(buf: &mut [u8; 512]) -> &[u8] {
    // SAFETY: a plain open/read/close of a procfs file into a buffer we own.
    unsafe {
        let fd = libc::open(
            c"/proc/self/cmdline".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return &[];
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        &buf[..n.max(0) as usize]
    }
}

/// Whether this process allocates with the C library's malloc (the daemons; set up in `main`
/// with [`configure_for_daemon`]).
#[inline]
pub fn is_system() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        MIMALLOC => false,
        SYSTEM => true,
        _ => {
            // The first allocation comes on the main thread before any other thread exists;
            // and the answer is the same whoever asks.
            let mut buf = [0u8; 512];
            let choice = if is_daemon(read_cmdline(&mut buf)) {
                SYSTEM
            } else {
                MIMALLOC
            };
            CHOICE.store(choice, Ordering::Relaxed);
            choice == SYSTEM
        }
    }
}

// SAFETY: every call goes to one of two correct allocators, the same one for a block's whole
// life, since the choice never changes once made.
unsafe impl GlobalAlloc for Chosen {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_system() {
            System.alloc(layout)
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_system() {
            System.alloc_zeroed(layout)
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_system() {
            System.dealloc(ptr, layout)
        } else {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if is_system() {
            System.realloc(ptr, layout, new_size)
        } else {
            mimalloc::MiMalloc.realloc(ptr, layout, new_size)
        }
    }
}

/// glibc's malloc for a daemon: two arenas (each thread's own arena, the default, multiplies
/// the fragmented pages); its thresholds stay dynamic. Fixing them (blocks up to 32 MiB from
/// the heap, 64 MiB kept at its top between idle trims) made the soak's daemon grow from 37 to
/// 57 MiB in three minutes of constant change, when trims are rare.
pub fn configure_for_daemon() {
    // SAFETY: a process-wide malloc parameter, set before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives the pages of freed memory back to the system (the daemon, when idle).
pub fn trim() {
    if is_system() {
        // SAFETY: walks glibc's arenas and releases whole free pages; no memory of ours moves.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_daemons_take_the_system_allocator() {
        assert!(is_daemon(b"imgsim\0watch\0/photos\0"));
        assert!(is_daemon(b"/usr/bin/imgsim\0serve\0"));
        assert!(!is_daemon(b"imgsim\0index\0watch\0"));
        assert!(!is_daemon(b"imgsim\0similar\0serve.jpg\0"));
        assert!(!is_daemon(b"imgsim\0"));
        assert!(!is_daemon(b""));
    }
}
