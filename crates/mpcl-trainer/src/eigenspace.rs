//! `mpcl eigenspace`: the thesis of docs/science.md §3 on real images. Does a contrastive
//! encoder trained on an augmentation graph learn the top-k eigenspace of that graph?
//!
//! ```text
//! views     N = n·m: m augmented views of each of the first n training images, drawn once
//! graph     A = w·[views of one image] + w_knn·[symmetrised k-NN on view pixels]
//! target    U = top-k eigenvectors of Ā = D^-1/2 A D^-1/2 (Lanczos), k = feature dim
//! training  pairs (x, x′) drawn with probability A[x, x′]/ΣA, B per step, Adam;
//!           SimCLR (InfoNCE, τ) and the spectral loss, from one initialisation
//! measures  every M steps: F = D^1/2 f and the raw f of all N views, for f = z and
//!           f = z/‖z‖; principal angles to span(U), mean cos², centred R² both ways
//! ```
//! References measured the same way: random encoders (several seeds), the top-k principal
//! components of the view pixels, the top-k eigenvectors of the pixel k-NN graph alone, and
//! a Gaussian random k-dimensional subspace (mean cos² ≈ k/N by chance).
//!
//! ```text
//! <out>/
//!   config.toml   the resolved configuration
//!   log.txt       the log
//!   metrics.csv   one row per (step, method, seed, features, scaling)
//!   report.md     the table (also printed), the eigenvalues of Ā, the graph
//!   subspace.png  mean cos², R² and the losses over the steps
//! ```
//! Every file is written atomically. A run keeps no checkpoints, by design: it takes minutes
//! and holds nothing worth saving between its measurements, so an interrupted one is run
//! again into a new directory and leaves the finished ones untouched.

use std::path::{Path, PathBuf};

use mpcl_data::augment::{Pipeline, ViewKey};
use mpcl_data::{Dataset, DatasetName, ImageSet, Split};
use mpcl_eval::neighbours::exact_neighbours;
use mpcl_graph::build::{graph_of_lists, views_with_neighbours};
use mpcl_graph::eigen::{Eigen, EigenConfig, top_eigenpairs};
use mpcl_graph::sample::EdgeSampler;
use mpcl_graph::subspace::{Closeness, closeness};
use mpcl_graph::{CsrGraph, GraphError};
use mpcl_losses::{InfoNce, Spectral};
use mpcl_plot::{Lines, Panel, Series, figure};
use ndarray::{Array2, ArrayView2, s};
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};
use tracing::{info, warn};

use crate::config::{ModelConfig, Optimizer, TrainConfig, check};
use crate::model::Model;
use crate::{RunDir, TrainError};

/// The `kind` of an eigenspace experiment file; `"eigenspace"` is the only value accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EigenspaceKind {
    /// The eigenspace experiment.
    Eigenspace,
}

/// A whole eigenspace experiment: `configs/eigenspace.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct EigenspaceConfig {
    /// Must be `"eigenspace"`: experiment files name the subcommand that runs them.
    pub kind: EigenspaceKind,
    /// Names the run directory. Default `"eigenspace"`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seeds the views, the pairs, and the initialisation shared by both methods (the
    /// random-encoder baseline uses seed, seed + 1, …). Default 0.
    #[serde(default)]
    pub seed: u64,
    /// `[data]`.
    #[serde(default)]
    pub data: EigenData,
    /// `[augment]`: the view pipeline, keys of [`Pipeline`] (torchvision's defaults).
    #[serde(default)]
    pub augment: Pipeline,
    /// `[graph]`.
    #[serde(default)]
    pub graph: EigenGraph,
    /// `[model]`.
    #[serde(default)]
    pub model: EigenModel,
    /// `[train]`.
    #[serde(default)]
    pub train: EigenTrain,
}

fn default_name() -> String {
    "eigenspace".into()
}

/// `[data]`: which images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct EigenData {
    /// A data set of the registry with images of one size. Default `"fashion-mnist"`.
    pub dataset: DatasetName,
    /// The data directory; default `$MPCL_DATA_DIR` or `~/.local/share/mpcl/datasets`. The
    /// `--data-dir` flag overrides it.
    pub dir: Option<PathBuf>,
    /// The first n training images. Default 2000.
    pub images: usize,
    /// Views m drawn per image, once. Default 4.
    pub views: usize,
}

impl Default for EigenData {
    fn default() -> Self {
        Self {
            dataset: DatasetName::FashionMnist,
            dir: None,
            images: 2000,
            views: 4,
        }
    }
}

/// `[graph]`: the augmentation graph over the N views and its eigenvectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct EigenGraph {
    /// Weight w of each pair of views of one image, self-pairs included. Default 3.
    pub within: f64,
    /// Neighbours per view in pixel space (exact, Euclidean), symmetrised. Default 10.
    pub knn: usize,
    /// Weight of a k-NN edge. Default 1.
    pub knn_weight: f64,
    /// Eigenvectors of Ā compared against, and the encoder's output dimension. Default 16.
    pub k: usize,
    /// Residual tolerance of the eigensolver. Default 1e-8.
    pub eigen_tol: f64,
}

