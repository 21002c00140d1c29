//! An experiment as a Slurm job array: one array task per run, in the order of `--list`.
//!
//! [`write_array`] writes, into the experiment's directory, a task list ([`TASKS`]: one line
//! per run, its directory and its configuration file, separated by a tab), each run's
//! configuration (`requested.toml` in its directory, as the local runner writes it) and an
//! sbatch script ([`SCRIPT`]). Array task `i` reads line `i + 1` of the list and `exec`s
//! `mpcl train --config C --run-dir D` with the `mpcl` binary's absolute path, so a compute
//! node needs the binary (and the libtorch it links) on the shared filesystem, not cargo.
//! The trainer's own contract makes the tasks requeue-safe: a finished directory is left
//! alone, one with a checkpoint resumes from it, anything else starts afresh; and its lock
//! on the run directory keeps two tasks (or a task and a local run) out of one directory.
//!
//! Resources come from an optional `[slurm]` table of the experiment file
//! ([`SlurmSettings`]), which command-line flags override.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mpcl_data::fsutil::write_atomic;
use serde::Deserialize;
use toml::{Table, Value};

use crate::ExperimentError;
use crate::plan::{Experiment, get_path};
use crate::runner::{self, Launcher};

/// The sbatch script in the experiment's directory.
pub const SCRIPT: &str = "slurm.sbatch";
/// The task list in the experiment's directory: `run directory<TAB>config` per line.
pub const TASKS: &str = "slurm-tasks.tsv";
/// The folder of per-task logs (`slurm-<job>_<task>.out`) in the experiment's directory.
pub const LOGS: &str = "logs";

/// Resources of each array task: the `[slurm]` table of an experiment file, or the flags of
/// `cargo xtask experiment --slurm`. Unset values are left to the cluster's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct SlurmSettings {
    /// `--partition`: one partition or several joined by commas.
    pub partition: Option<String>,
    /// `--time`: the limit per task, `minutes`, `[D-]HH:MM[:SS]` or `MM:SS`.
    pub time: Option<String>,
    /// `--cpus-per-task`; also each run's `train.threads` when its config leaves it at 0.
    pub cpus: Option<u32>,
    /// `--mem`: memory per node, a number with an optional unit K, M, G or T (default M).
    pub mem: Option<String>,
    /// `--gpus`: GPUs per task.
    pub gpus: Option<u32>,
    /// `--account` to charge.
    pub account: Option<String>,
}

impl SlurmSettings {
    /// The `[slurm]` table of an experiment file (all unset without one).
    ///
    /// # Errors
    /// [`ExperimentError::File`] naming the file and the key for an unknown key or a bad
    /// value; [`ExperimentError::Io`] for a file that cannot be read.
    pub fn from_file(file: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(file).map_err(|e| ExperimentError::io(file, e))?;
        let table: Table = toml::from_str(&text)
            .map_err(|e| ExperimentError::file(file, e.to_string().trim_end().to_owned()))?;
        let Some(slurm) = table.get("slurm") else {
            return Ok(Self::default());
        };
        let settings: Self = slurm.clone().try_into().map_err(|e: toml::de::Error| {
            ExperimentError::file(file, format!("[slurm]: {}", e.to_string().trim_end()))
        })?;
        settings
            .check()
            .map_err(|e| ExperimentError::file(file, format!("slurm.{e}")))?;
        Ok(settings)
    }

    /// These settings with every value that `over` sets replaced by it.
    pub fn overridden_by(self, over: Self) -> Self {
        Self {
            partition: over.partition.or(self.partition),
            time: over.time.or(self.time),
            cpus: over.cpus.or(self.cpus),
            mem: over.mem.or(self.mem),
            gpus: over.gpus.or(self.gpus),
            account: over.account.or(self.account),
        }
    }

    /// Checks every value; the error names the key and the value (`time = "abc": …`).
    ///
    /// # Errors
    /// A message naming the first bad key.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.,-".contains(c))
        };
        for (key, value) in [("partition", &self.partition), ("account", &self.account)] {
            if let Some(v) = value.as_deref().filter(|v| !name_ok(v)) {
                return Err(format!(
                    "{key} = {v:?}: expected letters, digits and `_ . , -`"
                ));
            }
        }
        if let Some(t) = self.time.as_deref().filter(|t| !time_ok(t)) {
            return Err(format!(
                "time = {t:?}: expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
            ));
        }
        if let Some(m) = self.mem.as_deref().filter(|m| !mem_ok(m)) {
            return Err(format!(
                "mem = {m:?}: expected a number of megabytes, or a number with K, M, G or T"
            ));
        }
        for (key, value) in [("cpus", self.cpus), ("gpus", self.gpus)] {
            if value == Some(0) {
                return Err(format!("{key} = 0: expected at least 1 (or leave it out)"));
            }
        }
        Ok(())
    }

    /// The `#SBATCH` lines for these settings.
    fn directives(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut add = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                lines.push(format!("#SBATCH --{flag}={v}"));
            }
        };
        add("partition", self.partition.clone());
        add("account", self.account.clone());
        add("time", self.time.clone());
        add("cpus-per-task", self.cpus.map(|n| n.to_string()));
        add("mem", self.mem.clone());
        add("gpus", self.gpus.map(|n| n.to_string()));
        lines
    }
}

