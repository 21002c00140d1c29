//! `cargo xtask experiment [FILE]`: provision, build the `mpcl` binary in release mode, run.
//!
//! Without a file the binary runs its embedded default, `configs/default.toml`, into a new
//! timestamped directory, as it always has. A file whose `kind` is `"toy"` runs `mpcl toy`,
//! one whose `kind` is `"eigenspace"` runs `mpcl eigenspace` (after provisioning its data).
//! Any other file is an experiment (mpcl-experiment): a grid with an `[experiment]` table,
//! or a plain config as a one-run experiment. Its runs go to `<runs>/<name>/<config>/seed-<n>`,
//! finished ones are skipped, interrupted ones resumed, and the report is written after the
//! runs (`cargo xtask report FILE` rebuilds it alone). `--list` shows the runs and their
//! state, `--dry-run` prints each run's configuration as `mpcl check` resolves it, `--jobs N`
//! runs N at once, `--slurm` writes a Slurm job array instead of running (xtask's `slurm`).
//! docs/experiments.md has the format and the workflow.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use mpcl_data::{Dataset, DatasetName};
use mpcl_experiment::runner::{self, Launcher};
use mpcl_experiment::slurm::SlurmSettings;
use mpcl_experiment::{Experiment, Report};

use crate::{cargo, data, root, run_cmd, say, setup, slurm};

#[derive(clap::Args)]
pub struct Args {
    /// The experiment's TOML file (default: the embedded configs/default.toml).
    config: Option<PathBuf>,
    /// List the runs with their state (new, restart, resume, finished) and stop.
    #[arg(long, requires = "config", conflicts_with = "dry_run")]
    list: bool,
    /// Print each run's configuration, resolved and validated by `mpcl check`, and stop.
    #[arg(long, requires = "config")]
    dry_run: bool,
    /// Runs at once; each gets train.threads (or the cores) divided by N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// The data directory (default: data.dir of a run's config, $MPCL_DATA_DIR or
    /// ~/.local/share/mpcl/datasets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where run directories go (default: runs/ in the workspace).
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    #[command(flatten)]
    slurm: slurm::Args,
}

/// `cargo xtask report FILE`.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// The experiment's TOML file.
    config: PathBuf,
    /// Where its run directories are (default: runs/ in the workspace).
    #[arg(long)]
    runs_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Resolve paths before anything changes directory.
    let config = args.config.as_ref().map(std::path::absolute).transpose()?;
    let runs = args.runs_dir.clone().unwrap_or_else(|| root().join("runs"));
    let Some(config) = config else {
        return run_default(args, &runs);
    };
    let (path, table) = read_table(&config)?;
    let kind = experiment_kind(&path, &table)?;
    if kind != Kind::Train {
        let sub = if kind == Kind::Toy {
            "toy"
        } else {
            "eigenspace"
        };
        if args.list || args.jobs > 1 || args.slurm.slurm {
            bail!(
                "{}: a {sub} experiment is one run: --list, --jobs and --slurm do not apply",
                path.display()
            );
        }
        setup::ensure_libtorch(false)?;
        if args.dry_run {
            build_mpcl()?;
            let mut check = Command::new(mpcl_path());
            check.arg("check").arg("--config").arg(&config);
            return run_cmd(&mut check);
        }
        let mut mpcl = Command::new(mpcl_path());
        mpcl.arg(sub).arg("--config").arg(&config);
        if kind == Kind::Eigenspace {
            let keys = config_data(&path, &table)?;
            let data_dir = data::resolve_dir(args.data_dir.as_deref().or(keys.dir.as_deref()));
            data::ensure(&Dataset::new(keys.dataset, None, None)?, &data_dir, None)?;
            mpcl.arg("--data-dir").arg(&data_dir);
        }
        build_mpcl()?;
        mpcl.arg("--runs-dir").arg(&runs);
        say(format!("running {mpcl:?}"));
        return run_cmd(&mut mpcl);
    }
    let exp = Experiment::expand(&path, table)?;
    let exp_dir = runs.join(&exp.name);
    let launcher = Launcher {
        mpcl: mpcl_path(),
        data_dir: args.data_dir.clone(),
        jobs: usize::from(args.jobs),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if args.list {
        return list(&exp, &exp_dir, &launcher);
    }
    if args.slurm.slurm {
        args.slurm.check()?;
        SlurmSettings::from_file(&exp.file)?;
    }
    setup::ensure_libtorch(false)?;
    build_mpcl()?;
    if args.dry_run {
        return dry_run(&exp, &launcher);
    }
    check_configurations(&exp, &launcher)?;
    provision(&exp, args.data_dir.as_deref())?;
    if args.slurm.slurm {
        slurm::write(
            &exp,
            &exp_dir,
            &args.slurm,
            args.data_dir.as_deref(),
            &mpcl_path(),
        )?;
        return Ok(());
    }
    say(format!(
        "experiment {}: {} runs in {}",
        exp.name,
        exp.runs.len(),
        exp_dir.display()
    ));
    let summary = runner::run_all(&exp, &exp_dir, &launcher, &|m: &str| say(m))?;
    let written = write_report(&exp, &exp_dir)?;
    say(format!(
        "{} skipped (finished before), {} finished now, {} failed; report: {}",
        summary.skipped,
        summary.finished.len(),
        summary.failed.len(),
        written.display()
    ));
    if !summary.failed.is_empty() {
        let list: Vec<String> = summary
            .failed
            .iter()
            .map(|(dir, why)| format!("  {}: {why}", dir.display()))
            .collect();
        bail!("{} runs failed:\n{}", summary.failed.len(), list.join("\n"));
    }
    Ok(())
}