impl Default for EigenGraph {
    fn default() -> Self {
        Self {
            within: 3.0,
            knn: 10,
            knn_weight: 1.0,
            k: 16,
            eigen_tol: 1e-8,
        }
    }
}

/// `[model]`: the trainer's small CNN with a projector to `graph.k` dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct EigenModel {
    /// Channels of the conv blocks. Default `[32, 64, 128]`.
    pub widths: Vec<usize>,
    /// Linear layers of the projector. Default 2.
    pub projector_layers: usize,
    /// Hidden width of the projector. Default 256.
    pub projector_hidden: usize,
}

impl Default for EigenModel {
    fn default() -> Self {
        Self {
            widths: vec![32, 64, 128],
            projector_layers: 2,
            projector_hidden: 256,
        }
    }
}

/// `[train]`: both methods train with these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct EigenTrain {
    /// Optimiser steps per method. Default 500.
    pub steps: usize,
    /// Positive pairs per step (2·B rows). Default 128.
    pub batch_pairs: usize,
    /// Adam's learning rate, constant. Default 1e-3.
    pub lr: f64,
    /// Decoupled weight decay. Default 0.
    pub weight_decay: f64,
    /// InfoNCE temperature τ of SimCLR. Default 0.2.
    pub temperature: f64,
    /// Weight μ of the spectral loss's uniformity term. Default 1.
    pub spectral_mu: f64,
    /// Measure every M steps (and at the first and last). Default 50.
    pub every: usize,
    /// Random initialisations in the baseline. Default 5.
    pub random_seeds: usize,
    /// Views per forward pass when embedding all N. Default 1024.
    pub eval_batch: usize,
    /// libtorch threads; 0 for one per core. Default 0.
    pub threads: usize,
}

impl Default for EigenTrain {
    fn default() -> Self {
        Self {
            steps: 500,
            batch_pairs: 128,
            lr: 1e-3,
            weight_decay: 0.0,
            temperature: 0.2,
            spectral_mu: 1.0,
            every: 50,
            random_seeds: 5,
            eval_batch: 1024,
            threads: 0,
        }
    }
}

impl EigenspaceConfig {
    /// Parses and validates; `origin` names the file in errors.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming `origin` and the key at fault.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TrainError> {
        check::parse(text, origin, Self::validate)
    }

    /// Checks every value against its domain; the message names the key.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), String> {
        use check::{at_least, non_negative, positive};
        check::run_name(&self.name)?;
        let (d, g, m, t) = (&self.data, &self.graph, &self.model, &self.train);
        if d.dataset == DatasetName::ImageFolder {
            return Err("data.dataset = \"image-folder\": not supported here".into());
        }
        at_least("data.images", d.images, 2)?;
        at_least("data.views", d.views, 1)?;
        self.augment
            .validate()
            .map_err(|e| format!("augment.{e}"))?;
        let shape = Dataset::new(d.dataset, None, None).map(|set| set.image_shape());
        if let Ok(Some(shape)) = shape {
            self.augment
                .check_images(shape)
                .map_err(|e| format!("augment.{e}"))?;
        }
        positive("graph.within", g.within)?;
        non_negative("graph.knn_weight", g.knn_weight)?;
        let views = d.images * d.views;
        if g.knn >= views {
            return Err(format!(
                "graph.knn = {}: expected fewer than the {views} views",
                g.knn
            ));
        }
        at_least("graph.k", g.k, 1)?;
        if g.k > views {
            return Err(format!(
                "graph.k = {}: expected at most the {views} views",
                g.k
            ));
        }
        positive("graph.eigen_tol", g.eigen_tol)?;
        check::widths("model.widths", &m.widths)?;
        at_least("model.projector_layers", m.projector_layers, 1)?;
        at_least("model.projector_hidden", m.projector_hidden, 1)?;
        at_least("train.steps", t.steps, 1)?;
        at_least("train.batch_pairs", t.batch_pairs, 2)?;
        positive("train.lr", t.lr)?;
        non_negative("train.weight_decay", t.weight_decay)?;
        positive("train.temperature", t.temperature)?;
        non_negative("train.spectral_mu", t.spectral_mu)?;
        at_least("train.every", t.every, 1)?;
        at_least("train.random_seeds", t.random_seeds, 1)?;
        at_least("train.eval_batch", t.eval_batch, 1)?;
        Ok(())
    }

    /// The trainer's model settings: the small CNN, its projector ending in `graph.k`.
    fn model_config(&self) -> ModelConfig {
        ModelConfig {
            widths: self.model.widths.clone(),
            projector_layers: self.model.projector_layers,
            projector_hidden: self.model.projector_hidden,
            projector_dim: self.graph.k,
            ..ModelConfig::default()
        }
    }
}

