//! Wang & Isola's (2020) alignment and uniformity of normalised embeddings:
//!
//! ```text
//! alignment  = mean_{(r,t) ∈ P} ‖ûᵣ − ûₜ‖^α             α > 0 (paper: 2)
//! uniformity = log mean_{r ≠ t} exp(−t·‖ûᵣ − ûₜ‖²)       t > 0 (paper: 2)
//! ```
//! `P` are ordered pairs of distinct views of one sample; uniformity runs over every pair of
//! distinct rows of the batch.

use tch::{Kind, Tensor};

use crate::{LossError, check_layout, check_views, normalize_rows, positive_mask};

/// Squared distances between the normalised rows, `[R, R]`.
fn squared_distances(z: &Tensor) -> Tensor {
    let u = normalize_rows(&z.to_kind(crate::work_kind(z)));
    // ‖a − b‖² = 2 − 2a·b for unit rows; clamp the rounding below zero away.
    (u.mm(&u.tr()) * -2.0 + 2.0).clamp_min(0.0)
}

/// The alignment of positives.
///
/// # Shapes
/// `z`: `[m·N, d]` view-major; returns a scalar.
///
/// # Errors
/// [`LossError::Shape`] for a batch that is not view-major, [`LossError::Parameter`] for
/// α ≤ 0 or `views < 2`.
pub fn alignment(z: &Tensor, views: usize, alpha: f64) -> Result<Tensor, LossError> {
    check_views(views)?;
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(LossError::Parameter(format!(
            "alpha = {alpha}: expected a value > 0"
        )));
    }
    let (rows, n) = check_layout(z, views, "z")?;
    let d2 = squared_distances(z);
    let picked = d2.masked_select(&positive_mask(rows, n, z.device()));
    Ok(picked.pow_tensor_scalar(alpha / 2.0).mean(d2.kind()))
}

/// The uniformity of all distinct rows.
///
/// # Shapes
/// `z`: `[R, d]` with R ≥ 2; returns a scalar.
///
/// # Errors
/// [`LossError::Shape`] for fewer than two rows, [`LossError::Parameter`] for t ≤ 0.
pub fn uniformity(z: &Tensor, t: f64) -> Result<Tensor, LossError> {
    if !(t > 0.0 && t.is_finite()) {
        return Err(LossError::Parameter(format!(
            "t = {t}: expected a value > 0"
        )));
    }
    let (rows, _) = check_layout(z, 1, "z")?;
    if rows < 2 {
        return Err(LossError::Shape(format!(
            "z has {rows} row: uniformity needs at least 2"
        )));
    }
    let d2 = squared_distances(z);
    let off = Tensor::eye(rows, (Kind::Bool, z.device())).logical_not();
    let picked = d2.masked_select(&off) * -t;
    // log mean exp = logsumexp − log count, stable for large t.
    Ok(picked.logsumexp([0i64].as_slice(), false) - ((rows * (rows - 1)) as f64).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        // Sample 0: (1,0) twice (distance 0); sample 1: (0,1) and (1,0) (distance² 2). Alignment
        // α = 2: mean over 4 ordered pairs of (0, 0, 2, 2) = 1; α = 1: (0+0+√2+√2)/4.
        let z = Tensor::from_slice(&[1.0f64, 0., 0., 1., 1., 0., 1., 0.]).view([4, 2]);
        let a2 = alignment(&z, 2, 2.0).unwrap().double_value(&[]);
        assert!((a2 - 1.0).abs() < 1e-12, "{a2}");
        let a1 = alignment(&z, 2, 1.0).unwrap().double_value(&[]);
        assert!((a1 - 2f64.sqrt() / 2.0).abs() < 1e-12, "{a1}");
        // Two antipodal points: distance² 4, uniformity at t = 2 is log e^{−8} = −8.
        let pair = Tensor::from_slice(&[1.0f64, 0., -1., 0.]).view([2, 2]);
        assert!((uniformity(&pair, 2.0).unwrap().double_value(&[]) + 8.0).abs() < 1e-12);
        // Identical points: log e⁰ = 0.
        let same = Tensor::ones([3, 2], tch::kind::DOUBLE_CPU);
        assert!(uniformity(&same, 2.0).unwrap().double_value(&[]).abs() < 1e-12);
    }

    #[test]
    fn bad_parameters_are_named() {
        let z = Tensor::ones([4, 2], tch::kind::FLOAT_CPU);
        assert!(
            alignment(&z, 2, 0.0)
                .unwrap_err()
                .to_string()
                .contains("alpha = 0")
        );
        assert!(
            uniformity(&z, -1.0)
                .unwrap_err()
                .to_string()
                .contains("t = -1")
        );
        let one = Tensor::ones([1, 2], tch::kind::FLOAT_CPU);
        assert!(
            uniformity(&one, 2.0)
                .unwrap_err()
                .to_string()
                .contains("at least 2")
        );
    }
}
