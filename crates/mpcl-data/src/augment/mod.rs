//! SimCLR and BYOL augmentations on `u8` images with the semantics of torchvision 0.28's PIL
//! path, then normalisation into `f32`.
//!
//! A [`Pipeline`] is the fixed sequence of torchvision's SimCLR and BYOL recipes, each step
//! switched off by its probability or strength:
//!
//! ```text
//! RandomResizedCrop(size, scale, ratio, interpolation)
//! RandomHorizontalFlip(flip_p)
//! RandomApply([ColorJitter(brightness, contrast, saturation, hue)], jitter_p)
//! RandomGrayscale(grayscale_p)
//! RandomApply([GaussianBlur(blur_kernel, blur_sigma)], blur_p)
//! RandomSolarize(solarize_threshold, solarize_p)
//! ToTensor, Normalize(mean, std)
//! ```
//!
//! [`Pipeline::draw`] samples every random choice of a view ([`ViewParams`]) from the view's
//! own generator, seeded by `(seed, epoch, index, view)` alone ([`ViewKey`]), so a view does
//! not depend on the thread that made it; [`Pipeline::apply`] carries the choices out. Views
//! of different pipelines (per-view recipes, multi-crop) are described by [`AugmentConfig`].
//!
//! Images are planar `[c, h, w]` bytes with c = 1 or 3; saturation, hue and grayscale are
//! no-ops on one channel, as torchvision's are on mode `L` images. The random draws follow
//! torchvision's laws, not its generator: the same key does not give torchvision's view.

pub mod blur;
pub mod color;
mod config;
pub mod resample;

pub use config::AugmentConfig;
pub use resample::Interpolation;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The settings of one view's pipeline (`[augment]` in a config; defaults are torchvision's
/// where it has one, and keep the gray Fashion-MNIST recipe otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct Pipeline {
    /// Side of the square output in pixels; 0 (default) keeps the input's height and width.
    pub size: usize,
    /// Range of the crop's area as a fraction of the image (torchvision's `scale`).
    /// Default `[0.08, 1.0]`.
    #[serde(deserialize_with = "range")]
    pub crop_scale: [f64; 2],
    /// Range of the crop's aspect ratio w/h (torchvision's `ratio`), sampled log-uniformly.
    /// Default `[3/4, 4/3]`.
    #[serde(deserialize_with = "range")]
    pub crop_ratio: [f64; 2],
    /// The resize filter: `"bilinear"` (default, torchvision's) or `"bicubic"`.
    pub interpolation: Interpolation,
    /// Probability of a horizontal flip. Default 0.5.
    pub flip_p: f64,
    /// Probability that the colour jitter is applied at all (`RandomApply`). Default 0.8.
    pub jitter_p: f64,
    /// Brightness strength b: the factor is drawn from [max(0, 1 − b), 1 + b]. Default 0.4.
    pub brightness: f64,
    /// Contrast strength c: the factor is drawn from [max(0, 1 − c), 1 + c]. Default 0.4.
    pub contrast: f64,
    /// Saturation strength s: the factor is drawn from [max(0, 1 − s), 1 + s]; no effect on
    /// one channel. Default 0.
    pub saturation: f64,
    /// Hue strength h ∈ [0, ½]: the shift is drawn from [−h, h] turns; no effect on one
    /// channel. Default 0.
    pub hue: f64,
    /// Probability of converting to ITU-R 601-2 luma, kept at the input's channel count.
    /// Default 0.
    pub grayscale_p: f64,
    /// Probability of a Gaussian blur. Default 0.
    pub blur_p: f64,
    /// Taps of the blur kernel, odd. Default 3.
    pub blur_kernel: usize,
    /// Range of the blur's σ in pixels, drawn uniformly. Default `[0.1, 2.0]`, torchvision's.
    #[serde(deserialize_with = "range")]
    pub blur_sigma: [f64; 2],
    /// Probability of solarising. Default 0.
    pub solarize_p: f64,
    /// Values at or above this are inverted when solarising. Default 128.
    pub solarize_threshold: u8,
    /// Per-channel mean subtracted after scaling to [0, 1]; one value serves every channel.
    /// Default `[0.2860]` (Fashion-MNIST's).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by; one value serves every channel.
    /// Default `[0.3530]` (Fashion-MNIST's).
    pub std: Vec<f32>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            size: 0,
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            interpolation: Interpolation::Bilinear,
            flip_p: 0.5,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.0,
            hue: 0.0,
            grayscale_p: 0.0,
            blur_p: 0.0,
            blur_kernel: 3,
            blur_sigma: [0.1, 2.0],
            solarize_p: 0.0,
            solarize_threshold: 128,
            // Fashion-MNIST's training-set pixel mean and standard deviation.
            mean: vec![0.2860],
            std: vec![0.3530],
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
    /// The view's generator: ChaCha8 keyed by the four numbers, so distinct keys give
    /// unrelated streams.
    pub fn rng(self) -> ChaCha8Rng {
        let mut seed = [0u8; 32];
        for (dst, v) in seed
            .chunks_exact_mut(8)
            .zip([self.seed, self.epoch, self.index, self.view])
        {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        ChaCha8Rng::from_seed(seed)
    }
}

