//! Representation diagnostics of a frozen encoder: Wang & Isola's (2020) alignment of paired
//! views and uniformity of the features (computed by `mpcl_losses`), the singular value
//! spectrum of the feature matrix, and its effective rank (Roy & Vetterli 2007):
//!
//! ```text
//! pₖ = σₖ / Σⱼ σⱼ          σ: singular values of the [n, D] features, uncentred
//! erank = exp(−Σₖ pₖ log pₖ)    1 ≤ erank ≤ min(n, D)
//! ```
//! The effective rank is min(n, D) when all singular values are equal (orthonormal features)
//! and 1 for a rank-one matrix; a representation whose effective rank falls below a set
//! fraction of min(n, D) is flagged as collapsed. The spectrum is of the raw features (no
//! centring), so features that all equal one vector count as rank one, not as zero.

use mpcl_losses::{LossError, alignment, uniformity};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The diagnostics' settings (`[eval.diagnostics]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct DiagnosticsConfig {
    /// Test images used for alignment (pairs of augmented views) and for uniformity, whose
    /// cost grows as samples². Default 2048.
    pub samples: usize,
    /// A representation whose effective rank is below this fraction of min(n, D) is flagged
    /// as collapsed. Default 0.05.
    pub collapse_fraction: f64,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        Self {
            samples: 2048,
            collapse_fraction: 0.05,
        }
    }
}

/// The diagnostics of one representation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Mean ‖f̂(x) − f̂(x′)‖² over paired views (0 = perfectly aligned, at most 4).
    pub alignment: f64,
    /// log mean_{i≠j} exp(−2‖f̂ᵢ − f̂ⱼ‖²) over distinct features (lower: more
    /// uniform).
    pub uniformity: f64,
    /// Singular values of the feature matrix, largest first.
    pub singular_values: Vec<f64>,
    /// exp of the entropy of the normalised singular values.
    pub effective_rank: f64,
    /// min(n, D): the largest possible rank.
    pub max_rank: usize,
    /// Whether the effective rank is below the configured fraction of `max_rank`.
    pub collapsed: bool,
}

impl Diagnostics {
    /// A warning for a collapsed representation, `None` otherwise.
    pub fn warning(&self) -> Option<String> {
        self.collapsed.then(|| {
            format!(
                "dimensional collapse: effective rank {:.1} of at most {}",
                self.effective_rank, self.max_rank
            )
        })
    }
}

/// The singular values of `features`, largest first, computed in double precision.
///
/// # Shapes
/// `features`: `[n, D]`; returns min(n, D) values.
pub fn singular_values(features: &Tensor) -> Vec<f64> {
    let (_, s, _) = tch::no_grad(|| features.to_kind(Kind::Double).svd(true, false));
    Vec::<f64>::try_from(s).expect("singular values are a 1-D double tensor")
}

