//! One run from data to table.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mpcl_aggregators::Step;
use mpcl_data::fashion_mnist::FashionMnist;
use mpcl_data::loader::{LoaderConfig, batches_per_epoch, epoch_batches};
use mpcl_data::{ImageSet, Split};
use mpcl_eval::{Encoder, Row, diagnose, knn, labels, markdown_table, probe};
use mpcl_losses::{InfoNce, Spectral};
use serde::Serialize;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Tensor};
use tracing::{info, warn};

use crate::TrainError;
use crate::config::{Config, Method, Optimizer};
use crate::model::Model;
use crate::run_dir::{EpochMetrics, RunDir};
use crate::schedule::Schedule;

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The evaluated representations: the trained encoder first, then the baselines.
    pub rows: Vec<Row>,
    /// One entry per epoch.
    pub metrics: Vec<EpochMetrics>,
}

/// Trains and evaluates as `cfg` says, with data from `data_dir`, writing into `dir`.
///
/// # Errors
/// Missing or corrupt data, unusable settings, a diverging loss, or files that cannot be
/// written; each names what is at fault.
pub fn run(cfg: &Config, data_dir: &Path, dir: &RunDir) -> Result<Outcome, TrainError> {
    dir.write_config(cfg)?;
    let t = &cfg.train;
    let threads = match t.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    tch::set_num_threads(threads as i32);
    info!(threads, run_dir = %dir.path().display(), "tch {} on the CPU", tch_version());

    let data = FashionMnist::new(data_dir);
    let train_set = Arc::new(data.load(Split::Train)?.truncated(cfg.data.train_subset));
    let test_set = data.load(Split::Test)?.truncated(cfg.data.test_subset);
    info!(train = train_set.len(), test = test_set.len(), dir = %data.dir().display(),
        "Fashion-MNIST loaded and verified");
    for (key, asked, have) in [
        ("data.train_subset", cfg.data.train_subset, train_set.len()),
        ("data.test_subset", cfg.data.test_subset, test_set.len()),
    ] {
        if asked > have {
            warn!("{key} = {asked} exceeds the {have} images of the split: using all of them");
        }
    }
    if train_set.len() < t.batch_size {
        return Err(TrainError::Invalid(format!(
            "train.batch_size = {} is larger than the {} training images",
            t.batch_size,
            train_set.len()
        )));
    }

    let padding = cfg.eval.probe.reference.padding;
    if padding >= train_set.height.min(train_set.width) {
        return Err(TrainError::Invalid(format!(
            "eval.probe.reference.padding = {padding}: must be below the {} × {} images",
            train_set.height, train_set.width
        )));
    }

    tch::manual_seed(t.seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), train_set.channels, &cfg.model);
    let mut baselines = Vec::new();
    if cfg.eval.baselines {
        // Raw pixels: images in [0, 1] flattened, the same numbers as `pixel_features`.
        let mut flatten = |x: &Tensor| x.flatten(1, -1);
        let pixels = Encoder {
            encode: &mut flatten,
            norm: (0.0, 1.0),
            batch_size: cfg.eval.batch_size,
            device: Device::Cpu,
        };
        baselines.push(evaluate(
            cfg,
            "raw pixels",
            pixels,
            (&train_set, &test_set),
        )?);
        baselines.push(evaluate_encoder(
            cfg,
            "random encoder",
            &model,
            &train_set,
            &test_set,
        )?);
    }

    let metrics = train(cfg, &vs, &model, &train_set, dir)?;
    let weights = dir.weights_path();
    let tmp = mpcl_data::fsutil::temp_path(&weights);
    vs.save(&tmp)?;
    std::fs::rename(&tmp, &weights).map_err(|e| TrainError::io(&weights, e))?;

    let epochs = if t.epochs == 1 {
        "1 epoch".into()
    } else {
        format!("{} epochs", t.epochs)
    };
    let name = format!("{} encoder ({epochs})", t.method.label());
    let mut rows = vec![evaluate_encoder(cfg, &name, &model, &train_set, &test_set)?];
    rows.extend(baselines);
    let table = markdown_table(&rows);
    let protocol = format!(
        "kNN: k = {}, cosine similarity, votes weighted by exp(s/{}). {} Effective rank (of at \
         most min(n, D)) of the test features; alignment of two augmented views of {} test \
         images; uniformity (t = 2) of as many test features. Test images unaugmented; {} \
         training and {} test images.\n",
        cfg.eval.knn.k,
        cfg.eval.knn.temperature,
        cfg.eval.probe.describe(),
        cfg.eval.diagnostics.samples.min(test_set.len()),
        train_set.len(),
        test_set.len()
    );
    let report = format!("# {}: Fashion-MNIST\n\n{table}\n{protocol}", cfg.name);
    dir.write("results.md", report.as_bytes())?;
    let outcome = Outcome { rows, metrics };
    let json = serde_json::to_string_pretty(&outcome).expect("results serialise");
    dir.write("results.json", json.as_bytes())?;
    Ok(outcome)
}

