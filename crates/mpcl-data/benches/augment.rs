//! Views per second of the gray SimCLR pipeline on 28×28 images: one view at a time on one
//! thread, and a whole 256-image, 2-view batch on the rayon pool.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mpcl_data::ImageSet;
use mpcl_data::augment::{GrayAugment, ViewKey};
use mpcl_data::loader::make_batch;

fn images(n: usize) -> ImageSet {
    ImageSet {
        pixels: (0..n * 784).map(|i| (i * 37 % 256) as u8).collect(),
        labels: vec![0; n],
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    }
}

fn bench(c: &mut Criterion) {
    let set = images(256);
    let aug = GrayAugment {
        crop_scale: [0.2, 1.0],
        ..GrayAugment::default()
    };
    let mut group = c.benchmark_group("gray_augment");
    group.throughput(Throughput::Elements(1));
    let mut out = vec![0.0f32; 784];
    let mut index = 0u64;
    group.bench_function("one_view", |b| {
        b.iter(|| {
            index = (index + 1) % 256;
            let key = ViewKey {
                seed: 0,
                epoch: 0,
                index,
                view: 0,
            };
            aug.view(set.image(index as usize), (28, 28), key, &mut out);
        })
    });
    group.throughput(Throughput::Elements(512));
    let indices: Vec<usize> = (0..256).collect();
    group.bench_function("batch_256x2", |b| {
        b.iter(|| make_batch(&set, &aug, &indices, 2, 0, 0))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