/// exp of the entropy of the singular values normalised to sum 1 (0 log 0 = 0); 0 when all
/// are 0.
pub fn effective_rank(singular_values: &[f64]) -> f64 {
    let total: f64 = singular_values.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = singular_values
        .iter()
        .map(|&s| s / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}

/// Alignment of the paired `views`, uniformity of the first `cfg.samples` rows of `features`,
/// and the spectrum and effective rank of all of `features`.
///
/// # Shapes
/// `views`: two `[N, D]` tensors whose row i holds two views of one image; `features`:
/// `[n, D]` with n ≥ 2.
///
/// # Errors
/// [`LossError::Shape`] for views of different shapes or fewer than two features.
pub fn diagnose(
    views: (&Tensor, &Tensor),
    features: &Tensor,
    cfg: &DiagnosticsConfig,
) -> Result<Diagnostics, LossError> {
    if views.0.size() != views.1.size() {
        return Err(LossError::Shape(format!(
            "paired views of shapes {:?} and {:?}",
            views.0.size(),
            views.1.size()
        )));
    }
    let n = features.size()[0];
    let sample = features.narrow(0, 0, n.min(cfg.samples.max(2) as i64));
    let (align, unif) = tch::no_grad(|| -> Result<_, LossError> {
        let pairs = Tensor::cat(&[views.0, views.1], 0).to_kind(Kind::Double);
        Ok((
            alignment(&pairs, 2, 2.0)?.double_value(&[]),
            uniformity(&sample.to_kind(Kind::Double), 2.0)?.double_value(&[]),
        ))
    })?;
    let singular_values = singular_values(features);
    let effective_rank = effective_rank(&singular_values);
    let max_rank = singular_values.len();
    Ok(Diagnostics {
        alignment: align,
        uniformity: unif,
        collapsed: effective_rank < cfg.collapse_fraction * max_rank as f64,
        singular_values,
        effective_rank,
        max_rank,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn orthonormal_features_have_full_rank() {
        // Oracle: the rows of an orthogonal Q (from a QR factorisation) are orthonormal,
        // so every singular value is 1, pₖ = 1/d and erank = exp(log d) = d.
        tch::manual_seed(3);
        let d = 16;
        let (q, _) = Tensor::linalg_qr(&Tensor::randn([d, d], tch::kind::DOUBLE_CPU), "reduced");
        let s = singular_values(&q);
        assert_eq!(s.len(), d as usize);
        assert!(s.iter().all(|&v| close(v, 1.0)), "{s:?}");
        assert!(close(effective_rank(&s), d as f64));
    }

    #[test]
    fn rank_one_features_have_rank_one() {
        // u vᵀ has one non-zero singular value ‖u‖‖v‖: p = (1, 0, …), entropy 0,
        // erank 1.
        // Identical rows (a collapsed encoder) are such a matrix with u = (1, …, 1).
        let u = Tensor::from_slice(&[1.0f64, -2.0, 0.5, 3.0, 1.0]).view([5, 1]);
        let v = Tensor::from_slice(&[0.3f64, 0.1, -0.7]).view([1, 3]);
        let s = singular_values(&u.mm(&v));
        // ‖u‖² = 1 + 4 + 0.25 + 9 + 1, ‖v‖² = 0.09 + 0.01 + 0.49.
        let norm = (15.25f64 * 0.59).sqrt();
        assert!(close(s[0], norm), "{s:?}");
        assert!((effective_rank(&s) - 1.0).abs() < 1e-6, "{s:?}");
        let cfg = DiagnosticsConfig {
            samples: 5,
            collapse_fraction: 0.5,
        };
        let same = Tensor::ones([5, 3], tch::kind::FLOAT_CPU);
        let diag = diagnose((&same, &same), &same, &cfg).unwrap();
        assert!(diag.collapsed && diag.warning().is_some(), "{diag:?}");
    }

    #[test]
    fn effective_rank_of_a_known_spectrum() {
        // σ = (3, 1): p = (¾, ¼), H = −(¾ ln ¾ + ¼ ln ¼) = 0.562335…,
        // erank = e^H = 1.754765… (by hand); diag(3, 1) has exactly these singular values.
        let h = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        assert!(close(effective_rank(&[3.0, 1.0]), h.exp()));
        assert!((h.exp() - 1.754_765).abs() < 1e-6);
        let m = Tensor::from_slice(&[3.0f64, 0.0, 0.0, 1.0]).view([2, 2]);
        assert!(close(effective_rank(&singular_values(&m)), h.exp()));
        assert_eq!(effective_rank(&[0.0, 0.0]), 0.0);
    }

    #[test]
    fn alignment_and_uniformity_of_fixed_points() {
        // Pairs (2e₁, e₁), (e₂, e₁), (−e₁, e₁): after normalisation the squared
        // distances are 0, 2 and 4, so alignment = 6/3 = 2. Uniformity of ±e₁, ±e₂: of
        // the 6 unordered pairs 2 are antipodal (‖·‖² = 4) and 4 orthogonal (‖·‖² = 2),
        // so log((2e⁻⁸ + 4e⁻⁴)/6). The four points span 2 dimensions with singular
        // values √2, √2: erank 2 of at most 2, not collapsed.
        let m = |v: &[f32]| Tensor::from_slice(v).view([-1, 2]);
        let a = m(&[2., 0., 0., 1., -1., 0.]);
        let b = m(&[1., 0., 1., 0., 1., 0.]);
        let f = m(&[1., 0., -1., 0., 0., 1., 0., -1.]);
        let diag = diagnose((&a, &b), &f, &DiagnosticsConfig::default()).unwrap();
        assert!(close(diag.alignment, 2.0), "{diag:?}");
        let expected = ((2.0 * (-8.0f64).exp() + 4.0 * (-4.0f64).exp()) / 6.0).ln();
        assert!((diag.uniformity - expected).abs() < 1e-9, "{diag:?}");
        assert!(close(diag.effective_rank, 2.0) && diag.max_rank == 2 && !diag.collapsed);
        assert!(diag.warning().is_none());
    }

    #[test]
    fn mismatched_views_are_rejected() {
        let a = Tensor::zeros([3, 2], tch::kind::FLOAT_CPU);
        let b = Tensor::zeros([4, 2], tch::kind::FLOAT_CPU);
        let err = diagnose((&a, &b), &a, &DiagnosticsConfig::default()).unwrap_err();
        assert!(err.to_string().contains("[3, 2] and [4, 2]"), "{err}");
    }
}
