//! Weighted k-nearest-neighbour classification with cosine similarity, the usual monitor of
//! self-supervised training (k = 200, votes weighted by exp(s/0.1)).
//!
//! ```text
//! sᵢⱼ = f̂ᵢ·f̂ⱼ              test i, train j, unit rows
//! scoreᵢ(c) = Σ_{j ∈ topk(sᵢ·), yⱼ = c} exp(sᵢⱼ / T)
//! ```
//! Test rows are processed in blocks of `b`, so the similarities never exist all at once.
//! Beyond the caller's features, the peak memory in bytes is
//!
//! ```text
//! 4(n + m)D        unit-norm copies of the n train and m test features (f32)
//! + 4·b·n          one block of similarities
//! + 24·b·k         its top-k similarities (f32), indices and votes (i64), weights (f32)
//! + 4·m·C          the class scores
//! ```
//! For n = 60 000, m = 10 000, D = 2048, b = 512, k = 200, C = 10: 573 MB + 123 MB + 2.5 MB
//! + 0.4 MB ≈ 0.7 GB, with the caller's 573 MB of features about 1.3 GB.

use mpcl_losses::normalize_rows;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::TopK;

/// The kNN protocol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
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

/// Classifies each test feature by its `k` most similar training features: top-1 and top-5
/// accuracy of [`knn_scores`].
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
    let scores = knn_scores(train, train_labels, test, classes, cfg);
    TopK::of_scores(&scores, test_labels)
}

/// The similarity-weighted votes `scoreᵢ(c)` of each test feature's `k` most similar training
/// features, computed `cfg.block` test rows at a time.
///
/// # Shapes
/// `train`: `[n, D]`, `train_labels`: `[n]` int64 in `0..classes`; `test`: `[m, D]`; returns
/// `[m, classes]` on the device of `test`.
pub fn knn_scores(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    classes: usize,
    cfg: &KnnConfig,
) -> Tensor {
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
        Tensor::cat(&scores, 0)
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

    #[test]
    fn top5_counts_the_fifth_class_but_not_the_sixth() {
        // Seven training points on the unit circle at 0°, 10°, …, 60°, each its own class;
        // the test point at 0° with k = 7 gives class j the weight exp(cos(10j°)/T), which
        // falls with j. The vote of the class at 40° is exactly exp(cos 40°/T) and ranks
        // fifth: a top-5 hit and a top-1 miss; the class at 50° ranks sixth: a miss in both.
        let deg: Vec<[f32; 2]> = (0..7)
            .map(|j| {
                let a = (10.0 * j as f32).to_radians();
                [a.cos(), a.sin()]
            })
            .collect();
        let train = rows(&deg);
        let train_y = Tensor::arange(7, tch::kind::INT64_CPU);
        let test = rows(&[[1., 0.], [1., 0.]]);
        let cfg = KnnConfig {
            k: 7,
            temperature: 0.5,
            block: 1,
        };
        let scores = knn_scores(&train, &train_y, &test, 7, &cfg);
        let want = (40f64.to_radians().cos() / 0.5).exp();
        assert!((scores.double_value(&[0, 4]) - want).abs() < 1e-4 * want);
        let acc = knn(
            &train,
            &train_y,
            &test,
            &Tensor::from_slice(&[4i64, 5]),
            7,
            &cfg,
        );
        assert_eq!(
            acc,
            TopK {
                top1: 0.0,
                top5: 0.5
            }
        );
    }

    #[test]
    fn blocks_do_not_change_the_scores() {
        // Oracle: the same computation in one block of all 300 test rows; blocks of 1, 7
        // and 128 rows must give the same scores.
        tch::manual_seed(4);
        let train = Tensor::randn([500, 16], tch::kind::FLOAT_CPU);
        let train_y = Tensor::randint(10, [500], tch::kind::INT64_CPU);
        let test = Tensor::randn([300, 16], tch::kind::FLOAT_CPU);
        let cfg = |block| KnnConfig {
            k: 20,
            temperature: 0.1,
            block,
        };
        let whole = knn_scores(&train, &train_y, &test, 10, &cfg(300));
        for block in [1, 7, 128] {
            let blocked = knn_scores(&train, &train_y, &test, 10, &cfg(block));
            assert!(blocked.allclose(&whole, 1e-5, 1e-6, false), "block {block}");
        }
    }
}
