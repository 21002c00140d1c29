//! The graph layer at scale, on the workload of `python/bench_graph.py` (SciPy 1.17):
//! each of N nodes draws 10 neighbours uniformly, `A + Aᵀ`, `Ā = D^-1/2 A D^-1/2`.
//!
//! - `spmm_N_tT`: `Ā·F` for F `[N, 32]` in f32 ([`CsrGraph::matmul_into`]);
//! - `step_N_tT`: one fused step `F ← F + η(ĀF − F(FᵀF))` in f32 ([`SpectralFlow::step`]);
//! - `eigen_N_tT`: the 16 largest eigenpairs of Ā in f64 to `‖Av − λv‖ ≤ 1e-6`
//!   ([`top_eigenpairs`], thick-restart Lanczos); the residuals are checked, not assumed.
//!
//! N = 1e4 and 1e5 run under criterion (group `graph`). N = 1e6 is timed outside
//! criterion's sampling: the median of 5 runs after one warm-up, written in criterion's
//! `new/estimates.json` layout under `target/criterion/graph_once/` so that `cargo xtask
//! bench graph` reads both the same way. Every case runs on one thread and on
//! `MPCL_BENCH_THREADS` (default: all cores), each on its own rayon pool; `T` names it.
//!
//! The k-NN builders are timed once each on the widest pool, under `graph_build/` with no
//! SciPy counterpart (`knn_N_dD_METHOD_tT`): the exact k-d tree and NN-descent with its
//! recall (see [`builders`]).

mod workload;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mpcl_graph::CsrGraph;
use mpcl_graph::build::{nearest_lists, recall};
use mpcl_graph::descent::{DescentConfig, nn_descent};
use mpcl_graph::dynamics::{Renorm, Terms};
use mpcl_graph::eigen::{EigenConfig, random_block, top_eigenpairs};
use mpcl_graph::flow::SpectralFlow;
use ndarray::Array2;
use rayon::ThreadPool;
use rayon::prelude::*;
use workload::{ETA, abar, features, label, record, seconds};

/// Eigenpairs wanted.
const PAIRS: usize = 16;
/// The eigensolver's tolerance.
const TOL: f64 = 1e-6;

/// The thread counts to run: 1 and `MPCL_BENCH_THREADS`, each with its pool.
fn pools() -> Vec<(usize, ThreadPool)> {
    let threads = std::env::var("MPCL_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut counts = vec![1, threads];
    counts.dedup();
    counts
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build();
            (t, pool.expect("a rayon pool"))
        })
        .collect()
}

/// Runs the eigensolver and returns its report.
///
/// # Panics
/// If a residual exceeds the tolerance: a fast wrong answer is no result.
fn eigen(g: &CsrGraph<f64>) -> String {
    let cfg = EigenConfig {
        k: PAIRS,
        tol: TOL,
        ..EigenConfig::default()
    };
    let eig = top_eigenpairs(g, &cfg).expect("a symmetric graph");
    let worst = eig.residuals.iter().copied().fold(0.0, f64::max);
    assert!(eig.converged, "not converged: largest residual {worst:.2e}");
    format!(
        "eigen n = {}: λ = {:.6} … {:.6}, {} cycles, {} products, largest residual {worst:.1e}",
        g.nodes(),
        eig.values[0],
        eig.values[PAIRS - 1],
        eig.iterations,
        eig.matvecs
    )
}

fn bench(c: &mut Criterion) {
    let pools = pools();
    let mut group = c.benchmark_group("graph");
    // Ten samples of at least one run each: the eigensolver at 1e5 takes seconds a run.
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for n in [10_000, 100_000] {
        let g64 = abar(n);
        let g = g64.cast::<f32>();
        let f = features(n);
        eprintln!("graph n = {n}: {} stored entries", g.entries());
        for (t, pool) in &pools {
            let case = |what: &str| format!("{what}_{}_t{t}", label(n));
            let mut out = Array2::zeros(f.dim());
            group.bench_function(case("spmm"), |b| {
                b.iter(|| pool.install(|| g.matmul_into(f.view(), out.view_mut())))
            });
            let mut flow = SpectralFlow::new(&g, f.clone()).expect("matching shapes");
            group.bench_function(case("step"), |b| {
                b.iter(|| pool.install(|| flow.step(ETA, Terms::Both, Renorm::None)))
            });
            eprintln!("{}", pool.install(|| eigen(&g64)));
            group.bench_function(case("eigen"), |b| b.iter(|| pool.install(|| eigen(&g64))));
        }
    }
    group.finish();
    once(&pools);
    builders(&pools[pools.len() - 1]);
}

