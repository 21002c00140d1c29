//! InfoNCE / NT-Xent for `m ≥ 2` views per sample.
//!
//! ```text
//! z̃ᵣ = zᵣ / max(‖zᵣ‖, ε)                       cosine geometry
//! sᵣₜ = z̃ᵣ·z̃ₜ / τ,   sᵣᵣ masked out (−∞)       self-similarity never enters
//! ℓᵣ = −1/(m−1) · Σ_{t ∈ P(r)} log softmaxₜ(sᵣ·)  P(r): the other views of r's sample
//! L  = Σᵣ wᵣ ℓᵣ / Σᵣ wᵣ                           w ≡ 1 unless weights are given
//! ```
//! Every view is an anchor, so the loss is symmetric in the views. With `m > 2` each positive
//! is its own target and the other positives stay in the denominator (the supervised-
//! contrastive form with sample ids as labels).

use tch::{Kind, Tensor};

use crate::{LossError, normalize_rows};

/// InfoNCE with temperature τ over `views` views per sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InfoNce {
    /// The temperature τ > 0.
    pub temperature: f64,
    /// Views per sample, m ≥ 2.
    pub views: usize,
}

impl InfoNce {
    /// Checks the parameters once.
    ///
    /// # Errors
    /// [`LossError::Parameter`] when τ ≤ 0 (or not finite) or `views < 2`.
    pub fn new(temperature: f64, views: usize) -> Result<Self, LossError> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(LossError::Parameter(format!(
                "temperature = {temperature}: expected a finite value > 0"
            )));
        }
        if views < 2 {
            return Err(LossError::Parameter(format!(
                "views = {views}: a contrastive loss needs at least 2 views per sample"
            )));
        }
        Ok(Self { temperature, views })
    }

    /// The loss of each anchor, `ℓᵣ` above, computed in f32 (or f64 for f64 input).
    ///
    /// # Shapes
    /// `z`: `[m·N, d]`, view-major; returns `[m·N]`.
    ///
    /// # Errors
    /// [`LossError::Shape`] for an empty batch, a tensor that is not 2-D, or a row count
    /// that is not a multiple of `views`.
    pub fn per_anchor(&self, z: &Tensor) -> Result<Tensor, LossError> {
        let rows = self.check(z)?;
        let kind = if z.kind() == Kind::Double {
            Kind::Double
        } else {
            Kind::Float
        };
        let z = normalize_rows(&z.to_kind(kind));
        let eye = Tensor::eye(rows, (Kind::Bool, z.device()));
        let logits = z.mm(&z.tr()) / self.temperature;
        let log_prob = logits
            .masked_fill(&eye, f64::NEG_INFINITY)
            .log_softmax(1, kind);
        let n = rows / self.views as i64;
        let ids = Tensor::arange(rows, (Kind::Int64, z.device())).remainder(n);
        let positive = ids
            .unsqueeze(0)
            .eq_tensor(&ids.unsqueeze(1))
            .logical_and(&eye.logical_not());
        let picked = log_prob.masked_fill(&positive.logical_not(), 0.0);
        let sum = picked.sum_dim_intlist([1i64].as_slice(), false, kind);
        Ok(sum / -((self.views - 1) as f64))
    }

    /// The loss, the (weighted) mean of [`per_anchor`](Self::per_anchor).
    ///
    /// # Shapes
    /// `z`: `[m·N, d]`; `weights`: `[m·N]`, non-negative, not all zero; returns a scalar.
    ///
    /// # Errors
    /// As [`per_anchor`](Self::per_anchor), and [`LossError::Shape`] for weights of the wrong
    /// length.
    pub fn loss(&self, z: &Tensor, weights: Option<&Tensor>) -> Result<Tensor, LossError> {
        let per_anchor = self.per_anchor(z)?;
        match weights {
            None => Ok(per_anchor.mean(per_anchor.kind())),
            Some(w) => {
                if w.size() != per_anchor.size() {
                    return Err(LossError::Shape(format!(
                        "weights of shape {:?}, expected [{}] (one per row of z)",
                        w.size(),
                        per_anchor.size()[0]
                    )));
                }
                let w = w.to_kind(per_anchor.kind());
                Ok((&per_anchor * &w).sum(per_anchor.kind()) / w.sum(per_anchor.kind()))
            }
        }
    }

    fn check(&self, z: &Tensor) -> Result<i64, LossError> {
        let size = z.size();
        let [rows, _d] = size[..] else {
            return Err(LossError::Shape(format!(
                "z of shape {size:?}: expected [views·N, d] with views = {}",
                self.views
            )));
        };
        if rows == 0 {
            return Err(LossError::Shape("empty batch: z has 0 rows".into()));
        }
        if rows % self.views as i64 != 0 {
            return Err(LossError::Shape(format!(
                "z has {rows} rows, not a multiple of views = {}: expected views·N rows, the \
                 views of sample i at rows i, N + i, …",
                self.views
            )));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 2])
    }

    fn loss(z: &Tensor, tau: f64) -> f64 {
        InfoNce::new(tau, 2)
            .unwrap()
            .loss(z, None)
            .unwrap()
            .double_value(&[])
    }

    #[test]
    fn matches_hand_computed_values() {
        // Views of sample i at rows i and N + i, N = 2. Each anchor's positive is identical
        // (similarity 1/τ) and both negatives orthogonal (0), so
        // ℓ = −log(e^{1/τ} / (e^{1/τ} + 2)) = log(1 + 2e^{−1/τ}).
        let z = t(&[[1., 0.], [0., 1.], [1., 0.], [0., 1.]]);
        assert!((loss(&z, 0.5) - (1.0 + 2.0 * (-2.0f64).exp()).ln()).abs() < 1e-6);
        assert!((loss(&z, 0.5) - 0.2395).abs() < 1e-4);
        assert!((loss(&z, 1.0) - 0.5514).abs() < 1e-4);
        assert!(loss(&z, 0.01).abs() < 1e-6);
    }

    #[test]
    fn orthogonal_positives_with_an_identical_negative() {
        // Rows [[1,0],[1,0],[0,1],[0,1]]: anchor 0's positive (row 2) is orthogonal, row 1 is
        // identical, row 3 orthogonal: ℓ = −log(1 / (1 + e^{1/τ} + 1)) = log(2 + e^{1/τ}).
        let z = t(&[[1., 0.], [1., 0.], [0., 1.], [0., 1.]]);
        assert!((loss(&z, 0.5) - (2.0 + 2f64.exp()).ln()).abs() < 1e-5);
        // τ = 0.01: log(2 + e^100) = 100 up to f32 rounding, and finite.
        let v = loss(&z, 0.01);
        assert!(v.is_finite() && (v - 100.0).abs() < 1e-3, "{v}");
    }

    #[test]
    fn degenerate_batches() {
        // One sample, two views: the positive is the only other row, so ℓ = −log 1 = 0.
        assert!(loss(&t(&[[1., 0.], [0., 1.]]), 0.5).abs() < 1e-7);
        // All 2N rows identical: every row gets the same logit, p = 1/(2N − 1).
        let same = t(&[[0.6, 0.8]; 6]);
        for tau in [0.1, 1.0, 7.0] {
            assert!((loss(&same, tau) - 5f64.ln()).abs() < 1e-5);
        }
        // An all-zero row normalises to zero instead of NaN.
        let zero = t(&[[0., 0.], [0., 1.], [1., 0.], [0., 1.]]);
        assert!(loss(&zero, 0.1).is_finite());
    }

    #[test]
    fn weights_of_one_change_nothing_and_select_anchors() {
        let z = Tensor::randn([8, 5], (Kind::Float, tch::Device::Cpu));
        let nce = InfoNce::new(0.3, 2).unwrap();
        let plain = nce.loss(&z, None).unwrap().double_value(&[]);
        let ones = Tensor::ones([8], (Kind::Float, tch::Device::Cpu));
        let weighted = nce.loss(&z, Some(&ones)).unwrap().double_value(&[]);
        assert!((plain - weighted).abs() < 1e-6);
        // A weight on anchor 3 alone gives anchor 3's own loss.
        let one_hot = Tensor::zeros([8], (Kind::Float, tch::Device::Cpu)).index_fill(
            0,
            &Tensor::from_slice(&[3i64]),
            1.0,
        );
        let only = nce.loss(&z, Some(&one_hot)).unwrap().double_value(&[]);
        let per_anchor = nce.per_anchor(&z).unwrap().double_value(&[3]);
        assert!((only - per_anchor).abs() < 1e-6);
    }

    #[test]
    fn bad_input_is_named() {
        let err = InfoNce::new(0.0, 2).unwrap_err().to_string();
        assert!(err.contains("temperature = 0"), "{err}");
        assert!(
            InfoNce::new(0.5, 1)
                .unwrap_err()
                .to_string()
                .contains("views = 1")
        );
        let nce = InfoNce::new(0.5, 3).unwrap();
        let err = nce
            .loss(&Tensor::zeros([4, 2], tch::kind::FLOAT_CPU), None)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("4 rows, not a multiple of views = 3"),
            "{err}"
        );
        let err = nce
            .loss(&Tensor::zeros([0, 2], tch::kind::FLOAT_CPU), None)
            .unwrap_err();
        assert!(err.to_string().contains("empty batch"), "{err}");
        let err = nce
            .loss(&Tensor::zeros([6], tch::kind::FLOAT_CPU), None)
            .unwrap_err();
        assert!(err.to_string().contains("shape [6]"), "{err}");
        let w = Tensor::ones([5], tch::kind::FLOAT_CPU);
        let z = Tensor::zeros([6, 2], tch::kind::FLOAT_CPU);
        let err = nce.loss(&z, Some(&w)).unwrap_err().to_string();
        assert!(err.contains("weights of shape [5], expected [6]"), "{err}");
    }
}
