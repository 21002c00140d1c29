//! The run directory: everything a run leaves behind, each file written atomically.
//!
//! ```text
//! <runs>/<name>-<YYYYmmdd-HHMMSS>/
//!   config.toml       the resolved configuration, defaults filled in
//!   log.txt           the log
//!   metrics.csv       one row per epoch, with the norms of the two gradient messages
//!   checkpoints/      the newest checkpoints, to resume from (see `checkpoint`)
//!   encoder.safetensors   the trained weights (backbone and projector)
//!   results.md        the accuracy table, also printed at the end
//!   results.json      the same numbers for tools
//! ```

use std::path::{Path, PathBuf};

use mpcl_data::fsutil::write_atomic;
use serde::{Deserialize, Serialize};

use crate::{Config, TrainError};

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Optimiser steps so far.
    pub step: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// The learning rate at the epoch's last step.
    pub lr: f64,
    /// Augmented views processed per second, loading included.
    pub views_per_s: f64,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
    /// Mean Frobenius norm of the alignment part (messages from positives) of the loss
    /// gradient with respect to the projector output, over the steps measured
    /// (`train.split_every`); NaN for SimSiam and replaced keys, which have no split.
    pub grad_alignment: f64,
    /// Mean Frobenius norm of its uniformity part (messages along the affinity graph),
    /// likewise.
    pub grad_uniformity: f64,
    /// Top-1 accuracy of the online linear classifier on the epoch's augmented training
    /// views, each counted before its update; NaN when `train.online_classifier` is off.
    pub online_train_top1: f64,
    /// Its top-1 accuracy on the unaugmented test split at the end of the epoch; NaN when off.
    pub online_test_top1: f64,
    /// kNN top-1 (the `[eval.knn]` settings) of the unaugmented test split against the
    /// first `train.knn_bank` training images, every `train.knn_every` epochs; NaN between.
    pub knn_test_top1: f64,
    /// Steps skipped for a non-finite loss (`train.on_nonfinite = "skip"`).
    pub skipped_steps: usize,
}

/// A run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `<runs>/<name>-<local time>` (with a numeric suffix if that exists).
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the directory.
    pub fn create(runs: &Path, name: &str) -> Result<Self, TrainError> {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        if runs.exists() && !runs.is_dir() {
            let e = std::io::Error::other("the runs directory is a file, not a directory");
            return Err(TrainError::io(runs, e));
        }
        std::fs::create_dir_all(runs).map_err(|e| TrainError::io(runs, e))?;
        for attempt in 0.. {
            let suffix = if attempt == 0 {
                String::new()
            } else {
                format!("-{attempt}")
            };
            let path = runs.join(format!("{name}-{stamp}{suffix}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(TrainError::io(&path, e)),
            }
        }
        unreachable!("the loop returns")
    }

    /// Uses `path` itself as the run directory, creating it when missing: the form sweeps
    /// and resumes use, where the directory is known in advance.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the directory.
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        if path.exists() && !path.is_dir() {
            let e = std::io::Error::other("the run directory is a file, not a directory");
            return Err(TrainError::io(path, e));
        }
        std::fs::create_dir_all(path).map_err(|e| TrainError::io(path, e))?;
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Whether the run finished: its `results.json` exists (written last).
    pub fn is_finished(&self) -> bool {
        self.path.join("results.json").is_file()
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the log goes.
    pub fn log_path(&self) -> PathBuf {
        self.path.join("log.txt")
    }

    /// Where the trained weights go.
    pub fn weights_path(&self) -> PathBuf {
        self.path.join("encoder.safetensors")
    }

    /// Writes a file of the run atomically.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), TrainError> {
        write_atomic(&self.path.join(name), bytes).map_err(TrainError::from)
    }

    /// Writes `config.toml`.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file.
    pub fn write_config(&self, config: &Config) -> Result<(), TrainError> {
        let text = toml::to_string_pretty(config).expect("a config serialises");
        self.write(
            "config.toml",
            format!("# resolved configuration\n{text}").as_bytes(),
        )
    }

    /// Rewrites `metrics.csv` with all rows so far.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file.
    pub fn write_metrics(&self, rows: &[EpochMetrics]) -> Result<(), TrainError> {
        let mut csv = String::from(
            "epoch,step,loss,lr,views_per_s,seconds,grad_alignment,grad_uniformity,\
                online_train_top1,online_test_top1,knn_test_top1,skipped_steps\n",
        );
        for r in rows {
            csv.push_str(&format!(
                "{},{},{:.6},{:.6e},{:.1},{:.2},{:.6e},{:.6e},{:.4},{:.4},{:.4},{}\n",
                r.epoch,
                r.step,
                r.loss,
                r.lr,
                r.views_per_s,
                r.seconds,
                r.grad_alignment,
                r.grad_uniformity,
                r.online_train_top1,
                r.online_test_top1,
                r.knn_test_top1,
                r.skipped_steps
            ));
        }
        self.write("metrics.csv", csv.as_bytes())
    }
}
