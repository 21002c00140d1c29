//! The linear probe: a linear classifier trained on a frozen encoder's features, by one of two
//! protocols chosen with [`ProbeConfig::protocol`]:
//!
//! - `standardised` (the default, cheap enough for CPU presets): features extracted once,
//!   standardised with the training split's mean and standard deviation, a zero-initialised
//!   linear layer, cross-entropy, AdamW with cosine decay, no augmentation. Without the
//!   scaling a probe judges the features' scale rather than their content (on unit-norm raw
//!   Fashion-MNIST pixels the reference protocol under-fits at 0.766, issue #11).
//! - `simclr-reference` (docs/science.md §5): a zero-initialised linear layer on unscaled
//!   features, SGD with momentum 0.9, lr 0.1 decayed linearly to 0, weight decay 10⁻⁴, batch
//!   1024, a set number of iterations; each training batch is re-encoded through the frozen
//!   encoder after `RandomCrop(size, padding 4, reflect)` and a horizontal flip.
//!
//! Both score unaugmented test features and use only their own seeded generators, so the same
//! encoder probed twice with the same seed gives the same numbers. Neither updates the encoder.

use mpcl_data::ImageSet;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::crop::{crop_flip, draw_placements};
use crate::features::image_dims;
use crate::{Encoder, TopK, labels};

/// Which linear-probe protocol to run (TOML: `protocol = "standardised"` or
/// `"simclr-reference"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeProtocol {
    /// Standardised features extracted once, AdamW, no augmentation.
    #[default]
    Standardised,
    /// SimCLR's CIFAR protocol: SGD on unscaled features of re-encoded augmented images.
    SimclrReference,
}

/// The settings of the `simclr-reference` protocol (`[eval.probe.reference]`); the defaults
/// are the reference values of docs/science.md §5.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ReferenceProbe {
    /// SGD steps. Default 8000.
    pub iterations: usize,
    /// Images per step. Default 1024.
    pub batch_size: usize,
    /// Initial learning rate, decayed linearly to 0 over the iterations. Default 0.1.
    pub lr: f64,
    /// SGD momentum. Default 0.9.
    pub momentum: f64,
    /// L2 weight decay on the linear layer. Default 10⁻⁴.
    pub weight_decay: f64,
    /// Reflection padding of the random crop, in pixels. Default 4.
    pub padding: usize,
}

impl Default for ReferenceProbe {
    fn default() -> Self {
        Self {
            iterations: 8000,
            batch_size: 1024,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            padding: 4,
        }
    }
}

/// The probe's training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ProbeConfig {
    /// The protocol. Default `standardised`.
    pub protocol: ProbeProtocol,
    /// `standardised`: passes over the training features. Default 30.
    pub epochs: usize,
    /// `standardised`: features per step. Default 512.
    pub batch_size: usize,
    /// `standardised`: AdamW's initial learning rate, decayed to 0 along a cosine. Default
    /// 10⁻².
    pub lr: f64,
    /// `standardised`: decoupled weight decay. Default 10⁻⁵.
    pub weight_decay: f64,
    /// Seed of the shuffling and of the reference protocol's crops and flips. Default 0.
    pub seed: u64,
    /// The `simclr-reference` settings.
    pub reference: ReferenceProbe,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            protocol: ProbeProtocol::Standardised,
            epochs: 30,
            batch_size: 512,
            lr: 1e-2,
            weight_decay: 1e-5,
            seed: 0,
            reference: ReferenceProbe::default(),
        }
    }
}

impl ProbeConfig {
    /// One sentence naming the protocol and its settings, for result tables.
    pub fn describe(&self) -> String {
        match self.protocol {
            ProbeProtocol::Standardised => format!(
                "Linear probe (standardised): features standardised with training-split \
                 statistics, zero-initialised linear layer, {} epochs of AdamW (lr {}, cosine \
                 decay to 0, weight decay {}), batch {}, no augmentation, seed {}.",
                self.epochs, self.lr, self.weight_decay, self.batch_size, self.seed
            ),
            ProbeProtocol::SimclrReference => {
                let r = &self.reference;
                format!(
                    "Linear probe (SimCLR reference): zero-initialised linear layer on unscaled \
                     frozen features, {} iterations of SGD (momentum {}, lr {} decayed linearly \
                     to 0, weight decay {}), batch {}, training images re-encoded each step \
                     after RandomCrop(padding {}, reflect) and a horizontal flip, seed {}.",
                    r.iterations,
                    r.momentum,
                    r.lr,
                    r.weight_decay,
                    r.batch_size,
                    r.padding,
                    self.seed
                )
            }
        }
    }
}

