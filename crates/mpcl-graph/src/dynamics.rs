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
//! Training drives Â towards A.
//!
//! Every update is generic over the weight type (f32 or f64, [`Real`]) and the graph
//! ([`Adjacency`]: a sparse [`CsrGraph`](crate::CsrGraph) or a dense `Array2`); products with
//! the graph run row-parallel on rayon for CSR. InfoNCE's Â is dense by nature (exp never
//! vanishes), so its uniformity term costs O(n²k) on either graph type. The metrics below
//! work in f64 on features of either type; [`trajectory`](crate::trajectory) records them
//! along a run.

use ndarray::parallel::prelude::*;
use ndarray::{Array1, Array2, ArrayView2, Axis};

use crate::linalg::{orthonormalize, singular_values};
use crate::{Adjacency, GraphError, Real};

/// Which messages a step applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terms {
    /// Alignment only: `F ← F + ηĀF` (spectral), `f ← f + 2ηAf` (InfoNCE).
    Alignment,
    /// Uniformity only: `F ← F − ηF(FᵀF)` (spectral),
    /// `f ← f − η(Â + Âᵀ)f` (InfoNCE).
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
pub fn spectral_loss<T: Real>(abar: &impl Adjacency<T>, f: ArrayView2<T>) -> T {
    let af = abar.matmul(f);
    let gram = f.t().dot(&f);
    // ‖FFᵀ‖²_F = ‖FᵀF‖²_F: the k×k form is cheaper.
    let two = T::of(2.0);
    -two * (&f * &af).sum() + gram.iter().map(|&x| x * x).sum::<T>()
}

/// The gradient `−4ĀF + 4F(FᵀF)`.
///
/// # Shapes
/// `f`: `[n, k]`; returns `[n, k]`.
pub fn spectral_gradient<T: Real>(abar: &impl Adjacency<T>, f: ArrayView2<T>) -> Array2<T> {
    let gram = f.t().dot(&f);
    (f.dot(&gram) - abar.matmul(f)) * T::of(4.0)
}

/// One message-passing step of the spectral loss, then the chosen rescaling.
///
/// # Shapes
/// `f`: `[n, k]`, updated in place.
pub fn spectral_step<T: Real>(
    abar: &impl Adjacency<T>,
    f: &mut Array2<T>,
    eta: T,
    terms: Terms,
    renorm: Renorm,
) {
    let step = Step { eta, terms, renorm };
    step.apply(f, |f| abar.matmul(f), |f| f.dot(&f.t().dot(&f)));
}

/// The frame both message-passing rules share: `f ← f + η(alignment − uniformity)` with
/// the terms the caller keeps, then the rescaling.
struct Step<T> {
    eta: T,
    terms: Terms,
    renorm: Renorm,
}

impl<T: Real> Step<T> {
    /// # Shapes
    /// `f` and both messages: `[n, k]`.
    fn apply(
        &self,
        f: &mut Array2<T>,
        alignment: impl FnOnce(ArrayView2<T>) -> Array2<T>,
        uniformity: impl FnOnce(ArrayView2<T>) -> Array2<T>,
    ) {
        let mut delta = Array2::zeros(f.dim());
        if self.terms != Terms::Uniformity {
            delta += &alignment(f.view());
        }
        if self.terms != Terms::Alignment {
            delta -= &uniformity(f.view());
        }
        f.scaled_add(self.eta, &delta);
        renormalize(f, self.renorm);
    }
}

