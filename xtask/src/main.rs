//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `setup`: installs libtorch (from PyPI wheels) and the default data set if missing.
//! - `download`: provisions a data set into the data directory.
//! - `experiment`: builds the `mpcl` binary and runs an experiment (the embedded default
//!   without arguments), skipping finished runs and resuming interrupted ones, then reports;
//!   with `--slurm` it writes a Slurm job array of the runs instead.
//! - `report`: rebuilds an experiment's report from its run directories.
//! - `test`: formatting, lints and every test of the workspace; `--slurm` the end-to-end
//!   test on a single-node Slurm started for it.
//! - `bench`: the criterion benchmarks.
//!
//! xtask never links libtorch: it must build on a machine that does not have it yet.

mod bench;
mod data;
mod experiment;
mod python;
mod setup;
mod slurm;
mod test;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "mpcl's automation", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: libtorch 2.13.0 and the Fashion-MNIST data set.
    Setup(setup::Args),
    /// Provision a data set into the data directory, verified.
    Download(data::Args),
    /// Build the `mpcl` binary in release mode and run an experiment.
    Experiment(experiment::Args),
    /// Rebuild an experiment's report (report.md, .csv, .json, figures) from its runs.
    Report(experiment::ReportArgs),
    /// Run `cargo fmt --check`, clippy with warnings denied, and every test.
    Test(test::Args),
    /// Run the criterion benchmarks.
    Bench(bench::Args),
}

fn main() -> std::process::ExitCode {
    mpcl_data::finish(run())
}

fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Setup(args) => setup::run(&args),
        Cmd::Download(args) => data::run(&args),
        Cmd::Experiment(args) => experiment::run(&args),
        Cmd::Report(args) => experiment::report(&args),
        Cmd::Test(args) => test::run(&args),
        Cmd::Bench(args) => bench::run(&args),
    }
}

/// Prints what xtask is doing, so a user always knows why a command takes time.
fn say(msg: impl AsRef<str>) {
    eprintln!("xtask: {}", msg.as_ref());
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .into()
}

/// A `cargo` command run from the workspace root with the cargo that runs xtask.
///
/// Cargo hands the `LIBTORCH` of `.cargo/` to xtask as an environment variable; passed on,
/// it would take precedence over the `.cargo/libtorch.toml` that setup has just written, so
/// only a `LIBTORCH` the user set travels to the child.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    if setup::user_libtorch().is_none() {
        cmd.env_remove("LIBTORCH");
    }
    cmd
}

/// Runs a command to completion, failing with the command line if it fails.
fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let line = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {line}"))?;
    if !status.success() {
        bail!("{line} failed ({status})");
    }
    Ok(())
}