/// Runs the probe of `cfg.protocol`: `standardised` trains on `features.0`, the reference
/// protocol re-encodes the images of `train` through `encoder`; both score `features.1`.
///
/// # Shapes
/// `features`: `([n, D], [m, D])` unaugmented train and test features; `test_labels`: `[m]`
/// int64 in `0..train.classes`.
pub fn probe(
    cfg: &ProbeConfig,
    train: &ImageSet,
    features: (&Tensor, &Tensor),
    test_labels: &Tensor,
    encoder: &mut Encoder,
) -> TopK {
    match cfg.protocol {
        ProbeProtocol::Standardised => {
            let (f_train, f_test) = features;
            linear_probe(
                f_train,
                &labels(train),
                f_test,
                test_labels,
                train.classes,
                cfg,
            )
        }
        ProbeProtocol::SimclrReference => reference_probe(
            train,
            features.1,
            test_labels,
            encoder,
            &cfg.reference,
            cfg.seed,
        ),
    }
}

/// A zero-initialised linear layer `D → classes` with bias.
fn zero_linear(vs: &nn::VarStore, dim: i64, classes: usize) -> nn::Linear {
    let zero = nn::LinearConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(vs.root(), dim, classes as i64, zero)
}

/// `0..n` in an order drawn from `rng`, as an index tensor.
fn shuffled(rng: &mut ChaCha8Rng, n: usize) -> Vec<i64> {
    let mut order: Vec<i64> = (0..n as i64).collect();
    order.shuffle(rng);
    order
}

/// The `standardised` protocol: trains a linear classifier on standardised `train` features
/// (with `cfg`'s epochs, batch size, lr, weight decay and seed) and scores it on `test`.
///
/// # Shapes
/// `train`: `[n, D]`, `train_labels`: `[n]` int64; `test`: `[m, D]`, `test_labels`: `[m]`.
pub fn linear_probe(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    test_labels: &Tensor,
    classes: usize,
    cfg: &ProbeConfig,
) -> TopK {
    let mean = train.mean_dim([0i64].as_slice(), true, Kind::Float);
    let std = train
        .std_dim([0i64].as_slice(), false, true)
        .clamp_min(1e-6);
    let standardise = |x: &Tensor| (x.to_kind(Kind::Float) - &mean) / &std;
    let (train, test) = (standardise(train), standardise(test));
    let [n, dim] = train.size()[..] else {
        unreachable!("features are [n, D]")
    };

    let vs = nn::VarStore::new(Device::Cpu);
    let layer = zero_linear(&vs, dim, classes);
    let mut opt = nn::AdamW::default()
        .wd(cfg.weight_decay)
        .build(&vs, cfg.lr)
        .expect("adam");
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let batch = cfg.batch_size.max(1) as i64;
    let steps_per_epoch = (n + batch - 1) / batch;
    let total = (steps_per_epoch * cfg.epochs as i64).max(1) as f64;
    let mut step = 0.0;
    for _ in 0..cfg.epochs {
        let order = Tensor::from_slice(&shuffled(&mut rng, n as usize));
        for start in (0..n).step_by(batch as usize) {
            let idx = order.narrow(0, start, batch.min(n - start));
            let logits = layer.forward(&train.index_select(0, &idx));
            let loss = logits.cross_entropy_for_logits(&train_labels.index_select(0, &idx));
            opt.set_lr(cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * step / total).cos()));
            opt.backward_step(&loss);
            step += 1.0;
        }
    }
    tch::no_grad(|| TopK::of_scores(&layer.forward(&test), test_labels))
}

