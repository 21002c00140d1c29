//! Launching an experiment's runs through `mpcl train --config C --run-dir D`.
//!
//! Finished runs are skipped without starting the binary; the others are launched into
//! their directories, where the trainer resumes from a checkpoint or starts afresh. With
//! `jobs` > 1, that many runs go at once, each with `train.threads` divided by `jobs` and
//! its console output in `D/console.txt` instead of the terminal. A failed run does not stop
//! the others. Each launch is recorded in `D/attempts.json` (start time, seconds, outcome),
//! which the report sums into the run's wall time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mpcl_data::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::ExperimentError;
use crate::plan::{Experiment, Run, get_path};
use crate::state::{REQUESTED, RunState};

/// The file in a run directory that records each launch.
pub const ATTEMPTS: &str = "attempts.json";

/// How runs are launched.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `mpcl` binary.
    pub mpcl: PathBuf,
    /// Passed as `--data-dir` when set.
    pub data_dir: Option<PathBuf>,
    /// Runs at once, ≥ 1.
    pub jobs: usize,
    /// Cores to share among the jobs when a run's `train.threads` is 0 (one per core).
    pub cores: usize,
}

/// One launch of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Seconds since the Unix epoch at the launch.
    pub started: u64,
    /// Wall time of the launch in seconds.
    pub seconds: f64,
    /// `"finished"` or the failure (the exit status).
    pub outcome: String,
}

/// What a call of [`run_all`] did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Runs that were finished already.
    pub skipped: usize,
    /// Runs launched that finished.
    pub finished: Vec<PathBuf>,
    /// Runs launched that failed, with what went wrong.
    pub failed: Vec<(PathBuf, String)>,
}

/// The configuration a run is launched with: `train.threads` divided among `jobs`.
pub fn launch_table(run: &Run, launcher: &Launcher) -> Table {
    let mut table = run.table.clone();
    if launcher.jobs > 1 {
        let asked = match get_path(&table, &["train", "threads"]) {
            Some(Value::Integer(n)) if *n > 0 => *n as usize,
            _ => launcher.cores,
        };
        let share = (asked / launcher.jobs).max(1);
        let train = table
            .entry("train")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(train) = train {
            train.insert("threads".into(), Value::Integer(share as i64));
        }
    }
    table
}

/// The state of every run, in order; fails before anything is launched if a directory holds
/// another configuration.
///
/// # Errors
/// As [`RunState::of`].
pub fn states(
    exp: &Experiment,
    exp_dir: &Path,
    launcher: &Launcher,
) -> Result<Vec<RunState>, ExperimentError> {
    exp.runs
        .iter()
        .map(|run| RunState::of(&exp_dir.join(run.rel_dir()), &launch_table(run, launcher)))
        .collect()
}

