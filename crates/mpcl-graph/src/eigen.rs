//! The top eigenpairs of a symmetric sparse matrix (the normalised adjacency Ā): block
//! subspace iteration with Rayleigh–Ritz, on the shifted operator `A + bI` with `b` the
//! Gershgorin bound, so the largest *algebraic* eigenvalues of `A` are the dominant ones.
//!
//! Convergence per eigenvalue goes like `((λ_{p+1} + b)/(λᵢ + b))ᵗ` for block size p = k +
//! oversampling, so it is slow on small gaps; a faster solver (Lanczos or LOBPCG) is
//! FIXME(#5). The result reports whether every residual reached the tolerance.

use ndarray::{Array1, Array2, Axis};

use crate::linalg::{eigh, orthonormalize};
use crate::{CsrGraph, GraphError};

/// Settings of [`top_eigenpairs`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EigenConfig {
    /// How many eigenpairs.
    pub k: usize,
    /// Stop when every `‖A vᵢ − λᵢ vᵢ‖ ≤ tol` (unit vᵢ).
    pub tol: f64,
    /// At most this many iterations.
    pub max_iter: usize,
    /// Extra block columns that speed up convergence of the k wanted ones.
    pub oversample: usize,
    /// Seeds the starting block: the same seed gives the same result.
    pub seed: u64,
}

impl Default for EigenConfig {
    fn default() -> Self {
        Self {
            k: 2,
            tol: 1e-8,
            max_iter: 10_000,
            oversample: 8,
            seed: 0,
        }
    }
}

/// Eigenpairs and how they were reached.
#[derive(Debug, Clone)]
pub struct Eigen {
    /// The k largest eigenvalues, descending.
    pub values: Array1<f64>,
    /// Unit eigenvectors as columns, `[n, k]`, each signed so its largest entry is positive.
    pub vectors: Array2<f64>,
    /// `‖A vᵢ − λᵢ vᵢ‖` for each pair.
    pub residuals: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether every residual is within the tolerance.
    pub converged: bool,
}

/// A deterministic `[n, k]` block of values in [−1, 1) from a seed (SplitMix64).
pub fn random_block(n: usize, k: usize, seed: u64) -> Array2<f64> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    Array2::from_shape_simple_fn((n, k), || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    })
}

/// The `k` largest eigenpairs of the symmetric matrix `a`.
///
/// # Errors
/// [`GraphError::Parameter`] when `k` is 0 or exceeds the node count, or `a` is not
/// symmetric.
///
/// Complexity: O((E + n·p)·p) per iteration for block size p = k + oversample.
pub fn top_eigenpairs(a: &CsrGraph, cfg: &EigenConfig) -> Result<Eigen, GraphError> {
    let n = a.nodes();
    if cfg.k == 0 || cfg.k > n {
        return Err(GraphError::Parameter(format!(
            "k = {}: need 1 ≤ k ≤ {n} nodes",
            cfg.k
        )));
    }
    if !a.is_symmetric() {
        return Err(GraphError::Parameter("the matrix is not symmetric".into()));
    }
    let bound = (0..n)
        .map(|i| a.row(i).map(|(_, w)| w.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let p = (cfg.k + cfg.oversample).min(n);
    let mut x = orthonormalize(random_block(n, p, cfg.seed).view());
    let mut ax = a.matmul(x.view());
    let mut result = None;
    for iteration in 1..=cfg.max_iter.max(1) {
        // Rayleigh–Ritz on span(X): rotate X onto the Ritz vectors.
        let (values, rot) = eigh(x.t().dot(&ax).view());
        x = x.dot(&rot);
        ax = ax.dot(&rot);
        let residuals: Vec<f64> = (0..cfg.k)
            .map(|i| {
                let r = &ax.column(i) - &(&x.column(i) * values[i]);
                r.dot(&r).sqrt()
            })
            .collect();
        let converged = residuals.iter().all(|&r| r <= cfg.tol);
        if converged || iteration == cfg.max_iter.max(1) {
            result = Some((values, residuals, iteration, converged));
            break;
        }
        // One step of the shifted power iteration, then re-orthonormalise.
        let y = &ax + &(&x * bound);
        x = orthonormalize(y.view());
        ax = a.matmul(x.view());
    }
    let (values, residuals, iterations, converged) = result.expect("at least one iteration");
    let mut vectors = x.slice(ndarray::s![.., ..cfg.k]).to_owned();
    for mut col in vectors.axis_iter_mut(Axis(1)) {
        let big = col
            .iter()
            .copied()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        if big < 0.0 {
            col.mapv_inplace(|v| -v);
        }
    }
    Ok(Eigen {
        values: values.slice(ndarray::s![..cfg.k]).to_owned(),
        vectors,
        residuals,
        iterations,
        converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::singular_values;
    use crate::testing::two_blocks;

    #[test]
    fn matches_the_dense_oracle() {
        let g = two_blocks(40, 0.3, 0.02, 1).sym_normalized().unwrap();
        let cfg = EigenConfig {
            k: 4,
            tol: 1e-10,
            ..EigenConfig::default()
        };
        let ours = top_eigenpairs(&g, &cfg).unwrap();
        assert!(ours.converged, "residuals {:?}", ours.residuals);
        let (values, vectors) = eigh(g.to_dense().view());
        for i in 0..4 {
            assert!((ours.values[i] - values[i]).abs() < 1e-9, "λ{i}");
        }
        // Same subspace: the singular values of Vᵀ V_oracle are the cosines of the principal
        // angles, all 1.
        let overlap = ours.vectors.t().dot(&vectors.slice(ndarray::s![.., ..4]));
        let cosines = singular_values(overlap.view());
        assert!(cosines.iter().all(|c| (c - 1.0).abs() < 1e-9), "{cosines}");
        // The top eigenvalue of Ā on a connected graph is 1.
        assert!((ours.values[0] - 1.0).abs() < 1e-10);
    }

    #[test]
    fn deterministic_for_a_seed_and_honest_about_convergence() {
        let g = two_blocks(30, 0.3, 0.05, 2).sym_normalized().unwrap();
        let cfg = EigenConfig {
            k: 3,
            tol: 1e-9,
            ..EigenConfig::default()
        };
        let (a, b) = (
            top_eigenpairs(&g, &cfg).unwrap(),
            top_eigenpairs(&g, &cfg).unwrap(),
        );
        assert_eq!(a.vectors, b.vectors);
        let capped = EigenConfig {
            max_iter: 1,
            oversample: 0,
            ..cfg
        };
        let rough = top_eigenpairs(&g, &capped).unwrap();
        assert!(!rough.converged && rough.iterations == 1);
    }

    #[test]
    fn bad_requests_are_named() {
        let g = two_blocks(5, 0.5, 0.1, 3);
        let err = top_eigenpairs(
            &g,
            &EigenConfig {
                k: 11,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("k = 11: need 1 ≤ k ≤ 10"), "{err}");
        let directed = CsrGraph::from_triplets(2, vec![(0, 1, 1.0)]).unwrap();
        assert!(top_eigenpairs(&directed, &EigenConfig::default()).is_err());
    }
}
