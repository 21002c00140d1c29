//! Resizing `u8` planes as Pillow's `Image.resize` does for 8-bit images: a separable
//! convolution, horizontal pass first, whose filter is stretched by the scale factor when
//! downscaling (so reductions are antialiased), with weights in 22-bit fixed point and the
//! intermediate image rounded and clamped to `u8` between the passes.
//!
//! Only the bilinear (triangle) and bicubic (Keys, a = −0.5) filters are provided: the two
//! that torchvision's `RandomResizedCrop` is used with.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

/// Fractional bits of the fixed-point weights (Pillow's choice for 8-bit images: 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// The resampling filter of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    /// The triangle filter, support 1 (PIL's `BILINEAR`).
    Bilinear,
    /// Keys' cubic convolution with a = −0.5, support 2 (PIL's `BICUBIC`).
    Bicubic,
}

impl Interpolation {
    /// Half-width of the filter at scale 1.
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    /// The filter's value at `x`.
    ///
    /// ```text
    /// bilinear: max(0, 1 − |x|)
    /// bicubic:  (a+2)|x|³ − (a+3)|x|² + 1          for |x| < 1
    ///           a|x|³ − 5a|x|² + 8a|x| − 4a        for 1 ≤ |x| < 2,  a = −0.5
    /// ```
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => (1.0 - x).max(0.0),
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The taps of every output sample along one axis, `n` per sample: output `o` is
/// `Σₖ in[first[o] + k]·weights[o·n + k]`. Windows narrower than `n` are padded with zero
/// weights (moved left where they would run past the end), so every sample has the same
/// loop.
#[derive(Debug, Clone, Default)]
struct Taps {
    n: usize,
    first: Vec<usize>,
    weights: Vec<i32>,
}

impl Taps {
    /// The taps of every output sample when `n_in` samples are resized to `n_out`.
    ///
    /// Output sample `o` is centred on input coordinate `c = (o + ½)·s` with `s = n_in/n_out`;
    /// the filter is widened by `max(s, 1)`; its weights are normalised to sum to one, then
    /// rounded to fixed point half away from zero.
    fn new(filter: Interpolation, n_in: usize, n_out: usize) -> Self {
        let scale = n_in as f64 / n_out as f64;
        let stretch = scale.max(1.0);
        let support = filter.support() * stretch;
        let one = f64::from(1u32 << PRECISION_BITS);
        // Truncation toward zero, then clamping, as Pillow computes the windows.
        let window = |o: usize| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5) as i64).max(0) as usize;
            let hi = ((centre + support + 0.5) as i64).min(n_in as i64) as usize;
            (centre, lo, hi)
        };
        let n = (0..n_out)
            .map(|o| {
                let (_, lo, hi) = window(o);
                hi - lo
            })
            .max()
            .unwrap_or(0);
        let mut taps = Self {
            n,
            first: Vec::with_capacity(n_out),
            weights: vec![0; n_out * n],
        };
        let mut raw = vec![0.0; n];
        for (o, dst) in taps.weights.chunks_exact_mut(n.max(1)).enumerate() {
            let (centre, lo, hi) = window(o);
            let raw = &mut raw[..hi - lo];
            for (i, r) in (lo..hi).zip(raw.iter_mut()) {
                *r = filter.weight((i as f64 - centre + 0.5) / stretch);
            }
            let total: f64 = raw.iter().sum();
            // A window that would run past the end starts earlier, its weights shifted right.
            let first = lo.min(n_in - n);
            for (d, &w) in dst[lo - first..].iter_mut().zip(raw.iter()) {
                let w = if total == 0.0 { w } else { w / total } * one;
                // Pillow's rounding: ±0.5 then truncation toward zero.
                *d = if w < 0.0 { w - 0.5 } else { w + 0.5 } as i32;
            }
            taps.first.push(first);
        }
        taps
    }
}

/// ½ in fixed point: accumulators start there so that the final shift rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// How many tap tables a thread keeps; past this the cache starts afresh.
const CACHED_TAPS: usize = 64;

thread_local! {
    /// Tap tables by (filter, input length, output length): they do not depend on where the
    /// crop lies, and random crops of one data set reuse a few dozen lengths.
    static TAPS: RefCell<HashMap<(Interpolation, usize, usize), Rc<Taps>>> =
        RefCell::new(HashMap::new());
}

/// [`Taps::new`], from this thread's cache when it has been computed before.
fn cached_taps(filter: Interpolation, n_in: usize, n_out: usize) -> Rc<Taps> {
    TAPS.with_borrow_mut(|cache| {
        if cache.len() >= CACHED_TAPS {
            cache.clear();
        }
        Rc::clone(
            cache
                .entry((filter, n_in, n_out))
                .or_insert_with(|| Rc::new(Taps::new(filter, n_in, n_out))),
        )
    })
}

/// One row of the horizontal pass with windows of `N` taps.
///
/// # Shapes
/// `row`: `[w]` (the crop's row); `out`: `[out_w]`.
#[inline(always)]
fn horizontal<const N: usize>(row: &[u8], xs: &Taps, out: &mut [u8]) {
    for ((m, &first), k) in out
        .iter_mut()
        .zip(&xs.first)
        .zip(xs.weights.chunks_exact(N))
    {
        let src = &row[first..first + N];
        let mut sum = HALF;
        for i in 0..N {
            sum += i32::from(src[i]) * k[i];
        }
        *m = to_u8(sum);
    }
}