/// The tch release, as pinned in the workspace manifest, and the libtorch found at build
/// time (build/libtorch_rpath.rs).
fn tch_version() -> String {
    format!("0.26.0 (libtorch {})", env!("MPCL_LIBTORCH_VERSION"))
}

/// The loss a run trains with.
enum Objective {
    InfoNce(InfoNce),
    Spectral(Spectral),
}

/// The training loop; returns the per-epoch metrics, also written to `metrics.csv`.
fn train(
    cfg: &Config,
    vs: &nn::VarStore,
    model: &Model,
    set: &Arc<ImageSet>,
    dir: &RunDir,
) -> Result<Vec<EpochMetrics>, TrainError> {
    let t = &cfg.train;
    let loader = LoaderConfig {
        batch_size: t.batch_size,
        views: t.views,
        seed: t.seed,
        drop_last: true,
        prefetch: 2,
    };
    let per_epoch = batches_per_epoch(set.len(), &loader);
    let schedule = Schedule {
        peak: t.lr,
        floor: t.min_lr,
        warmup: (t.warmup_epochs * per_epoch as f64).round() as usize,
        total: per_epoch * t.epochs,
    };
    let mut opt = match t.optimizer {
        Optimizer::Adamw => nn::AdamW::default().wd(t.weight_decay).build(vs, t.lr)?,
        Optimizer::Sgd => nn::Sgd {
            momentum: 0.9,
            wd: t.weight_decay,
            ..Default::default()
        }
        .build(vs, t.lr)?,
    };
    let objective = match t.method {
        Method::Simclr => Objective::InfoNce(InfoNce::new(t.temperature, t.views)?),
        Method::Spectral => Objective::Spectral(Spectral::new(t.views, t.spectral_mu)?),
    };
    let mut aggregator = t.aggregator.build();
    let augment = Arc::new(cfg.augment.clone());
    let shape = [
        (t.views * t.batch_size) as i64,
        set.channels as i64,
        set.height as i64,
        set.width as i64,
    ];
    info!(
        steps = schedule.total,
        per_epoch,
        aggregator = aggregator.name(),
        "training {:?}",
        t.method
    );

    let mut metrics = Vec::new();
    let mut step = 0;
    for epoch in 1..=t.epochs {
        let bar = progress_bar(per_epoch, epoch, t.epochs);
        let start = Instant::now();
        let (mut loss_sum, mut views, mut grad_norms) = (0.0, 0usize, (0.0, 0.0));
        for batch in epoch_batches(set.clone(), augment.clone(), loader, epoch as u64) {
            let xs = Tensor::from_slice(&batch.pixels).view(shape);
            let (h, z) = model.forward_t(&xs, true);
            let weights = aggregator.anchor_weights(&Step {
                backbone: &h,
                projection: &z,
                views: t.views,
            });
            let (loss, split) = match &objective {
                Objective::InfoNce(nce) => (
                    nce.loss(&z, weights.as_ref())?,
                    nce.gradient_split(&z, weights.as_ref())?
                        .through_normalization(&z),
                ),
                Objective::Spectral(sp) => (sp.loss(&z)?, sp.gradient_split(&z)?),
            };
            grad_norms.0 += split.alignment.norm().double_value(&[]);
            grad_norms.1 += split.uniformity.norm().double_value(&[]);
            opt.set_lr(schedule.lr(step));
            opt.backward_step(&loss);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(TrainError::NonFinite { epoch, step, value });
            }
            step += 1;
            loss_sum += value;
            views += shape[0] as usize;
            let rate = views as f64 / start.elapsed().as_secs_f64();
            let lr = schedule.lr(step - 1);
            let msg = format!("loss {value:.4}  lr {lr:.2e}  {rate:.0} views/s");
            bar.inc(1);
            if !bar.is_hidden() {
                bar.set_message(msg);
            } else if step % t.log_every == 0 {
                // The run's remaining steps at this epoch's mean step time so far.
                let done = step - (epoch - 1) * per_epoch;
                let per_step = start.elapsed().as_secs_f64() / done as f64;
                let eta = per_step * (schedule.total - step) as f64;
                info!(
                    "epoch {epoch}/{}, step {done}/{per_epoch}: {msg}, run ETA {eta:.0} s",
                    t.epochs
                );
            }
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let row = EpochMetrics {
            epoch,
            step,
            loss: loss_sum / per_epoch as f64,
            lr: schedule.lr(step - 1),
            views_per_s: views as f64 / seconds,
            seconds,
            grad_alignment: grad_norms.0 / per_epoch as f64,
            grad_uniformity: grad_norms.1 / per_epoch as f64,
        };
        info!(
            epoch,
            loss = format!("{:.4}", row.loss),
            grad_alignment = format!("{:.3e}", row.grad_alignment),
            grad_uniformity = format!("{:.3e}", row.grad_uniformity),
            views_per_s = format!("{:.0}", row.views_per_s),
            seconds = format!("{seconds:.1}"),
            "epoch {epoch}/{} done",
            t.epochs
        );
        metrics.push(row);
        dir.write_metrics(&metrics)?;
    }
    Ok(metrics)
}

