//! Feature extraction from a frozen encoder, and raw pixels as features.

use mpcl_data::ImageSet;
use tch::{Device, Kind, Tensor};

/// `(x/255 − mean_c)/std_c` per channel c; a single value serves every channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// One mean, or one per channel.
    pub mean: Vec<f32>,
    /// One standard deviation, or one per channel.
    pub std: Vec<f32>,
}

impl Normalize {
    /// Pixels scaled to [0, 1] and nothing else.
    pub fn unit() -> Self {
        Self {
            mean: vec![0.0],
            std: vec![1.0],
        }
    }

    /// Normalises `images` in `[0, 255]`.
    ///
    /// # Shapes
    /// `images`: `[b, c, h, w]`, with `c` equal to the number of means and stds unless there
    /// is one of each; returns float `[b, c, h, w]`.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        let stat = |v: &[f32]| {
            Tensor::from_slice(v)
                .view([1, -1, 1, 1])
                .to_device(images.device())
        };
        (images.to_kind(Kind::Float) / 255.0 - stat(&self.mean)) / stat(&self.std)
    }
}

/// A frozen encoder as evaluation sees it: a function from normalised image batches to
/// features, called only under `no_grad`, and the way images are prepared for it.
pub struct Encoder<'a> {
    /// Maps `[b, c, h, w]` normalised images on `device` to `[b, D]` features. The caller
    /// puts the model in eval mode (e.g. `forward_t(x, false)`).
    pub encode: &'a mut dyn FnMut(&Tensor) -> Tensor,
    /// How images in `[0, 255]` become its input.
    pub norm: Normalize,
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
        extract(set, &self.norm, self.batch_size, self.device, self.encode)
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
        tch::no_grad(|| {
            let x = self.norm.apply(&images.to_device(self.device));
            (self.encode)(&x).to_kind(Kind::Float)
        })
    }
}

/// Runs `encode` over every image of `set`, `batch` at a time, under `no_grad`, and stacks
/// the outputs. Images are normalised with `norm` and never augmented.
///
/// # Shapes
/// `encode` maps `[b, c, h, w]` to `[b, D]`; returns `[n, D]` on the CPU.
pub fn extract(
    set: &ImageSet,
    norm: &Normalize,
    batch: usize,
    device: Device,
    encode: &mut dyn FnMut(&Tensor) -> Tensor,
) -> Tensor {
    let mut encoder = Encoder {
        encode,
        norm: norm.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_per_channel() {
        // One pixel per channel, values 51, 102, 255 (0.2, 0.4, 1.0 after /255); means
        // (0.1, 0.2, 0.5), stds (0.5, 0.25, 0.5): by hand (0.2, 0.8, 1.0).
        let x = Tensor::from_slice(&[51u8, 102, 255]).view([1, 3, 1, 1]);
        let norm = Normalize {
            mean: vec![0.1, 0.2, 0.5],
            std: vec![0.5, 0.25, 0.5],
        };
        let y = Vec::<f32>::try_from(norm.apply(&x).flatten(0, -1)).unwrap();
        for (got, want) in y.iter().zip([0.2, 0.8, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{y:?}");
        }
        // One value serves every channel.
        let one = Normalize {
            mean: vec![0.2],
            std: vec![0.5],
        };
        let y = Vec::<f32>::try_from(one.apply(&x).flatten(0, -1)).unwrap();
        for (got, want) in y.iter().zip([0.0, 0.4, 1.6]) {
            assert!((got - want).abs() < 1e-6, "{y:?}");
        }
    }
}
