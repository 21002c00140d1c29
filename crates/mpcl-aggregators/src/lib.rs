//! Aggregators: what a technique from message-passing GNNs changes in a contrastive training
//! step (docs/science.md §4).
//!
//! In the message-passing view, InfoNCE's alignment term aggregates each view's positives.
//! An aggregator changes that aggregation; today it may re-weight each anchor's term (graph
//! attention). Memory banks, rewired positives and mixed targets come with FIXME(#12).

mod attention;

pub use attention::GraphAttention;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// What an aggregator sees of one training step.
///
/// # Shapes
/// Both tensors are view-major, `[m·N, ·]`: row `v·N + i` is view `v` of sample `i`.
#[derive(Debug)]
pub struct Step<'a> {
    /// Backbone features `h`, `[m·N, D]`.
    pub backbone: &'a Tensor,
    /// Projector outputs `z`, `[m·N, d]`, the loss's input.
    pub projection: &'a Tensor,
    /// Views per sample, `m`.
    pub views: usize,
}

/// A training variant that changes how positives are aggregated.
pub trait Aggregator: Send {
    /// A short name for logs and result tables.
    fn name(&self) -> &'static str;

    /// Per-anchor weights `wᵣ` of the InfoNCE terms, `[m·N]`, detached; `None` weighs all
    /// anchors alike.
    fn anchor_weights(&mut self, step: &Step<'_>) -> Option<Tensor>;
}

/// The baseline: every positive counts the same.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Aggregator for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn anchor_weights(&mut self, _step: &Step<'_>) -> Option<Tensor> {
        None
    }
}

/// The aggregators an experiment can choose, as written in its TOML.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AggregatorKind {
    /// No change: plain InfoNCE.
    #[default]
    Plain,
    /// Graph attention on backbone features.
    Attention,
}

impl AggregatorKind {
    /// A fresh aggregator of this kind.
    pub fn build(self) -> Box<dyn Aggregator> {
        match self {
            Self::Plain => Box::new(Plain),
            Self::Attention => Box::new(GraphAttention),
        }
    }
}
