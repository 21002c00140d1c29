//! Graphs from point clouds and from views, and rewiring helpers.
//!
//! The point-cloud builders use a k-d tree, so they never compare all pairs: building the
//! tree costs O(n log n); an ε-ball query visits the cells that meet the ball, a k-NN query
//! O(log n) cells in low dimensions. In high dimensions (d ≳ 16) k-d trees degrade towards a
//! scan; there [`nn_descent`](crate::descent::nn_descent) builds an approximate k-NN graph
//! with a measured recall ([`recall`] against [`nearest_lists`] on a sample).

use std::collections::BinaryHeap;

use ndarray::ArrayView2;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{CsrGraph, GraphError, Real};

/// Points per leaf of the k-d tree.
const LEAF: usize = 16;

/// A k-d tree over the rows of a point cloud.
struct KdTree<'a> {
    points: ArrayView2<'a, f64>,
    /// Point indices, permuted so that every node's points are contiguous.
    order: Vec<usize>,
    /// The tree, root first; empty for an empty point cloud.
    nodes: Vec<Node>,
}

/// A node: its points are `order[range.0..range.1]`; an inner node splits them at
/// `(dimension, value, left child, right child)`, a leaf has no split.
struct Node {
    range: (usize, usize),
    split: Option<(usize, f64, usize, usize)>,
}

/// A candidate neighbour ordered by distance, for the k-NN max-heap.
#[derive(PartialEq)]
struct Candidate(f64, usize);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl<'a> KdTree<'a> {
    fn new(points: ArrayView2<'a, f64>) -> Self {
        let mut tree = Self {
            points,
            order: (0..points.nrows()).collect(),
            nodes: Vec::new(),
        };
        if points.nrows() > 0 {
            tree.build(0, points.nrows());
        }
        tree
    }

    fn build(&mut self, start: usize, end: usize) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            range: (start, end),
            split: None,
        });
        if end - start <= LEAF {
            return id;
        }
        // Split the widest dimension at its median.
        let dims = self.points.ncols();
        let spread = |d: usize| {
            let vals = self.order[start..end].iter().map(|&i| self.points[[i, d]]);
            let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
            hi - lo
        };
        let dim = (0..dims)
            .max_by(|&a, &b| spread(a).total_cmp(&spread(b)))
            .unwrap_or(0);
        let mid = (start + end) / 2;
        let points = self.points;
        self.order[start..end].select_nth_unstable_by(mid - start, |&a, &b| {
            points[[a, dim]].total_cmp(&points[[b, dim]])
        });
        let value = points[[self.order[mid], dim]];
        let left = self.build(start, mid);
        let right = self.build(mid, end);
        self.nodes[id].split = Some((dim, value, left, right));
        id
    }

    fn dist2(&self, i: usize, q: &[f64]) -> f64 {
        self.points
            .row(i)
            .iter()
            .zip(q)
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    }

    /// Every point within distance `eps` of `q` (inclusive).
    fn within(&self, q: &[f64], eps: f64, out: &mut Vec<usize>) {
        if self.nodes.is_empty() {
            return;
        }
        let mut stack = vec![0usize];
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id];
            match node.split {
                None => out.extend(
                    self.order[node.range.0..node.range.1]
                        .iter()
                        .copied()
                        .filter(|&i| self.dist2(i, q) <= eps * eps),
                ),
                Some((dim, value, left, right)) => {
                    if q[dim] - eps <= value {
                        stack.push(left);
                    }
                    if q[dim] + eps >= value {
                        stack.push(right);
                    }
                }
            }
        }
    }

    /// The `k` nearest points to `q` (ties broken by index), nearest first.
    fn nearest(&self, q: &[f64], k: usize) -> Vec<usize> {
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
        if self.nodes.is_empty() {
            return Vec::new();
        }
        let mut stack = vec![(0usize, 0.0f64)];
        while let Some((id, bound)) = stack.pop() {
            if heap.len() == k && bound > heap.peek().map_or(0.0, |c| c.0) {
                continue;
            }
            let node = &self.nodes[id];
            match node.split {
                None => {
                    for &i in &self.order[node.range.0..node.range.1] {
                        heap.push(Candidate(self.dist2(i, q), i));
                        if heap.len() > k {
                            heap.pop();
                        }
                    }
                }
                Some((dim, value, left, right)) => {
                    let gap = q[dim] - value;
                    let (near, far) = if gap <= 0.0 {
                        (left, right)
                    } else {
                        (right, left)
                    };
                    // Visit the near side first: push it last.
                    stack.push((far, bound.max(gap * gap)));
                    stack.push((near, bound));
                }
            }
        }
        heap.into_sorted_vec().into_iter().map(|c| c.1).collect()
    }
}

