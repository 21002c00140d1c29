//! The `mpcl` binary end to end on a small subset of the real Fashion-MNIST, which
//! `cargo xtask test` provisions (the data directory comes from `MPCL_DATA_DIR` or the
//! default).

use std::path::Path;
use std::process::{Command, Output};

use mpcl_data::cifar::CIFAR10;
use mpcl_trainer::{Config, RunDir};

#[path = "common/tiny.rs"]
mod tiny;
use tiny::TINY;

/// libtorch has one random generator per process. In-process runs seed it and draw from it,
/// and the tests here run on parallel threads, so two runs at once would take each other's
/// numbers: they take turns.
static TORCH_GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `mpcl_trainer::run` in this process, alone among the in-process runs.
fn run_alone(cfg: &Config, data_dir: &Path, dir: &RunDir) -> mpcl_trainer::Outcome {
    let _turn = TORCH_GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    mpcl_trainer::run(cfg, data_dir, dir).unwrap()
}

/// Runs `mpcl train` with an optional config and data directory, runs going to `runs`.
fn train(config: Option<&Path>, data: Option<&Path>, runs: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpcl"));
    cmd.arg("train").arg("--runs-dir").arg(runs);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    if let Some(data) = data {
        cmd.arg("--data-dir").arg(data);
    }
    cmd.output().expect("mpcl runs")
}

/// The stderr of a run that must have failed.
fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn only_run_dir(runs: &Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn a_tiny_run_fills_its_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let runs = tmp.path().join("runs");
    let out = train(Some(&config), None, &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mpcl failed:
{stderr}"
    );

    let dir = only_run_dir(&runs);
    assert!(
        dir.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("tiny-")
    );
    let resolved = Config::load(&dir.join("config.toml")).expect("the resolved config reloads");
    assert_eq!(resolved, Config::parse(TINY, "tiny").unwrap());

    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<_> = metrics.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,step,loss,lr,views_per_s,seconds,grad_alignment,grad_uniformity,\
         online_train_top1,online_test_top1,knn_test_top1,skipped_steps"
    );
    for line in &lines[1..] {
        let values: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        let (norms, online) = (&values[6..8], &values[8..11]);
        assert_eq!(values[11], 0.0, "no step skipped: {line}");
        assert!(norms.iter().all(|&n| n > 0.0 && n.is_finite()), "{line}");
        // Accuracies: fractions. Eight steps an epoch are too few to promise more (the first
        // epoch measured 0.08 on the test split here); that it learns is tested in online.rs.
        assert!(online.iter().all(|&a| (0.0..=1.0).contains(&a)), "{line}");
    }
    // 512 images in batches of 64: 8 steps an epoch, two epochs.
    assert!(
        lines[1].starts_with("1,8,") && lines[2].starts_with("2,16,"),
        "{metrics}"
    );

    let results = std::fs::read_to_string(dir.join("results.md")).unwrap();
    for row in [
        "| SimCLR encoder (2 epochs) |",
        "| random encoder |",
        "| raw pixels |",
    ] {
        assert!(results.contains(row), "{results}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| SimCLR encoder (2 epochs) |"),
        "the table is printed: {stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let top1 = json["rows"][0]["knn"]["top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1));
    // The kNN monitor of the last epoch saw the same encoder, and its bank (10 000 images,
    // cut to the subset's 512) is the whole training subset: the final kNN's numbers.
    assert_eq!(json["metrics"][1]["knn_test_top1"].as_f64(), Some(top1));
    // Effective rank lies in [1, min(n, D)] and alignment of unit vectors in [0, 4].
    let diag = &json["rows"][0]["diagnostics"];
    let max_rank = diag["max_rank"].as_f64().unwrap();
    assert!(
        (1.0..=max_rank).contains(&diag["effective_rank"].as_f64().unwrap()),
        "{diag}"
    );
    assert!(
        (0.0..=4.0).contains(&diag["alignment"].as_f64().unwrap()),
        "{diag}"
    );
    assert!(results.contains("| eff. rank |"), "{results}");

    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(log.contains("epoch 2/2 done"), "{log}");
    assert!(log.contains("online_test_top1="), "{log}");
    assert!(
        std::fs::metadata(dir.join("encoder.safetensors"))
            .unwrap()
            .len()
            > 1000
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_fixed_seed_gives_the_same_numbers() {
    let cfg = Config::parse(TINY, "tiny").unwrap();
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let run = || {
        let dir = RunDir::create(tmp.path(), "seeded").unwrap();
        run_alone(&cfg, &data_dir, &dir)
    };
    let (a, b) = (run(), run());
    let losses = |o: &mpcl_trainer::Outcome| o.metrics.iter().map(|m| m.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    for (x, y) in a.rows.iter().zip(&b.rows) {
        assert_eq!((x.knn, x.probe), (y.knn, y.probe), "{}", x.name);
        assert_eq!(x.diagnostics, y.diagnostics, "{}", x.name);
    }
}

#[test]
fn the_reference_probe_runs_reproducibly_and_is_described() {
    let toml = TINY.replace(
        "[eval.probe]\nepochs = 3\n",
        "[eval.probe]\nprotocol = \"simclr-reference\"\n\
         [eval.probe.reference]\niterations = 10\nbatch_size = 64\n",
    );
    let cfg = Config::parse(&toml, "reference").unwrap();
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let run = |name| {
        let dir = RunDir::create(tmp.path(), name).unwrap();
        let outcome = run_alone(&cfg, &data_dir, &dir);
        (
            outcome,
            std::fs::read_to_string(dir.path().join("results.md")).unwrap(),
        )
    };
    let ((a, results), (b, _)) = (run("first"), run("second"));
    assert!(
        results.contains("Linear probe (SimCLR reference)") && results.contains("10 iterations"),
        "{results}"
    );
    for (x, y) in a.rows.iter().zip(&b.rows) {
        assert_eq!(x.probe, y.probe, "{}", x.name);
    }
}

#[test]
fn bad_configs_are_rejected_naming_the_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("typo.toml");
    std::fs::write(&config, "[train]\nepohcs = 3\n").unwrap();
    let runs = tmp.path().join("runs");
    let stderr = failure(&train(Some(&config), None, &runs));
    assert!(
        stderr.contains("typo.toml") && stderr.contains("unknown field `epohcs`"),
        "{stderr}"
    );
    assert!(
        !runs.exists(),
        "no run directory for a config that does not parse"
    );

    let gone = tmp.path().join("gone");
    let out = Command::new(env!("CARGO_BIN_EXE_mpcl"))
        .args(["train", "--resume"])
        .arg(&gone)
        .output()
        .unwrap();
    let expected = format!("--resume {}: no such directory", gone.display());
    assert!(failure(&out).contains(&expected), "{}", failure(&out));

    // A key that only the loaded data refutes: the message names it, the context the file.
    std::fs::write(&config, "[data]\ntrain_subset = 10\n").unwrap();
    let stderr = failure(&train(Some(&config), None, &runs));
    assert!(
        stderr.contains(&format!("run experiment of {} failed", config.display()))
            && stderr.contains("train.batch_size = 128 is larger than the 10 training images"),
        "{stderr}"
    );
}

#[test]
fn a_missing_data_set_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    let stderr = failure(&train(None, Some(&empty), &tmp.path().join("runs")));
    assert!(
        stderr.contains("train-images-idx3-ubyte not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cargo xtask download fashion-mnist"),
        "{stderr}"
    );
}

