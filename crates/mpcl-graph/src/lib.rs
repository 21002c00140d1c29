//! Augmentation graphs and the feature-space view of contrastive learning
//! (docs/science.md §1–3), on `ndarray` and `rayon`, never on libtorch.
//!
//! Views are the nodes; `A[x, x′]` weighs how likely `x` and `x′` are views of one sample.
//! Weights and features are f32 or f64 ([`Real`]); every update is written once for both.
//! - [`CsrGraph`]: sparse graphs, degrees, the normalisations Ā = D^-1/2 A D^-1/2 and D^-1 A,
//!   connected components and the largest one, edge dropping, casts between f32 and f64.
//! - [`Adjacency`]: what the updates need of a graph, for CSR and dense (`Array2`) graphs.
//! - [`build`]: ε-ball and k-NN graphs from point clouds (k-d tree, no all-pairs pass), the
//!   graph of views from a view → sample assignment (alone or with k-NN edges), rewiring
//!   with feature-space neighbours.
//! - [`descent`]: approximate k-NN lists by NN-descent, for many points in many dimensions.
//! - [`eigen`]: the top eigenpairs of Ā with a convergence report.
//! - [`objective`]: batch InfoNCE and spectral losses over a graph of views, written once, as
//!   oracles for the libtorch implementations.
//! - [`dynamics`]: the spectral and InfoNCE objectives in feature space, their
//!   message-passing steps, and the metrics of where the features go.
//! - [`flow`]: the spectral step on a sparse graph fused into one pass over the features.
//! - [`classes`]: class separation of features: a distance ratio and a least-squares probe.
//! - [`subspace`]: how close features come to a target subspace (principal angles, R²).
//! - [`sample`]: positive pairs drawn with probability ∝ A[x, x′].
//! - [`trajectory`]: runs of the dynamics with their metrics recorded every m steps.
//! - [`toy`]: the two-Gaussian toy experiment of science.md §3 (the paper's Figure 1).
//! - [`linalg`]: the small dense algebra these need (f64).

mod adjacency;
pub mod build;
pub mod classes;
mod csr;
pub mod descent;
pub mod dynamics;
pub mod eigen;
pub mod flow;
pub mod linalg;
pub mod objective;
mod prefetch;
mod real;
pub mod sample;
pub mod subspace;
#[cfg(test)]
mod testing;
pub mod toml_error;
pub mod toy;
pub mod trajectory;

pub use adjacency::Adjacency;
pub use csr::{ALIGN_ABOVE, CsrGraph, MAX_NODES, PREFETCH_AHEAD};
pub use prefetch::on_lines;
pub use real::Real;

/// Inputs the graph layer cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// Arrays whose shapes do not fit together.
    #[error("{0}")]
    Shape(String),
    /// A parameter outside its domain.
    #[error("{0}")]
    Parameter(String),
    /// An experiment file that cannot be used; names the file and the key.
    #[error("{origin}: {message}")]
    Config {
        /// The file.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
}