/// Slurm's time formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`, digits only.
fn time_ok(t: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let max_parts = 3;
    days.is_none_or(digits) && parts.len() <= max_parts && parts.iter().all(|p| digits(p))
}

/// A memory size: digits with an optional unit K, M, G or T.
fn mem_ok(m: &str) -> bool {
    let number = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    m.len() - number.len() <= 1 && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// What [`write_array`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayJob {
    /// The sbatch script.
    pub script: PathBuf,
    /// The task list.
    pub tasks: PathBuf,
    /// The folder of per-task logs.
    pub logs: PathBuf,
    /// Array tasks: one per run.
    pub count: usize,
}

/// Where and how the tasks run.
#[derive(Debug, Clone)]
pub struct ArraySpec<'a> {
    /// The `mpcl` binary, absolute, on a filesystem the compute nodes share.
    pub mpcl: &'a Path,
    /// Passed as `--data-dir` when set.
    pub data_dir: Option<&'a Path>,
    /// Exported as `$MPCL_DATA_DIR` when `data_dir` is unset, so the compute nodes resolve
    /// the data directory as the submitting machine did (a run's `data.dir` still wins).
    pub default_data_dir: &'a Path,
    /// The resources of each task.
    pub settings: &'a SlurmSettings,
}

/// Writes the task list, each run's `requested.toml` and the sbatch script for `exp` into
/// `exp_dir` (absolute); returns what it wrote. Every file is written atomically, so a
/// second call (after editing resources, say) replaces them whole.
///
/// # Errors
/// [`ExperimentError::Run`] for a run directory holding another configuration (nothing is
/// written then); [`ExperimentError::File`] for a path the script cannot carry (not UTF-8,
/// or with a tab or newline; the logs folder also without spaces, quotes or `%`);
/// [`ExperimentError::Io`]/[`ExperimentError::Write`] for files that cannot be written.
pub fn write_array(
    exp: &Experiment,
    exp_dir: &Path,
    spec: &ArraySpec<'_>,
) -> Result<ArrayJob, ExperimentError> {
    spec.settings
        .check()
        .map_err(|e| ExperimentError::file(&exp.file, format!("slurm.{e}")))?;
    let launcher = Launcher {
        mpcl: spec.mpcl.to_owned(),
        data_dir: spec.data_dir.map(Path::to_owned),
        jobs: 1,
        cores: 1,
    };
    // Refuses before writing anything if a directory holds another configuration.
    runner::states(exp, exp_dir, &launcher)?;
    let text = |p: &Path| -> Result<String, ExperimentError> {
        match p.to_str() {
            Some(s) if !s.contains(['\t', '\n', '\r']) => Ok(s.to_owned()),
            _ => Err(ExperimentError::file(
                &exp.file,
                format!(
                    "{}: a Slurm task list needs UTF-8 paths without tabs or newlines",
                    p.display()
                ),
            )),
        }
    };
    let mut tasks = String::new();
    for run in &exp.runs {
        let dir = exp_dir.join(run.rel_dir());
        let table = task_table(&run.table, spec.settings.cpus);
        let config = runner::write_requested(&dir, &table)?;
        writeln!(tasks, "{}\t{}", text(&dir)?, text(&config)?).expect("writing to a String");
    }
    let tasks_path = exp_dir.join(TASKS);
    write_atomic(&tasks_path, tasks.as_bytes())?;
    let logs = exp_dir.join(LOGS);
    std::fs::create_dir_all(&logs).map_err(|e| ExperimentError::io(&logs, e))?;
    let logs_text = text(&logs)?;
    if logs_text.contains([' ', '"', '\'', '%', '\\']) {
        return Err(ExperimentError::file(
            &exp.file,
            format!(
                "{logs_text}: #SBATCH --output cannot carry spaces, quotes, `\\` or `%`: \
                 choose another --runs-dir"
            ),
        ));
    }
    let script = script(exp, &tasks_path, &logs_text, spec)?;
    let script_path = exp_dir.join(SCRIPT);
    write_atomic(&script_path, script.as_bytes())?;
    Ok(ArrayJob {
        script: script_path,
        tasks: tasks_path,
        logs,
        count: exp.runs.len(),
    })
}

