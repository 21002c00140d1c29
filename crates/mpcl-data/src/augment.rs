//! SimCLR-style augmentations for single-channel images, with torchvision's semantics:
//! `RandomResizedCrop` (bilinear), `RandomHorizontalFlip`, and `ColorJitter` restricted to
//! brightness and contrast (the parts that mean something for gray images), applied with a
//! probability as `RandomApply` does, then normalisation into `f32`.
//!
//! Each view is drawn from its own generator seeded by `(seed, epoch, index, view)`, so a view
//! does not depend on the thread that made it or on the order of the work.
//!
//! Not here yet: colour transforms, blur, solarisation, per-view pipelines (FIXME(#8)).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The settings of the gray-image pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrayAugment {
    /// Range of the crop's area as a fraction of the image (torchvision's `scale`).
    /// Default `[0.08, 1.0]`, torchvision's.
    #[serde(deserialize_with = "range")]
    pub crop_scale: [f64; 2],
    /// Range of the crop's aspect ratio w/h (torchvision's `ratio`), sampled log-uniformly.
    /// Default `[3/4, 4/3]`.
    #[serde(deserialize_with = "range")]
    pub crop_ratio: [f64; 2],
    /// Probability of a horizontal flip. Default 0.5.
    pub flip_p: f64,
    /// Probability that the jitter is applied at all (`RandomApply`). Default 0.8.
    pub jitter_p: f64,
    /// Brightness strength b: the factor is drawn from [max(0, 1 − b), 1 + b]. Default 0.4.
    pub brightness: f64,
    /// Contrast strength c: the factor is drawn from [max(0, 1 − c), 1 + c]. Default 0.4.
    pub contrast: f64,
    /// Mean subtracted after scaling pixels to [0, 1]. Default 0.2860 (Fashion-MNIST's).
    pub mean: f32,
    /// Standard deviation divided by after subtracting the mean. Default 0.3530.
    pub std: f32,
}

impl Default for GrayAugment {
    fn default() -> Self {
        Self {
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_p: 0.5,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            // Fashion-MNIST's training-set pixel mean and standard deviation.
            mean: 0.2860,
            std: 0.3530,
        }
    }
}

impl GrayAugment {
    /// Checks every setting; the error names the field and the value.
    ///
    /// # Errors
    /// A message naming the first invalid field.
    pub fn validate(&self) -> Result<(), String> {
        let [s0, s1] = self.crop_scale;
        if !(0.0 < s0 && s0 <= s1 && s1 <= 1.0) {
            return Err(format!(
                "crop_scale = {:?}: need 0 < min ≤ max ≤ 1",
                self.crop_scale
            ));
        }
        let [r0, r1] = self.crop_ratio;
        if !(0.0 < r0 && r0 <= r1 && r1.is_finite()) {
            return Err(format!(
                "crop_ratio = {:?}: need 0 < min ≤ max",
                self.crop_ratio
            ));
        }
        for (name, p) in [("flip_p", self.flip_p), ("jitter_p", self.jitter_p)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} = {p}: a probability must lie in [0, 1]"));
            }
        }
        for (name, s) in [("brightness", self.brightness), ("contrast", self.contrast)] {
            if !(s >= 0.0 && s.is_finite()) {
                return Err(format!("{name} = {s}: a jitter strength must be ≥ 0"));
            }
        }
        if !self.mean.is_finite() {
            return Err(format!("mean = {}: must be finite", self.mean));
        }
        if !(self.std > 0.0 && self.std.is_finite()) {
            return Err(format!("std = {}: must be > 0", self.std));
        }
        Ok(())
    }

    /// Draws view `view` of image `index` in `epoch` and writes it, normalised, into `out`.
    ///
    /// # Shapes
    /// `image`: `[h, w]` bytes; `out`: `[h, w]` floats (the crop is resized back to the input
    /// size).
    pub fn view(&self, image: &[u8], (h, w): (usize, usize), key: ViewKey, out: &mut [f32]) {
        assert_eq!(image.len(), h * w, "image is not {h}×{w}");
        assert_eq!(out.len(), h * w, "output is not {h}×{w}");
        let mut rng = key.rng();
        let crop = crop_box(&mut rng, (h, w), self.crop_scale, self.crop_ratio);
        let mut img = resize_bilinear(image, (h, w), crop, (h, w));
        if rng.random_bool(self.flip_p) {
            for row in img.chunks_exact_mut(w) {
                row.reverse();
            }
        }
        if rng.random_bool(self.jitter_p) {
            self.jitter(&mut rng, &mut img);
        }
        let (mean, inv_std) = (self.mean, 1.0 / self.std);
        for (o, &p) in out.iter_mut().zip(&img) {
            *o = (f32::from(p) / 255.0 - mean) * inv_std;
        }
    }

    /// ColorJitter's brightness and contrast, each factor drawn as torchvision draws it and
    /// the two applied in a random order, rounding to `u8` after each as the PIL path does.
    fn jitter(&self, rng: &mut ChaCha8Rng, img: &mut [u8]) {
        let factor = |rng: &mut ChaCha8Rng, s: f64| {
            (s > 0.0).then(|| rng.random_range((1.0 - s).max(0.0)..=1.0 + s))
        };
        // torchvision draws the order first, then each factor in the fixed order
        // brightness, contrast.
        let brightness_first = rng.random_bool(0.5);
        let b = factor(rng, self.brightness);
        let c = factor(rng, self.contrast);
        let apply_b = |img: &mut [u8]| b.inspect(|&b| blend(img, 0.0, b));
        let apply_c = |img: &mut [u8]| c.inspect(|&c| blend(img, gray_mean(img), c));
        if brightness_first {
            apply_b(img);
            apply_c(img);
        } else {
            apply_c(img);
            apply_b(img);
        }
    }
}

