//! Experiment grids through the real `mpcl` binary: every preset in configs/ validates with
//! the parser of the command that runs it, a bad key is reported with the file that set it,
//! the comparison preset shrunk to the first images
//! of the real Fashion-MNIST (which `cargo xtask test` provisions) runs, skips and resumes
//! end to end into a report, and the CIFAR smoke preset runs on synthetic files in the CIFAR
//! binary format.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mpcl_data::archive::MANIFEST;
use mpcl_data::cifar::{CIFAR10, IMAGE_BYTES};
use mpcl_data::{Dataset, fsutil};
use mpcl_experiment::runner::{self, Launcher, read_attempts};
use mpcl_experiment::{Experiment, Report, RunState};
use mpcl_trainer::eigenspace::EigenspaceConfig;
use mpcl_trainer::run_dir::EpochMetrics;
use mpcl_trainer::{Config, RunDir};

/// The repository's configs/ folder.
fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn launcher(jobs: usize, data_dir: Option<PathBuf>) -> Launcher {
    Launcher {
        mpcl: PathBuf::from(env!("CARGO_BIN_EXE_mpcl")),
        data_dir,
        jobs,
        cores: 2,
    }
}

#[test]
fn every_preset_expands_into_configs_the_trainer_accepts() {
    // Runs per preset: variants × non-seed axis values × seeds, counted from each file.
    let expected = [
        ("default.toml", 1),
        ("cifar-reference.toml", 1),
        ("comparison.toml", 4),
        ("cifar10-paper.toml", 4 * 3),
        ("cifar100-paper.toml", 4 * 3),
        ("cifar10-smoke.toml", 4),
        ("stl10.toml", 2 * 3),
        ("imagenet100.toml", 2 * 3),
    ];
    // Every train preset is listed here (the toy runs `mpcl toy` and the eigenspace preset
    // `mpcl eigenspace`, not grids; their own parsers validate them below).
    let one_run = ["toy.toml", "eigenspace.toml"];
    let mut presets: Vec<String> = std::fs::read_dir(configs())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml") && !one_run.contains(&n.as_str()))
        .collect();
    let read = |file: &str| std::fs::read_to_string(configs().join(file)).unwrap();
    mpcl_graph::toy::ToyConfig::parse(&read("toy.toml"), "toy.toml").unwrap();
    let eigen = "eigenspace.toml";
    EigenspaceConfig::parse(&read(eigen), eigen).unwrap_or_else(|e| panic!("{e}"));
    presets.sort();
    let mut listed: Vec<String> = expected.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(presets, listed, "a preset in configs/ is not checked here");
    for (file, runs) in expected {
        let path = configs().join(file);
        let exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(exp.runs.len(), runs, "{file}");
        for run in &exp.runs {
            let origin = format!("{file} (run {})", run.rel_dir().display());
            Config::parse(&run.toml(), &origin).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // The smoke preset is the paper grid with its overrides applied to every variant.
    let smoke = Experiment::load(&configs().join("cifar10-smoke.toml")).unwrap();
    let paper = Experiment::load(&configs().join("cifar10-paper.toml")).unwrap();
    let names = |e: &Experiment| {
        e.configurations()
            .iter()
            .map(|(c, _)| c.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&smoke), names(&paper));
    for run in &smoke.runs {
        let cfg = Config::parse(&run.toml(), "smoke").unwrap();
        assert_eq!((cfg.train.epochs, cfg.train.batch_size), (1, 16));
        assert_eq!(cfg.train.device, "cpu");
    }
    let simsiam = Config::parse(&paper.runs[6].toml(), "paper").unwrap();
    assert_eq!(paper.runs[6].config, "simsiam");
    assert_eq!(
        (simsiam.train.batch_size, simsiam.model.projector_dim),
        (256, 2048)
    );
}

#[test]
fn a_bad_key_is_reported_with_the_file_that_set_it() {
    // A base file with a value of the wrong type, an axis with one out of range, and a
    // section key that does not fit Fashion-MNIST's one channel: each reported by
    // `mpcl check` under its dotted key, followed by the file and section that set it.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("b.toml");
    std::fs::write(&base, "[train]\nlr = \"fast\"\n").unwrap();
    let grid = dir.path().join("g.toml");
    let write = |text: &str| std::fs::write(&grid, text).unwrap();
    let check = |exp: &Experiment| {
        let checked = runner::check(exp, exp.runs.iter(), &launcher(1, None)).unwrap();
        let outcomes: Vec<Result<String, String>> = checked.into_iter().map(|(_, o)| o).collect();
        outcomes
    };
    // The binary's own report: the message and its exit status, without a backtrace even
    // where one is asked for (these are errors of the input).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mpcl"))
        .env("RUST_BACKTRACE", "1")
        .args(["check", "--config"])
        .arg(&base)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: {}: train.lr: invalid type: string \"fast\", expected f64\n",
            base.display()
        )
    );

    write("[experiment]\nbase = \"b.toml\"\n");
    let exp = Experiment::load(&grid).unwrap();
    let err = check(&exp).remove(0).unwrap_err();
    let expected = format!(
        "{} (run base/seed-0): train.lr: invalid type: string \"fast\", expected f64\n\
         (the key is set in {})",
        grid.display(),
        base.display()
    );
    assert_eq!(err, expected);

    write("[experiment]\n[axes]\n\"train.temperature\" = [0.1, -1.0]\n");
    let exp = Experiment::load(&grid).unwrap();
    let [ok, bad] = <[_; 2]>::try_from(check(&exp)).unwrap();
    // The resolved configuration, every default filled in.
    assert!(ok.unwrap().contains("temperature = 0.1"));
    let bad = bad.unwrap_err();
    assert!(
        bad.contains("train.temperature = -1: must be > 0")
            && bad.ends_with(&format!("(the key is set in {} [axes])", grid.display())),
        "{bad}"
    );

    write("[experiment]\n[base.augment]\nmean = [0.5, 0.5, 0.5]\n");
    let exp = Experiment::load(&grid).unwrap();
    let err = check(&exp).remove(0).unwrap_err();
    assert!(
        err.contains("augment.mean = [0.5, 0.5, 0.5]: need 1 value for 1-channel images")
            && err.ends_with(&format!("(the key is set in {} [base])", grid.display())),
        "{err}"
    );
}