/// The methods trained, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A freshly initialised encoder, never trained.
    Random,
    /// InfoNCE.
    Simclr,
    /// The spectral contrastive loss.
    Spectral,
}

impl Method {
    /// The name in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Simclr => "simclr",
            Self::Spectral => "spectral",
        }
    }

    /// The features the method's loss sees: unit rows for InfoNCE, raw ones otherwise.
    pub fn own_features(self) -> Features {
        match self {
            Self::Simclr => Features::Unit,
            Self::Random | Self::Spectral => Features::Raw,
        }
    }
}

/// Which feature map of the encoder's output z is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Features {
    /// f = z, the spectral loss's input.
    Raw,
    /// f = z/‖z‖, InfoNCE's geometry.
    Unit,
}

impl Features {
    /// The name in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "z",
            Self::Unit => "unit",
        }
    }
}

/// How rows are scaled before the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// F = D^1/2 f, the theory's variable (science.md §2).
    Degree,
    /// f itself.
    Plain,
}

impl Scaling {
    /// The name in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Degree => "degree",
            Self::Plain => "raw",
        }
    }
}

/// One measurement of one feature map.
#[derive(Debug, Clone)]
pub struct Record {
    /// Optimiser steps taken.
    pub step: usize,
    /// Whose features.
    pub method: Method,
    /// The initialisation seed.
    pub seed: u64,
    /// Which map of z.
    pub features: Features,
    /// Which row scaling.
    pub scaling: Scaling,
    /// Mean training loss over the steps since the previous record (NaN at step 0).
    pub loss: f64,
    /// The population spectral loss −2 Tr(FᵀĀF) + ‖FᵀF‖²_F of F = D^1/2 f/√ΣA, for
    /// raw features with degree scaling (NaN otherwise).
    pub population_loss: f64,
    /// The comparison with U.
    pub closeness: Closeness,
}

/// A reference feature map measured once.
#[derive(Debug, Clone)]
pub struct Reference {
    /// What it is.
    pub name: String,
    /// Its comparison with U.
    pub closeness: Closeness,
}

/// Everything a run found.
#[derive(Debug, Clone)]
pub struct EigenspaceResult {
    /// Images and views per image.
    pub images: usize,
    /// Views per image.
    pub views: usize,
    /// The graph A over the N views (node x is view x mod m of image x div m).
    pub graph: CsrGraph,
    /// Share of ΣA on pairs of views of one image.
    pub within_share: f64,
    /// Connected components of A.
    pub components: usize,
    /// The top k + 2 eigenpairs of Ā (fewer on tiny graphs); the first k are U.
    pub eigen: Eigen,
    /// The lowest population spectral loss with k features: −Σ_{i≤k} max(λᵢ, 0)².
    pub loss_floor: f64,
    /// Every record, in the order measured: the random seeds, then each method's steps.
    pub records: Vec<Record>,
    /// The reference maps.
    pub references: Vec<Reference>,
    /// Wall time of each method's training and measuring, seconds.
    pub seconds: Vec<(Method, f64)>,
}

/// What the measurements share: the degrees, U and Ā.
struct Target<'a> {
    sqrt_degree: Vec<f64>,
    total: f64,
    u: ArrayView2<'a, f64>,
    abar: &'a CsrGraph,
}

impl Target<'_> {
    /// The records of one embedding `z` (`[N, k]`): both feature maps, both scalings.
    fn measure(
        &self,
        z: &Array2<f64>,
        (step, method, seed, loss): (usize, Method, u64, f64),
    ) -> Result<Vec<Record>, GraphError> {
        let mut out = Vec::new();
        for features in [Features::Raw, Features::Unit] {
            let f = match features {
                Features::Raw => z.clone(),
                Features::Unit => unit_rows(z),
            };
            for scaling in [Scaling::Degree, Scaling::Plain] {
                let g = match scaling {
                    Scaling::Degree => scale_rows(&f, &self.sqrt_degree),
                    Scaling::Plain => f.clone(),
                };
                let population_loss = match (features, scaling) {
                    (Features::Raw, Scaling::Degree) => {
                        population_spectral_loss(self.abar, &(&g / self.total.sqrt()))
                    }
                    _ => f64::NAN,
                };
                out.push(Record {
                    step,
                    method,
                    seed,
                    features,
                    scaling,
                    loss,
                    population_loss,
                    closeness: closeness(g.view(), self.u)?,
                });
            }
        }
        Ok(out)
    }
}

/// Each row divided by its norm (zero rows stay zero).
fn unit_rows(z: &Array2<f64>) -> Array2<f64> {
    let mut out = z.clone();
    for mut row in out.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 1e-12 {
            row /= norm;
        }
    }
    out
}