/// Provisions each distinct data set of the runs once (verifying hashes every file).
fn provision(exp: &Experiment, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let mut provisioned = Vec::new();
    for run in &exp.runs {
        let keys = config_data(&exp.file, &run.table)?;
        let data_dir = data::resolve_dir(data_dir.or(keys.dir.as_deref()));
        let root = keys.root.as_deref();
        let dataset = Dataset::new(keys.dataset, root, keys.class_list.as_deref())?;
        if !provisioned.contains(&(dataset.clone(), data_dir.clone())) {
            data::ensure(&dataset, &data_dir, None)?;
            provisioned.push((dataset, data_dir));
        }
    }
    Ok(())
}

/// `cargo xtask report FILE`: rebuilds the report from the run directories.
pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let config = std::path::absolute(&args.config)?;
    let exp = Experiment::load(&config)?;
    let runs = args.runs_dir.clone().unwrap_or_else(|| root().join("runs"));
    write_report(&exp, &runs.join(&exp.name))?;
    Ok(())
}

/// Builds, prints and writes the report; returns the path of report.md.
fn write_report(exp: &Experiment, exp_dir: &Path) -> anyhow::Result<PathBuf> {
    let report = Report::build(exp, exp_dir)?;
    let written = report.write(exp_dir)?;
    println!("\n{}", report.markdown());
    for path in &written {
        say(format!("wrote {}", path.display()));
    }
    Ok(exp_dir.join("report.md"))
}

/// The embedded default, run as before: one run in a new timestamped directory.
fn run_default(args: &Args, runs: &Path) -> anyhow::Result<()> {
    setup::ensure_libtorch(false)?;
    let data_dir = data::resolve_dir(args.data_dir.as_deref());
    let dataset = Dataset::new(DatasetName::FashionMnist, None, None)?;
    data::ensure(&dataset, &data_dir, None)?;
    build_mpcl()?;
    let mut mpcl = Command::new(mpcl_path());
    mpcl.arg("train")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--runs-dir")
        .arg(runs);
    say(format!("running {mpcl:?}"));
    run_cmd(&mut mpcl)
}

