//! `neighbours::exact_neighbours` against a second implementation of exact k-NN, the k-d
//! tree of mpcl-graph (itself checked against all pairs in that crate).

use mpcl_eval::neighbours::exact_neighbours;
use mpcl_graph::build::nearest_lists;
use ndarray::Array2;

#[test]
fn exact_neighbours_agree_with_the_kd_tree() {
    // 1500 Gaussian points in R⁶ span three blocks of rows; their distances have no ties.
    tch::manual_seed(5);
    let x = tch::Tensor::randn([1500, 6], tch::kind::DOUBLE_CPU);
    let lists = exact_neighbours(&x, 5).unwrap();
    let flat = Vec::<f64>::try_from(x.flatten(0, -1)).unwrap();
    let points = Array2::from_shape_vec((1500, 6), flat).unwrap();
    let indices: Vec<Vec<usize>> = lists
        .iter()
        .map(|l| l.iter().map(|n| n.index).collect())
        .collect();
    assert_eq!(indices, nearest_lists(points.view(), 5).unwrap());
    // The distances are those of the listed points, recomputed here.
    for (i, list) in lists.iter().enumerate() {
        for n in list {
            let d = (&points.row(i) - &points.row(n.index))
                .mapv(|v| v * v)
                .sum()
                .sqrt();
            assert!(
                (n.distance - d).abs() < 1e-12,
                "{i} → {}: {} vs {d}",
                n.index,
                n.distance
            );
        }
    }
}