/// A run's configuration for an array task: `train.threads` set to the task's CPUs when
/// the configuration leaves it at 0 (all cores), which on a shared node are not all its own.
fn task_table(table: &Table, cpus: Option<u32>) -> Table {
    let mut table = table.clone();
    let unset = matches!(
        get_path(&table, &["train", "threads"]),
        None | Some(Value::Integer(0))
    );
    if let (Some(cpus), true) = (cpus, unset) {
        let train = table
            .entry("train")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(train) = train {
            train.insert("threads".into(), Value::Integer(i64::from(cpus)));
        }
    }
    table
}

/// The sbatch script's text.
fn script(
    exp: &Experiment,
    tasks: &Path,
    logs: &str,
    spec: &ArraySpec<'_>,
) -> Result<String, ExperimentError> {
    let quote = |p: &Path| -> Result<String, ExperimentError> {
        p.to_str()
            .and_then(|s| shlex::try_quote(s).ok())
            .map(|q| q.into_owned())
            .ok_or_else(|| {
                ExperimentError::file(
                    &exp.file,
                    format!("{}: not a path a shell script can quote", p.display()),
                )
            })
    };
    let n = exp.runs.len();
    let mut s = String::new();
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line("#!/bin/bash");
    line(&format!(
        "# Written by `cargo xtask experiment FILE --slurm` for experiment {}, {n} runs, one",
        exp.name
    ));
    line(&format!(
        "# array task each (FILE: {}).",
        exp.file.display()
    ));
    line("# Task i trains the run on line i + 1 of the task list with the mpcl binary below");
    line("# (no cargo needed here); a requeued task resumes its run from the newest");
    line("# checkpoint and a finished one exits at once.");
    line(&format!("#SBATCH --job-name=mpcl-{}", exp.name));
    line(&format!("#SBATCH --array=0-{}", n.saturating_sub(1)));
    line(&format!("#SBATCH --output={logs}/slurm-%A_%a.out"));
    line("#SBATCH --open-mode=append");
    line("#SBATCH --requeue");
    for d in spec.settings.directives() {
        line(&d);
    }
    line("set -euo pipefail");
    line(&format!("tasks={}", quote(tasks)?));
    line(&format!("mpcl={}", quote(spec.mpcl)?));
    match spec.data_dir {
        Some(d) => line(&format!("data=(--data-dir {})", quote(d)?)),
        None => {
            line("data=()");
            line(&format!(
                "export {}={}",
                mpcl_data::DATA_DIR_ENV,
                quote(spec.default_data_dir)?
            ));
        }
    }
    line(": \"${SLURM_ARRAY_TASK_ID:?is unset: submit this script with sbatch}\"");
    line("line=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$tasks\")");
    line("if [[ -z $line ]]; then");
    line("  echo \"$tasks: no line for array task $SLURM_ARRAY_TASK_ID\" >&2");
    line("  exit 2");
    line("fi");
    line("IFS=$'\\t' read -r dir config <<<\"$line\"");
    line(
        "echo \"mpcl: job ${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID} \
         (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): $dir\"",
    );
    line("exec \"$mpcl\" train --config \"$config\" --run-dir \"$dir\" \"${data[@]}\"");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<SlurmSettings, String> {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("g.toml");
        std::fs::write(&file, text).unwrap();
        SlurmSettings::from_file(&file).map_err(|e| e.to_string())
    }

    #[test]
    fn the_slurm_table_is_read_checked_and_overridden() {
        assert_eq!(
            settings("[experiment]\n").unwrap(),
            SlurmSettings::default()
        );
        let s = settings(
            "[slurm]\npartition = \"gpu\"\ntime = \"1-02:00:00\"\ncpus = 4\nmem = \"16G\"\n\
             gpus = 1\n",
        )
        .unwrap();
        assert_eq!(s.time.as_deref(), Some("1-02:00:00"));
        let over = SlurmSettings {
            time: Some("30".into()),
            ..SlurmSettings::default()
        };
        let merged = s.clone().overridden_by(over);
        assert_eq!(merged.time.as_deref(), Some("30"));
        assert_eq!(merged.partition.as_deref(), Some("gpu"));
        assert_eq!(
            merged.directives(),
            [
                "#SBATCH --partition=gpu",
                "#SBATCH --time=30",
                "#SBATCH --cpus-per-task=4",
                "#SBATCH --mem=16G",
                "#SBATCH --gpus=1",
            ]
        );
        for (text, wanted) in [
            ("[slurm]\ntime = \"1h\"\n", "slurm.time = \"1h\""),
            ("[slurm]\ntime = \"1:2:3:4\"\n", "slurm.time = \"1:2:3:4\""),
            ("[slurm]\nmem = \"16GB\"\n", "slurm.mem = \"16GB\""),
            ("[slurm]\ncpus = 0\n", "slurm.cpus = 0"),
            (
                "[slurm]\npartition = \"a b\"\n",
                "slurm.partition = \"a b\"",
            ),
            ("[slurm]\ncpu = 2\n", "unknown field `cpu`"),
        ] {
            let err = settings(text).unwrap_err();
            assert!(err.contains("g.toml: ") && err.contains(wanted), "{err}");
        }
        for t in ["90", "10:00", "02:00:00", "3-12", "3-12:30", "3-12:30:00"] {
            assert!(time_ok(t), "{t}");
        }
        for m in ["4000", "16G", "512m"] {
            assert!(mem_ok(m), "{m}");
        }
    }

    #[test]
    fn threads_follow_the_cpus_unless_the_config_sets_them() {
        let threads = |text: &str, cpus| {
            let t: Table = toml::from_str(text).unwrap();
            get_path(&task_table(&t, cpus), &["train", "threads"]).cloned()
        };
        assert_eq!(threads("", Some(4)), Some(Value::Integer(4)));
        assert_eq!(
            threads("[train]\nthreads = 0\n", Some(4)),
            Some(Value::Integer(4))
        );
        assert_eq!(
            threads("[train]\nthreads = 2\n", Some(4)),
            Some(Value::Integer(2))
        );
        assert_eq!(threads("", None), None);
    }

    #[test]
    fn the_script_runs_line_task_id_plus_one_of_the_task_list() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("g.toml");
        let text = "[experiment]\nname = \"g\"\n[axes]\nseed = [0, 1, 2]\n[slurm]\ncpus = 2\n";
        std::fs::write(&file, text).unwrap();
        let exp = Experiment::load(&file).unwrap();
        let exp_dir = tmp.path().join("runs/g");
        let settings = SlurmSettings::from_file(&file).unwrap();
        let spec = ArraySpec {
            mpcl: Path::new("/opt/my mpcl/mpcl"),
            data_dir: None,
            default_data_dir: Path::new("/shared/data"),
            settings: &settings,
        };
        let job = write_array(&exp, &exp_dir, &spec).unwrap();
        assert_eq!(job.count, 3);
        let script = std::fs::read_to_string(&job.script).unwrap();
        for wanted in [
            "#SBATCH --array=0-2\n",
            &format!(
                "#SBATCH --output={}/logs/slurm-%A_%a.out\n",
                exp_dir.display()
            ),
            "#SBATCH --requeue\n",
            "#SBATCH --cpus-per-task=2\n",
            "mpcl='/opt/my mpcl/mpcl'\n",
            "export MPCL_DATA_DIR=/shared/data\n",
        ] {
            assert!(script.contains(wanted), "{wanted} missing from:\n{script}");
        }
        // The order of --list; each line names the run and its requested.toml, which holds
        // the run's table with the threads set to the CPUs.
        let tasks = std::fs::read_to_string(&job.tasks).unwrap();
        let lines: Vec<&str> = tasks.lines().collect();
        assert_eq!(lines.len(), 3);
        for (line, run) in lines.iter().zip(&exp.runs) {
            let dir = exp_dir.join(run.rel_dir());
            let config = dir.join(crate::state::REQUESTED);
            assert_eq!(*line, format!("{}\t{}", dir.display(), config.display()));
            let written: Table = toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
            assert_eq!(written, task_table(&run.table, Some(2)));
        }

        // The script itself, with a stand-in mpcl that prints its arguments.
        let fake = tmp.path().join("fake-mpcl");
        std::fs::write(&fake, "#!/bin/sh\necho \"$MPCL_DATA_DIR $*\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let spec = ArraySpec {
            mpcl: &fake,
            ..spec
        };
        let job = write_array(&exp, &exp_dir, &spec).unwrap();
        let out = std::process::Command::new("bash")
            .arg(&job.script)
            .env("SLURM_ARRAY_TASK_ID", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (dir, config) = lines[1].split_once('\t').unwrap();
        assert!(
            stdout.contains(&format!(
                "/shared/data train --config {config} --run-dir {dir}\n"
            )),
            "{stdout}"
        );
        let out = std::process::Command::new("bash")
            .arg(&job.script)
            .env("SLURM_ARRAY_TASK_ID", "3")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no line for array task 3"));
    }
}
