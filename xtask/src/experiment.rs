//! `cargo xtask experiment [CONFIG]`: provision, build the `mpcl` binary in release mode, run.
//!
//! The config's top-level `kind` picks the subcommand: `"train"` (the default) runs
//! `mpcl train`, `"toy"` runs `mpcl toy` (no data to provision). Without a config the binary
//! runs its embedded default, `configs/default.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

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
    let from_config = table.as_ref().and_then(|(_, t)| config_data_dir(t));
    let data_dir = data::resolve_dir(args.data_dir.as_deref().or(from_config.as_deref()));
    // FIXME(#7): provision the data set the config names once there are several.
    data::ensure_fashion_mnist(&data_dir)?;
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

/// The `data.dir` of an experiment file, if it sets one.
fn config_data_dir(table: &toml::Table) -> Option<PathBuf> {
    let dir = table
        .get("data")
        .and_then(|d| d.get("dir"))
        .and_then(|d| d.as_str());
    dir.map(PathBuf::from)
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
