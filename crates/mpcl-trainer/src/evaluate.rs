//! Judging an encoder: the rows of the results table (kNN, linear probe, diagnostics), the
//! baselines, the report text and the figures. `mpcl train` calls it after training and
//! `mpcl eval` on a saved run or checkpoint, so both give the same table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mpcl_data::augment::Pipeline;
use mpcl_data::loader::{LoaderConfig, epoch_batches};
use mpcl_data::{DatasetName, ImageSet};
use mpcl_eval::projection::{pca, tsne};
use mpcl_eval::{Encoder, Normalize, Row, diagnose, knn, labels, markdown_table, probe};
use mpcl_plot::{Lines, Panel, Scatter, Series, figure};
use tch::Tensor;
use tracing::{info, warn};

use crate::checkpoint::Checkpoint;
use crate::config::{Config, Method};
use crate::model::Model;
use crate::run_dir::EpochMetrics;
use crate::{RunDir, TrainError};

/// The baselines every table carries: raw pixels and the randomly initialised `model`.
pub(crate) fn baselines(
    cfg: &Config,
    model: &Model,
    (train, test): (&ImageSet, &ImageSet),
) -> Result<Vec<Row>, TrainError> {
    // Raw pixels: images in [0, 1] flattened, the same numbers as `pixel_features`.
    let mut flatten = |x: &Tensor| x.flatten(1, -1);
    let pixels = Encoder {
        encode: &mut flatten,
        norm: Normalize::unit(),
        batch_size: cfg.eval.batch_size,
        device: model.device(),
    };
    Ok(vec![
        evaluate(cfg, "raw pixels", pixels, (train, test))?,
        encoder(cfg, "random encoder", model, train, test)?,
    ])
}

/// `results.md`: the table under a title, followed by the protocol of every number.
pub(crate) fn report(
    cfg: &Config,
    title: &str,
    rows: &[Row],
    (train, test): (&ImageSet, &ImageSet),
) -> String {
    let protocol = format!(
        "kNN: k = {}, cosine similarity, votes weighted by exp(s/{}). {} Effective rank (of at \
         most min(n, D)) of the test features; alignment of two augmented views of {} test \
         images; uniformity (t = 2) of as many test features. Test images unaugmented; {} \
         training and {} test images.\n",
        cfg.eval.knn.k,
        cfg.eval.knn.temperature,
        cfg.eval.probe.describe(),
        cfg.eval.diagnostics.samples.min(test.len()),
        train.len(),
        test.len()
    );
    format!(
        "# {}: {title}\n\n{}\n{protocol}",
        cfg.name,
        markdown_table(rows)
    )
}

/// Writes `projection.png` (PCA and t-SNE maps of the first test images' backbone features,
/// coloured by class) and, when there are epochs, `training.png` (loss and online accuracy
/// per epoch) into `dir`.
///
/// # Errors
/// [`TrainError::Plot`] naming the file.
pub(crate) fn figures(
    dir: &Path,
    cfg: &Config,
    model: &Model,
    test: &ImageSet,
    metrics: &[EpochMetrics],
) -> Result<(), TrainError> {
    let p = &cfg.eval.projection;
    let n = p.samples.min(test.len());
    if p.enabled && n >= 4 {
        let start = Instant::now();
        let subset = test.clone().truncated(n);
        let h = encode(cfg, model, &subset);
        let classes: Vec<usize> = subset.labels.iter().map(|&c| usize::from(c)).collect();
        let names: Vec<String> = (0..test.classes).map(|c| c.to_string()).collect();
        let scatter = |title: &str, points| {
            Panel::Scatter(Scatter {
                title: title.into(),
                points,
                classes: classes.clone(),
                class_names: names.clone(),
            })
        };
        let panels = [
            scatter("PCA", pca(&h)),
            scatter(&format!("t-SNE (perplexity {})", p.perplexity), tsne(&h, p)),
        ];
        let title = format!("backbone features of {n} test images, by class");
        figure(&dir.join("projection.png"), &title, &panels, 2, (520, 460))?;
        info!(
            seconds = format!("{:.1}", start.elapsed().as_secs_f64()),
            "projection.png"
        );
    }
    if !metrics.is_empty() {
        let series = |name: &str, f: &dyn Fn(&EpochMetrics) -> f64| Series {
            name: name.into(),
            points: metrics.iter().map(|m| (m.epoch as f64, f(m))).collect(),
        };
        let lines = |title: &str, y: &str, series| {
            Panel::Lines(Lines {
                title: title.into(),
                x_label: "epoch".into(),
                y_label: y.into(),
                log_y: false,
                series,
            })
        };
        let mut panels = vec![lines(
            "loss",
            "mean loss",
            vec![series("train", &|m| m.loss)],
        )];
        let mut monitors = Vec::new();
        let any = |f: &dyn Fn(&EpochMetrics) -> f64| metrics.iter().any(|m| f(m).is_finite());
        if any(&|m| m.online_test_top1) {
            monitors.push(series("linear, train views", &|m| m.online_train_top1));
            monitors.push(series("linear, test", &|m| m.online_test_top1));
        }
        if any(&|m| m.knn_test_top1) {
            monitors.push(series("kNN, test", &|m| m.knn_test_top1));
        }
        if !monitors.is_empty() {
            panels.push(lines("online monitors", "top-1", monitors));
        }
        figure(
            &dir.join("training.png"),
            "training",
            &panels,
            2,
            (520, 400),
        )?;
    }
    Ok(())
}

