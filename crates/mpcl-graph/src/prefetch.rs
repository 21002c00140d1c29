//! Software prefetch of the rows a sparse product will gather, and feature storage that starts
//! on a cache line.
//!
//! On a graph whose rows of X exceed the caches, each entry of `A·X` gathers a random row
//! from memory, and the core keeps too few of those misses in flight by itself to reach the
//! memory's bandwidth (docs/graph-scale.md). The kernels therefore ask for the row of the
//! entry a fixed distance ahead while they add the current one. A prefetch is a hint: it
//! changes no value, only when the lines arrive. On targets other than x86_64, which have no
//! stable prefetch instruction in Rust, [`lines`] does nothing.
//!
//! This module holds the graph layer's one `unsafe` block (the workspace denies `unsafe`
//! code); it does not read or write memory through a pointer.

use ndarray::{Array1, Array2, ArrayView2, s};

use crate::Real;

/// The cache line of the x86_64 and aarch64 CPUs this targets, in bytes.
pub(crate) const LINE: usize = 64;

/// Asks the CPU to bring every cache line that `data` touches into its level-2 cache.
///
/// Level 2 (`prefetcht1`) rather than level 1: on the machine of docs/graph-scale.md, with
/// F at 128 MB, it ran the product 1.5–2× faster than `prefetcht0`, whose requests are
/// limited by the few level-1 miss buffers.
#[inline(always)]
pub(crate) fn lines<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = size_of_val(data) as isize;
        let start = data.as_ptr().cast::<i8>();
        // From the start of the line holding the first byte to the line holding the last.
        let mut offset = -((start.addr() % LINE) as isize);
        while offset < bytes {
            hint_level2(start.wrapping_offset(offset));
            offset += LINE as isize;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// `prefetcht1` on the line holding `p`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn hint_level2(p: *const i8) {
    use core::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    // SAFETY: `_mm_prefetch` is unsafe only because it needs SSE, which every x86_64 CPU has
    // (it is in the target's baseline). The instruction reads nothing into the program and
    // cannot fault on any address; `lines` passes addresses on the lines of a live slice.
    unsafe { _mm_prefetch::<_MM_HINT_T1>(p) }
}

/// An `[n, k]` array of zeros in standard layout whose first element starts a cache line,
/// so that every row starts one when a row is a whole number of lines (k = 32 in f32).
/// A row that straddles one more line than it fills costs a third more traffic per gather.
///
/// # Shapes
/// Returns `[n, k]`.
pub(crate) fn zeros_on_lines<T: Real>((n, k): (usize, usize)) -> Array2<T> {
    let pad = LINE / size_of::<T>();
    let storage = Array1::<T>::zeros(n * k + pad);
    // An f32 or f64 address is a multiple of the element size, and so is LINE.
    let skip = (LINE - storage.as_ptr().addr() % LINE) % LINE / size_of::<T>();
    storage
        .slice_move(s![skip..skip + n * k])
        .into_shape_with_order((n, k))
        .expect("a contiguous slice of n·k elements")
}

/// A copy of `x` in standard layout whose first element starts a cache line, so that its
/// rows start on lines when each row is a whole number of lines (`k·size_of::<T>()` a
/// multiple of 64, as for k = 32 in f32). A large allocation from the system allocator
/// usually starts 16 bytes past a page, where a 128-byte row straddles three lines instead
/// of two: keep features in such a copy when [`CsrGraph::matmul_into`] will gather from
/// them repeatedly, rather than have each product make one.
///
/// # Shapes
/// `x`: `[n, k]`; returns `[n, k]`.
///
/// [`CsrGraph::matmul_into`]: crate::CsrGraph::matmul_into
pub fn on_lines<T: Real>(x: ArrayView2<T>) -> Array2<T> {
    let mut out = zeros_on_lines(x.dim());
    out.assign(&x);
    out
}

/// Whether the rows of the row-major `[·, k]` slice `x` would straddle one more cache line
/// each than they fill, with rows that are whole lines and `x` not starting on one.
pub(crate) fn straddles<T>(x: &[T], k: usize) -> bool {
    (k * size_of::<T>()).is_multiple_of(LINE) && !x.as_ptr().addr().is_multiple_of(LINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_start_on_lines() {
        // Oracle: the address itself. Widths in f32 and f64 whose rows are whole lines.
        // An empty array has no element whose address could matter (ndarray leaves its
        // pointer where the storage starts), so n = 0 checks only the shape.
        for n in [0, 1, 3, 1000] {
            let a = zeros_on_lines::<f32>((n, 32));
            let b = zeros_on_lines::<f64>((n, 8));
            assert_eq!((a.dim(), b.dim()), ((n, 32), (n, 8)));
            assert!(a.is_standard_layout() && b.is_standard_layout());
            assert!(a.iter().all(|&v| v == 0.0));
            if n > 0 {
                assert_eq!(a.as_ptr().addr() % LINE, 0, "f32, n = {n}");
                assert_eq!(b.as_ptr().addr() % LINE, 0, "f64, n = {n}");
            }
        }
    }

    #[test]
    fn a_copy_on_lines_keeps_the_values_and_starts_on_a_line() {
        // Oracle: the source itself, and the address. The source is a view one element into
        // an allocation, so at most one of it and its neighbour can start on a line.
        let base = Array2::from_shape_fn((65, 32), |(i, j)| (i * 32 + j) as f32);
        let x = base.slice(s![1.., ..]);
        let copy = on_lines(x);
        assert_eq!(copy, x);
        assert_eq!(copy.as_ptr().addr() % LINE, 0);
        assert!(!straddles(copy.as_slice().unwrap(), 32));
        let flat = base.as_slice().unwrap();
        assert!(straddles(&flat[1..], 32) || straddles(flat, 32));
        // Rows of 24 f32 (96 bytes) are not whole lines: alignment cannot help them.
        assert!(!straddles(&flat[1..], 24) && !straddles(flat, 24));
    }
}
