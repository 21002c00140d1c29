//! Sparse graphs in compressed sparse row form, with the degree and normalisation operators
//! of science.md §1.
//!
//! Self-loops are explicit entries; nothing is added silently. A node of degree 0 has no
//! normalised row (`D^-1/2` is undefined there), so the normalisations reject it by name.

use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::{GraphError, Real};

/// A weighted graph on `n` nodes in CSR form: the neighbours of node `i` are
/// `indices[indptr[i]..indptr[i + 1]]`, sorted, with the matching `weights` of type `T`
/// (f64 by default, or f32). Column indices are u32, as in SciPy's CSR below 2³¹ entries:
/// half the index traffic of the products, for graphs of up to 2³² nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrGraph<T = f64> {
    n: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    weights: Vec<T>,
}

/// The most nodes a [`CsrGraph`] holds: its column indices are u32.
pub const MAX_NODES: usize = (u32::MAX as usize).saturating_add(1);

/// How many entries ahead the sparse products prefetch the row of X they will gather
/// ([`CsrGraph::matmul_into`], [`SpectralFlow`](crate::flow::SpectralFlow)). Measured on
/// the benchmark graph at N = 1e6 (docs/graph-scale.md): 24–64 ahead ran within noise of one
/// another, 8–16 slower; 32 entries of 128-byte rows keep 64–96 lines in flight.
pub const PREFETCH_AHEAD: usize = 32;

/// Above this many bytes of X (beyond the 0.5–2 MiB level-2 caches of current CPUs),
/// [`CsrGraph::matmul_into`] copies an X whose rows straddle cache lines onto aligned rows
/// before gathering: the rows then come from memory, where a third line per row costs more
/// than the copy. Below it the gathers mostly hit the caches and the copy would not pay.
pub const ALIGN_ABOVE: usize = 4 << 20;

impl<T: Real> CsrGraph<T> {
    /// Builds a graph from `(row, column, weight)` triplets; duplicates are summed.
    ///
    /// # Errors
    /// [`GraphError::Shape`] for an index ≥ `n` or `n` > [`MAX_NODES`],
    /// [`GraphError::Parameter`] for a weight that is negative or not finite.
    ///
    /// Complexity: O(n + E + Σᵢ dᵢ log dᵢ) for E triplets and dᵢ entries in row i: a
    /// counting sort by row, then each row sorted in parallel.
    pub fn from_triplets(n: usize, triplets: Vec<(usize, usize, T)>) -> Result<Self, GraphError> {
        if n > MAX_NODES {
            return Err(GraphError::Shape(format!(
                "a graph of {n} nodes: column indices are u32, so at most {MAX_NODES} nodes"
            )));
        }
        if let Some(&(i, j, _)) = triplets.iter().find(|(i, j, _)| *i >= n || *j >= n) {
            return Err(GraphError::Shape(format!(
                "edge ({i}, {j}) in a graph of {n} nodes"
            )));
        }
        if let Some(&(i, j, w)) = triplets
            .iter()
            .find(|t| !(t.2 >= T::zero() && t.2.is_finite()))
        {
            return Err(GraphError::Parameter(format!(
                "edge ({i}, {j}) has weight {w}"
            )));
        }
        // Counting sort by row, then each row sorted by column and its duplicates summed.
        let mut indptr = vec![0usize; n + 1];
        triplets.iter().for_each(|&(i, _, _)| indptr[i + 1] += 1);
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        // Every j < n ≤ MAX_NODES (checked above): the casts to u32 are exact.
        let mut slots = vec![(0u32, T::zero()); triplets.len()];
        let mut next = indptr.clone();
        for (i, j, w) in triplets {
            slots[next[i]] = (j as u32, w);
            next[i] += 1;
        }
        let mut rows = Vec::with_capacity(n);
        let mut rest = slots.as_mut_slice();
        for i in 0..n {
            let (row, tail) = rest.split_at_mut(indptr[i + 1] - indptr[i]);
            rows.push(row);
            rest = tail;
        }
        rows.par_iter_mut()
            .with_min_len(1024)
            .for_each(|row| row.sort_unstable_by_key(|&(j, _)| j));
        let (mut indices, mut weights) = (Vec::with_capacity(slots.len()), Vec::new());
        weights.reserve(slots.len());
        let mut merged_ptr = vec![0usize; n + 1];
        for i in 0..n {
            for &(j, w) in &slots[indptr[i]..indptr[i + 1]] {
                if indices.len() > merged_ptr[i] && indices.last() == Some(&j) {
                    *weights.last_mut().expect("a previous entry") += w;
                } else {
                    indices.push(j);
                    weights.push(w);
                }
            }
            merged_ptr[i + 1] = indices.len();
        }
        let indptr = merged_ptr;
        Ok(Self {
            n,
            indptr,
            indices,
            weights,
        })
    }

