//! SimSiam's negative cosine similarity with a stop-gradient on the target:
//!
//! ```text
//! L = −mean_{(r,t) ∈ P} cos(pᵣ, sg(zₜ))
//! ```
//! over ordered pairs of distinct views of one sample: with two views,
//! −½(cos(p₁, sg z₂) + cos(p₂, sg z₁)), as in Chen & He (2021).

use tch::Tensor;

use crate::{LossError, check_layout, check_views, normalize_rows, positive_mask};

/// The SimSiam loss of predictions `p` against projections `z` (which get no gradient).
///
/// # Shapes
/// `p`, `z`: `[m·N, d]` view-major, the same shape; returns a scalar.
///
/// # Errors
/// [`LossError::Shape`] when the shapes differ or are not a view-major batch,
/// [`LossError::Parameter`] when `views < 2`.
pub fn simsiam(p: &Tensor, z: &Tensor, views: usize) -> Result<Tensor, LossError> {
    check_views(views)?;
    if p.size() != z.size() {
        return Err(LossError::Shape(format!(
            "predictions of shape {:?} and projections of shape {:?}: expected the same shape",
            p.size(),
            z.size()
        )));
    }
    let (rows, n) = check_layout(p, views, "p")?;
    let kind = crate::work_kind(p);
    let cos = normalize_rows(&p.to_kind(kind)).mm(&normalize_rows(&z.detach().to_kind(kind)).tr());
    let positive = positive_mask(rows, n, p.device());
    let picked = cos.masked_select(&positive);
    Ok(-picked.mean(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values_and_stop_gradient() {
        // Predictions equal to the partner's projection: cos 1, L = −1. Orthogonal: 0.
        let z = Tensor::from_slice(&[1.0f32, 0., 0., 1., 3., 0., 0., 2.]).view([4, 2]);
        let same = simsiam(&z, &z, 2).unwrap().double_value(&[]);
        assert!((same + 1.0).abs() < 1e-6);
        let p = Tensor::from_slice(&[0.0f32, 1., 1., 0., 0., 1., 1., 0.]).view([4, 2]);
        assert!(simsiam(&p, &z, 2).unwrap().double_value(&[]).abs() < 1e-6);

        let p = p.set_requires_grad(true);
        let zg = z.set_requires_grad(true);
        simsiam(&p, &zg, 2).unwrap().backward();
        assert!(p.grad().defined());
        assert!(!zg.grad().defined(), "no gradient reaches the target");
    }

    #[test]
    fn mismatched_shapes_are_named() {
        let p = Tensor::zeros([4, 3], tch::kind::FLOAT_CPU);
        let z = Tensor::zeros([4, 2], tch::kind::FLOAT_CPU);
        let err = simsiam(&p, &z, 2).unwrap_err().to_string();
        assert!(err.contains("[4, 3]") && err.contains("[4, 2]"), "{err}");
    }
}
