//! Weighted k-nearest-neighbour classification with cosine similarity, the usual monitor of
//! self-supervised training (k = 200, votes weighted by exp(s/0.1)).
//!
//! ```text
//! sᵢⱼ = f̂ᵢ·f̂ⱼ              test i, train j, unit rows
//! scoreᵢ(c) = Σ_{j ∈ topk(sᵢ·), yⱼ = c} exp(sᵢⱼ / T)
//! ```
//! Test rows are processed in blocks, so memory is `block × n_train` floats at a time.

use mpcl_losses::normalize_rows;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::TopK;

/// The kNN protocol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnnConfig {
    /// Neighbours that vote (clamped to the training-set size).
    pub k: usize,
    /// The temperature T of the vote weights exp(s/T).
    pub temperature: f64,
    /// Test rows per block.
    pub block: usize,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: 200,
            temperature: 0.1,
            block: 512,
        }
    }
}

/// Classifies each test feature by its `k` most similar training features.
///
/// # Shapes
/// `train`: `[n, D]`, `train_labels`: `[n]` int64 in `0..classes`; `test`: `[m, D]`,
/// `test_labels`: `[m]`.
pub fn knn(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    test_labels: &Tensor,
    classes: usize,
    cfg: &KnnConfig,
) -> TopK {
    tch::no_grad(|| {
        let train = normalize_rows(&train.to_kind(Kind::Float));
        let test = normalize_rows(&test.to_kind(Kind::Float));
        let k = cfg.k.min(train.size()[0] as usize) as i64;
        let m = test.size()[0];
        let scores: Vec<Tensor> = (0..m)
            .step_by(cfg.block.max(1))
            .map(|start| {
                let b = (cfg.block as i64).min(m - start);
                let sim = test.narrow(0, start, b).mm(&train.tr());
                let (top, idx) = sim.topk(k, 1, true, false);
                let votes = train_labels.index_select(0, &idx.view([-1])).view([b, k]);
                let weights = (top / cfg.temperature).exp();
                Tensor::zeros([b, classes as i64], (Kind::Float, test.device()))
                    .scatter_add(1, &votes, &weights)
            })
            .collect();
        TopK::of_scores(&Tensor::cat(&scores, 0), test_labels)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = r.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([r.len() as i64, 2])
    }

    #[test]
    fn hand_made_neighbours() {
        // Class 0 near the x axis, class 1 near the y axis. With k = 3 the test point
        // (1, 0.2) has the neighbours (1, 0.1), (1, 0) of class 0 (cos 0.995, 0.981) and
        // (0.5, 1) of class 1 (cos 0.613): class 0 wins. The test point (0.1, 1) has its
        // three nearest, (0.1, 1), (0, 1), (0.5, 1), all in class 1.
        let train = rows(&[[1., 0.], [1., 0.1], [0., 1.], [0.1, 1.], [0.5, 1.]]);
        let train_y = Tensor::from_slice(&[0i64, 0, 1, 1, 1]);
        let test = rows(&[[1., 0.2], [0.1, 1.]]);
        let test_y = Tensor::from_slice(&[0i64, 1]);
        let cfg = KnnConfig {
            k: 3,
            temperature: 0.1,
            block: 1,
        };
        let acc = knn(&train, &train_y, &test, &test_y, 2, &cfg);
        assert_eq!(
            acc,
            TopK {
                top1: 1.0,
                top5: 1.0
            }
        );
        // With wrong labels for the test points both are misclassified.
        let flipped = Tensor::from_slice(&[1i64, 0]);
        assert_eq!(knn(&train, &train_y, &test, &flipped, 2, &cfg).top1, 0.0);
    }

    #[test]
    fn votes_are_weighted_by_similarity() {
        // k = 3: one very close class-0 neighbour (cos 1) against two class-1 neighbours at
        // 60° (cos 0.5). Weights at T = 0.1: e¹⁰ = 22026 versus 2·e⁵ = 297, so class 0 wins
        // although it has fewer votes; at T = 10 the counts decide (e^0.1 < 2·e^0.05).
        let train = rows(&[[1., 0.], [0.5, 0.866], [0.5, -0.866]]);
        let train_y = Tensor::from_slice(&[0i64, 1, 1]);
        let test = rows(&[[1., 0.]]);
        let y = Tensor::from_slice(&[0i64]);
        let sharp = KnnConfig {
            k: 3,
            temperature: 0.1,
            block: 8,
        };
        assert_eq!(knn(&train, &train_y, &test, &y, 2, &sharp).top1, 1.0);
        let flat = KnnConfig {
            k: 3,
            temperature: 10.0,
            block: 8,
        };
        assert_eq!(knn(&train, &train_y, &test, &y, 2, &flat).top1, 0.0);
    }
}