/// A crop box: top, left, height, width.
pub type CropBox = (usize, usize, usize, usize);

/// torchvision's `RandomResizedCrop.get_params`: ten attempts at a box whose area is a
/// uniform fraction of the image in `scale` and whose aspect ratio is log-uniform in `ratio`,
/// sides rounded half to even as Python's `round`; a box that fits gets a uniform position.
/// When none fits, the centre crop of the whole image clamped to the ratio range.
pub fn crop_box(
    rng: &mut impl rand::Rng,
    (height, width): (usize, usize),
    scale: [f64; 2],
    ratio: [f64; 2],
) -> CropBox {
    let area = (height * width) as f64;
    let (log_r0, log_r1) = (ratio[0].ln(), ratio[1].ln());
    let uniform = |rng: &mut dyn rand::Rng, lo: f64, hi: f64| {
        if lo < hi {
            rng.random_range(lo..hi)
        } else {
            lo
        }
    };
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, log_r0, log_r1).exp();
        let w = (target * aspect).sqrt().round_ties_even() as usize;
        let h = (target / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        ((width as f64 / ratio[0]).round_ties_even() as usize, width)
    } else if in_ratio > ratio[1] {
        (
            height,
            (height as f64 * ratio[1]).round_ties_even() as usize,
        )
    } else {
        (height, width)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// ColorJitter's random choices: the order of the four adjustments (a uniform permutation, as
/// `torch.randperm(4)`) and each factor, `None` where the strength is 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    /// The adjustments in the order applied: 0 brightness, 1 contrast, 2 saturation, 3 hue.
    pub order: [u8; 4],
    /// Brightness factor.
    pub brightness: Option<f32>,
    /// Contrast factor.
    pub contrast: Option<f32>,
    /// Saturation factor.
    pub saturation: Option<f32>,
    /// Hue shift in turns, in [−½, ½].
    pub hue: Option<f64>,
}

impl Jitter {
    /// Applies the adjustments in order, rounding to `u8` after each.
    ///
    /// # Shapes
    /// `img`: `[c, len]`, c = 1 or 3.
    pub fn apply(&self, img: &mut [u8], len: usize) {
        for step in self.order {
            match step {
                0 => self.brightness.map(|f| color::brightness(img, f)),
                1 => self.contrast.map(|f| color::contrast(img, len, f)),
                2 => self.saturation.map(|f| color::saturation(img, len, f)),
                _ => self.hue.map(|f| color::hue(img, len, color::hue_offset(f))),
            };
        }
    }
}

/// Every random choice of one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewParams {
    /// The crop box in the input image.
    pub crop: CropBox,
    /// Whether the view is flipped horizontally.
    pub flip: bool,
    /// The colour jitter, when applied.
    pub jitter: Option<Jitter>,
    /// Whether the view is converted to luma.
    pub grayscale: bool,
    /// The blur's σ, when blurred.
    pub blur_sigma: Option<f32>,
    /// Whether the view is solarised.
    pub solarize: bool,
}

