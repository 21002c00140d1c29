//! An experiment as a Slurm job array, without Slurm: a stand-in `sbatch` reads the
//! generated script's `#SBATCH` lines and runs each array task here with the environment
//! Slurm gives a task. One task is killed (SIGKILL) after a mid-epoch checkpoint and run
//! again as a requeue would; it must end bit for bit where an uninterrupted run of the same
//! configuration ends (the oracle), and the report is rebuilt from the run directories. A
//! task whose run directory is locked by another process fails without touching it.
//! The data is the first images of the real Fashion-MNIST, which `cargo xtask test`
//! provisions.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mpcl_experiment::runner::{self, Launcher};
use mpcl_experiment::slurm::{self, ArraySpec, SlurmSettings};
use mpcl_experiment::{Experiment, Report, RunState};

mod common;
use common::assert_same_run;

/// Two seeds of a tiny run: 256 images in batches of 64 are 4 steps an epoch, 2 epochs,
/// a checkpoint every 2 steps (step 6 is mid-epoch 2).
const GRID: &str = r#"
[experiment]
name = "array"
[base.data]
train_subset = 256
test_subset = 128
[base.model]
widths = [8, 16]
projector_hidden = 32
projector_dim = 16
[base.train]
epochs = 2
batch_size = 64
log_every = 2
[base.eval.knn]
k = 20
[base.eval.probe]
epochs = 2
[base.checkpoint]
every_steps = 2
keep_last = 2
[axes]
seed = [0, 1]
[slurm]
cpus = 1
time = "10"
"#;

/// What `sbatch` reads from a script: the `#SBATCH` options before the first command.
struct StandInSbatch {
    script: PathBuf,
    job_id: u64,
    options: BTreeMap<String, String>,
    array: Vec<u32>,
}

impl StandInSbatch {
    /// Parses the script as `sbatch` would; `job_id` is the array's job ID (`%A`).
    fn submit(script: &Path, job_id: u64) -> Self {
        let text = std::fs::read_to_string(script).unwrap();
        let mut options = BTreeMap::new();
        for line in text.lines().skip(1) {
            let line = line.trim();
            if !line.starts_with('#') && !line.is_empty() {
                break; // sbatch stops at the first command
            }
            if let Some(opt) = line.strip_prefix("#SBATCH --") {
                let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
                options.insert(key.to_owned(), value.to_owned());
            }
        }
        // `--array=a-b`, `a,b,…` or either with a `%limit`, as sbatch accepts them.
        let spec = options["array"].split('%').next().unwrap().to_owned();
        let mut array = Vec::new();
        for part in spec.split(',') {
            match part.split_once('-') {
                Some((a, b)) => array.extend(a.parse::<u32>().unwrap()..=b.parse().unwrap()),
                None => array.push(part.parse().unwrap()),
            }
        }
        Self {
            script: script.to_owned(),
            job_id,
            options,
            array,
        }
    }

    /// The array task `index` as Slurm starts it (its `restart`-th requeue when > 0):
    /// `bash SCRIPT` with the task's environment, output appended to `--output`.
    fn task(&self, index: u32, restart: u32) -> Command {
        let position = self.array.iter().position(|&i| i == index).unwrap();
        let task_job_id = self.job_id + position as u64;
        let log = self.options["output"]
            .replace("%A", &self.job_id.to_string())
            .replace("%a", &index.to_string())
            .replace("%j", &task_job_id.to_string());
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap()
        };
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script)
            .env("SLURM_ARRAY_JOB_ID", self.job_id.to_string())
            .env("SLURM_ARRAY_TASK_ID", index.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", self.array.len().to_string())
            .env("SLURM_ARRAY_TASK_MIN", self.array[0].to_string())
            .env(
                "SLURM_ARRAY_TASK_MAX",
                self.array.last().unwrap().to_string(),
            )
            .env("SLURM_JOB_ID", task_job_id.to_string())
            .env("SLURM_JOBID", task_job_id.to_string())
            .env("SLURM_JOB_NAME", &self.options["job-name"])
            .env("SLURM_SUBMIT_DIR", std::env::current_dir().unwrap())
            .env("SLURM_NTASKS", "1")
            .stdout(Stdio::from(open()))
            .stderr(Stdio::from(open()));
        if let Some(cpus) = self.options.get("cpus-per-task") {
            cmd.env("SLURM_CPUS_PER_TASK", cpus);
        }
        if restart > 0 {
            cmd.env("SLURM_RESTART_COUNT", restart.to_string());
        }
        cmd
    }
}

