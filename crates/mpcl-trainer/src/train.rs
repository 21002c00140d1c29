//! One run from data to table.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mpcl_aggregators::{Aggregator, Change, Step};
use mpcl_data::augment::Pipeline;
use mpcl_data::loader::{LoaderConfig, batches_per_epoch, epoch_batches, view_groups};
use mpcl_data::{Dataset, ImageSet, Split};
use mpcl_eval::{Row, knn, labels};
use mpcl_losses::{InfoNce, Spectral, simsiam};
use serde::Serialize;
use tch::Tensor;
use tch::nn::{self, ModuleT};
use tracing::{info, warn};

use crate::TrainError;
use crate::checkpoint::{self, Checkpoint, EpochSums, Progress, Snapshot};
use crate::config::{Config, Method, NonFiniteLoss};
use crate::evaluate;
use crate::model::Model;
use crate::online::OnlineClassifier;
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

/// Trains and evaluates as `cfg` says, with data from `data_dir`, writing into `dir`. A
/// run directory that holds a checkpoint is resumed from its newest one (see
/// [`crate::checkpoint`]), with the same result as an uninterrupted run.
///
/// # Errors
/// Missing or corrupt data, unusable settings, a config that differs from the checkpoint's
/// in keys that change training, a diverging loss, or files that cannot be written; each
/// names what is at fault.
pub fn run(cfg: &Config, data_dir: &Path, dir: &RunDir) -> Result<Outcome, TrainError> {
    Ok(run_until(cfg, data_dir, dir, None)?.expect("no stop was asked for"))
}

