//! Checkpoints: all a run needs to continue exactly where it stopped.
//!
//! ```text
//! <run>/checkpoints/step-00000470/
//!   model.safetensors       every variable of the model, BN running statistics included
//!   optimizer.safetensors   momentum / Adam buffers and step counts, by parameter name
//!   online.safetensors      the online classifier's weights and optimizer (when it runs)
//!   aggregator.safetensors  memory banks and queues (when the aggregators keep any)
//!   state.toml              position, epoch accumulators, metrics so far, baselines,
//!                           random state and the resolved config
//! ```
//!
//! A checkpoint is written into `checkpoints/.partial-…`, every file flushed to disk, and
//! then renamed: a `step-*` directory is always complete, and a crash while saving leaves
//! only a partial directory, which the next run removes. The newest `keep_last` are kept.
//! A checkpoint that cannot be restored (a damaged disk, an edited file) is renamed
//! `corrupt-step-…` and the run resumes from the one before it, when there is one.
//!
//! Random state needs no opaque generator dumps: every generator of a run is re-derived
//! from `train.seed` and the position. The sampling order of epoch e is ChaCha8 stream e,
//! the views of image i are keyed by (seed, e, i, v) (see `mpcl_data::augment`), and
//! libtorch's generator is re-seeded before every step with [`torch_seed`]`(seed, step)`.
//! `state.toml` records those seeds under `[random]`.

use std::path::{Path, PathBuf};

use mpcl_aggregators::Aggregator;
use mpcl_eval::Row;
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};
use tracing::warn;

use crate::online::OnlineClassifier;
use crate::optim::Optimizer;
use crate::run_dir::EpochMetrics;
use crate::{Config, TrainError};

/// The folder of a run directory that holds its checkpoints.
pub const DIR: &str = "checkpoints";
/// The version of the layout above; loading another is an error naming both.
const FORMAT: u32 = 1;
const PARTIAL: &str = ".partial-";
/// The prefix of a checkpoint that could not be restored, set aside by
/// [`Checkpoint::set_aside`].
const CORRUPT: &str = "corrupt-";
const STATE: &str = "state.toml";
const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const ONLINE: &str = "online.safetensors";
const AGGREGATOR: &str = "aggregator.safetensors";

/// Sums over the steps of the epoch in progress, from which its metrics row is made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Σ loss over the steps taken (skipped steps excluded).
    pub loss: f64,
    /// Views processed.
    pub views: usize,
    /// Σ ‖alignment gradient‖ over the measured steps.
    pub grad_alignment: f64,
    /// Σ ‖uniformity gradient‖ over the measured steps.
    pub grad_uniformity: f64,
    /// Steps whose gradient split was measured (`train.split_every`).
    pub split_steps: usize,
    /// Online classifier hits on the training views.
    pub online_correct: i64,
    /// Wall time spent in the epoch so far, over all processes that trained it.
    pub seconds: f64,
    /// Steps skipped for a non-finite loss (`train.on_nonfinite = "skip"`).
    pub skipped: usize,
}

/// Where training stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch of the position, from 1 (0 before the first step).
    pub epoch: usize,
    /// Batches of `epoch` done; the epoch is complete when this is the epoch's length.
    pub batch: usize,
    /// Optimiser steps done since the start, skipped ones included.
    pub step: usize,
    /// The epoch in progress.
    pub sums: EpochSums,
    /// One row per completed epoch.
    pub metrics: Vec<EpochMetrics>,
}

/// The seeds every generator is re-derived from at this position (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RandomState {
    /// `train.seed`: sampling order and augmentation keys.
    seed: u64,
    /// The seed libtorch's generator gets before the next step.
    torch_next_step: i64,
}

/// The contents of `state.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    format: u32,
    /// The mpcl version that wrote it.
    mpcl: String,
    progress: Progress,
    random: RandomState,
    /// The evaluated baselines (computed before training), so a resumed run reports the
    /// same ones.
    baselines: Vec<Row>,
    /// The resolved config of the run, to check a resume against.
    config: toml::Table,
}

