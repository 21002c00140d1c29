//! The spectral message-passing step on a sparse graph, fused so that the features are
//! streamed once per step.
//!
//! ```text
//! F ← F + η(ĀF − F(FᵀF)),   then the rescaling (none, global, per row)
//! ```
//! [`spectral_step`](crate::dynamics::spectral_step) forms ĀF, FᵀF, F(FᵀF) and the sum as
//! separate arrays: five passes over `[n, k]` arrays and a sixth for a global rescaling.
//! [`SpectralFlow`] works through F in blocks of rows that stay in cache: it gathers ĀF for
//! the block, subtracts the block's F·G (G = FᵀF, k×k, known from the previous step), adds
//! the block of F, rescales rows, and adds the new rows' Gram matrix into a per-task sum
//! before the block leaves the cache. Per step that is **one pass**: each row of F is read
//! once as itself (plus the E random row gathers of ĀF, which no ordering avoids) and each
//! row of the new F written once. The Gram matrix of the next step comes out of the same
//! pass, and the global rescaling is deferred as a scalar `c` (the true features are `c·F`)
//! folded into the next pass, so it costs no pass either.
//!
//! Dense products on a block (`F_B·G`, `F_Bᵀ F_B`) run on ndarray's matrix multiply; the
//! blocks of different tasks run in parallel on rayon. The gathers prefetch the rows they
//! will need, as [`CsrGraph::matmul_into`] does, and F is stored from the start of a cache
//! line so that a row of 32 f32 is two lines, not three.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::csr::ROWS_PER_TASK;
use crate::dynamics::{Renorm, Terms};
use crate::prefetch::zeros_on_lines;
use crate::{CsrGraph, GraphError, PREFETCH_AHEAD, Real};

/// Features evolving under the fused spectral step on one sparse graph.
///
/// The stored array `f` and a scale `c` represent the features `c·f`; only a global
/// rescaling sets `c ≠ 1`. The stored array's Gram matrix `fᵀf` is kept up to date.
#[derive(Debug, Clone)]
pub struct SpectralFlow<'a, T: Real> {
    abar: &'a CsrGraph<T>,
    f: Array2<T>,
    next: Array2<T>,
    gram: Array2<T>,
    scale: T,
    ahead: usize,
}

impl<'a, T: Real> SpectralFlow<'a, T> {
    /// Starts from the features `f` (taken as they are, not rescaled).
    ///
    /// # Shapes
    /// `f`: `[n, k]` with `n` the graph's node count.
    ///
    /// # Errors
    /// [`GraphError::Shape`] when `f` does not have a row per node or has no column.
    pub fn new(abar: &'a CsrGraph<T>, f: Array2<T>) -> Result<Self, GraphError> {
        let (n, k) = f.dim();
        if n != abar.nodes() || k == 0 {
            return Err(GraphError::Shape(format!(
                "features of shape {n}×{k} for a graph of {} nodes",
                abar.nodes()
            )));
        }
        let mut lined = zeros_on_lines((n, k));
        lined.assign(&f);
        let gram = lined.t().dot(&lined);
        Ok(Self {
            abar,
            next: zeros_on_lines((n, k)),
            f: lined,
            gram,
            scale: T::one(),
            ahead: PREFETCH_AHEAD,
        })
    }

    /// The same flow with the gathers prefetching `ahead` entries ahead (0: no prefetch)
    /// instead of [`PREFETCH_AHEAD`]; the steps are the same to the bit.
    pub fn with_prefetch(self, ahead: usize) -> Self {
        Self { ahead, ..self }
    }

    /// The current features `c·f`.
    ///
    /// # Shapes
    /// Returns `[n, k]`.
    pub fn features(&self) -> Array2<T> {
        &self.f * self.scale
    }

    /// The Gram matrix `FᵀF` of the current features, from the last pass (no pass of its
    /// own).
    ///
    /// # Shapes
    /// Returns `[k, k]`.
    pub fn gram(&self) -> Array2<T> {
        &self.gram * (self.scale * self.scale)
    }

