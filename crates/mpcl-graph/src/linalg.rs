//! Small dense linear algebra on ndarray: what the eigensolver and the trajectory metrics
//! need, written here because the graph layer depends on ndarray and rayon only.
//!
//! - [`eigh`]: all eigenpairs of a small symmetric matrix (cyclic Jacobi), the oracle for the
//!   sparse solver and its Rayleigh–Ritz step.
//! - [`orthonormalize`]: an orthonormal basis of a matrix's columns (modified Gram–Schmidt,
//!   twice for stability).
//! - [`singular_values`]: via the eigenvalues of `XᵀX`, for tall, thin matrices.
//! - [`least_squares`]: `argmin ‖XW − Y‖²` through the eigendecomposition of `XᵀX`, a
//!   pseudo-inverse for rank-deficient `X`.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

/// The eigenvalues (descending) and eigenvectors (columns, in the same order) of a symmetric
/// matrix, by cyclic Jacobi rotations until the off-diagonal mass is below 1e-14 of the total.
///
/// # Shapes
/// `a`: `[n, n]`; returns `[n]` and `[n, n]`.
///
/// # Panics
/// If `a` is not square.
///
/// Complexity: O(n³) per sweep, typically under 10 sweeps: meant for n up to a few hundred.
pub fn eigh(a: ArrayView2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = a.nrows();
    assert_eq!(a.ncols(), n, "eigh needs a square matrix");
    let mut m = a.to_owned();
    let mut v = Array2::<f64>::eye(n);
    let total: f64 = m.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[[i, j]] * m[[i, j]])
            .sum();
        if off <= 1e-28 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes m[p, q] (Golub & Van Loan, Algorithm 8.5.1).
                let tau = (m[[q, q]] - m[[p, p]]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[[k, p]], m[[k, q]]);
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[[p, k]], m[[q, k]]);
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[[j, j]].total_cmp(&m[[i, i]]));
    let values = order.iter().map(|&i| m[[i, i]]).collect();
    let vectors = v.select(Axis(1), &order);
    (values, vectors)
}

/// An orthonormal basis of the column space of `x`, columns in order (modified Gram–Schmidt
/// applied twice). Columns that are numerically dependent on earlier ones come out as zero.
///
/// # Shapes
/// `x`: `[n, k]` with n ≥ k; returns `[n, k]`.
pub fn orthonormalize(x: ArrayView2<f64>) -> Array2<f64> {
    let mut q = x.to_owned();
    let k = q.ncols();
    for _pass in 0..2 {
        for j in 0..k {
            for i in 0..j {
                let (qi, mut qj) = q.multi_slice_mut((s![.., i], s![.., j]));
                let r = qi.dot(&qj);
                qj.scaled_add(-r, &qi);
            }
            let mut col = q.column_mut(j);
            let norm = col.dot(&col).sqrt();
            if norm > 1e-300 {
                col /= norm;
            } else {
                col.fill(0.0);
            }
        }
    }
    q
}

/// The singular values of a tall matrix, descending: square roots of the eigenvalues of
/// `XᵀX` (clamped at 0).
///
/// # Shapes
/// `x`: `[n, k]`; returns `[k]`.
pub fn singular_values(x: ArrayView2<f64>) -> Array1<f64> {
    let (values, _) = eigh(x.t().dot(&x).view());
    values.mapv(|v| v.max(0.0).sqrt())
}