/// [`horizontal`] for windows of any length.
#[inline(always)]
fn horizontal_any(row: &[u8], xs: &Taps, out: &mut [u8]) {
    let weights = xs.weights.chunks_exact(xs.n);
    for ((m, &first), k) in out.iter_mut().zip(&xs.first).zip(weights) {
        let src = &row[first..first + xs.n];
        *m = to_u8(
            src.iter()
                .zip(k)
                .fold(HALF, |a, (&p, &k)| a + i32::from(p) * k),
        );
    }
}

/// A fixed-point sum rounded (the accumulator starts at ½) and clamped to `u8`.
#[inline]
fn to_u8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes the crop `(top, left, h, w)` of every `[height, width]` plane of `image` to
/// `(out_h, out_w)`, writing the planes one after another into `out`.
///
/// # Shapes
/// `image`: `[c, height, width]`; `out`: `[c, out_h, out_w]`.
///
/// # Panics
/// If the crop leaves the image or `out` has the wrong length.
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn resize_crop(
    image: &[u8],
    (c, height, width): (usize, usize, usize),
    (top, left, h, w): super::CropBox,
    (out_h, out_w): (usize, usize),
    filter: Interpolation,
    out: &mut [u8],
) {
    assert!(
        top + h <= height && left + w <= width,
        "crop outside the image"
    );
    assert_eq!(
        image.len(),
        c * height * width,
        "image is not {c}×{height}×{width}"
    );
    assert_eq!(
        out.len(),
        c * out_h * out_w,
        "output is not {c}×{out_h}×{out_w}"
    );
    if out.is_empty() {
        return;
    }
    let (xs, ys) = (cached_taps(filter, w, out_w), cached_taps(filter, h, out_h));
    // Horizontal pass over the crop's rows into `[h, out_w]` per plane, then vertical.
    let mut mid = vec![0u8; h * out_w];
    let mut acc = vec![0i32; out_w];
    for (plane, dst) in image
        .chunks_exact(height * width)
        .zip(out.chunks_exact_mut(out_h * out_w))
    {
        for (y, mid_row) in mid.chunks_exact_mut(out_w).enumerate() {
            let row = &plane[(top + y) * width + left..][..w];
            // The usual window lengths get loops of known length (upscaling: 2 bilinear
            // taps, 4 bicubic ones).
            match xs.n {
                2 => horizontal::<2>(row, &xs, mid_row),
                4 => horizontal::<4>(row, &xs, mid_row),
                _ => horizontal_any(row, &xs, mid_row),
            }
        }
        let weights = ys.weights.chunks_exact(ys.n);
        for ((dst_row, &first), k) in dst.chunks_exact_mut(out_w).zip(&ys.first).zip(weights) {
            acc.fill(HALF);
            for (&k, src_row) in k.iter().zip(mid[first * out_w..].chunks_exact(out_w)) {
                for (a, &p) in acc.iter_mut().zip(src_row) {
                    *a += i32::from(p) * k;
                }
            }
            for (d, &a) in dst_row.iter_mut().zip(&acc) {
                *d = to_u8(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_resize_copies() {
        // At scale 1 the triangle and cubic filters are 1 at their centre and 0 at the other
        // integer offsets, so every pixel maps to itself.
        let img: Vec<u8> = (0..=255).collect();
        for filter in [Interpolation::Bilinear, Interpolation::Bicubic] {
            let mut out = vec![0; 256];
            resize_crop(
                &img,
                (1, 16, 16),
                (0, 0, 16, 16),
                (16, 16),
                filter,
                &mut out,
            );
            assert_eq!(out, img);
        }
    }

    #[test]
    fn bilinear_upsampling_matches_hand_computed_values() {
        // A 1×2 row [0, 100] to 1×4: output x = 1 is centred on 0.75, i.e. 0.25 past pixel 0's
        // centre at 0.5: weights 0.75, 0.25 → 25. The edge outputs see one pixel only (the
        // window is clipped), so they copy it.
        let mut out = [0; 4];
        let filter = Interpolation::Bilinear;
        resize_crop(&[0, 100], (1, 1, 2), (0, 0, 1, 2), (1, 4), filter, &mut out);
        assert_eq!(out, [0, 25, 75, 100]);
    }

    #[test]
    fn downscaling_averages_the_whole_footprint() {
        // 4 → 1 with the triangle stretched ×4: centre 2, taps at 0.5, 1.5, 2.5, 3.5 with
        // weights 1 − |x − 2|/4 = 5/8, 7/8, 7/8, 5/8 (normalised by 3):
        // (5·0 + 7·40 + 7·80 + 5·120)/24 = 60.
        let mut out = [0];
        let filter = Interpolation::Bilinear;
        resize_crop(
            &[0, 40, 80, 120],
            (1, 1, 4),
            (0, 0, 1, 4),
            (1, 1),
            filter,
            &mut out,
        );
        assert_eq!(out, [60]);
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        // Normalised weights round to within one unit each of the exact fractions.
        for filter in [Interpolation::Bilinear, Interpolation::Bicubic] {
            for (n_in, n_out) in [(7, 32), (32, 7), (13, 13), (30, 32)] {
                let taps = Taps::new(filter, n_in, n_out);
                for (&first, k) in taps.first.iter().zip(taps.weights.chunks_exact(taps.n)) {
                    let sum: i32 = k.iter().sum();
                    let slack = taps.n as i32;
                    assert!((sum - (1 << PRECISION_BITS)).abs() <= slack);
                    assert!(first + taps.n <= n_in);
                }
            }
        }
    }
}
