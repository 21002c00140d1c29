//! Experiment configuration: TOML into typed settings with documented defaults, validated
//! once. Unknown keys are errors, so a typo never silently trains the default.

use std::path::{Path, PathBuf};

use mpcl_aggregators::AggregatorsConfig;
use mpcl_data::augment::AugmentConfig;
use mpcl_data::{Dataset, DatasetName};
use mpcl_eval::projection::ProjectionConfig;
use mpcl_eval::{DiagnosticsConfig, KnnConfig, ProbeConfig};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The most libtorch threads a config may ask for.
const MAX_THREADS: usize = 1024;

/// The embedded default experiment, `configs/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/default.toml");

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct Config {
    /// The experiment's kind: `"train"` (default) is the only one this type runs; `"toy"`
    /// files belong to `mpcl toy` (see `mpcl_graph::toy::ToyConfig`), `"eigenspace"` ones to
    /// `mpcl eigenspace` ([`crate::eigenspace::EigenspaceConfig`]).
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
    /// `[aggregators]`: the GNN-inspired training variants, each switched on by its
    /// sub-table ([`AggregatorsConfig`]); none is the plain loss.
    #[serde(default)]
    pub aggregators: AggregatorsConfig,
    /// How views are drawn: `[augment]` with the keys of
    /// [`Pipeline`](mpcl_data::augment::Pipeline) (defaults documented there, torchvision's
    /// where it has one), `[augment.viewN]` per-view changes and `[augment.multicrop]`; see
    /// [`AugmentConfig`].
    #[serde(default)]
    pub augment: AugmentConfig,
    /// How the frozen encoder is judged.
    #[serde(default)]
    pub eval: EvalConfig,
    /// `[checkpoint]`: when the run saves what it needs to resume.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
}

/// `[checkpoint]`: a checkpoint is written at the end of every `every_epochs`-th epoch and of
/// the last one, and every `every_steps` steps within an epoch when that is not 0; the newest
/// `keep_last` are kept. See [`crate::checkpoint`] for what one holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct CheckpointConfig {
    /// Epochs between checkpoints. Default 1.
    pub every_epochs: usize,
    /// Steps between checkpoints within an epoch; 0 (default) for epoch ends only.
    pub every_steps: usize,
    /// How many checkpoints to keep, newest first. Default 2.
    pub keep_last: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every_epochs: 1,
            every_steps: 0,
            keep_last: 2,
        }
    }
}

/// What a non-finite loss does (`train.on_nonfinite`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NonFiniteLoss {
    /// Stop the run with an error naming the epoch, the step and the last good checkpoint
    /// (the default).
    #[default]
    Stop,
    /// Skip the step (no update, the aggregators observe nothing), count it in
    /// `metrics.csv` and go on.
    Skip,
}

/// The dtype of the training forward pass (`train.precision`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Everything in f32 (the default).
    #[default]
    F32,
    /// The encoder's forward pass (and SimSiam's predictor) under libtorch's autocast with
    /// bf16, as `torch.autocast(device_type, dtype=torch.bfloat16)`: convolutions and matrix
    /// products in bf16, the rest and the loss in f32, parameters and optimiser state in f32.
    /// Meant for GPUs with bf16 units; on a CPU without them it is slower than f32.
    Bf16,
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
    /// `mpcl eigenspace`.
    Eigenspace,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct DataConfig {
    /// The data set, any name of the registry ([`DatasetName`]): `"fashion-mnist"`
    /// (default), `"mnist"`, `"cifar10"`, `"cifar100"` (fine labels), `"cifar100-coarse"`,
    /// `"stl10"` or `"image-folder"` (with `root`).
    pub dataset: DatasetName,
    /// The root of an image folder (`train/<class>/…`, `val/<class>/…`); image-folder only.
    pub root: Option<PathBuf>,
    /// The class list of an image folder, one folder name per line in label order (default:
    /// sorted folder names); image-folder only.
    pub class_list: Option<PathBuf>,
    /// The data directory; default `$MPCL_DATA_DIR` or `~/.local/share/mpcl/datasets`. The
    /// `--data-dir` flag overrides it.
    pub dir: Option<PathBuf>,
    /// Train on the first n training images only; 0 (default) for all.
    pub train_subset: usize,
    /// Evaluate on the first n test images only; 0 (default) for all.
    pub test_subset: usize,
}

