//! The online linear classifier: a linear layer on detached backbone features, trained with
//! the batch's labels alongside the encoder (as solo-learn does), so each epoch reports how
//! linearly separable the features are without a separate probe. It never sends gradients
//! into the encoder and has its own variables and optimizer (SGD, momentum 0.9, fixed rate,
//! no weight decay); the final linear probe of mpcl-eval remains the reported result.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::TrainError;
use crate::optim::{Optimizer, ParamGroup, Rule};
use crate::resnet::TORCH_DEFAULT_INIT;

/// A linear classifier trained on features it receives detached.
#[derive(Debug)]
pub struct OnlineClassifier {
    vs: nn::VarStore,
    linear: nn::Linear,
    opt: Optimizer,
    lr: f64,
}

impl OnlineClassifier {
    /// A classifier from `features` to `classes` on `device`, PyTorch's default Linear init.
    ///
    /// # Errors
    /// Never in practice (the optimizer's groups are built here); kept for the optimizer's
    /// constructor.
    pub fn new(
        features: usize,
        classes: usize,
        lr: f64,
        device: tch::Device,
    ) -> Result<Self, TrainError> {
        let vs = nn::VarStore::new(device);
        let cfg = nn::LinearConfig {
            ws_init: TORCH_DEFAULT_INIT,
            ..Default::default()
        };
        let linear = nn::linear(
            vs.root() / "classifier",
            features as i64,
            classes as i64,
            cfg,
        );
        let rule = Rule::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        };
        let params = crate::optim::trainable(&vs, "");
        let opt = Optimizer::new(rule, vec![ParamGroup::new(params, 0.0)])?;
        Ok(Self {
            vs,
            linear,
            opt,
            lr,
        })
    }

    /// The weights (`weights.classifier.{weight,bias}`) and the optimizer state
    /// (`optimizer.…`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let weights = self
            .vs
            .variables()
            .into_iter()
            .map(|(n, t)| (format!("weights.{n}"), t));
        let opt = self
            .opt
            .state()
            .into_iter()
            .map(|(n, t)| (format!("optimizer.{n}"), t));
        weights.chain(opt).collect()
    }

    /// A classifier as [`OnlineClassifier::state`] saved it; the feature width and the
    /// number of classes come from the saved weight.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the entry that is missing, of another shape, or not
    /// part of the classifier.
    pub fn restore(
        state: &[(String, Tensor)],
        lr: f64,
        device: tch::Device,
    ) -> Result<Self, TrainError> {
        let invalid = |m: String| TrainError::Invalid(format!("online classifier: {m}"));
        let weight = state
            .iter()
            .find(|(n, _)| n == "weights.classifier.weight")
            .map(|(_, t)| t.size())
            .ok_or_else(|| invalid("weights.classifier.weight is missing".into()))?;
        let [classes, features] = weight[..] else {
            return Err(invalid(format!(
                "weights.classifier.weight has shape {weight:?}, expected [classes, features]"
            )));
        };
        let mut clf = Self::new(features as usize, classes as usize, lr, device)?;
        let mut vars = clf.vs.variables();
        let mut opt = Vec::new();
        for (name, t) in state {
            if let Some(var) = name.strip_prefix("weights.") {
                let mut v = vars
                    .remove(var)
                    .ok_or_else(|| invalid(format!("{name} is not a classifier weight")))?;
                if v.size() != t.size() {
                    return Err(invalid(format!(
                        "{name} has shape {:?}, expected {:?}",
                        t.size(),
                        v.size()
                    )));
                }
                tch::no_grad(|| v.copy_(t));
            } else if let Some(key) = name.strip_prefix("optimizer.") {
                opt.push((key.to_owned(), t.shallow_clone()));
            } else {
                return Err(invalid(format!("unexpected entry {name}")));
            }
        }
        if let Some(missing) = vars.keys().next() {
            return Err(invalid(format!("weights.{missing} is missing")));
        }
        clf.opt.load_state(&opt)?;
        Ok(clf)
    }

    /// One SGD step on cross-entropy of the detached features `h` against `labels`; returns
    /// the number of rows classified correctly before the step.
    ///
    /// # Shapes
    /// `h`: `[n, D]`, `labels`: `[n]` int64; returns a count.
    pub fn step(&mut self, h: &Tensor, labels: &Tensor) -> i64 {
        let logits = self.linear.forward(&h.detach().to_kind(Kind::Float));
        let correct = logits
            .argmax(1, false)
            .eq_tensor(labels)
            .sum(Kind::Int64)
            .int64_value(&[]);
        let loss = logits.cross_entropy_for_logits(labels);
        self.opt.backward_step(&loss, self.lr);
        correct
    }

    /// Top-1 accuracy on features (no gradient, no update).
    ///
    /// # Shapes
    /// `h`: `[n, D]`, `labels`: `[n]` int64.
    pub fn accuracy(&self, h: &Tensor, labels: &Tensor) -> f64 {
        tch::no_grad(|| {
            let logits = self
                .linear
                .forward(&h.to_kind(Kind::Float).to_device(labels.device()));
            let correct = logits.argmax(1, false).eq_tensor(labels).sum(Kind::Int64);
            correct.int64_value(&[]) as f64 / labels.size()[0] as f64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_features_are_learned_without_touching_the_encoder() {
        // Three classes whose features are one-hot directions scaled by 3 plus noise of std
        // 0.1: linearly separable with a wide margin, so SGD must reach 100 % on them.
        tch::manual_seed(0);
        let labels = Tensor::arange(300, tch::kind::INT64_CPU).remainder(3);
        let centres = labels.one_hot(3).to_kind(Kind::Float) * 3.0;
        let noise = Tensor::randn([300, 3], tch::kind::FLOAT_CPU) * 0.1;
        let encoder = Tensor::ones([3], tch::kind::FLOAT_CPU).set_requires_grad(true);
        let h = (centres + noise) * &encoder;
        let mut clf = OnlineClassifier::new(3, 3, 0.1, tch::Device::Cpu).unwrap();
        let before = clf.accuracy(&h, &labels);
        for _ in 0..50 {
            clf.step(&h, &labels);
        }
        assert_eq!(
            clf.accuracy(&h, &labels),
            1.0,
            "accuracy before training: {before}"
        );
        assert!(!encoder.grad().defined(), "no gradient reaches the encoder");
    }

    #[test]
    fn a_restored_classifier_continues_exactly() {
        // Oracle: the original. The restored copy holds the same tensors, in storage of its
        // own (a shared momentum buffer would be updated twice), and steps as the original
        // does. Libtorch's CPU reductions may split differently while other tests run in
        // parallel, so the step is compared to 1e-6 rather than bit for bit; the end-to-end
        // resume tests compare bits in processes of their own.
        tch::manual_seed(1);
        let h = Tensor::randn([40, 5], tch::kind::FLOAT_CPU);
        let labels = Tensor::arange(40, tch::kind::INT64_CPU).remainder(4);
        let mut a = OnlineClassifier::new(5, 4, 0.1, tch::Device::Cpu).unwrap();
        a.step(&h, &labels);
        let mut b = OnlineClassifier::restore(&a.state(), 0.1, tch::Device::Cpu).unwrap();
        let sorted = |c: &OnlineClassifier| {
            let mut s = c.state();
            s.sort_by(|x, y| x.0.cmp(&y.0));
            s
        };
        for ((na, ta), (nb, tb)) in sorted(&a).iter().zip(&sorted(&b)) {
            assert_eq!(na, nb);
            assert!(ta.equal(tb), "{na} differs after restore");
            assert_ne!(ta.data_ptr(), tb.data_ptr(), "{na} shares storage");
        }
        a.step(&h, &labels);
        b.step(&h, &labels);
        for ((na, ta), (_, tb)) in sorted(&a).iter().zip(&sorted(&b)) {
            assert!(
                ta.allclose(tb, 1e-6, 1e-6, false),
                "{na} differs after a step"
            );
        }
        let mut bad = a.state();
        bad.retain(|(n, _)| n != "weights.classifier.bias");
        let err = OnlineClassifier::restore(&bad, 0.1, tch::Device::Cpu).unwrap_err();
        assert!(
            err.to_string()
                .contains("weights.classifier.bias is missing"),
            "{err}"
        );
    }
}
