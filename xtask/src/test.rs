//! `cargo xtask test`: the README's test command and CI's. Provisions what the tests need,
//! then runs formatting and lint checks and every test of the workspace.

use std::path::PathBuf;

use crate::{cargo, data, run_cmd, say, setup};

#[derive(clap::Args)]
pub struct Args {
    /// The data directory (default: $MPCL_DATA_DIR or ~/.local/share/mpcl/datasets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    setup::ensure_libtorch(false)?;
    let data_dir = data::resolve_dir(args.data_dir.as_deref());
    data::ensure(&mpcl_data::Dataset::FashionMnist, &data_dir, None)?;
    say("checking formatting (cargo fmt --check)");
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    say("linting (cargo clippy, warnings denied)");
    run_cmd(
        cargo()
            .args(["clippy", "--workspace", "--all-targets", "--quiet", "--"])
            .args(["-D", "warnings"]),
    )?;
    say("running every test of the workspace (cargo test --workspace)");
    run_cmd(
        cargo()
            .args(["test", "--workspace"])
            .env(mpcl_data::DATA_DIR_ENV, &data_dir),
    )
}
