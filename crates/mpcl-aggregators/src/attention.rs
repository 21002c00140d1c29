//! Graph attention (the paper's SimCLR variant): positive pairs whose backbone features agree
//! weigh more, as a GAT weighs neighbours by the similarity of their features.
//!
//! ```text
//! wᵣ = exp(1 + c̄ᵣ),   c̄ᵣ = mean over r's positives t of cos(hᵣ, hₜ)   (detached)
//! L  = Σᵣ wᵣ ℓᵣ / Σᵣ wᵣ
//! ```
//! With two views c̄ᵣ is the cosine between the two views of r's sample, as in the paper.
//! The paper takes `h` from the backbone; [`AttentionFeatures::Projection`] uses the projector
//! output instead.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use mpcl_losses::normalize_rows;

use crate::{Aggregator, Change, Step};

/// Which features the attention compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionFeatures {
    /// The backbone features `h` (the paper's choice).
    #[default]
    Backbone,
    /// The projector outputs `z`.
    Projection,
}

/// Attention weights from the cosine similarity of features of a sample's views.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphAttention {
    /// The features compared.
    pub features: AttentionFeatures,
}

impl GraphAttention {
    /// The weights for backbone features `h` with `views` views per sample.
    ///
    /// # Shapes
    /// `h`: `[m·N, D]` view-major; returns `[m·N]`.
    pub fn weights(h: &Tensor, views: usize) -> Tensor {
        tch::no_grad(|| {
            let h = h.to_kind(Kind::Float);
            let rows = h.size()[0];
            let n = rows / views as i64;
            let unit = normalize_rows(&h);
            // [m, N, D]: the views of each sample side by side.
            let grouped = unit.view([views as i64, n, -1]);
            let sum = grouped.sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
            // Σₜ≠ᵣ cos(hᵣ, hₜ) = hᵣ·(Σₜ hₜ) − hᵣ·hᵣ for unit rows.
            let dots = (&grouped * sum.unsqueeze(0)).sum_dim_intlist(
                [2i64].as_slice(),
                false,
                Kind::Float,
            );
            let self_dot =
                (&grouped * &grouped).sum_dim_intlist([2i64].as_slice(), false, Kind::Float);
            let mean_cos = (dots - self_dot) / (views - 1) as f64;
            (mean_cos + 1.0).exp().view([rows])
        })
    }
}

impl Aggregator for GraphAttention {
    fn name(&self) -> String {
        match self.features {
            AttentionFeatures::Backbone => "attention".into(),
            AttentionFeatures::Projection => "attention (projection)".into(),
        }
    }

    fn change(&mut self, step: &Step<'_>) -> Change {
        let h = match self.features {
            AttentionFeatures::Backbone => step.backbone,
            AttentionFeatures::Projection => step.projection,
        };
        Change {
            weights: Some(Self::weights(h, step.views)),
            keys: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use mpcl_losses::InfoNce;

    use super::*;
    use crate::testing::{samples, t};

    #[test]
    fn weights_match_hand_computed_cosines() {
        // Sample 0's views are identical (cos 1 → e²), sample 1's orthogonal (cos 0 → e¹).
        let h = t(&[[1., 0.], [0., 1.], [2., 0.], [1., 0.]]);
        let w = Vec::<f32>::try_from(GraphAttention::weights(&h, 2)).unwrap();
        let e = std::f32::consts::E;
        let expected = [e * e, e, e * e, e];
        for (a, b) in w.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{w:?}");
        }
    }

    #[test]
    fn constant_weights_give_plain_info_nce() {
        // All backbone rows alike: every weight is e², and the weighted mean is the mean.
        tch::manual_seed(3);
        let z = Tensor::randn([6, 4], tch::kind::FLOAT_CPU);
        let h = Tensor::ones([6, 8], tch::kind::FLOAT_CPU);
        let nce = InfoNce::new(0.5, 2).unwrap();
        let step = Step {
            backbone: &h,
            projection: &z,
            samples: &samples(&[0, 1, 2]),
            views: 2,
            epoch: 1,
        };
        let w = GraphAttention::default().change(&step).weights.unwrap();
        let weighted = nce.loss(&z, Some(&w)).unwrap().double_value(&[]);
        let plain = nce.loss(&z, None).unwrap().double_value(&[]);
        assert!((weighted - plain).abs() < 1e-6);
    }

    #[test]
    fn projection_features_are_an_option() {
        // Backbone rows all alike (weights e²), projections of sample 0 orthogonal (e¹).
        let h = Tensor::ones([4, 3], tch::kind::FLOAT_CPU);
        let z = t(&[[1., 0.], [1., 0.], [0., 1.], [1., 0.]]);
        let step = Step {
            backbone: &h,
            projection: &z,
            samples: &samples(&[0, 1]),
            views: 2,
            epoch: 1,
        };
        let mut on_z = GraphAttention {
            features: AttentionFeatures::Projection,
        };
        let w = Vec::<f32>::try_from(on_z.change(&step).weights.unwrap()).unwrap();
        let e = std::f32::consts::E;
        for (a, b) in w.iter().zip([e, e * e, e, e * e]) {
            assert!((a - b).abs() < 1e-5, "{w:?}");
        }
    }

    #[test]
    fn weights_carry_no_gradient() {
        let h = Tensor::randn([4, 3], tch::kind::FLOAT_CPU).set_requires_grad(true);
        assert!(!GraphAttention::weights(&h, 2).requires_grad());
    }
}
