//! `cargo xtask bench [FILTER]`: the criterion benchmarks of every crate.

use crate::{cargo, run_cmd, say, setup};

#[derive(clap::Args)]
pub struct Args {
    /// Only benchmarks whose name contains this.
    filter: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    setup::ensure_libtorch(false)?;
    say("running the criterion benchmarks (cargo bench --workspace)");
    let mut cmd = cargo();
    cmd.args(["bench", "--workspace", "--"]);
    if let Some(filter) = &args.filter {
        cmd.arg(filter);
    }
    run_cmd(&mut cmd)
}