/// Row i multiplied by `scale[i]`.
fn scale_rows(f: &Array2<f64>, scale: &[f64]) -> Array2<f64> {
    let mut out = f.clone();
    for (mut row, &c) in out.rows_mut().into_iter().zip(scale) {
        row *= c;
    }
    out
}

/// `−2 Tr(FᵀĀF) + ‖FᵀF‖²_F` (science.md §2), the spectral loss of F on the whole
/// graph.
///
/// # Shapes
/// `f`: `[N, k]`.
pub fn population_spectral_loss(abar: &CsrGraph, f: &Array2<f64>) -> f64 {
    let af = abar.matmul(f.view());
    let gram = f.t().dot(f);
    -2.0 * (&af * f).sum() + gram.mapv(|v| v * v).sum()
}

/// The N views: view v of image i at row i·m + v, drawn with key (seed, 0, i, v).
///
/// # Shapes
/// Returns `[n·m, c, h', w']` floats, normalised as the pipeline says.
fn draw_views(set: &ImageSet, pipeline: &Pipeline, views: usize, seed: u64) -> Tensor {
    let dims = (set.channels, set.height, set.width);
    let (oh, ow) = pipeline.out_size((set.height, set.width));
    let len = set.channels * oh * ow;
    let mut out = vec![0f32; set.len() * views * len];
    for (row, chunk) in out.chunks_exact_mut(len).enumerate() {
        let (i, v) = (row / views, row % views);
        let key = ViewKey {
            seed,
            epoch: 0,
            index: i as u64,
            view: v as u64,
        };
        pipeline.view(set.image(i), dims, key, chunk);
    }
    Tensor::from_slice(&out).view([
        (set.len() * views) as i64,
        set.channels as i64,
        oh as i64,
        ow as i64,
    ])
}

/// The model's projections z of every view, in eval mode.
///
/// # Shapes
/// `views`: `[N, c, h, w]`; returns `[N, k]`.
fn embed(model: &Model, views: &Tensor, batch: usize) -> Array2<f64> {
    let n = views.size()[0];
    let parts: Vec<Tensor> = tch::no_grad(|| {
        (0..n)
            .step_by(batch)
            .map(|start| {
                let len = (batch as i64).min(n - start);
                model.forward_t(&views.narrow(0, start, len), false).1
            })
            .collect()
    });
    to_array(&Tensor::cat(&parts, 0))
}

/// A 2-D tensor as an f64 array.
fn to_array(t: &Tensor) -> Array2<f64> {
    let (rows, cols) = (t.size()[0] as usize, t.size()[1] as usize);
    let data = Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).expect("f64 data");
    Array2::from_shape_vec((rows, cols), data).expect("rows × cols values")
}

