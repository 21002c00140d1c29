//! The toy experiment of science.md §3 (the paper's Figure 1): two Gaussian classes in the
//! plane, their ε-ball augmentation graph, and the feature dynamics with alignment only,
//! uniformity only, and both, recorded along the way.
//!
//! ```text
//! xᵢ ~ N(μ_c, σ²I), μ₀ = (−1, 0), μ₁ = (1, 0), σ² = 0.7
//! A[i, j] = 1 when ‖xᵢ − xⱼ‖ ≤ ε (self-loops included), on the largest component
//! F₀ ~ U[−1, 1]^{N×2} / √N;   F ← F + η(ĀF − F FᵀF), 1000 steps of η = 0.1
//! ```
//! The class metrics read the features `f(x) = Fₓ/√dₓ` (spectral) or `f` (InfoNCE), and
//! are set against two references on the same nodes: the top-k eigenvectors of Ā scaled by
//! D^-1/2, and the Bayes rule of the two Gaussians (x > 0).
//!
//! Settings come from a TOML file ([`ToyConfig`], configs/toy.toml); this module computes,
//! and renders the table and CSV as text. Plots and the run directory are the caller's
//! (the `mpcl toy` command).

use ndarray::{Array2, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

use crate::build::{epsilon_ball, knn};
use crate::classes::{distance_ratio, probe_accuracy};
use crate::dynamics::{Renorm, Terms, joint_distribution};
use crate::eigen::{EigenConfig, top_eigenpairs};
use crate::trajectory::{Objective, Record, Reference, Schedule, run};
use crate::{CsrGraph, GraphError};

/// The `kind` of a toy experiment file; `"toy"` is the only value accepted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToyKind {
    /// The toy experiment.
    Toy,
}

/// A whole toy experiment: `configs/toy.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct ToyConfig {
    /// Must be `"toy"`: experiment files name the subcommand that runs them.
    pub kind: ToyKind,
    /// Names the run directory. Default `"toy"`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seeds the points and the initial features. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// `[data]`.
    #[serde(default)]
    pub data: ToyData,
    /// `[graph]`.
    #[serde(default)]
    pub graph: ToyGraph,
    /// `[dynamics]`.
    #[serde(default)]
    pub dynamics: ToyDynamics,
}

fn default_name() -> String {
    "toy".into()
}

/// `[data]`: the two Gaussian classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ToyData {
    /// Points drawn per class. Default 500.
    pub points_per_class: usize,
    /// The class means. Default `[[-1, 0], [1, 0]]`.
    pub means: [[f64; 2]; 2],
    /// The variance per axis. Default 0.7.
    pub variance: f64,
}

impl Default for ToyData {
    fn default() -> Self {
        Self {
            points_per_class: 500,
            means: [[-1.0, 0.0], [1.0, 0.0]],
            variance: 0.7,
        }
    }
}

/// Which nodes the dynamics run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// The largest connected component (the theorems hold per component).
    Largest,
    /// Every node; with several components eigenvalue 1 is repeated and the top-k
    /// eigenspace is not unique.
    All,
}

/// `[graph]`: the augmentation graph of the points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ToyGraph {
    /// Link points at distance ≤ epsilon, self-loops included. Default 0.4.
    pub epsilon: f64,
    /// Also link each point to its k nearest points (0: none), which connects the graph.
    /// Default 0.
    pub knn: usize,
    /// `"largest"` (default) or `"all"`.
    pub component: Component,
    /// Eigenvectors of Ā to compare against: the feature dimension. Default 2.
    pub k: usize,
    /// Residual tolerance of the eigensolver. Default 1e-8.
    pub eigen_tol: f64,
}

impl Default for ToyGraph {
    fn default() -> Self {
        Self {
            epsilon: 0.4,
            knn: 0,
            component: Component::Largest,
            k: 2,
            eigen_tol: 1e-8,
        }
    }
}

/// The objective of the dynamics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToyObjective {
    /// `F ← F + η(ĀF − F FᵀF)` on `F = D^1/2 f`.
    Spectral,
    /// `f ← f + η(2Af − (Â + Âᵀ)f)` on the joint distribution `A/ΣA`.
    InfoNce,
}

/// A rescaling, as written in the TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToyRenorm {
    /// None.
    None,
    /// Unit Frobenius norm.
    Global,
    /// Unit rows.
    PerRow,
}

