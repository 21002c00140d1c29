//! The libtorch trainer of mpcl: models, optimisation, the training loop, and the run
//! directory it fills. The `mpcl` binary (src/main.rs) drives it.
//!
//! One run: load the data, evaluate the baselines (raw pixels, the randomly initialised
//! encoder), train with the configured method and aggregator, evaluate the trained encoder
//! the same way, and write the table.

pub mod allocator;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod eigenspace;
pub mod evaluate;
pub mod model;
pub mod online;
pub mod optim;
pub mod resnet;
pub mod run_dir;
pub mod schedule;
pub mod toy;
mod train;
pub mod weights;

use std::path::{Path, PathBuf};

pub use config::Config;
pub use run_dir::RunDir;
pub use train::{Outcome, run, run_until};

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration that cannot be used; names the file and the key.
    #[error("{origin}: {message}")]
    Config {
        /// The file (or "configs/default.toml" for the embedded default).
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// Settings that do not fit the data, naming the key.
    #[error("{0}")]
    Invalid(String),
    /// Data that cannot be loaded.
    #[error(transparent)]
    Data(#[from] mpcl_data::DataError),
    /// A loss called with unusable input.
    #[error(transparent)]
    Loss(#[from] mpcl_losses::LossError),
    /// A graph or toy experiment that cannot be used.
    #[error(transparent)]
    Graph(#[from] mpcl_graph::GraphError),
    /// A figure that cannot be drawn.
    #[error(transparent)]
    Plot(#[from] mpcl_plot::PlotError),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// An I/O error on a named path.
    #[error("{path}: {cause}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error (kept out of the error chain: the message already says it).
        cause: std::io::Error,
    },
    /// A checkpoint that cannot be written or read, with the file at fault.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong, naming the entry or field.
        message: String,
    },
    /// Training diverged.
    #[error(
        "the loss became {value} at epoch {epoch}, step {step}; the last good checkpoint is \
         {last_good} (set train.on_nonfinite = \"skip\" to skip such steps)"
    )]
    NonFinite {
        /// The epoch, from 1.
        epoch: usize,
        /// The global step, from 1.
        step: usize,
        /// The loss value.
        value: f64,
        /// The newest checkpoint written, or a note that there is none yet.
        last_good: String,
    },
}

impl TrainError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            cause: source,
        }
    }
}