/// The least-squares solution `W = argmin ‖XW − Y‖²_F`, through the eigendecomposition
/// of the Gram matrix: `W = V Λ⁺ Vᵀ XᵀY`, where directions with eigenvalue below 1e-12 of
/// the largest are dropped (a pseudo-inverse), so a rank-deficient `X` (collapsed
/// features, a constant column) gives the minimum-norm solution instead of an error.
///
/// # Shapes
/// `x`: `[n, p]`, `y`: `[n, q]`; returns `[p, q]`.
///
/// # Panics
/// If `x` and `y` have different row counts.
///
/// Complexity: O(n·p·(p + q) + p³).
pub fn least_squares(x: ArrayView2<f64>, y: ArrayView2<f64>) -> Array2<f64> {
    assert_eq!(
        x.nrows(),
        y.nrows(),
        "least squares with different row counts"
    );
    let (values, vectors) = eigh(x.t().dot(&x).view());
    let cutoff = values.first().map_or(0.0, |v| v.max(0.0)) * 1e-12;
    let inverse: Array1<f64> = values.mapv(|v| if v > cutoff { v.recip() } else { 0.0 });
    (&vectors * &inverse).dot(&vectors.t()).dot(&x.t().dot(&y))
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    fn pseudo_random(n: usize, k: usize, seed: u64) -> Array2<f64> {
        crate::eigen::random_block(n, k, seed)
    }

    #[test]
    fn eigh_by_hand_and_by_reconstruction() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1 with eigenvectors (1, ±1)/√2.
        let (values, vectors) = eigh(array![[2.0, 1.0], [1.0, 2.0]].view());
        assert!((values[0] - 3.0).abs() < 1e-14 && (values[1] - 1.0).abs() < 1e-14);
        assert!((vectors[[0, 0]].abs() - 0.5f64.sqrt()).abs() < 1e-14);
        // A random symmetric matrix is V Λ Vᵀ with orthonormal V.
        let b = pseudo_random(12, 12, 3);
        let a = &b + &b.t();
        let (values, v) = eigh(a.view());
        let back = v.dot(&Array2::from_diag(&values)).dot(&v.t());
        assert!((back - &a).iter().all(|d| d.abs() < 1e-11));
        assert!(
            (v.t().dot(&v) - Array2::<f64>::eye(12))
                .iter()
                .all(|d| d.abs() < 1e-12)
        );
        assert!(values.windows(2).into_iter().all(|w| w[0] >= w[1]));
    }

    #[test]
    fn orthonormal_basis_spans_the_same_space() {
        let x = pseudo_random(20, 4, 5);
        let q = orthonormalize(x.view());
        assert!(
            (q.t().dot(&q) - Array2::<f64>::eye(4))
                .iter()
                .all(|d| d.abs() < 1e-13)
        );
        // x = Q Qᵀ x when the spans agree.
        assert!((q.dot(&q.t().dot(&x)) - &x).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn least_squares_recovers_an_exact_fit_and_projects_otherwise() {
        // Y = XB exactly: the solution is B.
        let x = pseudo_random(30, 3, 11);
        let b = array![[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]];
        let w = least_squares(x.view(), x.dot(&b).view());
        assert!((w - &b).iter().all(|d| d.abs() < 1e-10));
        // y = (1, 2, 3) on x = (1, 1, 1): the best constant is the mean, 2 (by hand).
        let w = least_squares(
            array![[1.0], [1.0], [1.0]].view(),
            array![[1.0], [2.0], [3.0]].view(),
        );
        assert!((w[[0, 0]] - 2.0).abs() < 1e-14);
        // A duplicated column: the minimum-norm solution splits the weight evenly.
        let w = least_squares(
            array![[1.0, 1.0], [2.0, 2.0]].view(),
            array![[2.0], [4.0]].view(),
        );
        assert!((w[[0, 0]] - 1.0).abs() < 1e-12 && (w[[1, 0]] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn singular_values_of_a_scaled_orthonormal_matrix() {
        // Columns of Q scaled by 3 and 0.5: singular values 3 and 0.5.
        let q = orthonormalize(pseudo_random(10, 2, 7).view());
        let x = &q * &array![[3.0, 0.5]];
        let sv = singular_values(x.view());
        assert!((sv[0] - 3.0).abs() < 1e-12 && (sv[1] - 0.5).abs() < 1e-12);
    }
}
