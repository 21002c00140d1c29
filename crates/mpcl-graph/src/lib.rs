//! Augmentation graphs and the feature-space view of contrastive learning
//! (../shared/docs/science.md §1–2), on `ndarray`, never on libtorch.
//!
//! Views are the nodes; `A[x, x′]` weighs how likely `x` and `x′` are views of one sample.
//! The objectives here are written once, in f64, and serve the other crates as closed-form
//! oracles.
//!
//! Not here yet: sparse graphs, spectra and the dynamics (FIXME(#4)).

pub mod objective;
mod view_graph;

pub use view_graph::ViewGraph;

/// Inputs the graph layer cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// Arrays whose shapes do not fit together.
    #[error("{0}")]
    Shape(String),
    /// A parameter outside its domain.
    #[error("{0}")]
    Parameter(String),
}
