//! kNN classification (k = 200, T = 0.1, blocks of 512) of 10 000 test against 60 000 training
//! features, unit-norm Gaussian rows of dimension 128 and 512, 10 classes.
//!
//! The features come from libtorch's generator seeded with 0 in the order train, test,
//! labels, as python/bench_knn.py draws them, so `cargo xtask bench knn` times both on the
//! same numbers. `MPCL_BENCH_THREADS` sets the thread count (default: all cores);
//! `MPCL_BENCH_KNN_CASES` replaces the cases, e.g. `6000x1000x128,6000x1000x512`.

use criterion::{Criterion, criterion_group, criterion_main};
use mpcl_eval::{KnnConfig, knn};
use mpcl_losses::normalize_rows;
use tch::{Kind, Tensor};

const CASES: &str = "60000x10000x128,60000x10000x512";

/// The `(n, m, D)` cases of `MPCL_BENCH_KNN_CASES`, or [`CASES`].
fn cases() -> Vec<(i64, i64, i64)> {
    let text = std::env::var("MPCL_BENCH_KNN_CASES").unwrap_or_else(|_| CASES.into());
    text.split(',')
        .map(|case| {
            let dims: Vec<i64> = case
                .split('x')
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            match dims[..] {
                [n, m, d] if n > 0 && m > 0 && d > 0 => (n, m, d),
                _ => panic!("MPCL_BENCH_KNN_CASES: {case:?} is not NxMxD"),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let threads = std::env::var("MPCL_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tch::set_num_threads(threads as i32);
    let mut group = c.benchmark_group("knn");
    group.sample_size(10);
    for (n, m, d) in cases() {
        tch::manual_seed(0);
        let train = normalize_rows(&Tensor::randn([n, d], tch::kind::FLOAT_CPU));
        let test = normalize_rows(&Tensor::randn([m, d], tch::kind::FLOAT_CPU));
        let train_y = Tensor::randint(10, [n], tch::kind::INT64_CPU);
        let test_y = Tensor::randint(10, [m], tch::kind::INT64_CPU);
        eprintln!(
            "knn {n}x{m}x{d}, {threads} threads: train[0, 0] = {:.6}, Σ labels = {}",
            train.double_value(&[0, 0]),
            train_y.sum(Kind::Int64).int64_value(&[])
        );
        let cfg = KnnConfig::default();
        group.bench_function(format!("{n}x{m}x{d}"), |b| {
            b.iter(|| knn(&train, &train_y, &test, &test_y, 10, &cfg))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
