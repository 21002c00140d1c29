//! Colour transforms on planar `u8` images, each rounding as Pillow does on the PIL path of
//! torchvision: the enhancers blend in single precision and truncate, luma is ITU-R 601-2 in
//! 16-bit fixed point, and the hue shift goes through Pillow's 8-bit HSV.
//!
//! Images are `[c, h, w]` planes; the colour transforms are no-ops on one channel, as
//! torchvision's are on mode `L` images.
//!
//! The hot loops are written for speed with the same results, bit for bit: brightness and
//! contrast map through a 256-entry table of the blend (one factor, one centre per image),
//! saturation and the HSV round trip are branch-free per pixel so that the compiler
//! vectorises them, and nothing allocates. The unit tests keep the straightforward
//! per-pixel forms as oracles and compare exhaustively (all 2²⁴ inputs of each HSV
//! conversion) or on many random images.

/// `Image.blend(degenerate, image, factor)`: `d + f·(x − d)` in `f32`, truncated toward zero,
/// clamped to `[0, 255]` when `f` extrapolates.
#[inline]
fn blend(d: u8, x: u8, f: f32) -> u8 {
    let v = f32::from(d) + f * (f32::from(x) - f32::from(d));
    // `as u8` saturates, which is Pillow's clamping of extrapolated values; inside [0, 1]
    // the value already lies in [0, 255].
    v as u8
}

/// [`blend`] in steps the compiler vectorises: clamping to [0, 255] before taking the floor
/// is the saturating cast (which truncates (−1, 0) to 0 as well).
#[inline(always)]
fn blend_clamped(d: u8, x: u8, f: f32) -> u8 {
    let v = f32::from(d) + f * (f32::from(x) - f32::from(d));
    floor_small(f64::from(v.clamp(0.0, 255.0))).1 as u8
}

/// The blend towards `d` with factor `f` of every byte value, as a lookup table.
fn blend_table(d: u8, f: f32) -> [u8; 256] {
    std::array::from_fn(|x| blend(d, x as u8, f))
}

/// Maps every byte of `img` through `table`.
fn map_bytes(img: &mut [u8], table: &[u8; 256]) {
    for p in img {
        *p = table[usize::from(*p)];
    }
}

/// ITU-R 601-2 luma as Pillow's `convert("L")`: (19595·R + 38470·G + 7471·B + 2¹⁵) ≫ 16.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// The three planes of a 3-channel image, or `None` for one channel.
fn rgb_planes(img: &mut [u8], len: usize) -> Option<(&mut [u8], &mut [u8], &mut [u8])> {
    if img.len() == len {
        return None;
    }
    let (r, rest) = img.split_at_mut(len);
    let (g, b) = rest.split_at_mut(len);
    Some((r, g, &mut b[..len]))
}

/// Brightness: blends towards black.
pub fn brightness(img: &mut [u8], factor: f32) {
    map_bytes(img, &blend_table(0, factor));
}

/// Contrast: blends towards the mean luma, rounded half up to an integer as
/// `int(mean + 0.5)` does.
///
/// # Shapes
/// `img`: `[c, len]` with `c` 1 or 3.
pub fn contrast(img: &mut [u8], len: usize, factor: f32) {
    let sum: u64 = if img.len() == len {
        img.iter().map(|&p| u64::from(p)).sum()
    } else {
        let (r, rest) = img.split_at(len);
        let (g, b) = rest.split_at(len);
        // Per-pixel luma fits in u32; 2³² / 255 pixels before the sum could overflow.
        let luma_sum = |(r, g, b): (&[u8], &[u8], &[u8])| -> u64 {
            let s: u32 = r
                .iter()
                .zip(g)
                .zip(b)
                .map(|((&r, &g), &b)| u32::from(luma(r, g, b)))
                .sum();
            u64::from(s)
        };
        const CHUNK: usize = 1 << 16;
        r.chunks(CHUNK)
            .zip(g.chunks(CHUNK))
            .zip(b.chunks(CHUNK))
            .map(|((r, g), b)| luma_sum((r, g, b)))
            .sum()
    };
    let mean = (sum as f64 / len as f64 + 0.5) as u8;
    map_bytes(img, &blend_table(mean, factor));
}