/// k-NN graph builders on 1e5 uniform points, timed once on the widest pool: the exact
/// k-d tree in 2 dimensions, and in 32 dimensions on 1e4 and 2e4 points to show its
/// quadratic growth there; NN-descent in 2 and 32 dimensions with its recall on 1000
/// points against exact lists by brute force.
fn builders((t, pool): &(usize, ThreadPool)) {
    let k = 10;
    for (n, d) in [(10_000, 32), (20_000, 32), (100_000, 2)] {
        let points = random_block(n, d, d as u64);
        let start = Instant::now();
        pool.install(|| nearest_lists(points.view(), k).expect("valid points"));
        let name = format!("knn_{n}_d{d}_kdtree_t{t}");
        record("graph_build", &name, start.elapsed().as_secs_f64(), 1);
    }
    for d in [2, 32] {
        let n = 100_000;
        let points = random_block(n, d, d as u64);
        let start = Instant::now();
        let found = pool.install(|| nn_descent(points.view(), k, &DescentConfig::default()));
        let found = found.expect("valid points");
        let name = format!("knn_{n}_d{d}_descent_t{t}");
        record("graph_build", &name, start.elapsed().as_secs_f64(), 1);
        let sample: Vec<usize> = (0..1000).map(|i| i * (n / 1000)).collect();
        let exact: Vec<Vec<usize>> = pool.install(|| {
            sample
                .par_iter()
                .map(|&i| {
                    let mut by: Vec<(f64, usize)> = (0..n)
                        .filter(|&j| j != i)
                        .map(|j| {
                            let diff = &points.row(i) - &points.row(j);
                            (diff.dot(&diff), j)
                        })
                        .collect();
                    by.select_nth_unstable_by(k, |a, b| a.0.total_cmp(&b.0));
                    by[..k].iter().map(|p| p.1).collect()
                })
                .collect()
        });
        let approx: Vec<Vec<usize>> = sample.iter().map(|&i| found.lists[i].clone()).collect();
        eprintln!(
            "NN-descent n = {n}, d = {d}: recall {:.4} on 1000 points, {} rounds, {:.2e} \
             distances ({:.4} of all pairs)",
            recall(&approx, &exact),
            found.rounds,
            found.distances as f64,
            found.distances as f64 / (n as f64 * (n - 1) as f64 / 2.0)
        );
    }
}

/// The N = 1e6 cases: median of 5 timed runs after a warm-up, written where criterion
/// writes its estimates.
fn once(pools: &[(usize, ThreadPool)]) {
    let n = 1_000_000;
    let g = abar(n).cast::<f32>();
    let f = features(n);
    eprintln!("graph n = {n}: {} stored entries", g.entries());
    let mut out = Array2::zeros(f.dim());
    for (t, pool) in pools {
        let case = |what: &str| format!("{what}_{}_t{t}", label(n));
        let spmm = median_seconds(pool, || g.matmul_into(f.view(), out.view_mut()));
        record("graph_once", &case("spmm"), spmm, 5);
        let mut flow = SpectralFlow::new(&g, f.clone()).expect("matching shapes");
        let step = median_seconds(pool, || flow.step(ETA, Terms::Both, Renorm::None));
        record("graph_once", &case("step"), step, 5);
    }
}

/// The median wall time of 5 runs of `work` on `pool`, after one untimed run.
fn median_seconds(pool: &ThreadPool, mut work: impl FnMut() + Send) -> f64 {
    seconds(pool, &mut work);
    let mut times: Vec<f64> = (0..5).map(|_| seconds(pool, &mut work)).collect();
    times.sort_by(f64::total_cmp);
    times[2]
}

criterion_group!(benches, bench);
criterion_main!(benches);
