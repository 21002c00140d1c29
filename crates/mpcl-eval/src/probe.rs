//! The linear probe: a linear classifier trained on frozen features.
//!
//! The cheap protocol for CPU presets: features standardised with the training split's mean
//! and standard deviation, a zero-initialised linear layer, cross-entropy, Adam with cosine
//! decay, no augmentation. (The SimCLR reference protocol that re-encodes augmented images
//! comes with FIXME(#11).)

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::TopK;

/// The probe's training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Passes over the training features.
    pub epochs: usize,
    /// Features per step.
    pub batch_size: usize,
    /// Adam's initial learning rate, decayed to 0 along a cosine.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of the shuffling.
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 512,
            lr: 1e-2,
            weight_decay: 1e-5,
            seed: 0,
        }
    }
}

/// Trains a linear classifier on standardised `train` features and scores it on `test`.
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

    tch::manual_seed(cfg.seed as i64);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let zero = nn::LinearConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    let layer = nn::linear(vs.root(), dim, classes as i64, zero);
    let mut opt = nn::AdamW::default()
        .wd(cfg.weight_decay)
        .build(&vs, cfg.lr)
        .expect("adam");
    let batch = cfg.batch_size.max(1) as i64;
    let steps_per_epoch = (n + batch - 1) / batch;
    let total = (steps_per_epoch * cfg.epochs as i64).max(1) as f64;
    let mut step = 0.0;
    for _ in 0..cfg.epochs {
        let order = Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu));
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
}
