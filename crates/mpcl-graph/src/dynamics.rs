//! The spectral contrastive loss in feature space and its gradient step as message passing
//! (science.md §2–3), with the metrics that track where the features go.
//!
//! ```text
//! L_sp(F) = −2 Tr(FᵀĀF) + ‖FFᵀ‖²_F        ∇L_sp = −4ĀF + 4FFᵀF
//! F ← F + η (ĀF − F(FᵀF))                  alignment: a GCN step on Ā
//!                                          uniformity: repulsion along FFᵀ
//! ```
//! Alignment alone converges to the top eigenvector (over-smoothing); uniformity alone keeps
//! span(F) fixed and shrinks each singular value by σ ← σ − ησ³; together they converge to
//! the top-k eigenspace of Ā.
//!
//! InfoNCE on a graph `A` normalised to total weight 1 (degrees `d = A·1 = P_d`):
//! ```text
//! L_nce(f) = −Σ A[x,x′] fₓ·fₓ′ + Σₓ dₓ log Σₓ′ dₓ′ exp(fₓ·fₓ′)
//! Â[x,x′]  = dₓ P_θ(x′|x)
//! P_θ(x′|x) = dₓ′ exp(fₓ·fₓ′) / Σₓ″ dₓ″ exp(fₓ·fₓ″)
//! ∇L_nce   = −2Af + (Â + Âᵀ)f          f ← f + η(2Af − (Â + Âᵀ)f)
//! ```
//! Training drives Â towards A. The class metrics of a trajectory are FIXME(#4).

use ndarray::{Array1, Array2, ArrayView2};

use crate::linalg::{orthonormalize, singular_values};
use crate::{CsrGraph, GraphError};

/// Which messages a step applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terms {
    /// `F ← F + ηĀF`.
    Alignment,
    /// `F ← F − ηF(FᵀF)`.
    Uniformity,
    /// Both.
    Both,
}

/// Rescaling after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renorm {
    /// Keep F as it is.
    None,
    /// Scale F to unit Frobenius norm.
    Global,
    /// Scale each row to unit norm (rows of zero stay zero).
    PerRow,
}

/// The spectral loss `−2 Tr(FᵀĀF) + ‖FFᵀ‖²_F`.
///
/// # Shapes
/// `f`: `[n, k]` with `n` the graph's node count.
pub fn spectral_loss(abar: &CsrGraph, f: ArrayView2<f64>) -> f64 {
    let af = abar.matmul(f);
    let gram = f.t().dot(&f);
    // ‖FFᵀ‖²_F = ‖FᵀF‖²_F: the k×k form is cheaper.
    -2.0 * (&f * &af).sum() + gram.iter().map(|x| x * x).sum::<f64>()
}

/// The gradient `−4ĀF + 4F(FᵀF)`.
///
/// # Shapes
/// `f`: `[n, k]`; returns `[n, k]`.
pub fn spectral_gradient(abar: &CsrGraph, f: ArrayView2<f64>) -> Array2<f64> {
    let gram = f.t().dot(&f);
    (f.dot(&gram) - abar.matmul(f)) * 4.0
}

/// One message-passing step of the spectral loss, then the chosen rescaling.
///
/// # Shapes
/// `f`: `[n, k]`, updated in place.
pub fn spectral_step(abar: &CsrGraph, f: &mut Array2<f64>, eta: f64, terms: Terms, renorm: Renorm) {
    let mut delta = Array2::zeros(f.dim());
    if terms != Terms::Uniformity {
        delta += &abar.matmul(f.view());
    }
    if terms != Terms::Alignment {
        let gram = f.t().dot(f);
        delta -= &f.dot(&gram);
    }
    f.scaled_add(eta, &delta);
    match renorm {
        Renorm::None => {}
        Renorm::Global => {
            let norm = f.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                *f /= norm;
            }
        }
        Renorm::PerRow => {
            for mut row in f.rows_mut() {
                let norm = row.dot(&row).sqrt();
                if norm > 0.0 {
                    row /= norm;
                }
            }
        }
    }
}