impl From<ToyRenorm> for Renorm {
    fn from(r: ToyRenorm) -> Self {
        match r {
            ToyRenorm::None => Renorm::None,
            ToyRenorm::Global => Renorm::Global,
            ToyRenorm::PerRow => Renorm::PerRow,
        }
    }
}

/// `[dynamics.renorm]`: the rescaling after each step, per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ModeRenorm {
    /// Default `"global"`: alignment alone grows like (1 + η)ᵗ.
    pub alignment: ToyRenorm,
    /// Default `"none"`.
    pub uniformity: ToyRenorm,
    /// Default `"none"`.
    pub both: ToyRenorm,
}

impl Default for ModeRenorm {
    fn default() -> Self {
        Self {
            alignment: ToyRenorm::Global,
            uniformity: ToyRenorm::None,
            both: ToyRenorm::None,
        }
    }
}

/// The floating-point type the steps run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// f32 graph and features.
    F32,
    /// f64 graph and features.
    F64,
}

/// `[dynamics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ToyDynamics {
    /// `"spectral"` (default) or `"info-nce"`.
    pub objective: ToyObjective,
    /// Steps per mode. Default 1000.
    pub steps: usize,
    /// The step size η. Default 0.1.
    pub eta: f64,
    /// Scale of the uniform initialisation: F₀ ~ U[−1, 1]·init_scale, with 0 meaning 1/√N
    /// for N nodes (default).
    pub init_scale: f64,
    /// Record the metrics every this many steps. Default 10.
    pub every: usize,
    /// Steps whose features are plotted. Default `[0, 10, 100, 1000]`.
    pub snapshots: Vec<usize>,
    /// `"f64"` (default) or `"f32"`.
    pub precision: Precision,
    /// `[dynamics.renorm]`.
    pub renorm: ModeRenorm,
}

impl Default for ToyDynamics {
    fn default() -> Self {
        Self {
            objective: ToyObjective::Spectral,
            steps: 1000,
            eta: 0.1,
            init_scale: 0.0,
            every: 10,
            snapshots: vec![0, 10, 100, 1000],
            precision: Precision::F64,
            renorm: ModeRenorm::default(),
        }
    }
}

impl ToyConfig {
    /// Parses and validates a toy experiment; `origin` names the file in errors.
    ///
    /// # Errors
    /// [`GraphError::Config`] naming `origin` and the key at fault.
    pub fn parse(text: &str, origin: &str) -> Result<Self, GraphError> {
        let config: Self = toml::from_str(text).map_err(|e| GraphError::Config {
            origin: origin.into(),
            message: crate::toml_error::describe(&e, text),
        })?;
        config.validate().map_err(|message| GraphError::Config {
            origin: origin.into(),
            message,
        })?;
        Ok(config)
    }

    /// Checks every value against its domain; the message names the key.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.data;
        let g = &self.graph;
        let y = &self.dynamics;
        let positive = |key: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{key} = {v}: expected a finite value > 0"))
            }
        };
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(format!(
                "name = {:?}: expected a file name without slashes or a leading dot",
                self.name
            ));
        }
        if d.points_per_class < 2 {
            return Err(format!(
                "data.points_per_class = {}: expected ≥ 2",
                d.points_per_class
            ));
        }
        if let Some(v) = d.means.iter().flatten().find(|v| !v.is_finite()) {
            return Err(format!("data.means has {v}: expected finite coordinates"));
        }
        positive("data.variance", d.variance)?;
        positive("graph.epsilon", g.epsilon)?;
        positive("graph.eigen_tol", g.eigen_tol)?;
        positive("dynamics.eta", y.eta)?;
        if !(y.init_scale >= 0.0 && y.init_scale.is_finite()) {
            return Err(format!(
                "dynamics.init_scale = {}: expected a finite value ≥ 0",
                y.init_scale
            ));
        }
        if g.knn >= 2 * d.points_per_class {
            return Err(format!(
                "graph.knn = {}: expected fewer than the {} points",
                g.knn,
                2 * d.points_per_class
            ));
        }
        if g.k == 0 {
            return Err("graph.k = 0: expected ≥ 1".into());
        }
        if y.steps == 0 {
            return Err("dynamics.steps = 0: expected ≥ 1".into());
        }
        if y.every == 0 {
            return Err("dynamics.every = 0: expected ≥ 1".into());
        }
        if let Some(s) = y.snapshots.iter().find(|&&s| s > y.steps) {
            return Err(format!(
                "dynamics.snapshots has step {s}, past dynamics.steps = {}",
                y.steps
            ));
        }
        Ok(())
    }
}