    /// The symmetric graph with edge weights `A[i, j] + A[j, i]`: `A + Aᵀ`.
    pub fn symmetrized(&self) -> Self {
        let mut triplets: Vec<_> = self.triplets().collect();
        triplets.extend(self.triplets().map(|(i, j, w)| (j, i, w)));
        Self::from_triplets(self.n, triplets).expect("indices and weights were valid")
    }

    /// The dense adjacency of a graph given as a matrix.
    ///
    /// # Errors
    /// [`GraphError::Shape`] for a non-square matrix, [`GraphError::Parameter`] for negative
    /// or non-finite entries.
    pub fn from_dense(a: ArrayView2<T>) -> Result<Self, GraphError> {
        let (n, m) = a.dim();
        if n != m {
            return Err(GraphError::Shape(format!(
                "adjacency of shape {n}×{m} is not square"
            )));
        }
        let triplets = a
            .indexed_iter()
            .filter(|(_, w)| **w != T::zero())
            .map(|((i, j), &w)| (i, j, w));
        Self::from_triplets(n, triplets.collect())
    }

    /// The graph as a dense matrix.
    pub fn to_dense(&self) -> Array2<T> {
        let mut a = Array2::zeros((self.n, self.n));
        for (i, j, w) in self.triplets() {
            a[[i, j]] = w;
        }
        a
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// The number of stored entries (an undirected edge counts twice, a self-loop once).
    pub fn entries(&self) -> usize {
        self.indices.len()
    }

    /// Every stored entry as `(row, column, weight)`, row by row.
    pub fn triplets(&self) -> impl Iterator<Item = (usize, usize, T)> + '_ {
        (0..self.n).flat_map(move |i| self.row(i).map(move |(j, w)| (i, j, w)))
    }