/// exp of the entropy of the normalised singular values: k for equal ones, 1 for rank one.
pub fn effective_rank(singular: &Array1<f64>) -> f64 {
    let total: f64 = singular.sum();
    if total <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = singular
        .iter()
        .map(|s| s / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}

/// The principal angles (radians, ascending) between span(X) and span(Y).
///
/// # Shapes
/// `x`: `[n, k]`, `y`: `[n, l]`; returns `[min(k, l)]`.
pub fn principal_angles(x: ArrayView2<f64>, y: ArrayView2<f64>) -> Array1<f64> {
    let (qx, qy) = (orthonormalize(x), orthonormalize(y));
    let overlap = qx.t().dot(&qy);
    let cosines = if overlap.nrows() >= overlap.ncols() {
        singular_values(overlap.view())
    } else {
        singular_values(overlap.t())
    };
    cosines.mapv(|c| c.clamp(-1.0, 1.0).acos())
}

/// The singular values of the features, descending.
///
/// # Shapes
/// `f`: `[n, k]`; returns `[k]`.
pub fn feature_spectrum(f: ArrayView2<f64>) -> Array1<f64> {
    singular_values(f)
}

/// `A / ΣA` for a dense, non-negative, symmetric adjacency.
///
/// # Errors
/// [`GraphError::Shape`] for a non-square matrix, [`GraphError::Parameter`] for a negative
/// entry, an asymmetric matrix or a zero total.
pub fn joint_distribution(a: ArrayView2<f64>) -> Result<Array2<f64>, GraphError> {
    let (n, m) = a.dim();
    if n != m {
        return Err(GraphError::Shape(format!(
            "adjacency of shape {n}×{m} is not square"
        )));
    }
    if let Some(((i, j), v)) = a
        .indexed_iter()
        .find(|(_, v)| !(**v >= 0.0 && v.is_finite()))
    {
        return Err(GraphError::Parameter(format!(
            "A[{i}, {j}] = {v}: weights must be ≥ 0"
        )));
    }
    if a.indexed_iter().any(|((i, j), v)| *v != a[[j, i]]) {
        return Err(GraphError::Parameter(
            "the adjacency is not symmetric".into(),
        ));
    }
    let total = a.sum();
    if total <= 0.0 {
        return Err(GraphError::Parameter("the adjacency has no edge".into()));
    }
    Ok(&a / total)
}

/// The model's affinity graph `Â[x, x′] = dₓ P_θ(x′|x)`, with `p` a joint distribution
/// (see [`joint_distribution`]).
///
/// # Shapes
/// `p`: `[n, n]`; `f`: `[n, k]`; returns `[n, n]`.
pub fn info_nce_affinity(p: ArrayView2<f64>, f: ArrayView2<f64>) -> Array2<f64> {
    let d = p.sum_axis(ndarray::Axis(1));
    let logits = f.dot(&f.t());
    let mut out = Array2::zeros(p.dim());
    for (x, (row, mut out_row)) in logits.rows().into_iter().zip(out.rows_mut()).enumerate() {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Array1<f64> = row
            .iter()
            .zip(&d)
            .map(|(s, dy)| dy * (s - max).exp())
            .collect();
        let total = weights.sum();
        out_row.assign(&(weights * (d[x] / total)));
    }
    out
}

/// The InfoNCE objective of the module docs.
///
/// # Shapes
/// `p`: `[n, n]` joint distribution; `f`: `[n, k]`.
pub fn info_nce_loss(p: ArrayView2<f64>, f: ArrayView2<f64>) -> f64 {
    let d = p.sum_axis(ndarray::Axis(1));
    let logits = f.dot(&f.t());
    let align = (&p * &logits).sum();
    let unif: f64 = logits
        .rows()
        .into_iter()
        .zip(&d)
        .map(|(row, dx)| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().zip(&d).map(|(s, dy)| dy * (s - max).exp()).sum();
            dx * (max + sum.ln())
        })
        .sum();
    unif - align
}

/// The gradient `−2Af + (Â + Âᵀ)f`.
///
/// # Shapes
/// `p`: `[n, n]`; `f`: `[n, k]`; returns `[n, k]`.
pub fn info_nce_gradient(p: ArrayView2<f64>, f: ArrayView2<f64>) -> Array2<f64> {
    let a_hat = info_nce_affinity(p, f);
    (&a_hat + &a_hat.t()).dot(&f) - p.dot(&f) * 2.0
}

