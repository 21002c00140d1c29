//! What a run's directory says is left to do.
//!
//! The trainer's contract (`mpcl train --config C --run-dir D`): a `D/results.json` means
//! the run is finished; checkpoints under `D/checkpoints/` mean it resumes from the newest
//! complete one; anything else starts it afresh. The runner writes the configuration it asks
//! for into `D/requested.toml` before the first launch, so a later launch can tell that the
//! experiment file was edited under a run and refuse to mix two configurations in one
//! directory. `train.threads` does not count: `--jobs` changes it, and it changes no result
//! beyond libtorch's reduction order.

use std::path::Path;

use toml::Table;

use crate::ExperimentError;
use crate::plan::differences;

/// The file in a run directory holding the configuration the runner asked for.
pub const REQUESTED: &str = "requested.toml";

/// A run's progress, read from its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// No directory yet.
    New,
    /// A directory without checkpoints or results: the trainer starts over.
    Started,
    /// Checkpoints but no results: the trainer resumes from the newest complete one.
    Resumable,
    /// `results.json` is there: nothing to do.
    Finished,
}

impl RunState {
    /// A word for listings.
    pub fn label(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Started => "restart",
            Self::Resumable => "resume",
            Self::Finished => "finished",
        }
    }

    /// Reads a run directory's state; `requested` is the configuration this run asks for
    /// now, checked against the one recorded in the directory.
    ///
    /// # Errors
    /// [`ExperimentError::Run`] when the directory holds a run of another configuration,
    /// [`ExperimentError::Io`] when it cannot be read.
    pub fn of(dir: &Path, requested: &Table) -> Result<Self, ExperimentError> {
        if !dir.exists() {
            return Ok(Self::New);
        }
        let recorded_path = dir.join(REQUESTED);
        if recorded_path.exists() {
            let text = std::fs::read_to_string(&recorded_path)
                .map_err(|e| ExperimentError::io(&recorded_path, e))?;
            let recorded: Table = toml::from_str(&text).map_err(|e| ExperimentError::Run {
                dir: dir.to_owned(),
                message: format!("{REQUESTED}: {}", e.to_string().trim_end()),
            })?;
            let changed = differences(&without_threads(&recorded), &without_threads(requested));
            if !changed.is_empty() {
                let lines: Vec<String> = changed.into_iter().map(|(_, line)| line).collect();
                return Err(ExperimentError::Run {
                    dir: dir.to_owned(),
                    message: format!(
                        "holds a run of another configuration ({REQUESTED} differs from what \
                         the experiment file asks for now: {}): move the directory away, or \
                         give the changed experiment another name",
                        lines.join(", ")
                    ),
                });
            }
        }
        if dir.join("results.json").exists() {
            return Ok(Self::Finished);
        }
        let checkpoints = dir.join("checkpoints");
        if checkpoints.is_dir() {
            let entries = std::fs::read_dir(&checkpoints)
                .map_err(|e| ExperimentError::io(&checkpoints, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ExperimentError::io(&checkpoints, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // Temporary files of an interrupted write are not checkpoints.
                if !name.starts_with('.') && !name.contains(".tmp") && !name.contains(".part") {
                    return Ok(Self::Resumable);
                }
            }
        }
        Ok(Self::Started)
    }
}

/// A configuration without `train.threads`.
fn without_threads(table: &Table) -> Table {
    let mut t = table.clone();
    if let Some(toml::Value::Table(train)) = t.get_mut("train") {
        train.remove("threads");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_directory_decides_skip_resume_or_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("simclr/seed-0");
        let asked = table("[train]\nlr = 0.1\nthreads = 2\n");
        assert_eq!(RunState::of(&dir, &asked).unwrap(), RunState::New);

        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(REQUESTED), toml::to_string(&asked).unwrap()).unwrap();
        std::fs::write(dir.join("log.txt"), "epoch 1/3 …").unwrap();
        assert_eq!(RunState::of(&dir, &asked).unwrap(), RunState::Started);

        // A checkpoint being written does not count; a complete one does.
        std::fs::create_dir(dir.join("checkpoints")).unwrap();
        std::fs::write(dir.join("checkpoints/.epoch-2.tmp"), "").unwrap();
        assert_eq!(RunState::of(&dir, &asked).unwrap(), RunState::Started);
        std::fs::write(dir.join("checkpoints/epoch-2.safetensors"), "").unwrap();
        assert_eq!(RunState::of(&dir, &asked).unwrap(), RunState::Resumable);

        std::fs::write(dir.join("results.json"), "{}").unwrap();
        assert_eq!(RunState::of(&dir, &asked).unwrap(), RunState::Finished);

        // Another thread count is the same run; another rate is not.
        let threads = table("[train]\nlr = 0.1\nthreads = 1\n");
        assert_eq!(RunState::of(&dir, &threads).unwrap(), RunState::Finished);
        let err = RunState::of(&dir, &table("[train]\nlr = 0.2\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("seed-0: holds a run of another configuration")
                && err.contains("asks for now: train.lr: 0.1 → 0.2)"),
            "{err}"
        );
        // Keys one side lacks, in key order.
        let err = RunState::of(
            &dir,
            &table("[train]\nlr = 0.1\nepochs = 2\n[data]\nx = 1\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("asks for now: data.x: (unset) → 1, train.epochs: (unset) → 2)"),
            "{err}"
        );
    }
}
