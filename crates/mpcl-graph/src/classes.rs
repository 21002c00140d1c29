//! How well features separate known classes: a distance ratio and a linear probe, both
//! deterministic and in f64, for the trajectory metrics and the toy experiment.
//!
//! The probe is least squares onto one-hot targets with a bias, fitted and scored on the
//! same nodes: it measures linear separability of the given points, not generalisation.

use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView2, Axis, concatenate};

use crate::GraphError;
use crate::linalg::least_squares;

/// Checks labels against the feature rows; returns the number of classes.
fn check_labels(f: ArrayView2<f64>, labels: &[usize]) -> Result<usize, GraphError> {
    if labels.len() != f.nrows() {
        return Err(GraphError::Shape(format!(
            "{} labels for {} feature rows",
            labels.len(),
            f.nrows()
        )));
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    if classes < 2 {
        return Err(GraphError::Parameter(format!(
            "{classes} class(es): class metrics need at least 2"
        )));
    }
    Ok(classes)
}

/// The mean distance between points of different classes over the mean distance between
/// distinct points of the same class:
/// ```text
/// mean_{c(i) ≠ c(j)} ‖fᵢ − fⱼ‖  /  mean_{c(i) = c(j), i ≠ j} ‖fᵢ − fⱼ‖
/// ```
/// Above 1 when classes sit apart; scale-invariant. Infinite when every class has collapsed
/// to a point of its own, NaN when all points coincide.
///
/// # Shapes
/// `f`: `[n, k]`; `labels`: `[n]`.
///
/// # Errors
/// [`GraphError::Shape`] when the labels do not match the rows, [`GraphError::Parameter`]
/// for fewer than 2 classes or no class with 2 points.
///
/// Complexity: O(n²k), rows in parallel.
pub fn distance_ratio(f: ArrayView2<f64>, labels: &[usize]) -> Result<f64, GraphError> {
    check_labels(f, labels)?;
    let n = f.nrows();
    // Per row i: (Σ within, count within, Σ between, count between) over j > i.
    let (sw, nw, sb, nb) = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut acc = (0.0, 0usize, 0.0, 0usize);
            for j in i + 1..n {
                let d = (&f.row(i) - &f.row(j)).mapv(|x| x * x).sum().sqrt();
                if labels[i] == labels[j] {
                    acc.0 += d;
                    acc.1 += 1;
                } else {
                    acc.2 += d;
                    acc.3 += 1;
                }
            }
            acc
        })
        .reduce(
            || (0.0, 0, 0.0, 0),
            |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3),
        );
    if nw == 0 {
        return Err(GraphError::Parameter(
            "no class has 2 points: the within-class distance is undefined".into(),
        ));
    }
    Ok((sb / nb as f64) / (sw / nw as f64))
}

/// The training accuracy of the least-squares linear classifier: `W = argmin ‖[Z 1]W − Y‖²`
/// with `Z` the standardised features and `Y` one-hot labels, then `argmax` of `[Z 1]W`
/// per row. Solved by [`least_squares`] (a pseudo-inverse), so collapsed features give a
/// defined answer. Standardising does not change the predictions, only the
/// conditioning.
///
/// # Shapes
/// `f`: `[n, k]`; `labels`: `[n]`.
///
/// # Errors
/// As [`distance_ratio`] for the labels.
///
/// Complexity: O(n·k² + k³).
pub fn probe_accuracy(f: ArrayView2<f64>, labels: &[usize]) -> Result<f64, GraphError> {
    let classes = check_labels(f, labels)?;
    let n = f.nrows();
    let mean = f.mean_axis(Axis(0)).expect("n ≥ 2 rows");
    let std = f
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 0.0 { s } else { 1.0 });
    let z = (&f - &mean) / &std;
    let x = concatenate![Axis(1), z, Array2::ones((n, 1))];
    let y = Array2::from_shape_fn((n, classes), |(i, c)| f64::from(labels[i] == c));
    let w = least_squares(x.view(), y.view());
    let scores = x.dot(&w);
    let correct = scores
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, label)| {
            let best = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("2 classes or more");
            best == **label
        })
        .count();
    Ok(correct as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn distance_ratio_by_hand() {
        // Class 0 at 0 and 1, class 1 at 3 and 4 on a line: within-class distances 1 and 1,
        // between-class 3, 4, 2, 3 (mean 3): ratio 3. Scaling f changes nothing.
        let f = array![[0.0], [1.0], [3.0], [4.0]];
        let labels = [0, 0, 1, 1];
        assert!((distance_ratio(f.view(), &labels).unwrap() - 3.0).abs() < 1e-12);
        let scaled = &f * 7.0;
        assert!((distance_ratio(scaled.view(), &labels).unwrap() - 3.0).abs() < 1e-12);
    }

    #[test]
    fn probe_accuracy_by_hand() {
        // Separable on a line: least squares puts the threshold at the mean, 1.5.
        let f = array![[0.0], [1.0], [2.0], [3.0]];
        assert_eq!(probe_accuracy(f.view(), &[0, 0, 1, 1]).unwrap(), 1.0);
        // Alternating labels: the class-1 score is 0.5 + 0.2(x − 1.5) (slope cov/var =
        // 0.25/1.25), so x > 1.5 is called class 1: predictions 0, 0, 1, 1 against labels
        // 0, 1, 0, 1, half right.
        assert_eq!(probe_accuracy(f.view(), &[0, 1, 0, 1]).unwrap(), 0.5);
        // A constant column (zero variance) and a collapsed copy change nothing.
        let wide = array![
            [0.0, 5.0, 0.0],
            [1.0, 5.0, 2.0],
            [2.0, 5.0, 4.0],
            [3.0, 5.0, 6.0]
        ];
        assert_eq!(probe_accuracy(wide.view(), &[0, 0, 1, 1]).unwrap(), 1.0);
    }

    #[test]
    fn bad_labels_are_named() {
        let f = array![[0.0], [1.0]];
        let err = probe_accuracy(f.view(), &[0]).unwrap_err().to_string();
        assert!(err.contains("1 labels for 2 feature rows"), "{err}");
        let err = distance_ratio(f.view(), &[0, 0]).unwrap_err().to_string();
        assert!(err.contains("1 class(es)"), "{err}");
        let err = distance_ratio(f.view(), &[0, 1]).unwrap_err().to_string();
        assert!(err.contains("no class has 2 points"), "{err}");
    }
}