/// The three modes, in the order they run and are reported.
pub const MODES: [Terms; 3] = [Terms::Alignment, Terms::Uniformity, Terms::Both];

/// The name of a mode in tables, files and plots.
pub fn mode_name(terms: Terms) -> &'static str {
    match terms {
        Terms::Alignment => "alignment",
        Terms::Uniformity => "uniformity",
        Terms::Both => "both",
    }
}

/// One mode's run.
#[derive(Debug, Clone)]
pub struct ModeRun {
    /// Which terms ran.
    pub terms: Terms,
    /// The rescaling used.
    pub renorm: Renorm,
    /// The metrics, in step order.
    pub records: Vec<Record>,
    /// `(step, f)` at the snapshot steps, with the class metrics' row scale applied
    /// (`f = D^-1/2 F` for the spectral loss), in f64.
    pub snapshots: Vec<(usize, Array2<f64>)>,
}

/// Everything a toy run found.
#[derive(Debug, Clone)]
pub struct ToyResult {
    /// Points drawn.
    pub points_total: usize,
    /// Connected components of the full graph.
    pub components: usize,
    /// The points the dynamics ran on, `[N, 2]`.
    pub points: Array2<f64>,
    /// Their classes.
    pub labels: Vec<usize>,
    /// Stored entries of the graph the dynamics ran on.
    pub entries: usize,
    /// The top eigenvalues of Ā (k + 2 of them, fewer on tiny graphs).
    pub eigenvalues: Vec<f64>,
    /// Whether the eigensolver met its tolerance, and its largest residual.
    pub eigen_converged: (bool, f64),
    /// Probe accuracy and distance ratio of the top-k eigenvectors scaled by D^-1/2.
    pub eigen_probe: (f64, f64),
    /// Accuracy of the Bayes rule between the two Gaussians on the same points.
    pub bayes_accuracy: f64,
    /// One run per mode, in [`MODES`] order.
    pub runs: Vec<ModeRun>,
}

/// The two classes: `points_per_class` points each, class 0 first.
///
/// # Shapes
/// Returns `[2m, 2]` and `[2m]`.
pub fn sample_points(data: &ToyData, seed: u64) -> (Array2<f64>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, data.variance.sqrt()).expect("a validated variance");
    let m = data.points_per_class;
    let labels: Vec<usize> = (0..2 * m).map(|i| i / m).collect();
    let mut points = Array2::zeros((2 * m, 2));
    for (mut row, &c) in points.rows_mut().into_iter().zip(&labels) {
        row[0] = data.means[c][0] + normal.sample(&mut rng);
        row[1] = data.means[c][1] + normal.sample(&mut rng);
    }
    (points, labels)
}