/// configs/comparison.toml (its four variants, baselines on) shrunk to seconds per run: 2
/// epochs of 256 images through a narrow network, two seeds.
const GRID: &str = r#"
[experiment]
name = "tiny"
extends = "COMPARISON"
description = "The comparison preset, small enough for a test."

[axes]
seed = [0, 1]

[override.data]
train_subset = 256
test_subset = 128
[override.model]
widths = [8, 16]
projector_hidden = 32
projector_dim = 16
[override.train]
epochs = 2
batch_size = 64
log_every = 2
[override.eval.knn]
k = 10
[override.eval.probe]
epochs = 2
[override.eval.diagnostics]
samples = 64
"#;

#[test]
fn a_grid_runs_resumes_an_interrupted_run_skips_finished_ones_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tiny.toml");
    let comparison = configs().join("comparison.toml");
    std::fs::write(
        &file,
        GRID.replace("COMPARISON", comparison.to_str().unwrap()),
    )
    .unwrap();
    let exp = Experiment::load(&file).unwrap();
    let exp_dir = tmp.path().join("runs/tiny");
    let launcher = launcher(2, None);

    // Interrupt one run after its first epoch, as a killed run would leave it.
    let interrupted = exp_dir.join(exp.runs[1].rel_dir());
    std::fs::create_dir_all(&interrupted).unwrap();
    let config = interrupted.join(mpcl_experiment::state::REQUESTED);
    let table = runner::launch_table(&exp.runs[1], &launcher);
    std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
    let out = std::process::Command::new(&launcher.mpcl)
        .args(["train", "--stop-after-epoch", "1", "--config"])
        .arg(&config)
        .arg("--run-dir")
        .arg(&interrupted)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states = runner::states(&exp, &exp_dir, &launcher).unwrap();
    use RunState::{New, Resumable};
    assert_eq!(states, [New, Resumable, New, New, New, New, New, New]);

    let said = Mutex::new(Vec::new());
    let say = |m: &str| said.lock().unwrap().push(m.to_owned());
    let summary = runner::run_all(&exp, &exp_dir, &launcher, &say).unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!((summary.skipped, summary.finished.len()), (0, 8));
    let said = said.into_inner().unwrap();
    assert!(
        said.iter()
            .any(|m| m.contains("resuming") && m.contains("seed-1")),
        "{said:?}"
    );
    let log = std::fs::read_to_string(interrupted.join("log.txt")).unwrap();
    assert!(log.contains("resuming from"), "{log}");
    let metrics = std::fs::read_to_string(interrupted.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 2, "both epochs: {metrics}");

    // A second pass has nothing to do and starts nothing.
    let again = runner::run_all(&exp, &exp_dir, &launcher, &|_: &str| {}).unwrap();
    assert_eq!((again.skipped, again.finished.len()), (8, 0));
    for run in &exp.runs {
        assert_eq!(
            read_attempts(&exp_dir.join(run.rel_dir())).unwrap().len(),
            1
        );
    }

    // The report against each run's own results.json (the oracle): two seeds per variant.
    let report = Report::build(&exp, &exp_dir).unwrap();
    assert_eq!(report.runs, (8, 8));
    for (i, row) in report
        .rows
        .iter()
        .filter(|r| r.kind == "trained")
        .enumerate()
    {
        let knn: Vec<f64> = exp.runs[2 * i..2 * i + 2]
            .iter()
            .map(|run| {
                let text =
                    std::fs::read_to_string(exp_dir.join(run.rel_dir()).join("results.json"))
                        .unwrap();
                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                json["rows"][0]["knn"]["top1"].as_f64().unwrap()
            })
            .collect();
        let stat = row.knn_top1.unwrap();
        assert_eq!(stat.n, 2);
        assert!(
            (stat.mean - (knn[0] + knn[1]) / 2.0).abs() < 1e-12,
            "{stat:?} vs {knn:?}"
        );
        let std = (knn[0] - knn[1]).abs() / 2f64.sqrt();
        assert!((stat.std.unwrap() - std).abs() < 1e-12);
        assert!(row.views_per_s.unwrap().mean > 0.0 && row.wall_s.is_some());
        assert_eq!(row.epochs, Some(2));
    }
    let rows: Vec<(&str, &str)> = report
        .rows
        .iter()
        .map(|r| (r.configuration.as_str(), r.aggregators.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("simclr", "none"),
            ("simclr-attention", "attention"),
            ("simclr-rewiring", "rewiring"),
            ("spectral", "none"),
            ("raw pixels (fashion-mnist)", ""),
            ("random encoder (fashion-mnist, small-cnn)", ""),
        ]
    );
    assert_eq!(report.rows[3].method, "spectral");
    // Curves: both epochs of every variant, the kNN monitor's included.
    assert_eq!(report.curves.len(), 4);
    for c in &report.curves {
        assert_eq!((c.loss.len(), c.knn_test_top1.len()), (2, 2), "{c:?}");
        assert!(c.knn_test_top1.iter().all(|p| (0.0..=1.0).contains(&p.1)));
    }
    let written = report.write(&exp_dir).unwrap();
    for name in [
        "report.md",
        "report.csv",
        "report.json",
        "curves.png",
        "accuracy.png",
    ] {
        assert!(written.contains(&exp_dir.join(name)), "{name}: {written:?}");
    }
    let md = std::fs::read_to_string(exp_dir.join("report.md")).unwrap();
    assert!(md.contains("8 of 8 runs finished"), "{md}");
    assert!(
        md.contains("No configuration has a counterpart in the paper"),
        "{md}"
    );
}

