//! InfoNCE / NT-Xent for `m ≥ 2` views per sample.
//!
//! ```text
//! uᵣ = zᵣ / max(‖zᵣ‖, ε)                        cosine geometry
//! sᵣₜ = uᵣ·uₜ / τ,   sᵣᵣ masked out (−∞)        self-similarity never enters
//! ℓᵣ = −1/(m−1) · Σ_{t ∈ P(r)} log pᵣₜ
//! pᵣₜ = exp sᵣₜ / Σ_{t′ ∈ D(r)} exp sᵣₜ′
//! L  = Σᵣ wᵣ ℓᵣ / Σᵣ wᵣ                            w ≡ 1 unless weights are given
//! ```
//! `P(r)` are the other views of r's sample. The denominator `D(r)` holds every other row;
//! in the decoupled form (Yeh et al., DCL) it holds the negatives only. Every view is an
//! anchor, so the loss is symmetric in the views. With `m > 2` each positive is its own target
//! and the other positives stay in the denominator (the supervised-contrastive form with
//! sample ids as labels).
//!
//! Aggregators may replace the positive keys (nearest-neighbour positives, mixed targets):
//! with keys `k`, `sᵣₜ = uᵣ·k̂ₜ / τ` for t ∈ P(r), where `k̂ = k/‖k‖`, and every
//! other logit is unchanged; keys equal to `z` give the plain loss.
//!
//! The gradient with respect to `u`, with `W = diag(w)/Σw`, `Ā = W·1_P/(m−1)` and
//! `Â = W·p` (rows of softmax affinities), is the paper's message-passing rule:
//! ```text
//! ∂L/∂u = (1/τ) · ( −(Ā + Āᵀ) u  +  (Â + Âᵀ) u )
//!                    alignment       uniformity
//! ```

use tch::{Kind, Tensor};

use crate::{GradientSplit, LossError, check_layout, check_views, normalize_rows, positive_mask};

/// InfoNCE with temperature τ over `views` views per sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InfoNce {
    /// The temperature τ > 0.
    pub temperature: f64,
    /// Views per sample, m ≥ 2.
    pub views: usize,
    /// Leave the positives out of the denominator (DCL).
    pub decoupled: bool,
}

/// The pieces of one evaluation that both the loss and its gradient split use.
struct Parts {
    /// `[R, R]` log pᵣₜ = sᵣₜ − log Σ_{D(r)} exp sᵣ·, −∞ on the diagonal.
    log_prob: Tensor,
    /// `[R, R]` true where t is not in r's denominator D(r).
    excluded: Tensor,
    /// `[R, R]` the positive mask.
    positive: Tensor,
    /// `[R, d]` the normalised embeddings.
    unit: Tensor,
}

