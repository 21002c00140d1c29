//! `cargo xtask experiment [CONFIG]`: provision, build the `mpcl` binary in release mode, run.
//!
//! Without a config the binary runs its embedded default, `configs/default.toml`.

use std::path::PathBuf;
use std::process::Command;

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
    let data_dir = data::resolve_dir(args.data_dir.as_deref());
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