/// [`run`], but with `stop_after_epoch = Some(e)` the run stops once epoch `e` is trained
/// and checkpointed, returning `None`; running again on `dir` continues it.
///
/// # Errors
/// As [`run`].
pub fn run_until(
    cfg: &Config,
    data_dir: &Path,
    dir: &RunDir,
    stop_after_epoch: Option<usize>,
) -> Result<Option<Outcome>, TrainError> {
    let resume = Checkpoint::latest(dir.path())?;
    if let Some(ck) = &resume {
        let changes = ck.changes(cfg);
        if !changes.breaking.is_empty() {
            return Err(TrainError::Invalid(format!(
                "cannot resume from {}: the config differs in keys that change training: {}; \
                 restore them or start a new run directory",
                ck.path().display(),
                changes.breaking.join(", ")
            )));
        }
        for change in &changes.harmless {
            info!("config changed since the checkpoint (harmless): {change}");
        }
    }
    dir.write_config(cfg)?;
    let t = &cfg.train;
    let threads = threads(cfg);
    tch::set_num_threads(threads as i32);
    // Logged before the device is checked, so a run that cannot have its device still
    // says which libtorch it was linked against.
    info!(
        threads,
        precision = ?t.precision,
        run_dir = %dir.path().display(),
        "tch {} on {}",
        tch_version(),
        t.device
    );
    let device = crate::device::resolve(&t.device)?;

    let (data, train_set, test_set) = load_sets(cfg, data_dir)?;
    if train_set.len() < t.batch_size {
        return Err(TrainError::Invalid(format!(
            "train.batch_size = {} is larger than the {} training images",
            t.batch_size,
            train_set.len()
        )));
    }

    cfg.check_images((train_set.channels, train_set.height, train_set.width))
        .map_err(TrainError::Invalid)?;
    let pipelines: Arc<[Pipeline]> = cfg
        .augment
        .pipelines(t.views)
        .map_err(|e| TrainError::Invalid(format!("augment.{e}")))?
        .into();

    tch::manual_seed(t.seed as i64);
    let simsiam = t.method == Method::Simsiam;
    let (vs, model) = Model::in_new_store(device, train_set.channels, &cfg.model, simsiam);
    let mut baselines = Vec::new();
    if let Some(ck) = &resume {
        baselines = ck.baselines().to_vec();
    } else if cfg.eval.enabled && cfg.eval.baselines {
        baselines = evaluate::baselines(cfg, &model, (&train_set, &test_set))?;
    }

    let sets = (&train_set, &test_set, pipelines.clone());
    let Some(metrics) = train(
        cfg,
        (&vs, &model),
        sets,
        (dir, resume, &baselines),
        stop_after_epoch,
    )?
    else {
        return Ok(None);
    };
    // Explicitly safetensors: VarStore::save picks the format from the (temporary) extension.
    crate::weights::save(&vs, "", &dir.weights_path())?;
    // The backbone alone under its own names (torchvision's for ResNets), for PyTorch.
    crate::weights::save(&vs, "backbone.", &dir.path().join("backbone.safetensors"))?;

    if !cfg.eval.enabled {
        let report = format!(
            "# {}: {}\n\nNot evaluated (`eval.enabled = false`).\n",
            cfg.name,
            data.title()
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
    // Evaluation draws from libtorch's generator: the same seed whether or not training was
    // interrupted.
    tch::manual_seed(t.seed as i64);
    let epochs = if t.epochs == 1 {
        "1 epoch".into()
    } else {
        format!("{} epochs", t.epochs)
    };
    let name = format!("{} encoder ({epochs})", t.method.label());
    let mut rows = vec![evaluate::encoder(
        cfg, &name, &model, &train_set, &test_set,
    )?];
    rows.extend(baselines);
    let report = evaluate::report(cfg, &data.title(), &rows, (&train_set, &test_set));
    dir.write("results.md", report.as_bytes())?;
    evaluate::figures(dir.path(), cfg, &model, &test_set, &metrics)?;
    finish(dir, Outcome { rows, metrics })
}

/// Writes `results.json`, the mark of a finished run, and hands the outcome back.
fn finish(dir: &RunDir, outcome: Outcome) -> Result<Option<Outcome>, TrainError> {
    let json = serde_json::to_string_pretty(&outcome).expect("results serialise");
    dir.write("results.json", json.as_bytes())?;
    Ok(Some(outcome))
}

/// The tch release, as pinned in the workspace manifest, the libtorch found at build time
/// (build/libtorch_rpath.rs) and what it offers for CUDA.
pub(crate) fn tch_version() -> String {
    format!(
        "0.26.0 (libtorch {}, {})",
        env!("MPCL_LIBTORCH_VERSION"),
        crate::device::CudaSupport::probe()
    )
}

/// The loss a run trains with.
enum Objective {
    InfoNce(InfoNce),
    Spectral(Spectral),
    SimSiam,
}

/// What the training loop reads and writes besides the model: the run directory, the
/// checkpoint to resume from, and the baselines each checkpoint carries.
type Persistence<'a> = (&'a RunDir, Option<Checkpoint>, &'a [Row]);

/// The training loop; returns the per-epoch metrics, also written to `metrics.csv`, or `None`
/// when it stopped after `stop_after_epoch` (checkpointed).
fn train(
    cfg: &Config,
    (vs, model): (&nn::VarStore, &Model),
    (set, test_set, pipelines): (&Arc<ImageSet>, &ImageSet, Arc<[Pipeline]>),
    (dir, resume, baselines): Persistence,
    stop_after_epoch: Option<usize>,
) -> Result<Option<Vec<EpochMetrics>>, TrainError> {
    let t = &cfg.train;
    let test_labels = labels(test_set).to_device(vs.device());
    let loader = LoaderConfig {
        batch_size: t.batch_size,
        seed: t.seed,
        drop_last: true,
        prefetch: 2,
    };
    let per_epoch = batches_per_epoch(set.len(), &loader);
    let schedule = Schedule {
        peak: t.peak_lr(),
        floor: t.min_lr,
        warmup: (t.warmup_epochs * per_epoch as f64).round() as usize,
        total: per_epoch * t.epochs,
    };
    // SimSiam's predictor keeps the peak rate, unscheduled, as in the reference.
    let fixed = (t.method == Method::Simsiam).then(|| ("predictor.", t.peak_lr()));
    let mut opt = crate::optim::from_config(t, vs, fixed)?;
    // The views per image: `train.views`, then `augment.multicrop.count` small crops.
    let views = pipelines.len();
    let objective = match t.method {
        Method::Simclr => Objective::InfoNce(InfoNce::new(t.temperature, views)?),
        Method::Spectral => Objective::Spectral(Spectral::new(views, t.spectral_mu)?),
        Method::Simsiam => Objective::SimSiam,
    };
    let mut aggregator = cfg
        .aggregators
        .build(set.len(), cfg.model.projector_dim, vs.device());
    let groups = view_groups(&pipelines, (set.channels, set.height, set.width));
    let resolutions: Vec<String> = groups
        .iter()
        .map(|(_, n, [_, h, w])| format!("{n} × {h}×{w}"))
        .collect();
    info!("views per image: {}", resolutions.join(" + "));
    let rows = views * t.batch_size;

    // Built at the first batch, when the feature width is known, or from the checkpoint.
    let mut online: Option<OnlineClassifier> = None;
    let mut progress = Progress::default();
    let mut last_good = None;
    let mut candidate = resume;
    while let Some(ck) = candidate.take() {
        match ck.restore(vs, &mut opt, &mut aggregator, t.online_lr) {
            Ok(restored) => online = restored,
            Err(e) => {
                // Each restore replaces everything the one before may have loaded.
                let Some(previous) = ck.previous()? else {
                    return Err(e);
                };
                let aside = ck.set_aside()?;
                warn!(
                    "{e}; set aside as {}, resuming from the checkpoint before it",
                    aside.display()
                );
                candidate = Some(previous);
                continue;
            }
        }
        progress = ck.progress().clone();
        info!(
            epoch = progress.epoch,
            batch = progress.batch,
            step = progress.step,
            "resuming from {}",
            ck.path().display()
        );
        last_good = Some(ck.path().to_owned());
    }
    info!(
        steps = schedule.total,
        per_epoch,
        aggregator = aggregator.name(),
        "training {:?}",
        t.method
    );
    let epoch_done = progress.epoch == 0 || progress.batch == per_epoch;
    let first_epoch = progress.epoch + usize::from(epoch_done);
    let save = |progress: &Progress,
                opt: &crate::optim::Optimizer,
                online: Option<&OnlineClassifier>,
                aggregator: &dyn Aggregator| {
        let snap = Snapshot {
            vs,
            optimizer: opt,
            online,
            aggregator,
            progress,
            baselines,
            config: cfg,
        };
        let path = checkpoint::save(dir.path(), &snap, cfg.checkpoint.keep_last)?;
        info!(step = progress.step, "checkpoint {}", path.display());
        Ok::<_, TrainError>(path)
    };

    // The kNN monitor's memory bank: the first `train.knn_bank` training images.
    let knn_bank = (**set).clone().truncated(t.knn_bank);
    // The variables a forward pass updates (BN running statistics): a skipped step puts
    // them back as they were.
    let buffers: Vec<Tensor> = match t.on_nonfinite {
        NonFiniteLoss::Skip => vs
            .variables()
            .into_values()
            .filter(|v| !v.requires_grad())
            .collect(),
        NonFiniteLoss::Stop => Vec::new(),
    };
    for epoch in first_epoch..=t.epochs {
        if stop_after_epoch.is_some_and(|stop| epoch > stop) {
            info!(
                "stopping after epoch {} as asked; run again to resume",
                epoch - 1
            );
            return Ok(None);
        }
        if progress.epoch != epoch {
            progress.epoch = epoch;
            progress.batch = 0;
            progress.sums = EpochSums::default();
        }
        let bar = progress_bar(per_epoch, epoch, t.epochs);
        bar.set_position(progress.batch as u64);
        let (start, first_batch) = (Instant::now(), progress.batch);
        let seconds_before = progress.sums.seconds;
        let batches = epoch_batches(
            set.clone(),
            pipelines.clone(),
            loader,
            epoch as u64,
            first_batch,
        );
        for batch in batches {
            // libtorch's generator is a function of the position, so a resumed run draws
            // what the uninterrupted one would.
            tch::manual_seed(checkpoint::torch_seed(t.seed, progress.step));
            let before: Vec<Tensor> = buffers.iter().map(Tensor::copy).collect();
            // One forward pass per resolution (multi-crop), rows kept view-major.
            let (mut hs, mut zs): (Vec<Tensor>, Vec<Tensor>) = batch
                .groups
                .iter()
                .map(|g| {
                    let [c, h, w] = g.dims.map(|d| d as i64);
                    let n = (g.views * batch.indices.len()) as i64;
                    let xs = Tensor::from_slice(&g.pixels).view([n, c, h, w]);
                    let [h, z] = crate::device::forward(t.precision, vs.device(), || {
                        let (h, z) = model.forward_t(&xs.to_device(vs.device()), true);
                        [h, z]
                    })?;
                    Ok((h, z))
                })
                .collect::<Result<Vec<_>, TrainError>>()?
                .into_iter()
                .unzip();
            let (h, z) = match hs.len() {
                1 => (hs.remove(0), zs.remove(0)),
                _ => (Tensor::cat(&hs, 0), Tensor::cat(&zs, 0)),
            };
            let z = aggregator.transform(&z);
            let indices: Vec<i64> = batch.indices.iter().map(|&i| i as i64).collect();
            let samples = Tensor::from_slice(&indices).to_device(vs.device());
            let this_step = Step {
                backbone: &h,
                projection: &z,
                samples: &samples,
                views,
                epoch,
            };
            let Change { weights, keys } = aggregator.change(&this_step);
            // The closed-form split of the gradient into its two messages, for metrics.csv:
            // every `train.split_every`-th step, and only where it exists (plain InfoNCE
            // positives, the spectral loss; not SimSiam or replaced keys).
            let measurable = match &objective {
                Objective::InfoNce(_) => keys.is_none(),
                Objective::Spectral(_) => true,
                Objective::SimSiam => false,
            };
            let measure =
                measurable && t.split_every > 0 && progress.step.is_multiple_of(t.split_every);
            let (loss, split) = match &objective {
                Objective::InfoNce(nce) => (
                    nce.loss_with_keys(&z, weights.as_ref(), keys.as_ref())?,
                    measure
                        .then(|| nce.gradient_split(&z, weights.as_ref()))
                        .transpose()?
                        .map(|split| split.through_normalization(&z)),
                ),
                Objective::Spectral(sp) => (
                    sp.loss(&z)?,
                    measure.then(|| sp.gradient_split(&z)).transpose()?,
                ),
                Objective::SimSiam => {
                    // Multi-stage aggregation replaces the targets with its mixed keys.
                    let predictor = model.predictor.as_ref().expect("built for SimSiam");
                    let targets = keys.as_ref().unwrap_or(&z);
                    let [p] = crate::device::forward(t.precision, vs.device(), || {
                        [predictor.forward_t(&z, true)]
                    })?;
                    (simsiam(&p, targets, views)?, None)
                }
            };
            let value = loss.double_value(&[]);
            progress.step += 1;
            progress.batch += 1;
            let sums = &mut progress.sums;
            sums.views += rows;
            if value.is_finite() {
                if t.online_classifier {
                    let clf = match &mut online {
                        Some(clf) => clf,
                        None => online.insert(OnlineClassifier::new(
                            h.size()[1] as usize,
                            set.classes,
                            t.online_lr,
                            vs.device(),
                        )?),
                    };
                    // View-major rows: view v of image i is row v·N + i.
                    let y: Vec<i64> = (0..views)
                        .flat_map(|_| batch.indices.iter().map(|&i| i64::from(set.labels[i])))
                        .collect();
                    let y = Tensor::from_slice(&y).to_device(vs.device());
                    sums.online_correct += clf.step(&h, &y);
                }
                if let Some(split) = split {
                    sums.grad_alignment += split.alignment.norm().double_value(&[]);
                    sums.grad_uniformity += split.uniformity.norm().double_value(&[]);
                    sums.split_steps += 1;
                }
                opt.backward_step(&loss, schedule.lr(progress.step - 1));
                aggregator.observe(&this_step);
                sums.loss += value;
            } else if t.on_nonfinite == NonFiniteLoss::Skip {
                tch::no_grad(|| {
                    for (mut b, old) in buffers.iter().map(Tensor::shallow_clone).zip(&before) {
                        b.copy_(old);
                    }
                });
                sums.skipped += 1;
                warn!(
                    epoch,
                    step = progress.step,
                    "the loss is {value}: step skipped ({} this epoch)",
                    sums.skipped
                );
            } else {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    epoch,
                    step: progress.step,
                    value,
                    last_good: last_good.as_ref().map_or_else(
                        || "none yet (none had been written)".into(),
                        |p: &std::path::PathBuf| p.display().to_string(),
                    ),
                });
            }
            let elapsed = start.elapsed().as_secs_f64();
            let rate = ((progress.batch - first_batch) * rows) as f64 / elapsed;
            let lr = schedule.lr(progress.step - 1);
            let msg = format!("loss {value:.4}  lr {lr:.2e}  {rate:.0} views/s");
            bar.inc(1);
            if !bar.is_hidden() {
                bar.set_message(msg);
            } else if progress.step % t.log_every == 0 {
                // The run's remaining steps at this process's mean step time so far.
                let per_step = elapsed / (progress.batch - first_batch) as f64;
                let eta = per_step * (schedule.total - progress.step) as f64;
                info!(
                    "epoch {epoch}/{}, step {}/{per_epoch}: {msg}, run ETA {eta:.0} s",
                    t.epochs, progress.batch
                );
            }
            let every = cfg.checkpoint.every_steps;
            if every > 0 && progress.step % every == 0 && progress.batch < per_epoch {
                progress.sums.seconds = seconds_before + start.elapsed().as_secs_f64();
                let online = online.as_ref();
                last_good = Some(save(&progress, &opt, online, &aggregator)?);
            }
        }
        bar.finish_and_clear();
        let sums = &mut progress.sums;
        sums.seconds = seconds_before + start.elapsed().as_secs_f64();
        // The monitors: the online classifier and the kNN classifier on the test split
        // (held out from training), sharing one pass over it.
        let monitor_knn = t.knn_every > 0 && epoch.is_multiple_of(t.knn_every);
        let test_features =
            (online.is_some() || monitor_knn).then(|| evaluate::encode(cfg, model, test_set));
        let online_test = match (&online, &test_features) {
            (Some(clf), Some(h)) => clf.accuracy(h, &test_labels),
            _ => f64::NAN,
        };
        let knn_test = match &test_features {
            Some(h) if monitor_knn => {
                let bank = evaluate::encode(cfg, model, &knn_bank);
                let cfg_knn = &cfg.eval.knn;
                let y = labels(&knn_bank);
                knn(&bank, &y, h, &test_labels, set.classes, cfg_knn).top1
            }
            _ => f64::NAN,
        };
        let taken = (per_epoch - sums.skipped) as f64;
        let row = EpochMetrics {
            epoch,
            step: progress.step,
            loss: sums.loss / taken,
            lr: schedule.lr(progress.step - 1),
            views_per_s: sums.views as f64 / sums.seconds,
            seconds: sums.seconds,
            // NaN when no step of the epoch was measured (or none can be).
            grad_alignment: sums.grad_alignment / sums.split_steps as f64,
            grad_uniformity: sums.grad_uniformity / sums.split_steps as f64,
            online_train_top1: if online.is_some() {
                sums.online_correct as f64 / (taken * rows as f64)
            } else {
                f64::NAN
            },
            online_test_top1: online_test,
            knn_test_top1: knn_test,
            skipped_steps: sums.skipped,
        };
        info!(
            epoch,
            loss = format!("{:.4}", row.loss),
            grad_alignment = format!("{:.3e}", row.grad_alignment),
            grad_uniformity = format!("{:.3e}", row.grad_uniformity),
            views_per_s = format!("{:.0}", row.views_per_s),
            online_train_top1 = format!("{:.4}", row.online_train_top1),
            online_test_top1 = format!("{:.4}", row.online_test_top1),
            knn_test_top1 = format!("{:.4}", row.knn_test_top1),
            skipped_steps = row.skipped_steps,
            seconds = format!("{:.1}", row.seconds),
            "epoch {epoch}/{} done",
            t.epochs
        );
        progress.metrics.push(row);
        dir.write_metrics(&progress.metrics)?;
        let due = epoch % cfg.checkpoint.every_epochs == 0
            || epoch == t.epochs
            || stop_after_epoch == Some(epoch);
        if due {
            let online = online.as_ref();
            last_good = Some(save(&progress, &opt, online, &aggregator)?);
        }
    }
    if stop_after_epoch.is_some_and(|stop| stop < t.epochs) {
        // Resumed at or past the stop: nothing trained, the checkpoint stands.
        return Ok(None);
    }
    Ok(Some(progress.metrics))
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

/// The libtorch threads `cfg` asks for: `train.threads`, or one per core for 0.
pub(crate) fn threads(cfg: &Config) -> usize {
    match cfg.train.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The data set of `cfg` from `data_dir`: its registry entry, the training split (shared
/// with the loader threads) and the test split, subsets applied and checked.
pub(crate) fn load_sets(
    cfg: &Config,
    data_dir: &Path,
) -> Result<(Dataset, Arc<ImageSet>, ImageSet), TrainError> {
    let data = cfg.data.registry_entry().map_err(TrainError::Invalid)?;
    let train_set = Arc::new(
        data.load(data_dir, Split::Train)?
            .truncated(cfg.data.train_subset),
    );
    let test_set = data
        .load(data_dir, Split::Test)?
        .truncated(cfg.data.test_subset);
    info!(train = train_set.len(), test = test_set.len(), dir = %data.dir(data_dir).display(),
        "{} loaded and verified", data.title());
    for (key, asked, have) in [
        ("data.train_subset", cfg.data.train_subset, train_set.len()),
        ("data.test_subset", cfg.data.test_subset, test_set.len()),
    ] {
        if asked > have {
            warn!("{key} = {asked} exceeds the {have} images of the split: using all of them");
        }
    }
    Ok((data, train_set, test_set))
}