#[test]
fn spectral_and_attention_variants_train() {
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let variants = [
        (
            "[train]\nmethod = \"spectral\"\n",
            "Spectral encoder (2 epochs)",
        ),
        (
            "[aggregators.attention]\n[aggregators.contranorm]\n[train]\n",
            "SimCLR encoder (2 epochs)",
        ),
        (
            "[aggregators.multi-stage]\n[train]\n",
            "SimCLR encoder (2 epochs)",
        ),
        (
            "[aggregators.rewiring]\nqueue_size = 256\n[train]\n",
            "SimCLR encoder (2 epochs)",
        ),
    ];
    for (change, row) in variants {
        // The tiny config with one key of [train] replaced by the variant's.
        let text = TINY.replace("[train]\n", change);
        let cfg = Config::parse(&text, "variant").unwrap();
        let dir = RunDir::create(tmp.path(), "variant").unwrap();
        let outcome = run_alone(&cfg, &data_dir, &dir);
        assert_eq!(outcome.rows[0].name, row);
        // The split is measured every 10th step (steps 0 and 10: one in each epoch of 8)
        // where it exists. Aggregators that replace the positives' keys leave those steps
        // unmeasured, so the epoch reports NaN: rewiring from its second step on (its queue
        // is empty at step 0), multi-stage from its start epoch (2 by default).
        for m in &outcome.metrics {
            let keyed =
                (change.contains("rewiring") || change.contains("multi-stage")) && m.epoch >= 2;
            assert!(m.loss.is_finite(), "{change}: loss {}", m.loss);
            assert_eq!(m.grad_alignment.is_nan(), keyed, "{change}: {m:?}");
            assert!(keyed || m.grad_alignment > 0.0, "{change}: {m:?}");
        }
    }
}

