//! Colour transforms on planar `u8` images, each rounding as Pillow does on the PIL path of
//! torchvision: the enhancers blend in single precision and truncate, luma is ITU-R 601-2 in
//! 16-bit fixed point, and the hue shift goes through Pillow's 8-bit HSV.
//!
//! Images are `[c, h, w]` planes; the colour transforms are no-ops on one channel, as
//! torchvision's are on mode `L` images.

/// `Image.blend(degenerate, image, factor)`: `d + f·(x − d)` in `f32`, truncated toward zero,
/// clamped to `[0, 255]` when `f` extrapolates.
#[inline]
fn blend(d: u8, x: u8, f: f32) -> u8 {
    let v = f32::from(d) + f * (f32::from(x) - f32::from(d));
    // `as u8` saturates, which is Pillow's clamping of extrapolated values; inside [0, 1]
    // the value already lies in [0, 255].
    v as u8
}

/// ITU-R 601-2 luma as Pillow's `convert("L")`: (19595·R + 38470·G + 7471·B + 2¹⁵) ≫ 16.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// The luma plane of a 3-channel image, or the plane itself of a 1-channel one.
fn luma_plane(img: &[u8], len: usize) -> Vec<u8> {
    if img.len() == len {
        return img.to_vec();
    }
    let (r, rest) = img.split_at(len);
    let (g, b) = rest.split_at(len);
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((&r, &g), &b)| luma(r, g, b))
        .collect()
}

/// Brightness: blends towards black.
pub fn brightness(img: &mut [u8], factor: f32) {
    for p in img {
        *p = blend(0, *p, factor);
    }
}

/// Contrast: blends towards the mean luma, rounded half up to an integer as
/// `int(mean + 0.5)` does.
///
/// # Shapes
/// `img`: `[c, len]` with `c` 1 or 3.
pub fn contrast(img: &mut [u8], len: usize, factor: f32) {
    let sum: u64 = luma_plane(img, len).iter().map(|&p| u64::from(p)).sum();
    let mean = (sum as f64 / len as f64 + 0.5) as u8;
    for p in img {
        *p = blend(mean, *p, factor);
    }
}

/// Saturation: blends each channel towards the pixel's luma; a no-op on one channel.
///
/// # Shapes
/// `img`: `[c, len]` with `c` 1 or 3.
pub fn saturation(img: &mut [u8], len: usize, factor: f32) {
    if img.len() == len {
        return;
    }
    let gray = luma_plane(img, len);
    for plane in img.chunks_exact_mut(len) {
        for (p, &l) in plane.iter_mut().zip(&gray) {
            *p = blend(l, *p, factor);
        }
    }
}

/// Grayscale: every channel becomes the luma; a no-op on one channel.
///
/// # Shapes
/// `img`: `[c, len]` with `c` 1 or 3.
pub fn grayscale(img: &mut [u8], len: usize) {
    if img.len() == len {
        return;
    }
    let gray = luma_plane(img, len);
    for plane in img.chunks_exact_mut(len) {
        plane.copy_from_slice(&gray);
    }
}

/// Solarize: values at or above `threshold` become `255 − value`.
pub fn solarize(img: &mut [u8], threshold: u8) {
    for p in img {
        if *p >= threshold {
            *p = 255 - *p;
        }
    }
}

/// The 8-bit hue offset of a hue factor in [−½, ½]: `factor·255` truncated toward zero,
/// wrapped modulo 256 (NumPy's int32 → uint8 cast).
pub fn hue_offset(factor: f64) -> u8 {
    ((factor * 255.0) as i32).rem_euclid(256) as u8
}

/// Hue: shifts the 8-bit hue of every pixel by `offset` (mod 256) through Pillow's RGB → HSV
/// → RGB conversions; a no-op on one channel.
///
/// # Shapes
/// `img`: `[c, len]` with `c` 1 or 3.
pub fn hue(img: &mut [u8], len: usize, offset: u8) {
    if img.len() == len {
        return;
    }
    let (r, rest) = img.split_at_mut(len);
    let (g, b) = rest.split_at_mut(len);
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (h, s, v) = rgb_to_hsv(*r, *g, *b);
        (*r, *g, *b) = hsv_to_rgb(h.wrapping_add(offset), s, v);
    }
}

