//! The libtorch losses against the graph layer's closed forms, second implementations written
//! as plain f64 loops over the augmentation graph of the batch.

use mpcl_graph::build::view_major;
use mpcl_graph::objective;
use mpcl_losses::{InfoNce, Spectral};
use ndarray::Array2;
use tch::{Kind, Tensor};

/// A 2-D f64 tensor as an ndarray matrix.
fn to_array(z: &Tensor) -> Array2<f64> {
    let [rows, cols] = z.size()[..] else {
        panic!("a matrix")
    };
    let flat: Vec<f64> = Vec::try_from(z.flatten(0, 1)).unwrap();
    Array2::from_shape_vec((rows as usize, cols as usize), flat).unwrap()
}

#[test]
fn info_nce_equals_the_graph_closed_form() {
    tch::manual_seed(11);
    for (n, views, d, tau) in [
        (5, 2, 3, 0.5),
        (4, 3, 6, 0.2),
        (1, 4, 2, 1.0),
        (7, 2, 16, 0.07),
    ] {
        let z = Tensor::randn([(n * views) as i64, d], (Kind::Double, tch::Device::Cpu));
        let ours = InfoNce::new(tau, views)
            .unwrap()
            .loss(&z, None)
            .unwrap()
            .double_value(&[]);
        let f = to_array(&z);
        let oracle = objective::info_nce(f.view(), &view_major(n, views), tau).unwrap();
        assert!(
            (ours - oracle).abs() < 1e-10,
            "n={n} m={views}: {ours} vs {oracle}"
        );
    }
}

#[test]
fn spectral_equals_the_graph_closed_form() {
    tch::manual_seed(12);
    for (n, views, d, mu) in [(5, 2, 3, 1.0), (4, 3, 6, 0.3), (2, 2, 2, 2.0)] {
        let z = Tensor::randn([(n * views) as i64, d], (Kind::Double, tch::Device::Cpu));
        let ours = Spectral::new(views, mu)
            .unwrap()
            .loss(&z)
            .unwrap()
            .double_value(&[]);
        let f = to_array(&z);
        let oracle = objective::spectral(f.view(), &view_major(n, views), mu).unwrap();
        assert!(
            (ours - oracle).abs() < 1e-10,
            "n={n} m={views}: {ours} vs {oracle}"
        );
    }
}
