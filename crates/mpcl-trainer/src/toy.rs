//! `mpcl toy`: the toy experiment of docs/science.md §3 in a run directory.
//!
//! ```text
//! <runs>/<name>-<YYYYmmdd-HHMMSS>/
//!   config.toml      the resolved configuration, defaults filled in
//!   log.txt          the log
//!   results.md       the summary table, also printed at the end
//!   trajectory.csv   every recorded step of every mode
//!   points.png       the points the dynamics ran on, by class
//!   features.png     f at the snapshot steps (rows: alignment, uniformity, both)
//!   metrics.png      σ₂/σ₁, effective rank, angles, class metrics and loss over the steps
//!   accuracy.png     final probe accuracy of each mode against the references
//! ```
//! The numbers come from [`mpcl_graph::toy`]; this module only lays them out.

use mpcl_graph::toy::{ToyConfig, ToyResult, mode_name, ratio, run_toy};
use mpcl_graph::trajectory::Record;
use mpcl_plot::{Bars, Lines, Panel, Scatter, Series, figure};
use tracing::{info, warn};

use crate::{RunDir, TrainError};

/// Runs the toy experiment `cfg` and writes everything into `dir`.
///
/// # Errors
/// [`TrainError::Graph`] for settings the graph cannot carry, [`TrainError::Plot`] for
/// figures that cannot be drawn, [`TrainError::Io`] for files that cannot be written.
pub fn run(cfg: &ToyConfig, dir: &RunDir) -> Result<ToyResult, TrainError> {
    let text = toml::to_string_pretty(cfg).expect("a toy config serialises");
    dir.write(
        "config.toml",
        format!("# resolved configuration\n{text}").as_bytes(),
    )?;
    let result = run_toy(cfg, |line| info!("{line}"))?;
    if !result.eigen_converged.0 {
        warn!(
            "the eigensolver stopped at residual {:.1e} above graph.eigen_tol = {:.1e}",
            result.eigen_converged.1, cfg.graph.eigen_tol
        );
    }
    dir.write("results.md", result.markdown().as_bytes())?;
    dir.write("trajectory.csv", result.csv().as_bytes())?;
    draw(&result, dir)?;
    info!(run_dir = %dir.path().display(), "figures, table and trajectory written");
    Ok(result)
}

/// The class names of the legend.
fn class_names() -> Vec<String> {
    vec!["class 0".into(), "class 1".into()]
}

/// The first two columns of each row as points.
fn xy(f: &ndarray::Array2<f64>) -> Vec<(f64, f64)> {
    f.rows()
        .into_iter()
        .map(|r| (r[0], r.get(1).copied().unwrap_or(0.0)))
        .collect()
}

fn draw(r: &ToyResult, dir: &RunDir) -> Result<(), TrainError> {
    let path = |name: &str| dir.path().join(name);
    let nodes = r.nodes();

    let points = Panel::Scatter(Scatter {
        title: format!("{nodes} of {} points", r.points_total),
        points: xy(&r.points),
        classes: r.labels.clone(),
        class_names: class_names(),
    });
    figure(
        &path("points.png"),
        "the points (graph nodes)",
        &[points],
        1,
        (520, 440),
    )?;

    let columns = r.runs.first().map_or(1, |m| m.snapshots.len().max(1));
    let snapshots: Vec<Panel> = r
        .runs
        .iter()
        .flat_map(|m| {
            m.snapshots.iter().map(move |(step, f)| {
                Panel::Scatter(Scatter {
                    title: format!("{}, step {step}", mode_name(m.terms)),
                    points: xy(f),
                    classes: r.labels.clone(),
                    class_names: class_names(),
                })
            })
        })
        .collect();
    if !snapshots.is_empty() {
        figure(
            &path("features.png"),
            "features f(x) by class",
            &snapshots,
            columns,
            (340, 300),
        )?;
    }

    let series = |value: &dyn Fn(&Record) -> Option<f64>| -> Vec<Series> {
        r.runs
            .iter()
            .map(|m| Series {
                name: mode_name(m.terms).into(),
                points: m
                    .records
                    .iter()
                    .filter_map(|rec| value(rec).map(|v| (rec.step as f64, v)))
                    .collect(),
            })
            .collect()
    };
    let lines = |title: &str, y_label: &str, log_y: bool, series: Vec<Series>| {
        Panel::Lines(Lines {
            title: title.into(),
            x_label: "step".into(),
            y_label: y_label.into(),
            log_y,
            series,
        })
    };
    let steps = r
        .runs
        .first()
        .and_then(|m| m.records.last())
        .map_or(0.0, |rec| rec.step as f64);
    let flat = |name: &str, v: f64| Series {
        name: name.into(),
        points: vec![(0.0, v), (steps, v)],
    };
    let mut accuracy = series(&|rec| rec.probe_accuracy);
    accuracy.push(flat("top eigenvectors", r.eigen_probe.0));
    accuracy.push(flat("Bayes rule", r.bayes_accuracy));
    let largest_angle = |rec: &Record| {
        let angles = rec.principal_angles.as_ref()?;
        angles.last().map(|a| a.to_degrees())
    };
    let metrics = [
        lines(
            "collapse",
            "σ_k/σ₁",
            true,
            series(&|rec| Some(ratio(&rec.singular_values))),
        ),
        lines(
            "effective rank",
            "exp entropy",
            false,
            series(&|rec| Some(rec.effective_rank)),
        ),
        lines(
            "angle to the top eigenspace",
            "largest angle (°)",
            true,
            series(&largest_angle),
        ),
        lines("linear probe", "accuracy", false, accuracy),
        lines(
            "class separation",
            "between/within distance",
            false,
            series(&|rec| rec.distance_ratio),
        ),
        lines("loss", "loss", false, series(&|rec| Some(rec.loss))),
    ];
    figure(
        &path("metrics.png"),
        "trajectory metrics",
        &metrics,
        3,
        (440, 340),
    )?;

    let mut bars: Vec<(String, f64)> = r
        .runs
        .iter()
        .filter_map(|m| {
            let last = m.records.last()?;
            Some((mode_name(m.terms).into(), last.probe_accuracy?))
        })
        .collect();
    bars.push(("eigenvectors".into(), r.eigen_probe.0));
    bars.push(("Bayes rule".into(), r.bayes_accuracy));
    let bars = Panel::Bars(Bars {
        title: "at the last step".into(),
        y_label: "accuracy".into(),
        bars,
    });
    figure(
        &path("accuracy.png"),
        "linear probe accuracy",
        &[bars],
        1,
        (620, 400),
    )?;
    Ok(())
}
