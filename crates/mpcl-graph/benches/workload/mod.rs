//! The benchmark workload shared by the graph benches (`graph`, `prefetch`): the graph and
//! features of `python/bench_graph.py`, and the one-shot timings written where criterion
//! writes its estimates.

use std::time::Instant;

use mpcl_graph::CsrGraph;
use mpcl_graph::build::random_out_neighbours;
use mpcl_graph::eigen::random_block;
use ndarray::Array2;
use rayon::ThreadPool;

/// Neighbours drawn per node.
pub const DEGREE: usize = 10;
/// Feature columns of the step.
pub const COLUMNS: usize = 32;
/// The step size of the fused step.
pub const ETA: f32 = 0.01;

/// Ā of the benchmark graph on `n` nodes.
pub fn abar(n: usize) -> CsrGraph<f64> {
    let a: CsrGraph<f64> = random_out_neighbours(n, DEGREE, n as u64).expect("n, degree ≥ 1");
    a.sym_normalized().expect("every node has degree ≥ 10")
}

/// F `[n, 32]` in f32, entries uniform in [−1, 1)/√n, so that FᵀF ≈ I/3 and the step
/// stays bounded however often it runs.
pub fn features(n: usize) -> Array2<f32> {
    let scale = (n as f64).sqrt().recip();
    random_block(n, COLUMNS, 1).mapv(|v| (scale * v) as f32)
}

/// "1e4" for 10 000.
pub fn label(n: usize) -> String {
    format!("1e{}", n.ilog10())
}

/// The wall time of one run of `work` on `pool`, in seconds.
pub fn seconds(pool: &ThreadPool, work: &mut (impl FnMut() + Send)) -> f64 {
    pool.install(|| {
        let start = Instant::now();
        work();
        start.elapsed().as_secs_f64()
    })
}

/// Writes `seconds` (the median of `runs` runs) as
/// `target/criterion/<group>/<case>/new/estimates.json` (`median.point_estimate` in
/// nanoseconds), atomically, and prints it.
pub fn record(group: &str, case: &str, seconds: f64, runs: usize) {
    eprintln!("{group}/{case}: {seconds:.4} s (median of {runs})");
    // The bench binary is target/<profile>/deps/<bench>-<hash>.
    let exe = std::env::current_exe().expect("the bench binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the bench binary lies in target/<profile>/deps");
    let dir = target.join("criterion").join(group).join(case).join("new");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let json = serde_json::json!({ "median": { "point_estimate": seconds * 1e9 } });
    let tmp = dir.join("estimates.json.tmp");
    std::fs::write(&tmp, json.to_string())
        .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join("estimates.json"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", dir.display()));
}
