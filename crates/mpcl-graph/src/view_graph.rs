//! The graph of views of a batch: views of one sample are linked.

use ndarray::Array2;

/// A dense augmentation graph over the views of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewGraph {
    /// The symmetric adjacency `A`, `[views, views]`.
    pub adjacency: Array2<f64>,
}

impl ViewGraph {
    /// Links every two distinct views of the same sample with weight 1; `sample[v]` is the
    /// sample that view `v` was drawn from. No self-loops: a view is not its own positive.
    ///
    /// Complexity: O(V²) time and memory for V views.
    pub fn from_assignment(sample: &[usize]) -> Self {
        let v = sample.len();
        let adjacency =
            Array2::from_shape_fn((v, v), |(a, b)| f64::from(a != b && sample[a] == sample[b]));
        Self { adjacency }
    }

    /// The graph of the loader's view-major layout: `views · n` rows, row `k` a view of sample
    /// `k mod n`.
    pub fn view_major(n: usize, views: usize) -> Self {
        let sample: Vec<usize> = (0..n * views).map(|k| k % n).collect();
        Self::from_assignment(&sample)
    }

    /// The degrees `d = A·1`.
    pub fn degrees(&self) -> Vec<f64> {
        self.adjacency.rows().into_iter().map(|r| r.sum()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_major_links_the_views_of_each_sample() {
        let g = ViewGraph::view_major(2, 3);
        // Rows 0, 2, 4 are sample 0; rows 1, 3, 5 sample 1.
        assert_eq!(g.adjacency[[0, 2]], 1.0);
        assert_eq!(g.adjacency[[0, 4]], 1.0);
        assert_eq!(g.adjacency[[0, 1]], 0.0);
        assert_eq!(g.adjacency[[0, 0]], 0.0);
        assert_eq!(g.degrees(), vec![2.0; 6]);
        assert_eq!(g.adjacency, g.adjacency.t());
    }
}