/// `--list`: one line per run with its state and settings.
fn list(exp: &Experiment, exp_dir: &Path, launcher: &Launcher) -> anyhow::Result<()> {
    let states = runner::states(exp, exp_dir, launcher)?;
    let width = exp
        .runs
        .iter()
        .map(|r| r.rel_dir().display().to_string().len())
        .max()
        .unwrap_or(0);
    println!(
        "experiment {} ({}): {} runs in {}",
        exp.name,
        exp.file.display(),
        exp.runs.len(),
        exp_dir.display()
    );
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (run, state) in exp.runs.iter().zip(states) {
        let rel = run.rel_dir().display().to_string();
        println!("  {rel:width$}  {}", state.label());
        match counts.iter_mut().find(|(l, _)| *l == state.label()) {
            Some((_, n)) => *n += 1,
            None => counts.push((state.label(), 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
    println!("{}", counts.join(", "));
    Ok(())
}

/// `--dry-run`: each run's configuration through `mpcl check`; every failure is listed.
fn dry_run(exp: &Experiment, launcher: &Launcher) -> anyhow::Result<()> {
    let checked = runner::check(exp, exp.runs.iter(), launcher)?;
    let mut failed = Vec::new();
    for (run, outcome) in checked {
        println!("# run {}", run.rel_dir().display());
        match outcome {
            Ok(resolved) => println!("{resolved}"),
            Err(why) => {
                println!("# invalid: {}\n", why.replace('\n', "\n# "));
                failed.push(runner::origin(exp, run));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} runs are invalid: {}",
            failed.len(),
            exp.runs.len(),
            failed.join("; ")
        );
    }
    say(format!("{} runs valid", exp.runs.len()));
    Ok(())
}

/// Before anything runs: one run of each configuration through `mpcl check` (runs differ
/// from the others of their configuration only in the seed), so that a bad key stops the
/// experiment with every configuration it breaks listed, not each run in turn.
fn check_configurations(exp: &Experiment, launcher: &Launcher) -> anyhow::Result<()> {
    let configurations = exp.configurations();
    let firsts = configurations.iter().map(|(_, runs)| runs[0]);
    let failed: Vec<String> = runner::check(exp, firsts, launcher)?
        .into_iter()
        .filter_map(|(_, outcome)| Some(format!("  {}", outcome.err()?.replace('\n', "\n    "))))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} configurations are invalid; nothing was run:\n{}",
            failed.len(),
            configurations.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

/// The release binary `build_mpcl` makes.
pub fn mpcl_path() -> PathBuf {
    root().join("target/release/mpcl")
}

/// Builds the release `mpcl` binary.
pub fn build_mpcl() -> anyhow::Result<()> {
    say(
        "building the mpcl binary in release mode (the first build compiles the libtorch \
         bindings: several minutes)",
    );
    run_cmd(cargo().args(["build", "--release", "--quiet", "--package", "mpcl-trainer"]))
}

/// An experiment file as a TOML table, with its path for messages.
fn read_table(path: &Path) -> anyhow::Result<(PathBuf, toml::Table)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok((path.to_owned(), table))
}

/// The subcommands an experiment's `kind` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Train,
    Toy,
    Eigenspace,
}

/// The top-level `kind` of an experiment file: absent means `"train"`. The binary
/// validates the rest.
fn experiment_kind(path: &Path, table: &toml::Table) -> anyhow::Result<Kind> {
    match table.get("kind") {
        None => Ok(Kind::Train),
        Some(v) => match v.as_str() {
            Some("train") => Ok(Kind::Train),
            Some("toy") => Ok(Kind::Toy),
            Some("eigenspace") => Ok(Kind::Eigenspace),
            _ => anyhow::bail!(
                "{}: kind = {v}: expected \"train\", \"toy\" or \"eigenspace\"",
                path.display()
            ),
        },
    }
}

/// What xtask needs of an experiment's `[data]` table; the binary validates the rest.
#[derive(Default)]
struct DataKeys {
    dataset: DatasetName,
    dir: Option<PathBuf>,
    root: Option<PathBuf>,
    class_list: Option<PathBuf>,
}

/// Reads `data.dataset` (default `fashion-mnist`), `data.dir`, `data.root` and
/// `data.class_list` from an experiment file.
fn config_data(path: &Path, table: &toml::Table) -> anyhow::Result<DataKeys> {
    let data = table.get("data");
    let key = |k: &str| data.and_then(|d| d.get(k)).and_then(|v| v.as_str());
    let dataset = match key("dataset") {
        Some(name) => name
            .parse()
            .with_context(|| format!("{}: data.dataset", path.display()))?,
        None => DatasetName::FashionMnist,
    };
    Ok(DataKeys {
        dataset,
        dir: key("dir").map(PathBuf::from),
        root: key("root").map(PathBuf::from),
        class_list: key("class_list").map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_picks_the_subcommand_and_names_bad_values() {
        let kind = |text: &str| {
            let table: toml::Table = toml::from_str(text).unwrap();
            experiment_kind(Path::new("x.toml"), &table)
        };
        assert_eq!(kind("name = \"a\"").unwrap(), Kind::Train);
        assert_eq!(kind("kind = \"train\"").unwrap(), Kind::Train);
        assert_eq!(kind("kind = \"toy\"").unwrap(), Kind::Toy);
        assert_eq!(kind("kind = \"eigenspace\"").unwrap(), Kind::Eigenspace);
        let err = kind("kind = \"plot\"").unwrap_err().to_string();
        assert!(err.contains("x.toml: kind = \"plot\""), "{err}");
    }
}
