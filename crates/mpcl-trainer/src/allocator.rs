//! What the C allocator does with the memory of freed tensors.
//!
//! libtorch takes every CPU tensor from `posix_memalign`. glibc's malloc gives each block
//! above its mmap threshold (128 KiB at start, raised as such blocks are freed, at most
//! 32 MiB) a mapping of its own and unmaps it on free, and returns the top of its heap to the
//! kernel once more than the trim threshold lies free there. A training step frees its
//! activations before the next step allocates the same sizes again, so with these defaults
//! the kernel maps and zeroes the same pages anew every step, one page fault per 4 KiB. Over
//! 33 forward and backward passes of the step benchmark's small CNN, `perf stat` on an idle
//! machine counted 5.28 million page faults and 7.9 of 30.5 CPU seconds in the kernel; with
//! the settings below, 0.19 million faults (the process's start included) and 21.0 CPU
//! seconds in all. PyTorch in Python runs on the same allocator and pays the same; the usual
//! advice there is to preload jemalloc or tcmalloc.
//!
//! [`retain_freed_memory`] keeps freed memory in malloc's free lists for the next step
//! instead. The `mpcl` binary and the step benchmark call it at start; a program that uses
//! the trainer as a library decides for itself.

/// Makes glibc's malloc keep the memory the process frees for its later allocations: no
/// block gets a mapping of its own (`M_MMAP_MAX` = 0; blocks come from the heap, except
/// that a thread's own arena still maps those larger than its 64 MiB heaps), and the heap
/// is trimmed only when more than 2 GiB lie free at its top (`M_TRIM_THRESHOLD`). The
/// resident size then stays at the largest the process has needed so far rather than
/// what it needs now.
///
/// Affects the whole process from the call on (blocks mapped before it stay mapped until
/// freed). Returns whether malloc took both settings: `false` on targets whose C library
/// is not glibc, where it changes nothing.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    {
        // SAFETY: `mallopt` only sets malloc's tuning parameters, under malloc's own lock;
        // both values are in the ranges glibc documents for them.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