/// The `simclr-reference` protocol: trains a zero-initialised linear layer with SGD on the
/// unscaled features of `train`'s images, re-encoded through `encoder` after a random crop
/// and flip at every step, and scores it on the unaugmented `test_features`.
///
/// Batches are consecutive slices of shuffled passes over the training set, drawn with the
/// crops and flips from one generator seeded by `seed`.
///
/// # Shapes
/// `test_features`: `[m, D]`; `test_labels`: `[m]` int64 in `0..train.classes`.
pub fn reference_probe(
    train: &ImageSet,
    test_features: &Tensor,
    test_labels: &Tensor,
    encoder: &mut Encoder,
    cfg: &ReferenceProbe,
    seed: u64,
) -> TopK {
    let n = train.len();
    let device = encoder.device;
    let images = Tensor::from_slice(&train.pixels).view(image_dims(train, train.pixels.len()));
    let train_labels = labels(train);
    let dim = test_features.size()[1];

    let vs = nn::VarStore::new(device);
    let layer = zero_linear(&vs, dim, train.classes);
    let mut opt = nn::Sgd {
        momentum: cfg.momentum,
        dampening: 0.0,
        wd: cfg.weight_decay,
        nesterov: false,
    }
    .build(&vs, cfg.lr)
    .expect("sgd");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pass: Vec<i64> = Vec::new();
    for step in 0..cfg.iterations {
        // The next batch of the stream of shuffled passes.
        let mut idx = Vec::with_capacity(cfg.batch_size);
        while idx.len() < cfg.batch_size.max(1) {
            if pass.is_empty() {
                pass = shuffled(&mut rng, n);
            }
            let take = (cfg.batch_size.max(1) - idx.len()).min(pass.len());
            idx.extend(pass.drain(..take));
        }
        let idx = Tensor::from_slice(&idx);

        // Augment, re-encode through the frozen encoder (no_grad), train the layer.
        let placements = draw_placements(&mut rng, idx.size()[0] as usize, cfg.padding);
        let x = crop_flip(&images.index_select(0, &idx), cfg.padding, &placements);
        let h = encoder.encode_pixels(&x);
        let y = train_labels.index_select(0, &idx).to_device(device);
        let loss = layer.forward(&h).cross_entropy_for_logits(&y);
        opt.set_lr(cfg.lr * (1.0 - step as f64 / cfg.iterations as f64));
        opt.backward_step(&loss);
    }
    tch::no_grad(|| {
        let scores = layer.forward(&test_features.to_kind(Kind::Float).to_device(device));
        TopK::of_scores(&scores.to_device(Device::Cpu), test_labels)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_features_are_learned_perfectly() {
        // Three classes of 2-D points around the centres (±4, 0) and (0, 4), noise σ = 0.5:
        // separable with a wide margin, so a converged probe makes no mistake.
        tch::manual_seed(1);
        let make = |n: i64| {
            let labels = Tensor::arange(n, tch::kind::INT64_CPU).remainder(3);
            let centres = Tensor::from_slice(&[-4.0f32, 0.0, 4.0, 0.0, 0.0, 4.0]).view([3, 2]);
            let x = centres.index_select(0, &labels)
                + Tensor::randn([n, 2], tch::kind::FLOAT_CPU) * 0.5;
            (x, labels)
        };
        let (train, train_y) = make(600);
        let (test, test_y) = make(300);
        let cfg = ProbeConfig {
            epochs: 20,
            batch_size: 64,
            ..ProbeConfig::default()
        };
        let acc = linear_probe(&train, &train_y, &test, &test_y, 3, &cfg);
        assert_eq!(acc.top1, 1.0);
        assert_eq!(
            acc.top5, 1.0,
            "three classes: the right one is always among five"
        );
    }

    #[test]
    fn unlearnable_labels_stay_near_chance() {
        // Labels independent of the features: test accuracy should be near 1/4.
        tch::manual_seed(2);
        let train = Tensor::randn([800, 5], tch::kind::FLOAT_CPU);
        let test = Tensor::randn([800, 5], tch::kind::FLOAT_CPU);
        let y = || Tensor::randint(4, [800], tch::kind::INT64_CPU);
        let acc = linear_probe(&train, &y(), &test, &y(), 4, &ProbeConfig::default());
        assert!((0.15..0.35).contains(&acc.top1), "{acc:?}");
    }

    #[test]
    fn protocols_read_from_kebab_case_and_describe_themselves() {
        // The TOML names of the protocols, and the settings each description must state.
        let cfg: ProbeConfig =
            toml::from_str("protocol = \"simclr-reference\"\n[reference]\niterations = 500\n")
                .unwrap();
        assert_eq!(cfg.protocol, ProbeProtocol::SimclrReference);
        assert_eq!(cfg.reference.iterations, 500);
        assert_eq!(cfg.reference.batch_size, 1024);
        let text = cfg.describe();
        for part in [
            "SimCLR reference",
            "500 iterations",
            "momentum 0.9",
            "lr 0.1",
            "padding 4",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let text = ProbeConfig::default().describe();
        assert!(
            text.contains("standardised") && text.contains("30 epochs"),
            "{text}"
        );
        let bad = toml::from_str::<ProbeConfig>("protocol = \"simclr\"\n").unwrap_err();
        assert!(bad.to_string().contains("simclr-reference"), "{bad}");
    }
}
