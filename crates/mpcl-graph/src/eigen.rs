//! The top eigenpairs of a symmetric sparse matrix (the normalised adjacency Ā), largest
//! algebraic first, with a convergence report whose residuals are recomputed from A.
//!
//! - [`EigenMethod::Lanczos`] (the default): thick-restart Lanczos (Wu & Simon, 2000) with
//!   full reorthogonalisation (classical Gram–Schmidt, twice). A cycle extends an
//!   orthonormal basis V of m vectors by one matrix–vector product per vector; the
//!   Rayleigh–Ritz step on `T = VᵀAV` (m×m, Jacobi) gives Ritz pairs whose residuals are
//!   `|βₘ·yₘᵢ|`; the restart keeps the best Ritz vectors and the residual direction, so T
//!   becomes an arrowhead matrix and no information along the kept vectors is lost.
//! - [`EigenMethod::Subspace`]: block subspace iteration with Rayleigh–Ritz on the shifted
//!   operator `A + bI` (b the Gershgorin bound), so the largest algebraic eigenvalues are
//!   the dominant ones. Convergence goes like `((λ_{p+1} + b)/(λᵢ + b))ᵗ` for block size
//!   p = k + oversample: slow on small gaps. Kept as a second implementation for the tests.
//!
//! ```text
//! cost per Lanczos cycle ≈ (m − p)·(E + 4·n·m) + n·m·p   (products, reorthogonalisation,
//!                                                        restart to p vectors)
//! ```
//! The tolerance is absolute on unit vectors, `‖A vᵢ − λᵢ vᵢ‖ ≤ tol`, which for |λ| ≤ 1 is
//! at least as strict as ARPACK's (SciPy's `eigsh`) `‖r‖ ≤ tol·|λ|`.

use ndarray::linalg::general_mat_vec_mul;
use ndarray::{Array1, Array2, Axis, s};

use crate::linalg::{eigh, orthonormalize};
use crate::{CsrGraph, GraphError};

/// The algorithm of [`top_eigenpairs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EigenMethod {
    /// Thick-restart Lanczos with full reorthogonalisation.
    #[default]
    Lanczos,
    /// Block subspace iteration with Rayleigh–Ritz.
    Subspace,
}

/// Settings of [`top_eigenpairs`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EigenConfig {
    /// How many eigenpairs.
    pub k: usize,
    /// Stop when every `‖A vᵢ − λᵢ vᵢ‖ ≤ tol` (unit vᵢ).
    pub tol: f64,
    /// At most this many iterations: restart cycles of Lanczos, block steps of the
    /// subspace iteration.
    pub max_iter: usize,
    /// Extra vectors that speed up convergence of the k wanted ones: the subspace block has
    /// k + oversample columns, the Lanczos basis max(2k, k + 32) + oversample (at most n).
    pub oversample: usize,
    /// Seeds the starting block: the same seed gives the same result.
    pub seed: u64,
    /// The algorithm.
    pub method: EigenMethod,
}