    /// One step `F ← F + η(ĀF − F(FᵀF))`, or one of its terms, then the rescaling: the
    /// same update as [`spectral_step`](crate::dynamics::spectral_step), in one pass.
    ///
    /// Complexity: O(E·k + n·k²), reading F once and writing it once.
    pub fn step(&mut self, eta: T, terms: Terms, renorm: Renorm) {
        let k = self.f.ncols();
        let c = self.scale;
        // True features c·f: ĀF = c·Āf and F(FᵀF) = c³·f·G with G = fᵀf.
        let align = if terms == Terms::Uniformity {
            T::zero()
        } else {
            eta * c
        };
        let repel = if terms == Terms::Alignment {
            T::zero()
        } else {
            eta * c * c * c
        };
        let (abar, f, gram, ahead) = (self.abar, &self.f, &self.gram, self.ahead);
        let x = f.as_slice().expect("a standard layout");
        let next = self.next.as_slice_mut().expect("a standard layout");
        let gram_next = next
            .par_chunks_mut(k * ROWS_PER_TASK)
            .enumerate()
            .fold(
                || Array2::<T>::zeros((k, k)),
                |mut partial, (block, out)| {
                    let first = block * ROWS_PER_TASK;
                    let rows = out.len() / k;
                    let mut out = ArrayViewMut2::from_shape((rows, k), out).expect("k columns");
                    let own = f.slice(ndarray::s![first..first + rows, ..]);
                    let gather = (x, first, ahead);
                    block_step(abar, gather, own, gram, (c, align, repel), out.view_mut());
                    if renorm == Renorm::PerRow {
                        unit_rows(out.view_mut());
                    }
                    general_mat_mul(T::one(), &out.t(), &out, T::one(), &mut partial);
                    partial
                },
            )
            .reduce(|| Array2::<T>::zeros((k, k)), |a, b| a + b);
        std::mem::swap(&mut self.f, &mut self.next);
        self.gram = gram_next;
        self.scale = match renorm {
            Renorm::Global => {
                let norm2 = (0..k).map(|i| self.gram[[i, i]]).sum::<T>();
                if norm2 > T::zero() {
                    norm2.sqrt().recip()
                } else {
                    T::one()
                }
            }
            Renorm::None | Renorm::PerRow => T::one(),
        };
    }
}

/// The new rows of one block before any rescaling:
/// `out = c·f_B + align·(Āf)_B − repel·f_B·G`, the gathers of `(Āf)_B` prefetching `ahead`
/// entries ahead.
///
/// # Shapes
/// `x`: row-major `[n, k]`; `own`, `out`: `[b, k]` for the `b` rows from `first`; `gram`:
/// `[k, k]`.
fn block_step<T: Real>(
    abar: &CsrGraph<T>,
    (x, first, ahead): (&[T], usize, usize),
    own: ArrayView2<T>,
    gram: &Array2<T>,
    (c, align, repel): (T, T, T),
    mut out: ArrayViewMut2<T>,
) {
    if align != T::zero() {
        let slice = out.as_slice_mut().expect("a standard layout");
        abar.gather_rows(first, x, own.ncols(), slice, ahead);
        out.mapv_inplace(|v| v * align);
    } else {
        out.fill(T::zero());
    }
    if repel != T::zero() {
        general_mat_mul(-repel, &own, gram, T::one(), &mut out);
    }
    out.scaled_add(c, &own);
}

