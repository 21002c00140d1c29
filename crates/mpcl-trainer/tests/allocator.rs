//! `retain_freed_memory` against glibc's defaults, counted in page faults. Runs without the
//! test harness, on the main thread: the settings are process-wide and the main thread's
//! arena is the one whose large blocks they move off mappings.
//!
//! The oracle is page arithmetic: filling a fresh 64 MiB tensor touches 16 384 pages of
//! 4 KiB, each a minor fault when the block is a new mapping, none when it reuses memory the
//! process already has. 64 MiB is above the largest mmap threshold glibc adapts to (32 MiB),
//! so under the defaults every such tensor is a new mapping.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use faults::{PAGES, of_one_tensor};
    of_one_tensor();
    let defaults = [of_one_tensor(), of_one_tensor()];
    // The premise: glibc's defaults map each tensor anew (at least one fault per page).
    assert!(
        defaults.iter().all(|&f| f >= PAGES),
        "glibc defaults: {defaults:?} faults"
    );

    assert!(mpcl_trainer::allocator::retain_freed_memory());
    // The first tensor after the call grows the heap; the next ones reuse it.
    of_one_tensor();
    let retained = [of_one_tensor(), of_one_tensor()];
    assert!(
        retained.iter().all(|&f| f < PAGES / 16),
        "retained: {retained:?} faults (glibc defaults: {defaults:?})"
    );
    println!("allocator: faults per 64 MiB tensor {defaults:?} (glibc), {retained:?} (retained)");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    // Without glibc the call changes nothing and says so.
    assert!(!mpcl_trainer::allocator::retain_freed_memory());
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod faults {
    use tch::Tensor;

    /// Pages of 4 KiB in one tensor of `FLOATS` f32.
    pub const PAGES: u64 = 16_384;
    const FLOATS: i64 = (PAGES as i64) * 1024;

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

    /// Faults taken while a 64 MiB tensor is allocated, filled and dropped.
    pub fn of_one_tensor() -> u64 {
        let before = minor();
        let t = Tensor::ones([FLOATS], tch::kind::FLOAT_CPU);
        assert_eq!(t.numel(), FLOATS as usize);
        drop(t);
        minor() - before
    }
}
