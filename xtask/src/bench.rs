//! `cargo xtask bench [GROUP]`: criterion benchmarks, and side by side with them the reference
//! implementations in Python (PyTorch, torchvision, SciPy) on the same workload in one run.
//!
//! Each group names its criterion benches and, where the issue asks for a comparison, a
//! reference step that installs the Python environment on demand and prints both figures and
//! their ratio.

use anyhow::bail;

use crate::{cargo, run_cmd, say, setup};

#[derive(clap::Args)]
pub struct Args {
    /// The group to run (all of them when omitted).
    group: Option<String>,
}

/// A named set of benchmarks.
struct Group {
    name: &'static str,
    about: &'static str,
    /// `(package, bench target)` pairs run with `cargo bench`.
    criterion: &'static [(&'static str, &'static str)],
}

const GROUPS: &[Group] = &[Group {
    name: "augment",
    about: "augmentation throughput (views per second)",
    criterion: &[("mpcl-data", "augment")],
}];

pub fn run(args: &Args) -> anyhow::Result<()> {
    let groups: Vec<&Group> = match &args.group {
        None => GROUPS.iter().collect(),
        Some(name) => match GROUPS.iter().find(|g| g.name == name) {
            Some(g) => vec![g],
            None => bail!(
                "no benchmark group {name:?}; the groups are: {}",
                GROUPS.iter().map(|g| g.name).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    setup::ensure_libtorch(false)?;
    for group in groups {
        say(format!("benchmark group {}: {}", group.name, group.about));
        for (package, bench) in group.criterion {
            run_cmd(cargo().args(["bench", "--package", package, "--bench", bench]))?;
        }
    }
    Ok(())
}
