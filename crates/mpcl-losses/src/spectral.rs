//! The spectral contrastive loss (HaoChen et al., 2021) on a batch:
//!
//! ```text
//! L = −2 · mean_{(r,t) ∈ P} zᵣ·zₜ  +  μ · mean_{(r,t) ∈ N} (zᵣ·zₜ)²
//! ```
//! `P`: ordered pairs of distinct views of one sample; `N`: ordered pairs of views of
//! different samples. Embeddings are used as they are (no normalisation): the loss itself
//! bounds their scale. Its population form is −2 Tr(FᵀĀF) + ‖FFᵀ‖²_F (science.md §2),
//! and with `G = zzᵀ` the gradient splits into
//! ```text
//! ∂L/∂z = −(4/|P|) 1_P z  +  (4μ/|N|) (1_N ∘ G) z
//!           alignment         uniformity
//! ```

use tch::{Kind, Tensor};

use crate::{GradientSplit, LossError, check_layout, check_views, positive_mask};

/// The spectral contrastive loss over `views` views per sample, uniformity weighted by μ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spectral {
    /// Views per sample, m ≥ 2.
    pub views: usize,
    /// The weight μ ≥ 0 of the uniformity term (1 in the original loss).
    pub mu: f64,
}

impl Spectral {
    /// Checks the parameters once.
    ///
    /// # Errors
    /// [`LossError::Parameter`] when `views < 2` or μ is negative or not finite.
    pub fn new(views: usize, mu: f64) -> Result<Self, LossError> {
        check_views(views)?;
        if !(mu >= 0.0 && mu.is_finite()) {
            return Err(LossError::Parameter(format!(
                "mu = {mu}: expected a finite value ≥ 0"
            )));
        }
        Ok(Self { views, mu })
    }

    /// `(z, G, 1_P, 1_N)` in the working precision.
    fn parts(&self, z: &Tensor) -> Result<(Tensor, Tensor, Tensor, Tensor), LossError> {
        let (rows, n) = check_layout(z, self.views, "z")?;
        if n == 1 {
            return Err(LossError::Shape(
                "the spectral loss needs at least 2 samples: with 1 sample there is no \
                 negative pair"
                    .into(),
            ));
        }
        let z = z.to_kind(crate::work_kind(z));
        let positive = positive_mask(rows, n, z.device());
        let ids = Tensor::arange(rows, (Kind::Int64, z.device())).remainder(n);
        let negative = ids.unsqueeze(0).ne_tensor(&ids.unsqueeze(1));
        let gram = z.mm(&z.tr());
        let kind = gram.kind();
        Ok((z, gram, positive.to_kind(kind), negative.to_kind(kind)))
    }

    /// The loss.
    ///
    /// # Shapes
    /// `z`: `[m·N, d]` view-major; returns a scalar.
    ///
    /// # Errors
    /// [`LossError::Shape`] for a batch that is not `[m·N, d]` or has a single sample.
    pub fn loss(&self, z: &Tensor) -> Result<Tensor, LossError> {
        let (_, gram, pos, neg) = self.parts(z)?;
        let kind = gram.kind();
        let align = (&gram * &pos).sum(kind) / pos.sum(kind);
        let unif = (gram.square() * &neg).sum(kind) / neg.sum(kind);
        Ok(align * -2.0 + unif * self.mu)
    }

    /// The gradient of [`loss`](Self::loss) with respect to `z`, split into its messages.
    ///
    /// # Shapes
    /// `z`: `[m·N, d]`; both parts `[m·N, d]`.
    ///
    /// # Errors
    /// As [`loss`](Self::loss).
    pub fn gradient_split(&self, z: &Tensor) -> Result<GradientSplit, LossError> {
        tch::no_grad(|| {
            let (z, gram, pos, neg) = self.parts(&z.detach())?;
            let kind = gram.kind();
            let alignment = pos.mm(&z) * (-4.0 / pos.sum(kind).double_value(&[]));
            let scale = 4.0 * self.mu / neg.sum(kind).double_value(&[]);
            let uniformity = (neg * gram).mm(&z) * scale;
            Ok(GradientSplit {
                alignment,
                uniformity,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_value() {
        // N = 2, views (1, 0) and (2, 0) of sample 0, (0, 1) and (0, 3) of sample 1.
        // Positive dots: 2 (twice, both orders) and 3 (twice): mean 2.5, term −5.
        // Negative dots are all 0: L = −5 for any μ.
        let z = Tensor::from_slice(&[1.0f64, 0., 0., 1., 2., 0., 0., 3.]).view([4, 2]);
        let l = Spectral::new(2, 1.0)
            .unwrap()
            .loss(&z)
            .unwrap()
            .double_value(&[]);
        assert!((l + 5.0).abs() < 1e-12, "{l}");
        // Rotate sample 1 onto sample 0's direction: every negative dot (1·1, 1·3, 2·1, 2·3,
        // each in both orders) enters squared: mean(1, 9, 4, 36) = 12.5, so μ = 0.5 adds 6.25.
        let z = Tensor::from_slice(&[1.0f64, 0., 1., 0., 2., 0., 3., 0.]).view([4, 2]);
        let l = Spectral::new(2, 0.5)
            .unwrap()
            .loss(&z)
            .unwrap()
            .double_value(&[]);
        assert!((l - (-5.0 + 6.25)).abs() < 1e-12, "{l}");
    }

    #[test]
    fn gradient_split_sums_to_autograd() {
        tch::manual_seed(6);
        for views in [2, 3] {
            let z =
                Tensor::randn([5 * views as i64, 4], tch::kind::DOUBLE_CPU).set_requires_grad(true);
            let loss = Spectral::new(views, 0.7).unwrap();
            loss.loss(&z).unwrap().backward();
            let split = loss.gradient_split(&z).unwrap();
            let diff = (split.alignment + split.uniformity - z.grad()).abs().max();
            assert!(diff.double_value(&[]) < 1e-12, "m = {views}");
        }
    }

    #[test]
    fn bad_input_is_named() {
        assert!(
            Spectral::new(2, -1.0)
                .unwrap_err()
                .to_string()
                .contains("mu = -1")
        );
        let one = Tensor::ones([2, 3], tch::kind::FLOAT_CPU);
        let err = Spectral::new(2, 1.0)
            .unwrap()
            .loss(&one)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 2 samples"), "{err}");
    }
}
