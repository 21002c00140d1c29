//! Feature extraction from a frozen encoder, and raw pixels as features.

use mpcl_data::ImageSet;
use tch::{Kind, Tensor};

/// Runs `encode` over every image of `set`, `batch` at a time, under `no_grad`, and stacks
/// the outputs. Images are normalised with `(x/255 − mean)/std` and never augmented.
///
/// # Shapes
/// `encode` maps `[b, c, h, w]` to `[b, D]`; returns `[n, D]` on the CPU.
pub fn extract(
    set: &ImageSet,
    (mean, std): (f32, f32),
    batch: usize,
    device: tch::Device,
    encode: &mut dyn FnMut(&Tensor) -> Tensor,
) -> Tensor {
    let dims = [set.channels as i64, set.height as i64, set.width as i64];
    tch::no_grad(|| {
        let chunks: Vec<Tensor> = set
            .pixels
            .chunks(batch.max(1) * set.image_len())
            .map(|chunk| {
                let b = (chunk.len() / set.image_len()) as i64;
                let x = Tensor::from_slice(chunk).view([b, dims[0], dims[1], dims[2]]);
                let x = ((x.to_kind(Kind::Float) / 255.0 - f64::from(mean)) / f64::from(std))
                    .to_device(device);
                encode(&x).to_kind(Kind::Float).to_device(tch::Device::Cpu)
            })
            .collect();
        Tensor::cat(&chunks, 0)
    })
}

/// The raw pixels in [0, 1], one row per image: the baseline representation.
///
/// # Shapes
/// Returns `[n, c·h·w]`.
pub fn pixel_features(set: &ImageSet) -> Tensor {
    Tensor::from_slice(&set.to_unit_f32()).view([set.len() as i64, set.image_len() as i64])
}
