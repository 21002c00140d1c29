//! Checkpoints and faults, end to end through the `mpcl` binary on a small subset of the real
//! Fashion-MNIST (provisioned by `cargo xtask test`): a run stopped, killed (SIGKILL) or
//! starved of disk and then resumed ends bit for bit where an uninterrupted run ends. The
//! oracle of every comparison is that uninterrupted run, made once per test binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tch::Tensor;

mod common;
use common::assert_same_run;

/// 512 images in batches of 64: 8 steps an epoch, 3 epochs, a checkpoint every 3 steps (so
/// most land mid-epoch) besides those at epoch ends.
const SMALL: &str = r#"
name = "resume"
[data]
train_subset = 512
test_subset = 256
[model]
widths = [8, 16]
projector_hidden = 32
projector_dim = 16
[train]
epochs = 3
batch_size = 64
threads = 1
log_every = 4
[eval.knn]
k = 20
[eval.probe]
epochs = 3
[checkpoint]
every_steps = 3
keep_last = 2
"#;

fn mpcl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpcl"))
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "mpcl failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.in.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `mpcl train --config <config> --run-dir <run>` plus `extra` arguments.
fn train(config: &Path, run: &Path, extra: &[&str]) -> Command {
    let mut cmd = mpcl();
    cmd.arg("train")
        .arg("--config")
        .arg(config)
        .arg("--run-dir")
        .arg(run)
        .args(extra);
    cmd
}

/// The uninterrupted run of [`SMALL`], made once.
fn straight() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let config = write_config(&tmp, SMALL);
        let run = tmp.join("run");
        ok(train(&config, &run, &[]).output().unwrap());
        run
    })
}

/// Starts `mpcl train` on `run` in the background and returns it once `path` exists; fails
/// if the run ends first or nothing appears within 5 minutes.
fn spawn_until(config: &Path, run: &Path, path: &Path) -> std::process::Child {
    let mut child = train(config, run, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {path:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(300), "no {path:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// The complete checkpoints of a run, by step.
fn checkpoints(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn stopping_after_an_epoch_and_resuming_equals_the_straight_run() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), SMALL);
    let run = tmp.path().join("run");
    let out = ok(train(&config, &run, &["--stop-after-epoch", "1"])
        .output()
        .unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stopped after epoch 1"), "{stdout}");
    assert!(!run.join("results.json").exists());
    // Steps 3 and 6 mid-epoch, then the epoch end at 8; two kept.
    assert_eq!(checkpoints(&run), ["step-00000006", "step-00000008"]);

    // --resume reads the run's own config.toml.
    let mut resume = mpcl();
    resume.arg("train").arg("--resume").arg(&run);
    ok(resume.output().unwrap());
    assert_same_run(straight(), &run);
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert!(
        log.contains("resuming from"),
        "the log is appended to: {log}"
    );

    // A finished run is left alone.
    let again = ok(train(&config, &run, &[]).output().unwrap());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("holds a finished run"), "{stdout}");
}

#[test]
fn sigkill_mid_epoch_and_mid_save_then_resume_equals_the_straight_run() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), SMALL);
    let run = tmp.path().join("run");
    // Kill the process as soon as the checkpoint of each of these steps exists: at that
    // moment it is training the next step (mid-epoch) or saving.
    for step in ["step-00000003", "step-00000009", "step-00000015"] {
        let mut child = spawn_until(&config, &run, &run.join("checkpoints").join(step));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
    }
    // What a kill during a save leaves behind: a partial directory, here with a truncated
    // model file and a step number newer than any complete checkpoint.
    let newest = checkpoints(&run).pop().unwrap();
    let partial = run.join("checkpoints/.partial-step-00000099-1");
    std::fs::create_dir(&partial).unwrap();
    let model = std::fs::read(
        run.join("checkpoints")
            .join(&newest)
            .join("model.safetensors"),
    );
    std::fs::write(partial.join("model.safetensors"), &model.unwrap()[..100]).unwrap();

    ok(train(&config, &run, &[]).output().unwrap());
    assert!(!partial.exists(), "the partial checkpoint is removed");
    assert_same_run(straight(), &run);
}