/// The ε-ball graph: an edge of weight 1 between points at distance ≤ ε, self-loops included
/// (a point is within ε of itself), so no node has degree 0.
///
/// # Shapes
/// `points`: `[n, d]`.
///
/// # Errors
/// [`GraphError::Parameter`] for ε < 0 or not finite, or a non-finite coordinate.
///
/// Complexity: O(n log n) to build the index plus O(n·(log n + m)) for m neighbours per
/// point in low dimensions.
pub fn epsilon_ball(points: ArrayView2<f64>, eps: f64) -> Result<CsrGraph, GraphError> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(GraphError::Parameter(format!(
            "eps = {eps}: expected a finite value ≥ 0"
        )));
    }
    check_points(points)?;
    let tree = KdTree::new(points);
    let mut triplets = Vec::new();
    let mut found = Vec::new();
    for (i, row) in points.rows().into_iter().enumerate() {
        found.clear();
        tree.within(
            row.as_slice().expect("rows of a standard layout"),
            eps,
            &mut found,
        );
        triplets.extend(found.iter().map(|&j| (i, j, 1.0)));
    }
    CsrGraph::from_triplets(points.nrows(), triplets)
}

/// The symmetrised k-nearest-neighbour graph: `i` and `j` linked (weight 1) when either is
/// among the other's `k` nearest points (the point itself excluded); with `self_loops`, each
/// point also links to itself. Exact, by [`nearest_lists`]; for many points in more than
/// about 16 dimensions [`nn_descent`](crate::descent::nn_descent) is the scalable
/// alternative.
///
/// # Shapes
/// `points`: `[n, d]`.
///
/// # Errors
/// [`GraphError::Parameter`] for k = 0, k ≥ n, or a non-finite coordinate.
///
/// Complexity: as [`nearest_lists`], plus O(n·k) to symmetrise.
pub fn knn(points: ArrayView2<f64>, k: usize, self_loops: bool) -> Result<CsrGraph, GraphError> {
    let lists = nearest_lists(points, k)?;
    Ok(graph_of_lists(&lists, self_loops))
}

/// The exact `k` nearest other points of every point, nearest first (ties by index), from
/// a k-d tree, queries in parallel.
///
/// # Shapes
/// `points`: `[n, d]`; returns n lists of k indices.
///
/// # Errors
/// [`GraphError::Parameter`] for k = 0, k ≥ n, or a non-finite coordinate.
///
/// Complexity: O(n log n) to build the tree; a query visits O(log n) cells in low
/// dimensions, but in d ≳ 16 dimensions of spread-out data the pruning fails and each
/// query approaches a scan, O(n²·d) in all.
pub fn nearest_lists(points: ArrayView2<f64>, k: usize) -> Result<Vec<Vec<usize>>, GraphError> {
    check_k(points.nrows(), k)?;
    check_points(points)?;
    let points = points.as_standard_layout();
    let tree = KdTree::new(points.view());
    let lists = (0..points.nrows())
        .into_par_iter()
        .map(|i| {
            let q = points.row(i);
            // k + 1 nearest include the point itself (or a duplicate of it).
            let mut near = tree.nearest(q.as_slice().expect("a standard layout"), k + 1);
            match near.iter().position(|&j| j == i) {
                Some(pos) => near.remove(pos),
                None => near.pop().expect("k + 1 ≥ 2 neighbours"),
            };
            near
        })
        .collect();
    Ok(lists)
}

