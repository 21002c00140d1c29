//! One SimCLR training step (forward, InfoNCE at τ = 0.2, backward, AdamW at 3e-3) on 2×256
//! views of 32×32 RGB, for the small CNN of the default experiment (its code defaults: global
//! pooling, where the default experiment pools to a 2 × 2 grid) and the CIFAR ResNet-18
//! with SimCLR's 512→512→128 projector: the workload of python/bench_step.py, which
//! `cargo xtask bench step` runs in the same invocation.
//!
//! `<model>_step` is the bare step with the convolution weights in channels-last order (the
//! trainer's default, `model.channels_last`), `<model>-nchw_step` the same in the default
//! NCHW order; python/bench_step.py times both layouts too. `small-cnn_step_split` adds the
//! closed-form
//! alignment/uniformity split the trainer computes every `train.split_every` steps for
//! `metrics.csv`, to show what that costs. Inputs are standard normal (the step's cost does
//! not depend on the values). `MPCL_BENCH_THREADS` sets the thread count;
//! `MPCL_BENCH_STEP_MODELS` picks models (`small-cnn,resnet18`).
//!
//! The bench keeps freed memory with malloc as the `mpcl` binary does
//! (`mpcl_trainer::allocator`); `MPCL_BENCH_MALLOC=glibc` leaves glibc's defaults, under
//! which every step maps its activations anew.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use mpcl_losses::InfoNce;
use mpcl_trainer::config::{EncoderKind, ModelConfig, TrainConfig};
use mpcl_trainer::model::Model;
use tch::Tensor;

/// Views per step (2 views of 256 images).
const ROWS: i64 = 512;

fn model_config(name: &str, channels_last: bool) -> ModelConfig {
    let model = match name {
        "small-cnn" => ModelConfig::default(),
        "resnet18" => ModelConfig {
            encoder: EncoderKind::Resnet18,
            projector_hidden: 512,
            projector_dim: 128,
            ..ModelConfig::default()
        },
        other => panic!("MPCL_BENCH_STEP_MODELS: unknown model {other:?}"),
    };
    ModelConfig {
        channels_last,
        ..model
    }
}

fn bench(c: &mut Criterion) {
    let malloc = std::env::var("MPCL_BENCH_MALLOC").unwrap_or_default();
    let retained = match malloc.as_str() {
        "" | "retain" => mpcl_trainer::allocator::retain_freed_memory(),
        "glibc" => false,
        other => panic!("MPCL_BENCH_MALLOC: {other:?} is neither retain nor glibc"),
    };
    let malloc = if retained {
        "freed memory retained"
    } else {
        "malloc's defaults"
    };
    let threads = std::env::var("MPCL_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tch::set_num_threads(threads as i32);
    let models =
        std::env::var("MPCL_BENCH_STEP_MODELS").unwrap_or_else(|_| "small-cnn,resnet18".into());
    let mut group = c.benchmark_group("step");
    group.sample_size(10);
    // Ten samples of equal length: one step each for a ResNet-18, whose step takes seconds
    // on a CPU, where criterion's default linear sampling would time 1 + 2 + … + 10 = 55.
    group.sampling_mode(SamplingMode::Flat);
    let layouts = [(true, ""), (false, "-nchw")];
    for (name, (channels_last, suffix)) in models
        .split(',')
        .map(str::trim)
        .flat_map(|m| layouts.map(|l| (m, l)))
    {
        tch::manual_seed(0);
        let config = model_config(name, channels_last);
        let (vs, model) = Model::in_new_store(tch::Device::Cpu, 3, &config, false);
        let train = TrainConfig::default();
        let mut opt = mpcl_trainer::optim::from_config(&train, &vs, None).unwrap();
        let nce = InfoNce::new(0.2, 2).unwrap();
        let x = Tensor::randn([ROWS, 3, 32, 32], tch::kind::FLOAT_CPU);
        eprintln!("step {name}{suffix}, {threads} threads, {ROWS} views, {malloc}");
        group.bench_function(format!("{name}{suffix}_step"), |b| {
            b.iter(|| {
                let (_, z) = model.forward_t(&x, true);
                let loss = nce.loss(&z, None).unwrap();
                opt.backward_step(&loss, 3e-3);
            })
        });
        if name == "small-cnn" && channels_last {
            group.bench_function(format!("{name}_step_split"), |b| {
                b.iter(|| {
                    let (_, z) = model.forward_t(&x, true);
                    let loss = nce.loss(&z, None).unwrap();
                    let split = nce.gradient_split(&z, None).unwrap();
                    let split = split.through_normalization(&z);
                    let norms = (split.alignment.norm(), split.uniformity.norm());
                    opt.backward_step(&loss, 3e-3);
                    (norms.0.double_value(&[]), norms.1.double_value(&[]))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
