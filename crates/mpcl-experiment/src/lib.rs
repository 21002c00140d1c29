//! Experiments as grids of `mpcl train` runs: an experiment file expands into runs
//! ([`plan`]), each run has a deterministic directory whose files say what is left to do
//! ([`state`]), the runs are launched through the `mpcl` binary, several at once if asked
//! ([`runner`]), and their results are gathered into a report with tables and figures
//! ([`report`]), next to the paper's numbers where the settings match ([`paper`]); on a
//! cluster, the runs become a Slurm job array ([`slurm`]).
//!
//! This crate never links libtorch and never parses a trainer configuration itself: it
//! builds TOML tables and hands them to `mpcl`, whose parser is the one authority on keys
//! and values (`mpcl check` for `--dry-run`, `mpcl train` for runs). docs/experiments.md
//! describes the file format and the workflow.

pub mod paper;
pub mod plan;
pub mod report;
pub mod runner;
pub mod slurm;
pub mod state;

use std::path::{Path, PathBuf};

pub use plan::{Experiment, Run, Sources, differences};
pub use report::Report;
pub use state::RunState;

/// What can go wrong with an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// An experiment file that cannot be used; names the file and the key.
    #[error("{file}: {message}")]
    File {
        /// The experiment (or base) file.
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A run directory that holds something other than this run.
    #[error("{dir}: {message}")]
    Run {
        /// The run directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An I/O error on a named path.
    #[error("{path}: {cause}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A file that could not be written atomically.
    #[error(transparent)]
    Write(#[from] mpcl_data::DataError),
    /// A figure that could not be drawn.
    #[error(transparent)]
    Plot(#[from] mpcl_plot::PlotError),
}

impl ExperimentError {
    /// An [`ExperimentError::File`] for `file`.
    pub(crate) fn file(file: &Path, message: impl Into<String>) -> Self {
        Self::File {
            file: file.to_owned(),
            message: message.into(),
        }
    }

    /// An [`ExperimentError::Io`] for `path`.
    pub(crate) fn io(path: &Path, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            cause,
        }
    }
}