/// Saturation: blends each channel towards the pixel's luma; a no-op on one channel.
///
/// # Shapes
/// `img`: `[c, len]` with `c` 1 or 3.
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn saturation(img: &mut [u8], len: usize, factor: f32) {
    let Some((r, g, b)) = rgb_planes(img, len) else {
        return;
    };
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let l = luma(*r, *g, *b);
        let mix = |x: u8| blend_clamped(l, x, factor);
        (*r, *g, *b) = (mix(*r), mix(*g), mix(*b));
    }
}

/// Grayscale: every channel becomes the luma; a no-op on one channel.
///
/// # Shapes
/// `img`: `[c, len]` with `c` 1 or 3.
pub fn grayscale(img: &mut [u8], len: usize) {
    let Some((r, g, b)) = rgb_planes(img, len) else {
        return;
    };
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let l = luma(*r, *g, *b);
        (*r, *g, *b) = (l, l, l);
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
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl", "x86_64+avx2"))]
pub fn hue(img: &mut [u8], len: usize, offset: u8) {
    let Some((r, g, b)) = rgb_planes(img, len) else {
        return;
    };
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (h, s, v) = rgb_to_hsv(*r, *g, *b);
        (*r, *g, *b) = hsv_to_rgb(h.wrapping_add(offset), s, v);
    }
}

/// Pillow's 8-bit RGB → HSV without branches: the ratios in `f32`, the hue wrapped into
/// [0, 1) in `f64`, both scaled by 255 and truncated.
///
/// Pillow computes the three distances `(max − c)/range` and combines two of them by which
/// channel is the maximum (red, then green, then blue). One of the two is the minimum's,
/// exactly 1, so the hue is `A ± q` with q the middle channel's distance:
///
/// ```text
/// max  min   Pillow's h           here
/// r    b     bc − gc  (f32)       1 − q
/// r    g     bc − gc  (f32)       q − 1
/// g    b     2 + rc − bc (f64)    1 + q
/// g    r     2 + rc − bc (f64)    3 − q
/// b    g     4 + gc − rc (f64)    5 − q
/// b    r     4 + gc − rc (f64)    3 + q
/// ```
///
/// `A ± q` is exact in `f64` (q has 24 significant bits), so rounding it once to `f32` is
/// Pillow's value in every row; ties between channels pick the rows Pillow's order picks.
#[inline(always)]
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let range = max - min;
    let r_max = r == max;
    let g_max = !r_max & (g == max);
    let b_max = !r_max & !g_max;
    // The middle channel and the row of the table above.
    let mid = if r_max {
        if b <= g { g } else { b }
    } else if g_max {
        if b <= r { r } else { b }
    } else if r <= g {
        g
    } else {
        r
    };
    let negate = (r_max & (b <= g)) | (g_max & (b > r)) | (b_max & (g < r));
    let base = if r_max {
        if b <= g { 1.0 } else { -1.0 }
    } else if g_max {
        if b <= r { 1.0 } else { 3.0 }
    } else if r <= g {
        3.0
    } else {
        5.0
    };
    let q = f32::from(max - mid) / f32::from(range);
    let h = (base + f64::from(if negate { -q } else { q })) as f32;
    // h ∈ [−1, 5], so h/6 + 1 ∈ [5/6, 11/6] and taking the fractional part is one exact
    // subtraction.
    let x = f64::from(h) / 6.0 + 1.0;
    let h = (if x >= 1.0 { x - 1.0 } else { x }) as f32;
    let s = f32::from(range) / f32::from(max);
    // h and s lie in [0, 1], so truncation is the floor; grays divide 0 by 0 and are
    // replaced below.
    let byte = |x: f32| floor_small(f64::from(x) * 255.0).1 as u8;
    let (h, s) = (byte(h), byte(s));
    if range == 0 { (0, 0, max) } else { (h, s, max) }
}

/// 2⁵²: adding it to 0 ≤ x < 2⁵¹ rounds x to the nearest integer and leaves that integer in
/// the low bits of the sum's mantissa.
const ROUNDER: f64 = 4_503_599_627_370_496.0;

