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

use crate::{cargo, data, python, root, run_cmd, say, setup};

#[derive(clap::Args)]
pub struct Args {
    /// The group to run (all of them when omitted).
    group: Option<String>,
    /// `train` group: train on the first n images (default: all 60 000, one full epoch).
    #[arg(long, default_value_t = 0)]
    train_images: usize,
}

/// What a group's side-by-side step gets.
struct Run<'a> {
    args: &'a Args,
    /// The thread count of both sides.
    threads: usize,
    /// When the group's criterion benches started: results older than that are stale.
    started: SystemTime,
}

/// A named set of benchmarks.
struct Group {
    name: &'static str,
    about: &'static str,
    /// `(package, bench target)` pairs run with `cargo bench`.
    criterion: &'static [(&'static str, &'static str)],
    /// The side-by-side comparison with a Python reference, run after the criterion benches.
    side_by_side: Option<fn(&Run<'_>) -> anyhow::Result<()>>,
}

const GROUPS: &[Group] = &[
    Group {
        name: "augment",
        about: "augmentation throughput (views per second)",
        criterion: &[("mpcl-data", "augment")],
        side_by_side: Some(augment_views),
    },
    Group {
        name: "knn",
        about: "kNN classification of 10k test against 60k train features, vs PyTorch",
        criterion: &[("mpcl-eval", "knn")],
        side_by_side: Some(knn_side_by_side),
    },
    Group {
        name: "step",
        about: "one SimCLR step (small CNN and CIFAR ResNet-18, 2×256 views of 32×32) against \
                PyTorch",
        criterion: &[("mpcl-trainer", "step")],
        side_by_side: Some(step_side_by_side),
    },
    Group {
        name: "graph",
        about: "the graph layer at N = 1e4, 1e5, 1e6: Ā·F, the fused spectral step and the \
                top 16 eigenpairs, against SciPy 1.17 on one core",
        criterion: &[("mpcl-graph", "graph")],
        side_by_side: Some(graph_side_by_side),
    },
    Group {
        name: "graph-ab",
        about: "Ā·F and the fused step at N = 1e6 on one thread, with and without prefetch, \
                alternated 10 times in one process (MPCL_BENCH_AB_N sets N)",
        criterion: &[("mpcl-graph", "prefetch")],
        side_by_side: None,
    },
    Group {
        name: "train",
        about: "an epoch of the default experiment against PyTorch + torchvision (views per \
                second, augmentation, loading and training together)",
        criterion: &[],
        side_by_side: Some(train_epoch),
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
        if let Some(side_by_side) = group.side_by_side {
            side_by_side(&Run {
                args,
                threads,
                started,
            })?;
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
fn knn_side_by_side(run: &Run<'_>) -> anyhow::Result<()> {
    let threads = run.threads;
    let ours = criterion_medians("knn", run.started)?;
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

/// The CIFAR SimCLR pipeline on one core: criterion's `cifar_simclr/one_view` (just run)
/// against torchvision's PIL path in python/bench_augment.py on the same images.
fn augment_views(run: &Run<'_>) -> anyhow::Result<()> {
    let medians = criterion_medians("cifar_simclr", run.started)?;
    let (_, seconds) = medians
        .iter()
        .find(|(name, _)| name == "one_view")
        .context("no fresh criterion result for cifar_simclr/one_view")?;
    let ours = 1.0 / seconds;
    say("torchvision: the same pipeline with python/bench_augment.py on one core");
    let reference = python_views_per_s("bench_augment.py", &[])?;
    println!("\nSimCLR CIFAR pipeline, 32×32 RGB, one view at a time on one core");
    print_ratio(
        ("mpcl-data (cifar_simclr/one_view)", ours),
        ("torchvision 0.28, PIL path", reference),
    );
    Ok(())
}

/// The criterion step medians just measured (crates/mpcl-trainer/benches/step.rs) against
/// python/bench_step.py on the same models, threads and batch, run twice: with glibc's malloc
/// defaults (PyTorch as users run it) and with the malloc settings mpcl runs under
/// (`--retain-freed-memory`). Views per second and ratios, and the share of the trainer's
/// per-step gradient split.
fn step_side_by_side(run: &Run<'_>) -> anyhow::Result<()> {
    let ours = criterion_medians("step", run.started)?;
    let models: Vec<&str> = ours
        .iter()
        .filter_map(|(name, _)| name.strip_suffix("_step"))
        .collect();
    if models.is_empty() {
        bail!("no fresh criterion results under target/criterion/step");
    }
    say(format!(
        "PyTorch: the same steps with python/bench_step.py, {} threads, with glibc's malloc \
         defaults and then with mpcl's (--retain-freed-memory)",
        run.threads
    ));
    let mut args = vec!["--threads".to_owned(), run.threads.to_string()];
    for m in &models {
        args.extend(["--model".to_owned(), (*m).to_owned()]);
    }
    let defaults = python_step_seconds(&args)?;
    args.push("--retain-freed-memory".to_owned());
    let retained = python_step_seconds(&args)?;
    let median = |name: &str| ours.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    let ours_malloc = match std::env::var("MPCL_BENCH_MALLOC").as_deref() {
        Ok("glibc") => "malloc defaults",
        _ => "freed memory retained",
    };
    println!(
        "\n| model | mpcl views/s ({ours_malloc}) | PyTorch views/s (malloc defaults) | ratio \
         | PyTorch views/s (freed memory retained) | ratio |\n|---|---:|---:|---:|---:|---:|"
    );
    let rate = |s: f64| 512.0 / s;
    for (model, theirs) in &defaults {
        let mine = median(&format!("{model}_step"))
            .with_context(|| format!("python/bench_step.py timed {model:?}, criterion did not"))?;
        let same = retained
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, s)| *s)
            .with_context(|| format!("python/bench_step.py timed {model:?} only once"))?;
        println!(
            "| {model} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
            rate(mine),
            rate(*theirs),
            theirs / mine,
            rate(same),
            same / mine
        );
    }
    if let (Some(step), Some(split)) = (median("small-cnn_step"), median("small-cnn_step_split")) {
        println!(
            "\nsmall CNN: the trainer's per-step gradient split adds {:.1} % to the step",
            100.0 * (split / step - 1.0)
        );
    }
    Ok(())
}

/// Runs python/bench_step.py with `args` and returns each model's median step seconds.
fn python_step_seconds(args: &[String]) -> anyhow::Result<Vec<(String, f64)>> {
    python_json_lines("bench_step.py", args)?
        .iter()
        .map(|v| match (v["model"].as_str(), v["seconds"].as_f64()) {
            (Some(model), Some(seconds)) => Ok((model.to_owned(), seconds)),
            _ => bail!("python/bench_step.py printed {v}: expected model and seconds"),
        })
        .collect()
}

/// Runs python/`script` with `args` in the reference environment and returns the
/// `views_per_s` of the JSON line it prints.
fn python_views_per_s(script: &str, args: &[String]) -> anyhow::Result<f64> {
    let lines = python_json_lines(script, args)?;
    lines
        .first()
        .and_then(|v| v["views_per_s"].as_f64())
        .with_context(|| format!("python/{script} printed no views_per_s: {lines:?}"))
}

/// Runs python/`script` with `args` in the reference environment (its stderr passed
/// through) and returns the JSON object of each line it prints.
fn python_json_lines(script: &str, args: &[String]) -> anyhow::Result<Vec<serde_json::Value>> {
    let python = python::ensure_env()?;
    let out = Command::new(&python)
        .arg(root().join("python").join(script))
        .args(args)
        .output()
        .with_context(|| format!("running python/{script}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("python/{script} failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .with_context(|| format!("python/{script} printed {line:?}: expected JSON"))
        })
        .collect()
}

/// The graph group's cases side by side: criterion's medians (`graph`, N = 1e4 and 1e5) and
/// the one-shot medians of N = 1e6 (`graph_once`, see crates/mpcl-graph/benches/graph.rs)
/// against python/bench_graph.py on one core. Prints time ratios and the bandwidth ours
/// achieves on one thread under a traffic model (the same in
/// crates/mpcl-graph/benches/prefetch.rs): the graph (4-byte index and 4-byte weight per
/// entry, 8-byte row pointers), one 128-byte row of F gathered per entry, F written once,
/// and for the step F read once more as itself. The entry count is SciPy's graph's of the
/// same size (the two draw different but equally distributed graphs).
fn graph_side_by_side(run: &Run<'_>) -> anyhow::Result<()> {
    let mut ours = criterion_medians("graph", run.started)?;
    ours.extend(criterion_medians("graph_once", run.started)?);
    let cases: Vec<String> = ours
        .iter()
        .filter_map(|(name, _)| name.strip_suffix("_t1").map(String::from))
        .collect();
    if cases.is_empty() {
        bail!("no fresh criterion results under target/criterion/graph*");
    }
    say("SciPy: the same cases with python/bench_graph.py on one core");
    let mut args = vec!["--threads".to_string(), "1".to_string()];
    for case in &cases {
        args.extend(["--case".to_string(), case.clone()]);
    }
    let lines = python_json_lines("bench_graph.py", &args)?;
    let threads = run.threads;
    let find = |case: &str, t: usize| {
        let name = format!("{case}_t{t}");
        ours.iter().find(|(c, _)| *c == name).map(|(_, s)| *s)
    };
    println!(
        "\n| case | mpcl, 1 thread (s) | mpcl, {threads} threads (s) | SciPy, 1 core (s) | \
         SciPy / mpcl | mpcl GB/s |\n|---|---:|---:|---:|---:|---:|"
    );
    for json in lines {
        let (Some(case), Some(theirs), Some(nnz)) = (
            json["case"].as_str(),
            json["seconds"].as_f64(),
            json["nnz"].as_f64(),
        ) else {
            bail!("python/bench_graph.py printed {json}: expected case, seconds and nnz");
        };
        let mine = find(case, 1).with_context(|| format!("no result of ours for {case}"))?;
        let wide = find(case, threads).map_or("—".into(), |s| format!("{s:.4}"));
        let n: f64 = case
            .split('_')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("case {case:?}: expected WHAT_N"))?;
        let row = 32.0 * 4.0;
        let graph = nnz * 8.0 + (n + 1.0) * 8.0;
        let bytes = match case.split('_').next() {
            Some("spmm") => Some(graph + nnz * row + n * row),
            Some("step") => Some(graph + nnz * row + 2.0 * n * row),
            _ => None,
        };
        let rate = bytes.map_or("—".into(), |b| format!("{:.1}", b / mine / 1e9));
        println!(
            "| {case} | {mine:.4} | {wide} | {theirs:.4} | {:.2} | {rate} |",
            theirs / mine
        );
        if let Some(residual) = json["residual"].as_f64() {
            println!("|   SciPy's largest residual ‖Āv − λv‖ | | | {residual:.1e} | | |");
        }
    }
    let builders = criterion_medians("graph_build", run.started)?;
    if !builders.is_empty() {
        println!("\nk-NN graph builders, k = 10, one run each (recall in the bench's log)");
        println!("\n| builder | seconds |\n|---|---:|");
        for (case, seconds) in builders {
            println!("| {case} | {seconds:.2} |");
        }
    }
    Ok(())
}

/// Prints two throughputs and the ratio of the first to the second.
fn print_ratio((ours_name, ours): (&str, f64), (their_name, theirs): (&str, f64)) {
    println!("\n| implementation | views/s |\n|---|---:|");
    println!("| {ours_name} | {ours:.0} |");
    println!("| {their_name} | {theirs:.0} |");
    println!("\nratio: {:.2}", ours / theirs);
}

/// One epoch of the default experiment (configs/default.toml, evaluation off) with the `mpcl`
/// binary, then the same epoch with python/bench_train.py: same model, loss, optimiser,
/// augmentations, batch size and threads; PyTorch loads with 2 worker processes.
fn train_epoch(run: &Run<'_>) -> anyhow::Result<()> {
    let (args, threads) = (run.args, run.threads);
    python::ensure_env()?;
    let data_dir = data::resolve_dir(None);
    let fashion = mpcl_data::Dataset::FashionMnist;
    data::ensure(&fashion, &data_dir, None)?;
    say("building the mpcl binary in release mode");
    run_cmd(cargo().args(["build", "--release", "--quiet", "--package", "mpcl-trainer"]))?;

    let work = root().join("target/xtask-bench-train");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let text = std::fs::read_to_string(root().join("configs/default.toml"))?;
    let mut cfg: toml::Table = toml::from_str(&text).context("parsing configs/default.toml")?;
    let section = |cfg: &toml::Table, name: &str| -> anyhow::Result<toml::Table> {
        cfg.get(name)
            .and_then(|v| v.as_table())
            .cloned()
            .with_context(|| format!("configs/default.toml has no [{name}]"))
    };
    let (mut train, mut eval, mut data_table, model, augment) = (
        section(&cfg, "train")?,
        section(&cfg, "eval")?,
        section(&cfg, "data")?,
        section(&cfg, "model")?,
        section(&cfg, "augment")?,
    );
    train.insert("epochs".into(), 1.into());
    train.insert("threads".into(), (threads as i64).into());
    eval.insert("enabled".into(), false.into());
    // The PyTorch script trains no online classifier: leave ours out of the timed epoch too.
    train.insert("online_classifier".into(), false.into());
    // Nor the kNN monitor (not part of the epoch's views/s, but minutes of wall time).
    train.insert("knn_every".into(), 0.into());
    data_table.insert("train_subset".into(), (args.train_images as i64).into());
    cfg.insert("name".into(), "bench-train".into());
    let get = |t: &toml::Table, key: &str| {
        t.get(key)
            .map(|v| v.to_string())
            .with_context(|| format!("configs/default.toml sets no {key}"))
    };
    let batch = get(&train, "batch_size")?;
    let lr = get(&train, "lr")?;
    let tau = get(&train, "temperature")?;
    let wd = get(&train, "weight_decay")?;
    let views = get(&train, "views")?;
    let pool = get(&model, "pool")?;
    let projector = [
        get(&model, "projector_hidden")?,
        get(&model, "projector_dim")?,
    ];
    let list = |t: &toml::Table, key: &str| -> anyhow::Result<Vec<String>> {
        Ok(t.get(key)
            .and_then(|w| w.as_array())
            .with_context(|| format!("configs/default.toml sets no list {key}"))?
            .iter()
            .map(|w| w.to_string())
            .collect())
    };
    let widths = list(&model, "widths")?;
    let crop_scale = list(&augment, "crop_scale")?;
    cfg.insert("train".into(), train.into());
    cfg.insert("eval".into(), eval.into());
    cfg.insert("data".into(), data_table.into());
    let config = work.join("bench-train.toml");
    std::fs::write(&config, toml::to_string(&cfg)?)?;

    say(format!("mpcl: one epoch, batch {batch}, {threads} threads"));
    run_cmd(
        Command::new(root().join("target/release/mpcl"))
            .args(["train", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--runs-dir")
            .arg(work.join("runs")),
    )?;
    let ours = epoch_views_per_s(&work.join("runs"))?;

    say(format!(
        "PyTorch: the same epoch with python/bench_train.py, {threads} threads, 2 workers"
    ));
    let mut py_args: Vec<String> = vec![
        "--data-dir".into(),
        fashion.dir(&data_dir).display().to_string(),
    ];
    for (flag, value) in [
        ("--images", args.train_images.to_string()),
        ("--batch-size", batch),
        ("--views", views),
        ("--lr", lr),
        ("--temperature", tau),
        ("--weight-decay", wd),
        ("--threads", threads.to_string()),
        ("--workers", "2".into()),
        ("--pool", pool),
    ] {
        py_args.extend([flag.into(), value]);
    }
    for (flag, values) in [
        ("--widths", widths),
        ("--projector", projector.into()),
        ("--crop-scale", crop_scale),
    ] {
        py_args.push(flag.into());
        py_args.extend(values);
    }
    let reference = python_views_per_s("bench_train.py", &py_args)?;
    print_ratio(
        ("mpcl (tch 0.26, native loader)", ours),
        ("PyTorch 2.13 + torchvision DataLoader", reference),
    );
    Ok(())
}

/// The `views_per_s` of the only epoch in the only run under `runs`, from its results.json.
fn epoch_views_per_s(runs: &Path) -> anyhow::Result<f64> {
    let run = std::fs::read_dir(runs)?
        .next()
        .context("the benchmark run left no run directory")??
        .path();
    let path = run.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let results: serde_json::Value = serde_json::from_str(&text)?;
    results["metrics"][0]["views_per_s"]
        .as_f64()
        .with_context(|| format!("{} has no metrics[0].views_per_s", path.display()))
}
