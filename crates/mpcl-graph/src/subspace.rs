//! How close a feature map comes to a target subspace, such as the top-k eigenvectors U of
//! Ā (docs/science.md §3: the spectral loss's minimisers span it): the principal angles
//! between the two spans, and R² of predicting each from the other by least squares.
//!
//! ```text
//! cos θᵢ = σᵢ(Q_Fᵀ Q_U)                  Q orthonormal bases, θ ascending
//! mean cos² = (1/k) Σ cos² θᵢ            1: equal spans, 0: orthogonal ones
//! R²(Y | X) = mean_j [1 − ‖yⱼ − ŷⱼ‖² / ‖yⱼ − ȳⱼ‖²]
//!                                        ŷⱼ least squares on X with intercept
//! ```
//! The mean cos² equals the uncentred R² of U from F (an orthonormal U makes ‖P_F U‖²_F =
//! Σ cos² θᵢ); the centred R² leaves out what an intercept explains, so a constant feature
//! earns nothing for it. Everything is in f64 on ndarray; what the features are is the
//! caller's business.

use ndarray::{Array1, ArrayView2, Axis};

use crate::GraphError;
use crate::dynamics::principal_angles;
use crate::linalg::least_squares;

/// The comparison of a feature map with a target basis.
#[derive(Debug, Clone, PartialEq)]
pub struct Closeness {
    /// The principal angles in radians, ascending: min(k_F, k_U) of them.
    pub angles: Array1<f64>,
    /// The mean of cos² over the angles, in [0, 1].
    pub mean_cos2: f64,
    /// Mean centred R² of predicting the target's columns from the features.
    pub r2_target_from_features: f64,
    /// Mean centred R² of predicting the features' columns from the target.
    pub r2_features_from_target: f64,
}

/// The centred R² of predicting each column of `y` from `x` by least squares with an
/// intercept: `1 − SS_res/SS_tot` per column. A column of `y` without variance (SS_tot ≤
/// 1e-20 of its squared norm) has no R² and gives NaN.
///
/// # Shapes
/// `x`: `[n, p]`, `y`: `[n, q]`; returns `[q]`.
///
/// # Errors
/// [`GraphError::Shape`] when the row counts differ or there are fewer than 2 rows.
pub fn r_squared(x: ArrayView2<f64>, y: ArrayView2<f64>) -> Result<Array1<f64>, GraphError> {
    let n = x.nrows();
    if y.nrows() != n || n < 2 {
        return Err(GraphError::Shape(format!(
            "R² of {} rows from {n} rows: need the same count, at least 2",
            y.nrows()
        )));
    }
    let centre = |m: ArrayView2<f64>| &m - &m.mean_axis(Axis(0)).expect("n ≥ 2 rows");
    let (xc, yc) = (centre(x), centre(y));
    // Centring both sides is the intercept; a constant x centres to 0 and predicts 0.
    let fit = xc.dot(&least_squares(xc.view(), yc.view()));
    let residual = &yc - &fit;
    let r2 = (0..y.ncols())
        .map(|j| {
            let total = yc.column(j).dot(&yc.column(j));
            let norm = y.column(j).dot(&y.column(j));
            if total <= 1e-20 * norm || total == 0.0 {
                f64::NAN
            } else {
                1.0 - residual.column(j).dot(&residual.column(j)) / total
            }
        })
        .collect();
    Ok(r2)
}

/// The mean of the values that are not NaN; NaN when every value is.
pub fn mean_defined(values: &Array1<f64>) -> f64 {
    let defined: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if defined.is_empty() {
        f64::NAN
    } else {
        defined.iter().sum::<f64>() / defined.len() as f64
    }
}

/// Compares `features` with `target`: principal angles between their spans and R² both
/// ways (means over the columns that have variance).
///
/// # Shapes
/// `features`: `[n, k]`, `target`: `[n, l]`, with n ≥ max(k, l).
///
/// # Errors
/// [`GraphError::Shape`] when the row counts differ or are below the column counts, or a
/// value is not finite.
///
/// Complexity: O(n·(k + l)² + (k + l)³).
pub fn closeness(
    features: ArrayView2<f64>,
    target: ArrayView2<f64>,
) -> Result<Closeness, GraphError> {
    let n = features.nrows();
    if target.nrows() != n || n < features.ncols().max(target.ncols()) {
        return Err(GraphError::Shape(format!(
            "features [{n}, {}] against a target [{}, {}]: need equal row counts, at least \
             as many rows as columns",
            features.ncols(),
            target.nrows(),
            target.ncols()
        )));
    }
    if let Some(v) = features
        .iter()
        .chain(target.iter())
        .find(|v| !v.is_finite())
    {
        return Err(GraphError::Shape(format!(
            "a value is {v}: expected finite values"
        )));
    }
    let angles = principal_angles(features, target);
    let mean_cos2 = angles.mapv(|a| a.cos().powi(2)).mean().unwrap_or(f64::NAN);
    Ok(Closeness {
        mean_cos2,
        r2_target_from_features: mean_defined(&r_squared(features, target)?),
        r2_features_from_target: mean_defined(&r_squared(target, features)?),
        angles,
    })
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;
    use crate::eigen::random_block;
    use crate::linalg::orthonormalize;

    #[test]
    fn r_squared_by_hand() {
        // y = 2x + 1 exactly: R² = 1. y = (1, −1, 1, −1) on x = (0, 1, 2, 3): centred x
        // is (−1.5, −0.5, 0.5, 1.5), the slope Σx̃y/Σx̃² = −2/5 = −0.4,
        // SS_res = 4 − 0.4²·5 = 3.2, SS_tot = 4, so R² = 1 − 3.2/4 = 0.2.
        let x = array![[0.0], [1.0], [2.0], [3.0]];
        let y = array![[1.0, 1.0], [3.0, -1.0], [5.0, 1.0], [7.0, -1.0]];
        let r2 = r_squared(x.view(), y.view()).unwrap();
        assert!((r2[0] - 1.0).abs() < 1e-12, "{r2}");
        assert!((r2[1] - 0.2).abs() < 1e-12, "{r2}");
        // A constant target column has no R²; the mean skips it.
        let y = array![[5.0, 0.0], [5.0, 1.0], [5.0, 2.0], [5.0, 3.0]];
        let r2 = r_squared(x.view(), y.view()).unwrap();
        assert!(r2[0].is_nan() && (r2[1] - 1.0).abs() < 1e-12, "{r2}");
        assert!((mean_defined(&r2) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mean_cos2_is_the_uncentred_r2_of_an_orthonormal_target() {
        // A second route to the same number: ‖Q_Fᵀ U‖²_F / k against the angles.
        let u = orthonormalize(random_block(40, 3, 1).view());
        let f = random_block(40, 3, 2);
        let c = closeness(f.view(), u.view()).unwrap();
        let q = orthonormalize(f.view());
        let direct = q.t().dot(&u).mapv(|v| v * v).sum() / 3.0;
        assert!(
            (c.mean_cos2 - direct).abs() < 1e-10,
            "{} vs {direct}",
            c.mean_cos2
        );
    }

    #[test]
    fn bad_shapes_are_named() {
        let a = random_block(5, 2, 0);
        let b = random_block(6, 2, 0);
        let e = closeness(a.view(), b.view()).unwrap_err().to_string();
        assert!(e.contains("features [5, 2] against a target [6, 2]"), "{e}");
    }
}
