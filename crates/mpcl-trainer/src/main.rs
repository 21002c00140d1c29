//! `mpcl`: train and evaluate contrastive models from a TOML experiment.
//!
//! `mpcl train` without `--config` runs the embedded default (configs/default.toml);
//! `mpcl toy --config configs/toy.toml` runs the toy experiment of docs/science.md §3;
//! `mpcl check --config FILE` validates a config and prints it resolved.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mpcl_graph::toy::ToyConfig;
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

// FIXME(#11): `mpcl eval --checkpoint … --dataset …`, printing and writing the result table
// with the code `train` uses, once checkpoints have a format (#9, #10).
#[derive(Subcommand)]
enum Cmd {
    /// Train and evaluate one experiment; writes a run directory.
    Train {
        /// The experiment's TOML file (default: the embedded configs/default.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The data directory (overrides `data.dir` and $MPCL_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where run directories go.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Validate an experiment's config and print it resolved, every default filled in;
    /// `cargo xtask experiment --dry-run` checks each run of a grid with it.
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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Train {
            config,
            data_dir,
            runs_dir,
        } => train(config, data_dir, runs_dir),
        Cmd::Toy { config, runs_dir } => toy(&config, &runs_dir),
        Cmd::Check { config, origin } => check(&config, origin),
    }
}

fn check(config: &std::path::Path, origin: Option<String>) -> anyhow::Result<()> {
    let origin = origin.unwrap_or_else(|| config.display().to_string());
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {origin}"))?;
    let cfg = Config::parse(&text, &origin)?;
    print!("{}", toml::to_string_pretty(&cfg)?);
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

fn train(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    runs_dir: PathBuf,
) -> anyhow::Result<()> {
    let cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default_experiment(),
    };
    let data_dir = data_dir
        .or_else(|| cfg.data.dir.clone())
        .unwrap_or_else(mpcl_data::default_data_dir);
    let dir = RunDir::create(&runs_dir, &cfg.name)?;
    init_logging(&dir)?;
    let outcome = mpcl_trainer::run(&cfg, &data_dir, &dir).inspect_err(|e| {
        tracing::error!(target: FAILURE, "run {} failed: {e}", cfg.name);
    });
    let outcome = outcome.with_context(|| {
        format!(
            "run {} failed; its log is in {}",
            cfg.name,
            dir.log_path().display()
        )
    })?;
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

/// The log target of a run's failure: it goes to `log.txt` only, since the error itself is
/// printed on exit.
const FAILURE: &str = "mpcl::failure";

/// Logs to stderr (`RUST_LOG` filters, default info) and to the run's `log.txt`.
fn init_logging(dir: &RunDir) -> anyhow::Result<()> {
    let path = dir.log_path();
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let stderr_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy()
        .add_directive(format!("{FAILURE}=off").parse()?);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false)
                .with_filter(stderr_filter),
        )
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