/// Runs the experiment with images from `data_dir`, writing into `dir`.
///
/// # Errors
/// Missing data, settings the data cannot carry, a graph the eigensolver rejects, a
/// diverging loss, or files that cannot be written; each names the cause.
pub fn run(
    cfg: &EigenspaceConfig,
    data_dir: &Path,
    dir: &RunDir,
) -> Result<EigenspaceResult, TrainError> {
    let text = toml::to_string_pretty(cfg).expect("an eigenspace config serialises");
    dir.write(
        "config.toml",
        format!("# resolved configuration\n{text}").as_bytes(),
    )?;
    let threads = match cfg.train.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    tch::set_num_threads(threads as i32);
    let (d, g, t) = (&cfg.data, &cfg.graph, &cfg.train);

    let dataset = Dataset::new(d.dataset, None, None)?;
    let set = dataset.load(data_dir, Split::Train)?.truncated(d.images);
    if set.len() < d.images {
        return Err(TrainError::Invalid(format!(
            "data.images = {}: the training split has only {}",
            d.images,
            set.len()
        )));
    }
    cfg.augment
        .check_images((set.channels, set.height, set.width))
        .map_err(|e| TrainError::Invalid(format!("augment.{e}")))?;
    let views = draw_views(&set, &cfg.augment, d.views, cfg.seed);
    let n = views.size()[0] as usize;
    info!(
        images = d.images,
        views = n,
        "{} views drawn ({} per image)",
        dataset.title(),
        d.views
    );

    let lists: Vec<Vec<usize>> = exact_neighbours(&views, g.knn)
        .map_err(|e| TrainError::Invalid(e.to_string()))?
        .into_iter()
        .map(|list| list.into_iter().map(|n| n.index).collect())
        .collect();
    let sample: Vec<usize> = (0..n).map(|x| x / d.views).collect();
    let graph = views_with_neighbours(&sample, &lists, g.within, g.knn_weight)?;
    let total: f64 = graph.degrees().iter().sum();
    let within: f64 = graph
        .triplets()
        .filter(|&(i, j, _)| sample[i] == sample[j])
        .map(|(_, _, w)| w)
        .sum();
    let components = graph.components().into_iter().max().map_or(0, |c| c + 1);
    if components > 1 {
        warn!(
            "the graph has {components} connected components: eigenvalue 1 repeats and the \
             top eigenspace is not unique; raise graph.knn"
        );
    }
    let abar = graph.sym_normalized()?;
    let eig_cfg = EigenConfig {
        k: (g.k + 2).min(n),
        tol: g.eigen_tol,
        ..EigenConfig::default()
    };
    let eigen = top_eigenpairs(&abar, &eig_cfg)?;
    let worst = eigen.residuals.iter().copied().fold(0.0, f64::max);
    if !eigen.converged {
        warn!(
            "the eigensolver stopped at residual {worst:.1e} above graph.eigen_tol = {:.1e}",
            g.eigen_tol
        );
    }
    info!(
        entries = graph.entries(),
        components,
        within_share = format!("{:.3}", within / total),
        "graph built; top eigenvalues of Ā {:.4?} (largest residual {worst:.1e})",
        eigen.values.to_vec()
    );
    let u = eigen.vectors.slice(s![.., ..g.k]);
    let loss_floor = -eigen
        .values
        .iter()
        .take(g.k)
        .map(|l| l.max(0.0).powi(2))
        .sum::<f64>();
    let target = Target {
        sqrt_degree: graph.degrees().iter().map(|d| d.sqrt()).collect(),
        total,
        u,
        abar: &abar,
    };

    let references = references(&views, &lists, &target, (g, cfg.seed))?;
    let mut records = Vec::new();
    let model_cfg = cfg.model_config();
    let channels = views.size()[1] as usize;
    let fresh = |seed: u64| {
        tch::manual_seed(seed as i64);
        Model::in_new_store(tch::Device::Cpu, channels, &model_cfg, false)
    };
    for r in 0..t.random_seeds as u64 {
        let seed = cfg.seed + r;
        let (_vs, model) = fresh(seed);
        let z = embed(&model, &views, t.eval_batch);
        records.extend(target.measure(&z, (0, Method::Random, seed, f64::NAN))?);
    }
    info!("{} random encoders measured", t.random_seeds);

    let sampler = EdgeSampler::new(&graph)?;
    let mut seconds = Vec::new();
    for method in [Method::Simclr, Method::Spectral] {
        let start = std::time::Instant::now();
        let (vs, model) = fresh(cfg.seed);
        let trained = train(cfg, method, (&vs, &model), &views, &sampler, &target)?;
        records.extend(trained);
        seconds.push((method, start.elapsed().as_secs_f64()));
    }
    let result = EigenspaceResult {
        images: d.images,
        views: d.views,
        within_share: within / total,
        components,
        graph,
        eigen,
        loss_floor,
        records,
        references,
        seconds,
    };
    dir.write("metrics.csv", result.csv().as_bytes())?;
    dir.write("report.md", result.markdown(cfg).as_bytes())?;
    draw(&result, dir)?;
    info!(run_dir = %dir.path().display(), "metrics, report and figure written");
    Ok(result)
}

/// Trains one method from the model in `vs`, measuring every `train.every` steps.
fn train(
    cfg: &EigenspaceConfig,
    method: Method,
    (vs, model): (&nn::VarStore, &Model),
    views: &Tensor,
    sampler: &EdgeSampler,
    target: &Target,
) -> Result<Vec<Record>, TrainError> {
    let t = &cfg.train;
    let adam = TrainConfig {
        optimizer: Optimizer::Adamw,
        lr: t.lr,
        weight_decay: t.weight_decay,
        ..TrainConfig::default()
    };
    let mut opt = crate::optim::from_config(&adam, vs, None)?;
    let nce = InfoNce::new(t.temperature, 2)?;
    let spectral = Spectral::new(2, t.spectral_mu)?;
    let mut records = target.measure(
        &embed(model, views, t.eval_batch),
        (0, method, cfg.seed, f64::NAN),
    )?;
    let (mut sum, mut count) = (0.0, 0usize);
    for step in 1..=t.steps {
        tch::manual_seed(crate::checkpoint::torch_seed(cfg.seed, step - 1));
        // View-major rows: the first views of the B pairs, then their partners.
        let pairs = sampler.batch(t.batch_pairs, cfg.seed, (step - 1) as u64);
        let rows: Vec<i64> = pairs
            .iter()
            .map(|p| p.0 as i64)
            .chain(pairs.iter().map(|p| p.1 as i64))
            .collect();
        let xs = views.index_select(0, &Tensor::from_slice(&rows));
        let (_, z) = model.forward_t(&xs, true);
        let loss = match method {
            Method::Simclr => nce.loss(&z, None)?,
            _ => spectral.loss(&z)?,
        };
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Err(TrainError::Invalid(format!(
                "{}: the loss became {value} at step {step}; lower train.lr",
                method.name()
            )));
        }
        opt.backward_step(&loss, t.lr);
        sum += value;
        count += 1;
        if step % t.every == 0 || step == t.steps {
            let loss = sum / count as f64;
            let z = embed(model, views, t.eval_batch);
            let measured = target.measure(&z, (step, method, cfg.seed, loss))?;
            let own = measured
                .iter()
                .find(|r| r.features == method.own_features() && r.scaling == Scaling::Degree)
                .expect("every map is measured");
            info!(
                "{} step {step}/{}: loss {loss:.4}, mean cos² {:.4}, R² U←F {:.4}, \
                 R² F←U {:.4}",
                method.name(),
                t.steps,
                own.closeness.mean_cos2,
                own.closeness.r2_target_from_features,
                own.closeness.r2_features_from_target
            );
            records.extend(measured);
            (sum, count) = (0.0, 0);
        }
    }
    Ok(records)
}