impl DataConfig {
    /// The registry entry these keys name.
    ///
    /// # Errors
    /// A message naming `data.root` when image-folder has none or another data set has one.
    pub fn registry_entry(&self) -> Result<Dataset, String> {
        Dataset::new(
            self.dataset,
            self.root.as_deref(),
            self.class_list.as_deref(),
        )
        .map_err(|e| format!("data.dataset = \"{}\" with data.root: {e}", self.dataset))
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetName::FashionMnist,
            root: None,
            class_list: None,
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
    /// ResNet-18 (torchvision's names and init), 512 features.
    Resnet18,
    /// ResNet-34, 512 features.
    Resnet34,
    /// ResNet-50 (bottleneck blocks), 2048 features.
    Resnet50,
}

/// A ResNet's first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StemKind {
    /// 3×3 stride-1 convolution (`model.stem_padding`), no max-pooling: for 28–32 px images.
    Cifar,
    /// torchvision's 7×7 stride-2 convolution and 3×3 stride-2 max-pooling.
    Imagenet,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ModelConfig {
    /// The backbone: `"small-cnn"` (default), `"resnet18"`, `"resnet34"`, `"resnet50"`.
    pub encoder: EncoderKind,
    /// Output channels of each conv block of the small CNN. Default `[32, 64, 128]`.
    pub widths: Vec<usize>,
    /// The small CNN's last average pooling: to a `pool × pool` grid, so the backbone feature
    /// has `widths[-1] · pool²` dimensions. Default 1 (global pooling).
    pub pool: usize,
    /// A ResNet's stem: `"cifar"` (default) or `"imagenet"`.
    pub stem: StemKind,
    /// Zero padding of the CIFAR stem's 3×3 convolution. Default 1 (SimSiam's reference: 2).
    pub stem_padding: usize,
    /// Start each ResNet block's last BN at weight 0. Default false.
    pub zero_init_residual: bool,
    /// Linear layers of the projector (hidden ones are Linear–BN–ReLU). Default 2.
    pub projector_layers: usize,
    /// Hidden width of the projector. Default 256.
    pub projector_hidden: usize,
    /// Output width of the projector, the loss's input. Default 128.
    pub projector_dim: usize,
    /// Hidden width of SimSiam's predictor (projector_dim → this → projector_dim).
    /// Default 512.
    pub predictor_hidden: usize,
    /// Keep the convolution weights, and with them the activations, in channels-last
    /// (NHWC) memory order, where libtorch's oneDNN convolutions run faster on CPU (1.32×
    /// for an epoch of the default experiment, docs/tuning.md). The values are the same up
    /// to floating-point rounding; saved weights are in the usual NCHW order. Default true.
    pub channels_last: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderKind::SmallCnn,
            widths: vec![32, 64, 128],
            pool: 1,
            stem: StemKind::Cifar,
            stem_padding: 1,
            zero_init_residual: false,
            projector_layers: 2,
            projector_hidden: 256,
            projector_dim: 128,
            predictor_hidden: 512,
            channels_last: true,
        }
    }
}

impl ModelConfig {
    /// Checks the small CNN against its smallest input, `side` pixels on the shorter side,
    /// which `input` names (`the 28 × 28 images`, `augment.size = 8`): the
    /// `widths.len() − 1` max-poolings halve the side (rounding down) and must leave at
    /// least a pixel, and `pool` may not ask for a grid finer than what remains, whose
    /// cells would only repeat.
    ///
    /// # Errors
    /// A message naming `model.widths` or `model.pool`, the map's size and the input.
    pub fn check_pool(&self, side: usize, input: &str) -> Result<(), String> {
        if self.encoder != EncoderKind::SmallCnn {
            return Ok(());
        }
        let poolings = self.widths.len().saturating_sub(1);
        let last = u32::try_from(poolings)
            .ok()
            .and_then(|p| side.checked_shr(p))
            .unwrap_or(0);
        if last == 0 {
            let fit = side.checked_ilog2().unwrap_or(0);
            return Err(format!(
                "model.widths = {:?}: its {poolings} max-poolings leave nothing of the \
                 {side}-pixel inputs ({input}); only {fit} can fit, so use at most {} widths \
                 or larger inputs",
                self.widths,
                fit + 1
            ));
        }
        if self.pool > last {
            return Err(format!(
                "model.pool = {}: the small CNN's last feature map is {last} × {last} for \
                 the {side}-pixel inputs ({input}), so the grid can be at most {last} × {last}",
                self.pool
            ));
        }
        Ok(())
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
    /// SimSiam (Chen & He): negative cosine between one view's prediction and another's
    /// projection under a stop-gradient; the predictor keeps the peak rate unscheduled.
    Simsiam,
}

impl Method {
    /// The name used in result tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Simclr => "SimCLR",
            Self::Spectral => "Spectral",
            Self::Simsiam => "SimSiam",
        }
    }
}

/// Optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Adam with decoupled weight decay.
    Adamw,
    /// SGD with momentum (`train.momentum`, `train.nesterov`), PyTorch's semantics.
    Sgd,
    /// LARS around SGD with momentum, as in SimCLR: biases and BN parameters get neither
    /// weight decay nor the trust ratio (`train.trust_coefficient`).
    Lars,
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct TrainConfig {
    /// The objective: `"simclr"` (default), `"spectral"` or `"simsiam"`.
    pub method: Method,
    /// Passes over the training images. Default 5.
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
    /// Momentum μ of SGD and LARS. Default 0.9.
    pub momentum: f64,
    /// Nesterov momentum for SGD and LARS. Default false.
    pub nesterov: bool,
    /// LARS's trust coefficient τ. Default 0.001.
    pub trust_coefficient: f64,
    /// Peak learning rate (before `scale_lr`). Default 3e-3.
    pub lr: f64,
    /// Scale `lr` by batch_size/256 (Goyal et al.), as the SimCLR and SimSiam references do.
    /// `min_lr` is not scaled. Default false.
    pub scale_lr: bool,
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
    /// `"cpu"` (default), `"cuda"` or `"cuda:N"`; a CUDA request without a usable CUDA
    /// libtorch is an error. One device per run: multi-GPU training is out of scope.
    pub device: String,
    /// `"f32"` (default) or `"bf16"`: see [`Precision`]. Evaluation always runs in f32.
    pub precision: Precision,
    /// Train a linear classifier on the detached backbone features alongside (solo-learn's
    /// online classifier) and report its accuracy each epoch. Default true.
    pub online_classifier: bool,
    /// The online classifier's fixed SGD rate (momentum 0.9). Default 0.1.
    pub online_lr: f64,
    /// Steps between progress lines when the output is not a terminal. Default 20.
    pub log_every: usize,
    /// `"stop"` (default) or `"skip"`: see [`NonFiniteLoss`].
    pub on_nonfinite: NonFiniteLoss,
    /// Evaluate the kNN monitor (metrics.csv `knn_test_top1`) every this many epochs; 0
    /// never. Default 1.
    pub knn_every: usize,
    /// Training images in the kNN monitor's memory bank (the first ones). Default 10 000.
    pub knn_bank: usize,
    /// Measure the alignment/uniformity split of the gradient (metrics.csv) every this many
    /// steps; 0 never. It costs about a fifth of a small-CNN step. Default 10.
    pub split_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            method: Method::Simclr,
            epochs: 5,
            batch_size: 128,
            views: 2,
            temperature: 0.2,
            spectral_mu: 1.0,
            optimizer: Optimizer::Adamw,
            momentum: 0.9,
            nesterov: false,
            trust_coefficient: 1e-3,
            lr: 3e-3,
            scale_lr: false,
            weight_decay: 1e-6,
            warmup_epochs: 0.1,
            min_lr: 0.0,
            seed: 0,
            threads: 0,
            device: "cpu".into(),
            precision: Precision::F32,
            online_classifier: true,
            online_lr: 0.1,
            log_every: 20,
            on_nonfinite: NonFiniteLoss::Stop,
            split_every: 10,
            knn_every: 1,
            knn_bank: 10_000,
        }
    }
}