/// A CIFAR-10 copy in the layout the registry verifies: the six batch files of `per_file`
/// records (labels i mod 10, pixels varying with the position) and the manifest an
/// extraction writes.
fn synthetic_cifar10(data: &Path, per_file: usize) {
    let top = CIFAR10.extracted(&Dataset::Cifar10.dir(data));
    std::fs::create_dir_all(&top).unwrap();
    let mut manifest = String::new();
    for (f, name) in CIFAR10.files.iter().enumerate() {
        let mut bytes = Vec::new();
        for r in 0..per_file {
            bytes.push((r % 10) as u8);
            bytes.extend((0..IMAGE_BYTES).map(|p| ((p * 7 + r * 13 + f * 29) % 256) as u8));
        }
        let path = top.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let md5 = fsutil::md5_file(&path).unwrap();
        manifest.push_str(&format!("{md5}  {}  {name}\n", bytes.len()));
    }
    std::fs::write(top.join(MANIFEST), manifest).unwrap();
}

#[test]
fn the_cifar_smoke_preset_runs_on_synthetic_cifar_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_cifar10(&data, 16);
    let exp = Experiment::load(&configs().join("cifar10-smoke.toml")).unwrap();
    let exp_dir = tmp.path().join("runs").join(&exp.name);
    let launcher = launcher(2, Some(data));
    let summary = runner::run_all(&exp, &exp_dir, &launcher, &|_: &str| {}).unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.finished.len(), 4);
    for dir in &summary.finished {
        let console = std::fs::read_to_string(dir.join("console.txt")).unwrap();
        assert!(
            console.contains("CIFAR-10 loaded and verified"),
            "{console}"
        );
    }
    // Reported, and never beside the paper: a subset for one epoch.
    let report = Report::build(&exp, &exp_dir).unwrap();
    assert_eq!(report.runs, (4, 4));
    for row in report.rows.iter().filter(|r| r.kind == "trained") {
        assert_eq!(row.paper, None);
        let why = row.paper_withheld.as_deref().unwrap();
        assert!(why.contains("trained or tested on a subset"), "{why}");
    }
}

