//! `cargo xtask test`: the README's test command and CI's. Provisions what the tests need,
//! then runs formatting and lint checks and every test of the workspace. `--cuda` runs them
//! against the CUDA libtorch and adds the tests that need a GPU; `--slurm` runs the opt-in
//! end-to-end test on a real single-node Slurm instead (xtask's `slurm`).

use std::path::PathBuf;

use crate::{cargo, data, experiment, run_cmd, say, setup, slurm};

#[derive(clap::Args)]
pub struct Args {
    /// The data directory (default: $MPCL_DATA_DIR or ~/.local/share/mpcl/datasets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also: install the CUDA libtorch (as `setup --cuda`; cargo keeps using it), run every
    /// test against it, then the tests that need an NVIDIA GPU (each crate's `tests/cuda.rs`,
    /// built only with the feature `gpu-tests`). Fails without a usable GPU.
    #[arg(long, conflicts_with = "slurm")]
    cuda: bool,
    /// Instead: start a single-node Slurm (Debian's packages, loopback only), run a two-run
    /// grid through `--slurm` and sbatch, check it and the report, stop the daemons.
    #[arg(long)]
    slurm: bool,
    /// The part of `--slurm` inside its network namespace (started by `--slurm`).
    #[arg(long, hide = true, requires = "mpcl")]
    slurm_inside: bool,
    /// The mpcl binary, for `--slurm-inside`.
    #[arg(long, hide = true)]
    mpcl: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let data_dir = data::resolve_dir(args.data_dir.as_deref());
    if let (true, Some(mpcl)) = (args.slurm_inside, &args.mpcl) {
        return slurm::inside(&data_dir, mpcl);
    }
    setup::ensure_libtorch(args.cuda)?;
    data::ensure(&mpcl_data::Dataset::FashionMnist, &data_dir, None)?;
    if args.slurm {
        experiment::build_mpcl()?;
        return slurm::real_test(&std::path::absolute(&data_dir)?, &experiment::mpcl_path());
    }
    say("checking formatting (cargo fmt --check)");
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    say("linting (cargo clippy, warnings denied)");
    run_cmd(
        cargo()
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--quiet",
            ])
            .arg("--")
            .args(["-D", "warnings"]),
    )?;
    say("running every test of the workspace (cargo test --workspace)");
    run_cmd(
        cargo()
            .args(["test", "--workspace"])
            .env(mpcl_data::DATA_DIR_ENV, &data_dir),
    )?;
    if args.cuda {
        say("running the tests that need a GPU (the `cuda` tests, feature `gpu-tests`)");
        run_cmd(
            cargo()
                .args([
                    "test",
                    "--no-fail-fast",
                    "-p",
                    "mpcl-autocast",
                    "-p",
                    "mpcl-trainer",
                ])
                .args(["--test", "cuda"])
                .args([
                    "--features",
                    "mpcl-autocast/gpu-tests,mpcl-trainer/gpu-tests",
                ])
                .env(mpcl_data::DATA_DIR_ENV, &data_dir),
        )?;
    }
    Ok(())
}
