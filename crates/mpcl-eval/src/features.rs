//! Feature extraction from a frozen encoder, and raw pixels as features.

use mpcl_data::ImageSet;
use tch::{Device, Kind, Tensor};

/// A frozen encoder as evaluation sees it: a function from normalised image batches to
/// features, called only under `no_grad`, and the way images are prepared for it.
pub struct Encoder<'a> {
    /// Maps `[b, c, h, w]` normalised images on `device` to `[b, D]` features. The caller
    /// puts the model in eval mode (e.g. `forward_t(x, false)`).
    pub encode: &'a mut dyn FnMut(&Tensor) -> Tensor,
    /// The `(mean, std)` of `(x/255 − mean)/std`.
    pub norm: (f32, f32),
    /// Images per call of `encode`.
    pub batch_size: usize,
    /// Where `encode` runs.
    pub device: Device,
}

impl Encoder<'_> {
    /// Features of every image of `set`, unaugmented: [`extract`] with this encoder.
    ///
    /// # Shapes
    /// Returns `[n, D]` on the CPU.
    pub fn extract(&mut self, set: &ImageSet) -> Tensor {
        extract(set, self.norm, self.batch_size, self.device, self.encode)
    }

    /// Encodes images that are already normalised (such as augmented views from the
    /// training pipeline) under `no_grad`, `batch_size` at a time.
    ///
    /// # Shapes
    /// `x`: `[n, c, h, w]`; returns `[n, D]` float on the CPU.
    pub fn encode_normalised(&mut self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let chunks: Vec<Tensor> = x
                .split(self.batch_size.max(1) as i64, 0)
                .iter()
                .map(|c| {
                    let z = (self.encode)(&c.to_device(self.device));
                    z.to_kind(Kind::Float).to_device(Device::Cpu)
                })
                .collect();
            Tensor::cat(&chunks, 0)
        })
    }

    /// Encodes one batch of images in `[0, 255]` under `no_grad`, after normalisation.
    ///
    /// # Shapes
    /// `images`: `[b, c, h, w]` (any device, `u8` or float); returns `[b, D]` float on
    /// `self.device`.
    pub fn encode_pixels(&mut self, images: &Tensor) -> Tensor {
        let (mean, std) = (f64::from(self.norm.0), f64::from(self.norm.1));
        tch::no_grad(|| {
            let x = (images.to_kind(Kind::Float) / 255.0 - mean) / std;
            (self.encode)(&x.to_device(self.device)).to_kind(Kind::Float)
        })
    }
}

/// Runs `encode` over every image of `set`, `batch` at a time, under `no_grad`, and stacks
/// the outputs. Images are normalised with `(x/255 − mean)/std` and never augmented.
///
/// # Shapes
/// `encode` maps `[b, c, h, w]` to `[b, D]`; returns `[n, D]` on the CPU.
pub fn extract(
    set: &ImageSet,
    (mean, std): (f32, f32),
    batch: usize,
    device: Device,
    encode: &mut dyn FnMut(&Tensor) -> Tensor,
) -> Tensor {
    let mut encoder = Encoder {
        encode,
        norm: (mean, std),
        batch_size: batch,
        device,
    };
    let chunks: Vec<Tensor> = set
        .pixels
        .chunks(batch.max(1) * set.image_len())
        .map(|chunk| {
            let x = Tensor::from_slice(chunk).view(image_dims(set, chunk.len()));
            encoder.encode_pixels(&x).to_device(Device::Cpu)
        })
        .collect();
    Tensor::cat(&chunks, 0)
}

/// The `[b, c, h, w]` shape of `len` pixels of `set`.
pub(crate) fn image_dims(set: &ImageSet, len: usize) -> [i64; 4] {
    let b = (len / set.image_len().max(1)) as i64;
    [b, set.channels as i64, set.height as i64, set.width as i64]
}

/// The raw pixels in [0, 1], one row per image: the baseline representation.
///
/// # Shapes
/// Returns `[n, c·h·w]`.
pub fn pixel_features(set: &ImageSet) -> Tensor {
    Tensor::from_slice(&set.to_unit_f32()).view([set.len() as i64, set.image_len() as i64])
}