impl TrainConfig {
    /// The schedule's peak rate: `lr`, times batch_size/256 with `scale_lr`.
    pub fn peak_lr(&self) -> f64 {
        if self.scale_lr {
            self.lr * self.batch_size as f64 / 256.0
        } else {
            self.lr
        }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct EvalConfig {
    /// Evaluate at all. Default true; false trains and saves the encoder only (throughput
    /// benchmarks, or runs judged later).
    pub enabled: bool,
    /// Also evaluate raw pixels and the randomly initialised encoder. Default true.
    pub baselines: bool,
    /// Images per forward pass when extracting features. Default 1024.
    pub batch_size: usize,
    /// `[eval.knn]`: k (200), temperature (0.1), block (512).
    pub knn: KnnConfig,
    /// `[eval.probe]`: protocol ("standardised" or "simclr-reference"); for the first
    /// epochs (30), batch_size (512), lr (1e-2), weight_decay (1e-5); seed (0); and
    /// `[eval.probe.reference]`: iterations (8000), batch_size (1024), lr (0.1), momentum
    /// (0.9), weight_decay (1e-4), padding (4).
    pub probe: ProbeConfig,
    /// `[eval.diagnostics]`: samples (2048), collapse_fraction (0.05).
    pub diagnostics: DiagnosticsConfig,
    /// `[eval.projection]`: the PCA and t-SNE maps of test features in `projection.png`:
    /// enabled (true), samples (2000), perplexity (30), iterations (1000), theta (0.5).
    pub projection: ProjectionConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            baselines: true,
            batch_size: 1024,
            knn: KnnConfig::default(),
            probe: ProbeConfig::default(),
            diagnostics: DiagnosticsConfig::default(),
            projection: ProjectionConfig::default(),
        }
    }
}