/// Scales each row to unit norm; rows of zero stay zero.
///
/// # Shapes
/// `out`: `[b, k]`.
fn unit_rows<T: Real>(mut out: ArrayViewMut2<T>) {
    for mut row in out.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > T::zero() {
            row.mapv_inplace(|v| v / norm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::random_out_neighbours;
    use crate::dynamics::spectral_step;
    use crate::eigen::random_block;

    /// Runs both implementations for `steps` steps and returns the largest entry-wise gap
    /// and the largest entry.
    fn gap<T: Real>(g: &CsrGraph<T>, terms: Terms, renorm: Renorm, steps: usize) -> (f64, f64) {
        let f0 = random_block(g.nodes(), 32, 5).mapv(|v| T::of(0.1 * v));
        let eta = T::of(0.3);
        let mut flow = SpectralFlow::new(g, f0.clone()).unwrap();
        let mut f = f0;
        for _ in 0..steps {
            flow.step(eta, terms, renorm);
            spectral_step(g, &mut f, eta, terms, renorm);
        }
        let fused = flow.features();
        let worst = fused
            .iter()
            .zip(&f)
            .map(|(a, b)| (a.widen() - b.widen()).abs())
            .fold(0.0, f64::max);
        let big = f.iter().map(|v| v.widen().abs()).fold(0.0, f64::max);
        (worst, big)
    }

    #[test]
    fn fused_step_equals_the_unfused_one() {
        // Oracle: dynamics::spectral_step, which forms every term as its own array. Over 20
        // steps the two differ only by rounding order: relative 1e-12 in f64, and 1e-4 in f32
        // (about 20 steps × sums of ~50 terms × 6e-8). 2000 nodes span several row blocks.
        let g64 = random_out_neighbours::<f64>(2000, 10, 1)
            .unwrap()
            .sym_normalized()
            .unwrap();
        let g32 = g64.cast::<f32>();
        for terms in [Terms::Alignment, Terms::Uniformity, Terms::Both] {
            for renorm in [Renorm::None, Renorm::Global, Renorm::PerRow] {
                let (worst, big) = gap(&g64, terms, renorm, 20);
                assert!(
                    worst <= 1e-12 * big,
                    "f64 {terms:?} {renorm:?}: {worst} of {big}"
                );
                let (worst, big) = gap(&g32, terms, renorm, 20);
                assert!(
                    worst <= 1e-4 * big,
                    "f32 {terms:?} {renorm:?}: {worst} of {big}"
                );
            }
        }
    }

    #[test]
    fn the_carried_gram_is_the_gram_of_the_features() {
        // Oracle: FᵀF recomputed from the materialised features.
        let g = random_out_neighbours::<f64>(700, 4, 2)
            .unwrap()
            .sym_normalized()
            .unwrap();
        let mut flow = SpectralFlow::new(&g, random_block(700, 8, 3)).unwrap();
        for _ in 0..5 {
            flow.step(0.2, Terms::Both, Renorm::Global);
        }
        let f = flow.features();
        let direct = f.t().dot(&f);
        assert!((flow.gram() - &direct).iter().all(|d| d.abs() < 1e-12));
        // Global rescaling: tr(FᵀF) = ‖F‖²_F = 1.
        assert!((direct.diag().sum() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn prefetching_changes_no_step() {
        // Oracle: the flow without prefetch; a prefetch changes no value, so the features
        // and Gram matrices agree to the bit after 5 steps on 1500 nodes (three row blocks).
        let g = random_out_neighbours::<f32>(1500, 10, 4)
            .unwrap()
            .sym_normalized()
            .unwrap();
        let f0 = random_block(1500, 32, 6).mapv(|v| 0.03 * v as f32);
        let mut with = SpectralFlow::new(&g, f0.clone()).unwrap();
        let mut without = SpectralFlow::new(&g, f0).unwrap().with_prefetch(0);
        for _ in 0..5 {
            with.step(0.1, Terms::Both, Renorm::Global);
            without.step(0.1, Terms::Both, Renorm::Global);
        }
        assert_eq!(with.features(), without.features());
        assert_eq!(with.gram(), without.gram());
    }

    #[test]
    fn mismatched_features_are_named() {
        let g = random_out_neighbours::<f64>(10, 2, 0).unwrap();
        let err = SpectralFlow::new(&g, Array2::zeros((9, 3))).unwrap_err();
        assert!(
            err.to_string().contains("9×3 for a graph of 10 nodes"),
            "{err}"
        );
    }
}