/// The symmetrised graph of neighbour lists: `i` and `j` linked (weight 1) when either
/// lists the other; with `self_loops`, each node also links to itself.
///
/// # Panics
/// If a list names a node ≥ the number of lists.
pub fn graph_of_lists(lists: &[Vec<usize>], self_loops: bool) -> CsrGraph {
    let n = lists.len();
    let mut triplets = Vec::with_capacity(2 * lists.iter().map(Vec::len).sum::<usize>() + n);
    for (i, near) in lists.iter().enumerate() {
        for &j in near {
            triplets.push((i, j, 1.0));
            triplets.push((j, i, 1.0));
        }
        if self_loops {
            triplets.push((i, i, 1.0));
        }
    }
    // Mutual neighbours were pushed twice: keep one edge of weight 1.
    triplets.sort_unstable_by_key(|&(i, j, _)| (i, j));
    triplets.dedup_by_key(|&mut (i, j, _)| (i, j));
    CsrGraph::from_triplets(n, triplets).expect("indices below n, weights 1")
}

/// The mean fraction of each exact list found in the approximate one: the recall of an
/// approximate k-NN search, in [0, 1].
///
/// # Panics
/// If the two have different lengths.
pub fn recall(approx: &[Vec<usize>], exact: &[Vec<usize>]) -> f64 {
    assert_eq!(
        approx.len(),
        exact.len(),
        "recall of lists of different lengths"
    );
    let found: usize = approx
        .iter()
        .zip(exact)
        .map(|(a, e)| e.iter().filter(|j| a.contains(j)).count())
        .sum();
    let total: usize = exact.iter().map(Vec::len).sum();
    if total == 0 {
        1.0
    } else {
        found as f64 / total as f64
    }
}

/// Checks `1 ≤ k < n`.
pub(crate) fn check_k(n: usize, k: usize) -> Result<(), GraphError> {
    if k == 0 || k >= n {
        return Err(GraphError::Parameter(format!(
            "k = {k}: need 1 ≤ k < {n} points"
        )));
    }
    Ok(())
}

/// Rejects a non-finite coordinate, naming it.
pub(crate) fn check_points(points: ArrayView2<f64>) -> Result<(), GraphError> {
    match points.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((i, d), v)) => Err(GraphError::Parameter(format!(
            "point {i} has coordinate {d} = {v}"
        ))),
        None => Ok(()),
    }
}

/// The graph of views: views of one sample are linked with weight `w_x·w_x′` (1 without
/// weights), self-loops included with weight `w_x²`, since a view is a view of its own
/// sample. `sample[v]` is the sample view `v` was drawn from; `weight[v]` how likely that
/// draw was.
///
/// # Errors
/// [`GraphError::Shape`] when the weights do not match the views, [`GraphError::Parameter`]
/// for a negative weight.
///
/// Complexity: O(Σ m_s²) for m_s views of sample s.
pub fn views(sample: &[usize], weight: Option<&[f64]>) -> Result<CsrGraph, GraphError> {
    let n = sample.len();
    if let Some(w) = weight.filter(|w| w.len() != n) {
        return Err(GraphError::Shape(format!(
            "{} weights for {n} views",
            w.len()
        )));
    }
    let w = |v: usize| weight.map_or(1.0, |w| w[v]);
    let groups = sample.iter().copied().max().map_or(0, |m| m + 1);
    let mut members = vec![Vec::new(); groups];
    sample
        .iter()
        .enumerate()
        .for_each(|(v, &s)| members[s].push(v));
    let triplets = members
        .iter()
        .flat_map(|m| {
            m.iter()
                .flat_map(move |&a| m.iter().map(move |&b| (a, b, w(a) * w(b))))
        })
        .collect();
    CsrGraph::from_triplets(n, triplets)
}

