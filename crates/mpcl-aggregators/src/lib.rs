//! Aggregators: what a technique from message-passing GNNs changes in a contrastive training
//! step (docs/science.md §4).
//!
//! In the message-passing view, the loss's alignment term aggregates each view's positives.
//! An aggregator changes that aggregation, in one of four places of a step:
//!
//! | aggregator | GNN idea | changes | state |
//! |---|---|---|---|
//! | [`GraphAttention`] | graph attention | per-anchor weights | none |
//! | [`MultiStage`] | jumping knowledge | positives mixed with a bank | a row per sample |
//! | [`Rewiring`] | graph rewiring | positive keys replaced by queue neighbours | FIFO queue |
//! | [`ContraNorm`] | ContraNorm / PairNorm | the projector output, before the loss | none |
//!
//! A [`Stack`] combines any of them; [`AggregatorsConfig`] is the `[aggregators]` table of an
//! experiment. The trainer calls, per step: [`Aggregator::transform`] on the projector output,
//! [`Aggregator::change`] for the loss, then [`Aggregator::observe`] with the detached
//! projections to update state. State is saved and restored as named tensors
//! ([`Aggregator::state`], [`Aggregator::load_state`]) so a resumed run continues exactly.
//! docs/aggregators.md walks through adding one.

mod attention;
mod config;
mod contranorm;
mod multi_stage;
mod rewiring;
mod stack;

pub use attention::{AttentionFeatures, GraphAttention};
pub use config::{
    AggregatorsConfig, AttentionConfig, ContraNormConfig, MultiStageConfig, RewiringConfig,
};
pub use contranorm::ContraNorm;
pub use multi_stage::{BankPrecision, MultiStage};
pub use rewiring::Rewiring;
pub use stack::Stack;

use tch::Tensor;

/// What an aggregator sees of one training step.
///
/// # Shapes
/// The feature tensors are view-major, `[m·N, ·]`: row `v·N + i` is view `v` of sample `i`.
#[derive(Debug)]
pub struct Step<'a> {
    /// Backbone features `h`, `[m·N, D]`.
    pub backbone: &'a Tensor,
    /// Projector outputs `z` after [`Aggregator::transform`], `[m·N, d]`.
    pub projection: &'a Tensor,
    /// The data-set index of each sample of the batch, `[N]` int64.
    pub samples: &'a Tensor,
    /// Views per sample, `m`.
    pub views: usize,
    /// The epoch, counted from 1.
    pub epoch: usize,
}

/// How an aggregator changes one step's loss. The default changes nothing.
#[derive(Debug, Default)]
pub struct Change {
    /// Per-anchor weights `wᵣ`, `[m·N]`, detached: the loss becomes `Σ wᵣℓᵣ / Σ wᵣ`.
    pub weights: Option<Tensor>,
    /// Replacement positive keys, `[m·N, d]`: row `t` stands in for `zₜ` wherever `zₜ` is
    /// a positive (InfoNCE) or a target (SimSiam, where it gets no gradient anyway).
    pub keys: Option<Tensor>,
}

/// A training variant that changes how positives are aggregated.
pub trait Aggregator: Send {
    /// A short name for logs and result tables.
    fn name(&self) -> String;

    /// A transform of the projector output applied before the loss, with gradient.
    ///
    /// # Shapes
    /// `z`: `[m·N, d]`; returns the same shape.
    fn transform(&self, z: &Tensor) -> Tensor {
        z.shallow_clone()
    }

    /// The change to this step's loss.
    fn change(&mut self, step: &Step<'_>) -> Change;

    /// Updates state after the step, from its detached features.
    fn observe(&mut self, _step: &Step<'_>) {}

    /// The state to checkpoint, as named tensors (empty for stateless aggregators).
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Restores what [`state`](Self::state) saved.
    ///
    /// # Errors
    /// [`StateError`] naming the missing or mismatched tensor.
    fn load_state(&mut self, _state: &[(String, Tensor)]) -> Result<(), StateError> {
        Ok(())
    }
}

/// A checkpointed aggregator state that does not fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    /// A tensor the aggregator needs is absent.
    #[error("aggregator state {0:?} is missing")]
    Missing(String),
    /// A tensor of the wrong shape.
    #[error("aggregator state {name:?} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// Its shape in the checkpoint.
        found: Vec<i64>,
        /// The shape this aggregator has.
        expected: Vec<i64>,
    },
}

/// Copies the named tensor `name` of `state` into `into`, checking its shape.
fn restore(state: &[(String, Tensor)], name: &str, into: &mut Tensor) -> Result<(), StateError> {
    let (_, saved) = state
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| StateError::Missing(name.into()))?;
    if saved.size() != into.size() {
        return Err(StateError::Shape {
            name: name.into(),
            found: saved.size(),
            expected: into.size(),
        });
    }
    tch::no_grad(|| into.copy_(saved));
    Ok(())
}

/// The baseline: every positive counts the same.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Aggregator for Plain {
    fn name(&self) -> String {
        "plain".into()
    }

    fn change(&mut self, _step: &Step<'_>) -> Change {
        Change::default()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use tch::Tensor;

    /// A tensor from rows of two values.
    pub fn t(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 2])
    }

    /// Sample indices `0..n` as int64.
    pub fn samples(ids: &[i64]) -> Tensor {
        Tensor::from_slice(ids)
    }
}
