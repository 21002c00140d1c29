//! Judging a frozen encoder by its features: a weighted kNN classifier, a linear probe by one
//! of two protocols, representation diagnostics (alignment, uniformity, effective rank), with
//! the baselines computed the same way, and the table that reports them.
//!
//! The encoder is only ever called under `no_grad` in eval mode; nothing here updates it
//! (tests/frozen.rs checks its weights bit for bit). `projection` maps features to 2-D (PCA,
//! t-SNE) for the trainer's figures; `neighbours` finds exact k-NN lists for them and for
//! the eigenspace preset's pixel graph.

pub mod crop;
pub mod diagnostics;
mod features;
mod knn;
pub mod neighbours;
mod probe;
pub mod projection;
mod report;

pub use diagnostics::{Diagnostics, DiagnosticsConfig, diagnose};
pub use features::{Encoder, Normalize, extract, pixel_features};
pub use knn::{KnnConfig, knn, knn_scores};
pub use probe::{ProbeConfig, ProbeProtocol, ReferenceProbe, linear_probe, probe, reference_probe};
pub use report::{Row, markdown_table};

/// Top-1 and top-5 accuracy, as fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopK {
    /// The fraction of test samples whose best-scored class is right.
    pub top1: f64,
    /// The fraction whose right class is among the five best scored.
    pub top5: f64,
}

impl TopK {
    /// Top-1 and top-5 accuracy of class `scores` against `labels`, which may live on
    /// another device (a training run keeps its labels on the GPU, the kNN scores its
    /// monitor computes on the CPU).
    ///
    /// # Shapes
    /// `scores`: `[n, classes]`; `labels`: `[n]` (int64).
    pub fn of_scores(scores: &tch::Tensor, labels: &tch::Tensor) -> Self {
        let n = labels.size()[0].max(1) as f64;
        let k = scores.size()[1].min(5);
        let (_, best) = scores.topk(k, 1, true, true);
        let hit = best.eq_tensor(&labels.to_device(scores.device()).unsqueeze(1));
        let top1 = hit.narrow(1, 0, 1).sum(tch::Kind::Int64).int64_value(&[]) as f64 / n;
        let top5 = hit.sum(tch::Kind::Int64).int64_value(&[]) as f64 / n;
        Self { top1, top5 }
    }
}

/// The labels of an image set as an int64 tensor.
pub fn labels(set: &mpcl_data::ImageSet) -> tch::Tensor {
    let labels: Vec<i64> = set.labels.iter().map(|&l| i64::from(l)).collect();
    tch::Tensor::from_slice(&labels)
}