/// Runs the toy experiment; `progress` hears about each stage.
///
/// # Errors
/// [`GraphError`] from a graph that cannot carry the dynamics (e.g. a component smaller
/// than k nodes), naming the cause.
pub fn run_toy(cfg: &ToyConfig, mut progress: impl FnMut(&str)) -> Result<ToyResult, GraphError> {
    let (all_points, all_labels) = sample_points(&cfg.data, cfg.seed);
    let mut graph = epsilon_ball(all_points.view(), cfg.graph.epsilon)?;
    if cfg.graph.knn > 0 {
        let extra = knn(all_points.view(), cfg.graph.knn, false)?;
        let mut triplets: Vec<_> = graph.triplets().chain(extra.triplets()).collect();
        // An edge of both graphs keeps weight 1.
        triplets.sort_unstable_by_key(|&(i, j, _)| (i, j));
        triplets.dedup_by_key(|&mut (i, j, _)| (i, j));
        graph = CsrGraph::from_triplets(graph.nodes(), triplets)?;
    }
    let components = graph.components().into_iter().max().map_or(0, |m| m + 1);
    let (graph, keep) = match cfg.graph.component {
        Component::Largest => graph.largest_component(),
        Component::All => (graph, (0..all_points.nrows()).collect()),
    };
    let points = all_points.select(ndarray::Axis(0), &keep);
    let labels: Vec<usize> = keep.iter().map(|&i| all_labels[i]).collect();
    let n = graph.nodes();
    progress(&format!(
        "{} points, {components} component(s); running on {n} nodes ({})",
        all_points.nrows(),
        match cfg.graph.component {
            Component::Largest => "the largest component",
            Component::All => "all of them",
        }
    ));

    let abar = graph.sym_normalized()?;
    let k = cfg.graph.k;
    let eig = top_eigenpairs(
        &abar,
        &EigenConfig {
            k: (k + 2).min(n),
            tol: cfg.graph.eigen_tol,
            ..EigenConfig::default()
        },
    )?;
    let worst = eig.residuals.iter().copied().fold(0.0, f64::max);
    progress(&format!(
        "top eigenvalues of Ā {:.4?} after {} iterations (largest residual {worst:.1e})",
        eig.values.to_vec(),
        eig.iterations
    ));
    let top = eig.vectors.slice(s![.., ..k.min(n)]).to_owned();
    let degrees = graph.degrees();
    let inv_sqrt: Vec<f64> = degrees.iter().map(|d| d.sqrt().recip()).collect();
    let scale_rows = |f: &Array2<f64>| {
        let mut out = f.clone();
        out.rows_mut()
            .into_iter()
            .zip(&inv_sqrt)
            .for_each(|(mut r, &s)| r *= s);
        out
    };
    let eig_features = scale_rows(&top);
    let eigen_probe = (
        probe_accuracy(eig_features.view(), &labels)?,
        distance_ratio(eig_features.view(), &labels)?,
    );
    // Equal variances and priors: the Bayes rule picks the nearer mean.
    let bayes = |p: ndarray::ArrayView1<f64>| {
        let dist = |c: usize| (p[0] - cfg.data.means[c][0]).hypot(p[1] - cfg.data.means[c][1]);
        usize::from(dist(1) < dist(0))
    };
    let bayes_correct = points
        .rows()
        .into_iter()
        .zip(&labels)
        .filter(|(p, l)| bayes(p.view()) == **l)
        .count();

    let y = &cfg.dynamics;
    let scale = if y.init_scale > 0.0 {
        y.init_scale
    } else {
        (n as f64).sqrt().recip()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
    let uniform = Uniform::new(-1.0, 1.0).expect("a valid interval");
    let f0 = Array2::from_shape_simple_fn((n, k), || uniform.sample(&mut rng) * scale);
    let spectral = y.objective == ToyObjective::Spectral;
    let p = joint_distribution(&graph)?;
    let (graph64, row_scale) = if spectral {
        (&abar, Some(inv_sqrt.as_slice()))
    } else {
        (&p, None)
    };
    let reference = Reference {
        eigenspace: Some(top.view()),
        labels: Some(&labels),
        row_scale,
    };
    let mut runs = Vec::new();
    for terms in MODES {
        let renorm = Renorm::from(match terms {
            Terms::Alignment => y.renorm.alignment,
            Terms::Uniformity => y.renorm.uniformity,
            Terms::Both => y.renorm.both,
        });
        progress(&format!(
            "{}: {} steps of η = {} ({renorm:?} rescaling, {:?})",
            mode_name(terms),
            y.steps,
            y.eta,
            y.precision
        ));
        let schedule = Schedule {
            steps: y.steps,
            every: y.every,
            eta: y.eta,
            terms,
            renorm,
            snapshots: y.snapshots.clone(),
        };
        let (records, snapshots) = match y.precision {
            Precision::F64 => {
                let t = run(
                    objective_for(spectral, graph64),
                    f0.clone(),
                    &schedule,
                    &reference,
                )?;
                (t.records, t.snapshots)
            }
            Precision::F32 => {
                let g32 = graph64.cast::<f32>();
                let t = run(
                    objective_for(spectral, &g32),
                    f0.mapv(|x| x as f32),
                    &schedule,
                    &reference,
                )?;
                let wide = t.snapshots.into_iter().map(|(s, f)| (s, f.mapv(f64::from)));
                (t.records, wide.collect())
            }
        };
        let snapshots = snapshots
            .into_iter()
            .map(|(step, f)| (step, if spectral { scale_rows(&f) } else { f }))
            .collect();
        runs.push(ModeRun {
            terms,
            renorm,
            records,
            snapshots,
        });
    }
    Ok(ToyResult {
        points_total: all_points.nrows(),
        components,
        entries: graph.entries(),
        eigenvalues: eig.values.to_vec(),
        eigen_converged: (eig.converged, worst),
        eigen_probe,
        bayes_accuracy: bayes_correct as f64 / n as f64,
        points,
        labels,
        runs,
    })
}

impl ToyResult {
    /// The nodes the dynamics ran on.
    pub fn nodes(&self) -> usize {
        self.labels.len()
    }

    /// The summary table in markdown: the last record of each mode, then the references.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Toy: {} points, {} component(s); dynamics on {} nodes ({} graph entries).\n\
             Top eigenvalues of Ā: {}{}.\n\n",
            self.points_total,
            self.components,
            self.nodes(),
            self.entries,
            self.eigenvalues
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>()
                .join(", "),
            if self.eigen_converged.0 {
                String::new()
            } else {
                format!(
                    " (NOT converged: largest residual {:.1e})",
                    self.eigen_converged.1
                )
            },
        );
        out.push_str(
            "| features | step | loss | singular values | σ₂/σ₁ | effective rank \
             | principal angles (°) | distance ratio | probe accuracy |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.runs {
            let Some(last) = r.records.last() else {
                continue;
            };
            let sv = &last.singular_values;
            let joined = |v: &[f64], f: &dyn Fn(f64) -> String| {
                v.iter().map(|&x| f(x)).collect::<Vec<_>>().join(", ")
            };
            let angles = last.principal_angles.as_deref().map_or("–".into(), |a| {
                joined(a, &|x: f64| format!("{:.3}", x.to_degrees()))
            });
            out.push_str(&format!(
                "| {} | {} | {:.4} | {} | {:.3e} | {:.3} | {} | {:.3} | {:.3} |\n",
                mode_name(r.terms),
                last.step,
                last.loss,
                joined(sv, &|x: f64| format!("{x:.3e}")),
                ratio(sv),
                last.effective_rank,
                angles,
                last.distance_ratio.unwrap_or(f64::NAN),
                last.probe_accuracy.unwrap_or(f64::NAN),
            ));
        }
        out.push_str(&format!(
            "| top-{} eigenvectors · D^-1/2 | – | – | – | – | – | 0 | {:.3} | {:.3} |\n\
             | Bayes rule (nearer mean) | – | – | – | – | – | – | – | {:.3} |\n",
            self.runs
                .first()
                .and_then(|r| r.records.first())
                .map_or(0, |r| r.singular_values.len()),
            self.eigen_probe.1,
            self.eigen_probe.0,
            self.bayes_accuracy
        ));
        out
    }

    /// Every record of every mode as CSV, one row per (mode, step).
    pub fn csv(&self) -> String {
        let k = self
            .runs
            .iter()
            .find_map(|r| r.records.first())
            .map_or(0, |r| r.singular_values.len());
        let mut out = String::from("mode,step,loss");
        (1..=k).for_each(|i| out.push_str(&format!(",sigma_{i}")));
        out.push_str(",effective_rank");
        (1..=k).for_each(|i| out.push_str(&format!(",angle_{i}_rad")));
        out.push_str(",distance_ratio,probe_accuracy,affinity_gap\n");
        let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.9e}"));
        for r in &self.runs {
            for rec in &r.records {
                out.push_str(&format!(
                    "{},{},{:.9e}",
                    mode_name(r.terms),
                    rec.step,
                    rec.loss
                ));
                for i in 0..k {
                    out.push_str(&format!(",{}", opt(rec.singular_values.get(i).copied())));
                }
                out.push_str(&format!(",{:.9e}", rec.effective_rank));
                for i in 0..k {
                    let a = rec
                        .principal_angles
                        .as_ref()
                        .and_then(|a| a.get(i).copied());
                    out.push_str(&format!(",{}", opt(a)));
                }
                out.push_str(&format!(
                    ",{},{},{}\n",
                    opt(rec.distance_ratio),
                    opt(rec.probe_accuracy),
                    opt(rec.affinity_gap)
                ));
            }
        }
        out
    }
}