/// Launches every run that is not finished, `launcher.jobs` at a time; `say` reports
/// progress (it is called from several threads).
///
/// # Errors
/// A run directory holding another configuration (before anything is launched), or a
/// directory or file of a run that cannot be written. Runs that fail are reported in the
/// [`Summary`], not as an error.
pub fn run_all(
    exp: &Experiment,
    exp_dir: &Path,
    launcher: &Launcher,
    say: &(dyn Fn(&str) + Sync),
) -> Result<Summary, ExperimentError> {
    let states = states(exp, exp_dir, launcher)?;
    let todo: Vec<(&Run, RunState)> = exp
        .runs
        .iter()
        .zip(states)
        .filter(|(_, s)| *s != RunState::Finished)
        .collect();
    let summary = Mutex::new(Summary {
        skipped: exp.runs.len() - todo.len(),
        ..Summary::default()
    });
    if summary.lock().unwrap().skipped > 0 {
        say(&format!(
            "{} of {} runs finished already: skipped",
            exp.runs.len() - todo.len(),
            exp.runs.len()
        ));
    }
    let next = AtomicUsize::new(0);
    let error: Mutex<Option<ExperimentError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..launcher.jobs.clamp(1, todo.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(run, state)) = todo.get(i) else {
                        break;
                    };
                    if error.lock().unwrap().is_some() {
                        break;
                    }
                    let dir = exp_dir.join(run.rel_dir());
                    let what = match state {
                        RunState::Resumable => "resuming",
                        RunState::Started => "restarting",
                        _ => "starting",
                    };
                    say(&format!(
                        "[{}/{}] {what} {}",
                        i + 1,
                        todo.len(),
                        dir.display()
                    ));
                    match launch(run, &dir, launcher) {
                        Ok(Ok(seconds)) => {
                            say(&format!("{}: finished in {seconds:.0} s", dir.display()));
                            summary.lock().unwrap().finished.push(dir);
                        }
                        Ok(Err(why)) => {
                            say(&format!("{}: failed: {why}", dir.display()));
                            summary.lock().unwrap().failed.push((dir, why));
                        }
                        Err(e) => {
                            error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match error.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(summary.into_inner().unwrap()),
    }
}

/// What [`check`] found of a run: its configuration as `mpcl check` resolves it, every
/// default filled in, or what is wrong with it.
pub type Checked = Result<String, String>;

/// How [`check`] has `mpcl check` name a run's configuration in its messages.
pub fn origin(exp: &Experiment, run: &Run) -> String {
    format!("{} (run {})", exp.file.display(), run.rel_dir().display())
}

/// Each of `runs`, configured as [`run_all`] would launch it, through `mpcl check`: the
/// resolved configuration, or the error followed by where the key at fault was set
/// ([`Run::set_in`]) when the experiment set it.
///
/// # Errors
/// [`ExperimentError::Io`] when a configuration cannot be written or the binary started.
pub fn check<'a>(
    exp: &Experiment,
    runs: impl Iterator<Item = &'a Run>,
    launcher: &Launcher,
) -> Result<Vec<(&'a Run, Checked)>, ExperimentError> {
    let tmp = tempfile::tempdir().map_err(|e| ExperimentError::io(&std::env::temp_dir(), e))?;
    let mut out = Vec::new();
    for (i, run) in runs.enumerate() {
        let path = tmp.path().join(format!("{i}.toml"));
        let text = toml::to_string(&launch_table(run, launcher)).expect("a TOML table serialises");
        std::fs::write(&path, text).map_err(|e| ExperimentError::io(&path, e))?;
        let origin = origin(exp, run);
        let done = Command::new(&launcher.mpcl)
            .args(["check", "--config"])
            .arg(&path)
            .arg("--origin")
            .arg(&origin)
            .output()
            .map_err(|e| ExperimentError::io(&launcher.mpcl, e))?;
        let outcome = if done.status.success() {
            Ok(String::from_utf8_lossy(&done.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&done.stderr);
            let err = err.trim().trim_start_matches("Error: ");
            let key = err.strip_prefix(&format!("{origin}: ")).unwrap_or("");
            Err(match run.set_in(key) {
                Some(file) => format!("{err}\n(the key is set in {file})"),
                None => err.to_owned(),
            })
        };
        out.push((run, outcome));
    }
    Ok(out)
}

/// Launches one run and records the attempt: `Ok(Ok(seconds))` when it finished,
/// `Ok(Err(why))` when it failed.
fn launch(
    run: &Run,
    dir: &Path,
    launcher: &Launcher,
) -> Result<Result<f64, String>, ExperimentError> {
    let config = write_requested(dir, &launch_table(run, launcher))?;
    let mut cmd = Command::new(&launcher.mpcl);
    cmd.arg("train")
        .arg("--config")
        .arg(&config)
        .arg("--run-dir")
        .arg(dir);
    if let Some(data) = &launcher.data_dir {
        cmd.arg("--data-dir").arg(data);
    }
    if launcher.jobs > 1 {
        let path = dir.join("console.txt");
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ExperimentError::io(&path, e))?;
        let err = console
            .try_clone()
            .map_err(|e| ExperimentError::io(&path, e))?;
        cmd.stdout(Stdio::from(console)).stderr(Stdio::from(err));
    }
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let clock = Instant::now();
    let status = cmd.status();
    let seconds = clock.elapsed().as_secs_f64();
    let outcome = match &status {
        Ok(s) if s.success() => Ok(seconds),
        Ok(s) => Err(format!(
            "mpcl train exited with {s}; its log is in {}",
            dir.display()
        )),
        Err(e) => Err(format!("could not start {}: {e}", launcher.mpcl.display())),
    };
    let mut attempts = read_attempts(dir)?;
    attempts.push(Attempt {
        started,
        seconds,
        outcome: match &outcome {
            Ok(_) => "finished".into(),
            Err(why) => why.clone(),
        },
    });
    let json = serde_json::to_string_pretty(&attempts).expect("attempts serialise");
    write_atomic(&dir.join(ATTEMPTS), json.as_bytes())?;
    Ok(outcome)
}