impl InfoNce {
    /// Checks the parameters once; the coupled (standard) form.
    ///
    /// # Errors
    /// [`LossError::Parameter`] when τ ≤ 0 (or not finite) or `views < 2`.
    pub fn new(temperature: f64, views: usize) -> Result<Self, LossError> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(LossError::Parameter(format!(
                "temperature = {temperature}: expected a finite value > 0"
            )));
        }
        check_views(views)?;
        Ok(Self {
            temperature,
            views,
            decoupled: false,
        })
    }

    /// The same loss in the decoupled form.
    pub fn decoupled(self) -> Self {
        Self {
            decoupled: true,
            ..self
        }
    }

    fn parts(&self, z: &Tensor, keys: Option<&Tensor>) -> Result<Parts, LossError> {
        let (rows, n) = check_layout(z, self.views, "z")?;
        if let Some(k) = keys
            && k.size() != z.size()
        {
            return Err(LossError::Shape(format!(
                "positive keys of shape {:?}, expected {:?} (the shape of z)",
                k.size(),
                z.size()
            )));
        }
        if self.decoupled && n == 1 {
            return Err(LossError::Shape(
                "the decoupled form needs at least 2 samples: with 1 sample the denominator \
                 holds no negative"
                    .into(),
            ));
        }
        let kind = crate::work_kind(z);
        let unit = normalize_rows(&z.to_kind(kind));
        let positive = positive_mask(rows, n, z.device());
        let eye = Tensor::eye(rows, (Kind::Bool, z.device()));
        let excluded = if self.decoupled {
            eye.logical_or(&positive)
        } else {
            eye.shallow_clone()
        };
        let mut logits = unit.mm(&unit.tr()) / self.temperature;
        if let Some(k) = keys {
            let replaced = unit.mm(&normalize_rows(&k.to_kind(kind)).tr()) / self.temperature;
            logits = replaced.where_self(&positive, &logits);
        }
        let denominator = logits
            .masked_fill(&excluded, f64::NEG_INFINITY)
            .logsumexp([1i64].as_slice(), true);
        let log_prob = (logits - denominator).masked_fill(&eye, f64::NEG_INFINITY);
        Ok(Parts {
            log_prob,
            excluded,
            positive,
            unit,
        })
    }

    /// The loss of each anchor, `ℓᵣ` above, computed in f32 (or f64 for f64 input).
    ///
    /// # Shapes
    /// `z`: `[m·N, d]`, view-major; returns `[m·N]`.
    ///
    /// # Errors
    /// [`LossError::Shape`] for an empty batch, a tensor that is not 2-D, a row count that
    /// is not a multiple of `views`, or a single sample in the decoupled form.
    pub fn per_anchor(&self, z: &Tensor) -> Result<Tensor, LossError> {
        self.per_anchor_with_keys(z, None)
    }

    /// [`per_anchor`](Self::per_anchor) with the positives' keys replaced (module docs).
    ///
    /// # Shapes
    /// `z`, `keys`: `[m·N, d]`, view-major; returns `[m·N]`.
    ///
    /// # Errors
    /// As [`per_anchor`](Self::per_anchor), and [`LossError::Shape`] for keys whose shape is
    /// not that of `z`.
    pub fn per_anchor_with_keys(
        &self,
        z: &Tensor,
        keys: Option<&Tensor>,
    ) -> Result<Tensor, LossError> {
        let Parts {
            log_prob, positive, ..
        } = self.parts(z, keys)?;
        let picked = log_prob.masked_fill(&positive.logical_not(), 0.0);
        let sum = picked.sum_dim_intlist([1i64].as_slice(), false, picked.kind());
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
        self.loss_with_keys(z, weights, None)
    }

    /// [`loss`](Self::loss) with the positives' keys replaced (module docs).
    ///
    /// # Shapes
    /// `z`, `keys`: `[m·N, d]`; `weights`: `[m·N]`; returns a scalar.
    ///
    /// # Errors
    /// As [`loss`](Self::loss) and [`per_anchor_with_keys`](Self::per_anchor_with_keys).
    pub fn loss_with_keys(
        &self,
        z: &Tensor,
        weights: Option<&Tensor>,
        keys: Option<&Tensor>,
    ) -> Result<Tensor, LossError> {
        let per_anchor = self.per_anchor_with_keys(z, keys)?;
        let w = self.anchor_weights(&per_anchor, weights)?;
        Ok((&per_anchor * w).sum(per_anchor.kind()))
    }

    /// The normalised anchor weights `wᵣ/Σw` (uniform `1/R` without weights), with the kind
    /// and device of `like`, which has one row per anchor.
    fn anchor_weights(&self, like: &Tensor, weights: Option<&Tensor>) -> Result<Tensor, LossError> {
        let rows = like.size()[0];
        match weights {
            None => Ok(Tensor::full(
                [rows],
                1.0 / rows as f64,
                (like.kind(), like.device()),
            )),
            Some(w) if w.size() != [rows] => Err(LossError::Shape(format!(
                "weights of shape {:?}, expected [{rows}] (one per row of z)",
                w.size()
            ))),
            Some(w) => {
                let w = w.to_kind(like.kind());
                Ok(&w / w.sum(like.kind()))
            }
        }
    }

    /// The gradient of [`loss`](Self::loss) with respect to the normalised embeddings
    /// `u = z/‖z‖`, split into its alignment and uniformity messages (module docs).
    /// [`GradientSplit::through_normalization`] carries it to `z`.
    ///
    /// # Shapes
    /// `z`: `[m·N, d]`; `weights`: `[m·N]`; both parts `[m·N, d]`.
    ///
    /// # Errors
    /// As [`loss`](Self::loss).
    pub fn gradient_split(
        &self,
        z: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<GradientSplit, LossError> {
        tch::no_grad(|| {
            let Parts {
                log_prob,
                excluded,
                positive,
                unit,
            } = self.parts(&z.detach(), None)?;
            let kind = unit.kind();
            let w = self.anchor_weights(&unit, weights)?.unsqueeze(1);
            let graph = positive.to_kind(kind) * &w / (self.views - 1) as f64;
            let affinity = log_prob.exp().masked_fill(&excluded, 0.0) * &w;
            let message = |m: &Tensor| (m + m.tr()).mm(&unit) / self.temperature;
            Ok(GradientSplit {
                alignment: -message(&graph),
                uniformity: message(&affinity),
            })
        })
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
    fn replaced_keys_by_hand() {
        // Keys equal to z give the plain loss; keys that turn each positive orthogonal to its
        // anchor give, for the batch of `matches_hand_computed_values` at τ = 0.5 (negatives
        // orthogonal, positive now orthogonal too): ℓ = −log(1/3) = log 3.
        let z = t(&[[1., 0.], [0., 1.], [1., 0.], [0., 1.]]);
        let nce = InfoNce::new(0.5, 2).unwrap();
        let same = nce
            .loss_with_keys(&z, None, Some(&z))
            .unwrap()
            .double_value(&[]);
        assert!((same - loss(&z, 0.5)).abs() < 1e-7);
        let keys = t(&[[0., 1.], [1., 0.], [0., 1.], [1., 0.]]);
        let v = nce
            .loss_with_keys(&z, None, Some(&keys))
            .unwrap()
            .double_value(&[]);
        assert!((v - 3f64.ln()).abs() < 1e-6, "{v}");
        let err = nce
            .loss_with_keys(&z, None, Some(&t(&[[1., 0.]])))
            .unwrap_err();
        assert!(
            err.to_string().contains("positive keys of shape [1, 2]"),
            "{err}"
        );
    }

    #[test]
    fn decoupled_form_by_hand() {
        // The first batch above without the positive in the denominator: the two negatives
        // are orthogonal, so ℓ = −(1/τ) + log 2 = log 2 − 2 at τ = 0.5.
        let z = t(&[[1., 0.], [0., 1.], [1., 0.], [0., 1.]]);
        let dcl = InfoNce::new(0.5, 2).unwrap().decoupled();
        let v = dcl.loss(&z, None).unwrap().double_value(&[]);
        assert!((v - (2f64.ln() - 2.0)).abs() < 1e-5, "{v}");
        let err = dcl
            .loss(&t(&[[1., 0.], [0., 1.]]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 2 samples"), "{err}");
    }

    #[test]
    fn half_precision_input_is_computed_in_f32() {
        tch::manual_seed(4);
        let z = Tensor::randn([16, 8], tch::kind::FLOAT_CPU);
        let nce = InfoNce::new(0.1, 2).unwrap();
        let full = nce.loss(&z, None).unwrap();
        let half = nce.loss(&z.to_kind(Kind::Half), None).unwrap();
        assert_eq!(half.kind(), Kind::Float);
        // The inputs differ by f16 rounding (relative 2⁻¹¹), logits by at most about 1e-2.
        assert!((full.double_value(&[]) - half.double_value(&[])).abs() < 2e-2);
    }

    #[test]
    fn weights_of_one_change_nothing_and_select_anchors() {
        let z = Tensor::randn([8, 5], tch::kind::FLOAT_CPU);
        let nce = InfoNce::new(0.3, 2).unwrap();
        let plain = nce.loss(&z, None).unwrap().double_value(&[]);
        let ones = Tensor::ones([8], tch::kind::FLOAT_CPU);
        let weighted = nce.loss(&z, Some(&ones)).unwrap().double_value(&[]);
        assert!((plain - weighted).abs() < 1e-6);
        // A weight on anchor 3 alone gives anchor 3's own loss.
        let one_hot = Tensor::zeros([8], tch::kind::FLOAT_CPU).index_fill(
            0,
            &Tensor::from_slice(&[3i64]),
            1.0,
        );
        let only = nce.loss(&z, Some(&one_hot)).unwrap().double_value(&[]);
        let per_anchor = nce.per_anchor(&z).unwrap().double_value(&[3]);
        assert!((only - per_anchor).abs() < 1e-6);
    }

    #[test]
    fn gradient_split_sums_to_autograd() {
        // Autograd differentiates through the normalisation, so its gradient with respect
        // to z is the split's sum g projected per row: (g − (g·u)u)/‖z‖.
        // through_normalization does that projection.
        tch::manual_seed(5);
        for (views, decoupled, weighted) in [(2, false, false), (3, false, true), (2, true, true)] {
            let z =
                Tensor::randn([6 * views as i64, 7], tch::kind::DOUBLE_CPU).set_requires_grad(true);
            let w = Tensor::rand([6 * views as i64], tch::kind::DOUBLE_CPU) + 0.1;
            let w = weighted.then_some(&w);
            let mut nce = InfoNce::new(0.2, views).unwrap();
            nce.decoupled = decoupled;
            nce.loss(&z, w).unwrap().backward();
            let split = nce.gradient_split(&z, w).unwrap().through_normalization(&z);
            let projected = split.alignment + split.uniformity;
            let diff = (projected - z.grad()).abs().max().double_value(&[]);
            assert!(diff < 1e-10, "m = {views}, decoupled = {decoupled}: {diff}");
        }
    }

    #[test]
    fn autograd_matches_central_differences() {
        // f64 central differences with step 1e-6 have error O(h²) ≈ 1e-12 plus rounding
        // ≈ 1e-16/1e-6 = 1e-10 on a loss of order 1.
        tch::manual_seed(8);
        let z = Tensor::randn([8, 3], tch::kind::DOUBLE_CPU).set_requires_grad(true);
        let nce = InfoNce::new(0.3, 2).unwrap();
        nce.loss(&z, None).unwrap().backward();
        let grad = Vec::<f64>::try_from(z.grad().flatten(0, 1)).unwrap();
        let base = Vec::<f64>::try_from(z.detach().flatten(0, 1)).unwrap();
        let at = |v: &[f64]| {
            let t = Tensor::from_slice(v).view([8, 3]);
            nce.loss(&t, None).unwrap().double_value(&[])
        };
        let h = 1e-6;
        for i in 0..base.len() {
            let (mut up, mut down) = (base.clone(), base.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (at(&up) - at(&down)) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 1e-8,
                "entry {i}: {fd} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn aligned_positives_send_no_tangential_alignment_message() {
        // Each view equals its partner: the alignment message −(2/(Rτ))·u_partner is radial,
        // so nothing of it survives the projection onto the sphere's tangent space, while
        // before the projection its norm is 2/(τ√R) = 2/(0.5·2) = 2 for R = 4.
        let z = t(&[[1., 0.], [0., 2.], [3., 0.], [0., 1.]]);
        let split = InfoNce::new(0.5, 2)
            .unwrap()
            .gradient_split(&z, None)
            .unwrap();
        assert!((split.alignment.norm().double_value(&[]) - 2.0).abs() < 1e-6);
        let moved = split.through_normalization(&z);
        assert!(moved.alignment.norm().double_value(&[]) < 1e-7);
        // The negatives are orthogonal, hence tangential: the uniformity message stays.
        assert!(moved.uniformity.norm().double_value(&[]) > 0.1);
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
