//! The eigenspace preset (`mpcl eigenspace`): its graph, eigenvectors, measures and pair
//! sampler against hand-computed values and second implementations, and the whole preset
//! on the first images of the real Fashion-MNIST (which `cargo xtask test` provisions; the
//! data directory comes from `MPCL_DATA_DIR` or the default).

use std::path::Path;
use std::process::Command;

use mpcl_graph::build::views_with_neighbours;
use mpcl_graph::linalg::{eigh, orthonormalize};
use mpcl_graph::sample::EdgeSampler;
use mpcl_graph::subspace::closeness;
use mpcl_trainer::RunDir;
use mpcl_trainer::eigenspace::{EigenspaceConfig, Features, Method, Scaling, run};
use ndarray::{Array2, array, s};

/// Seconds, not minutes: 64 images × 2 views, a 4-dimensional encoder, 6 steps.
const TINY: &str = r#"
kind = "eigenspace"
name = "tiny"
[data]
images = 64
views = 2
[graph]
knn = 3
k = 4
[model]
widths = [4, 8]
projector_hidden = 16
[train]
steps = 6
batch_pairs = 16
every = 3
random_seeds = 2
threads = 2
"#;

/// Five views: two of image 0, two of image 1, one of image 2; neighbour lists 0→2, 1→0,
/// 2→4, 3→4, 4→3; views of one image weigh 3, k-NN edges 1.
fn hand_graph() -> (mpcl_graph::CsrGraph, Array2<f64>) {
    let sample = [0, 0, 1, 1, 2];
    let lists = vec![vec![2], vec![0], vec![4], vec![4], vec![3]];
    let graph = views_with_neighbours(&sample, &lists, 3.0, 1.0).unwrap();
    // By hand: 3 on every pair of views of one image (self-pairs included), plus 1 on each
    // symmetrised k-NN edge {0, 2}, {0, 1}, {2, 4}, {3, 4} (4→3 and 3→4 are one edge), so
    // the pair (0, 1), in both graphs, weighs 3 + 1.
    let expected = array![
        [3.0, 4.0, 1.0, 0.0, 0.0],
        [4.0, 3.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 3.0, 3.0, 1.0],
        [0.0, 0.0, 3.0, 3.0, 1.0],
        [0.0, 0.0, 1.0, 1.0, 3.0],
    ];
    (graph, expected)
}