/// The reference maps: pixel PCA, the pixel k-NN graph's eigenvectors, a Gaussian block.
fn references(
    views: &Tensor,
    lists: &[Vec<usize>],
    target: &Target,
    (g, seed): (&EigenGraph, u64),
) -> Result<Vec<Reference>, TrainError> {
    let k = g.k;
    let pixels = views.flatten(1, -1).to_kind(Kind::Double);
    let centred = &pixels - pixels.mean_dim([0i64].as_slice(), true, Kind::Double);
    let cov = centred.tr().mm(&centred);
    // Eigenvalues ascending: the last k columns are the top principal directions.
    let (_, vectors) = cov.linalg_eigh("L");
    let d = vectors.size()[1];
    let top = vectors.narrow(1, (d - k as i64).max(0), (k as i64).min(d));
    let scores = to_array(&centred.mm(&top));
    let mut out = Vec::new();
    for (features, f) in [
        (Features::Raw, scores.clone()),
        (Features::Unit, unit_rows(&scores)),
    ] {
        let f = scale_rows(&f, &target.sqrt_degree);
        out.push(Reference {
            name: format!("pixels, top-{k} principal components ({})", features.name()),
            closeness: closeness(f.view(), target.u)?,
        });
    }
    let knn_only = graph_of_lists(lists, false).sym_normalized()?;
    let eig = top_eigenpairs(
        &knn_only,
        &EigenConfig {
            k,
            tol: g.eigen_tol,
            ..EigenConfig::default()
        },
    )?;
    out.push(Reference {
        name: format!("top-{k} eigenvectors of the pixel k-NN graph alone"),
        closeness: closeness(eig.vectors.view(), target.u)?,
    });
    let n = target.u.nrows();
    tch::manual_seed(seed as i64);
    let gaussian = to_array(&Tensor::randn([n as i64, k as i64], tch::kind::DOUBLE_CPU));
    out.push(Reference {
        name: format!("Gaussian random {k}-dim subspace (chance: mean cos² ≈ k/N)"),
        closeness: closeness(gaussian.view(), target.u)?,
    });
    Ok(out)
}

