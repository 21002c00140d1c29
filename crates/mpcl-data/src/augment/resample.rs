//! Resizing `u8` planes as Pillow's `Image.resize` does for 8-bit images: a separable
//! convolution, horizontal pass first, whose filter is stretched by the scale factor when
//! downscaling (so reductions are antialiased), with weights in 22-bit fixed point and the
//! intermediate image rounded and clamped to `u8` between the passes.
//!
//! Only the bilinear (triangle) and bicubic (Keys, a = −0.5) filters are provided: the two
//! that torchvision's `RandomResizedCrop` is used with.

use serde::{Deserialize, Serialize};

/// Fractional bits of the fixed-point weights (Pillow's choice for 8-bit images: 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// The resampling filter of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// The taps of one output sample: the first input index and fixed-point weights.
#[derive(Debug, Clone, Default)]
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// The taps of every output sample when `n_in` samples are resized to `n_out`.
///
/// Output sample `o` is centred on input coordinate `c = (o + ½)·s` with `s = n_in/n_out`; the
/// filter is widened by `max(s, 1)`; its weights are normalised to sum to one, then rounded
/// to fixed point half away from zero.
fn taps(filter: Interpolation, n_in: usize, n_out: usize) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    let stretch = scale.max(1.0);
    let support = filter.support() * stretch;
    let one = f64::from(1u32 << PRECISION_BITS);
    (0..n_out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            // Truncation toward zero, then clamping, as Pillow computes the window.
            let lo = ((centre - support + 0.5) as i64).max(0) as usize;
            let hi = ((centre + support + 0.5) as i64).min(n_in as i64) as usize;
            let raw: Vec<f64> = (lo..hi)
                .map(|i| filter.weight((i as f64 - centre + 0.5) / stretch))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total == 0.0 { w } else { w / total };
                    (w * one).round() as i32
                })
                .collect();
            Taps { first: lo, weights }
        })
        .collect()
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
    let xs = taps(filter, w, out_w);
    let ys = taps(filter, h, out_h);
    let half = 1i32 << (PRECISION_BITS - 1);
    // Horizontal pass over the crop's rows into `[h, out_w]` per plane, then vertical.
    let mut mid = vec![0u8; h * out_w];
    for (plane, dst) in image
        .chunks_exact(height * width)
        .zip(out.chunks_exact_mut(out_h * out_w))
    {
        for (y, mid_row) in mid.chunks_exact_mut(out_w).enumerate() {
            let row = &plane[(top + y) * width + left..][..w];
            for (m, t) in mid_row.iter_mut().zip(&xs) {
                let src = &row[t.first..t.first + t.weights.len()];
                let acc = src
                    .iter()
                    .zip(&t.weights)
                    .fold(half, |a, (&p, &k)| a + i32::from(p) * k);
                *m = to_u8(acc);
            }
        }
        for (dst_row, t) in dst.chunks_exact_mut(out_w).zip(&ys) {
            let mut acc = vec![half; out_w];
            for (k, src_row) in t
                .weights
                .iter()
                .zip(mid[t.first * out_w..].chunks_exact(out_w))
            {
                for (a, &p) in acc.iter_mut().zip(src_row) {
                    *a += i32::from(p) * k;
                }
            }
            for (d, a) in dst_row.iter_mut().zip(acc) {
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
                for t in taps(filter, n_in, n_out) {
                    let sum: i32 = t.weights.iter().sum();
                    let slack = t.weights.len() as i32;
                    assert!((sum - (1 << PRECISION_BITS)).abs() <= slack);
                    assert!(t.first + t.weights.len() <= n_in);
                }
            }
        }
    }
}