impl Pipeline {
    /// Checks every setting on its own; the error names the field and the value.
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
        for (name, p) in [
            ("flip_p", self.flip_p),
            ("jitter_p", self.jitter_p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("solarize_p", self.solarize_p),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} = {p}: a probability must lie in [0, 1]"));
            }
        }
        for (name, s) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(s >= 0.0 && s.is_finite()) {
                return Err(format!("{name} = {s}: a jitter strength must be ≥ 0"));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(format!("hue = {}: must lie in [0, 0.5]", self.hue));
        }
        if self.blur_kernel.is_multiple_of(2) {
            return Err(format!(
                "blur_kernel = {}: must be odd and positive",
                self.blur_kernel
            ));
        }
        let [b0, b1] = self.blur_sigma;
        if !(0.0 < b0 && b0 <= b1 && b1.is_finite()) {
            return Err(format!(
                "blur_sigma = {:?}: need 0 < min ≤ max",
                self.blur_sigma
            ));
        }
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
                return Err(format!("{name} = {v:?}: need one or more finite values"));
            }
        }
        if self.std.iter().any(|&s| s <= 0.0) {
            return Err(format!("std = {:?}: every value must be > 0", self.std));
        }
        Ok(())
    }

    /// The output size for a `(h, w)` input.
    pub fn out_size(&self, (h, w): (usize, usize)) -> (usize, usize) {
        if self.size == 0 {
            (h, w)
        } else {
            (self.size, self.size)
        }
    }

    /// Checks that the pipeline can take `[c, h, w]` images.
    ///
    /// # Errors
    /// A message naming the field that does not fit the images.
    pub fn check_images(&self, (c, h, w): (usize, usize, usize)) -> Result<(), String> {
        if !(c == 1 || c == 3) {
            return Err(format!("{c}-channel images: need 1 or 3 channels"));
        }
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if !(v.len() == 1 || v.len() == c) {
                let need = if c == 1 { "1 value" } else { "1 or 3 values" };
                return Err(format!(
                    "{name} = {v:?}: need {need} for {c}-channel images"
                ));
            }
        }
        let (oh, ow) = self.out_size((h, w));
        if self.blur_p > 0.0 && self.blur_kernel / 2 >= oh.min(ow) {
            return Err(format!(
                "blur_kernel = {}: too large for {oh}×{ow} views (reflect padding needs \
                 kernel/2 < side)",
                self.blur_kernel
            ));
        }
        Ok(())
    }

    /// Draws every random choice of a view of an `(h, w)` image, in torchvision's order.
    pub fn draw(&self, rng: &mut impl rand::Rng, (h, w): (usize, usize)) -> ViewParams {
        let crop = crop_box(rng, (h, w), self.crop_scale, self.crop_ratio);
        let flip = rng.random_bool(self.flip_p);
        let jitter = rng
            .random_bool(self.jitter_p)
            .then(|| self.draw_jitter(rng));
        let grayscale = rng.random_bool(self.grayscale_p);
        let blur_sigma = rng.random_bool(self.blur_p).then(|| {
            let [lo, hi] = self.blur_sigma;
            (if lo < hi {
                rng.random_range(lo..hi)
            } else {
                lo
            }) as f32
        });
        let solarize = rng.random_bool(self.solarize_p);
        ViewParams {
            crop,
            flip,
            jitter,
            grayscale,
            blur_sigma,
            solarize,
        }
    }

    /// ColorJitter's `get_params`: the permutation first, then the factors in the fixed order
    /// brightness, contrast, saturation, hue, each uniform on its range.
    fn draw_jitter(&self, rng: &mut impl rand::Rng) -> Jitter {
        let mut order = [0u8, 1, 2, 3];
        // Fisher–Yates: a uniform permutation.
        for i in (1..4).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let factor = |rng: &mut dyn rand::Rng, s: f64| {
            (s > 0.0).then(|| rng.random_range((1.0 - s).max(0.0)..1.0 + s) as f32)
        };
        let brightness = factor(rng, self.brightness);
        let contrast = factor(rng, self.contrast);
        let saturation = factor(rng, self.saturation);
        let hue = (self.hue > 0.0).then(|| rng.random_range(-self.hue..self.hue));
        Jitter {
            order,
            brightness,
            contrast,
            saturation,
            hue,
        }
    }

    /// Carries out `params` on `image` and writes the normalised view into `out`.
    ///
    /// # Shapes
    /// `image`: `[c, h, w]` bytes; `out`: `[c, oh, ow]` floats, `(oh, ow)` from
    /// [`out_size`](Self::out_size).
    ///
    /// # Panics
    /// If the buffers do not have these lengths or the crop leaves the image.
    pub fn apply(
        &self,
        params: &ViewParams,
        image: &[u8],
        (c, h, w): (usize, usize, usize),
        out: &mut [f32],
    ) {
        let (oh, ow) = self.out_size((h, w));
        let len = oh * ow;
        let mut img = vec![0u8; c * len];
        resample::resize_crop(
            image,
            (c, h, w),
            params.crop,
            (oh, ow),
            self.interpolation,
            &mut img,
        );
        if params.flip {
            img.chunks_exact_mut(ow).for_each(<[u8]>::reverse);
        }
        if let Some(jitter) = &params.jitter {
            jitter.apply(&mut img, len);
        }
        if params.grayscale {
            color::grayscale(&mut img, len);
        }
        if let Some(sigma) = params.blur_sigma {
            blur::gaussian_blur(&mut img, (oh, ow), self.blur_kernel, sigma);
        }
        if params.solarize {
            color::solarize(&mut img, self.solarize_threshold);
        }
        self.normalize(&img, len, out);
    }

    /// `(x/255 − mean)/std` per channel; a single mean or std serves every channel.
    ///
    /// # Shapes
    /// `img` and `out`: `[c, len]`.
    pub fn normalize(&self, img: &[u8], len: usize, out: &mut [f32]) {
        assert_eq!(
            img.len(),
            out.len(),
            "output length differs from the image's"
        );
        let pick = |v: &[f32], ch: usize| v[ch.min(v.len() - 1)];
        for (ch, (dst, src)) in out.chunks_mut(len).zip(img.chunks(len)).enumerate() {
            let (mean, std) = (pick(&self.mean, ch), pick(&self.std, ch));
            let (scale, shift) = (1.0 / (255.0 * std), mean / std);
            for (o, &p) in dst.iter_mut().zip(src) {
                *o = f32::from(p) * scale - shift;
            }
        }
    }

    /// Draws view `key` of `image` and writes it, normalised, into `out`.
    ///
    /// # Shapes
    /// As [`apply`](Self::apply).
    pub fn view(&self, image: &[u8], dims: (usize, usize, usize), key: ViewKey, out: &mut [f32]) {
        let params = self.draw(&mut key.rng(), (dims.1, dims.2));
        self.apply(&params, image, dims, out);
    }
}

#[cfg(test)]
mod tests;