/// Reads `[min, max]`, rejecting lists of any other length (serde's fixed-size arrays would
/// silently drop extra elements in some formats).
fn range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[f64; 2], D::Error> {
    let v = Vec::<f64>::deserialize(d)?;
    <[f64; 2]>::try_from(v.as_slice())
        .map_err(|_| serde::de::Error::invalid_length(v.len(), &"two numbers [min, max]"))
}

/// Identifies one augmented view; its generator depends on these four numbers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewKey {
    /// The run's seed.
    pub seed: u64,
    /// The epoch.
    pub epoch: u64,
    /// The image's index in the data set.
    pub index: u64,
    /// Which view of the image.
    pub view: u64,
}

impl ViewKey {
    fn rng(self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        // ChaCha streams are independent: one stream per (epoch, index, view).
        rng.set_stream(self.epoch << 40 ^ self.index << 8 ^ self.view);
        rng
    }
}

/// A crop box: top, left, height, width.
pub type CropBox = (usize, usize, usize, usize);

/// torchvision's `RandomResizedCrop.get_params`: ten attempts at a box with a random area and
/// log-uniform aspect ratio that fits, else a centre crop clamped to the ratio range.
pub fn crop_box(
    rng: &mut impl rand::Rng,
    (height, width): (usize, usize),
    scale: [f64; 2],
    ratio: [f64; 2],
) -> CropBox {
    let area = (height * width) as f64;
    let (log_r0, log_r1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let aspect = rng.random_range(log_r0..=log_r1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        ((width as f64 / ratio[0]).round() as usize, width)
    } else if in_ratio > ratio[1] {
        (height, (height as f64 * ratio[1]).round() as usize)
    } else {
        (height, width)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// Bilinear resize of the crop `(top, left, h, w)` of a `[height, width]` image to `out`,
/// with half-pixel centres (`align_corners = false`) and edge clamping, rounded to `u8`.
///
/// # Shapes
/// `image`: `[height, width]`; returns `[out.0, out.1]`.
pub fn resize_bilinear(
    image: &[u8],
    (_height, width): (usize, usize),
    (top, left, h, w): CropBox,
    (out_h, out_w): (usize, usize),
) -> Vec<u8> {
    let (sy, sx) = (h as f32 / out_h as f32, w as f32 / out_w as f32);
    let taps = |o: usize, s: f32, n: usize| {
        let src = ((o as f32 + 0.5) * s - 0.5).clamp(0.0, (n - 1) as f32);
        let i0 = src.floor() as usize;
        (i0, (i0 + 1).min(n - 1), src - i0 as f32)
    };
    let xs: Vec<_> = (0..out_w).map(|x| taps(x, sx, w)).collect();
    let mut out = Vec::with_capacity(out_h * out_w);
    for y in 0..out_h {
        let (y0, y1, fy) = taps(y, sy, h);
        let row0 = &image[(top + y0) * width + left..];
        let row1 = &image[(top + y1) * width + left..];
        for &(x0, x1, fx) in &xs {
            let top_v = f32::from(row0[x0]) * (1.0 - fx) + f32::from(row0[x1]) * fx;
            let bot_v = f32::from(row1[x0]) * (1.0 - fx) + f32::from(row1[x1]) * fx;
            out.push((top_v * (1.0 - fy) + bot_v * fy).round() as u8);
        }
    }
    out
}

/// PIL's `ImageEnhance` blend: `degenerate + factor·(x − degenerate)`, clamped and rounded.
fn blend(img: &mut [u8], degenerate: f64, factor: f64) {
    for p in img.iter_mut() {
        *p = (degenerate + factor * (f64::from(*p) - degenerate))
            .round()
            .clamp(0.0, 255.0) as u8;
    }
}

/// The mean of a gray image rounded as PIL's contrast enhancer rounds it (`int(mean + 0.5)`).
fn gray_mean(img: &[u8]) -> f64 {
    let sum: u64 = img.iter().map(|&p| u64::from(p)).sum();
    (sum as f64 / img.len() as f64 + 0.5).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(view: u64) -> ViewKey {
        ViewKey {
            seed: 7,
            epoch: 0,
            index: 3,
            view,
        }
    }

    #[test]
    fn identity_crop_is_exact() {
        let img: Vec<u8> = (0..=255).collect();
        let out = resize_bilinear(&img, (16, 16), (0, 0, 16, 16), (16, 16));
        assert_eq!(out, img);
    }

    #[test]
    fn upsampling_matches_hand_computed_bilinear() {
        // A 2×2 crop [[0, 100], [200, 40]] to 4×4. Output x = 1 samples source x =
        // (1 + 0.5)·0.5 − 0.5 = 0.25, so its top-row value is 0·0.75 + 100·0.25 = 25;
        // output y = 2 samples source y = 0.75: column 0 is 0·0.25 + 200·0.75 = 150.
        let img = [0u8, 100, 200, 40];
        let out = resize_bilinear(&img, (2, 2), (0, 0, 2, 2), (4, 4));
        assert_eq!(out[1], 25);
        assert_eq!(out[2 * 4], 150);
        // Corners clamp to the source corners.
        assert_eq!([out[0], out[3], out[12], out[15]], [0, 100, 200, 40]);
    }

    #[test]
    fn crop_boxes_fit_and_respect_the_area_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..2000 {
            let (t, l, h, w) = crop_box(&mut rng, (28, 28), [0.08, 1.0], [0.75, 4.0 / 3.0]);
            assert!(t + h <= 28 && l + w <= 28 && h > 0 && w > 0);
            // Rounding each side moves the area by at most about one row and one column.
            let area = (h * w) as f64 / 784.0;
            assert!((0.08 - 2.0 * 29.0 / 784.0..=1.0).contains(&area), "{area}");
        }
    }

    #[test]
    fn impossible_scale_falls_back_to_the_centre_crop() {
        // Ratio range [2, 3] on a square image: torchvision's fallback keeps the width and
        // takes height = round(width / 2).
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(
            crop_box(&mut rng, (28, 28), [1.0, 1.0], [2.0, 3.0]),
            (7, 0, 14, 28)
        );
    }

    #[test]
    fn views_depend_only_on_their_key() {
        let aug = GrayAugment::default();
        let img: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
        let draw = |k| {
            let mut out = vec![0.0; 784];
            aug.view(&img, (28, 28), k, &mut out);
            out
        };
        assert_eq!(draw(key(0)), draw(key(0)));
        assert_ne!(draw(key(0)), draw(key(1)));
        assert_ne!(draw(key(0)), draw(ViewKey { epoch: 1, ..key(0) }));
    }

    #[test]
    fn no_op_settings_only_normalise() {
        let aug = GrayAugment {
            crop_scale: [1.0, 1.0],
            crop_ratio: [1.0, 1.0],
            flip_p: 0.0,
            jitter_p: 0.0,
            mean: 0.5,
            std: 0.5,
            ..GrayAugment::default()
        };
        let img = [0u8, 255, 51, 204];
        let mut out = [0.0; 4];
        aug.view(&img, (2, 2), key(0), &mut out);
        // (p/255 − 0.5)/0.5 by hand: −1, 1, −0.6, 0.6.
        let expected = [-1.0, 1.0, -0.6, 0.6];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn contrast_blends_towards_the_rounded_mean() {
        // Mean of [10, 20, 30, 41] is 25.25 → PIL rounds to 25; factor 0.5 gives
        // 25 + 0.5·(x − 25): 17.5 → 18, 22.5 → 23 (half away from zero), 27.5 → 28, 33.
        let mut img = [10u8, 20, 30, 41];
        let mean = gray_mean(&img);
        blend(&mut img, mean, 0.5);
        assert_eq!(img, [18, 23, 28, 33]);
    }

    #[test]
    fn validate_names_the_field() {
        let bad = GrayAugment {
            flip_p: 1.5,
            ..GrayAugment::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("flip_p = 1.5"));
        let bad = GrayAugment {
            crop_scale: [0.5, 0.2],
            ..GrayAugment::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("crop_scale"));
        assert!(GrayAugment::default().validate().is_ok());
    }
}