impl Config {
    /// Parses and validates TOML; `origin` names the file in errors.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming `origin` and the key at fault.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TrainError> {
        check::parse(text, origin, Self::validate)
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
        use check::{at_least, fraction, non_negative, positive};
        match self.kind {
            ExperimentKind::Train => {}
            ExperimentKind::Toy => {
                return Err("kind = \"toy\": a toy experiment; run it with `mpcl toy`".into());
            }
            ExperimentKind::Eigenspace => {
                return Err("kind = \"eigenspace\": run it with `mpcl eigenspace`".into());
            }
        }
        check::run_name(&self.name)?;
        if let Some(shape) = self.data.registry_entry()?.image_shape() {
            self.check_images(shape)?;
        }
        at_least("train.epochs", t.epochs, 1)?;
        at_least("checkpoint.every_epochs", self.checkpoint.every_epochs, 1)?;
        at_least("checkpoint.keep_last", self.checkpoint.keep_last, 1)?;
        if t.knn_every > 0 {
            at_least("train.knn_bank", t.knn_bank, 1)?;
        }
        let projection = &self.eval.projection;
        positive("eval.projection.perplexity", projection.perplexity)?;
        positive("eval.projection.theta", projection.theta)?;
        at_least("eval.projection.iterations", projection.iterations, 1)?;
        at_least("train.batch_size", t.batch_size, 2)?;
        at_least("train.views", t.views, 2)?;
        positive("train.temperature", t.temperature)?;
        positive("train.lr", t.lr)?;
        non_negative("train.spectral_mu", t.spectral_mu)?;
        self.aggregators.validate()?;
        let a = &self.aggregators;
        if t.method != Method::Simclr && (a.attention.is_some() || a.rewiring.is_some()) {
            return Err(format!(
                "aggregators.attention and aggregators.rewiring change InfoNCE's anchors and \
                 positives: they need train.method = \"simclr\", not {:?}",
                t.method.label()
            ));
        }
        if t.method == Method::Spectral && a.multi_stage.is_some() {
            return Err(
                "aggregators.multi-stage mixes the positives of SimCLR or the targets of \
                 SimSiam: it needs train.method = \"simclr\" or \"simsiam\""
                    .into(),
            );
        }
        non_negative("train.weight_decay", t.weight_decay)?;
        if !(0.0..t.epochs as f64).contains(&t.warmup_epochs) {
            return Err(format!(
                "train.warmup_epochs = {}: must be ≥ 0 and below train.epochs = {}",
                t.warmup_epochs, t.epochs
            ));
        }
        if !(0.0..=t.peak_lr()).contains(&t.min_lr) {
            return Err(format!(
                "train.min_lr = {}: must lie in [0, the peak rate {}]",
                t.min_lr,
                t.peak_lr()
            ));
        }
        if !(0.0..1.0).contains(&t.momentum) {
            return Err(format!(
                "train.momentum = {}: must lie in [0, 1)",
                t.momentum
            ));
        }
        if t.nesterov && t.momentum == 0.0 {
            return Err("train.nesterov = true needs train.momentum > 0".into());
        }
        positive("train.trust_coefficient", t.trust_coefficient)?;
        positive("train.online_lr", t.online_lr)?;
        at_least("train.log_every", t.log_every, 1)?;
        crate::device::parse(&t.device)?;
        if t.threads > MAX_THREADS {
            return Err(format!(
                "train.threads = {}: must be at most {MAX_THREADS}",
                t.threads
            ));
        }
        let m = &self.model;
        check::widths("model.widths", &m.widths)?;
        at_least("model.pool", m.pool, 1)?;
        at_least("model.projector_layers", m.projector_layers, 1)?;
        at_least("model.projector_hidden", m.projector_hidden, 1)?;
        at_least("model.predictor_hidden", m.predictor_hidden, 1)?;
        at_least("model.projector_dim", m.projector_dim, 1)?;
        self.augment
            .validate()
            .map_err(|e| format!("augment.{e}"))?;
        self.augment
            .pipelines(t.views)
            .map_err(|e| format!("augment.{e}"))?;
        let e = &self.eval;
        at_least("eval.batch_size", e.batch_size, 1)?;
        at_least("eval.knn.k", e.knn.k, 1)?;
        at_least("eval.knn.block", e.knn.block, 1)?;
        positive("eval.knn.temperature", e.knn.temperature)?;
        at_least("eval.probe.epochs", e.probe.epochs, 1)?;
        at_least("eval.probe.batch_size", e.probe.batch_size, 1)?;
        positive("eval.probe.lr", e.probe.lr)?;
        non_negative("eval.probe.weight_decay", e.probe.weight_decay)?;
        let r = &e.probe.reference;
        at_least("eval.probe.reference.iterations", r.iterations, 1)?;
        at_least("eval.probe.reference.batch_size", r.batch_size, 1)?;
        positive("eval.probe.reference.lr", r.lr)?;
        fraction("eval.probe.reference.momentum", r.momentum)?;
        non_negative("eval.probe.reference.weight_decay", r.weight_decay)?;
        at_least("eval.diagnostics.samples", e.diagnostics.samples, 2)?;
        fraction(
            "eval.diagnostics.collapse_fraction",
            e.diagnostics.collapse_fraction,
        )?;
        Ok(())
    }

    /// Checks the keys that must fit the images, `(channels, height, width)`: the views'
    /// normalisation and blur, the small CNN's pooling grid, the probe's crop padding.
    /// [`validate`](Self::validate) runs it for data sets of a fixed shape; training runs it
    /// once the data set is loaded.
    ///
    /// # Errors
    /// A message naming the first key that does not fit.
    pub fn check_images(&self, (c, h, w): (usize, usize, usize)) -> Result<(), String> {
        let padding = self.eval.probe.reference.padding;
        if padding >= h.min(w) {
            return Err(format!(
                "eval.probe.reference.padding = {padding}: must be below the {h} × {w} images"
            ));
        }
        self.augment
            .check_images((c, h, w))
            .map_err(|e| format!("augment.{e}"))?;
        // The smallest input the encoder sees: a view of a set size, or an unaugmented
        // image (views of size 0 keep the image's) in evaluation.
        let (side, input) = match self.augment.smallest_size(self.train.views) {
            Some((size, key)) if size < h.min(w) => (size, format!("augment.{key}")),
            _ => (h.min(w), format!("the {h} × {w} images")),
        };
        self.model.check_pool(side, &input)
    }
}

/// Checks of single values for the configs' `validate` (this file's and the eigenspace
/// preset's): each message names the key and the value.
pub(crate) mod check {
    use serde::de::DeserializeOwned;

    use crate::TrainError;

    /// Parses TOML into `T` and validates it; errors name `origin`.
    pub fn parse<T: DeserializeOwned>(
        text: &str,
        origin: &str,
        validate: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<T, TrainError> {
        let error = |message: String| TrainError::Config {
            origin: origin.into(),
            message,
        };
        let config: T = toml::from_str(text).map_err(|e| {
            let experiment = toml::from_str::<toml::Table>(text)
                .is_ok_and(|table| table.contains_key("experiment"));
            if experiment {
                error(format!(
                    "an experiment file ([experiment]), which `mpcl` does not run: \
                     `cargo xtask experiment {origin}` runs its grid"
                ))
            } else {
                error(mpcl_graph::toml_error::describe(&e, text))
            }
        })?;
        validate(&config).map_err(error)?;
        Ok(config)
    }

    /// A finite value above 0.
    pub fn positive(key: &str, v: f64) -> Result<(), String> {
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(format!("{key} = {v}: must be > 0"))
        }
    }

