//! The experiment's report, rebuilt from its run directories alone.
//!
//! For each configuration: mean ± sample standard deviation over its finished seeds of the
//! kNN and linear-probe top-1 accuracy of the trained encoder, the wall time (summed over
//! the runner's launches, `attempts.json`), the training time (Σ of `metrics.csv`'s epoch
//! seconds) and the throughput (views over training seconds); the baselines each run
//! evaluates (raw pixels, random encoder) become rows of their own, one per distinct data
//! set, network and evaluation, averaged over distinct seeds. The paper's number stands
//! beside a configuration only under [`crate::paper::compare`]'s rule.
//!
//! Files, in the experiment's directory: `report.md`, `report.csv` (one row per
//! configuration and baseline), `report.json` (the same with every seed's numbers and the
//! curves), `curves.png` (training loss, the online classifier's and the kNN monitor's test
//! accuracy per epoch, means over seeds) and `accuracy.png` (bars of both top-1 accuracies).

use std::path::{Path, PathBuf};

use mpcl_data::fsutil::write_atomic;
use mpcl_plot::{Bars, Lines, Panel, Series};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::ExperimentError;
use crate::paper::{Comparison, RunKey, compare};
use crate::plan::{Experiment, Run, get_path};
use crate::runner::read_attempts;
use crate::state::{REQUESTED, RunState};

/// Mean and sample standard deviation (n − 1 in the denominator) of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation; none for a single value.
    pub std: Option<f64>,
    /// How many values.
    pub n: usize,
}

impl Stat {
    /// The statistics of the finite values, if there are any.
    pub fn of(values: &[f64]) -> Option<Self> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.len() > 1)
            .then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Some(Self {
            mean,
            std,
            n: v.len(),
        })
    }

    /// `mean ± std` with `digits` decimals after scaling by `scale`.
    fn show(&self, scale: f64, digits: usize) -> String {
        match self.std {
            Some(s) => format!("{:.digits$} ± {:.digits$}", self.mean * scale, s * scale),
            None => format!("{:.digits$}", self.mean * scale),
        }
    }
}

/// One seed's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// kNN top-1 accuracy, a fraction.
    pub knn_top1: f64,
    /// Linear-probe top-1 accuracy, a fraction.
    pub probe_top1: f64,
    /// Seconds over the runner's launches; none for a run the runner did not launch.
    pub wall_s: Option<f64>,
    /// Σ of the epochs' seconds.
    pub train_s: f64,
    /// Views per second of training.
    pub views_per_s: f64,
}

/// A paper number shown beside a configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperCell {
    /// Linear-probe top-1 accuracy in percent.
    pub top1: f64,
    /// The probe protocol it was measured with.
    pub protocol: String,
    /// Its training epochs.
    pub epochs: u64,
}

/// One row of the report: a trained configuration or a baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The configuration (`simclr-attention,train.lr=0.001`) or the baseline's name with
    /// what it depends on (`raw pixels (fashion-mnist)`).
    pub configuration: String,
    /// `"trained"` or `"baseline"`.
    pub kind: &'static str,
    /// `(axis or "variant", value)` pairs of a trained configuration.
    pub settings: Vec<(String, String)>,
    /// `train.method` (a trained row).
    pub method: String,
    /// The aggregators switched on, joined by `+`, or `none`.
    pub aggregators: String,
    /// `data.dataset`.
    pub dataset: String,
    /// `model.encoder` (empty for raw pixels).
    pub backbone: String,
    /// `train.epochs` (a trained row).
    pub epochs: Option<u64>,
    /// `eval.probe.protocol`.
    pub protocol: String,
    /// Seeds the experiment asks for.
    pub seeds_planned: usize,
    /// Each finished seed's numbers.
    pub per_seed: Vec<SeedResult>,
    /// kNN top-1 over the finished seeds (fractions).
    pub knn_top1: Option<Stat>,
    /// Linear-probe top-1 over the finished seeds (fractions).
    pub probe_top1: Option<Stat>,
    /// Wall time in seconds, over seeds launched by the runner.
    pub wall_s: Option<Stat>,
    /// Training time in seconds.
    pub train_s: Option<Stat>,
    /// Training throughput in views per second.
    pub views_per_s: Option<Stat>,
    /// The paper's number, when the settings match.
    pub paper: Option<PaperCell>,
    /// Why the paper's number for this data set, backbone and method is not shown.
    pub paper_withheld: Option<String>,
}

