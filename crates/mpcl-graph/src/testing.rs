//! Graphs for the tests: a two-block stochastic block model with self-loops.

use crate::CsrGraph;
use crate::eigen::random_block;

/// Two blocks of `m` nodes (nodes `0..m` and `m..2m`); each pair inside a block is linked
/// with probability `p_in`, across blocks with `p_out`; every node has a self-loop, so no
/// degree is 0. Deterministic for a seed.
pub fn two_blocks(m: usize, p_in: f64, p_out: f64, seed: u64) -> CsrGraph {
    let n = 2 * m;
    let draws = random_block(n, n, seed);
    let mut triplets: Vec<_> = (0..n).map(|i| (i, i, 1.0)).collect();
    for i in 0..n {
        for j in i + 1..n {
            let p = if (i < m) == (j < m) { p_in } else { p_out };
            // draws are uniform in [−1, 1): map to [0, 1).
            if (draws[[i, j]] + 1.0) / 2.0 < p {
                triplets.push((i, j, 1.0));
                triplets.push((j, i, 1.0));
            }
        }
    }
    CsrGraph::from_triplets(n, triplets).expect("valid edges")
}