#[test]
fn an_array_task_killed_and_requeued_ends_as_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("array.toml");
    std::fs::write(&file, GRID).unwrap();
    let exp = Experiment::load(&file).unwrap();
    let exp_dir = tmp.path().join("runs/array");
    let settings = SlurmSettings::from_file(&file).unwrap();
    let default_data = mpcl_data::default_data_dir();
    let mpcl = PathBuf::from(env!("CARGO_BIN_EXE_mpcl"));
    let spec = ArraySpec {
        mpcl: &mpcl,
        data_dir: None,
        default_data_dir: &default_data,
        settings: &settings,
    };
    let job = slurm::write_array(&exp, &exp_dir, &spec).unwrap();
    let sbatch = StandInSbatch::submit(&job.script, 4242);
    assert_eq!(sbatch.array, [0, 1]);
    assert_eq!(sbatch.options["cpus-per-task"], "1");
    assert_eq!(sbatch.options["time"], "10");
    assert!(sbatch.options.contains_key("requeue"));
    let dirs: Vec<PathBuf> = exp.runs.iter().map(|r| exp_dir.join(r.rel_dir())).collect();

    // Task 1 runs through.
    let status = sbatch.task(1, 0).status().unwrap();
    assert!(status.success(), "task 1: {status}");
    assert!(dirs[1].join("results.json").exists());

    // Two tasks on one run directory: while another process holds the trainer's lock (this
    // test, standing in for a duplicate task), task 0 fails at once, naming the lock file,
    // and leaves the directory as it was.
    let lock_path = dirs[0].join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.try_lock().unwrap();
    assert!(!sbatch.task(0, 0).status().unwrap().success());
    let out = std::fs::read_to_string(job.logs.join("slurm-4242_0.out")).unwrap();
    assert!(
        out.contains(&format!(
            "another mpcl process holds {}",
            lock_path.display()
        )),
        "{out}"
    );
    assert!(!dirs[0].join("checkpoints").exists());
    drop(lock);

    // Task 0 is killed once its mid-epoch checkpoint of step 6 exists (the script `exec`s
    // mpcl, so the kill reaches the trainer itself), then requeued.
    let mut child = sbatch.task(0, 0).spawn().unwrap();
    let step = dirs[0].join("checkpoints/step-00000006");
    let start = Instant::now();
    while !step.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "task 0 ended before step 6"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint at step 6"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(!dirs[0].join("results.json").exists());
    let launcher = Launcher {
        mpcl: mpcl.clone(),
        data_dir: None,
        jobs: 1,
        cores: 1,
    };
    let states = runner::states(&exp, &exp_dir, &launcher).unwrap();
    assert_eq!(states, [RunState::Resumable, RunState::Finished]);
    let status = sbatch.task(0, 1).status().unwrap();
    assert!(status.success(), "requeued task 0: {status}");
    let log = std::fs::read_to_string(dirs[0].join("log.txt")).unwrap();
    assert!(log.contains("resuming from"), "{log}");
    let out = std::fs::read_to_string(job.logs.join("slurm-4242_0.out")).unwrap();
    assert!(
        out.contains("mpcl: job 4242_0 (restart 0)")
            && out.contains("mpcl: job 4242_0 (restart 1)"),
        "both launches append to the task's log:\n{out}"
    );

    // The oracle: the same configuration (the task list's file) trained without a break.
    let tasks = std::fs::read_to_string(&job.tasks).unwrap();
    let (dir, config) = tasks.lines().next().unwrap().split_once('\t').unwrap();
    assert_eq!(Path::new(dir), dirs[0]);
    let straight = tmp.path().join("straight");
    let out = Command::new(&mpcl)
        .arg("train")
        .arg("--config")
        .arg(config)
        .arg("--run-dir")
        .arg(&straight)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_run(&straight, &dirs[0]);

    // A finished task requeued by mistake leaves its run alone.
    let before = std::fs::read(dirs[1].join("results.json")).unwrap();
    assert!(sbatch.task(1, 1).status().unwrap().success());
    assert_eq!(std::fs::read(dirs[1].join("results.json")).unwrap(), before);
    let out = std::fs::read_to_string(job.logs.join("slurm-4242_1.out")).unwrap();
    assert!(out.contains("holds a finished run"), "{out}");

    // The report, rebuilt from the run directories: both seeds of the one configuration.
    let report = Report::build(&exp, &exp_dir).unwrap();
    let written = report.write(&exp_dir).unwrap();
    assert!(written.contains(&exp_dir.join("report.md")), "{written:?}");
    let row = report.rows.iter().find(|r| r.kind == "trained").unwrap();
    assert_eq!((row.seeds_planned, row.per_seed.len()), (2, 2));
    assert!(row.probe_top1.is_some() && row.knn_top1.is_some());
}
