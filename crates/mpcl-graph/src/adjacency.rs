//! What the feature-space updates need from a graph, for sparse ([`CsrGraph`]) and dense
//! (`Array2`) adjacencies alike, in f32 or f64.
//!
//! A dense graph is a square `Array2<T>`: right for small graphs and batches, where a dense
//! product beats the CSR gather; the updates in [`dynamics`](crate::dynamics) take either.
//! The CSR type alone carries the builders, components and normalisations.

use ndarray::{Array2, ArrayView2, Axis};

use crate::{CsrGraph, GraphError, Real};

/// A weighted graph as an operator on node features.
pub trait Adjacency<T: Real>: Sync {
    /// The number of nodes.
    fn nodes(&self) -> usize;

    /// The degrees `d = A·1`.
    fn degrees(&self) -> Vec<T>;

    /// `A·X`.
    ///
    /// # Shapes
    /// `x`: `[n, k]` with `n` the node count; returns `[n, k]`.
    ///
    /// # Panics
    /// If `x` has another row count.
    fn matmul(&self, x: ArrayView2<T>) -> Array2<T>;

    /// The adjacency as a dense matrix.
    ///
    /// # Shapes
    /// Returns `[n, n]`.
    fn to_dense(&self) -> Array2<T>;

    /// `c·A`.
    fn scaled(&self, c: T) -> Self
    where
        Self: Sized;

    /// Checks that the graph is square, with finite weights ≥ 0, and symmetric.
    ///
    /// # Errors
    /// [`GraphError::Shape`] or [`GraphError::Parameter`] naming the entry at fault.
    fn check_symmetric(&self) -> Result<(), GraphError>;
}

impl<T: Real> Adjacency<T> for CsrGraph<T> {
    fn nodes(&self) -> usize {
        CsrGraph::nodes(self)
    }

    fn degrees(&self) -> Vec<T> {
        CsrGraph::degrees(self)
    }

    fn matmul(&self, x: ArrayView2<T>) -> Array2<T> {
        CsrGraph::matmul(self, x)
    }

    fn to_dense(&self) -> Array2<T> {
        CsrGraph::to_dense(self)
    }

    fn scaled(&self, c: T) -> Self {
        CsrGraph::scaled(self, c)
    }

    fn check_symmetric(&self) -> Result<(), GraphError> {
        // Weights were checked on construction.
        if self.is_symmetric() {
            Ok(())
        } else {
            Err(GraphError::Parameter(
                "the adjacency is not symmetric".into(),
            ))
        }
    }
}

impl<T: Real> Adjacency<T> for Array2<T> {
    fn nodes(&self) -> usize {
        self.nrows()
    }

    fn degrees(&self) -> Vec<T> {
        self.sum_axis(Axis(1)).to_vec()
    }

    fn matmul(&self, x: ArrayView2<T>) -> Array2<T> {
        assert_eq!(
            x.nrows(),
            self.nrows(),
            "x has {} rows for {} nodes",
            x.nrows(),
            self.nrows()
        );
        self.dot(&x)
    }

    fn to_dense(&self) -> Array2<T> {
        self.clone()
    }

    fn scaled(&self, c: T) -> Self {
        self * c
    }

    fn check_symmetric(&self) -> Result<(), GraphError> {
        let (n, m) = self.dim();
        if n != m {
            return Err(GraphError::Shape(format!(
                "adjacency of shape {n}×{m} is not square"
            )));
        }
        if let Some(((i, j), v)) = self
            .indexed_iter()
            .find(|(_, v)| !(**v >= T::zero() && v.is_finite()))
        {
            return Err(GraphError::Parameter(format!(
                "A[{i}, {j}] = {v}: weights must be finite and ≥ 0"
            )));
        }
        match self
            .indexed_iter()
            .find(|((i, j), v)| **v != self[[*j, *i]])
        {
            Some(((i, j), _)) => Err(GraphError::Parameter(format!(
                "the adjacency is not symmetric: A[{i}, {j}] ≠ A[{j}, {i}]"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn dense_and_sparse_agree() {
        // The path 0 — 1 — 2 with self-loops, both ways, in both precisions.
        let a = array![[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]];
        let sparse = CsrGraph::from_dense(a.view()).unwrap();
        let x = array![[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]];
        // A·x by hand: rows (4, 1), (4.5, 1), (3.5, −1).
        let expected = array![[4.0, 1.0], [4.5, 1.0], [3.5, -1.0]];
        assert_eq!(Adjacency::matmul(&a, x.view()), expected);
        assert_eq!(Adjacency::matmul(&sparse, x.view()), expected);
        assert_eq!(Adjacency::degrees(&a), vec![2.0, 3.0, 2.0]);
        let a32 = a.mapv(|v| v as f32);
        let sparse32 = sparse.cast::<f32>();
        assert_eq!(sparse32.to_dense(), a32);
        assert_eq!(Adjacency::degrees(&sparse32), vec![2.0f32, 3.0, 2.0]);
        assert!(a.check_symmetric().is_ok() && sparse.check_symmetric().is_ok());
    }

    #[test]
    fn dense_checks_name_the_entry() {
        let bad = array![[0.0, 1.0], [2.0, 0.0]];
        let err = bad.check_symmetric().unwrap_err().to_string();
        assert!(err.contains("A[0, 1] ≠ A[1, 0]"), "{err}");
        let neg = array![[0.0, -1.0], [-1.0, 0.0]];
        let err = neg.check_symmetric().unwrap_err().to_string();
        assert!(err.contains("A[0, 1] = -1"), "{err}");
        let wide = Array2::<f32>::zeros((2, 3));
        assert!(
            wide.check_symmetric()
                .unwrap_err()
                .to_string()
                .contains("2×3")
        );
    }
}