/// Creates a run directory and writes the configuration it is launched with into its
/// `requested.toml`, atomically; returns that file's path.
///
/// # Errors
/// [`ExperimentError::Io`] or [`ExperimentError::Write`] when either cannot be written.
pub(crate) fn write_requested(dir: &Path, table: &Table) -> Result<PathBuf, ExperimentError> {
    std::fs::create_dir_all(dir).map_err(|e| ExperimentError::io(dir, e))?;
    let config = dir.join(REQUESTED);
    let text = toml::to_string(table).expect("a TOML table serialises");
    write_atomic(&config, text.as_bytes())?;
    Ok(config)
}

/// The launches recorded in a run directory (none if there is no record).
///
/// # Errors
/// [`ExperimentError::Run`] for a record that is not the runner's JSON.
pub fn read_attempts(dir: &Path) -> Result<Vec<Attempt>, ExperimentError> {
    let path = dir.join(ATTEMPTS);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| ExperimentError::Run {
            dir: dir.to_owned(),
            message: format!("{ATTEMPTS}: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ExperimentError::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launcher(jobs: usize) -> Launcher {
        Launcher {
            mpcl: PathBuf::from("/no/such/mpcl"),
            data_dir: None,
            jobs,
            cores: 8,
        }
    }

    fn grid(text: &str) -> Experiment {
        Experiment::expand(Path::new("g.toml"), toml::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn jobs_split_the_threads() {
        let e = grid("[experiment]\n[axes]\nseed = [0, 1]\n");
        let threads = |t: &Table| get_path(t, &["train", "threads"]).cloned();
        // One job: the config's own setting (none here).
        assert_eq!(threads(&launch_table(&e.runs[0], &launcher(1))), None);
        // 8 cores / 3 jobs = 2 threads each (integer division), at least 1.
        assert_eq!(
            threads(&launch_table(&e.runs[0], &launcher(3))),
            Some(Value::Integer(2))
        );
        assert_eq!(
            threads(&launch_table(&e.runs[0], &launcher(16))),
            Some(Value::Integer(1))
        );
        let e = grid("[experiment]\n[base.train]\nthreads = 6\n");
        assert_eq!(
            threads(&launch_table(&e.runs[0], &launcher(2))),
            Some(Value::Integer(3))
        );
    }

    #[test]
    fn finished_runs_are_skipped_and_failures_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let e = grid("[experiment]\n[axes]\nseed = [0, 1]\n");
        let done = tmp.path().join("base/seed-0");
        std::fs::create_dir_all(&done).unwrap();
        std::fs::write(done.join("results.json"), "{}").unwrap();
        let said = Mutex::new(Vec::new());
        let summary = run_all(&e, tmp.path(), &launcher(1), &|m: &str| {
            said.lock().unwrap().push(m.to_owned())
        })
        .unwrap();
        assert_eq!(summary.skipped, 1);
        assert!(summary.finished.is_empty());
        // The binary does not exist: the run fails, is recorded, and nothing else breaks.
        let failed = tmp.path().join("base/seed-1");
        assert_eq!(summary.failed.len(), 1);
        assert_eq!(summary.failed[0].0, failed);
        assert!(
            summary.failed[0]
                .1
                .contains("could not start /no/such/mpcl")
        );
        let attempts = read_attempts(&failed).unwrap();
        assert_eq!(attempts.len(), 1);
        assert!(attempts[0].outcome.contains("could not start"));
        let requested = std::fs::read_to_string(failed.join(REQUESTED)).unwrap();
        assert_eq!(requested, e.runs[1].toml());
        let said = said.into_inner().unwrap();
        assert!(said[0].contains("1 of 2 runs finished already"), "{said:?}");
        assert!(said[1].contains("starting"), "{said:?}");
    }
}
