//! `cargo xtask experiment [CONFIG]`: provision, build the `mpcl` binary in release mode, run.
//!
//! The config's top-level `kind` picks the subcommand: `"train"` (the default) runs
//! `mpcl train`, `"toy"` runs `mpcl toy` (no data to provision). Without a config the binary
//! runs its embedded default, `configs/default.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use mpcl_data::{Dataset, DatasetName};

use crate::{cargo, data, root, run_cmd, say, setup};

#[derive(clap::Args)]
pub struct Args {
    /// The experiment's TOML file (default: the embedded configs/default.toml).
    config: Option<PathBuf>,
    /// The data directory (default: $MPCL_DATA_DIR or ~/.local/share/mpcl/datasets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where run directories go (default: runs/ in the workspace).
    #[arg(long)]
    runs_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Resolve paths before anything changes directory.
    let config = args.config.as_ref().map(std::path::absolute).transpose()?;
    let table = config.as_deref().map(read_table).transpose()?;
    let kind = match &table {
        Some((path, t)) => experiment_kind(path, t)?,
        None => Kind::Train,
    };
    setup::ensure_libtorch(false)?;
    let runs = args.runs_dir.clone().unwrap_or_else(|| root().join("runs"));
    if let (Kind::Toy, Some(config)) = (kind, &config) {
        build_mpcl()?;
        let mut mpcl = Command::new(root().join("target/release/mpcl"));
        mpcl.arg("toy")
            .arg("--config")
            .arg(config)
            .arg("--runs-dir")
            .arg(&runs);
        say(format!("running {mpcl:?}"));
        return run_cmd(&mut mpcl);
    }
    // The data directory: the flag, else the config's `data.dir`, else the default; the
    // binary gets the same one, so the data provisioned here is the data it trains on.
    let data_cfg = table
        .as_ref()
        .map(|(path, t)| config_data(path, t))
        .transpose()?
        .unwrap_or_default();
    let data_dir = data::resolve_dir(args.data_dir.as_deref().or(data_cfg.dir.as_deref()));
    let dataset = Dataset::new(
        data_cfg.dataset,
        data_cfg.root.as_deref(),
        data_cfg.class_list.as_deref(),
    )?;
    data::ensure(&dataset, &data_dir, None)?;
    build_mpcl()?;
    let mut mpcl = Command::new(root().join("target/release/mpcl"));
    mpcl.arg("train")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--runs-dir")
        .arg(&runs);
    if let Some(config) = &config {
        mpcl.arg("--config").arg(config);
    }
    say(format!("running {mpcl:?}"));
    run_cmd(&mut mpcl)
}

fn build_mpcl() -> anyhow::Result<()> {
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
}

/// The top-level `kind` of an experiment file: absent means `"train"`. The binary
/// validates the rest.
fn experiment_kind(path: &Path, table: &toml::Table) -> anyhow::Result<Kind> {
    match table.get("kind") {
        None => Ok(Kind::Train),
        Some(v) => match v.as_str() {
            Some("train") => Ok(Kind::Train),
            Some("toy") => Ok(Kind::Toy),
            _ => anyhow::bail!(
                "{}: kind = {v}: expected \"train\" or \"toy\"",
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
        let err = kind("kind = \"plot\"").unwrap_err().to_string();
        assert!(err.contains("x.toml: kind = \"plot\""), "{err}");
    }
}