/// The seed of libtorch's generator for global step `step` of a run seeded with `seed`:
/// SplitMix64 of the pair, so neighbouring steps and seeds get unrelated streams.
pub fn torch_seed(seed: u64, step: usize) -> i64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(step as u64)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as i64
}

/// What a checkpoint saves.
pub struct Snapshot<'a> {
    /// The model's variables.
    pub vs: &'a nn::VarStore,
    /// The encoder's optimizer.
    pub optimizer: &'a Optimizer,
    /// The online classifier, when one has been built.
    pub online: Option<&'a OnlineClassifier>,
    /// The aggregator stack.
    pub aggregator: &'a dyn Aggregator,
    /// The position.
    pub progress: &'a Progress,
    /// The baseline rows.
    pub baselines: &'a [Row],
    /// The run's config.
    pub config: &'a Config,
}

fn fail(path: &Path, message: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Writes a checkpoint of `snap` into `<run>/checkpoints/step-<step>` and removes all but
/// the newest `keep_last`; returns its directory.
///
/// # Errors
/// [`TrainError::Checkpoint`] naming the file that could not be written (a full disk, say);
/// the partial directory is removed and earlier checkpoints are untouched.
pub fn save(run: &Path, snap: &Snapshot, keep_last: usize) -> Result<PathBuf, TrainError> {
    let root = run.join(DIR);
    std::fs::create_dir_all(&root).map_err(|e| fail(&root, e))?;
    let name = format!("step-{:08}", snap.progress.step);
    let partial = root.join(format!("{PARTIAL}{name}-{}", std::process::id()));
    let written = write_files(&partial, snap);
    let done = root.join(&name);
    let result = written.and_then(|()| {
        std::fs::rename(&partial, &done).map_err(|e| fail(&done, e))?;
        sync_dir(&root)
    });
    if let Err(e) = result {
        // Best effort: frees the space a full disk needs back.
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    for old in complete(&root)?.into_iter().rev().skip(keep_last) {
        if let Err(e) = std::fs::remove_dir_all(&old.1) {
            warn!(
                "could not remove the old checkpoint {}: {e}",
                old.1.display()
            );
        }
    }
    Ok(done)
}

fn write_files(dir: &Path, snap: &Snapshot) -> Result<(), TrainError> {
    std::fs::create_dir(dir).map_err(|e| fail(dir, e))?;
    let model: Vec<(String, Tensor)> = snap.vs.variables().into_iter().collect();
    let mut files = vec![(MODEL, model), (OPTIMIZER, snap.optimizer.state())];
    if let Some(online) = snap.online {
        files.push((ONLINE, online.state()));
    }
    let aggregator = snap.aggregator.state();
    if !aggregator.is_empty() {
        files.push((AGGREGATOR, aggregator));
    }
    for (name, tensors) in files {
        let path = dir.join(name);
        // Contiguous CPU copies: safetensors stores raw row-major bytes.
        let tensors: Vec<(String, Tensor)> = tensors
            .into_iter()
            .map(|(n, t)| (n, t.detach().to_device(tch::Device::Cpu).contiguous()))
            .collect();
        Tensor::write_safetensors(&tensors, &path).map_err(|e| fail(&path, e))?;
        sync_file(&path)?;
    }
    let p = snap.progress;
    let state = State {
        format: FORMAT,
        mpcl: env!("CARGO_PKG_VERSION").into(),
        progress: p.clone(),
        random: RandomState {
            seed: snap.config.train.seed,
            torch_next_step: torch_seed(snap.config.train.seed, p.step),
        },
        baselines: snap.baselines.to_vec(),
        config: config_table(snap.config),
    };
    let path = dir.join(STATE);
    let text = toml::to_string(&state).map_err(|e| fail(&path, e))?;
    std::fs::write(&path, text).map_err(|e| fail(&path, e))?;
    sync_file(&path)?;
    sync_dir(dir)
}

fn sync_file(path: &Path) -> Result<(), TrainError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| fail(path, e))
}