    /// A finite value of at least 0.
    pub fn non_negative(key: &str, v: f64) -> Result<(), String> {
        if v >= 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(format!("{key} = {v}: must be ≥ 0"))
        }
    }

    /// A value in [0, 1].
    pub fn fraction(key: &str, v: f64) -> Result<(), String> {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(format!("{key} = {v}: must lie in [0, 1]"))
        }
    }

    /// A count of at least `min`.
    pub fn at_least(key: &str, v: usize, min: usize) -> Result<(), String> {
        if v >= min {
            Ok(())
        } else {
            Err(format!("{key} = {v}: must be ≥ {min}"))
        }
    }

    /// The `name` of an experiment, which names its run directory.
    pub fn run_name(name: &str) -> Result<(), String> {
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(format!(
                "name = {name:?}: must be non-empty, without slashes or a leading dot"
            ));
        }
        Ok(())
    }

    /// The channels of the small CNN's blocks: at least one, none 0.
    pub fn widths(key: &str, widths: &[usize]) -> Result<(), String> {
        if widths.is_empty() || widths.contains(&0) {
            return Err(format!(
                "{key} = {widths:?}: need at least one width, all > 0"
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
        assert_eq!(c.eval, EvalConfig::default());
        // The documented deviations (docs/tuning.md): a 2 × 2 pooled grid instead of global
        // pooling, and crops of 0.4–1 of the image instead of 0.08–1.
        let model = ModelConfig {
            pool: 2,
            ..Default::default()
        };
        assert_eq!(c.model, model);
        let augment = AugmentConfig {
            base: mpcl_data::augment::Pipeline {
                crop_scale: [0.4, 1.0],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(c.augment, augment);
    }

    #[test]
    fn the_pooled_grid_fits_the_last_feature_map() {
        // 28 px through two 2 × 2 max-poolings: 28 → 14 → 7, by hand; 7 px: 7 → 3 → 1.
        let model = |pool| ModelConfig {
            pool,
            ..Default::default()
        };
        let input = "the 28 × 28 images";
        assert!(model(7).check_pool(28, input).is_ok());
        let err = model(8).check_pool(28, input).unwrap_err();
        assert!(err.starts_with("model.pool = 8: "), "{err}");
        assert!(
            err.contains("7 × 7 for the 28-pixel inputs (the 28 × 28 images)"),
            "{err}"
        );
        assert!(model(1).check_pool(7, input).is_ok());
        assert!(model(2).check_pool(7, input).is_err());
        // Six widths pool five times: 28 → 14 → 7 → 3 → 1 → 0; four poolings fit 28 px.
        let deep = ModelConfig {
            widths: vec![8; 6],
            ..model(1)
        };
        let err = deep.check_pool(28, input).unwrap_err();
        assert!(
            err.starts_with("model.widths = [8, 8, 8, 8, 8, 8]: its 5 max-poolings leave")
                && err.contains("only 4 can fit, so use at most 5 widths"),
            "{err}"
        );
        // A 3-pixel view takes one pooling (3 → 1): two widths at most.
        let err = model(1).check_pool(3, "augment.size = 3").unwrap_err();
        assert!(
            err.contains("(augment.size = 3); only 1 can fit, so use at most 2 widths"),
            "{err}"
        );
        // The ResNets pool globally whatever `pool` says.
        let resnet = ModelConfig {
            encoder: EncoderKind::Resnet18,
            ..model(9)
        };
        assert!(resnet.check_pool(28, input).is_ok());
    }

    #[test]
    fn an_experiment_file_is_named_as_one() {
        let err = Config::parse(
            "[experiment]\nname = \"e\"\n[axes]\nseed = [0, 1]\n",
            "e.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("e.toml: an experiment file"), "{err}");
        assert!(err.contains("cargo xtask experiment e.toml"), "{err}");
        // Any other unknown table keeps serde's message.
        let err = Config::parse("[axes]\n", "c.toml").unwrap_err().to_string();
        assert!(err.contains("unknown field `axes`"), "{err}");
    }

    #[test]
    fn multi_crop_parses_and_extra_view_tables_are_named() {
        let toml = "[augment.multicrop]\ncount = 2\nsize = 16\n";
        let cfg = Config::parse(toml, "x.toml").unwrap();
        assert_eq!(cfg.augment.pipelines(cfg.train.views).unwrap().len(), 4);
        let err = Config::parse("[augment.view2]\nflip_p = 0.0\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("augment.view2: there are only 2 views"),
            "{err}"
        );
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
    fn type_errors_name_the_key_not_a_line() {
        // The expected paths are the keys as written, read off each text by hand; the
        // messages are serde's. No line numbers: `xtask experiment` checks configs it wrote
        // itself, whose lines are not the user's.
        let cases = [
            (
                "[train]\nepoch = 3\n",
                "x.toml: train.epoch: unknown field `epoch`",
            ),
            (
                "[train]\nlr = \"fast\"\n",
                "x.toml: train.lr: invalid type: string \"fast\"",
            ),
            (
                "train.lr = \"fast\"\n",
                "x.toml: train.lr: invalid type: string \"fast\"",
            ),
            (
                "[train]\nseed = 1\n[eval.knn]\nk = \"x\"\n",
                "x.toml: eval.knn.k: invalid type: string \"x\"",
            ),
            (
                "[eval]\nknn = 3\n",
                "x.toml: eval.knn: invalid type: integer `3`, expected a table",
            ),
            (
                "[model]\nwidths = [32, \"64\"]\n",
                "x.toml: model.widths[1]: invalid type: string \"64\"",
            ),
            // [augment] is read through a table of its own, which names the key inside.
            (
                "[augment]\ncrop_scale = [0.4, \"one\"]\n",
                "x.toml: augment.crop_scale[1]: invalid type: string \"one\"",
            ),
            (
                "[augment]\nflip_q = 0.5\n",
                "x.toml: augment.flip_q: unknown field `flip_q`",
            ),
            (
                "[augment.view1]\nflip_p = \"x\"\n",
                "x.toml: augment.view1.flip_p: invalid type: string \"x\"",
            ),
            (
                "[augment.multicrop]\ncount = -1\n",
                "x.toml: augment.multicrop.count: invalid value: integer `-1`",
            ),
        ];
        for (toml, expected) in cases {
            let err = Config::parse(toml, "x.toml").unwrap_err().to_string();
            assert!(err.starts_with(expected), "{toml:?} gave {err}");
            assert!(!err.contains("at line"), "{toml:?} gave {err}");
        }
        // A syntax error belongs to no key and keeps toml's line.
        let err = Config::parse("[train\n", "x.toml").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn keys_that_must_fit_the_images_are_checked_against_the_data_sets_shape() {
        // Shapes from the formats: Fashion-MNIST 1 × 28 × 28, CIFAR-10 3 × 32 × 32, STL-10
        // 3 × 96 × 96; the small CNN's default widths pool twice, 28 → 7 and 96 → 24.
        let cases = [
            (
                "[augment]\nmean = [0.5, 0.5]\n",
                "augment.mean = [0.5, 0.5]: need 1 value for 1-channel images",
            ),
            (
                "[data]\ndataset = \"cifar10\"\n[augment.view1]\nstd = [0.2, 0.2]\n",
                "augment.view1.std = [0.2, 0.2]: need 1 or 3 values for 3-channel images",
            ),
            (
                "[data]\ndataset = \"stl10\"\n[augment.multicrop]\ncount = 2\nsize = 8\n\
                 blur_p = 0.5\nblur_kernel = 17\n",
                "augment.multicrop.blur_kernel = 17: too large for 8×8 views",
            ),
            (
                "[eval.probe.reference]\npadding = 28\n",
                "eval.probe.reference.padding = 28: must be below the 28 × 28 images",
            ),
            (
                "[model]\npool = 8\n",
                "model.pool = 8: the small CNN's last feature map is 7 × 7 for the 28-pixel \
                 inputs (the 28 × 28 images)",
            ),
            // The smallest input names the key it comes from: a view's size, multi-crop's.
            (
                "[augment]\nsize = 3\n",
                "model.widths = [32, 64, 128]: its 2 max-poolings leave nothing of the 3-pixel \
                 inputs (augment.size = 3); only 1 can fit, so use at most 2 widths",
            ),
            (
                "[augment.multicrop]\ncount = 2\nsize = 2\n[augment.view1]\nsize = 3\n",
                "(augment.multicrop.size = 2)",
            ),
        ];
        for (toml, expected) in cases {
            let err = Config::parse(toml, "x.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "{toml:?} gave {err}");
        }
        // The same keys fit a larger data set, and an image folder's shape is known only
        // once it is read, so training checks it then.
        let fits = [
            "[data]\ndataset = \"stl10\"\n[model]\npool = 8\n",
            "[data]\ndataset = \"cifar10\"\n[augment]\nmean = [0.5, 0.5, 0.5]\n",
            "[data]\ndataset = \"image-folder\"\nroot = \"/x\"\n[augment]\nmean = [0.1, 0.2]\n",
        ];
        for toml in fits {
            Config::parse(toml, "x.toml").unwrap_or_else(|e| panic!("{toml:?}: {e}"));
        }
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
            ("[model]\npool = 0\n", "model.pool = 0"),
            ("[augment]\nflip_p = 2.0\n", "augment.flip_p = 2"),
            (
                "[augment]\ncrop_scale = [0.2, 0.5, 1.0]\n",
                "invalid length 3",
            ),
            ("name = \".\"\n", "leading dot"),
            ("kind = \"toy\"\n", "run it with `mpcl toy`"),
            ("kind = \"eigenspace\"\n", "run it with `mpcl eigenspace`"),
            ("kind = \"plot\"\n", "unknown variant `plot`"),
            ("[eval.knn]\nk = 0\n", "eval.knn.k = 0"),
            (
                "[eval.probe]\nweight_decay = nan\n",
                "eval.probe.weight_decay = NaN",
            ),
            (
                "[eval.probe]\nprotocol = \"simclr\"\n",
                "unknown variant `simclr`",
            ),
            (
                "[eval.probe.reference]\nmomentum = 1.5\n",
                "eval.probe.reference.momentum = 1.5: must lie in [0, 1]",
            ),
            (
                "[eval.diagnostics]\nsamples = 1\n",
                "eval.diagnostics.samples = 1: must be ≥ 2",
            ),
            ("[augment]\nmean = [inf]\n", "augment.mean = [inf]"),
            ("[augment.view1]\nhue = 0.7\n", "augment.view1.hue = 0.7"),
            ("[train]\nthreads = 100000\n", "train.threads = 100000"),
            ("[data]\ndataset = \"svhn\"\n", "unknown variant `svhn`"),
            (
                "[data]\ndataset = \"image-folder\"\n",
                "image-folder needs a root directory",
            ),
            (
                "[data]\ndataset = \"mnist\"\nroot = \"/x\"\n",
                "apply to image-folder only",
            ),
            (
                "[train]\nmomentum = 1.0\n",
                "train.momentum = 1: must lie in [0, 1)",
            ),
            (
                "[train]\nmomentum = 0.0\nnesterov = true\n",
                "train.nesterov = true needs train.momentum > 0",
            ),
            (
                "[train]\ntrust_coefficient = 0.0\n",
                "train.trust_coefficient = 0: must be > 0",
            ),
            (
                // Scaled: 1e-3 · 128/256 = 5e-4 < min_lr.
                "[train]\nlr = 1e-3\nscale_lr = true\nmin_lr = 8e-4\n",
                "train.min_lr = 0.0008: must lie in [0, the peak rate 0.0005]",
            ),
            ("[train]\nepochs = \"three\"\n", "invalid type"),
            (
                "[train]\nmethod = \"spectral\"\n[aggregators.attention]\n",
                "they need train.method = \"simclr\"",
            ),
            (
                "[aggregators.multi-stage]\nmix = 2.0\n",
                "aggregators.multi-stage.mix = 2",
            ),
        ];
        for (toml, expected) in cases {
            let err = Config::parse(toml, "x.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "{toml:?} gave {err}");
        }
    }

    #[test]
    fn scale_lr_multiplies_by_batch_over_256() {
        // 0.5 · 512/256 = 1.0, SimSiam's reference rule.
        let text = "[train]\nlr = 0.5\nbatch_size = 512\nscale_lr = true\n";
        assert_eq!(Config::parse(text, "x").unwrap().train.peak_lr(), 1.0);
        let text = "[train]\nlr = 0.5\nbatch_size = 512\n";
        assert_eq!(Config::parse(text, "x").unwrap().train.peak_lr(), 0.5);
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Config::load(Path::new("/no/such/config.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/no/such/config.toml: "), "{err}");
    }
}
