//! Views per second of the augmentation pipelines, one view at a time on one thread:
//!
//! - `cifar_simclr/one_view`: SimCLR's CIFAR recipe on 32×32 RGB images (crop 32 with scale
//!   0.08–1, bicubic; flip; jitter 0.4/0.4/0.4/0.1 with p 0.8; grayscale p 0.2; normalise),
//!   the workload `python/bench_augment.py` runs through torchvision's PIL path;
//! - `gray_simclr/one_view`: the default Fashion-MNIST recipe on 28×28 gray images;
//! - `cifar_simclr/batch_256x2`: a whole 2-view batch of 256 images on the rayon pool.
//!
//! `cargo xtask bench augment` runs these and the Python script and prints the ratio.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mpcl_data::ImageSet;
use mpcl_data::augment::{Interpolation, Pipeline, ViewKey};
use mpcl_data::loader::make_batch;

/// `n` synthetic `[c, side, side]` images; byte i of image k is
/// `(37·i + 101·k + i² mod 251) mod 256`, the formula `python/bench_augment.py` uses too.
fn images(n: usize, c: usize, side: usize) -> ImageSet {
    let len = c * side * side;
    let pixels = (0..n)
        .flat_map(|k| (0..len).map(move |i| ((37 * i + 101 * k + i * i % 251) % 256) as u8))
        .collect();
    ImageSet {
        pixels,
        labels: vec![0; n],
        channels: c,
        height: side,
        width: side,
        classes: 10,
    }
}

/// SimCLR's CIFAR-10 pipeline (Chen et al. 2020, appendix B.9) with CIFAR-10's statistics.
fn cifar_simclr() -> Pipeline {
    Pipeline {
        size: 32,
        crop_scale: [0.08, 1.0],
        interpolation: Interpolation::Bicubic,
        jitter_p: 0.8,
        brightness: 0.4,
        contrast: 0.4,
        saturation: 0.4,
        hue: 0.1,
        grayscale_p: 0.2,
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.2470, 0.2435, 0.2616],
        ..Pipeline::default()
    }
}

fn one_view(c: &mut Criterion, group: &str, pipeline: &Pipeline, set: &ImageSet) {
    let dims = (set.channels, set.height, set.width);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    let mut out = vec![0.0f32; set.image_len()];
    let mut index = 0u64;
    g.bench_function("one_view", |b| {
        b.iter(|| {
            index += 1;
            let key = ViewKey {
                seed: 0,
                epoch: 0,
                index,
                view: 0,
            };
            let image = set.image(index as usize % set.len());
            pipeline.view(image, dims, key, &mut out);
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let cifar = images(256, 3, 32);
    let pipeline = cifar_simclr();
    one_view(c, "cifar_simclr", &pipeline, &cifar);
    let gray = Pipeline {
        crop_scale: [0.2, 1.0],
        ..Pipeline::default()
    };
    one_view(c, "gray_simclr", &gray, &images(256, 1, 28));

    let mut g = c.benchmark_group("cifar_simclr");
    g.throughput(Throughput::Elements(512));
    let indices: Vec<usize> = (0..256).collect();
    let two = [pipeline.clone(), pipeline];
    g.bench_function("batch_256x2", |b| {
        b.iter(|| make_batch(&cifar, &two, &indices, 0, 0))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
