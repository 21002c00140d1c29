//! `cargo xtask bench [GROUP]`: criterion benchmarks, and side by side with them the reference
//! implementations in Python (PyTorch, torchvision, SciPy) on the same workload in one run.
//!
//! Each group names its criterion benches and, where the issue asks for a comparison, a
//! reference step that installs the Python environment on demand and prints both figures and
//! their ratio.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::{cargo, python, root, run_cmd, say, setup};

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
    /// The Python reference run after the criterion benches, given the thread count.
    /// Its arguments: the thread count, and the time the group's criterion benches started
    /// (results older than that are stale).
    reference: Option<fn(usize, SystemTime) -> anyhow::Result<()>>,
}

const GROUPS: &[Group] = &[
    Group {
        name: "augment",
        about: "augmentation throughput (views per second)",
        criterion: &[("mpcl-data", "augment")],
        reference: None,
    },
    Group {
        name: "knn",
        about: "kNN classification of 10k test against 60k train features, vs PyTorch",
        criterion: &[("mpcl-eval", "knn")],
        reference: Some(knn_side_by_side),
    },
];

/// The environment variable that sets the thread count of the benches and their references
/// (default: all cores).
const THREADS: &str = "MPCL_BENCH_THREADS";

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
    let threads = match std::env::var(THREADS) {
        Ok(t) => t
            .parse::<usize>()
            .ok()
            .filter(|&t| t > 0)
            .with_context(|| format!("{THREADS} = {t:?}: expected a positive integer"))?,
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    for group in groups {
        say(format!("benchmark group {}: {}", group.name, group.about));
        let started = SystemTime::now();
        for (package, bench) in group.criterion {
            run_cmd(
                cargo()
                    .args(["bench", "--package", package, "--bench", bench])
                    .env(THREADS, threads.to_string()),
            )?;
        }
        if let Some(reference) = group.reference {
            reference(threads, started)?;
        }
    }
    Ok(())
}

/// The median time in seconds of every criterion benchmark of `group` run since `since`, by
/// name.
fn criterion_medians(group: &str, since: SystemTime) -> anyhow::Result<Vec<(String, f64)>> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), Into::into);
    let dir = Path::new(&target).join("criterion").join(group);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path().join("new/estimates.json");
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        if !fresh {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let ns = json["median"]["point_estimate"]
            .as_f64()
            .with_context(|| format!("{}: no median.point_estimate", path.display()))?;
        let name = path
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name);
        out.push((
            name.unwrap_or_default().to_string_lossy().into_owned(),
            ns * 1e-9,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Times python/bench_knn.py (PyTorch mm + topk) on the cases the criterion bench just ran
/// (`MPCL_BENCH_KNN_CASES` chooses them, see crates/mpcl-eval/benches/knn.rs),
/// with the same features and threads, and prints both medians and their ratio.
fn knn_side_by_side(threads: usize, since: SystemTime) -> anyhow::Result<()> {
    let ours = criterion_medians("knn", since)?;
    if ours.is_empty() {
        bail!("no criterion results under target/criterion/knn");
    }
    let python = python::ensure_env()?;
    let mut cmd = Command::new(&python);
    cmd.arg(root().join("python/bench_knn.py"))
        .args(["--threads", &threads.to_string()]);
    for (case, _) in &ours {
        cmd.args(["--case", case]);
    }
    say(format!("PyTorch reference: {cmd:?}"));
    let out = cmd
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("python/bench_knn.py failed ({})", out.status);
    }
    say(format!(
        "kNN, {threads} threads, median seconds (ratio > 1: mpcl is faster)"
    ));
    println!("| features n×m×D | mpcl | PyTorch | PyTorch / mpcl |\n|---|---:|---:|---:|");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let json: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("python/bench_knn.py printed {line:?}"))?;
        let (Some(case), Some(theirs)) = (json["case"].as_str(), json["seconds"].as_f64()) else {
            bail!("python/bench_knn.py printed {line:?}: expected case and seconds");
        };
        let Some((_, mine)) = ours.iter().find(|(c, _)| c == case) else {
            bail!("python/bench_knn.py timed {case:?}, which criterion did not");
        };
        println!(
            "| {case} | {mine:.3} | {theirs:.3} | {:.2} |",
            theirs / mine
        );
    }
    Ok(())
}
