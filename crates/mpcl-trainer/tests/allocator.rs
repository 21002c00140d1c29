//! `retain_freed_memory` against glibc's defaults, counted in page faults and resident pages.
//! Runs without the test harness, on the main thread: the settings are process-wide and the
//! main thread's arena is the one whose large blocks they move off mappings.
//!
//! The oracle is page arithmetic: a 64 MiB tensor spans 16 384 pages of 4 KiB. Filling it
//! takes one minor fault per page when its block is new memory from the kernel and none when
//! it reuses memory the process kept; dropping it lowers the resident size by those pages
//! when the block goes back to the kernel and leaves it when malloc keeps it. 64 MiB is above
//! the largest mmap threshold glibc adapts to (32 MiB), so under the defaults every such
//! tensor is a mapping of its own, unmapped on drop.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use pages::{PAGES, of_one_tensor};
    of_one_tensor();
    let defaults = [of_one_tensor(), of_one_tensor()];
    // The premise: glibc's defaults map each tensor anew and give it back on drop.
    assert!(
        defaults
            .iter()
            .all(|t| t.faults >= PAGES && t.released >= PAGES),
        "glibc defaults: {defaults:?}"
    );

    assert!(mpcl_trainer::allocator::retain_freed_memory());
    let after: Vec<_> = (0..8).map(|_| of_one_tensor()).collect();
    // Every block now stays with the process when its tensor is dropped.
    assert!(
        after.iter().all(|t| t.released < PAGES / 16),
        "retained: {after:?} (glibc defaults: {defaults:?})"
    );
    // And later tensors reuse it. How soon depends on the heap's layout, since libtorch's
    // 64-byte-aligned blocks need a free block a little larger than themselves and a small
    // allocation between two blocks keeps them from merging. With this test's allocations,
    // the heap grew for the first tensor only, with the CPU and the CUDA libtorch alike; an
    // earlier version that allocated differently saw it grow for up to 7 of the 8 with the
    // CUDA one. So the assertion is only that reuse happens.
    assert!(
        after.iter().any(|t| t.faults < PAGES / 16),
        "retained: {after:?} (glibc defaults: {defaults:?})"
    );
    let faults = |ts: &[pages::Tensor]| ts.iter().map(|t| t.faults).collect::<Vec<_>>();
    println!(
        "allocator: faults per 64 MiB tensor {:?} (glibc), {:?} (retained)",
        faults(&defaults),
        faults(&after)
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    // Without glibc the call changes nothing and says so.
    assert!(!mpcl_trainer::allocator::retain_freed_memory());
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod pages {
    /// Pages of 4 KiB in one tensor of `FLOATS` f32.
    pub const PAGES: u64 = 16_384;
    const FLOATS: i64 = (PAGES as i64) * 1024;

    /// What one tensor's life cost, in pages.
    #[derive(Debug)]
    pub struct Tensor {
        /// Minor faults while it was allocated, filled and dropped.
        pub faults: u64,
        /// Resident pages given back by dropping it.
        pub released: u64,
    }

    /// Minor page faults of this process so far: field 10 of /proc/self/stat, counted after
    /// the command name's closing parenthesis (the name may hold spaces).
    fn minor() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        let after_name = &stat[stat.rfind(')').expect("a command name in parentheses") + 2..];
        after_name
            .split(' ')
            .nth(7)
            .and_then(|f| f.parse().ok())
            .expect("field 10 of /proc/self/stat")
    }

    /// Resident pages of this process: the second field of /proc/self/statm.
    fn resident() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
        statm
            .split(' ')
            .nth(1)
            .and_then(|f| f.parse().ok())
            .expect("field 2 of /proc/self/statm")
    }

    /// Allocates, fills and drops a 64 MiB tensor.
    pub fn of_one_tensor() -> Tensor {
        let before = minor();
        let t = tch::Tensor::ones([FLOATS], tch::kind::FLOAT_CPU);
        assert_eq!(t.numel(), FLOATS as usize);
        let alive = resident();
        drop(t);
        let released = alive.saturating_sub(resident());
        Tensor {
            faults: minor() - before,
            released,
        }
    }
}