    /// The neighbours of node `i` with their weights.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, T)> + '_ {
        let range = self.indptr[i]..self.indptr[i + 1];
        self.indices[range.clone()]
            .iter()
            .map(|&j| j as usize)
            .zip(self.weights[range].iter().copied())
    }

    /// The degrees `d = A·1`.
    pub fn degrees(&self) -> Vec<T> {
        (0..self.n)
            .map(|i| self.row(i).map(|(_, w)| w).sum())
            .collect()
    }

    /// Whether `A = Aᵀ` exactly.
    pub fn is_symmetric(&self) -> bool {
        let t = Self::from_triplets(self.n, self.triplets().map(|(i, j, w)| (j, i, w)).collect());
        t.is_ok_and(|t| t == *self)
    }

    /// The first node of degree 0, for the normalisations' error.
    fn check_degrees(&self) -> Result<Vec<T>, GraphError> {
        let d = self.degrees();
        match d.iter().position(|&x| x <= T::zero()) {
            Some(i) => Err(GraphError::Parameter(format!(
                "node {i} has degree 0: D^-1/2 is undefined there (add self-loops, or keep the \
                 largest component)"
            ))),
            None => Ok(d),
        }
    }

    /// The symmetric normalisation `Ā = D^-1/2 A D^-1/2`, eigenvalues in [−1, 1].
    ///
    /// # Errors
    /// [`GraphError::Parameter`] naming a node of degree 0.
    pub fn sym_normalized(&self) -> Result<Self, GraphError> {
        let d = self.check_degrees()?;
        let s: Vec<T> = d.iter().map(|x| x.sqrt().recip()).collect();
        // sᵢ·sⱼ first: a product of two factors is the same both ways round, so Ā stays
        // exactly symmetric ((w·sᵢ)·sⱼ and (w·sⱼ)·sᵢ can differ in the last bit).
        Ok(self.map_weights(|i, j, w| w * (s[i] * s[j])))
    }

    /// The random-walk normalisation `D^-1 A`, rows summing to 1.
    ///
    /// # Errors
    /// [`GraphError::Parameter`] naming a node of degree 0.
    pub fn random_walk(&self) -> Result<Self, GraphError> {
        let d = self.check_degrees()?;
        Ok(self.map_weights(|i, _, w| w / d[i]))
    }

    fn map_weights(&self, f: impl Fn(usize, usize, T) -> T) -> Self {
        let weights = self.triplets().map(|(i, j, w)| f(i, j, w)).collect();
        Self {
            weights,
            ..self.clone()
        }
    }

    /// Writes `A·X` into `out`, rows in parallel, prefetching [`PREFETCH_AHEAD`] entries
    /// ahead.
    ///
    /// Each output row is accumulated in registers from the rows of `x` its neighbours
    /// select and written once: the product reads the graph once, gathers E rows of `x` and
    /// writes `out` once. Row widths 1, 8, 16, 32 and 64 have unrolled kernels. While it adds
    /// one entry's row it asks for the row of the entry [`PREFETCH_AHEAD`] places further on
    /// (crossing row ends), so that the random gathers overlap instead of waiting on memory
    /// one by one (docs/graph-scale.md). Rows of `x` that start on a 64-byte cache line
    /// cost fewer lines per gather than rows that straddle one more: when rows are whole
    /// lines (`k·size_of::<T>()` a multiple of 64), `x` does not start on one and exceeds
    /// [`ALIGN_ABOVE`] bytes, the product gathers from a copy made by
    /// [`on_lines`](crate::on_lines) (one sequential pass against E random gathers).
    ///
    /// # Shapes
    /// `x`: `[n, k]`; `out`: `[n, k]`.
    ///
    /// # Panics
    /// If the shapes do not match the graph.
    ///
    /// Complexity: O(E·k).
    pub fn matmul_into(&self, x: ArrayView2<T>, out: ArrayViewMut2<T>) {
        let big = x.len() * size_of::<T>() > ALIGN_ABOVE;
        match x.as_slice() {
            Some(flat) if big && crate::prefetch::straddles(flat, x.ncols()) => {
                let x = crate::on_lines(x);
                self.matmul_into_prefetching(x.view(), out, PREFETCH_AHEAD);
            }
            _ => self.matmul_into_prefetching(x, out, PREFETCH_AHEAD),
        }
    }

    /// [`matmul_into`](Self::matmul_into) with the prefetch `ahead` entries ahead, or none
    /// for `ahead = 0`, gathering from `x` where it lies (no copy onto cache lines): the same
    /// sums in the same order, so the same result to the bit. For tuning the distance to a
    /// machine and for measuring what prefetching and alignment gain.
    ///
    /// # Shapes
    /// `x`: `[n, k]`; `out`: `[n, k]`.
    ///
    /// # Panics
    /// If the shapes do not match the graph.
    pub fn matmul_into_prefetching(
        &self,
        x: ArrayView2<T>,
        mut out: ArrayViewMut2<T>,
        ahead: usize,
    ) {
        assert_eq!(
            x.nrows(),
            self.n,
            "x has {} rows for {} nodes",
            x.nrows(),
            self.n
        );
        assert_eq!(
            out.dim(),
            x.dim(),
            "out has shape {:?}, x {:?}",
            out.dim(),
            x.dim()
        );
        let k = x.ncols();
        if k == 0 {
            return;
        }
        let x = x.as_standard_layout();
        let x = x.as_slice().expect("a standard layout");
        match out.as_slice_mut() {
            Some(out) => self.matmul_slices(x, k, out, ahead),
            None => {
                let mut dense = Array2::zeros((self.n, k));
                let slice = dense.as_slice_mut().expect("a fresh array");
                self.matmul_slices(x, k, slice, ahead);
                out.assign(&dense);
            }
        }
    }

    /// `A·X` on row-major slices of width `k`, blocks of rows in parallel.
    fn matmul_slices(&self, x: &[T], k: usize, out: &mut [T], ahead: usize) {
        out.par_chunks_mut(k * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(block, rows)| self.gather_rows(block * ROWS_PER_TASK, x, k, rows, ahead));
    }

    /// Writes rows `first..first + b` of `A·X` into `out`, `(A·X)ᵢ = Σⱼ A[i, j]·Xⱼ`, with
    /// the row of the entry `ahead` places on prefetched (none for `ahead = 0`).
    ///
    /// # Shapes
    /// `x`: `[n·k]` (row-major `[n, k]`); `out`: `[b·k]` (row-major `[b, k]`), k > 0.
    pub(crate) fn gather_rows(&self, first: usize, x: &[T], k: usize, out: &mut [T], ahead: usize) {
        match (k, ahead > 0) {
            (1, true) => self.gather::<1, true>(first, x, out, k, ahead),
            (8, true) => self.gather::<8, true>(first, x, out, k, ahead),
            (16, true) => self.gather::<16, true>(first, x, out, k, ahead),
            (32, true) => self.gather::<32, true>(first, x, out, k, ahead),
            (64, true) => self.gather::<64, true>(first, x, out, k, ahead),
            (_, true) => self.gather::<0, true>(first, x, out, k, ahead),
            (1, false) => self.gather::<1, false>(first, x, out, k, 0),
            (8, false) => self.gather::<8, false>(first, x, out, k, 0),
            (16, false) => self.gather::<16, false>(first, x, out, k, 0),
            (32, false) => self.gather::<32, false>(first, x, out, k, 0),
            (64, false) => self.gather::<64, false>(first, x, out, k, 0),
            (_, false) => self.gather::<0, false>(first, x, out, k, 0),
        }
    }

    /// The kernel of [`gather_rows`](Self::gather_rows) for a row width `K` known at compile
    /// time (`K = 0`: the width `k` known at run time), prefetching when `AHEAD`. With `K > 0`
    /// a row's sum stays in registers and `out` is written once; with `K = 0` it is summed
    /// in place.
    ///
    /// # Shapes
    /// `x`: row-major `[n, k]`; `out`: row-major `[b, k]`.
    #[inline]
    fn gather<const K: usize, const AHEAD: bool>(
        &self,
        first: usize,
        x: &[T],
        out: &mut [T],
        k: usize,
        ahead: usize,
    ) {
        let k = if K == 0 { k } else { K };
        for (r, acc) in out.chunks_exact_mut(k).enumerate() {
            let entries = self.indptr[first + r]..self.indptr[first + r + 1];
            let mut fixed = [T::zero(); K];
            let sum: &mut [T] = if K == 0 {
                acc.fill(T::zero());
                &mut *acc
            } else {
                &mut fixed
            };
            for e in entries {
                if AHEAD && let Some(&later) = self.indices.get(e + ahead) {
                    let at = later as usize * k;
                    crate::prefetch::lines(&x[at..at + k]);
                }
                let (j, w) = (self.indices[e] as usize * k, self.weights[e]);
                for (s, &v) in sum.iter_mut().zip(&x[j..j + k]) {
                    *s += w * v;
                }
            }
            if K > 0 {
                acc.copy_from_slice(&fixed);
            }
        }
    }

    /// `A·X`.
    ///
    /// # Shapes
    /// `x`: `[n, k]`; returns `[n, k]`.
    pub fn matmul(&self, x: ArrayView2<T>) -> Array2<T> {
        let mut out = Array2::zeros(x.dim());
        self.matmul_into(x, out.view_mut());
        out
    }

    /// The connected components: a label per node, labels numbered from 0 in order of their
    /// first node. Edges are followed in both directions.
    ///
    /// Complexity: O(n + E) with a union–find.
    pub fn components(&self) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..self.n).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (i, j, _) in self.triplets() {
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
        let mut label = vec![usize::MAX; self.n];
        let mut next = 0;
        (0..self.n)
            .map(|i| {
                let root = find(&mut parent, i);
                if label[root] == usize::MAX {
                    label[root] = next;
                    next += 1;
                }
                label[root]
            })
            .collect()
    }

    /// The subgraph on the nodes of the largest component (the first of equal size), and
    /// the original index of each of its nodes.
    pub fn largest_component(&self) -> (Self, Vec<usize>) {
        let labels = self.components();
        let count = labels.iter().max().map_or(0, |m| m + 1);
        let mut sizes = vec![0usize; count];
        labels.iter().for_each(|&l| sizes[l] += 1);
        let best = (0..count)
            .max_by_key(|&l| (sizes[l], std::cmp::Reverse(l)))
            .unwrap_or(0);
        let keep: Vec<usize> = (0..self.n).filter(|&i| labels[i] == best).collect();
        (self.subgraph(&keep), keep)
    }

    /// The subgraph induced by `nodes` (in that order).
    pub fn subgraph(&self, nodes: &[usize]) -> Self {
        let mut new_index = vec![usize::MAX; self.n];
        nodes
            .iter()
            .enumerate()
            .for_each(|(k, &i)| new_index[i] = k);
        let triplets = self
            .triplets()
            .filter(|&(i, j, _)| new_index[i] != usize::MAX && new_index[j] != usize::MAX)
            .map(|(i, j, w)| (new_index[i], new_index[j], w))
            .collect();
        Self::from_triplets(nodes.len(), triplets).expect("a subgraph of a valid graph")
    }

    /// Keeps only the entries of weight at least `min` (self-loops included).
    pub fn dropping_below(&self, min: T) -> Self {
        let kept = self.triplets().filter(|t| t.2 >= min).collect();
        Self::from_triplets(self.n, kept).expect("a subset of a valid graph")
    }

    /// The same graph with weights of type `U`, each rounded to the nearest `U`.
    pub fn cast<U: Real>(&self) -> CsrGraph<U> {
        CsrGraph {
            n: self.n,
            indptr: self.indptr.clone(),
            indices: self.indices.clone(),
            weights: self.weights.iter().map(|&w| U::of(w.widen())).collect(),
        }
    }

    /// The graph scaled by `c`: weights `c·A[i, j]`.
    ///
    /// # Panics
    /// If `c` is negative or not finite.
    pub fn scaled(&self, c: T) -> Self {
        assert!(c >= T::zero() && c.is_finite(), "scale {c}: expected ≥ 0");
        self.map_weights(|_, _, w| w * c)
    }
}