fn sync_dir(path: &Path) -> Result<(), TrainError> {
    // Directories cannot be opened for syncing on every platform; Unix is what we run on.
    #[cfg(unix)]
    sync_file(path)?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The complete checkpoints under `root`, oldest first, as (step, directory).
fn complete(root: &Path) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(fail(root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| fail(root, e))?;
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(|n| n.strip_prefix("step-")) else {
            continue;
        };
        if let Ok(step) = step.parse::<usize>() {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// `config` as a TOML table: the form checkpoints store and resumes compare.
fn config_table(config: &Config) -> toml::Table {
    toml::Table::try_from(config).expect("a config serialises to a table")
}

/// A checkpoint found on disk; its tensors are read by [`Checkpoint::restore`].
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    state: State,
}

impl Checkpoint {
    /// The newest complete checkpoint of the run in `run`, if any. Partial directories left
    /// by an interrupted save are removed.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming the file or field of the newest checkpoint that
    /// cannot be read.
    pub fn latest(run: &Path) -> Result<Option<Self>, TrainError> {
        let root = run.join(DIR);
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
                    warn!(
                        "removing {}, left by an interrupted save",
                        entry.path().display()
                    );
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        match complete(&root)?.pop() {
            Some((_, path)) => Self::open(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the checkpoint in `dir` (its `state.toml`; tensors come with `restore`).
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming the file and, for a malformed one, the field.
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join(STATE);
        let text = std::fs::read_to_string(&path).map_err(|e| fail(&path, e))?;
        let format = toml::from_str::<toml::Table>(&text)
            .map_err(|e| fail(&path, e.to_string().trim_end()))?
            .get("format")
            .and_then(|v| v.as_integer());
        if format != Some(i64::from(FORMAT)) {
            return Err(fail(
                &path,
                format!("format = {format:?}: this mpcl reads format {FORMAT}"),
            ));
        }
        let state: State =
            toml::from_str(&text).map_err(|e| fail(&path, e.to_string().trim_end()))?;
        Ok(Self {
            path: dir.to_owned(),
            state,
        })
    }

    /// The checkpoint's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest complete checkpoint older than this one, if any.
    ///
    /// # Errors
    /// As [`Checkpoint::latest`], for that checkpoint.
    pub fn previous(&self) -> Result<Option<Self>, TrainError> {
        let root = self.path.parent().unwrap_or(Path::new(""));
        let found = complete(root)?;
        let older = found
            .into_iter()
            .rev()
            .find(|(step, _)| *step < self.state.progress.step);
        older.map(|(_, path)| Self::open(&path)).transpose()
    }

    /// Moves the checkpoint out of those a resume reads, to `corrupt-<name>` beside them,
    /// where it stays for inspection; returns that path.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming the directory when it cannot be renamed.
    pub fn set_aside(self) -> Result<PathBuf, TrainError> {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let aside = self.path.with_file_name(format!("{CORRUPT}{name}"));
        std::fs::rename(&self.path, &aside).map_err(|e| fail(&self.path, e))?;
        Ok(aside)
    }

    /// Where training stood.
    pub fn progress(&self) -> &Progress {
        &self.state.progress
    }

    /// The baselines evaluated before training.
    pub fn baselines(&self) -> &[Row] {
        &self.state.baselines
    }

    /// The config the checkpoint was written with.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming `state.toml` when its `[config]` is not valid for
    /// this mpcl.
    pub fn config(&self) -> Result<Config, TrainError> {
        let path = self.path.join(STATE);
        let text = toml::to_string(&self.state.config).map_err(|e| fail(&path, e))?;
        Config::parse(&text, &format!("{} [config]", path.display()))
    }

    /// How `config` differs from the config the checkpoint was written with.
    pub fn changes(&self, config: &Config) -> Changes {
        Changes::between(&self.state.config, &config_table(config))
    }

    /// Loads the tensors into the model's variables, the optimizer and the aggregators, and
    /// rebuilds the online classifier when one was saved.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming the file and the entry that is missing, misshapen
    /// or unexpected.
    pub fn restore(
        &self,
        vs: &nn::VarStore,
        optimizer: &mut Optimizer,
        aggregator: &mut dyn Aggregator,
        online_lr: f64,
    ) -> Result<Option<OnlineClassifier>, TrainError> {
        let model = self.path.join(MODEL);
        crate::weights::load(vs, "", &model).map_err(|e| fail(&model, e))?;
        let path = self.path.join(OPTIMIZER);
        optimizer
            .load_state(&read(&path)?)
            .map_err(|e| fail(&path, e))?;
        let path = self.path.join(AGGREGATOR);
        let state = if path.exists() {
            read(&path)?
        } else {
            Vec::new()
        };
        aggregator.load_state(&state).map_err(|e| fail(&path, e))?;
        let path = self.path.join(ONLINE);
        if !path.exists() {
            return Ok(None);
        }
        OnlineClassifier::restore(&read(&path)?, online_lr, vs.device())
            .map(Some)
            .map_err(|e| fail(&path, e))
    }
}

fn read(path: &Path) -> Result<Vec<(String, Tensor)>, TrainError> {
    Tensor::read_safetensors(path).map_err(|e| fail(path, e))
}

/// The keys whose change leaves a resume valid: they do not touch the training
/// computation. Thread count, device and memory order change the floating-point reduction
/// order, so a resume across them is valid but not bit-identical.
const HARMLESS: &[&str] = &[
    "name",
    "data.dir",
    "data.test_subset",
    "model.channels_last",
    "train.log_every",
    "train.threads",
    "train.device",
    "train.precision",
    "train.on_nonfinite",
    "train.split_every",
    "train.knn_every",
    "train.knn_bank",
    "eval",
    "checkpoint",
];

/// How a config differs from a checkpoint's, by dotted key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changed keys a resume tolerates, as `key: old → new`.
    pub harmless: Vec<String>,
    /// Changed keys that make the checkpoint unusable, likewise.
    pub breaking: Vec<String>,
}

impl Changes {
    fn between(old: &toml::Table, new: &toml::Table) -> Self {
        let mut changes = Self::default();
        for (key, line) in mpcl_experiment::differences(old, new) {
            let harmless = HARMLESS
                .iter()
                .any(|h| key == *h || key.starts_with(&format!("{h}.")));
            if harmless {
                changes.harmless.push(line);
            } else {
                changes.breaking.push(line);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_sorted_into_harmless_and_breaking_by_key() {
        // Expected lists written by hand from the two edits below.
        let old = Config::default_experiment();
        let mut new = old.clone();
        new.train.log_every = 7;
        new.model.projector_dim = 64;
        new.eval.knn.k = 5;
        let ck = Checkpoint {
            path: PathBuf::new(),
            state: State {
                format: FORMAT,
                mpcl: String::new(),
                progress: Progress::default(),
                random: RandomState {
                    seed: 0,
                    torch_next_step: 0,
                },
                baselines: Vec::new(),
                config: config_table(&old),
            },
        };
        let c = ck.changes(&new);
        assert_eq!(
            c.breaking,
            [format!(
                "model.projector_dim: {} → 64",
                old.model.projector_dim
            )]
        );
        assert_eq!(
            c.harmless,
            [
                format!("eval.knn.k: {} → 5", old.eval.knn.k),
                format!("train.log_every: {} → 7", old.train.log_every),
            ]
        );
        assert_eq!(ck.changes(&old), Changes::default());
    }

    #[test]
    fn torch_seeds_differ_between_steps_and_seeds() {
        // Not an oracle of values, a check of the mixing: 1000 steps × 3 seeds, no repeats.
        let mut seen = std::collections::HashSet::new();
        for seed in 0..3 {
            for step in 0..1000 {
                assert!(seen.insert(torch_seed(seed, step)), "{seed} {step}");
            }
        }
    }
}
