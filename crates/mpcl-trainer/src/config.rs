//! Experiment configuration: TOML into typed settings with documented defaults, validated
//! once. Unknown keys are errors, so a typo never silently trains the default.

use std::path::{Path, PathBuf};

use mpcl_aggregators::AggregatorKind;
use mpcl_data::augment::GrayAugment;
use mpcl_eval::{KnnConfig, ProbeConfig};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The most libtorch threads a config may ask for.
const MAX_THREADS: usize = 1024;

/// The embedded default experiment, `configs/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/default.toml");

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The experiment's kind: `"train"` (default) is the only one this type runs; `"toy"`
    /// files belong to `mpcl toy` (see `mpcl_graph::toy::ToyConfig`).
    #[serde(default)]
    pub kind: ExperimentKind,
    /// Names the run directory (`<runs>/<name>-<time>`). Default `"experiment"`.
    #[serde(default = "default_name")]
    pub name: String,
    /// What to train on.
    #[serde(default)]
    pub data: DataConfig,
    /// The networks.
    #[serde(default)]
    pub model: ModelConfig,
    /// Optimisation.
    #[serde(default)]
    pub train: TrainConfig,
    /// How views are drawn: `[augment]`, defaults documented on
    /// [`GrayAugment`](mpcl_data::augment::GrayAugment) (torchvision's where it has one).
    #[serde(default)]
    pub augment: GrayAugment,
    /// How the frozen encoder is judged.
    #[serde(default)]
    pub eval: EvalConfig,
}

fn default_name() -> String {
    "experiment".into()
}

/// The top-level `kind` key of an experiment file: which `mpcl` subcommand runs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExperimentKind {
    /// `mpcl train`.
    #[default]
    Train,
    /// `mpcl toy`.
    Toy,
}

/// Data sets the trainer can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    /// Fashion-MNIST, 28×28 gray, 10 classes.
    FashionMnist,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The data set. Default `"fashion-mnist"`.
    pub dataset: Dataset,
    /// The data directory; default `$MPCL_DATA_DIR` or `~/.local/share/mpcl/datasets`. The
    /// `--data-dir` flag overrides it.
    pub dir: Option<PathBuf>,
    /// Train on the first n training images only; 0 (default) for all.
    pub train_subset: usize,
    /// Evaluate on the first n test images only; 0 (default) for all.
    pub test_subset: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: Dataset::FashionMnist,
            dir: None,
            train_subset: 0,
            test_subset: 0,
        }
    }
}

/// Backbones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// 3×3 conv–BN–ReLU blocks with max-pooling between them, global average pooling.
    SmallCnn,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The backbone. Default `"small-cnn"`.
    pub encoder: EncoderKind,
    /// Output channels of each conv block. Default `[32, 64, 128]`.
    pub widths: Vec<usize>,
    /// Hidden width of the projector (Linear–BN–ReLU–Linear). Default 256.
    pub projector_hidden: usize,
    /// Output width of the projector, the loss's input. Default 128.
    pub projector_dim: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderKind::SmallCnn,
            widths: vec![32, 64, 128],
            projector_hidden: 256,
            projector_dim: 128,
        }
    }
}

/// Training objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// SimCLR: InfoNCE (NT-Xent) over the views of the batch.
    Simclr,
    /// Spectral contrastive learning (HaoChen et al.): −2·E[zᵀz⁺] + μ·E[(zᵀz⁻)²].
    Spectral,
}

impl Method {
    /// The name used in result tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Simclr => "SimCLR",
            Self::Spectral => "Spectral",
        }
    }
}

/// Optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Adam with decoupled weight decay.
    Adamw,
    /// SGD with momentum 0.9.
    Sgd,
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The objective: `"simclr"` (default) or `"spectral"`.
    pub method: Method,
    /// How positives are aggregated: `"plain"` (default) or `"attention"`.
    pub aggregator: AggregatorKind,
    /// Passes over the training images. Default 3.
    pub epochs: usize,
    /// Images per step; each contributes `views` rows. Default 128.
    pub batch_size: usize,
    /// Views per image. Default 2.
    pub views: usize,
    /// InfoNCE temperature τ (SimCLR). Default 0.2.
    pub temperature: f64,
    /// Weight μ of the spectral loss's uniformity term. Default 1.
    pub spectral_mu: f64,
    /// The optimiser. Default `"adamw"`.
    pub optimizer: Optimizer,
    /// Peak learning rate. Default 3e-3.
    pub lr: f64,
    /// Weight decay. Default 1e-6.
    pub weight_decay: f64,
    /// Linear warm-up length in epochs (fractions allowed). Default 0.1.
    pub warmup_epochs: f64,
    /// The learning rate at the last step, reached along a cosine. Default 0.
    pub min_lr: f64,
    /// Seeds the weights, the order and the views. Default 0.
    pub seed: u64,
    /// Threads for libtorch; 0 (default) for one per core.
    pub threads: usize,
    /// Steps between progress lines when the output is not a terminal. Default 20.
    pub log_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            method: Method::Simclr,
            aggregator: AggregatorKind::Plain,
            epochs: 3,
            batch_size: 128,
            views: 2,
            temperature: 0.2,
            spectral_mu: 1.0,
            optimizer: Optimizer::Adamw,
            lr: 3e-3,
            weight_decay: 1e-6,
            warmup_epochs: 0.1,
            min_lr: 0.0,
            seed: 0,
            threads: 0,
            log_every: 20,
        }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Also evaluate raw pixels and the randomly initialised encoder. Default true.
    pub baselines: bool,
    /// Images per forward pass when extracting features. Default 1024.
    pub batch_size: usize,
    /// `[eval.knn]`: k (200), temperature (0.1), block (512).
    pub knn: KnnConfig,
    /// `[eval.probe]`: epochs (30), batch_size (512), lr (1e-2), weight_decay (1e-5), seed.
    pub probe: ProbeConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            baselines: true,
            batch_size: 1024,
            knn: KnnConfig::default(),
            probe: ProbeConfig::default(),
        }
    }
}