/// Rows per parallel task of the sparse products: enough to amortise the scheduling.
pub(crate) const ROWS_PER_TASK: usize = 512;

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    fn path3() -> CsrGraph {
        // 0 — 1 — 2 with self-loops.
        let a = array![[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]];
        CsrGraph::from_dense(a.view()).unwrap()
    }

    #[test]
    fn normalisations_by_hand() {
        let g = path3();
        assert_eq!(g.degrees(), vec![2.0, 3.0, 2.0]);
        // Ā[0, 1] = 1/√(2·3); Ā[1, 1] = 1/3.
        let s = g.sym_normalized().unwrap().to_dense();
        assert!((s[[0, 1]] - 1.0 / 6f64.sqrt()).abs() < 1e-15);
        assert!((s[[1, 1]] - 1.0 / 3.0).abs() < 1e-15);
        let rw = g.random_walk().unwrap().to_dense();
        for row in rw.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn the_normalisation_of_a_weighted_symmetric_graph_is_exactly_symmetric() {
        // Weights other than 1 and unequal degrees: the case where rounding could break it.
        let mut triplets = Vec::new();
        for i in 0..40usize {
            for j in [i, (i + 1) % 40, (i * 7 + 3) % 40] {
                let w = 0.3 + (i * j % 11) as f64 * 0.7;
                triplets.extend([(i, j, w), (j, i, w)]);
            }
        }
        let g = CsrGraph::from_triplets(40, triplets).unwrap();
        assert!(g.is_symmetric());
        assert!(g.sym_normalized().unwrap().is_symmetric());
    }

    #[test]
    fn degree_zero_is_an_error_not_a_nan() {
        let g = CsrGraph::from_triplets(3, vec![(0, 1, 1.0), (1, 0, 1.0)]).unwrap();
        let err = g.sym_normalized().unwrap_err().to_string();
        assert!(err.contains("node 2 has degree 0"), "{err}");
        assert!(g.random_walk().is_err());
    }

    #[test]
    fn components_and_the_largest_one() {
        // {0, 2, 4} linked, {1, 3} linked, 5 alone.
        let edges = vec![(0, 2, 1.0), (2, 4, 1.0), (1, 3, 1.0)];
        let g = CsrGraph::from_triplets(6, edges).unwrap().symmetrized();
        assert_eq!(g.components(), vec![0, 1, 0, 1, 0, 2]);
        let (big, nodes) = g.largest_component();
        assert_eq!(nodes, vec![0, 2, 4]);
        assert_eq!(big.nodes(), 3);
        assert_eq!(big.entries(), 4);
    }

    #[test]
    fn matmul_matches_the_dense_product() {
        let g = path3().sym_normalized().unwrap();
        let x = array![[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]];
        let expected = g.to_dense().dot(&x);
        assert!(
            (g.matmul(x.view()) - expected)
                .iter()
                .all(|d| d.abs() < 1e-15)
        );
    }

    #[test]
    fn matmul_kernels_match_the_dense_product() {
        // Every kernel width (1, 8, 16, 32, 64 unrolled; 3 and 40 generic), a transposed input
        // and a strided output, against ndarray's dense product in f64. f64 agrees to
        // rounding (1e-12); f32 sums ≤ 40 terms |Ā[i, j]·x| ≤ 1 with relative error 6e-8
        // each, so 1e-5 bounds it.
        let g = crate::build::random_out_neighbours::<f64>(300, 5, 7)
            .unwrap()
            .sym_normalized()
            .unwrap();
        let dense = g.to_dense();
        let g32 = g.cast::<f32>();
        for k in [1, 3, 8, 16, 32, 40, 64] {
            let x = crate::eigen::random_block(300, k, k as u64);
            let expected = dense.dot(&x);
            let close = |got: &Array2<f64>, tol: f64| {
                got.iter().zip(&expected).all(|(a, b)| (a - b).abs() < tol)
            };
            assert!(close(&g.matmul(x.view()), 1e-12), "f64, k = {k}");
            let x32 = x.mapv(|v| v as f32);
            assert!(
                close(&g32.matmul(x32.view()).mapv(f64::from), 1e-5),
                "f32, k = {k}"
            );
            let xt = x.t().to_owned();
            let mut out = Array2::zeros((k, 300));
            g.matmul_into(xt.t(), out.view_mut().reversed_axes());
            assert!(close(&out.t().to_owned(), 1e-12), "strided, k = {k}");
        }
    }

    /// A graph on 600 nodes (two row blocks of the parallel split) whose rows 0, 300, 511,
    /// 512 and 599 are empty, the others with 0–12 entries of weights in (0, 1].
    fn graph_with_empty_rows() -> CsrGraph {
        let empty = [0, 300, 511, 512, 599];
        let n = 600;
        let draws = crate::eigen::random_block(n, 25, 11);
        let triplets = (0..n)
            .filter(|i| !empty.contains(i))
            .flat_map(|i| {
                let row = draws.row(i);
                let count = ((row[0] + 1.0) * 6.5) as usize;
                (1..=count)
                    .map(move |c| {
                        let j = ((row[c] + 1.0) / 2.0 * n as f64) as usize % n;
                        (i, j, (row[c + 12] + 1.0) / 2.0 + 1e-3)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let g = CsrGraph::from_triplets(n, triplets).unwrap();
        assert!(empty.iter().all(|&i| g.row(i).count() == 0));
        g
    }

    #[test]
    fn prefetching_kernels_match_the_plain_one_and_the_dense_product() {
        // Oracles: the kernel without prefetch (ahead = 0), which must agree to the bit since
        // a prefetch changes no value; and ndarray's dense product, to rounding (f64: sums of
        // ≤ 13 terms |w·x| ≤ 1, so 1e-13; f32: 13 × 6e-8 relative, so 1e-5). Every width
        // 1…64 (the unrolled ones and the run-time width), distances 1 to past the last
        // entry, empty rows at block edges, strided input and output.
        let g = graph_with_empty_rows();
        let g32 = g.cast::<f32>();
        let dense = g.to_dense();
        for k in 1..=64 {
            let x = crate::eigen::random_block(600, k, k as u64);
            let expected = dense.dot(&x);
            let plain = {
                let mut out = Array2::zeros((600, k));
                g.matmul_into_prefetching(x.view(), out.view_mut(), 0);
                out
            };
            assert!(
                plain
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| (a - b).abs() < 1e-13),
                "plain f64, k = {k}"
            );
            let x32 = x.mapv(|v| v as f32);
            let plain32 = {
                let mut out = Array2::zeros((600, k));
                g32.matmul_into_prefetching(x32.view(), out.view_mut(), 0);
                out
            };
            assert!(
                plain32
                    .iter()
                    .zip(&expected)
                    .all(|(&a, b)| (f64::from(a) - b).abs() < 1e-5),
                "plain f32, k = {k}"
            );
            assert_eq!(g.matmul(x.view()), plain, "the default, k = {k}");
            for ahead in [1, 5, PREFETCH_AHEAD, g.entries() + 7] {
                let mut out = Array2::zeros((600, k));
                g.matmul_into_prefetching(x.view(), out.view_mut(), ahead);
                assert_eq!(out, plain, "f64, k = {k}, ahead = {ahead}");
                let mut out = Array2::zeros((600, k));
                g32.matmul_into_prefetching(x32.view(), out.view_mut(), ahead);
                assert_eq!(out, plain32, "f32, k = {k}, ahead = {ahead}");
            }
            // Transposed input, output written through a transposed view.
            let xt = x.t().to_owned();
            let mut out = Array2::zeros((k, 600));
            g.matmul_into_prefetching(xt.t(), out.view_mut().reversed_axes(), PREFETCH_AHEAD);
            assert_eq!(out.t(), plain, "strided, k = {k}");
        }
    }

    #[test]
    fn a_product_from_rows_off_the_cache_lines_equals_the_kernel_on_them_as_they_lie() {
        // Oracle: the raw kernel on the input where it lies; the copy onto lines changes
        // where rows are read from, not the sums or their order, so the bits agree. Two views
        // of one allocation 4 bytes apart cannot both start on a line, and both exceed
        // ALIGN_ABOVE, so at least one takes the copying path.
        let n = ALIGN_ABOVE / (32 * 4) + 100;
        let g = crate::build::random_out_neighbours::<f32>(n, 3, 11).unwrap();
        let flat: Vec<f32> = (0..n * 32 + 1).map(|i| (i % 97) as f32 - 48.0).collect();
        let mut copied = 0;
        for from in [0, 1] {
            let x = ArrayView2::from_shape((n, 32), &flat[from..from + n * 32]).unwrap();
            copied += usize::from(crate::prefetch::straddles(&flat[from..], 32));
            let mut raw = Array2::zeros((n, 32));
            g.matmul_into_prefetching(x, raw.view_mut(), 0);
            assert_eq!(g.matmul(x), raw, "offset {from}");
        }
        assert!(copied >= 1);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn too_many_nodes_for_u32_indices_is_an_error() {
        // MAX_NODES + 1 nodes is rejected before any array of that size is allocated.
        let err = CsrGraph::<f64>::from_triplets(MAX_NODES + 1, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("column indices are u32"), "{err}");
    }

    #[test]
    fn bad_triplets_are_named() {
        let err = CsrGraph::from_triplets(2, vec![(0, 2, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("edge (0, 2) in a graph of 2 nodes"), "{err}");
        let err = CsrGraph::from_triplets(2, vec![(0, 1, -1.0)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("weight -1"), "{err}");
    }
}
