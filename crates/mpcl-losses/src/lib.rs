//! Contrastive training objectives on libtorch tensors, and the split of their gradients into
//! the two messages of docs/science.md §2: alignment (from positives, along the
//! batch's augmentation graph) and uniformity (along the model's own affinity graph).
//!
//! Every loss takes the embeddings of a batch in one layout: with `N` samples and `m` views
//! each, the views of sample `i` are rows `i, N + i, 2N + i, …` (view-major), which is how the
//! data loader stacks them. `N` is derived from the row count, so a short last batch works.
//!
//! The closed forms on `ndarray` live in `mpcl-graph`; the tests here check against them.
//! This crate does no I/O and keeps no state.

mod align_uniform;
mod info_nce;
mod simsiam;
mod spectral;

pub use align_uniform::{alignment, uniformity};
pub use info_nce::InfoNce;
pub use simsiam::simsiam;
pub use spectral::Spectral;
use tch::{Device, Kind, Tensor};

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

/// A gradient with respect to the embeddings, split into its two messages.
///
/// # Shapes
/// Both `[m·N, d]`, like the embeddings they are the gradient for.
#[derive(Debug)]
pub struct GradientSplit {
    /// Messages from positives: the aggregation along the augmentation graph (pulls views of
    /// one sample together).
    pub alignment: Tensor,
    /// Messages along the affinity graph (pushes views apart).
    pub uniformity: Tensor,
}

impl GradientSplit {
    /// Both parts carried back through the row normalisation `u = z/max(‖z‖, ε)`: each row
    /// projected on the tangent space at `uᵣ` and divided by `‖zᵣ‖` (the chain rule), so
    /// the sum is the gradient with respect to `z`. Only these tangential parts move the features:
    /// with unit rows the alignment message itself has the constant norm 2/(τ√R) for two views,
    /// while its tangential part vanishes as positives align.
    ///
    /// # Shapes
    /// `z`: `[m·N, d]`, the embeddings the split was computed for.
    pub fn through_normalization(&self, z: &Tensor) -> GradientSplit {
        tch::no_grad(|| {
            let z = z.detach().to_kind(self.alignment.kind());
            let norm = z
                .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
                .clamp_min(NORM_EPS);
            let u = &z / &norm;
            let project = |g: &Tensor| {
                let radial = (g * &u).sum_dim_intlist([1i64].as_slice(), true, g.kind());
                (g - radial * &u) / &norm
            };
            GradientSplit {
                alignment: project(&self.alignment),
                uniformity: project(&self.uniformity),
            }
        })
    }
}

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

/// The working precision for an input: f64 stays f64, everything else (f16, bf16) is
/// computed in f32.
fn work_kind(z: &Tensor) -> Kind {
    if z.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// Checks the view-major layout and returns `(rows, n)`.
fn check_layout(z: &Tensor, views: usize, what: &str) -> Result<(i64, i64), LossError> {
    let size = z.size();
    let [rows, _d] = size[..] else {
        return Err(LossError::Shape(format!(
            "{what} of shape {size:?}: expected [views·N, d] with views = {views}"
        )));
    };
    if rows == 0 {
        return Err(LossError::Shape(format!("empty batch: {what} has 0 rows")));
    }
    if rows % views as i64 != 0 {
        return Err(LossError::Shape(format!(
            "{what} has {rows} rows, not a multiple of views = {views}: expected views·N rows, \
             the views of sample i at rows i, N + i, …"
        )));
    }
    Ok((rows, rows / views as i64))
}

/// Checks that there are at least two views.
fn check_views(views: usize) -> Result<(), LossError> {
    if views < 2 {
        return Err(LossError::Parameter(format!(
            "views = {views}: a contrastive loss needs at least 2 views per sample"
        )));
    }
    Ok(())
}

/// The positive mask of the view-major layout: `[rows, rows]`, true where two distinct rows
/// are views of one sample.
fn positive_mask(rows: i64, n: i64, device: Device) -> Tensor {
    let ids = Tensor::arange(rows, (Kind::Int64, device)).remainder(n);
    let eye = Tensor::eye(rows, (Kind::Bool, device));
    ids.unsqueeze(0)
        .eq_tensor(&ids.unsqueeze(1))
        .logical_and(&eye.logical_not())
}