#[test]
fn the_graph_has_the_intended_edges() {
    let (graph, expected) = hand_graph();
    assert_eq!(graph.to_dense(), expected);
    let err = views_with_neighbours(&[0, 0], &[vec![1]], 1.0, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 neighbour lists for 2 views"), "{err}");
    let err = views_with_neighbours(&[0, 1], &[vec![1], vec![0]], -1.0, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("within = -1"), "{err}");
}

#[test]
fn edge_frequencies_match_the_graph() {
    // M draws of the 15 stored entries; the counts are multinomial with p = A[x, x′]/ΣA
    // (ΣA = 35 by summing the matrix above), so Pearson's χ² has 14 degrees of freedom:
    // mean 14, standard deviation √28 ≈ 5.3. The bound 45 (six deviations above) fails by
    // chance with probability below 1e-4.
    let (graph, a) = hand_graph();
    let sampler = EdgeSampler::new(&graph).unwrap();
    let total = a.sum();
    assert_eq!((total, graph.entries()), (35.0, 15));
    let mut counts = Array2::<f64>::zeros((5, 5));
    let draws = 100 * 2000;
    for step in 0..100 {
        for (i, j) in sampler.batch(2000, 7, step) {
            counts[[i, j]] += 1.0;
        }
    }
    let mut chi2 = 0.0;
    for ((i, j), &w) in a.indexed_iter() {
        if w == 0.0 {
            assert_eq!(counts[[i, j]], 0.0, "({i}, {j}) is no edge");
            continue;
        }
        let expected = draws as f64 * w / total;
        chi2 += (counts[[i, j]] - expected).powi(2) / expected;
    }
    assert!(chi2 < 45.0, "χ² = {chi2}");
}

#[test]
fn angles_and_r2_on_constructed_inputs() {
    // Columns 1… of an orthonormal basis whose first column is constant: orthonormal and
    // centred (orthogonal to 1), so centring changes nothing.
    let n = 50;
    let mut raw = mpcl_graph::eigen::random_block(n, 9, 3);
    raw.column_mut(0).fill(1.0);
    let q = orthonormalize(raw.view());
    let u = q.slice(s![.., 1..4]).to_owned();

    // F = U·R with R invertible: the same span, angles 0, R² 1 both ways.
    let r = array![[2.0, 1.0, 0.0], [0.0, -1.0, 3.0], [0.0, 0.0, 0.5]];
    let c = closeness(u.dot(&r).view(), u.view()).unwrap();
    assert!(c.angles.iter().all(|a| a.abs() < 1e-6), "{:?}", c.angles);
    assert!((c.mean_cos2 - 1.0).abs() < 1e-10);
    assert!((c.r2_target_from_features - 1.0).abs() < 1e-10);
    assert!((c.r2_features_from_target - 1.0).abs() < 1e-10);

    // Orthogonal spans: angles π/2, nothing predicted either way.
    let w = q.slice(s![.., 4..7]).to_owned();
    let c = closeness(w.view(), u.view()).unwrap();
    let right = std::f64::consts::FRAC_PI_2;
    assert!(
        c.angles.iter().all(|a| (a - right).abs() < 1e-6),
        "{:?}",
        c.angles
    );
    assert!(c.mean_cos2.abs() < 1e-12);
    assert!(c.r2_target_from_features.abs() < 1e-12);
    assert!(c.r2_features_from_target.abs() < 1e-12);

    // F = [u₁, cos θ·u₂ + sin θ·w₁] against [u₁, u₂] with θ = 60°: angles 0 and
    // 60°; u₂ projects onto F's second column with R² cos² θ = ¼, so mean cos² and both
    // mean R² are (1 + ¼)/2 = 0.625.
    let theta = 60f64.to_radians();
    let mut f = u.slice(s![.., 0..2]).to_owned();
    let tilted = &u.column(1) * theta.cos() + &w.column(0) * theta.sin();
    f.column_mut(1).assign(&tilted);
    let c = closeness(f.view(), u.slice(s![.., 0..2])).unwrap();
    assert!(c.angles[0].abs() < 1e-6, "{:?}", c.angles);
    assert!((c.angles[1] - theta).abs() < 1e-10, "{:?}", c.angles);
    for v in [
        c.mean_cos2,
        c.r2_target_from_features,
        c.r2_features_from_target,
    ] {
        assert!((v - 0.625).abs() < 1e-10, "{v}");
    }
}

#[test]
fn eigenvectors_solve_the_eigen_equation_and_runs_share_their_start() {
    let cfg = EigenspaceConfig::parse(TINY, "tiny.toml").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::open(tmp.path()).unwrap();
    let result = run(&cfg, &mpcl_data::default_data_dir(), &dir).unwrap();

    // ‖Āuᵢ − λᵢuᵢ‖ recomputed here, within the solver's tolerance, and UᵀU = I.
    let abar = result.graph.sym_normalized().unwrap();
    let (values, u) = (&result.eigen.values, &result.eigen.vectors);
    let residual = abar.matmul(u.view()) - u * values;
    for (i, col) in residual.columns().into_iter().enumerate() {
        let norm = col.dot(&col).sqrt();
        assert!(
            norm <= cfg.graph.eigen_tol,
            "eigenpair {i}: residual {norm}"
        );
    }
    let gram = u.t().dot(u);
    assert!(
        (gram - Array2::<f64>::eye(u.ncols()))
            .iter()
            .all(|d| d.abs() < 1e-10)
    );
    // A second implementation: all eigenvalues of the dense Ā by Jacobi rotations.
    let (dense, _) = eigh(abar.to_dense().view());
    for (a, b) in values.iter().zip(&dense) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    assert!((values[0] - 1.0).abs() < 1e-9, "connected: λ₁ = 1");

    // Both methods start from the first random encoder (the same seed): equal step-0 records.
    let first = |m: Method| {
        let rec = result.series(m, Features::Raw, Scaling::Degree)[0];
        (rec.step, rec.closeness.mean_cos2, rec.population_loss)
    };
    assert_eq!(first(Method::Simclr), first(Method::Random));
    assert_eq!(first(Method::Spectral), first(Method::Random));
    // And every measure lies in its range.
    for r in &result.records {
        let c = &r.closeness;
        assert!((0.0..=1.0 + 1e-9).contains(&c.mean_cos2), "{c:?}");
        assert!(c.r2_target_from_features <= 1.0 + 1e-9, "{c:?}");
        assert!(r.population_loss.is_nan() || r.population_loss >= result.loss_floor - 1e-9);
    }
}

/// Runs `mpcl eigenspace` on `config` into `out`.
fn eigenspace(config: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mpcl"))
        .arg("eigenspace")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .expect("mpcl runs")
}

#[test]
fn the_preset_runs_end_to_end_on_a_tiny_subset() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = tmp.path().join("out");
    let run = eigenspace(&config, &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "mpcl failed:\n{stderr}");
    for file in [
        "config.toml",
        "log.txt",
        "metrics.csv",
        "report.md",
        "subspace.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // 2 random seeds, and steps 0, 3, 6 of two methods; 4 maps each (z or unit, D^1/2 or
    // not).
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + (2 + 2 * 3) * 4);
    assert!(
        csv.starts_with("step,method,seed,features,scaling,loss,"),
        "{csv}"
    );
    assert!(csv.contains("\n6,spectral,0,z,degree,"), "{csv}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains(&report), "the table is printed");
    for row in [
        "| random encoder (2 seeds, mean ± sd) | z |",
        "| SimCLR after 6 steps (its loss's f) | unit |",
        "| spectral after 6 steps (its loss's f) | z |",
        "| top-4 eigenvectors of the pixel k-NN graph alone |",
    ] {
        assert!(report.contains(row), "{row} missing from\n{report}");
    }

    // Bad input is named: more images than the split holds.
    let bad = TINY.replace("images = 64", "images = 70000");
    std::fs::write(&config, bad).unwrap();
    let run = eigenspace(&config, &tmp.path().join("bad"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("data.images = 70000: the training split has only 60000"),
        "{stderr}"
    );
}