#[test]
fn aggregator_state_resumes_exactly() {
    // A multi-stage bank (mixed in from epoch 2) and a rewiring queue are state a resume
    // must restore: the oracle is the same config trained without interruption.
    for (table, entries) in [
        (
            "[aggregators.multi-stage]\nstart_epoch = 2\n",
            ["bank", "filled"],
        ),
        (
            "[aggregators.rewiring]\nqueue_size = 256\n",
            ["queue", "cursor"],
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let config = write_config(tmp.path(), &format!("{SMALL}{table}"));
        let (straight, stopped) = (tmp.path().join("straight"), tmp.path().join("stopped"));
        ok(train(&config, &straight, &[]).output().unwrap());
        // Stopped after epoch 1 (before the bank is mixed in), then resumed to the end.
        ok(train(&config, &stopped, &["--stop-after-epoch", "1"])
            .output()
            .unwrap());
        let saved = stopped.join("checkpoints/step-00000008/aggregator.safetensors");
        let names: Vec<String> = Tensor::read_safetensors(&saved)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for entry in entries {
            assert!(
                names.iter().any(|n| n.contains(entry)),
                "{table}: {names:?}"
            );
        }
        ok(train(&config, &stopped, &[]).output().unwrap());
        assert_same_run(&straight, &stopped);
    }
}

#[test]
fn two_processes_cannot_train_in_one_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), SMALL);
    let run = tmp.path().join("run");
    let mut first = spawn_until(&config, &run, &run.join("checkpoints"));
    let second = train(&config, &run, &[]).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("{} is in use", run.display())) && stderr.contains(".lock"),
        "{stderr}"
    );
    // The lock dies with its process: the directory is usable again and resumes.
    ok(train(&config, &run, &[]).output().unwrap());
    assert_same_run(straight(), &run);
}

#[test]
fn a_config_change_that_breaks_the_resume_is_named_and_harmless_ones_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), SMALL);
    let run = tmp.path().join("run");
    ok(train(&config, &run, &["--stop-after-epoch", "1"])
        .output()
        .unwrap());
    let changed = write_config(
        tmp.path(),
        &SMALL
            .replace("projector_dim = 16", "projector_dim = 24")
            .replace("epochs = 3\nbatch_size", "epochs = 4\nbatch_size"),
    );
    let out = train(&changed, &run, &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for change in ["model.projector_dim: 16 → 24", "train.epochs: 3 → 4"] {
        assert!(stderr.contains(change), "{change}: {stderr}");
    }
    // Logging frequency and evaluation settings do not touch training: resumed, listed.
    let harmless = write_config(
        tmp.path(),
        &SMALL
            .replace("log_every = 4", "log_every = 2")
            .replace("k = 20", "k = 10"),
    );
    ok(train(&harmless, &run, &[]).output().unwrap());
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert!(log.contains("train.log_every: 4 → 2"), "{log}");
    assert!(log.contains("eval.knn.k: 20 → 10"), "{log}");
}

#[test]
fn a_corrupt_checkpoint_is_named_and_set_aside_for_the_one_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), SMALL);
    let run = tmp.path().join("run");
    ok(train(&config, &run, &["--stop-after-epoch", "1"])
        .output()
        .unwrap());
    assert_eq!(checkpoints(&run), ["step-00000006", "step-00000008"]);
    // Flatten one matrix-shaped Adam buffer in the newest optimizer state.
    let dir = run.join("checkpoints/step-00000008");
    let path = dir.join("optimizer.safetensors");
    let state = Tensor::read_safetensors(&path).unwrap();
    let wrong = state
        .iter()
        .find(|(n, t)| n.ends_with(".exp_avg") && t.dim() >= 2)
        .map(|(n, _)| n.clone())
        .unwrap();
    let state: Vec<_> = state
        .into_iter()
        .map(|(n, t)| {
            let t = if n == wrong { t.flatten(0, -1) } else { t };
            (n, t)
        })
        .collect();
    Tensor::write_safetensors(&state, &path).unwrap();

    // Without an older checkpoint, the run stops, naming the file and the entry.
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(alone.join("checkpoints")).unwrap();
    for file in ["config.toml", "log.txt"] {
        std::fs::copy(run.join(file), alone.join(file)).unwrap();
    }
    let copy = alone.join("checkpoints/step-00000008");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let out = train(&config, &alone, &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named = copy.join("optimizer.safetensors");
    assert!(
        stderr.contains(&format!("checkpoint {}", named.display())) && stderr.contains(&wrong),
        "{stderr}"
    );

    // With one, the damaged checkpoint is set aside, kept, and the run resumes from step 6
    // to end where the uninterrupted run ends.
    ok(train(&config, &run, &[]).output().unwrap());
    assert_same_run(straight(), &run);
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    let aside = run.join("checkpoints/corrupt-step-00000008");
    assert!(
        log.contains(&wrong)
            && log.contains(&format!("set aside as {}", aside.display()))
            && log.contains("step-00000006"),
        "{log}"
    );
    assert!(aside.join("optimizer.safetensors").exists());
}