impl Config {
    /// Parses and validates TOML; `origin` names the file in errors.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming `origin` and the key at fault.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TrainError> {
        let config: Self = toml::from_str(text).map_err(|e| TrainError::Config {
            origin: origin.into(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate().map_err(|message| TrainError::Config {
            origin: origin.into(),
            message,
        })?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the file, also when it cannot be read.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &origin)
    }

    /// The embedded default experiment.
    pub fn default_experiment() -> Self {
        Self::parse(DEFAULT_TOML, "configs/default.toml").expect("the default config is valid")
    }

    /// Checks every value; the message names the key and the value.
    ///
    /// # Errors
    /// A message naming the first invalid key.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.train;
        let positive = |key: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{key} = {v}: must be > 0"))
            }
        };
        let at_least = |key: &str, v: usize, min: usize| {
            if v >= min {
                Ok(())
            } else {
                Err(format!("{key} = {v}: must be ≥ {min}"))
            }
        };
        if self.kind != ExperimentKind::Train {
            return Err("kind = \"toy\": a toy experiment; run it with `mpcl toy`".into());
        }
        let name = &self.name;
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(format!(
                "name = {name:?}: must be non-empty, without slashes or a leading dot"
            ));
        }
        at_least("train.epochs", t.epochs, 1)?;
        at_least("train.batch_size", t.batch_size, 2)?;
        at_least("train.views", t.views, 2)?;
        positive("train.temperature", t.temperature)?;
        positive("train.lr", t.lr)?;
        if !(t.spectral_mu >= 0.0 && t.spectral_mu.is_finite()) {
            return Err(format!(
                "train.spectral_mu = {}: must be ≥ 0",
                t.spectral_mu
            ));
        }
        if t.method == Method::Spectral && t.aggregator != AggregatorKind::Plain {
            return Err(format!(
                "train.aggregator = {:?} re-weights InfoNCE terms: it needs method = \"simclr\"",
                t.aggregator
            ));
        }
        if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
            return Err(format!(
                "train.weight_decay = {}: must be ≥ 0",
                t.weight_decay
            ));
        }
        if !(0.0..t.epochs as f64).contains(&t.warmup_epochs) {
            return Err(format!(
                "train.warmup_epochs = {}: must be ≥ 0 and below train.epochs = {}",
                t.warmup_epochs, t.epochs
            ));
        }
        if !(0.0..=t.lr).contains(&t.min_lr) {
            return Err(format!(
                "train.min_lr = {}: must lie in [0, train.lr = {}]",
                t.min_lr, t.lr
            ));
        }
        at_least("train.log_every", t.log_every, 1)?;
        if t.threads > MAX_THREADS {
            return Err(format!(
                "train.threads = {}: must be at most {MAX_THREADS}",
                t.threads
            ));
        }
        let m = &self.model;
        if m.widths.is_empty() || m.widths.contains(&0) {
            return Err(format!(
                "model.widths = {:?}: need at least one width, all > 0",
                m.widths
            ));
        }
        at_least("model.projector_hidden", m.projector_hidden, 1)?;
        at_least("model.projector_dim", m.projector_dim, 1)?;
        self.augment
            .validate()
            .map_err(|e| format!("augment.{e}"))?;
        let e = &self.eval;
        at_least("eval.batch_size", e.batch_size, 1)?;
        at_least("eval.knn.k", e.knn.k, 1)?;
        at_least("eval.knn.block", e.knn.block, 1)?;
        positive("eval.knn.temperature", e.knn.temperature)?;
        at_least("eval.probe.epochs", e.probe.epochs, 1)?;
        at_least("eval.probe.batch_size", e.probe.batch_size, 1)?;
        positive("eval.probe.lr", e.probe.lr)?;
        if !(e.probe.weight_decay >= 0.0 && e.probe.weight_decay.is_finite()) {
            return Err(format!(
                "eval.probe.weight_decay = {}: must be ≥ 0",
                e.probe.weight_decay
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parses_and_matches_the_documented_defaults() {
        let c = Config::default_experiment();
        assert_eq!(c.name, "default");
        assert_eq!(c.kind, ExperimentKind::Train);
        assert_eq!(c.train, TrainConfig::default());
        assert_eq!(c.model, ModelConfig::default());
        assert_eq!(c.eval, EvalConfig::default());
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        let err = Config::parse("[train]\nepoch = 3\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("my.toml: "), "{err}");
        assert!(err.contains("unknown field `epoch`"), "{err}");
        let err = Config::parse("[trian]\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `trian`"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                "[train]\nbatch_size = 1\n",
                "train.batch_size = 1: must be ≥ 2",
            ),
            (
                "[train]\ntemperature = -0.5\n",
                "train.temperature = -0.5: must be > 0",
            ),
            ("[train]\nwarmup_epochs = 5.0\n", "train.warmup_epochs = 5"),
            ("[model]\nwidths = []\n", "model.widths = []"),
            ("[augment]\nflip_p = 2.0\n", "augment.flip_p = 2"),
            (
                "[augment]\ncrop_scale = [0.2, 0.5, 1.0]\n",
                "invalid length 3",
            ),
            ("name = \".\"\n", "leading dot"),
            ("kind = \"toy\"\n", "run it with `mpcl toy`"),
            ("kind = \"plot\"\n", "unknown variant `plot`"),
            ("[eval.knn]\nk = 0\n", "eval.knn.k = 0"),
            (
                "[eval.probe]\nweight_decay = nan\n",
                "eval.probe.weight_decay = NaN",
            ),
            ("[augment]\nmean = inf\n", "augment.mean = inf"),
            ("[train]\nthreads = 100000\n", "train.threads = 100000"),
            ("[data]\ndataset = \"mnist\"\n", "unknown variant `mnist`"),
            ("[train]\nepochs = \"three\"\n", "invalid type"),
            (
                "[train]\nmethod = \"spectral\"\naggregator = \"attention\"\n",
                "it needs method = \"simclr\"",
            ),
        ];
        for (toml, expected) in cases {
            let err = Config::parse(toml, "x.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "{toml:?} gave {err}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Config::load(Path::new("/no/such/config.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/no/such/config.toml: "), "{err}");
    }
}