#[test]
fn a_runs_directory_that_is_a_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let stderr = failure(&train(None, None, &file));
    assert!(
        stderr.contains("not-a-dir: the runs directory is a file"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("is a file").count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn simsiam_trains_with_its_predictor() {
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let text = TINY.replace(
        "[train]\n",
        "[train]\nmethod = \"simsiam\"\noptimizer = \"sgd\"\n",
    );
    let cfg = Config::parse(&text, "simsiam").unwrap();
    let dir = RunDir::create(tmp.path(), "simsiam").unwrap();
    let outcome = run_alone(&cfg, &data_dir, &dir);
    assert_eq!(outcome.rows[0].name, "SimSiam encoder (2 epochs)");
    for m in &outcome.metrics {
        // The negative cosine lies in [−1, 1]; SimSiam has no gradient split (NaN norms).
        assert!((-1.0..=1.0).contains(&m.loss), "{m:?}");
        assert!(
            m.grad_alignment.is_nan() && m.grad_uniformity.is_nan(),
            "{m:?}"
        );
    }
    let saved = tch::Tensor::read_safetensors(dir.weights_path()).unwrap();
    assert!(saved.iter().any(|(n, _)| n.starts_with("predictor.fc1")));
}

#[test]
fn a_resnet18_with_lars_trains_one_epoch() {
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let text = r#"
name = "r18"
[data]
train_subset = 64
test_subset = 64
[model]
encoder = "resnet18"
zero_init_residual = true
projector_hidden = 32
projector_dim = 16
[train]
epochs = 1
batch_size = 32
optimizer = "lars"
lr = 1.0
scale_lr = true
warmup_epochs = 0.0
[eval]
baselines = false
[eval.knn]
k = 5
[eval.probe]
epochs = 1
"#;
    let cfg = Config::parse(text, "r18").unwrap();
    let dir = RunDir::create(tmp.path(), "r18").unwrap();
    let outcome = run_alone(&cfg, &data_dir, &dir);
    assert_eq!(outcome.metrics.len(), 1);
    // 64 images in batches of 32: 2 steps; the last at the floor 0 of the cosine.
    assert_eq!(outcome.metrics[0].step, 2);
    assert!(outcome.metrics[0].loss.is_finite());
    let saved = tch::Tensor::read_safetensors(dir.weights_path()).unwrap();
    assert!(
        saved
            .iter()
            .any(|(n, _)| n == "backbone.layer4.1.bn2.running_var")
    );
    // The backbone alone, under torchvision's names.
    let backbone = tch::Tensor::read_safetensors(dir.path().join("backbone.safetensors")).unwrap();
    assert!(
        backbone
            .iter()
            .any(|(n, _)| n == "layer4.1.bn2.running_var")
    );
    assert!(backbone.iter().all(|(n, _)| !n.starts_with("projector.")));
}

#[test]
fn a_cuda_request_libtorch_cannot_serve_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("cuda.toml");
    // libtorch without CUDA refuses any CUDA device, with CUDA but no GPU it refuses with
    // libtorch's reason, and with GPUs an index past the last one fails.
    let cuda = mpcl_trainer::device::CudaSupport::probe();
    let (device, expected) = match (cuda.loaded, cuda.devices) {
        (false, _) => ("cuda", "without CUDA"),
        (true, 0) => ("cuda", "(linked with CUDA) sees no GPU"),
        (true, _) => ("cuda:99", "CUDA device(s)"),
    };
    let text = TINY.replace("[train]\n", &format!("[train]\ndevice = \"{device}\"\n"));
    std::fs::write(&config, text).unwrap();
    let stderr = failure(&train(Some(&config), None, &tmp.path().join("runs")));
    assert!(
        stderr.contains(&format!("train.device = \"{device}\"")),
        "{stderr}"
    );
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn the_online_classifier_does_not_change_training() {
    // It sees detached features and draws no randomness after the model's init, so the
    // encoder's losses are the same with and without it.
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let run = |online: bool| {
        let text = TINY.replace(
            "[train]\n",
            &format!("[train]\nepochs = 1\nonline_classifier = {online}\n"),
        );
        let text = text.replace("epochs = 2\n", "");
        let mut cfg = Config::parse(&text, "online").unwrap();
        cfg.eval.baselines = false;
        let dir = RunDir::create(tmp.path(), "online").unwrap();
        run_alone(&cfg, &data_dir, &dir)
    };
    let (with, without) = (run(true), run(false));
    assert_eq!(with.metrics[0].loss, without.metrics[0].loss);
    assert!((0.0..=1.0).contains(&with.metrics[0].online_test_top1));
    assert!(without.metrics[0].online_test_top1.is_nan());
}

#[test]
fn a_run_without_evaluation_trains_and_saves_only() {
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let text = format!("{TINY}[eval]\nenabled = false\n");
    let cfg = Config::parse(&text, "no-eval").unwrap();
    let dir = RunDir::create(tmp.path(), "no-eval").unwrap();
    let outcome = run_alone(&cfg, &data_dir, &dir);
    assert!(outcome.rows.is_empty(), "{:?}", outcome.rows);
    assert_eq!(outcome.metrics.len(), 2, "both epochs trained");
    assert!(dir.weights_path().exists());
    let report = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(report.contains("Not evaluated"), "{report}");
}

#[test]
fn mpcl_eval_reproduces_the_table_of_the_run() {
    // Oracle: the run's own evaluation of the same weights, written by `mpcl train`; both
    // paths seed libtorch's generator the same way before evaluating, so they agree exactly.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let runs = tmp.path().join("runs");
    let out = train(Some(&config), None, &runs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = only_run_dir(&runs);
    for figure in ["projection.png", "training.png"] {
        assert!(
            std::fs::metadata(run.join(figure)).unwrap().len() > 1000,
            "{figure}"
        );
    }
    let rows = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let trained = rows(&run.join("results.json"))["rows"].clone();

    let eval_on = |target: &Path, out: &Path, device: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mpcl"))
            .arg("eval")
            .args(device)
            .arg("--checkpoint")
            .arg(target)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let eval = |target: &Path, out: &Path| eval_on(target, out, &[]);
    // From the run directory (encoder.safetensors) and from its last checkpoint.
    let checkpoint = run.join("checkpoints/step-00000016");
    for (target, out) in [
        (&run, tmp.path().join("a")),
        (&checkpoint, tmp.path().join("b")),
    ] {
        let result = eval(target, &out);
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        let evaluated = rows(&out.join("results.json"));
        for i in 0..3 {
            for key in ["knn", "probe", "diagnostics"] {
                assert_eq!(evaluated[i][key], trained[i][key], "row {i}, {key}");
            }
        }
        assert!(out.join("projection.png").is_file());
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(stdout.contains("| random encoder |"), "{stdout}");
    }
    // A run whose config names a GPU evaluates on the CPU with --device cpu, to the same
    // rows; without it, it needs the GPU (here: an error, on a GPU machine: success).
    let config = run.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("device = \"cpu\""), "{text}");
    std::fs::write(
        &config,
        text.replace("device = \"cpu\"", "device = \"cuda\""),
    )
    .unwrap();
    let on_cpu = tmp.path().join("d");
    let result = eval_on(&run, &on_cpu, &["--device", "cpu"]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        rows(&on_cpu.join("results.json"))[0]["knn"],
        trained[0]["knn"]
    );
    if mpcl_trainer::device::CudaSupport::probe().devices == 0 {
        let stderr = failure(&eval(&run, &tmp.path().join("e")));
        assert!(stderr.contains("train.device = \"cuda\""), "{stderr}");
    }
    // Another data set with other channels is refused before any data is asked for: the
    // data directory here is empty.
    let stderr = failure(&eval_on(
        &run,
        &tmp.path().join("f"),
        &[
            "--device",
            "cpu",
            "--dataset",
            "cifar10",
            "--data-dir",
            "/nonexistent",
        ],
    ));
    assert!(
        stderr.contains(
            "--dataset cifar10: 3-channel images, but the model was trained on fashion-mnist's \
             1-channel ones"
        ),
        "{stderr}"
    );
    let bad = eval(tmp.path(), &tmp.path().join("c"));
    let stderr = failure(&bad);
    assert!(
        stderr.contains(&format!(
            "{}: neither a run directory",
            tmp.path().display()
        )),
        "{stderr}"
    );
}

#[test]
fn an_rgb_data_set_trains_and_evaluates_with_per_channel_normalisation() {
    // CIFAR-10 in its real binary format, extracted by hand (no manifest) at the official
    // sizes: sparse files of zero records (label 0, black), the first 640 records of the
    // first training batch and of the test batch filled with class-dependent colours.
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("data/cifar10/cifar-10-batches-bin");
    std::fs::create_dir_all(&top).unwrap();
    let record = 1 + 3 * 32 * 32;
    for (name, &size) in CIFAR10.files.iter().zip(CIFAR10.sizes) {
        let mut bytes = Vec::new();
        if matches!(*name, "data_batch_1.bin" | "test_batch.bin") {
            for r in 0..640usize {
                let class = r % 10;
                bytes.push(class as u8);
                // Channel c of class k is 20·k + 60·c plus a ramp across the image.
                for c in 0..3 {
                    bytes.extend((0..1024).map(|p| (20 * class + 60 * c + p / 16) as u8));
                }
            }
            assert_eq!(bytes.len(), 640 * record);
        }
        let path = top.join(name);
        std::fs::write(&path, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(size)
            .unwrap();
    }
    let config = tmp.path().join("rgb.toml");
    let text = TINY
        .replace("[data]\n", "[data]\ndataset = \"cifar10\"\n")
        .replace("epochs = 2\nbatch_size", "epochs = 1\nbatch_size")
        .replace(
            "[eval.knn]",
            "[augment]\nmean = [0.49, 0.48, 0.45]\nstd = [0.25, 0.24, 0.26]\n[eval.knn]",
        );
    std::fs::write(&config, text).unwrap();
    let runs = tmp.path().join("runs");
    let out = train(Some(&config), Some(&tmp.path().join("data")), &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("extracted outside mpcl"), "{stderr}");
    let results = std::fs::read_to_string(only_run_dir(&runs).join("results.md")).unwrap();
    assert!(
        results.contains("CIFAR-10") && results.contains("| SimCLR encoder (1 epoch) |"),
        "{results}"
    );
    // Each class has its own colours, so raw pixels separate the classes: the pixel baseline
    // must classify every test image, a check of the reader and labels end to end.
    assert!(results.contains("| raw pixels | 100.0 |"), "{results}");
}

#[test]
fn multi_crop_views_train_at_their_own_resolution() {
    // Two 28×28 views and two 12×12 crops per image: the loss is InfoNCE over four views,
    // each resolution forwarded separately; every method takes them.
    for method in ["simclr", "spectral", "simsiam"] {
        let cfg = Config::parse(
            &TINY
                .replace("[train]\n", &format!("[train]\nmethod = \"{method}\"\n"))
                .replace("epochs = 2\nbatch_size", "epochs = 1\nbatch_size")
                .replace(
                    "[eval.knn]",
                    "[augment.multicrop]\ncount = 2\nsize = 12\ncrop_scale = [0.05, 0.3]\n\
                     [eval.knn]",
                ),
            "multicrop",
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create(tmp.path(), "multicrop").unwrap();
        let outcome = run_alone(&cfg, &mpcl_data::default_data_dir(), &dir);
        let m = &outcome.metrics[0];
        assert!(m.loss.is_finite(), "{method}: {m:?}");
        // 8 steps of 64 images × 4 views.
        assert_eq!(m.step, 8, "{method}");
        assert!(
            (m.views_per_s * m.seconds - (8 * 64 * 4) as f64).abs() < 1.0,
            "{method}: {m:?}"
        );
    }
}

#[test]
fn bf16_autocast_trains_close_to_f32() {
    // The f32 run is the oracle. bf16 keeps 8 significant bits, so the products differ by
    // ~0.4 % each; over one epoch of 8 steps the mean loss moves by far less than 5 %, while
    // an autocast that did nothing would give the f32 losses bit for bit.
    let data_dir = mpcl_data::default_data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let run = |method: &str, precision: &str| {
        let text = TINY.replace(
            "[train]\n",
            &format!("[train]\nmethod = \"{method}\"\nprecision = \"{precision}\"\n"),
        );
        let text = format!(
            "{}[eval]\nenabled = false\n",
            text.replace("epochs = 2\n", "")
        );
        let cfg = Config::parse(&text, "precision").unwrap();
        let dir = RunDir::create(tmp.path(), "precision").unwrap();
        run_alone(&cfg, &data_dir, &dir).metrics[0].loss
    };
    for method in ["simclr", "simsiam"] {
        let (f32, bf16) = (run(method, "f32"), run(method, "bf16"));
        let relative = ((bf16 - f32) / f32).abs();
        assert!(bf16.is_finite() && f32 != bf16, "{method}: {f32} vs {bf16}");
        assert!(relative < 0.05, "{method}: {f32} vs {bf16} ({relative})");
    }
}
