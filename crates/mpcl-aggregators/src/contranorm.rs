//! ContraNorm (Guo et al., 2023): uniformity as a layer on the projector output, the
//! normalisation counterpart of the uniformity message (docs/science.md §4):
//!
//! ```text
//! x ← (1 + s)·x − s·softmax(x̂x̂ᵀ/τ)·x,   x̂ = x/‖x‖ row-wise
//! ```
//! Each row moves away from the affinity-weighted mean of the batch, which spreads the rows
//! apart as the uniformity term does. `s = 0` is the identity.

use tch::Tensor;

use mpcl_losses::normalize_rows;

use crate::{Aggregator, Change, Step};

/// The ContraNorm layer with strength `s` and temperature `τ`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContraNorm {
    /// The strength `s ≥ 0`.
    pub strength: f64,
    /// The temperature `τ > 0` of the affinities.
    pub temperature: f64,
}

impl ContraNorm {
    /// The layer applied to `x`, with gradient.
    ///
    /// # Shapes
    /// `x`: `[R, d]`; returns `[R, d]`.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let unit = normalize_rows(x);
        let affinity = (unit.mm(&unit.tr()) / self.temperature).softmax(1, x.kind());
        x * (1.0 + self.strength) - affinity.mm(x) * self.strength
    }
}

impl Aggregator for ContraNorm {
    fn name(&self) -> String {
        format!("contranorm (s = {})", self.strength)
    }

    fn transform(&self, z: &Tensor) -> Tensor {
        self.apply(z)
    }

    fn change(&mut self, _step: &Step<'_>) -> Change {
        Change::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::t;

    #[test]
    fn two_orthogonal_rows_by_hand() {
        // x = [[1,0],[0,1]], τ = 1: affinities softmax([1, 0]) = [e/(e+1), 1/(e+1)] per row,
        // so row 0 becomes (1+s)[1,0] − s[e/(e+1), 1/(e+1)].
        let x = t(&[[1., 0.], [0., 1.]]);
        let s = 0.5;
        let y = Vec::<f32>::try_from(
            ContraNorm {
                strength: s,
                temperature: 1.0,
            }
            .apply(&x)
            .flatten(0, -1),
        )
        .unwrap();
        let e = std::f64::consts::E;
        let (a, b) = (e / (e + 1.0), 1.0 / (e + 1.0));
        let expected = [1.0 + s - s * a, -s * b, -s * b, 1.0 + s - s * a];
        for (got, want) in y.iter().zip(expected) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn zero_strength_is_the_identity_and_rows_spread() {
        tch::manual_seed(1);
        let x = Tensor::randn([8, 4], tch::kind::FLOAT_CPU) + 2.0;
        let same = ContraNorm {
            strength: 0.0,
            temperature: 0.5,
        }
        .apply(&x);
        assert!(same.allclose(&x, 1e-6, 1e-7, false));
        // Rows pushed away from their affinity-weighted mean: the mean cosine between
        // distinct rows drops.
        let mean_cos = |x: &Tensor| {
            let u = normalize_rows(x);
            let g = u.mm(&u.tr());
            (g.sum(tch::Kind::Double).double_value(&[]) - 8.0) / 56.0
        };
        let spread = ContraNorm {
            strength: 0.3,
            temperature: 0.5,
        }
        .apply(&x);
        assert!(mean_cos(&spread) < mean_cos(&x) - 1e-3);
    }
}