/// ⌊x⌋ for 0 ≤ x < 2³¹, as a float and as an integer, in steps the compiler vectorises
/// (Rust's saturating `as` casts are not, on baseline x86-64). NaN gives an unspecified value.
#[inline(always)]
fn floor_small(x: f64) -> (f64, u32) {
    let sum = x + ROUNDER;
    let nearest = sum - ROUNDER;
    let above = nearest > x;
    let whole = if above { nearest - 1.0 } else { nearest };
    (whole, (sum.to_bits() as u32).wrapping_sub(u32::from(above)))
}

/// C's `round` (half away from zero) of 0 ≤ x < 2³¹: the fractional part `x − ⌊x⌋` is
/// exact.
#[inline(always)]
fn round_non_negative(x: f64) -> u32 {
    let (whole, n) = floor_small(x);
    n + u32::from(x - whole >= 0.5)
}

/// Pillow's 8-bit HSV → RGB without branches: sector and remainder of h·6/255 in `f64`, the
/// three levels rounded half away from zero, each product in the precision C's promotions
/// give it. Pillow returns `(v, v, v)` when s = 0; here the levels are then `round(v·1)` = v,
/// the same without a test.
#[inline(always)]
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    let h6 = f64::from(h) * 6.0 / 255.0;
    // h6 ≥ 0, and the remainder below is exact.
    let (whole, sector) = floor_small(h6);
    let f = (h6 - whole) as f32;
    let fs = (f64::from(s) / 255.0) as f32;
    let vf = f64::from(v);
    // Each k lies in [0, 1], so v·k ≤ v ≤ 255.
    let level = |k: f64| round_non_negative(vf * k) as u8;
    let p = level(1.0 - f64::from(fs));
    let q = level(1.0 - f64::from(fs * f));
    let t = level(1.0 - f64::from(fs) * (1.0 - f64::from(f)));
    // Sector 6 (h = 255) is sector 0 with f = 0.
    let pick = |levels: [u8; 6]| {
        let mut out = levels[0];
        for (k, &l) in levels.iter().enumerate().skip(1) {
            out = if sector == k as u32 { l } else { out };
        }
        out
    };
    (
        pick([v, q, p, p, t, v]),
        pick([t, v, v, q, p, p]),
        pick([p, p, t, v, v, q]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Pillow's `rgb2hsv_row` for one pixel, written as its C source branches: the oracle of
    /// the branch-free [`rgb_to_hsv`].
    fn rgb_to_hsv_reference(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        if max == min {
            return (0, 0, max);
        }
        let range = f32::from(max - min);
        let s = range / f32::from(max);
        let dist = |c: u8| f32::from(max - c) / range;
        // The first difference is taken in `f32`, the other two in `f64` (C's promotion of
        // the double constants) and rounded back to `f32`.
        let h = if r == max {
            dist(b) - dist(g)
        } else if g == max {
            (2.0 + f64::from(dist(r)) - f64::from(dist(b))) as f32
        } else {
            (4.0 + f64::from(dist(g)) - f64::from(dist(r))) as f32
        };
        let h = ((f64::from(h) / 6.0 + 1.0) % 1.0) as f32;
        let byte = |v: f64| (v as i32).clamp(0, 255) as u8;
        (byte(f64::from(h) * 255.0), byte(f64::from(s) * 255.0), max)
    }

    /// Pillow's `hsv2rgb_row` for one pixel, with its branches: the oracle of [`hsv_to_rgb`].
    fn hsv_to_rgb_reference(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
        if s == 0 {
            return (v, v, v);
        }
        let h6 = f64::from(h) * 6.0 / 255.0;
        let sector = h6.floor();
        let f = (h6 - sector) as f32;
        let fs = (f64::from(s) / 255.0) as f32;
        let vf = f64::from(v);
        let level = |k: f64| (vf * k).round().clamp(0.0, 255.0) as u8;
        let p = level(1.0 - f64::from(fs));
        let q = level(1.0 - f64::from(fs * f));
        let t = level(1.0 - f64::from(fs) * (1.0 - f64::from(f)));
        match sector as u32 % 6 {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        }
    }

    /// Every transform written pixel by pixel from [`blend`], [`luma`] and the reference
    /// HSV conversions: the oracle of the table-driven and branch-free forms.
    fn jitter_reference(img: &mut [u8], len: usize, step: u8, factor: f32, offset: u8) {
        let c = img.len() / len;
        let lumas: Vec<u8> = (0..len)
            .map(|i| match c {
                1 => img[i],
                _ => luma(img[i], img[len + i], img[2 * len + i]),
            })
            .collect();
        match step {
            0 => img.iter_mut().for_each(|p| *p = blend(0, *p, factor)),
            1 => {
                let sum: u64 = lumas.iter().map(|&l| u64::from(l)).sum();
                let mean = (sum as f64 / len as f64 + 0.5) as u8;
                img.iter_mut().for_each(|p| *p = blend(mean, *p, factor));
            }
            2 if c == 3 => {
                for (i, p) in img.iter_mut().enumerate() {
                    *p = blend(lumas[i % len], *p, factor);
                }
            }
            3 if c == 3 => {
                for i in 0..len {
                    let (h, s, v) = rgb_to_hsv_reference(img[i], img[len + i], img[2 * len + i]);
                    let (r, g, b) = hsv_to_rgb_reference(h.wrapping_add(offset), s, v);
                    (img[i], img[len + i], img[2 * len + i]) = (r, g, b);
                }
            }
            4 if c == 3 => {
                for (i, p) in img.iter_mut().enumerate() {
                    *p = lumas[i % len];
                }
            }
            _ => {}
        }
    }

    #[test]
    fn rgb_to_hsv_matches_pillow_on_every_colour() {
        // Exhaustive: all 2²⁴ colours against the branchy transcription of Pillow's C.
        for r in 0..=255u8 {
            for g in 0..=255u8 {
                for b in 0..=255u8 {
                    let (fast, slow) = (rgb_to_hsv(r, g, b), rgb_to_hsv_reference(r, g, b));
                    assert_eq!(fast, slow, "rgb ({r}, {g}, {b})");
                }
            }
        }
    }

    #[test]
    fn hsv_to_rgb_matches_pillow_on_every_triple() {
        // Exhaustive: all 2²⁴ (h, s, v) against the branchy transcription of Pillow's C.
        for h in 0..=255u8 {
            for s in 0..=255u8 {
                for v in 0..=255u8 {
                    let (fast, slow) = (hsv_to_rgb(h, s, v), hsv_to_rgb_reference(h, s, v));
                    assert_eq!(fast, slow, "hsv ({h}, {s}, {v})");
                }
            }
        }
    }

    #[test]
    fn fast_transforms_match_the_per_pixel_oracle() {
        // 2000 random images (1 or 3 channels, 1 to 64² pixels, some low in contrast so that
        // grays and ties are common) and factors in [0, 2], each transform bit for bit.
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for case in 0..2000 {
            let c = if case % 4 == 0 { 1 } else { 3 };
            let len = rng.random_range(1..=4096);
            let spread = if case % 3 == 0 { 4 } else { 256 };
            let base = rng.random_range(0..=255 - (spread - 1) as u8);
            let img: Vec<u8> = (0..c * len)
                .map(|_| base + rng.random_range(0..spread) as u8)
                .collect();
            let factor = rng.random_range(0.0..2.0f32);
            let offset = rng.random::<u8>();
            for step in 0..5u8 {
                let mut fast = img.clone();
                match step {
                    0 => brightness(&mut fast, factor),
                    1 => contrast(&mut fast, len, factor),
                    2 => saturation(&mut fast, len, factor),
                    3 => hue(&mut fast, len, offset),
                    _ => grayscale(&mut fast, len),
                }
                let mut slow = img.clone();
                jitter_reference(&mut slow, len, step, factor, offset);
                assert_eq!(fast, slow, "case {case}, step {step}, factor {factor}");
            }
        }
    }

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
        assert_eq!(rgb_to_hsv_reference(255, 0, 0), (0, 255, 255));
        assert_eq!(rgb_to_hsv_reference(0, 255, 0), (85, 255, 255));
        assert_eq!(rgb_to_hsv_reference(0, 0, 255), (170, 255, 255));
        assert_eq!(rgb_to_hsv_reference(10, 200, 31), (89, 242, 200));
        assert_eq!(hsv_to_rgb_reference(0, 255, 255), (255, 0, 0));
        assert_eq!(hsv_to_rgb_reference(85, 255, 255), (0, 255, 0));
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
