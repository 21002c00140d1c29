//! `mpcl`: train and evaluate contrastive models from a TOML experiment.
//!
//! `mpcl train` without `--config` runs the embedded default (configs/default.toml);
//! `mpcl toy --config configs/toy.toml` runs the toy experiment of docs/science.md §3;
//! `mpcl eigenspace --config configs/eigenspace.toml` compares learned features with the
//! top eigenspace of an empirical augmentation graph;
//! `mpcl check --config FILE` validates a config and prints it resolved.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mpcl_graph::toy::ToyConfig;
use mpcl_trainer::eigenspace::EigenspaceConfig;
use mpcl_trainer::{Config, RunDir};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;

#[derive(Parser)]
#[command(
    name = "mpcl",
    version,
    about = "Contrastive learning through message passing"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train and evaluate one experiment; writes a run directory. A run directory with a
    /// checkpoint is resumed from it; one with results is left as it is.
    Train {
        /// The experiment's TOML file (default: the embedded configs/default.toml, or with
        /// --resume the run's own config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The data directory (overrides `data.dir` and $MPCL_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where new run directories go (`<runs>/<name>-<time>`).
        #[arg(long, default_value = "runs", conflicts_with_all = ["run_dir", "resume"])]
        runs_dir: PathBuf,
        /// Train in exactly this directory: created when missing, resumed from its newest
        /// checkpoint when it has one, left alone when it holds results.
        #[arg(long, conflicts_with = "resume")]
        run_dir: Option<PathBuf>,
        /// Resume the run in this directory, with its config.toml unless --config is given.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Stop once this epoch is trained and checkpointed; run again to continue.
        #[arg(long)]
        stop_after_epoch: Option<usize>,
    },
    /// Evaluate a saved model: kNN, linear probe, diagnostics and feature maps, the same
    /// table `train` ends with; written to `<checkpoint>/eval-<dataset>/` or --out.
    Eval {
        /// A run directory (its encoder.safetensors, or its newest checkpoint) or a
        /// checkpoint directory (checkpoints/step-…).
        #[arg(long)]
        checkpoint: PathBuf,
        /// The data set to evaluate on (default: the one it trained on), e.g. mnist.
        #[arg(long)]
        dataset: Option<mpcl_data::DatasetName>,
        /// The data directory (overrides `data.dir` and $MPCL_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the results go.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The device to evaluate on (default: the run's `train.device`): `cpu`, `cuda` or
        /// `cuda:N`, e.g. `cpu` for a run trained on a GPU.
        #[arg(long)]
        device: Option<String>,
    },
    /// Validate an experiment's config (a train, toy or eigenspace file, by its `kind`) and
    /// print it resolved, every default filled in; `cargo xtask experiment --dry-run` checks
    /// each run of a grid with it.
    Check {
        /// The experiment's TOML file.
        #[arg(long)]
        config: PathBuf,
        /// How errors name the config (default: its path).
        #[arg(long)]
        origin: Option<String>,
    },
    /// Run the toy experiment (two Gaussian classes, feature dynamics on their ε-graph);
    /// writes a run directory with figures, a table and the trajectory.
    Toy {
        /// The toy's TOML file (`kind = "toy"`), e.g. configs/toy.toml.
        #[arg(long)]
        config: PathBuf,
        /// Where run directories go.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Train SimCLR and the spectral loss on an empirical augmentation graph of real views
    /// and measure how close their features come to its top eigenspace; writes metrics, a
    /// report and a figure.
    Eigenspace {
        /// The experiment's TOML file (`kind = "eigenspace"`), e.g. configs/eigenspace.toml.
        #[arg(long)]
        config: PathBuf,
        /// Write into exactly this directory (created when missing).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Otherwise a new `<runs>/<name>-<time>` directory.
        #[arg(long, default_value = "runs", conflicts_with = "out")]
        runs_dir: PathBuf,
        /// The data directory (overrides `data.dir` and $MPCL_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    mpcl_data::finish(run())
}

fn run() -> anyhow::Result<()> {
    // Freed tensors' memory stays with malloc for the next step (see the module's docs).
    mpcl_trainer::allocator::retain_freed_memory();
    match Cli::parse().command {
        Cmd::Train {
            config,
            data_dir,
            runs_dir,
            run_dir,
            resume,
            stop_after_epoch,
        } => {
            let target = match (run_dir, resume) {
                (Some(dir), _) => Target::Dir(dir),
                (None, Some(dir)) => Target::Resume(dir),
                (None, None) => Target::New(runs_dir),
            };
            train(config, data_dir, target, stop_after_epoch)
        }
        Cmd::Toy { config, runs_dir } => toy(&config, &runs_dir),
        Cmd::Eigenspace {
            config,
            out,
            runs_dir,
            data_dir,
        } => eigenspace(&config, out, &runs_dir, data_dir),
        Cmd::Eval {
            checkpoint,
            dataset,
            data_dir,
            out,
            device,
        } => {
            init_stderr_logging();
            let (rows, out) = mpcl_trainer::evaluate::saved(
                &checkpoint,
                dataset,
                data_dir.as_deref(),
                out.as_deref(),
                device.as_deref(),
            )?;
            println!("\n{}", mpcl_eval::markdown_table(&rows));
            println!("results and feature maps: {}", out.display());
            Ok(())
        }
        Cmd::Check { config, origin } => check(&config, origin),
    }
}

/// Validates a config with the parser of the subcommand its `kind` names and prints it
/// resolved.
fn check(config: &std::path::Path, origin: Option<String>) -> anyhow::Result<()> {
    let origin = origin.unwrap_or_else(|| config.display().to_string());
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {origin}"))?;
    // The kind alone, leniently: each parser reports its own errors, naming the key.
    let kind = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("kind").and_then(|k| k.as_str().map(str::to_owned)));
    let resolved = match kind.as_deref() {
        Some("toy") => toml::to_string_pretty(&ToyConfig::parse(&text, &origin)?)?,
        Some("eigenspace") => toml::to_string_pretty(&EigenspaceConfig::parse(&text, &origin)?)?,
        _ => toml::to_string_pretty(&Config::parse(&text, &origin)?)?,
    };
    print!("{resolved}");
    Ok(())
}