impl Default for EigenConfig {
    fn default() -> Self {
        Self {
            k: 2,
            tol: 1e-8,
            max_iter: 10_000,
            oversample: 8,
            seed: 0,
            method: EigenMethod::Lanczos,
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
    /// `‖A vᵢ − λᵢ vᵢ‖` for each pair, recomputed from A.
    pub residuals: Vec<f64>,
    /// Iterations run (see [`EigenConfig::max_iter`]).
    pub iterations: usize,
    /// Products of A with a vector, the measure of work (a block step of p columns counts p).
    pub matvecs: usize,
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

/// The `k` largest eigenpairs of the symmetric matrix `a`, by `cfg.method`.
///
/// # Errors
/// [`GraphError::Parameter`] when `k` is 0 or exceeds the node count, or `a` is not
/// symmetric.
///
/// Complexity: see the module docs; O(E + n·m) memory for a Lanczos basis of m vectors.
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
    let (values, x, iterations, matvecs) = match cfg.method {
        EigenMethod::Lanczos => lanczos(a, cfg),
        EigenMethod::Subspace => subspace_iteration(a, cfg),
    };
    let mut vectors = x.slice(s![.., ..cfg.k]).to_owned();
    for mut col in vectors.axis_iter_mut(Axis(1)) {
        let big = col
            .iter()
            .copied()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        if big < 0.0 {
            col.mapv_inplace(|v| -v);
        }
    }
    let values = values.slice(s![..cfg.k]).to_owned();
    let residuals = residuals(a, &values, &vectors);
    let converged = residuals.iter().all(|&r| r <= cfg.tol);
    Ok(Eigen {
        values,
        vectors,
        residuals,
        iterations,
        matvecs: matvecs + cfg.k,
        converged,
    })
}

/// `‖A vᵢ − λᵢ vᵢ‖` for each column, with one sparse product.
///
/// # Shapes
/// `values`: `[k]`; `vectors`: `[n, k]`.
fn residuals(a: &CsrGraph, values: &Array1<f64>, vectors: &Array2<f64>) -> Vec<f64> {
    let av = a.matmul(vectors.view());
    (0..values.len())
        .map(|i| {
            let r = &av.column(i) - &(&vectors.column(i) * values[i]);
            r.dot(&r).sqrt()
        })
        .collect()
}

/// Ritz values (descending), Ritz vectors `[n, ≥ k]`, iterations and products of the block
/// subspace iteration.
fn subspace_iteration(a: &CsrGraph, cfg: &EigenConfig) -> (Array1<f64>, Array2<f64>, usize, usize) {
    let n = a.nodes();
    let bound = (0..n)
        .map(|i| a.row(i).map(|(_, w)| w.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let p = (cfg.k + cfg.oversample).min(n);
    let mut x = orthonormalize(random_block(n, p, cfg.seed).view());
    let mut ax = a.matmul(x.view());
    let mut matvecs = p;
    let last = cfg.max_iter.max(1);
    for iteration in 1..=last {
        // Rayleigh–Ritz on span(X): rotate X onto the Ritz vectors.
        let (values, rot) = eigh(x.t().dot(&ax).view());
        x = x.dot(&rot);
        ax = ax.dot(&rot);
        let converged = (0..cfg.k).all(|i| {
            let r = &ax.column(i) - &(&x.column(i) * values[i]);
            r.dot(&r).sqrt() <= cfg.tol
        });
        if converged || iteration == last {
            return (values, x, iteration, matvecs);
        }
        // One step of the shifted power iteration, then re-orthonormalise.
        let y = &ax + &(&x * bound);
        x = orthonormalize(y.view());
        ax = a.matmul(x.view());
        matvecs += p;
    }
    unreachable!("the last iteration returns")
}

/// Ritz values (descending), Ritz vectors `[n, k]`, restart cycles and products of
/// thick-restart Lanczos.
fn lanczos(a: &CsrGraph, cfg: &EigenConfig) -> (Array1<f64>, Array2<f64>, usize, usize) {
    let n = a.nodes();
    let k = cfg.k;
    let m = ((2 * k).max(k + 32) + cfg.oversample).min(n);
    // Vectors kept at a restart: the k wanted and half the rest of the basis.
    let keep = (k + (m - k) / 2).min(m - 1).max(k.min(m - 1));
    // Basis vectors as rows: V[j] is the j-th Lanczos vector, V[m] the residual direction.
    let mut basis = Array2::<f64>::zeros((m + 1, n));
    let mut t = Array2::<f64>::zeros((m, m));
    let start = random_block(n, 1, cfg.seed).column(0).to_owned();
    basis.row_mut(0).assign(&(&start / start.dot(&start).sqrt()));
    let (mut first, mut matvecs, mut seed) = (0, 0, cfg.seed);
    let last = cfg.max_iter.max(1);
    let mut w = Array1::<f64>::zeros(n);
    for cycle in 1..=last {
        let mut beta = 0.0;
        for j in first..m {
            a.matmul_into(
                basis.row(j).insert_axis(Axis(1)),
                w.view_mut().insert_axis(Axis(1)),
            );
            matvecs += 1;
            let h = reorthogonalize(basis.slice(s![..=j, ..]), &mut w);
            t.slice_mut(s![..=j, j]).assign(&h);
            t.slice_mut(s![j, ..=j]).assign(&h);
            beta = w.dot(&w).sqrt();
            if beta <= 1e-12 * h.dot(&h).sqrt().max(1.0) && j + 1 < m {
                // An invariant subspace: continue from a random direction orthogonal to it.
                seed = seed.wrapping_add(1);
                w = random_block(n, 1, seed).column(0).to_owned();
                reorthogonalize(basis.slice(s![..=j, ..]), &mut w);
                let norm = w.dot(&w).sqrt();
                basis.row_mut(j + 1).assign(&(&w / norm));
                continue;
            }
            basis.row_mut(j + 1).assign(&(&w / beta.max(f64::MIN_POSITIVE)));
            if j + 1 < m {
                t[[j + 1, j]] = beta;
                t[[j, j + 1]] = beta;
            }
        }
        // Rayleigh–Ritz: T = Y Θ Yᵀ; the residual of Ritz pair i is |β·Y[m − 1, i]|.
        let (theta, y) = eigh(t.view());
        let estimate = |i: usize| (beta * y[[m - 1, i]]).abs();
        let done = (0..k).all(|i| estimate(i) <= cfg.tol);
        if done || cycle == last || m == n {
            let ritz = y.slice(s![.., ..k]).t().dot(&basis.slice(s![..m, ..]));
            return (theta, ritz.reversed_axes(), cycle, matvecs);
        }
        // Thick restart: V ← [V·Y[:, ..keep], v_m], T ← diag(Θ[..keep]); the arrowhead
        // row T[keep, ..keep] = β·Y[m − 1, ..keep] is recomputed by the next orthogonalisation.
        let kept = y.slice(s![.., ..keep]).t().dot(&basis.slice(s![..m, ..]));
        let residual = basis.row(m).to_owned();
        basis.slice_mut(s![..keep, ..]).assign(&kept);
        basis.row_mut(keep).assign(&residual);
        t.fill(0.0);
        for i in 0..keep {
            t[[i, i]] = theta[i];
        }
        first = keep;
    }
    unreachable!("the last cycle returns")
}

/// Makes `w` orthogonal to the rows of `v` by classical Gram–Schmidt applied twice, and
/// returns the coefficients `h = V·w` removed.
///
/// # Shapes
/// `v`: `[j, n]` with orthonormal rows; `w`: `[n]`; returns `[j]`.
fn reorthogonalize(v: ndarray::ArrayView2<f64>, w: &mut Array1<f64>) -> Array1<f64> {
    let mut h = Array1::zeros(v.nrows());
    for _pass in 0..2 {
        let c = v.dot(&*w);
        general_mat_vec_mul(-1.0, &v.t(), &c, 1.0, w);
        h += &c;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::singular_values;
    use crate::testing::two_blocks;

    #[test]
    fn matches_the_dense_oracle() {
        // Oracle: all eigenpairs of the dense matrix by Jacobi rotations (linalg::eigh).
        let g = two_blocks(40, 0.3, 0.02, 1).sym_normalized().unwrap();
        let (values, vectors) = eigh(g.to_dense().view());
        for method in [EigenMethod::Lanczos, EigenMethod::Subspace] {
            let cfg = EigenConfig {
                k: 4,
                tol: 1e-10,
                method,
                ..EigenConfig::default()
            };
            let ours = top_eigenpairs(&g, &cfg).unwrap();
            assert!(ours.converged, "{method:?}: residuals {:?}", ours.residuals);
            for i in 0..4 {
                assert!((ours.values[i] - values[i]).abs() < 1e-9, "{method:?} λ{i}");
            }
            // Same subspace: the singular values of Vᵀ V_oracle are the cosines of the
            // principal angles, all 1.
            let overlap = ours.vectors.t().dot(&vectors.slice(ndarray::s![.., ..4]));
            let cosines = singular_values(overlap.view());
            assert!(cosines.iter().all(|c| (c - 1.0).abs() < 1e-9), "{cosines}");
            // The top eigenvalue of Ā on a connected graph is 1.
            assert!((ours.values[0] - 1.0).abs() < 1e-10);
        }
    }

    #[test]
    fn lanczos_restarts_and_matches_the_dense_oracle_on_a_clustered_spectrum() {
        // A random graph of 300 nodes: apart from λ₁ = 1 its top eigenvalues crowd at the
        // edge of the bulk, the case the scale benchmark measures. The basis (48 vectors) is
        // far smaller than n, so the solver must restart. Oracle: Jacobi on the dense matrix.
        let g = crate::build::random_out_neighbours::<f64>(300, 3, 4)
            .unwrap()
            .sym_normalized()
            .unwrap();
        let cfg = EigenConfig {
            k: 16,
            tol: 1e-9,
            oversample: 0,
            ..EigenConfig::default()
        };
        let ours = top_eigenpairs(&g, &cfg).unwrap();
        assert!(ours.converged && ours.iterations > 1, "{ours:?}");
        let (values, vectors) = eigh(g.to_dense().view());
        // Eigenvalue errors are O(‖r‖²/gap) ≤ 1e-9 here; 1e-8 leaves room.
        for i in 0..16 {
            assert!((ours.values[i] - values[i]).abs() < 1e-8, "λ{i}");
        }
        // Vectors: each Ritz vector lies in the oracle's top-16 eigenspace to within its
        // residual over the gap λ₁₆ − λ₁₇.
        let gap = values[15] - values[16];
        assert!(gap > 1e-3, "gap {gap}");
        let top = vectors.slice(ndarray::s![.., ..16]);
        let inside = ours.vectors.t().dot(&top);
        for i in 0..16 {
            let norm2 = inside.row(i).dot(&inside.row(i));
            assert!(1.0 - norm2 < 1e-12, "vector {i}: {norm2}");
        }
    }

    #[test]
    fn lanczos_agrees_with_the_subspace_iteration() {
        // Two implementations of one definition on the test graph of the dynamics.
        let g = two_blocks(100, 0.2, 0.02, 5).sym_normalized().unwrap();
        let run = |method| {
            let cfg = EigenConfig {
                k: 5,
                tol: 1e-10,
                method,
                ..EigenConfig::default()
            };
            top_eigenpairs(&g, &cfg).unwrap()
        };
        let (lanczos, subspace) = (run(EigenMethod::Lanczos), run(EigenMethod::Subspace));
        assert!(lanczos.converged && subspace.converged);
        let diff = &lanczos.values - &subspace.values;
        assert!(diff.iter().all(|d| d.abs() < 1e-9), "{diff}");
        assert!(lanczos.matvecs < subspace.matvecs, "{lanczos:?}");
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
        for method in [EigenMethod::Lanczos, EigenMethod::Subspace] {
            let capped = EigenConfig {
                max_iter: 1,
                oversample: 0,
                method,
                ..cfg
            };
            let rough = top_eigenpairs(&g, &capped).unwrap();
            assert!(!rough.converged && rough.iterations == 1, "{method:?}");
        }
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