/// The empirical augmentation graph of a set of views: `A = w·A_views + w_knn·A_knn`, with
/// `A_views` the graph of [`views`] (views of one sample linked, self-loops included) and
/// `A_knn` the symmetrised graph of neighbour `lists` ([`graph_of_lists`], no self-loops).
/// An edge of both graphs gets the sum of the two weights.
///
/// # Errors
/// [`GraphError::Shape`] when `lists` does not have one list per view or names a view out
/// of range, [`GraphError::Parameter`] for a weight that is negative or not finite.
///
/// Complexity: O(Σ m_s² + n·k) entries, sorted per row.
pub fn views_with_neighbours(
    sample: &[usize],
    lists: &[Vec<usize>],
    within: f64,
    knn_weight: f64,
) -> Result<CsrGraph, GraphError> {
    let n = sample.len();
    if lists.len() != n {
        return Err(GraphError::Shape(format!(
            "{} neighbour lists for {n} views",
            lists.len()
        )));
    }
    if let Some(j) = lists.iter().flatten().find(|&&j| j >= n) {
        return Err(GraphError::Shape(format!(
            "a neighbour list names view {j} of {n}"
        )));
    }
    for (key, w) in [("within", within), ("knn_weight", knn_weight)] {
        if !(w >= 0.0 && w.is_finite()) {
            return Err(GraphError::Parameter(format!(
                "{key} = {w}: expected a finite weight ≥ 0"
            )));
        }
    }
    let same = views(sample, None)?;
    let near = graph_of_lists(lists, false);
    let triplets = same
        .triplets()
        .map(|(i, j, w)| (i, j, w * within))
        .chain(near.triplets().map(|(i, j, w)| (i, j, w * knn_weight)))
        .collect();
    CsrGraph::from_triplets(n, triplets)
}

/// The graph of views of the loader's view-major layout: `views · n` rows, row `k` a view
/// of sample `k mod n`, views of one sample linked with weight 1, self-loops included.
pub fn view_major(n: usize, views_per_sample: usize) -> CsrGraph {
    let sample: Vec<usize> = (0..n * views_per_sample).map(|k| k % n).collect();
    views(&sample, None).expect("no weights to mismatch")
}

/// Rewiring: the graph with each node also linked (weight `weight`, both directions) to its
/// `k` nearest neighbours in feature space.
///
/// # Shapes
/// `features`: `[n, d]` with `n` the graph's node count.
///
/// # Errors
/// As [`knn`], and [`GraphError::Shape`] when the features do not match the graph.
pub fn add_knn_edges(
    graph: &CsrGraph,
    features: ArrayView2<f64>,
    k: usize,
    weight: f64,
) -> Result<CsrGraph, GraphError> {
    if features.nrows() != graph.nodes() {
        return Err(GraphError::Shape(format!(
            "{} feature rows for a graph of {} nodes",
            features.nrows(),
            graph.nodes()
        )));
    }
    let extra = knn(features, k, false)?;
    let mut triplets: Vec<_> = graph.triplets().collect();
    triplets.extend(extra.triplets().map(|(i, j, _)| (i, j, weight)));
    CsrGraph::from_triplets(graph.nodes(), triplets)
}