#[test]
fn the_paper_presets_meet_the_paper_where_it_states_its_setup() {
    // Each run of cifar10-paper written as the trainer writes it (its resolved config,
    // metrics and results; the accuracies are placeholders), then reported.
    let tmp = tempfile::tempdir().unwrap();
    let exp = Experiment::load(&configs().join("cifar10-paper.toml")).unwrap();
    for run in &exp.runs {
        let cfg = Config::parse(&run.toml(), "paper").unwrap();
        let dir = RunDir::open(&tmp.path().join(run.rel_dir())).unwrap();
        dir.write_config(&cfg).unwrap();
        let epoch = EpochMetrics {
            epoch: 1,
            step: 97,
            loss: 5.0,
            lr: 0.1,
            views_per_s: 1000.0,
            seconds: 100.0,
            grad_alignment: f64::NAN,
            grad_uniformity: f64::NAN,
            online_train_top1: f64::NAN,
            online_test_top1: f64::NAN,
            knn_test_top1: f64::NAN,
            skipped_steps: 0,
        };
        dir.write_metrics(&[epoch]).unwrap();
        let results = r#"{"rows": [{"name": "x", "knn": {"top1": 0.5}, "probe": {"top1": 0.6}}]}"#;
        dir.write("results.json", results.as_bytes()).unwrap();
    }
    let report = Report::build(&exp, tmp.path()).unwrap();
    let paper: Vec<(&str, Option<f64>)> = report
        .rows
        .iter()
        .map(|r| (r.configuration.as_str(), r.paper.as_ref().map(|p| p.top1)))
        .collect();
    // docs/science.md §6, ResNet-18 on CIFAR-10: SimCLR 84.5, SimCLR + attention 85.4; the
    // SimSiam rows' epochs and probe are not stated, so they are withheld with the reason.
    assert_eq!(
        paper,
        [
            ("simclr", Some(84.5)),
            ("simclr-attention", Some(85.4)),
            ("simsiam", None),
            ("simsiam-multi-stage", None),
        ]
    );
    let why = report.rows[3].paper_withheld.as_deref().unwrap();
    assert!(
        why.starts_with("84.8: the paper does not state its epochs"),
        "{why}"
    );

    // The smoke variant of the same grid is never compared: a subset, one epoch.
    let smoke = Experiment::load(&configs().join("cifar10-smoke.toml")).unwrap();
    let run = &smoke.runs[0];
    let cfg = Config::parse(&run.toml(), "smoke").unwrap();
    let dir = RunDir::open(&tmp.path().join("smoke").join(run.rel_dir())).unwrap();
    dir.write_config(&cfg).unwrap();
    dir.write_metrics(&[]).unwrap();
    let results = r#"{"rows": [{"name": "x", "knn": {"top1": 0.5}, "probe": {"top1": 0.6}}]}"#;
    dir.write("results.json", results.as_bytes()).unwrap();
    let report = Report::build(&smoke, &tmp.path().join("smoke")).unwrap();
    let why = report.rows[0].paper_withheld.as_deref().unwrap();
    assert_eq!(
        why,
        "84.5: trained or tested on a subset; 1 epoch, the paper's 200"
    );
}