/// Pillow's 8-bit RGB → HSV: the ratios in `f32`, the hue wrapped into [0, 1) in `f64`, both
/// scaled by 255 and truncated.
#[inline]
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    if max == min {
        return (0, 0, max);
    }
    let range = f32::from(max - min);
    let s = range / f32::from(max);
    let dist = |c: u8| f32::from(max - c) / range;
    // The first difference is taken in `f32`, the other two in `f64` (C's promotion of the
    // double constants) and rounded back to `f32`.
    let h = if r == max {
        dist(b) - dist(g)
    } else if g == max {
        (2.0 + f64::from(dist(r)) - f64::from(dist(b))) as f32
    } else {
        (4.0 + f64::from(dist(g)) - f64::from(dist(r))) as f32
    };
    // h ∈ [−1, 5], so h/6 + 1 ∈ [5/6, 11/6] and taking the fractional part is one exact
    // subtraction.
    let x = f64::from(h) / 6.0 + 1.0;
    let h = (if x >= 1.0 { x - 1.0 } else { x }) as f32;
    let byte = |v: f64| (v as i32).clamp(0, 255) as u8;
    (byte(f64::from(h) * 255.0), byte(f64::from(s) * 255.0), max)
}

/// C's `round` (half away from zero) of a non-negative value, without a libm call: the
/// fractional part `x − trunc(x)` is exact.
#[inline]
fn round_non_negative(x: f64) -> u32 {
    let whole = x as u32;
    whole + u32::from(x - f64::from(whole) >= 0.5)
}

/// Pillow's 8-bit HSV → RGB: sector and remainder of h·6/255 in `f64`, the three levels
/// rounded half away from zero, each product in the precision C's promotions give it.
#[inline]
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    if s == 0 {
        return (v, v, v);
    }
    let h6 = f64::from(h) * 6.0 / 255.0;
    // h6 ≥ 0: truncation is the floor, and the remainder below is exact.
    let sector = h6 as u32;
    let f = (h6 - f64::from(sector)) as f32;
    let fs = (f64::from(s) / 255.0) as f32;
    let vf = f64::from(v);
    let level = |k: f64| round_non_negative(vf * k).min(255) as u8;
    let p = level(1.0 - f64::from(fs));
    let q = level(1.0 - f64::from(fs * f));
    let t = level(1.0 - f64::from(fs) * (1.0 - f64::from(f)));
    match sector % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_truncate_and_clamp_as_pillow() {
        // Values checked by hand against Image.blend(black, image, f): 0.555·200 = 111.0,
        // 0.555·100 = 55.5 → 55 (truncated), 1.3·77 = 100.1 → 100, 1.3·200 = 260 → 255.
        let mut img = [100u8, 200, 3, 77];
        brightness(&mut img, 0.555);
        assert_eq!(img, [55, 111, 1, 42]);
        let mut img = [100u8, 200, 3, 77];
        brightness(&mut img, 1.3);
        assert_eq!(img, [130, 255, 3, 100]);
    }

    #[test]
    fn contrast_blends_towards_the_rounded_mean() {
        // Mean of [10, 20, 30, 41] is 25.25 → 25; factor 0.5 gives 25 + 0.5·(x − 25) =
        // 17.5, 22.5, 27.5, 33 → truncated 17, 22, 27, 33.
        let mut img = [10u8, 20, 30, 41];
        contrast(&mut img, 4, 0.5);
        assert_eq!(img, [17, 22, 27, 33]);
    }

    #[test]
    fn luma_matches_the_601_weights() {
        // 0.299·10 + 0.587·200 + 0.114·31 = 123.93 → 124; pure primaries give 76, 150, 29.
        assert_eq!(luma(10, 200, 31), 124);
        assert_eq!(
            [luma(255, 0, 0), luma(0, 255, 0), luma(0, 0, 255)],
            [76, 150, 29]
        );
    }

    #[test]
    fn hsv_round_trips_primaries_and_matches_pillow() {
        // Pillow: (255, 0, 0) → (0, 255, 255), (0, 255, 0) → (85, 255, 255),
        // (0, 0, 255) → (170, 255, 255), (10, 200, 31) → (89, 242, 200).
        assert_eq!(rgb_to_hsv(255, 0, 0), (0, 255, 255));
        assert_eq!(rgb_to_hsv(0, 255, 0), (85, 255, 255));
        assert_eq!(rgb_to_hsv(0, 0, 255), (170, 255, 255));
        assert_eq!(rgb_to_hsv(10, 200, 31), (89, 242, 200));
        assert_eq!(hsv_to_rgb(0, 255, 255), (255, 0, 0));
        assert_eq!(hsv_to_rgb(85, 255, 255), (0, 255, 0));
    }

    #[test]
    fn hue_offsets_wrap_like_numpy() {
        // int32(−0.05·255) = int32(−12.75) = −12 → 244 as uint8; 0.1·255 = 25.5 → 25.
        assert_eq!(hue_offset(-0.05), 244);
        assert_eq!(hue_offset(0.1), 25);
        assert_eq!(hue_offset(0.0), 0);
    }

    #[test]
    fn solarize_inverts_from_the_threshold_up() {
        let mut img = [0u8, 127, 128, 255];
        solarize(&mut img, 128);
        assert_eq!(img, [0, 127, 127, 0]);
    }
}