/// The random graph of the scale benchmarks: each node draws `degree` neighbours uniformly
/// among all `n` nodes (with replacement, itself included), each draw an entry of weight 1,
/// duplicates summed; then `A + Aᵀ`. Every node has degree ≥ `degree`, the total weight is
/// `2·n·degree`. Deterministic for a seed (ChaCha8).
///
/// # Errors
/// [`GraphError::Parameter`] for n = 0 or degree = 0.
///
/// Complexity: O(n·degree) draws and a counting sort.
pub fn random_out_neighbours<T: Real>(
    n: usize,
    degree: usize,
    seed: u64,
) -> Result<CsrGraph<T>, GraphError> {
    if n == 0 || degree == 0 {
        return Err(GraphError::Parameter(format!(
            "n = {n}, degree = {degree}: both must be ≥ 1"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut triplets = Vec::with_capacity(2 * n * degree);
    for i in 0..n {
        for _ in 0..degree {
            let j = rng.random_range(0..n);
            triplets.push((i, j, T::one()));
            triplets.push((j, i, T::one()));
        }
    }
    CsrGraph::from_triplets(n, triplets)
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};

    use super::*;
    use crate::eigen::random_block;

    /// The all-pairs ε-ball graph: the oracle for the indexed one.
    fn brute_force(points: &Array2<f64>, eps: f64) -> Array2<f64> {
        let n = points.nrows();
        Array2::from_shape_fn((n, n), |(i, j)| {
            let d = &points.row(i) - &points.row(j);
            f64::from(d.dot(&d) <= eps * eps)
        })
    }

    #[test]
    fn epsilon_ball_matches_all_pairs() {
        for (n, dim, eps) in [(300, 2, 0.15), (200, 3, 0.4), (50, 5, 1.0), (10, 1, 0.0)] {
            let points = random_block(n, dim, n as u64);
            let g = epsilon_ball(points.view(), eps).unwrap();
            assert_eq!(
                g.to_dense(),
                brute_force(&points, eps),
                "n = {n}, d = {dim}"
            );
            assert_eq!(g.nodes(), n);
        }
    }

    #[test]
    fn knn_matches_all_pairs_and_is_symmetric() {
        let points = random_block(200, 2, 9);
        let k = 5;
        let g = knn(points.view(), k, false).unwrap();
        assert!(g.is_symmetric());
        for i in 0..200 {
            let mut by_distance: Vec<(f64, usize)> = (0..200)
                .filter(|&j| j != i)
                .map(|j| {
                    let d = &points.row(i) - &points.row(j);
                    (d.dot(&d), j)
                })
                .collect();
            by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
            let dense = g.to_dense();
            for &(_, j) in &by_distance[..k] {
                assert_eq!(dense[[i, j]], 1.0, "{j} is among {i}'s nearest");
            }
            // Degree ≥ k (its own neighbours), self-loop absent.
            assert!(g.row(i).count() >= k && dense[[i, i]] == 0.0);
        }
        let looped = knn(points.view(), k, true).unwrap();
        assert_eq!(looped.entries(), g.entries() + 200);
    }

    #[test]
    fn views_graph_by_hand() {
        // Views 0, 2 of sample 0 with draw weights 0.5 and 2; view 1 alone of sample 1.
        let g = views(&[0, 1, 0], Some(&[0.5, 3.0, 2.0])).unwrap();
        let a = g.to_dense();
        assert_eq!(
            a,
            array![[0.25, 0.0, 1.0], [0.0, 9.0, 0.0], [1.0, 0.0, 4.0]]
        );
        assert!(views(&[0, 1], Some(&[1.0])).is_err());
    }

    #[test]
    fn view_major_links_the_views_of_each_sample() {
        // Rows 0, 2, 4 are sample 0; rows 1, 3, 5 sample 1.
        let a = view_major(2, 3).to_dense();
        let expected = Array2::from_shape_fn((6, 6), |(i, j)| f64::from(i % 2 == j % 2));
        assert_eq!(a, expected);
    }

    #[test]
    fn rewiring_adds_nearest_neighbour_edges() {
        // Four isolated nodes with self-loops; features pair 0 with 2 and 1 with 3. Each
        // node's single nearest neighbour is its partner, so two components form.
        let g = views(&[0, 1, 2, 3], None).unwrap();
        let features = array![[0.0, 0.0], [5.0, 5.0], [0.1, 0.0], [5.0, 5.2]];
        let rewired = add_knn_edges(&g, features.view(), 1, 0.5).unwrap();
        assert_eq!(rewired.to_dense()[[0, 2]], 0.5);
        assert_eq!(rewired.to_dense()[[0, 0]], 1.0, "the original edges stay");
        assert_eq!(rewired.components(), vec![0, 1, 0, 1]);
    }

    #[test]
    fn random_out_neighbours_by_counting() {
        let g: CsrGraph<f32> = random_out_neighbours(500, 10, 3).unwrap();
        assert!(g.is_symmetric());
        // 500·10 draws, each adding 1 to A[i, j] and to A[j, i]: total weight 2·500·10, and
        // every node's own draws give it degree ≥ 10.
        let d = g.degrees();
        assert_eq!(d.iter().sum::<f32>(), 10_000.0);
        assert!(d.iter().all(|&x| x >= 10.0));
        let again: CsrGraph<f32> = random_out_neighbours(500, 10, 3).unwrap();
        assert_eq!(g, again, "same seed, same graph");
        assert!(random_out_neighbours::<f64>(0, 10, 3).is_err());
    }

    #[test]
    fn bad_input_is_named() {
        let p = array![[0.0, f64::NAN]];
        assert!(
            epsilon_ball(p.view(), 1.0)
                .unwrap_err()
                .to_string()
                .contains("point 0")
        );
        let q = random_block(4, 2, 1);
        assert!(
            knn(q.view(), 4, false)
                .unwrap_err()
                .to_string()
                .contains("k = 4")
        );
        assert!(
            epsilon_ball(q.view(), -1.0)
                .unwrap_err()
                .to_string()
                .contains("eps = -1")
        );
    }
}