/// What `mpcl eval` judges: a run directory (its `encoder.safetensors`, or its newest
/// checkpoint while it has none) or a checkpoint directory.
fn saved_model(path: &Path) -> Result<(Config, PathBuf), TrainError> {
    let missing = || {
        TrainError::Invalid(format!(
            "{}: neither a run directory (config.toml with encoder.safetensors or \
             checkpoints/) nor a checkpoint (state.toml)",
            path.display()
        ))
    };
    if path.join("state.toml").is_file() {
        let ck = Checkpoint::open(path)?;
        return Ok((ck.config()?, path.join("model.safetensors")));
    }
    let config = path.join("config.toml");
    if !config.is_file() {
        return Err(missing());
    }
    let weights = RunDir::open(path)?.weights_path();
    if weights.is_file() {
        return Ok((Config::load(&config)?, weights));
    }
    match Checkpoint::latest(path)? {
        Some(ck) => Ok((ck.config()?, ck.path().join("model.safetensors"))),
        None => Err(missing()),
    }
}

/// `mpcl eval`: the table of a saved model on `dataset` (default: the one it trained on),
/// computed on `device` (default: the one it trained on), written with `projection.png` into
/// `out` (default `<path>/eval-<dataset>`); returns the rows and the directory.
///
/// # Errors
/// A path that holds no model, data that cannot be loaded, weights that do not fit the
/// data's images (naming the entry), or files that cannot be written.
pub fn saved(
    path: &Path,
    dataset: Option<DatasetName>,
    data_dir: Option<&Path>,
    out: Option<&Path>,
    device: Option<&str>,
) -> Result<(Vec<Row>, PathBuf), TrainError> {
    let (mut cfg, weights) = saved_model(path)?;
    if let Some(name) = dataset {
        // The first convolution takes the training images' channels: refused before any
        // data is asked for when another data set's differ.
        let channels = |data: &crate::config::DataConfig| {
            let entry = data.registry_entry().map_err(TrainError::Invalid)?;
            Ok::<_, TrainError>(entry.image_shape().map(|(c, _, _)| c))
        };
        let trained = channels(&cfg.data)?;
        let trained_on = cfg.data.dataset;
        cfg.data.dataset = name;
        if let (Some(trained), Some(asked)) = (trained, channels(&cfg.data)?)
            && trained != asked
        {
            return Err(TrainError::Invalid(format!(
                "--dataset {name}: {asked}-channel images, but the model was trained on \
                 {trained_on}'s {trained}-channel ones"
            )));
        }
    }
    if let Some(device) = device {
        cfg.train.device = device.to_owned();
    }
    let data_dir = data_dir
        .map(Path::to_owned)
        .or_else(|| cfg.data.dir.clone())
        .unwrap_or_else(mpcl_data::default_data_dir);
    let out = out.map_or_else(
        || path.join(format!("eval-{}", cfg.data.dataset)),
        Path::to_owned,
    );
    tch::set_num_threads(crate::train::threads(&cfg) as i32);
    info!(
        "tch {} on {}",
        crate::train::tch_version(),
        cfg.train.device
    );
    let device = crate::device::resolve(&cfg.train.device)?;
    let out = RunDir::open(&out)?;
    let (data, train, test) = crate::train::load_sets(&cfg, &data_dir)?;
    // The random encoder of the baselines is the model as the run initialised it.
    tch::manual_seed(cfg.train.seed as i64);
    let simsiam = cfg.train.method == Method::Simsiam;
    let (vs, model) = Model::in_new_store(device, train.channels, &cfg.model, simsiam);
    let baselines = if cfg.eval.baselines {
        baselines(&cfg, &model, (&train, &test))?
    } else {
        Vec::new()
    };
    crate::weights::load(&vs, "", &weights)?;
    tch::manual_seed(cfg.train.seed as i64);
    let name = format!(
        "{} encoder ({})",
        cfg.train.method.label(),
        weights.display()
    );
    let mut rows = vec![encoder(&cfg, &name, &model, &train, &test)?];
    rows.extend(baselines);
    let text = report(&cfg, &data.title(), &rows, (&train, &test));
    out.write("results.md", text.as_bytes())?;
    let json = serde_json::to_string_pretty(&rows).expect("rows serialise");
    out.write("results.json", json.as_bytes())?;
    figures(out.path(), &cfg, &model, &test, &[])?;
    Ok((rows, out.path().to_owned()))
}