fn toy(config: &std::path::Path, runs_dir: &std::path::Path) -> anyhow::Result<()> {
    let origin = config.display().to_string();
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {origin}"))?;
    let cfg = ToyConfig::parse(&text, &origin)?;
    let dir = RunDir::create(runs_dir, &cfg.name)?;
    init_logging(&dir)?;
    let result = mpcl_trainer::toy::run(&cfg, &dir).with_context(|| {
        format!(
            "toy run {} failed; its log is in {}",
            cfg.name,
            dir.log_path().display()
        )
    })?;
    println!(
        "\n{}\nfigures, table, trajectory and log: {}",
        result.markdown(),
        dir.path().display()
    );
    Ok(())
}

fn eigenspace(
    config: &std::path::Path,
    out: Option<PathBuf>,
    runs_dir: &std::path::Path,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let origin = config.display().to_string();
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {origin}"))?;
    let cfg = EigenspaceConfig::parse(&text, &origin)?;
    let data_dir = data_dir
        .or_else(|| cfg.data.dir.clone())
        .unwrap_or_else(mpcl_data::default_data_dir);
    let dir = match out {
        Some(out) => RunDir::open(&out)?,
        None => RunDir::create(runs_dir, &cfg.name)?,
    };
    init_logging(&dir)?;
    let result = mpcl_trainer::eigenspace::run(&cfg, &data_dir, &dir).with_context(|| {
        format!(
            "eigenspace run {} failed; its log is in {}",
            cfg.name,
            dir.log_path().display()
        )
    })?;
    println!(
        "\n{}\nmetrics, report, figure and log: {}",
        result.markdown(&cfg),
        dir.path().display()
    );
    Ok(())
}

/// Where `mpcl train` puts its run.
enum Target {
    /// A new timestamped directory under this one.
    New(PathBuf),
    /// Exactly this directory, resumed when it has a checkpoint.
    Dir(PathBuf),
    /// This existing run, with its own config unless another is given.
    Resume(PathBuf),
}