impl EigenspaceResult {
    /// The records of `method` for one feature map and scaling, in step order.
    pub fn series(&self, method: Method, features: Features, scaling: Scaling) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| r.method == method && r.features == features && r.scaling == scaling)
            .collect()
    }

    /// Every record as CSV: angles in degrees, one column per angle.
    pub fn csv(&self) -> String {
        let k = self.records.first().map_or(0, |r| r.closeness.angles.len());
        let mut out = String::from(
            "step,method,seed,features,scaling,loss,population_loss,mean_cos2,\
             r2_u_from_f,r2_f_from_u",
        );
        (1..=k).for_each(|i| out.push_str(&format!(",angle_{i}_deg")));
        out.push('\n');
        let num = |v: f64| {
            if v.is_nan() {
                String::new()
            } else {
                format!("{v:.6e}")
            }
        };
        for r in &self.records {
            let c = &r.closeness;
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}",
                r.step,
                r.method.name(),
                r.seed,
                r.features.name(),
                r.scaling.name(),
                num(r.loss),
                num(r.population_loss),
                num(c.mean_cos2),
                num(c.r2_target_from_features),
                num(c.r2_features_from_target),
            ));
            for a in &c.angles {
                out.push_str(&format!(",{:.4}", a.to_degrees()));
            }
            out.push('\n');
        }
        out
    }

    /// The report: the graph, the eigenvalues, and the table at the last step.
    pub fn markdown(&self, cfg: &EigenspaceConfig) -> String {
        let g = &cfg.graph;
        let k = g.k;
        let values: Vec<String> = self
            .eigen
            .values
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect();
        let worst = self.eigen.residuals.iter().copied().fold(0.0, f64::max);
        let mut out = format!(
            "# Eigenspace: {} images × {} views = {} views\n\n\
             Graph: w = {} on views of one image (self-pairs included), {}-NN in pixel \
             space with weight {}; {} entries, {} component(s), {:.1}% of ΣA within \
             images.\n\nTop eigenvalues of Ā (the first {k} span U; largest residual \
             {worst:.1e}{}): {}.\n\nLowest population spectral loss with {k} features: \
             {:.4}.\n\n",
            self.images,
            self.views,
            self.graph.nodes(),
            g.within,
            g.knn,
            g.knn_weight,
            self.graph.entries(),
            self.components,
            100.0 * self.within_share,
            if self.eigen.converged {
                ""
            } else {
                ", NOT converged"
            },
            values.join(", "),
            self.loss_floor
        );
        out.push_str(&format!(
            "Measured on F = D^1/2 f for f = z and f = z/‖z‖, after {} steps of {} pairs. \
             mean cos²: of the principal angles between span(F) and span(U); R² U←F: \
             centred least squares of U's columns on F, and F←U the other way.\n\n",
            cfg.train.steps, cfg.train.batch_pairs
        ));
        out.push_str(
            "| features | f | mean cos² | R² U←F | R² F←U | angles (°, min–max) | \
             population loss |\n|---|---|---:|---:|---:|---|---:|\n",
        );
        let random_rows = |features: Features| {
            let recs = self.series(Method::Random, features, Scaling::Degree);
            let stat = |value: &dyn Fn(&Record) -> f64| mean_sd(recs.iter().map(|r| value(r)));
            let (c, u, f, l) = (
                stat(&|r| r.closeness.mean_cos2),
                stat(&|r| r.closeness.r2_target_from_features),
                stat(&|r| r.closeness.r2_features_from_target),
                stat(&|r| r.population_loss),
            );
            format!(
                "| random encoder ({} seeds, mean ± sd) | {} | {} | {} | {} | – | {} |\n",
                recs.len(),
                features.name(),
                c,
                u,
                f,
                if features == Features::Raw {
                    l
                } else {
                    "–".into()
                }
            )
        };
        out.push_str(&random_rows(Features::Raw));
        out.push_str(&random_rows(Features::Unit));
        for method in [Method::Simclr, Method::Spectral] {
            for features in [method.own_features(), other(method.own_features())] {
                let Some(last) = self.series(method, features, Scaling::Degree).pop() else {
                    continue;
                };
                out.push_str(&row(
                    &format!(
                        "{} after {} steps{}",
                        label(method),
                        last.step,
                        if features == method.own_features() {
                            " (its loss's f)"
                        } else {
                            ""
                        }
                    ),
                    features.name(),
                    &last.closeness,
                    last.population_loss,
                ));
            }
        }
        for r in &self.references {
            out.push_str(&row(&r.name, "–", &r.closeness, f64::NAN));
        }
        out.push_str(&format!(
            "\nChance level for a random {k}-dim subspace of R^{}: mean cos² ≈ {:.4}.\n",
            self.graph.nodes(),
            k as f64 / self.graph.nodes() as f64
        ));
        let times: Vec<String> = self
            .seconds
            .iter()
            .map(|(m, s)| format!("{} {s:.0} s", label(*m)))
            .collect();
        out.push_str(&format!("Training and measuring: {}.\n", times.join(", ")));
        out
    }
}

/// The other feature map.
fn other(f: Features) -> Features {
    match f {
        Features::Raw => Features::Unit,
        Features::Unit => Features::Raw,
    }
}

/// The name of a method in tables and plots.
fn label(m: Method) -> &'static str {
    match m {
        Method::Random => "random encoder",
        Method::Simclr => "SimCLR",
        Method::Spectral => "spectral",
    }
}

/// One table row.
fn row(name: &str, features: &str, c: &Closeness, population_loss: f64) -> String {
    let (lo, hi) = (
        c.angles.iter().copied().fold(f64::INFINITY, f64::min),
        c.angles.iter().copied().fold(0.0, f64::max),
    );
    let loss = if population_loss.is_nan() {
        "–".into()
    } else {
        format!("{population_loss:.4}")
    };
    format!(
        "| {name} | {features} | {:.4} | {:.4} | {:.4} | {:.1}–{:.1} | {loss} |\n",
        c.mean_cos2,
        c.r2_target_from_features,
        c.r2_features_from_target,
        lo.to_degrees(),
        hi.to_degrees()
    )
}

/// `mean ± sd` (sample standard deviation) of the values.
fn mean_sd(values: impl Iterator<Item = f64>) -> String {
    let v: Vec<f64> = values.collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    format!("{mean:.4} ± {sd:.4}")
}

