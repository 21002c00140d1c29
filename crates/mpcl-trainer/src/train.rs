//! One run from data to table.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mpcl_aggregators::{Aggregator, Change, Step};
use mpcl_data::augment::Pipeline;
use mpcl_data::fashion_mnist::FashionMnist;
use mpcl_data::loader::{LoaderConfig, batches_per_epoch, epoch_batches, view_groups};
use mpcl_data::{ImageSet, Split};
use mpcl_eval::{Row, knn, labels, linear_probe, markdown_table, pixel_features};
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

    let pipelines: Arc<[Pipeline]> = cfg
        .augment
        .pipelines(t.views)
        .map_err(|e| TrainError::Invalid(format!("augment.{e}")))?
        .into();
    for (v, p) in pipelines.iter().enumerate() {
        p.check_images((train_set.channels, train_set.height, train_set.width))
            .map_err(|e| TrainError::Invalid(format!("augment (view {v}): {e}")))?;
    }

    tch::manual_seed(t.seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), train_set.channels, &cfg.model);
    let mut baselines = Vec::new();
    if cfg.eval.enabled && cfg.eval.baselines {
        baselines.push(evaluate_features(
            cfg,
            "raw pixels",
            &pixel_features(&train_set),
            &pixel_features(&test_set),
            (&train_set, &test_set),
        ));
        baselines.push(evaluate_encoder(
            cfg,
            "random encoder",
            &model,
            &train_set,
            &test_set,
        ));
    }

    let metrics = train(cfg, &vs, &model, (&train_set, pipelines), dir)?;
    let weights = dir.weights_path();
    let tmp = mpcl_data::fsutil::temp_path(&weights);
    vs.save(&tmp)?;
    std::fs::rename(&tmp, &weights).map_err(|e| TrainError::io(&weights, e))?;

    if !cfg.eval.enabled {
        let report = format!(
            "# {}: Fashion-MNIST\n\nNot evaluated (`eval.enabled = false`).\n",
            cfg.name
        );
        dir.write("results.md", report.as_bytes())?;
        return finish(
            dir,
            Outcome {
                rows: Vec::new(),
                metrics,
            },
        );
    }
    let epochs = if t.epochs == 1 {
        "1 epoch".into()
    } else {
        format!("{} epochs", t.epochs)
    };
    let name = format!("{} encoder ({epochs})", t.method.label());
    let mut rows = vec![evaluate_encoder(cfg, &name, &model, &train_set, &test_set)];
    rows.extend(baselines);
    let table = markdown_table(&rows);
    let protocol = format!(
        "kNN: k = {}, cosine similarity, votes weighted by exp(s/{}). Linear probe: features \
         standardised with training-split statistics, {} epochs of AdamW (lr {}), no \
         augmentation. Test images unaugmented; {} training and {} test images.\n",
        cfg.eval.knn.k,
        cfg.eval.knn.temperature,
        cfg.eval.probe.epochs,
        cfg.eval.probe.lr,
        train_set.len(),
        test_set.len()
    );
    let report = format!("# {}: Fashion-MNIST\n\n{table}\n{protocol}", cfg.name);
    dir.write("results.md", report.as_bytes())?;
    finish(dir, Outcome { rows, metrics })
}

/// Writes `results.json` and hands the outcome back.
fn finish(dir: &RunDir, outcome: Outcome) -> Result<Outcome, TrainError> {
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
    (set, pipelines): (&Arc<ImageSet>, Arc<[Pipeline]>),
    dir: &RunDir,
) -> Result<Vec<EpochMetrics>, TrainError> {
    let t = &cfg.train;
    let loader = LoaderConfig {
        batch_size: t.batch_size,
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
    let mut aggregator = cfg
        .aggregators
        .build(set.len(), cfg.model.projector_dim, Device::Cpu);
    let groups = view_groups(&pipelines, (set.channels, set.height, set.width));
    let [(_, _, [c, h, w])] = groups[..] else {
        return Err(TrainError::Invalid(format!(
            "augment: the views have {} resolutions; training takes one",
            groups.len()
        )));
    };
    let shape = [
        (t.views * t.batch_size) as i64,
        c as i64,
        h as i64,
        w as i64,
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
        for batch in epoch_batches(set.clone(), pipelines.clone(), loader, epoch as u64) {
            let xs = Tensor::from_slice(&batch.groups[0].pixels).view(shape);
            let (h, z) = model.forward_t(&xs, true);
            let z = aggregator.transform(&z);
            let indices: Vec<i64> = batch.indices.iter().map(|&i| i as i64).collect();
            let samples = Tensor::from_slice(&indices);
            let this_step = Step {
                backbone: &h,
                projection: &z,
                samples: &samples,
                views: t.views,
                epoch,
            };
            let Change { weights, keys } = aggregator.change(&this_step);
            let (loss, split) = match &objective {
                Objective::InfoNce(nce) => (
                    nce.loss_with_keys(&z, weights.as_ref(), keys.as_ref())?,
                    // The closed-form split holds for the plain positives only.
                    match keys {
                        None => Some(
                            nce.gradient_split(&z, weights.as_ref())?
                                .through_normalization(&z),
                        ),
                        Some(_) => None,
                    },
                ),
                Objective::Spectral(sp) => (sp.loss(&z)?, Some(sp.gradient_split(&z)?)),
            };
            let (alignment, uniformity) = split.map_or((f64::NAN, f64::NAN), |s| {
                (
                    s.alignment.norm().double_value(&[]),
                    s.uniformity.norm().double_value(&[]),
                )
            });
            grad_norms.0 += alignment;
            grad_norms.1 += uniformity;
            opt.set_lr(schedule.lr(step));
            opt.backward_step(&loss);
            aggregator.observe(&this_step);
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

/// Evaluates the model's backbone in eval mode on unaugmented images.
fn evaluate_encoder(
    cfg: &Config,
    name: &str,
    model: &Model,
    train: &ImageSet,
    test: &ImageSet,
) -> Row {
    // The images are gray and the pipelines were checked against them, so the base
    // pipeline's mean and std have one value each.
    let norm = (cfg.augment.base.mean[0], cfg.augment.base.std[0]);
    let mut encode = |x: &Tensor| model.forward_t(x, false).0;
    let f_train = mpcl_eval::extract(train, norm, cfg.eval.batch_size, Device::Cpu, &mut encode);
    let f_test = mpcl_eval::extract(test, norm, cfg.eval.batch_size, Device::Cpu, &mut encode);
    evaluate_features(cfg, name, &f_train, &f_test, (train, test))
}

fn evaluate_features(
    cfg: &Config,
    name: &str,
    f_train: &Tensor,
    f_test: &Tensor,
    (train, test): (&ImageSet, &ImageSet),
) -> Row {
    let start = Instant::now();
    let (y_train, y_test) = (labels(train), labels(test));
    let knn = knn(
        f_train,
        &y_train,
        f_test,
        &y_test,
        train.classes,
        &cfg.eval.knn,
    );
    let probe = linear_probe(
        f_train,
        &y_train,
        f_test,
        &y_test,
        train.classes,
        &cfg.eval.probe,
    );
    info!(
        knn_top1 = format!("{:.4}", knn.top1),
        probe_top1 = format!("{:.4}", probe.top1),
        seconds = format!("{:.1}", start.elapsed().as_secs_f64()),
        "evaluated {name}"
    );
    Row {
        name: name.into(),
        knn,
        probe,
    }
}