/// One message-passing step of InfoNCE: `f ← f + η(2Af − (Â + Âᵀ)f)`, or one of its terms.
///
/// # Shapes
/// `p`: `[n, n]`; `f`: `[n, k]`, updated in place.
pub fn info_nce_step(p: ArrayView2<f64>, f: &mut Array2<f64>, eta: f64, terms: Terms) {
    let mut delta = Array2::zeros(f.dim());
    if terms != Terms::Uniformity {
        delta += &(p.dot(f) * 2.0);
    }
    if terms != Terms::Alignment {
        let a_hat = info_nce_affinity(p, f.view());
        delta -= &(&a_hat + &a_hat.t()).dot(f);
    }
    f.scaled_add(eta, &delta);
}

#[cfg(test)]
mod tests {
    use ndarray::s;

    use super::*;
    use crate::eigen::{EigenConfig, random_block, top_eigenpairs};
    use crate::testing::two_blocks;

    fn abar() -> CsrGraph {
        two_blocks(30, 0.4, 0.03, 11).sym_normalized().unwrap()
    }

    fn top3(g: &CsrGraph) -> crate::eigen::Eigen {
        top_eigenpairs(
            g,
            &EigenConfig {
                k: 3,
                tol: 1e-12,
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// Checks `grad` against central differences of `loss` at a few entries of `f`: with
    /// h = 1e-6 in f64 the truncation error is O(h²) and the rounding error about 1e-10.
    fn assert_gradient(
        loss: impl Fn(ArrayView2<f64>) -> f64,
        f: &Array2<f64>,
        grad: &Array2<f64>,
        entries: &[(usize, usize)],
    ) {
        let h = 1e-6;
        for &(i, j) in entries {
            let (mut up, mut down) = (f.clone(), f.clone());
            up[[i, j]] += h;
            down[[i, j]] -= h;
            let fd = (loss(up.view()) - loss(down.view())) / (2.0 * h);
            assert!(
                (fd - grad[[i, j]]).abs() < 1e-7,
                "({i}, {j}): {fd} vs {}",
                grad[[i, j]]
            );
        }
    }

    #[test]
    fn gradient_equals_central_differences() {
        let g = abar();
        let f = random_block(60, 3, 4) * 0.3;
        let grad = spectral_gradient(&g, f.view());
        assert_gradient(
            |f| spectral_loss(&g, f),
            &f,
            &grad,
            &[(0, 0), (17, 1), (59, 2), (31, 0)],
        );
    }

    #[test]
    fn alignment_alone_collapses_at_the_predicted_rate() {
        // F_t ∝ (I + ηĀ)ᵗF₀, so σ₂/σ₁ shrinks by (1 + ηλ₂)/(1 + ηλ₁) per step
        // once the third direction has died out (its share falls by (1 + ηλ₃)/(1 + ηλ₂) per
        // step, below 1e-6 after the first 100 steps here). Measured over the next 100 steps, while
        // σ₂/σ₁ is still far above the rounding floor of computing σ from FᵀF.
        let g = abar();
        let eig = top3(&g);
        let eta = 0.5;
        let rate = (1.0 + eta * eig.values[1]) / (1.0 + eta * eig.values[0]);
        let mut f = random_block(60, 2, 5);
        let ratio = |f: &Array2<f64>| {
            let s = feature_spectrum(f.view());
            s[1] / s[0]
        };
        for _ in 0..100 {
            spectral_step(&g, &mut f, eta, Terms::Alignment, Renorm::Global);
        }
        let before = ratio(&f);
        for _ in 0..100 {
            spectral_step(&g, &mut f, eta, Terms::Alignment, Renorm::Global);
        }
        let measured = (ratio(&f) / before).powf(1.0 / 100.0);
        assert!(
            (measured - rate).abs() < 1e-4,
            "rate {measured} vs predicted {rate}"
        );
        assert!(
            effective_rank(&feature_spectrum(f.view())) < 1.01,
            "collapsed to rank one"
        );
    }

    #[test]
    fn uniformity_alone_keeps_the_span() {
        // F(FᵀF) = UΣ³Vᵀ for F = UΣVᵀ: each singular value follows σ ← σ − ησ³ on
        // its own and the singular vectors stay, so span(F) = span(F₀).
        let g = abar();
        let f0 = random_block(60, 3, 6) * 0.2;
        let mut f = f0.clone();
        let mut predicted = feature_spectrum(f0.view());
        for _ in 0..300 {
            spectral_step(&g, &mut f, 0.3, Terms::Uniformity, Renorm::None);
            predicted.mapv_inplace(|s| s - 0.3 * s * s * s);
        }
        let angles = principal_angles(f.view(), f0.view());
        assert!(angles.iter().all(|&a| a < 1e-7), "{angles}");
        let measured = feature_spectrum(f.view());
        assert!(
            (measured - &predicted).iter().all(|d| d.abs() < 1e-10),
            "{predicted}"
        );
    }

    #[test]
    fn both_converge_to_the_top_eigenspace() {
        // A clear gap: two blocks give eigenvalues 1 and ≈0.8, the rest well below.
        let g = abar();
        let eig = top3(&g);
        assert!(eig.values[1] - eig.values[2] > 0.3, "gap {:?}", eig.values);
        let mut f = random_block(60, 2, 7) * 0.1;
        for _ in 0..3000 {
            spectral_step(&g, &mut f, 0.5, Terms::Both, Renorm::None);
        }
        let top2 = eig.vectors.slice(s![.., ..2]);
        let angles = principal_angles(f.view(), top2);
        assert!(angles.iter().all(|&a| a < 1e-3), "{angles}");
        // At the fixed point FᵀF has the top eigenvalues: σᵢ² = λᵢ.
        let s = feature_spectrum(f.view());
        assert!((s[0] * s[0] - eig.values[0]).abs() < 1e-6, "{s}");
    }

    #[test]
    fn info_nce_gradient_equals_central_differences() {
        let p = joint_distribution(abar().to_dense().view()).unwrap();
        let f = random_block(60, 3, 8);
        let grad = info_nce_gradient(p.view(), f.view());
        assert_gradient(
            |f| info_nce_loss(p.view(), f),
            &f,
            &grad,
            &[(0, 0), (22, 2), (59, 1)],
        );
    }

    #[test]
    fn info_nce_drives_the_affinity_towards_the_graph() {
        // Â sums to 1 like A; descent on the loss shrinks ‖Â − A‖ while ‖f‖ grows (A
        // has zeros, which exp never reaches).
        let p = joint_distribution(two_blocks(15, 0.5, 0.05, 12).to_dense().view()).unwrap();
        let mut f = random_block(30, 4, 9) * 0.1;
        let gap = |f: &Array2<f64>| {
            let a_hat = info_nce_affinity(p.view(), f.view());
            assert!((a_hat.sum() - 1.0).abs() < 1e-12);
            (a_hat - &p).iter().map(|x| x * x).sum::<f64>().sqrt()
        };
        let norm = |f: &Array2<f64>| f.iter().map(|x| x * x).sum::<f64>().sqrt();
        let (gap0, norm0) = (gap(&f), norm(&f));
        let mut loss = info_nce_loss(p.view(), f.view());
        for _ in 0..20 {
            for _ in 0..50 {
                info_nce_step(p.view(), &mut f, 2.0, Terms::Both);
            }
            // Gradient descent with a small enough step: the loss never rises.
            let now = info_nce_loss(p.view(), f.view());
            assert!(now < loss, "the loss went from {loss} to {now}");
            loss = now;
        }
        // Measured: 0.048 → 0.035 over these 1000 steps; the rest is the part of A's zeros
        // that finite features cannot reach.
        let last = gap(&f);
        assert!(last < 0.8 * gap0, "{gap0} → {last}");
        assert!(norm(&f) > norm0);
    }

    #[test]
    fn joint_distribution_rejects_bad_graphs() {
        let bad = ndarray::array![[0.0, 1.0], [2.0, 0.0]];
        assert!(
            joint_distribution(bad.view())
                .unwrap_err()
                .to_string()
                .contains("symmetric")
        );
        let neg = ndarray::array![[0.0, -1.0], [-1.0, 0.0]];
        assert!(
            joint_distribution(neg.view())
                .unwrap_err()
                .to_string()
                .contains("A[0, 1]")
        );
    }

    #[test]
    fn effective_rank_and_angles_by_hand() {
        assert!((effective_rank(&Array1::from(vec![1.0, 1.0, 1.0])) - 3.0).abs() < 1e-12);
        assert!((effective_rank(&Array1::from(vec![2.0, 0.0])) - 1.0).abs() < 1e-12);
        // span{e₀} against span{(cos θ, sin θ)}: the angle is θ.
        let x = ndarray::array![[1.0], [0.0]];
        let y = ndarray::array![[0.6f64.cos()], [0.6f64.sin()]];
        assert!((principal_angles(x.view(), y.view())[0] - 0.6).abs() < 1e-12);
    }
}