/// The objective on `g`: Ā for the spectral loss, the joint distribution for InfoNCE.
fn objective_for<G>(spectral: bool, g: &G) -> Objective<'_, G> {
    if spectral {
        Objective::Spectral(g)
    } else {
        Objective::InfoNce(g)
    }
}

/// σ_k/σ₁ of descending singular values (the smallest over the largest); 0 for zero F.
pub fn ratio(singular: &[f64]) -> f64 {
    match (singular.first(), singular.last()) {
        (Some(&first), Some(&last)) if first > 0.0 => last / first,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small instance: 120 points per class with a wider ε (0.6) so that the largest
    /// component holds most points, and η = 0.2.
    fn small(steps: usize) -> ToyConfig {
        let text = format!(
            "kind = \"toy\"\n[data]\npoints_per_class = 120\n[graph]\nepsilon = 0.6\n\
             [dynamics]\nsteps = {steps}\neta = 0.2\nevery = {}\nsnapshots = [0]\n",
            steps / 4
        );
        ToyConfig::parse(&text, "small.toml").unwrap()
    }

    #[test]
    fn the_three_modes_do_what_the_theory_says() {
        for steps in [400, 1600] {
            let cfg = small(steps);
            let r = run_toy(&cfg, |_| {}).unwrap();
            let eta = cfg.dynamics.eta;
            let (l1, l2) = (r.eigenvalues[0], r.eigenvalues[1]);
            let first_last = |m: usize| {
                let recs = &r.runs[m].records;
                (&recs[0], recs.last().unwrap())
            };
            // Alignment: σ₂/σ₁ shrinks at least like ((1 + ηλ₂)/(1 + ηλ₁))^{t/2}
            // (half the exponent of the predicted rate, which holds once λ₃'s share has
            // died out), or reaches the rounding floor of σ from FᵀF (about 1e-8).
            let (a0, at) = first_last(0);
            let rate = (1.0 + eta * l2) / (1.0 + eta * l1);
            let bound = ratio(&a0.singular_values) * rate.powf(steps as f64 / 2.0);
            let collapsed = ratio(&at.singular_values);
            assert!(
                collapsed < bound.max(1e-7),
                "{steps}: {collapsed} vs {bound}"
            );
            // Both: σ₂/σ₁ heads for its fixed point √(λ₂/λ₁) instead of 0.
            let (b0, bt) = first_last(2);
            let target = (l2 / l1).sqrt();
            let kept = ratio(&bt.singular_values);
            let start = ratio(&b0.singular_values);
            assert!(
                (kept - target).abs() < (start - target).abs(),
                "{steps}: {start} → {kept}, target {target}"
            );
            assert!(kept > collapsed, "{steps}: {kept} vs {collapsed}");
            // Both separates the classes as well as the top-2 eigenvectors, up to one
            // point in 50.
            let probe = bt.probe_accuracy.unwrap();
            assert!(
                probe >= r.eigen_probe.0 - 0.02,
                "{steps}: {probe} vs {:?}",
                r.eigen_probe
            );
        }
    }

    #[test]
    fn the_shipped_config_is_the_documented_default() {
        let text = include_str!("../../../configs/toy.toml");
        let cfg = ToyConfig::parse(text, "configs/toy.toml").unwrap();
        let defaults = ToyConfig::parse("kind = \"toy\"\n", "-").unwrap();
        assert_eq!(cfg, defaults);
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = |text: &str| ToyConfig::parse(text, "t.toml").unwrap_err().to_string();
        let e = bad("kind = \"toy\"\n[data]\nvariance = -1.0\n");
        assert!(
            e.contains("t.toml") && e.contains("data.variance = -1"),
            "{e}"
        );
        let e = bad("kind = \"toy\"\n[dynamics]\nsteps = 5\nsnapshots = [9]\n");
        assert!(e.contains("dynamics.snapshots has step 9"), "{e}");
        let e = bad("kind = \"toy\"\n[graph]\nepsilon = 0.4\nepsilno = 1.0\n");
        assert!(e.contains("t.toml: graph.epsilno: unknown field"), "{e}");
        let e = bad("kind = \"train\"\n");
        assert!(e.contains("train"), "{e}");
        let e = bad("name = \"x\"\n");
        assert!(e.contains("kind"), "{e}");
    }

    #[test]
    fn sampling_is_deterministic_with_the_requested_moments() {
        let data = ToyData {
            points_per_class: 4000,
            ..ToyData::default()
        };
        let (p, labels) = sample_points(&data, 3);
        assert_eq!(p, sample_points(&data, 3).0);
        // Class means within 4 standard errors (√(0.7/4000) ≈ 0.013) of (∓1, 0).
        for c in 0..2 {
            let rows: Vec<usize> = (0..8000).filter(|&i| labels[i] == c).collect();
            let mean = p
                .select(ndarray::Axis(0), &rows)
                .mean_axis(ndarray::Axis(0))
                .unwrap();
            assert!((mean[0] - data.means[c][0]).abs() < 0.053, "{mean}");
            assert!(mean[1].abs() < 0.053, "{mean}");
        }
    }
}
