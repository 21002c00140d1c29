//! Contrastive training objectives on libtorch tensors.
//!
//! Every loss takes the embeddings of a batch in one layout: with `N` samples and `m` views
//! each, the views of sample `i` are rows `i, N + i, 2N + i, …` (view-major), which is how the
//! data loader stacks them. `N` is derived from the row count, so a short last batch works.
//!
//! The closed forms on `ndarray` live in `mpcl-graph`; the tests here check against them.
//! This crate does no I/O and keeps no state.

mod info_nce;

pub use info_nce::InfoNce;
use tch::Tensor;

/// The norm below which a row is treated as zero when normalising.
const NORM_EPS: f64 = 1e-12;

/// Each row divided by its Euclidean norm, or by ε = 1e-12 when the norm is smaller, so an
/// all-zero row stays zero instead of becoming NaN (`F.normalize`'s convention).
///
/// # Shapes
/// `z`: `[n, d]`; returns `[n, d]`.
pub fn normalize_rows(z: &Tensor) -> Tensor {
    z / z
        .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
        .clamp_min(NORM_EPS)
}

/// A loss called with inputs it cannot use; the message says what was passed and what was
/// expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// Inputs of the wrong shape or size.
    #[error("{0}")]
    Shape(String),
    /// A parameter outside its domain.
    #[error("{0}")]
    Parameter(String),
}
