//! A/B of the sparse gathers with and without software prefetch, on one thread in one
//! process, on the workload of `graph` (N = 1e6 by default, `MPCL_BENCH_AB_N` to change it).
//!
//! On a shared machine the load moves between two runs by 2–3×; here the two kernels
//! alternate, 10 rounds of each after a warm-up, the order swapped every round, so both see
//! the same load. For `Ā·F` ([`CsrGraph::matmul_into_prefetching`]) and the fused step
//! ([`SpectralFlow::with_prefetch`]) it prints the min and median of each, their ratios and
//! the GB/s of the traffic model of xtask's `graph_side_by_side` (kept the same there), and
//! the load average before and after. A third alternation runs the prefetching product on
//! F where the allocator put it and on a copy whose rows start on cache lines
//! ([`on_lines`]), which [`CsrGraph::matmul_into`] makes for large misaligned inputs. The
//! medians go to `target/criterion/graph_ab/<case>/new/estimates.json`.

mod workload;

use mpcl_graph::dynamics::{Renorm, Terms};
use mpcl_graph::flow::SpectralFlow;
use mpcl_graph::{CsrGraph, PREFETCH_AHEAD, on_lines};
use ndarray::Array2;
use workload::{COLUMNS, ETA, abar, features, label, record, seconds};

/// Timed runs of each kernel.
const ROUNDS: usize = 10;

/// The system's load averages, or why they are unknown.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |e| format!("unknown ({e})"),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// Bytes a product or step moves under the traffic model: the graph (4-byte index and
/// 4-byte weight per entry, 8-byte row pointers), one row of F gathered per entry, F
/// written once, and for the step F read once more as itself.
fn traffic(g: &CsrGraph<f32>, what: &str) -> f64 {
    let (n, nnz) = (g.nodes() as f64, g.entries() as f64);
    let row = (COLUMNS * size_of::<f32>()) as f64;
    let passes = if what == "step" { 2.0 } else { 1.0 };
    nnz * 8.0 + (n + 1.0) * 8.0 + nnz * row + passes * n * row
}

/// Runs `with` (prefetching) and `without` alternately, `ROUNDS` times each after one
/// untimed run of each, and returns their sorted times.
fn alternate(
    pool: &rayon::ThreadPool,
    mut with: impl FnMut() + Send,
    mut without: impl FnMut() + Send,
) -> [Vec<f64>; 2] {
    seconds(pool, &mut with);
    seconds(pool, &mut without);
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            times[0].push(seconds(pool, &mut with));
            times[1].push(seconds(pool, &mut without));
        } else {
            times[1].push(seconds(pool, &mut without));
            times[0].push(seconds(pool, &mut with));
        }
    }
    times.iter_mut().for_each(|t| t.sort_by(f64::total_cmp));
    times
}

fn main() {
    let n = std::env::var("MPCL_BENCH_AB_N")
        .ok()
        .map(|v| v.parse::<f64>())
        .transpose()
        .unwrap_or_else(|e| panic!("MPCL_BENCH_AB_N: {e}"))
        .map_or(1_000_000, |v| v as usize);
    assert!(n >= 10, "MPCL_BENCH_AB_N = {n}: expected at least 10 nodes");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
    let pool = pool.expect("a rayon pool");
    let g = abar(n).cast::<f32>();
    let f = features(n);
    eprintln!("graph n = {n}: {} stored entries", g.entries());
    let before = load();

    let (mut a, mut b) = (Array2::zeros(f.dim()), Array2::zeros(f.dim()));
    let spmm = alternate(
        &pool,
        || g.matmul_into_prefetching(f.view(), a.view_mut(), PREFETCH_AHEAD),
        || g.matmul_into_prefetching(f.view(), b.view_mut(), 0),
    );
    assert_eq!(a, b, "a prefetch changed a value");
    // Alignment: the raw kernel (prefetching) on F where the allocator put it and on a copy
    // whose rows start on cache lines.
    let lined = on_lines(f.view());
    let f_offset = f.as_ptr().addr() % 64;
    let align = alternate(
        &pool,
        || g.matmul_into_prefetching(lined.view(), a.view_mut(), PREFETCH_AHEAD),
        || g.matmul_into_prefetching(f.view(), b.view_mut(), PREFETCH_AHEAD),
    );
    assert_eq!(a, b, "alignment changed a value");
    let mut with = SpectralFlow::new(&g, f.clone()).expect("matching shapes");
    let mut without = SpectralFlow::new(&g, f).expect("matching shapes");
    without = without.with_prefetch(0);
    let step = alternate(
        &pool,
        || with.step(ETA, Terms::Both, Renorm::None),
        || without.step(ETA, Terms::Both, Renorm::None),
    );
    assert_eq!(
        with.features(),
        without.features(),
        "a prefetch changed a step"
    );

    let after = load();
    for (what, times) in [("spmm", &spmm), ("step", &step)] {
        for (slot, ahead) in [PREFETCH_AHEAD, 0].into_iter().enumerate() {
            let case = format!("{what}_{}_t1_ahead{ahead}", label(n));
            record("graph_ab", &case, times[slot][ROUNDS / 2], ROUNDS);
        }
    }
    for (slot, place) in ["lines", "alloc"].into_iter().enumerate() {
        let case = format!("spmm_{}_t1_{place}", label(n));
        record("graph_ab", &case, align[slot][ROUNDS / 2], ROUNDS);
    }
    println!(
        "\nprefetch A/B, N = {n}, one thread, {ROUNDS} alternations; load average (1, 5, 15 \
         min) before: {before}, after: {after}\n"
    );
    println!(
        "| case | ahead | min (s) | median (s) | GB/s at the median |\n|---|---:|---:|---:|---:|"
    );
    for (what, times) in [("spmm", &spmm), ("step", &step)] {
        for (slot, ahead) in [PREFETCH_AHEAD, 0].into_iter().enumerate() {
            let (min, median) = (times[slot][0], times[slot][ROUNDS / 2]);
            let rate = traffic(&g, what) / median / 1e9;
            println!(
                "| {what}_{} | {ahead} | {min:.4} | {median:.4} | {rate:.1} |",
                label(n)
            );
        }
        println!(
            "| {what}: without / with | | {:.2} | {:.2} | |",
            times[1][0] / times[0][0],
            times[1][ROUNDS / 2] / times[0][ROUNDS / 2]
        );
    }
    println!(
        "\nalignment A/B (both prefetching; F as allocated starts {f_offset} bytes into a \
         line)\n\n| F | min (s) | median (s) |\n|---|---:|---:|"
    );
    for (slot, place) in ["on lines", "as allocated"].into_iter().enumerate() {
        let (min, median) = (align[slot][0], align[slot][ROUNDS / 2]);
        println!("| {place} | {min:.4} | {median:.4} |");
    }
    println!(
        "| allocated / lines | {:.2} | {:.2} |",
        align[1][0] / align[0][0],
        align[1][ROUNDS / 2] / align[0][ROUNDS / 2]
    );
}
