//! Gaussian blur of `u8` planes with torchvision's semantics for PIL images: an odd `k`-tap
//! kernel sampled at the integers −(k−1)/2 … (k−1)/2 and normalised to sum one, reflect
//! padding (the edge pixel is not repeated), `f32` arithmetic, rounding half to even.
//!
//! torchvision convolves with the outer product of the 1-D kernel; this applies the 1-D kernel
//! along rows then columns, the same operator with a different summation order, so values can
//! differ by one rounding step at exact halves.

/// The normalised 1-D kernel `exp(−x²/2σ²)/Σ` at `x = −(k−1)/2 … (k−1)/2`, in `f32`
/// as torchvision builds it.
pub fn kernel(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size as f32 - 1.0) * 0.5;
    let pdf: Vec<f32> = (0..size)
        .map(|i| {
            let x = (i as f32 - half) / sigma;
            (-0.5 * x * x).exp()
        })
        .collect();
    let total: f32 = pdf.iter().sum();
    pdf.iter().map(|p| p / total).collect()
}

/// Reflects an index into `0..n` without repeating the edge: −1 → 1, n → n − 2.
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let i = if i < 0 { -i } else { i };
    (if i >= n { 2 * (n - 1) - i } else { i }) as usize
}

/// Blurs every `[h, w]` plane of `img` in place with a `size`-tap kernel of width `sigma`.
///
/// # Shapes
/// `img`: `[c, h, w]`.
///
/// # Panics
/// If `size` is even or its half-width is not below both `h` and `w` (reflect padding needs
/// it).
pub fn gaussian_blur(img: &mut [u8], (h, w): (usize, usize), size: usize, sigma: f32) {
    assert!(!size.is_multiple_of(2), "kernel size {size} is not odd");
    let r = size / 2;
    assert!(
        r < h && r < w,
        "kernel size {size} too large for a {h}×{w} image"
    );
    let k = kernel(size, sigma);
    let mut rows = vec![0f32; h * w];
    for plane in img.chunks_exact_mut(h * w) {
        for (y, out) in rows.chunks_exact_mut(w).enumerate() {
            let src = &plane[y * w..(y + 1) * w];
            for (x, o) in out.iter_mut().enumerate() {
                *o = k
                    .iter()
                    .enumerate()
                    .map(|(j, kj)| {
                        kj * f32::from(src[reflect(x as isize + j as isize - r as isize, w)])
                    })
                    .sum();
            }
        }
        for y in 0..h {
            for x in 0..w {
                let v: f32 = k
                    .iter()
                    .enumerate()
                    .map(|(j, kj)| {
                        kj * rows[reflect(y as isize + j as isize - r as isize, h) * w + x]
                    })
                    .sum();
                plane[y * w + x] = v.round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_is_the_normalised_gaussian() {
        // k = 3, σ = 1: weights ∝ e^(−½), 1, e^(−½); the centre is
        // 1/(1 + 2e^(−½)) = 0.45186.
        let k = kernel(3, 1.0);
        assert!((k[1] - 0.451_862).abs() < 1e-5, "{k:?}");
        assert!((k[0] - k[2]).abs() < 1e-7);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn reflection_skips_the_edge() {
        assert_eq!(
            [reflect(-2, 5), reflect(-1, 5), reflect(5, 5), reflect(6, 5)],
            [2, 1, 3, 2]
        );
    }

    #[test]
    fn a_flat_image_stays_flat_and_an_impulse_spreads_as_the_kernel() {
        let mut flat = vec![77u8; 25];
        gaussian_blur(&mut flat, (5, 5), 3, 1.3);
        assert!(flat.iter().all(|&p| p == 77));
        // A 200 impulse in the middle of a 5×5 zero image becomes 200·k[i]·k[j]: the centre
        // 200·0.45186² = 40.84 → 41, its 4-neighbours 200·0.45186·0.27407 = 24.77 → 25.
        let mut img = vec![0u8; 25];
        img[12] = 200;
        gaussian_blur(&mut img, (5, 5), 3, 1.0);
        assert_eq!(
            [img[12], img[7], img[11], img[6], img[0]],
            [41, 25, 25, 15, 0]
        );
    }
}
