//! `cargo xtask experiment [CONFIG]`: provision, build the `mpcl` binary in release mode, run.
//!
//! Without a config the binary runs its embedded default, `configs/default.toml`.

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
    setup::ensure_libtorch(false)?;
    // The data directory: the flag, else the config's `data.dir`, else the default; the
    // binary gets the same one, so the data provisioned here is the data it trains on.
    let from_config = config
        .as_deref()
        .map(config_data_dir)
        .transpose()?
        .flatten();
    let data_dir = data::resolve_dir(args.data_dir.as_deref().or(from_config.as_deref()));
    // FIXME(#7): provision the data set the config names once there are several.
    data::ensure_fashion_mnist(&data_dir)?;
    say(
        "building the mpcl binary in release mode (the first build compiles the libtorch \
         bindings: several minutes)",
    );
    run_cmd(cargo().args(["build", "--release", "--quiet", "--package", "mpcl-trainer"]))?;
    let runs = args.runs_dir.clone().unwrap_or_else(|| root().join("runs"));
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

/// The `data.dir` of an experiment file, if it sets one. The binary validates the rest.
fn config_data_dir(path: &Path) -> anyhow::Result<Option<PathBuf>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let dir = table
        .get("data")
        .and_then(|d| d.get("dir"))
        .and_then(|d| d.as_str());
    Ok(dir.map(PathBuf::from))
}