/// Evaluates the model's backbone in eval mode.
pub(crate) fn encoder(
    cfg: &Config,
    name: &str,
    model: &Model,
    train: &ImageSet,
    test: &ImageSet,
) -> Result<Row, TrainError> {
    let mut encode = |x: &Tensor| model.forward_t(x, false).0;
    let encoder = Encoder {
        encode: &mut encode,
        norm: eval_norm(cfg),
        batch_size: cfg.eval.batch_size,
        device: model.device(),
    };
    evaluate(cfg, name, encoder, (train, test))
}

/// The normalisation of unaugmented images for evaluation: the base pipeline's, per channel.
pub(crate) fn eval_norm(cfg: &Config) -> Normalize {
    Normalize {
        mean: cfg.augment.base.mean.clone(),
        std: cfg.augment.base.std.clone(),
    }
}

/// Backbone features of unaugmented, normalised images, computed in eval mode on the
/// model's device and returned on the CPU.
///
/// # Shapes
/// Returns `[n, D]`.
pub(crate) fn encode(cfg: &Config, model: &Model, set: &ImageSet) -> Tensor {
    let norm = eval_norm(cfg);
    let mut encode = |x: &Tensor| model.forward_t(x, false).0;
    mpcl_eval::extract(set, &norm, cfg.eval.batch_size, model.device(), &mut encode)
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
        seed: cfg.train.seed,
        drop_last: true,
        prefetch: 1,
    };
    // The first two training views (multi-crop's small ones are not paired here).
    let mut pipelines = cfg
        .augment
        .pipelines(2)
        .map_err(|e| TrainError::Invalid(format!("augment.{e}")))?;
    pipelines.truncate(2);
    let pipelines: Arc<[Pipeline]> = pipelines.into();
    let subset = Arc::new(test.clone().truncated(n));
    let batch = epoch_batches(subset, pipelines, loader, 0, 0)
        .recv()
        .map_err(|_| TrainError::Invalid("no augmented test views for the diagnostics".into()))?;
    let group = &batch.groups[0];
    let [c, h, w] = group.dims.map(|d| d as i64);
    let pixels = Tensor::from_slice(&group.pixels).view([group.views as i64 * n as i64, c, h, w]);
    let views = encoder.encode_normalised(&pixels);
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
