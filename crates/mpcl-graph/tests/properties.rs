//! Invariants of the graph layer on random graphs: the spectrum of Ā, the random walk, the
//! link between components and the eigenvalue 1, and the builders' node counts.

use mpcl_graph::CsrGraph;
use mpcl_graph::build::{epsilon_ball, knn};
use mpcl_graph::linalg::eigh;
use ndarray::Array2;
use proptest::prelude::*;

/// A random symmetric graph on `n` nodes with self-loops (so no degree is 0) and weights in
/// (0, 2].
fn graph() -> impl Strategy<Value = CsrGraph> {
    (2usize..24).prop_flat_map(|n| {
        proptest::collection::vec((0..n, 0..n, 0.01f64..2.0), 0..3 * n).prop_map(move |edges| {
            let mut triplets: Vec<_> = (0..n).map(|i| (i, i, 1.0)).collect();
            for (i, j, w) in edges {
                triplets.push((i, j, w));
                triplets.push((j, i, w));
            }
            CsrGraph::from_triplets(n, triplets).unwrap()
        })
    })
}

proptest! {
    #[test]
    fn normalised_adjacency_is_symmetric_with_spectrum_in_unit_interval(g in graph()) {
        let s = g.sym_normalized().unwrap();
        // D^-1/2 A D^-1/2 multiplies A[i, j] and A[j, i] by the same two factors.
        let d = s.to_dense();
        let asymmetry = (&d - &d.t()).iter().fold(0.0f64, |m, x| m.max(x.abs()));
        prop_assert!(asymmetry < 1e-15, "asymmetry {}", asymmetry);
        let (values, _) = eigh(s.to_dense().view());
        prop_assert!(values.iter().all(|&v| (-1.0 - 1e-10..=1.0 + 1e-10).contains(&v)));
    }

    #[test]
    fn random_walk_rows_sum_to_one(g in graph()) {
        let rw = g.random_walk().unwrap();
        for i in 0..rw.nodes() {
            let sum: f64 = rw.row(i).map(|(_, w)| w).sum();
            prop_assert!((sum - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn components_equal_the_multiplicity_of_eigenvalue_one(g in graph()) {
        let count = g.components().into_iter().max().unwrap() + 1;
        let (values, _) = eigh(g.sym_normalized().unwrap().to_dense().view());
        let ones = values.iter().filter(|&&v| (v - 1.0).abs() < 1e-8).count();
        prop_assert_eq!(ones, count);
    }

    #[test]
    fn builders_keep_the_node_count(
        coords in proptest::collection::vec(-1.0f64..1.0, 4..120),
        eps in 0.0f64..0.8,
    ) {
        let n = coords.len() / 2;
        let points = Array2::from_shape_vec((n, 2), coords[..2 * n].to_vec()).unwrap();
        prop_assert_eq!(epsilon_ball(points.view(), eps).unwrap().nodes(), n);
        prop_assert_eq!(knn(points.view(), 1, true).unwrap().nodes(), n);
    }
}
