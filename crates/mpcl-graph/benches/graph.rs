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

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use mpcl_graph::CsrGraph;
use mpcl_graph::build::random_out_neighbours;
use mpcl_graph::dynamics::{Renorm, Terms};
use mpcl_graph::eigen::{EigenConfig, random_block, top_eigenpairs};
use mpcl_graph::flow::SpectralFlow;
use ndarray::Array2;
use rayon::ThreadPool;

/// Neighbours drawn per node.
const DEGREE: usize = 10;
/// Feature columns of the step.
const COLUMNS: usize = 32;
/// Eigenpairs wanted.
const PAIRS: usize = 16;
/// The eigensolver's tolerance.
const TOL: f64 = 1e-6;
/// The step size of the fused step; small enough that F stays bounded over the samples.
const ETA: f32 = 0.01;

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

/// Ā of the benchmark graph on `n` nodes.
fn abar(n: usize) -> CsrGraph<f64> {
    let a: CsrGraph<f64> = random_out_neighbours(n, DEGREE, n as u64).expect("n, degree ≥ 1");
    a.sym_normalized().expect("every node has degree ≥ 10")
}

/// F `[n, 32]` in f32, entries in [−0.1, 0.1).
fn features(n: usize) -> Array2<f32> {
    random_block(n, COLUMNS, 1).mapv(|v| (0.1 * v) as f32)
}

/// "1e4" for 10 000.
fn label(n: usize) -> String {
    format!("1e{}", n.ilog10())
}

/// Runs the eigensolver and reports its check on stderr.
///
/// # Panics
/// If a residual exceeds the tolerance: a fast wrong answer is no result.
fn eigen(g: &CsrGraph<f64>) {
    let cfg = EigenConfig {
        k: PAIRS,
        tol: TOL,
        ..EigenConfig::default()
    };
    let eig = top_eigenpairs(g, &cfg).expect("a symmetric graph");
    let worst = eig.residuals.iter().copied().fold(0.0, f64::max);
    assert!(eig.converged, "not converged: largest residual {worst:.2e}");
    eprintln!(
        "eigen n = {}: λ = {:.6} … {:.6}, {} cycles, {} products, largest residual {worst:.1e}",
        g.nodes(),
        eig.values[0],
        eig.values[PAIRS - 1],
        eig.iterations,
        eig.matvecs
    );
}

fn bench(c: &mut Criterion) {
    let pools = pools();
    let mut group = c.benchmark_group("graph");
    group.sample_size(10);
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
            pool.install(|| eigen(&g64));
            group.bench_function(case("eigen"), |b| b.iter(|| pool.install(|| eigen(&g64))));
        }
    }
    group.finish();
    once(&pools);
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
        record(&case("spmm"), spmm);
        let mut flow = SpectralFlow::new(&g, f.clone()).expect("matching shapes");
        let step = median_seconds(pool, || flow.step(ETA, Terms::Both, Renorm::None));
        record(&case("step"), step);
    }
}

/// The median wall time of 5 runs of `work` on `pool`, after one untimed run.
fn median_seconds(pool: &ThreadPool, mut work: impl FnMut() + Send) -> f64 {
    pool.install(|| {
        work();
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                work();
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[2]
    })
}

/// Writes `seconds` as `target/criterion/graph_once/<case>/new/estimates.json`
/// (`median.point_estimate` in nanoseconds), atomically, and prints it.
fn record(case: &str, seconds: f64) {
    eprintln!("graph_once/{case}: {:.4} s (median of 5)", seconds);
    // The bench binary is target/<profile>/deps/graph-<hash>.
    let exe = std::env::current_exe().expect("the bench binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the bench binary lies in target/<profile>/deps");
    let dir = target.join("criterion/graph_once").join(case).join("new");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let json = serde_json::json!({ "median": { "point_estimate": seconds * 1e9 } });
    let tmp = dir.join("estimates.json.tmp");
    std::fs::write(&tmp, json.to_string())
        .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join("estimates.json"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", dir.display()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