#[test]
fn a_full_disk_while_saving_keeps_the_previous_checkpoint() {
    // The run directory lives on a tmpfs too small for a second checkpoint, mounted in a
    // private mount namespace (`unshare`, util-linux); the test fails if that is unavailable.
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &SMALL.replace("every_steps = 3", "every_steps = 0"),
    );
    // Sizes from a run on the real disk stopped after epoch 1: everything then, and one
    // checkpoint.
    let probe = tmp.path().join("probe");
    ok(train(&config, &probe, &["--stop-after-epoch", "1"])
        .output()
        .unwrap());
    let ck = probe.join("checkpoints/step-00000008");
    let (total, one) = (disk_usage(&probe), disk_usage(&ck));
    let size = total + one / 2;

    let mount = tmp.path().join("small-disk");
    let saved = tmp.path().join("saved");
    std::fs::create_dir(&mount).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs '{m}' || exit 90\n\
         '{bin}' train --config '{c}' --run-dir '{m}/run'\n\
         rc=$?\ncp -a '{m}/run' '{s}'\nexit $rc",
        m = mount.display(),
        bin = env!("CARGO_BIN_EXE_mpcl"),
        c = config.display(),
        s = saved.display(),
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(90), "tmpfs not mounted: {stderr}");
    assert!(!out.status.success(), "the run must fail: {stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("checkpoints/.partial-"),
        "the error names the file and the cause: {stderr}"
    );
    // Epoch 1's checkpoint is intact, nothing partial is left, and resuming it on a disk
    // with room ends where the uninterrupted run of the same config ends.
    assert_eq!(checkpoints(&saved), ["step-00000008"], "{stderr}");
    let resumed = tmp.path().join("resumed");
    std::fs::rename(&saved, &resumed).unwrap();
    ok(train(&config, &resumed, &[]).output().unwrap());
    let straight = tmp.path().join("straight");
    ok(train(&config, &straight, &[]).output().unwrap());
    assert_same_run(&straight, &resumed);
}

/// Bytes a directory tree occupies on disk (allocated blocks, as a size limit counts them).
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| disk_usage(&e.unwrap().path()))
        .sum()
}

#[test]
fn a_diverging_loss_stops_naming_the_step_and_the_last_good_checkpoint() {
    // An absurd learning rate: the first update throws the weights to ~1e30, and the loss
    // of the next step overflows.
    let diverging = SMALL
        .replace("[train]\n", "[train]\nlr = 1e30\nwarmup_epochs = 0.0\n")
        .replace("every_steps = 3", "every_steps = 1");
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &diverging);
    let run = tmp.path().join("run");
    let out = train(&config, &run, &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (at, checkpoint) = parse_divergence(&stderr);
    assert!(at >= 2, "{stderr}");
    // The checkpoint named is the last step before the bad one, and it is intact.
    assert_eq!(checkpoint, format!("step-{:08}", at - 1), "{stderr}");
    assert_eq!(checkpoints(&run).last().unwrap(), &checkpoint);

    // With `skip`, such steps are counted and the run goes on; no update is made from a
    // non-finite loss, so the weights stay finite.
    let skipping = diverging.replace("[train]\n", "[train]\non_nonfinite = \"skip\"\n");
    let config = write_config(
        tmp.path(),
        &skipping.replace("[eval.knn]", "[eval]\nenabled = false\n[eval.knn]"),
    );
    let run = tmp.path().join("skip");
    ok(train(&config, &run, &[]).output().unwrap());
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let skipped: usize = metrics
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<usize>().unwrap())
        .sum();
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert_eq!(skipped, log.matches("step skipped").count(), "{metrics}");
    // Every step after the divergence is skipped: all 24 but the first (at - 1) ones.
    assert_eq!(skipped, 24 - (at - 1), "{metrics}");
    for (name, t) in Tensor::read_safetensors(run.join("encoder.safetensors")).unwrap() {
        assert!(
            t.isfinite().all().int64_value(&[]) == 1,
            "{name} has non-finite values"
        );
    }
}

/// The step and the checkpoint directory named by a divergence error.
fn parse_divergence(stderr: &str) -> (usize, String) {
    let error = stderr
        .split("the loss became")
        .nth(1)
        .unwrap_or_else(|| panic!("no divergence in: {stderr}"));
    let step = error
        .split("step ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no step in: {stderr}"));
    let checkpoint = error
        .split("checkpoint is ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("no checkpoint in: {stderr}"));
    (step, checkpoint)
}