fn train(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    target: Target,
    stop_after_epoch: Option<usize>,
) -> anyhow::Result<()> {
    let config = match (&target, config) {
        (_, Some(path)) => Some(path),
        (Target::Resume(dir), None) => {
            let path = dir.join("config.toml");
            anyhow::ensure!(
                dir.is_dir(),
                "--resume {}: no such directory",
                dir.display()
            );
            anyhow::ensure!(
                path.is_file(),
                "--resume {}: no config.toml there; is it a run directory?",
                dir.display()
            );
            Some(path)
        }
        (_, None) => None,
    };
    let cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default_experiment(),
    };
    let data_dir = data_dir
        .or_else(|| cfg.data.dir.clone())
        .unwrap_or_else(mpcl_data::default_data_dir);
    let dir = match &target {
        Target::New(runs) => RunDir::create(runs, &cfg.name)?,
        Target::Dir(dir) | Target::Resume(dir) => RunDir::open(dir)?,
    };
    // Held until the process ends: two processes (two array tasks, a requeue racing its
    // predecessor) never train in one directory.
    let _lock = lock(&dir)?;
    if dir.is_finished() {
        let results = std::fs::read_to_string(dir.path().join("results.md")).unwrap_or_default();
        println!("{results}");
        println!(
            "{} holds a finished run (results.json): nothing to do",
            dir.path().display()
        );
        return Ok(());
    }
    init_logging(&dir)?;
    let outcome =
        mpcl_trainer::run_until(&cfg, &data_dir, &dir, stop_after_epoch).inspect_err(|e| {
            tracing::error!(target: FAILURE, "run {} failed: {e}", cfg.name);
        });
    let outcome = outcome.with_context(|| {
        // A key that only the loaded data can refute (an image folder's channels) is
        // reported here: the message names the key, this the file.
        let source = config.as_ref().map_or_else(
            || "the embedded default".to_owned(),
            |path| path.display().to_string(),
        );
        format!(
            "run {} of {source} failed; its log is in {}",
            cfg.name,
            dir.log_path().display()
        )
    })?;
    let Some(outcome) = outcome else {
        println!(
            "stopped after epoch {}; continue with: mpcl train --resume {}",
            stop_after_epoch.unwrap_or_default(),
            dir.path().display()
        );
        return Ok(());
    };
    if outcome.rows.is_empty() {
        println!("\nnot evaluated (eval.enabled = false)");
    } else {
        println!("\n{}", mpcl_eval::markdown_table(&outcome.rows));
    }
    println!(
        "results, metrics, log and weights: {}",
        dir.path().display()
    );
    Ok(())
}

/// Takes the exclusive lock of a run directory (`<run>/.lock`, an advisory file lock that
/// the operating system releases when the process ends, however it ends).
fn lock(dir: &RunDir) -> anyhow::Result<std::fs::File> {
    let path = dir.path().join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use: another mpcl process holds {}",
            dir.path().display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The log target of a run's failure: it goes to `log.txt` only, since the error itself is
/// printed on exit.
const FAILURE: &str = "mpcl::failure";

/// The stderr half of the logging: `RUST_LOG` filters (default info); failures are left
/// to the error printed on exit.
fn stderr_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy()
        .add_directive(format!("{FAILURE}=off").parse().expect("a valid directive"));
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter)
}

/// Logs to stderr only (`RUST_LOG` filters, default info).
fn init_stderr_logging() {
    tracing_subscriber::registry().with(stderr_layer()).init();
}

/// Logs to stderr (`RUST_LOG` filters, default info) and to the run's `log.txt`, appended
/// to, so a resumed run keeps the log of its earlier parts.
fn init_logging(dir: &RunDir) -> anyhow::Result<()> {
    let path = dir.log_path();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    tracing_subscriber::registry()
        .with(stderr_layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(file))
                .with_ansi(false)
                .with_target(false)
                .with_filter(LevelFilter::INFO),
        )
        .init();
    Ok(())
}