/// `subspace.png`: the measures over the steps, one line per method and feature map, the
/// random encoders' mean as a flat line.
fn draw(r: &EigenspaceResult, dir: &RunDir) -> Result<(), TrainError> {
    let last = r.records.iter().map(|rec| rec.step).max().unwrap_or(0) as f64;
    let lines = [
        (Method::Simclr, Features::Unit),
        (Method::Simclr, Features::Raw),
        (Method::Spectral, Features::Raw),
        (Method::Spectral, Features::Unit),
    ];
    let panel = |title: &str, value: &dyn Fn(&Record) -> f64| {
        let mut series: Vec<Series> = lines
            .iter()
            .map(|&(m, f)| Series {
                name: format!("{} ({})", label(m), f.name()),
                points: r
                    .series(m, f, Scaling::Degree)
                    .iter()
                    .map(|rec| (rec.step as f64, value(rec)))
                    .filter(|p| p.1.is_finite())
                    .collect(),
            })
            .collect();
        for f in [Features::Raw, Features::Unit] {
            let recs = r.series(Method::Random, f, Scaling::Degree);
            let mean = recs.iter().map(|rec| value(rec)).sum::<f64>() / recs.len() as f64;
            if mean.is_finite() {
                series.push(Series {
                    name: format!("random encoders, mean ({})", f.name()),
                    points: vec![(0.0, mean), (last, mean)],
                });
            }
        }
        Panel::Lines(Lines {
            title: title.into(),
            x_label: "step".into(),
            y_label: title.into(),
            log_y: false,
            series,
        })
    };
    let mut loss = panel("population spectral loss", &|rec| rec.population_loss);
    if let Panel::Lines(l) = &mut loss {
        l.series.push(Series {
            name: "lowest possible".into(),
            points: vec![(0.0, r.loss_floor), (last, r.loss_floor)],
        });
    }
    let panels = [
        panel("mean cos² of the angles to U", &|rec| {
            rec.closeness.mean_cos2
        }),
        panel("R² of U from F", &|rec| {
            rec.closeness.r2_target_from_features
        }),
        panel("R² of F from U", &|rec| {
            rec.closeness.r2_features_from_target
        }),
        panel("training loss", &|rec| rec.loss),
        loss,
    ];
    figure(
        &dir.path().join("subspace.png"),
        "F = D^1/2 f against the top-k eigenvectors U of Ā",
        &panels,
        3,
        (520, 400),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_is_the_documented_default() {
        let text = include_str!("../../../configs/eigenspace.toml");
        let cfg = EigenspaceConfig::parse(text, "configs/eigenspace.toml").unwrap();
        let mut defaults = EigenspaceConfig::parse("kind = \"eigenspace\"\n", "-").unwrap();
        // The documented deviation from torchvision: crops of 0.2–1 of the image.
        defaults.augment.crop_scale = [0.2, 1.0];
        assert_eq!(cfg, defaults);
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = |text: &str| {
            let text = format!("kind = \"eigenspace\"\n{text}");
            EigenspaceConfig::parse(&text, "e.toml")
                .unwrap_err()
                .to_string()
        };
        let e = bad("[graph]\nknn = 50\n[data]\nimages = 10\nviews = 2\n");
        assert!(e.contains("e.toml: graph.knn = 50: expected fewer"), "{e}");
        assert!(bad("[graph]\nwithin = 0.0\n").contains("graph.within = 0"));
        assert!(bad("[train]\nevery = 0\n").contains("train.every = 0"));
        assert!(bad("[train]\nsteps = 10\nstpes = 3\n").contains("stpes"));
        assert!(bad("[augment]\nflip_p = 2.0\n").contains("augment.flip_p = 2"));
        // Fashion-MNIST (the default) has one channel.
        assert!(bad("[augment]\nstd = [0.3, 0.3, 0.3]\n").contains("augment.std = [0.3"));
        let e = EigenspaceConfig::parse("kind = \"toy\"\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("toy"), "{e}");
    }

    #[test]
    fn population_loss_at_the_top_eigenvectors_is_the_floor() {
        // F = U Λ^1/2 minimises ‖Ā − FFᵀ‖² − ‖Ā‖² (Eckart–Young), with value
        // −Σλᵢ². Ā here is the 4-cycle normalised (degree 2): eigenvalues 1, 0, 0, −1,
        // the top one's u = ½·1.
        let cycle: Vec<_> = (0..4)
            .flat_map(|i| [(i, (i + 1) % 4, 1.0), ((i + 1) % 4, i, 1.0)])
            .collect();
        let abar = CsrGraph::from_triplets(4, cycle)
            .unwrap()
            .sym_normalized()
            .unwrap();
        let f = Array2::from_elem((4, 1), 0.5);
        assert!((population_spectral_loss(&abar, &f) + 1.0).abs() < 1e-12);
        // Half the scale, fᵀf = ¼ = fᵀĀf: −2·¼ + (¼)² = −0.4375, above the floor.
        let half = &f * 0.5;
        assert!((population_spectral_loss(&abar, &half) + 0.4375).abs() < 1e-12);
    }

    #[test]
    fn feature_maps_by_hand() {
        let z = ndarray::array![[3.0, 4.0], [0.0, 0.0]];
        assert_eq!(unit_rows(&z), ndarray::array![[0.6, 0.8], [0.0, 0.0]]);
        let scaled = scale_rows(&z, &[2.0, 1.0]);
        assert_eq!(scaled, ndarray::array![[6.0, 8.0], [0.0, 0.0]]);
    }
}