/// Per-epoch means over a configuration's finished seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    /// The configuration.
    pub configuration: String,
    /// `(epoch, mean training loss)`.
    pub loss: Vec<(f64, f64)>,
    /// `(epoch, mean online-classifier test top-1)`, where the classifier ran.
    pub online_test_top1: Vec<(f64, f64)>,
    /// `(epoch, mean kNN test top-1)` of the online monitor, where it ran.
    pub knn_test_top1: Vec<(f64, f64)>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The experiment's name.
    pub experiment: String,
    /// The experiment file.
    pub file: PathBuf,
    /// The experiment's description.
    pub description: Option<String>,
    /// Runs planned and finished.
    pub runs: (usize, usize),
    /// Trained configurations first, in expansion order, then the baselines.
    pub rows: Vec<Row>,
    /// Each evaluation protocol in use, as the trainer describes it, with the rows using it.
    pub protocols: Vec<(String, Vec<String>)>,
    /// Runs not finished, with their state.
    pub unfinished: Vec<(String, String)>,
    /// Loss and accuracy curves.
    pub curves: Vec<Curve>,
}

/// One row of `metrics.csv` (the columns the report uses).
#[derive(Debug, Deserialize)]
struct Epoch {
    epoch: u64,
    loss: f64,
    views_per_s: f64,
    seconds: f64,
    online_test_top1: f64,
    /// The online kNN monitor's test top-1; absent in runs made before it existed.
    #[serde(default = "nan")]
    knn_test_top1: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// A baseline's values, gathered over the runs that evaluate it the same way.
struct Baseline {
    /// The row name in `results.json` (`raw pixels`, `random encoder`).
    name: String,
    /// [`Finished::baseline_key`].
    key: String,
    dataset: String,
    backbone: String,
    protocol: String,
    /// `(seed, kNN top-1, probe top-1)`, one per seed.
    seeds: Vec<(u64, f64, f64)>,
}

/// What a finished run left.
struct Finished {
    seed: u64,
    config: Table,
    results: serde_json::Value,
    metrics: Vec<Epoch>,
    wall_s: Option<f64>,
    protocol_text: Option<String>,
}

impl Finished {
    fn read(dir: &Path, run: &Run) -> Result<Self, ExperimentError> {
        let bad = |message: String| ExperimentError::Run {
            dir: dir.to_owned(),
            message,
        };
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| ExperimentError::io(&path, e))
        };
        // The trainer's resolved config has every default filled in.
        let config = match read("config.toml") {
            Ok(text) => text,
            Err(_) => read(REQUESTED)?,
        };
        let config: Table = toml::from_str(&config)
            .map_err(|e| bad(format!("config.toml: {}", e.to_string().trim_end())))?;
        let results = serde_json::from_str(&read("results.json")?)
            .map_err(|e| bad(format!("results.json: {e}")))?;
        let metrics_path = dir.join("metrics.csv");
        let mut metrics = Vec::new();
        let mut reader =
            csv::Reader::from_path(&metrics_path).map_err(|e| bad(format!("metrics.csv: {e}")))?;
        for row in reader.deserialize() {
            metrics.push(row.map_err(|e| bad(format!("metrics.csv: {e}")))?);
        }
        let attempts = read_attempts(dir)?;
        let wall_s = (!attempts.is_empty()).then(|| attempts.iter().map(|a| a.seconds).sum());
        let protocol_text = read("results.md").ok().and_then(|md| {
            md.lines()
                .find(|l| l.starts_with("kNN:"))
                .map(str::to_owned)
        });
        Ok(Self {
            seed: run.seed,
            config,
            results,
            metrics,
            wall_s,
            protocol_text,
        })
    }

    fn str_at(&self, path: &[&str]) -> String {
        match get_path(&self.config, path) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    fn int_at(&self, path: &[&str]) -> Option<u64> {
        get_path(&self.config, path)
            .and_then(Value::as_integer)
            .map(|i| i as u64)
    }

    fn aggregators(&self) -> Vec<String> {
        match get_path(&self.config, &["aggregators"]) {
            Some(Value::Table(t)) => t.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn protocol(&self) -> String {
        let enabled = get_path(&self.config, &["eval", "enabled"]).and_then(Value::as_bool);
        if enabled == Some(false) {
            return "not evaluated".into();
        }
        match self.str_at(&["eval", "probe", "protocol"]) {
            p if p.is_empty() => "standardised".into(),
            p => p,
        }
    }

    /// The `(name, kNN top-1, probe top-1)` of each evaluated representation.
    fn rows(&self) -> Vec<(String, f64, f64)> {
        let rows = self.results["rows"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or("").to_owned(),
                    r["knn"]["top1"].as_f64().unwrap_or(f64::NAN),
                    r["probe"]["top1"].as_f64().unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    fn train_s(&self) -> f64 {
        self.metrics.iter().map(|m| m.seconds).sum()
    }

    fn views_per_s(&self) -> f64 {
        let views: f64 = self.metrics.iter().map(|m| m.views_per_s * m.seconds).sum();
        views / self.train_s()
    }

    /// What a baseline row depends on, as canonical TOML: the data and evaluation settings,
    /// and the network for anything but raw pixels.
    fn baseline_key(&self, name: &str) -> String {
        let mut t = Table::new();
        let mut keys = vec!["data", "eval"];
        if name != "raw pixels" {
            keys.push("model");
        }
        for k in keys {
            if let Some(v) = self.config.get(k) {
                t.insert(k.into(), v.clone());
            }
        }
        toml::to_string(&t).expect("a TOML table serialises")
    }
}

impl Report {
    /// Reads every run directory of `exp` under `exp_dir` and aggregates.
    ///
    /// # Errors
    /// A finished run whose files cannot be read or parsed, or a run directory holding
    /// another configuration.
    pub fn build(exp: &Experiment, exp_dir: &Path) -> Result<Self, ExperimentError> {
        let mut rows = Vec::new();
        let mut curves = Vec::new();
        let mut unfinished = Vec::new();
        let mut finished_count = 0;
        let mut protocols: Vec<(String, Vec<String>)> = Vec::new();
        let mut baselines: Vec<Baseline> = Vec::new();
        for (config, runs) in exp.configurations() {
            let mut done = Vec::new();
            for run in &runs {
                let dir = exp_dir.join(run.rel_dir());
                match RunState::of(&dir, &run.table)? {
                    RunState::Finished => done.push(Finished::read(&dir, run)?),
                    state => unfinished.push((
                        run.rel_dir().display().to_string(),
                        state.label().to_owned(),
                    )),
                }
            }
            finished_count += done.len();
            let first = done.first();
            // The resolved config of a finished run, else what the experiment asks for.
            let str_at = |p: &[&str]| match first {
                Some(f) => f.str_at(p),
                None => match get_path(&runs[0].table, p) {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                },
            };
            let aggregators = first.map(Finished::aggregators).unwrap_or_default();
            let protocol = first.map(Finished::protocol).unwrap_or_default();
            let mut per_seed = Vec::new();
            for f in &done {
                let trained = f.rows();
                let Some((_, knn, probe)) = trained.first().cloned() else {
                    continue;
                };
                per_seed.push(SeedResult {
                    seed: f.seed,
                    knn_top1: knn,
                    probe_top1: probe,
                    wall_s: f.wall_s,
                    train_s: f.train_s(),
                    views_per_s: f.views_per_s(),
                });
                let text = f.protocol_text.clone().unwrap_or_else(|| f.protocol());
                match protocols.iter_mut().find(|(t, _)| *t == text) {
                    Some((_, users)) if users.last().map(String::as_str) == Some(config) => {}
                    Some((_, users)) => users.push(config.to_owned()),
                    None => protocols.push((text, vec![config.to_owned()])),
                }
                for (name, knn, probe) in trained.into_iter().skip(1) {
                    let key = f.baseline_key(&name);
                    match baselines
                        .iter_mut()
                        .find(|b| b.name == name && b.key == key)
                    {
                        // One value per seed: other configurations evaluate it identically.
                        Some(b) if b.seeds.iter().any(|s| s.0 == f.seed) => {}
                        Some(b) => b.seeds.push((f.seed, knn, probe)),
                        None => baselines.push(Baseline {
                            dataset: f.str_at(&["data", "dataset"]),
                            backbone: match name.as_str() {
                                "raw pixels" => String::new(),
                                _ => f.str_at(&["model", "encoder"]),
                            },
                            protocol: f.protocol(),
                            name,
                            key,
                            seeds: vec![(f.seed, knn, probe)],
                        }),
                    }
                }
            }
            let epochs = first.and_then(|f| f.int_at(&["train", "epochs"]));
            let (paper, paper_withheld) = match first {
                None => (None, None),
                Some(f) => {
                    let key = RunKey {
                        dataset: f.str_at(&["data", "dataset"]),
                        whole: f.int_at(&["data", "train_subset"]).unwrap_or(0) == 0
                            && f.int_at(&["data", "test_subset"]).unwrap_or(0) == 0,
                        backbone: f.str_at(&["model", "encoder"]),
                        method: f.str_at(&["train", "method"]),
                        aggregators: aggregators.clone(),
                        epochs: epochs.unwrap_or(0),
                        protocol: protocol.clone(),
                    };
                    match compare(&key) {
                        Comparison::None => (None, None),
                        Comparison::Match(n) => (
                            Some(PaperCell {
                                top1: n.top1,
                                protocol: n.protocol.unwrap_or_default().to_owned(),
                                epochs: n.epochs.unwrap_or_default(),
                            }),
                            None,
                        ),
                        Comparison::Differs(n, why) => {
                            (None, Some(format!("{:.1}: {}", n.top1, why.join("; "))))
                        }
                    }
                }
            };
            let pick =
                |f: fn(&SeedResult) -> f64| Stat::of(&per_seed.iter().map(f).collect::<Vec<_>>());
            let walls: Vec<f64> = per_seed.iter().filter_map(|s| s.wall_s).collect();
            rows.push(Row {
                configuration: config.to_owned(),
                kind: "trained",
                settings: runs[0].settings.clone(),
                method: str_at(&["train", "method"]),
                aggregators: if aggregators.is_empty() {
                    "none".into()
                } else {
                    aggregators.join("+")
                },
                dataset: str_at(&["data", "dataset"]),
                backbone: str_at(&["model", "encoder"]),
                epochs,
                protocol: protocol.clone(),
                seeds_planned: runs.len(),
                knn_top1: pick(|s| s.knn_top1),
                probe_top1: pick(|s| s.probe_top1),
                wall_s: Stat::of(&walls),
                train_s: pick(|s| s.train_s),
                views_per_s: pick(|s| s.views_per_s),
                per_seed,
                paper,
                paper_withheld,
            });
            curves.push(curve(config, &done));
        }
        for b in baselines {
            let knn: Vec<f64> = b.seeds.iter().map(|s| s.1).collect();
            let probe: Vec<f64> = b.seeds.iter().map(|s| s.2).collect();
            let mut configuration = match b.backbone.as_str() {
                "" => format!("{} ({})", b.name, b.dataset),
                net => format!("{} ({}, {net})", b.name, b.dataset),
            };
            // The same baseline under other evaluation or network settings.
            let same = rows
                .iter()
                .filter(|r| r.configuration.starts_with(&configuration));
            match same.count() {
                0 => {}
                n => configuration.push_str(&format!(" #{}", n + 1)),
            }
            rows.push(Row {
                configuration,
                kind: "baseline",
                settings: Vec::new(),
                method: b.name,
                aggregators: String::new(),
                dataset: b.dataset,
                backbone: b.backbone,
                epochs: None,
                protocol: b.protocol,
                seeds_planned: b.seeds.len(),
                per_seed: Vec::new(),
                knn_top1: Stat::of(&knn),
                probe_top1: Stat::of(&probe),
                wall_s: None,
                train_s: None,
                views_per_s: None,
                paper: None,
                paper_withheld: None,
            });
        }
        curves.retain(|c| !c.loss.is_empty());
        Ok(Self {
            experiment: exp.name.clone(),
            file: exp.file.clone(),
            description: exp.description.clone(),
            runs: (exp.runs.len(), finished_count),
            rows,
            protocols,
            unfinished,
            curves,
        })
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let pct = |s: &Option<Stat>| s.map_or("–".into(), |s| s.show(100.0, 1));
        let secs = |s: &Option<Stat>| s.map_or("–".into(), |s| s.show(1.0, 0));
        let mut md = format!("# Experiment {}\n\n", self.experiment);
        if let Some(d) = &self.description {
            md.push_str(&format!("{}\n\n", d.trim()));
        }
        md.push_str(&format!(
            "From `{}`: {} of {} runs finished. Accuracies are top-1 in percent on the test \
             split, mean ± sample standard deviation (n − 1) over the finished seeds (no ± \
             for one seed); wall time is summed over the runner's launches of a run, training \
             time over its epochs, throughput is views per second of training.\n\n",
            self.file.display(),
            self.runs.1,
            self.runs.0
        ));
        md.push_str(
            "| configuration | method | aggregators | data set | backbone | epochs | seeds \
             | kNN top-1 | linear top-1 | paper | probe | wall s | train s | views/s |\n\
             |---|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|\n",
        );
        for r in self.rows.iter().filter(|r| r.kind == "trained") {
            let paper = r
                .paper
                .as_ref()
                .map_or("–".into(), |p| format!("{:.1}", p.top1));
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {paper} | {} | {} | {} | {} \
                 |\n",
                r.configuration,
                r.method,
                r.aggregators,
                r.dataset,
                r.backbone,
                r.epochs.map_or("–".into(), |e| e.to_string()),
                r.per_seed.len(),
                r.seeds_planned,
                pct(&r.knn_top1),
                pct(&r.probe_top1),
                r.protocol,
                secs(&r.wall_s),
                secs(&r.train_s),
                secs(&r.views_per_s),
            ));
        }
        let baselines: Vec<&Row> = self.rows.iter().filter(|r| r.kind == "baseline").collect();
        if !baselines.is_empty() {
            md.push_str(
                "\nBaselines, evaluated by each run before training (one row per data set, \
                 network and evaluation; seeds change the random encoder only):\n\n\
                 | baseline | seeds | kNN top-1 | linear top-1 | probe |\n\
                 |---|---:|---:|---:|---|\n",
            );
            for r in baselines {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    r.configuration,
                    r.seeds_planned,
                    pct(&r.knn_top1),
                    pct(&r.probe_top1),
                    r.protocol
                ));
            }
        }
        md.push_str(
            "\n## Paper numbers\n\nThe paper's linear-probe top-1 (docs/science.md §6) stands \
             in the table only where data set (whole), backbone, method with its aggregators, \
             epochs and probe protocol all match; the paper's probe is the SimCLR reference \
             protocol (docs/science.md §5).\n\n",
        );
        let shown: Vec<&Row> = self.rows.iter().filter(|r| r.paper.is_some()).collect();
        for r in &shown {
            let p = r.paper.as_ref().expect("filtered");
            md.push_str(&format!(
                "- {}: {:.1} ({} epochs, probe \"{}\")\n",
                r.configuration, p.top1, p.epochs, p.protocol
            ));
        }
        for r in self.rows.iter().filter(|r| r.paper_withheld.is_some()) {
            md.push_str(&format!(
                "- {}: the paper's {} (not shown)\n",
                r.configuration,
                r.paper_withheld.as_deref().expect("filtered")
            ));
        }
        if shown.is_empty() && self.rows.iter().all(|r| r.paper_withheld.is_none()) {
            md.push_str("No configuration has a counterpart in the paper.\n");
        }
        if !self.protocols.is_empty() {
            md.push_str("\n## Evaluation protocols\n\n");
            for (text, users) in &self.protocols {
                md.push_str(&format!("- {}: {text}\n", users.join(", ")));
            }
        }
        if !self.unfinished.is_empty() {
            md.push_str("\n## Runs not finished\n\n");
            for (run, state) in &self.unfinished {
                md.push_str(&format!("- {run}: {state}\n"));
            }
        }
        if !self.curves.is_empty() {
            md.push_str(
                "\n## Figures\n\n![training loss and online accuracy](curves.png)\n\n\
                 ![top-1 accuracy](accuracy.png)\n",
            );
        }
        md
    }

    /// The rows as CSV.
    pub fn csv(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            configuration: &'a str,
            kind: &'a str,
            method: &'a str,
            aggregators: &'a str,
            dataset: &'a str,
            backbone: &'a str,
            epochs: Option<u64>,
            probe_protocol: &'a str,
            seeds_planned: usize,
            seeds_finished: usize,
            knn_top1_mean: Option<f64>,
            knn_top1_std: Option<f64>,
            probe_top1_mean: Option<f64>,
            probe_top1_std: Option<f64>,
            wall_s_mean: Option<f64>,
            train_s_mean: Option<f64>,
            views_per_s_mean: Option<f64>,
            paper_top1: Option<f64>,
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in &self.rows {
            let finished = match r.kind {
                "trained" => r.per_seed.len(),
                _ => r.knn_top1.map_or(0, |s| s.n),
            };
            w.serialize(Line {
                configuration: &r.configuration,
                kind: r.kind,
                method: &r.method,
                aggregators: &r.aggregators,
                dataset: &r.dataset,
                backbone: &r.backbone,
                epochs: r.epochs,
                probe_protocol: &r.protocol,
                seeds_planned: r.seeds_planned,
                seeds_finished: finished,
                knn_top1_mean: r.knn_top1.map(|s| s.mean),
                knn_top1_std: r.knn_top1.and_then(|s| s.std),
                probe_top1_mean: r.probe_top1.map(|s| s.mean),
                probe_top1_std: r.probe_top1.and_then(|s| s.std),
                wall_s_mean: r.wall_s.map(|s| s.mean),
                train_s_mean: r.train_s.map(|s| s.mean),
                views_per_s_mean: r.views_per_s.map(|s| s.mean),
                paper_top1: r.paper.as_ref().map(|p| p.top1),
            })
            .expect("writing CSV to memory");
        }
        String::from_utf8(w.into_inner().expect("an in-memory writer")).expect("UTF-8 CSV")
    }

    /// Writes `report.md`, `report.csv`, `report.json` and the figures into `exp_dir`;
    /// returns the paths written.
    ///
    /// # Errors
    /// A file that cannot be written or a figure that cannot be drawn (no font).
    pub fn write(&self, exp_dir: &Path) -> Result<Vec<PathBuf>, ExperimentError> {
        let mut written = Vec::new();
        let json = serde_json::to_string_pretty(self).expect("a report serialises");
        for (name, text) in [
            ("report.md", self.markdown()),
            ("report.csv", self.csv()),
            ("report.json", json),
        ] {
            let path = exp_dir.join(name);
            write_atomic(&path, text.as_bytes())?;
            written.push(path);
        }
        if self.curves.is_empty() {
            return Ok(written);
        }
        let series = |f: fn(&Curve) -> &Vec<(f64, f64)>| {
            self.curves
                .iter()
                .filter(|c| !f(c).is_empty())
                .map(|c| Series {
                    name: c.configuration.clone(),
                    points: f(c).clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut panels = vec![Panel::Lines(Lines {
            title: "training loss (mean over seeds)".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            log_y: false,
            series: series(|c| &c.loss),
        })];
        let accuracy = [
            (
                "online linear classifier, test top-1",
                series(|c| &c.online_test_top1),
            ),
            ("kNN monitor, test top-1", series(|c| &c.knn_test_top1)),
        ];
        for (title, series) in accuracy.into_iter().filter(|(_, s)| !s.is_empty()) {
            panels.push(Panel::Lines(Lines {
                title: title.into(),
                x_label: "epoch".into(),
                y_label: "accuracy".into(),
                log_y: false,
                series,
            }));
        }
        let path = exp_dir.join("curves.png");
        let title = format!("{}: training curves", self.experiment);
        mpcl_plot::figure(&path, &title, &panels, 2, (640, 420))?;
        written.push(path);
        let bars = |f: fn(&Row) -> Option<Stat>| {
            self.rows
                .iter()
                .filter_map(|r| f(r).map(|s| (r.configuration.clone(), 100.0 * s.mean)))
                .collect::<Vec<_>>()
        };
        let (knn, probe) = (bars(|r| r.knn_top1), bars(|r| r.probe_top1));
        if !knn.is_empty() {
            let panels = [
                Panel::Bars(Bars {
                    title: "kNN top-1 (mean over seeds)".into(),
                    y_label: "%".into(),
                    bars: knn,
                }),
                Panel::Bars(Bars {
                    title: "linear-probe top-1 (mean over seeds)".into(),
                    y_label: "%".into(),
                    bars: probe,
                }),
            ];
            let path = exp_dir.join("accuracy.png");
            let title = format!("{}: accuracy", self.experiment);
            mpcl_plot::figure(&path, &title, &panels, 1, (1000, 420))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The per-epoch means of a configuration's finished seeds.
fn curve(config: &str, done: &[Finished]) -> Curve {
    let epochs = done.iter().map(|f| f.metrics.len()).max().unwrap_or(0);
    let mut loss = Vec::new();
    let mut online = Vec::new();
    let mut knn = Vec::new();
    for e in 1..=epochs as u64 {
        let at = |f: fn(&Epoch) -> f64| {
            let v: Vec<f64> = done
                .iter()
                .filter_map(|d| d.metrics.iter().find(|m| m.epoch == e).map(f))
                .collect();
            Stat::of(&v).map(|s| (e as f64, s.mean))
        };
        loss.extend(at(|m| m.loss));
        online.extend(at(|m| m.online_test_top1));
        knn.extend(at(|m| m.knn_test_top1));
    }
    Curve {
        configuration: config.to_owned(),
        loss,
        online_test_top1: online,
        knn_test_top1: knn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{ATTEMPTS, Attempt};

    const GRID: &str = r#"
        [experiment]
        name = "fab"
        [axes]
        seed = [0, 1, 2]
        [[variants]]
        name = "simclr"
        [[variants]]
        name = "attention"
        set = { "aggregators.attention" = {} }
    "#;

    /// A finished run as the trainer and the runner leave it: the resolved config, two
    /// epochs of metrics (30 s at 1000 views/s, 40 s at 2000 views/s), results with the
    /// trained encoder and both baselines, and the runner's launches.
    fn fabricate(
        dir: &Path,
        run: &Run,
        (protocol, epochs, aggregators): (&str, u64, &str),
        (knn, probe): (f64, f64),
        random_knn: f64,
        launches: &[f64],
    ) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(REQUESTED), run.toml()).unwrap();
        let config = format!(
            "name = \"x\"\n[data]\ndataset = \"cifar10\"\ntrain_subset = 0\ntest_subset = 0\n\
             [model]\nencoder = \"resnet18\"\n[train]\nmethod = \"simclr\"\nepochs = {epochs}\n\
             seed = {}\n[aggregators]\n{aggregators}\n[eval]\nenabled = true\n\
             [eval.probe]\nprotocol = \"{protocol}\"\n",
            run.seed
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        std::fs::write(
            dir.join("metrics.csv"),
            "epoch,step,loss,lr,views_per_s,seconds,grad_alignment,grad_uniformity,\
             online_train_top1,online_test_top1\n\
             1,10,5.000000,1e-3,1000.0,30.00,1e-2,1e-2,0.3000,0.4000\n\
             2,20,4.000000,1e-3,2000.0,40.00,1e-2,1e-2,0.5000,NaN\n",
        )
        .unwrap();
        let row = |name: &str, knn: f64, probe: f64| {
            serde_json::json!({"name": name, "knn": {"top1": knn, "top5": 1.0},
                "probe": {"top1": probe, "top5": 1.0}})
        };
        let results = serde_json::json!({"rows": [
            row("SimCLR encoder (200 epochs)", knn, probe),
            row("raw pixels", 0.78, 0.84),
            row("random encoder", random_knn, 0.80),
        ], "metrics": []});
        std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
        std::fs::write(
            dir.join("results.md"),
            format!("# x\n\n| table |\n\nkNN: k = 200, {protocol} probe.\n"),
        )
        .unwrap();
        let attempts: Vec<Attempt> = launches
            .iter()
            .map(|&seconds| Attempt {
                started: 0,
                seconds,
                outcome: "finished".into(),
            })
            .collect();
        std::fs::write(
            dir.join(ATTEMPTS),
            serde_json::to_string(&attempts).unwrap(),
        )
        .unwrap();
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn aggregates_fabricated_runs_by_hand() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = Experiment::expand(Path::new("fab.toml"), toml::from_str(GRID).unwrap()).unwrap();
        let dir = |run: &Run| tmp.path().join(run.rel_dir());
        let reference = ("simclr-reference", 200, "");
        let (simclr, attention) = (&exp.runs[..3], &exp.runs[3..]);
        // Seed 0 was interrupted once: two launches, 100 s and 20 s.
        fabricate(
            &dir(&simclr[0]),
            &simclr[0],
            reference,
            (0.80, 0.85),
            0.70,
            &[100.0, 20.0],
        );
        fabricate(
            &dir(&simclr[1]),
            &simclr[1],
            reference,
            (0.82, 0.86),
            0.72,
            &[110.0],
        );
        fabricate(
            &dir(&simclr[2]),
            &simclr[2],
            reference,
            (0.84, 0.90),
            0.74,
            &[130.0],
        );
        let attn = ("simclr-reference", 100, "[aggregators.attention]\n");
        fabricate(
            &dir(&attention[0]),
            &attention[0],
            attn,
            (0.90, 0.91),
            0.70,
            &[50.0],
        );
        fabricate(
            &dir(&attention[1]),
            &attention[1],
            attn,
            (0.92, 0.95),
            0.72,
            &[60.0],
        );
        // The third attention run has a checkpoint and no results: unfinished.
        let pending = dir(&attention[2]);
        std::fs::create_dir_all(pending.join("checkpoints")).unwrap();
        std::fs::write(pending.join("checkpoints/epoch-1.safetensors"), "").unwrap();

        let report = Report::build(&exp, tmp.path()).unwrap();
        assert_eq!(report.runs, (6, 5));
        assert_eq!(
            report.unfinished,
            [("attention/seed-2".into(), "resume".into())]
        );

        let s = &report.rows[0];
        assert_eq!((s.configuration.as_str(), s.kind), ("simclr", "trained"));
        // kNN 0.80, 0.82, 0.84: mean 0.82, deviations ∓0.02 and 0 → std √(0.0008/2) = 0.02.
        let knn = s.knn_top1.unwrap();
        assert!(
            close(knn.mean, 0.82) && close(knn.std.unwrap(), 0.02),
            "{knn:?}"
        );
        // Probe 0.85, 0.86, 0.90: mean 0.87; squares 4e-4 + 1e-4 + 9e-4 = 1.4e-3, /2 → √7e-4.
        let probe = s.probe_top1.unwrap();
        assert!(close(probe.mean, 0.87) && close(probe.std.unwrap(), 7e-4f64.sqrt()));
        // Wall time per seed 120, 110, 130 s: mean 120, std √((0 + 100 + 100)/2) = 10.
        let wall = s.wall_s.unwrap();
        assert!(
            close(wall.mean, 120.0) && close(wall.std.unwrap(), 10.0),
            "{wall:?}"
        );
        // Training 30 + 40 = 70 s; views 1000·30 + 2000·40 = 110 000 over 70 s.
        assert!(close(s.train_s.unwrap().mean, 70.0));
        assert!(close(s.views_per_s.unwrap().mean, 110_000.0 / 70.0));
        assert_eq!(s.per_seed.len(), 3);
        // Everything matches the paper's CIFAR-10 ResNet-18 SimCLR row (docs/science.md §6).
        assert_eq!(s.paper.as_ref().map(|p| p.top1), Some(84.5));

        let a = &report.rows[1];
        assert_eq!(
            (a.configuration.as_str(), a.aggregators.as_str()),
            ("attention", "attention")
        );
        assert_eq!((a.per_seed.len(), a.seeds_planned), (2, 3));
        // 0.91, 0.95: mean 0.93, std √(2·0.02²/1) = 0.02√2.
        let probe = a.probe_top1.unwrap();
        assert!(close(probe.mean, 0.93) && close(probe.std.unwrap(), 0.02 * 2f64.sqrt()));
        assert_eq!(a.paper, None);
        let why = a.paper_withheld.as_deref().unwrap();
        assert_eq!(why, "85.4: 100 epochs, the paper's 200");

        // Baselines: raw pixels are one row (the same data and evaluation everywhere, the
        // attention runs' tables differ only in [aggregators], which is not part of the key).
        let base: Vec<&Row> = report
            .rows
            .iter()
            .filter(|r| r.kind == "baseline")
            .collect();
        let names: Vec<&str> = base.iter().map(|r| r.configuration.as_str()).collect();
        assert_eq!(
            names,
            ["raw pixels (cifar10)", "random encoder (cifar10, resnet18)"]
        );
        // Random encoder over seeds 0, 1, 2 (each counted once): 0.70, 0.72, 0.74.
        let random = base[1].knn_top1.unwrap();
        assert_eq!(random.n, 3);
        assert!(close(random.mean, 0.72) && close(random.std.unwrap(), 0.02));
        assert!(close(base[0].knn_top1.unwrap().std.unwrap(), 0.0));

        // Curves: loss 5 then 4 in every run; the online accuracy is NaN in epoch 2.
        let c = &report.curves[0];
        assert_eq!(c.loss, [(1.0, 5.0), (2.0, 4.0)]);
        assert_eq!(c.online_test_top1.len(), 1);
        // metrics.csv without the kNN monitor's column (older runs): no kNN curve.
        assert!(c.knn_test_top1.is_empty());
        assert!(close(c.online_test_top1[0].1, 0.4));

        let md = report.markdown();
        assert!(md.contains("From `fab.toml`: 5 of 6 runs finished"), "{md}");
        assert!(
            md.contains(
                "| simclr | simclr | none | cifar10 | resnet18 | 200 | 3/3 | 82.0 ± 2.0 \
                 | 87.0 ± 2.6 | 84.5 | simclr-reference | 120 ± 10 | 70 ± 0 | 1571 ± 0 |"
            ),
            "{md}"
        );
        assert!(md.contains("- attention/seed-2: resume"), "{md}");
        assert!(
            md.contains("- simclr, attention: kNN: k = 200, simclr-reference probe."),
            "{md}"
        );
        let csv = report.csv();
        let mut lines = csv.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("configuration,kind,method,")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("simclr,trained,simclr,none,cifar10,resnet18,")
        );
        assert_eq!(csv.lines().count(), 1 + 2 + 2);
    }

    #[test]
    fn stat_of_one_value_has_no_spread_and_nan_is_left_out() {
        let s = Stat::of(&[0.5, f64::NAN]).unwrap();
        assert_eq!((s.mean, s.std, s.n), (0.5, None, 1));
        assert_eq!(Stat::of(&[f64::NAN]), None);
    }
}