fn progress_bar(len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} {wide_bar} {pos}/{len} {msg} ETA {eta}")
            .expect("a valid template"),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// Evaluates the model's backbone in eval mode.
fn evaluate_encoder(
    cfg: &Config,
    name: &str,
    model: &Model,
    train: &ImageSet,
    test: &ImageSet,
) -> Result<Row, TrainError> {
    let mut encode = |x: &Tensor| model.forward_t(x, false).0;
    let encoder = Encoder {
        encode: &mut encode,
        norm: (cfg.augment.mean, cfg.augment.std),
        batch_size: cfg.eval.batch_size,
        device: Device::Cpu,
    };
    evaluate(cfg, name, encoder, (train, test))
}

/// kNN, the linear probe and the diagnostics of one representation. Features are of
/// unaugmented images; the diagnostics' paired views come from the training augmentations.
fn evaluate(
    cfg: &Config,
    name: &str,
    mut encoder: Encoder,
    (train, test): (&ImageSet, &ImageSet),
) -> Result<Row, TrainError> {
    let start = Instant::now();
    let (f_train, f_test) = (encoder.extract(train), encoder.extract(test));
    let (y_train, y_test) = (labels(train), labels(test));
    let e = &cfg.eval;
    let knn = knn(&f_train, &y_train, &f_test, &y_test, train.classes, &e.knn);
    let probe = probe(&e.probe, train, (&f_train, &f_test), &y_test, &mut encoder);

    // Two views of the first test images through the training pipeline, view-major.
    let n = e.diagnostics.samples.min(test.len());
    let loader = LoaderConfig {
        batch_size: n,
        views: 2,
        seed: cfg.train.seed,
        drop_last: true,
        prefetch: 1,
    };
    let subset = Arc::new(test.clone().truncated(n));
    let batch = epoch_batches(subset, Arc::new(cfg.augment.clone()), loader, 0)
        .recv()
        .map_err(|_| TrainError::Invalid("no augmented test views for the diagnostics".into()))?;
    let dims = [
        2 * n as i64,
        test.channels as i64,
        test.height as i64,
        test.width as i64,
    ];
    let views = encoder.encode_normalised(&Tensor::from_slice(&batch.pixels).view(dims));
    let (a, b) = (
        views.narrow(0, 0, n as i64),
        views.narrow(0, n as i64, n as i64),
    );
    let diagnostics = diagnose((&a, &b), &f_test, &e.diagnostics)?;
    if let Some(warning) = diagnostics.warning() {
        warn!("{name}: {warning}");
    }
    info!(
        knn_top1 = format!("{:.4}", knn.top1),
        probe_top1 = format!("{:.4}", probe.top1),
        effective_rank = format!("{:.1}", diagnostics.effective_rank),
        seconds = format!("{:.1}", start.elapsed().as_secs_f64()),
        "evaluated {name}"
    );
    Ok(Row {
        name: name.into(),
        knn,
        probe,
        diagnostics,
    })
}
