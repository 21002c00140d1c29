//! Closed-form contrastive objectives on a batch of features, in f64.
//!
//! The graph is the batch's graph of views as [`build::views`](crate::build::views) returns
//! it. Its diagonal (the self-loops) is ignored: a view is not its own positive, nor its
//! own negative. With `A°` the graph without its diagonal and `d°ₓ = Σ_{x′} A°[x, x′]`:
//!
//! The batch InfoNCE with cosine similarities:
//! ```text
//! sₓₓ′ = f̂ₓ·f̂ₓ′ / τ,   f̂ = f / ‖f‖
//! log pₓₓ′ = sₓₓ′ − log Σ_{x″ ≠ x} exp sₓₓ″
//! L = 1/|V| Σₓ  −Σ_{x′} A°[x, x′] log pₓₓ′ / d°ₓ
//! ```
//! With the views of one sample linked, this is NT-Xent.
//!
//! The batch spectral contrastive loss over the same graph, on raw features:
//! ```text
//! L = −2 Σ_{x,x′} A°[x, x′] fₓ·fₓ′ / Σ A°
//!     + μ · mean_{x ≠ x′, A[x, x′] = 0} (fₓ·fₓ′)²
//! ```
//! The sums are written as plain loops so that they serve as independent oracles for the
//! libtorch implementations.

use ndarray::ArrayView2;

use crate::{CsrGraph, GraphError};

/// The row count of `f`, checked against the graph's node count.
fn check_nodes(f: ArrayView2<f64>, graph: &CsrGraph) -> Result<usize, GraphError> {
    let (v, nodes) = (f.nrows(), graph.nodes());
    if nodes != v {
        return Err(GraphError::Shape(format!(
            "f has {v} rows but the graph has {nodes} nodes"
        )));
    }
    Ok(v)
}

/// The positives of view `x`: its neighbours other than itself, with their weights.
fn positives(graph: &CsrGraph, x: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
    graph.row(x).filter(move |&(y, _)| y != x)
}

/// The batch InfoNCE of features `f` over `graph` at temperature `tau`.
///
/// # Shapes
/// `f`: `[V, k]` with `V` the graph's node count.
///
/// # Errors
/// [`GraphError::Shape`] when `f` has a row count other than the graph's node count,
/// [`GraphError::Parameter`] when τ ≤ 0 or a node has no positive.
pub fn info_nce(f: ArrayView2<f64>, graph: &CsrGraph, tau: f64) -> Result<f64, GraphError> {
    let v = check_nodes(f, graph)?;
    if tau.is_nan() || tau <= 0.0 {
        return Err(GraphError::Parameter(format!("tau = {tau}: expected > 0")));
    }
    let unit: Vec<Vec<f64>> = f
        .rows()
        .into_iter()
        .map(|r| {
            let norm = r.dot(&r).sqrt().max(1e-12);
            r.iter().map(|x| x / norm).collect()
        })
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut total = 0.0;
    for x in 0..v {
        let degree: f64 = positives(graph, x).map(|(_, w)| w).sum();
        if degree <= 0.0 {
            return Err(GraphError::Parameter(format!(
                "node {x} has no positive (degree 0 without its self-loop)"
            )));
        }
        let s: Vec<f64> = (0..v).map(|y| dot(&unit[x], &unit[y]) / tau).collect();
        let max = (0..v)
            .filter(|&y| y != x)
            .map(|y| s[y])
            .fold(f64::NEG_INFINITY, f64::max);
        let lse = max
            + (0..v)
                .filter(|&y| y != x)
                .map(|y| (s[y] - max).exp())
                .sum::<f64>()
                .ln();
        let pos: f64 = positives(graph, x).map(|(y, w)| w * (s[y] - lse)).sum();
        total -= pos / degree;
    }
    Ok(total / v as f64)
}

/// The batch spectral contrastive loss of features `f` over `graph`, uniformity weighted
/// by `mu`.
///
/// # Shapes
/// `f`: `[V, k]` with `V` the graph's node count.
///
/// # Errors
/// [`GraphError::Shape`] when `f` does not match the graph, [`GraphError::Parameter`] when the
/// graph has no edge between distinct views or no unlinked pair.
pub fn spectral(f: ArrayView2<f64>, graph: &CsrGraph, mu: f64) -> Result<f64, GraphError> {
    let v = check_nodes(f, graph)?;
    let (mut pos, mut weight, mut neg, mut pairs) = (0.0, 0.0, 0.0, 0usize);
    for x in 0..v {
        let mut linked = positives(graph, x).peekable();
        for y in (0..v).filter(|&y| y != x) {
            let dot = f.row(x).dot(&f.row(y));
            match linked.next_if(|&(z, _)| z == y) {
                Some((_, a)) if a != 0.0 => {
                    pos += a * dot;
                    weight += a;
                }
                _ => {
                    neg += dot * dot;
                    pairs += 1;
                }
            }
        }
    }
    if weight == 0.0 || pairs == 0 {
        return Err(GraphError::Parameter(format!(
            "the graph has {weight} edge weight and {pairs} unlinked pairs: both must be > 0"
        )));
    }
    Ok(-2.0 * pos / weight + mu * neg / pairs as f64)
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;
    use crate::build::{view_major, views};

    #[test]
    fn hand_computed_nt_xent() {
        // Each anchor's positive is identical and both negatives orthogonal:
        // L = log(1 + 2e^{−1/τ}), 0.2395 at τ = 0.5.
        let f = array![[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]];
        let l = info_nce(f.view(), &view_major(2, 2), 0.5).unwrap();
        assert!((l - (1.0 + 2.0 * (-2.0f64).exp()).ln()).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_spectral() {
        // Views (1,0), (2,0) of sample 0 and (0,1), (0,3) of sample 1: positive dots 2 and 3
        // (mean 2.5), negative dots 0, so L = −5; the self-loops change nothing.
        let f = array![[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]];
        let l = spectral(f.view(), &view_major(2, 2), 1.0).unwrap();
        assert!((l + 5.0).abs() < 1e-12);
        // Moving view 0 to (1, 1): positive dots still 2 and 3; of the 8 ordered unlinked
        // pairs, (0, 1) has dot 1 and (0, 3) dot 3, the others 0: mean square 2·(1 + 9)/8 =
        // 2.5, so with μ = 2, L = −5 + 2·2.5 = 0.
        let g = array![[1.0, 1.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]];
        let l = spectral(g.view(), &view_major(2, 2), 2.0).unwrap();
        assert!(l.abs() < 1e-12, "{l}");
    }

    #[test]
    fn rejects_mismatched_shapes_and_isolated_nodes() {
        let f = array![[1.0, 0.0], [0.0, 1.0]];
        let g = view_major(2, 2);
        assert!(
            info_nce(f.view(), &g, 0.5)
                .unwrap_err()
                .to_string()
                .contains("2 rows")
        );
        // One view per sample: only self-loops, so no positive.
        let lonely = views(&[0, 1], None).unwrap();
        let err = info_nce(f.view(), &lonely, 0.5).unwrap_err().to_string();
        assert!(err.contains("node 0 has no positive"), "{err}");
    }
}