/// Rescales `f` in place as `renorm` says.
///
/// # Shapes
/// `f`: `[n, k]`.
pub fn renormalize<T: Real>(f: &mut Array2<T>, renorm: Renorm) {
    let norm = |x: ndarray::ArrayView1<T>| x.dot(&x).sqrt();
    match renorm {
        Renorm::None => {}
        Renorm::Global => {
            let total = f.iter().map(|&x| x * x).sum::<T>().sqrt();
            if total > T::zero() {
                f.mapv_inplace(|x| x / total);
            }
        }
        Renorm::PerRow => f.rows_mut().into_iter().for_each(|mut row| {
            let r = norm(row.view());
            if r > T::zero() {
                row.mapv_inplace(|x| x / r);
            }
        }),
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

/// The singular values of the features, descending, computed in f64.
///
/// # Shapes
/// `f`: `[n, k]`; returns `[k]`.
pub fn feature_spectrum<T: Real>(f: ArrayView2<T>) -> Array1<f64> {
    singular_values(f.mapv(T::widen).view())
}

/// `A / ΣA` for a non-negative, symmetric graph, dense or sparse: the joint distribution of
/// a positive pair, with degrees `d = P_d`.
///
/// # Errors
/// As [`Adjacency::check_symmetric`], and [`GraphError::Parameter`] for a graph without
/// edges.
pub fn joint_distribution<T: Real, G: Adjacency<T>>(a: &G) -> Result<G, GraphError> {
    a.check_symmetric()?;
    let total: T = a.degrees().into_iter().sum();
    if total <= T::zero() {
        return Err(GraphError::Parameter("the adjacency has no edge".into()));
    }
    Ok(a.scaled(total.recip()))
}

/// The model's affinity graph `Â[x, x′] = dₓ P_θ(x′|x)`, with `p` a joint distribution
/// (see [`joint_distribution`]); rows in parallel.
///
/// # Shapes
/// `p`: `n` nodes; `f`: `[n, k]`; returns `[n, n]`.
pub fn info_nce_affinity<T: Real>(p: &impl Adjacency<T>, f: ArrayView2<T>) -> Array2<T> {
    let d = p.degrees();
    let mut out = f.dot(&f.t());
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(&d)
        .for_each(|(mut row, &dx)| {
            let max = row.iter().copied().fold(T::neg_infinity(), T::max);
            row.iter_mut()
                .zip(&d)
                .for_each(|(s, &dy)| *s = dy * (*s - max).exp());
            let total = row.sum();
            row.mapv_inplace(|w| w * dx / total);
        });
    out
}

/// The InfoNCE objective of the module docs.
///
/// # Shapes
/// `p`: `n` nodes, a joint distribution; `f`: `[n, k]`.
pub fn info_nce_loss<T: Real>(p: &impl Adjacency<T>, f: ArrayView2<T>) -> T {
    let d = p.degrees();
    let align = (&f * &p.matmul(f)).sum();
    let logits = f.dot(&f.t());
    let unif: T = logits
        .rows()
        .into_iter()
        .zip(&d)
        .map(|(row, &dx)| {
            let max = row.iter().copied().fold(T::neg_infinity(), T::max);
            let sum: T = row
                .iter()
                .zip(&d)
                .map(|(&s, &dy)| dy * (s - max).exp())
                .sum();
            dx * (max + sum.ln())
        })
        .sum();
    unif - align
}

/// The gradient `−2Af + (Â + Âᵀ)f`.
///
/// # Shapes
/// `p`: `n` nodes; `f`: `[n, k]`; returns `[n, k]`.
pub fn info_nce_gradient<T: Real>(p: &impl Adjacency<T>, f: ArrayView2<T>) -> Array2<T> {
    uniformity_message(p, f) - p.matmul(f) * T::of(2.0)
}

/// InfoNCE's repulsion `(Â + Âᵀ)f`.
fn uniformity_message<T: Real>(p: &impl Adjacency<T>, f: ArrayView2<T>) -> Array2<T> {
    let a_hat = info_nce_affinity(p, f);
    a_hat.dot(&f) + a_hat.t().dot(&f)
}

/// One message-passing step of InfoNCE: `f ← f + η(2Af − (Â + Âᵀ)f)`, or one of its terms,
/// then the chosen rescaling.
///
/// # Shapes
/// `p`: `n` nodes; `f`: `[n, k]`, updated in place.
pub fn info_nce_step<T: Real>(
    p: &impl Adjacency<T>,
    f: &mut Array2<T>,
    eta: T,
    terms: Terms,
    renorm: Renorm,
) {
    let step = Step { eta, terms, renorm };
    step.apply(
        f,
        |f| p.matmul(f) * T::of(2.0),
        |f| uniformity_message(p, f),
    );
}

/// `‖Â − A‖_F`: how far the model's affinity graph is from the joint distribution `p`.
///
/// # Shapes
/// `p`: `n` nodes; `f`: `[n, k]`.
pub fn affinity_gap<T: Real>(p: &impl Adjacency<T>, f: ArrayView2<T>) -> f64 {
    let a = p.to_dense();
    let a_hat = info_nce_affinity(p, f);
    a_hat
        .iter()
        .zip(&a)
        .map(|(x, y)| (x.widen() - y.widen()).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use ndarray::s;

    use super::*;
    use crate::CsrGraph;
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
        let p = joint_distribution(&abar().to_dense()).unwrap();
        let f = random_block(60, 3, 8);
        let grad = info_nce_gradient(&p, f.view());
        assert_gradient(
            |f| info_nce_loss(&p, f),
            &f,
            &grad,
            &[(0, 0), (22, 2), (59, 1)],
        );
    }

    #[test]
    fn info_nce_drives_the_affinity_towards_the_graph() {
        // Â sums to 1 like A; descent on the loss shrinks ‖Â − A‖ while ‖f‖ grows (A
        // has zeros, which exp never reaches).
        let p = joint_distribution(&two_blocks(15, 0.5, 0.05, 12)).unwrap();
        let mut f = random_block(30, 4, 9) * 0.1;
        let gap = |f: &Array2<f64>| {
            let a_hat = info_nce_affinity(&p, f.view());
            assert!((a_hat.sum() - 1.0).abs() < 1e-12);
            affinity_gap(&p, f.view())
        };
        let norm = |f: &Array2<f64>| f.iter().map(|x| x * x).sum::<f64>().sqrt();
        let (gap0, norm0) = (gap(&f), norm(&f));
        let mut loss = info_nce_loss(&p, f.view());
        for _ in 0..20 {
            for _ in 0..50 {
                info_nce_step(&p, &mut f, 2.0, Terms::Both, Renorm::None);
            }
            // Gradient descent with a small enough step: the loss never rises.
            let now = info_nce_loss(&p, f.view());
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
            joint_distribution(&bad)
                .unwrap_err()
                .to_string()
                .contains("symmetric")
        );
        let neg = ndarray::array![[0.0, -1.0], [-1.0, 0.0]];
        assert!(
            joint_distribution(&neg)
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
