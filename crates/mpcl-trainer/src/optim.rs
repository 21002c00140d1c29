//! Optimizers on plain tch tensors, with state that can be saved and restored: SGD with
//! momentum and AdamW with PyTorch's semantics, and LARS as in the SimCLR reference.
//!
//! tch's own optimizers hide their state, so a checkpoint could not resume them; here the
//! state is a list of named tensors (`<param>.momentum_buffer`, `<param>.exp_avg`,
//! `<param>.exp_avg_sq`, `<param>.step`). Parameters come in groups, each with its weight
//! decay, its learning-rate policy (the schedule's rate, or a fixed one such as SimSiam's
//! predictor keeps) and whether LARS adapts it. This module does not schedule rates: the
//! caller passes the step's rate to [`Optimizer::step`].
//!
//! The update rules, for gradient g of parameter p at rate η and weight decay λ:
//!
//! ```text
//! SGD    g ← g + λp;  b ← g (first step) else μb + (1 − δ)g;
//!        p ← p − η(g + μb) with Nesterov, p ← p − ηb without
//!        (μ = 0: p ← p − ηg)
//! LARS   adapted parameters: g ← g + λp and η' = η·τ‖p‖/‖g‖
//!        (η' = η when a norm is 0); the others: η' = η;
//!        v ← μv + η'g;  p ← p − v  (Nesterov: p ← p − (μv + η'g))
//! AdamW  p ← p(1 − ηλ);  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
//!        p ← p − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//! LARS keeps its velocity in units of the rate, as the SimCLR reference's `LARSOptimizer`
//! does; with a constant rate this equals applying the trust ratio to g inside SGD.

use std::collections::{BTreeMap, BTreeSet};

use tch::{Kind, Tensor, nn};

use crate::TrainError;
use crate::config::{self, TrainConfig};

/// An update rule and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// SGD with momentum μ, dampening δ and an optional Nesterov step (`torch.optim.SGD`).
    Sgd {
        /// μ; 0 for plain SGD (no buffer is kept).
        momentum: f64,
        /// δ, applied from the second step on.
        dampening: f64,
        /// The Nesterov variant (needs δ = 0 in PyTorch; not enforced here).
        nesterov: bool,
    },
    /// Layer-wise adaptive rate scaling around SGD with momentum (You et al. 2017).
    Lars {
        /// μ.
        momentum: f64,
        /// The trust coefficient τ (0.001 in SimCLR).
        trust: f64,
        /// The Nesterov variant.
        nesterov: bool,
    },
    /// Adam with decoupled weight decay and bias correction (`torch.optim.AdamW`).
    AdamW {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε, added to the corrected √v.
        eps: f64,
    },
}

impl Rule {
    /// The names of the per-parameter state buffers the rule keeps.
    fn buffers(&self) -> &'static [&'static str] {
        match *self {
            Self::Sgd { momentum: 0.0, .. } => &[],
            Self::Sgd { .. } | Self::Lars { .. } => &["momentum_buffer"],
            Self::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// Applies one step to `p` with gradient `g`; `settings` are (η, λ, adapt) and `t` the
    /// parameter's step count, from 1.
    fn update(
        &self,
        p: &mut Tensor,
        g: Tensor,
        (lr, weight_decay, adapt): (f64, f64, bool),
        t: i64,
        mut slots: Slots<'_>,
    ) {
        match *self {
            Self::Sgd {
                momentum,
                dampening,
                nesterov,
            } => {
                let g = if weight_decay != 0.0 {
                    &g + &*p * weight_decay
                } else {
                    g
                };
                let d = if momentum == 0.0 {
                    g
                } else {
                    let b = match slots.get("momentum_buffer") {
                        Some(mut b) => {
                            let _ = b.g_mul_scalar_(momentum);
                            let _ = b.g_add_(&(&g * (1.0 - dampening)));
                            b
                        }
                        None => slots.insert("momentum_buffer", g.copy()),
                    };
                    if nesterov { &g + &b * momentum } else { b }
                };
                let _ = p.g_sub_(&(d * lr));
            }
            Self::Lars {
                momentum,
                trust,
                nesterov,
            } => {
                let step = if adapt {
                    let g = &g + &*p * weight_decay;
                    let (w_norm, g_norm) = (p.norm(), g.norm());
                    let usable = w_norm.gt(0.0).logical_and(&g_norm.gt(0.0));
                    let ratio =
                        (&w_norm * trust / &g_norm).where_self(&usable, &w_norm.ones_like());
                    g * ratio * lr
                } else {
                    g * lr
                };
                let mut v = slots.get_or_zeros("momentum_buffer", p);
                let _ = v.g_mul_scalar_(momentum);
                let _ = v.g_add_(&step);
                let update = if nesterov { &v * momentum + step } else { v };
                let _ = p.g_sub_(&update);
            }
            Self::AdamW { beta1, beta2, eps } => {
                let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                let mut m = slots.get_or_zeros("exp_avg", p);
                let mut v = slots.get_or_zeros("exp_avg_sq", p);
                let _ = m.g_mul_scalar_(beta1);
                let _ = m.g_add_(&(&g * (1.0 - beta1)));
                let _ = v.g_mul_scalar_(beta2);
                let _ = v.g_add_(&(&g * &g * (1.0 - beta2)));
                let correction1 = 1.0 - beta1.powf(t as f64);
                let correction2 = 1.0 - beta2.powf(t as f64);
                let denom = v.sqrt() / correction2.sqrt() + eps;
                let _ = p.g_sub_(&(m / denom * (lr / correction1)));
            }
        }
    }
}

/// The state buffers of one parameter, `<param>.<suffix>` in the optimizer's map.
struct Slots<'a> {
    buffers: &'a mut BTreeMap<String, Tensor>,
    param: &'a str,
}

impl Slots<'_> {
    fn get(&self, suffix: &str) -> Option<Tensor> {
        self.buffers
            .get(&format!("{}.{suffix}", self.param))
            .map(Tensor::shallow_clone)
    }

    fn insert(&mut self, suffix: &str, t: Tensor) -> Tensor {
        let key = format!("{}.{suffix}", self.param);
        self.buffers.insert(key, t.shallow_clone());
        t
    }

    fn get_or_zeros(&mut self, suffix: &str, like: &Tensor) -> Tensor {
        match self.get(suffix) {
            Some(t) => t,
            None => self.insert(suffix, like.zeros_like()),
        }
    }
}

/// Which rate a group follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupLr {
    /// The rate passed to [`Optimizer::step`].
    Scheduled,
    /// This rate at every step, whatever the schedule says.
    Fixed(f64),
}

/// Parameters that share a weight decay, a rate policy and LARS adaptation.
#[derive(Debug)]
pub struct ParamGroup {
    /// Named parameters (leaf tensors that require gradients).
    pub params: Vec<(String, Tensor)>,
    /// λ.
    pub weight_decay: f64,
    /// The rate policy.
    pub lr: GroupLr,
    /// Whether LARS applies weight decay and the trust ratio to these parameters; other
    /// rules ignore it.
    pub adapt: bool,
}

impl ParamGroup {
    /// A scheduled, adapted group.
    pub fn new(params: Vec<(String, Tensor)>, weight_decay: f64) -> Self {
        Self {
            params,
            weight_decay,
            lr: GroupLr::Scheduled,
            adapt: true,
        }
    }

    /// Splits parameters as the SimCLR reference does for LARS: weights of convolutions and
    /// linear layers (≥ 2 dimensions) get weight decay and adaptation; biases and BN
    /// parameters (1 dimension) get neither.
    pub fn split_for_lars(params: Vec<(String, Tensor)>, weight_decay: f64) -> [Self; 2] {
        let (weights, vectors): (Vec<_>, Vec<_>) =
            params.into_iter().partition(|(_, p)| p.dim() > 1);
        let mut excluded = Self::new(vectors, 0.0);
        excluded.adapt = false;
        [Self::new(weights, weight_decay), excluded]
    }
}

/// The trainable variables of a var store, sorted by name; with a `prefix`, only those
/// whose names start with it.
pub fn trainable(vs: &nn::VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut params: Vec<_> = vs
        .variables()
        .into_iter()
        .filter(|(name, t)| t.requires_grad() && name.starts_with(prefix))
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}

/// The optimizer `[train]` asks for over the trainable variables of `vs`. With `fixed =
/// Some((prefix, η))`, the variables whose names start with `prefix` keep rate η whatever the
/// schedule (SimSiam's predictor). AdamW uses β = (0.9, 0.999), ε = 1e-8; SGD no dampening.
///
/// # Errors
/// [`TrainError::Invalid`] when `fixed`'s prefix names no variable.
pub fn from_config(
    t: &TrainConfig,
    vs: &nn::VarStore,
    fixed: Option<(&str, f64)>,
) -> Result<Optimizer, TrainError> {
    let rule = match t.optimizer {
        config::Optimizer::Adamw => Rule::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        config::Optimizer::Sgd => Rule::Sgd {
            momentum: t.momentum,
            dampening: 0.0,
            nesterov: t.nesterov,
        },
        config::Optimizer::Lars => Rule::Lars {
            momentum: t.momentum,
            trust: t.trust_coefficient,
            nesterov: t.nesterov,
        },
    };
    let all = trainable(vs, "");
    let (own, scheduled): (Vec<_>, Vec<_>) = match fixed {
        Some((prefix, _)) => all.into_iter().partition(|(n, _)| n.starts_with(prefix)),
        None => (Vec::new(), all),
    };
    let groups_of = |params: Vec<(String, Tensor)>, lr: GroupLr| -> Vec<ParamGroup> {
        let mut groups: Vec<ParamGroup> = match rule {
            Rule::Lars { .. } => ParamGroup::split_for_lars(params, t.weight_decay).into(),
            _ => vec![ParamGroup::new(params, t.weight_decay)],
        };
        for g in &mut groups {
            g.lr = lr;
        }
        groups
    };
    let mut groups = groups_of(scheduled, GroupLr::Scheduled);
    if let Some((prefix, lr)) = fixed {
        if own.is_empty() {
            return Err(TrainError::Invalid(format!(
                "optimizer: no trainable variable starts with {prefix:?}"
            )));
        }
        groups.extend(groups_of(own, GroupLr::Fixed(lr)));
    }
    Optimizer::new(rule, groups)
}

/// An optimizer over parameter groups with inspectable state.
#[derive(Debug)]
pub struct Optimizer {
    rule: Rule,
    groups: Vec<ParamGroup>,
    /// `<param>.<buffer>` → buffer.
    buffers: BTreeMap<String, Tensor>,
    /// Steps taken per parameter (a parameter without a gradient is skipped, as in PyTorch).
    steps: BTreeMap<String, i64>,
}

impl Optimizer {
    /// An optimizer over `groups`.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] when a parameter name appears twice.
    pub fn new(rule: Rule, groups: Vec<ParamGroup>) -> Result<Self, TrainError> {
        let mut seen = BTreeSet::new();
        for (name, _) in groups.iter().flat_map(|g| &g.params) {
            if !seen.insert(name) {
                return Err(TrainError::Invalid(format!(
                    "optimizer: parameter {name} is in two groups"
                )));
            }
        }
        Ok(Self {
            rule,
            groups,
            buffers: BTreeMap::new(),
            steps: BTreeMap::new(),
        })
    }

    /// The update rule.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// Clears the gradients of all parameters.
    pub fn zero_grad(&mut self) {
        for (_, p) in self.groups.iter_mut().flat_map(|g| &mut g.params) {
            p.zero_grad();
        }
    }

    /// Zeroes the gradients, back-propagates `loss` and steps at rate `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) {
        self.zero_grad();
        loss.backward();
        self.step(lr);
    }

    /// Updates every parameter that has a gradient; scheduled groups use `lr`.
    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for group in &mut self.groups {
                let lr = match group.lr {
                    GroupLr::Scheduled => lr,
                    GroupLr::Fixed(fixed) => fixed,
                };
                for (name, p) in &mut group.params {
                    let g = p.grad();
                    if !g.defined() {
                        continue;
                    }
                    let t = self.steps.entry(name.clone()).or_insert(0);
                    *t += 1;
                    let slots = Slots {
                        buffers: &mut self.buffers,
                        param: name,
                    };
                    let settings = (lr, group.weight_decay, group.adapt);
                    self.rule.update(p, g, settings, *t, slots);
                }
            }
        });
    }

    /// The state as named tensors: each parameter's buffers and its step count (an int64
    /// scalar), named `<param>.<buffer>` and `<param>.step`. Parameters that never had a
    /// gradient have no entries.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let buffers = self
            .buffers
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()));
        let steps = self
            .steps
            .iter()
            .map(|(k, &t)| (format!("{k}.step"), Tensor::from(t)));
        buffers.chain(steps).collect()
    }

    /// Restores a state written by [`Optimizer::state`] for the same parameters and rule;
    /// buffers are copied to each parameter's device and kind.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the entry when it belongs to no parameter, is not a
    /// buffer of this rule, has the wrong shape, or when a parameter with a step count lacks
    /// a buffer. The optimizer is unchanged on error.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), TrainError> {
        let invalid = |m: String| TrainError::Invalid(format!("optimizer state: {m}"));
        let params: BTreeMap<&str, &Tensor> = self
            .groups
            .iter()
            .flat_map(|g| &g.params)
            .map(|(n, p)| (n.as_str(), p))
            .collect();
        let (mut buffers, mut steps) = (BTreeMap::new(), BTreeMap::new());
        for (key, t) in state {
            let (name, suffix) = key
                .rsplit_once('.')
                .ok_or_else(|| invalid(format!("{key}: expected <param>.<buffer>")))?;
            let p = params
                .get(name)
                .ok_or_else(|| invalid(format!("{key}: no parameter {name}")))?;
            if suffix == "step" {
                if t.numel() != 1 || t.kind() != Kind::Int64 {
                    return Err(invalid(format!("{key}: expected an int64 scalar")));
                }
                steps.insert(name.to_owned(), t.int64_value(&[]));
            } else if self.rule.buffers().contains(&suffix) {
                if t.size() != p.size() {
                    return Err(invalid(format!(
                        "{key}: shape {:?}, but the parameter has {:?}",
                        t.size(),
                        p.size()
                    )));
                }
                // An owned copy: the optimizer updates its buffers in place.
                let owned = t.to_device(p.device()).to_kind(p.kind()).copy();
                buffers.insert(key.clone(), owned);
            } else {
                return Err(invalid(format!(
                    "{key}: {suffix} is not a buffer of {:?}",
                    self.rule
                )));
            }
        }
        for name in steps.keys() {
            for suffix in self.rule.buffers() {
                if !buffers.contains_key(&format!("{name}.{suffix}")) {
                    return Err(invalid(format!("{name}.{suffix} is missing")));
                }
            }
        }
        self.buffers = buffers;
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float64 leaf parameter.
    fn param(values: &[f64]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    /// Two steps on the loss cᵀp (gradient c, constant), returning the parameters.
    fn two_steps(rule: Rule, groups: Vec<ParamGroup>, c: &[&[f64]], lr: f64) -> Vec<Vec<f64>> {
        let params: Vec<Tensor> = groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, p)| p.shallow_clone()))
            .collect();
        let mut opt = Optimizer::new(rule, groups).unwrap();
        for _ in 0..2 {
            let loss = params
                .iter()
                .zip(c)
                .map(|(p, c)| (p * Tensor::from_slice(c)).sum(Kind::Double))
                .reduce(|a, b| a + b)
                .unwrap();
            opt.backward_step(&loss, lr);
        }
        params
            .iter()
            .map(|p| Vec::<f64>::try_from(p.flatten(0, -1)).unwrap())
            .collect()
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn sgd_with_momentum_dampening_and_weight_decay_by_hand() {
        // p₀ = 1, g = 2 + λp with λ = 0.1, η = 0.1, μ = 0.9, δ = 0.5.
        // Step 1: g = 2.1, b = 2.1 (no dampening on the first step), p = 1 − 0.21 = 0.79.
        // Step 2: g = 2.079, b = 0.9·2.1 + 0.5·2.079 = 2.9295, p = 0.79 − 0.29295 = 0.49705.
        let rule = Rule::Sgd {
            momentum: 0.9,
            dampening: 0.5,
            nesterov: false,
        };
        let group = ParamGroup::new(vec![("p".into(), param(&[1.0]))], 0.1);
        assert_close(&two_steps(rule, vec![group], &[&[2.0]], 0.1)[0], &[0.49705]);
    }

    #[test]
    fn nesterov_sgd_by_hand() {
        // p₀ = 1, g = 2 + 0.1p, η = 0.1, μ = 0.9, δ = 0.
        // Step 1: g = 2.1, b = 2.1, d = g + μb = 3.99, p = 1 − 0.399 = 0.601.
        // Step 2: g = 2.0601, b = 1.89 + 2.0601 = 3.9501, d = 2.0601 + 3.55509 = 5.61519,
        //         p = 0.601 − 0.561519 = 0.039481.
        let rule = Rule::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
        };
        let group = ParamGroup::new(vec![("p".into(), param(&[1.0]))], 0.1);
        assert_close(
            &two_steps(rule, vec![group], &[&[2.0]], 0.1)[0],
            &[0.039481],
        );
    }

    #[test]
    fn lars_adapts_weights_and_leaves_biases_alone_by_hand() {
        // w₀ = (3, 4), ‖w₀‖ = 5, c = (0.57, 0.76), λ = 0.01, η = 1, τ = 0.001, μ = 0.9.
        // Step 1: g = c + λw = (0.6, 0.8), ‖g‖ = 1, η' = 0.001·5/1 = 0.005,
        //         v = (0.003, 0.004), w = (2.997, 3.996) = 0.999·w₀.
        // Step 2: g = (0.59997, 0.79996) = 0.99995·(0.6, 0.8), ‖w‖ = 4.995,
        //         η'g = 0.001·4.995·(0.6, 0.8) = (0.002997, 0.003996),
        //         v = (0.0027, 0.0036) + η'g = (0.005697, 0.007596),
        //         w = (2.991303, 3.988404).
        // The bias b₀ = 1 with c = 0.5 is excluded: v = 0.5, b = 0.5; v = 0.95, b = −0.45.
        let rule = Rule::Lars {
            momentum: 0.9,
            trust: 0.001,
            nesterov: false,
        };
        // A 1×2 weight matrix: two dimensions, so it is adapted.
        let w = Tensor::from_slice(&[3.0, 4.0]).view([1, 2]);
        let params = vec![
            ("b".to_string(), param(&[1.0])),
            ("w".to_string(), w.set_requires_grad(true)),
        ];
        let groups = ParamGroup::split_for_lars(params, 0.01);
        assert_eq!(groups[0].params[0].0, "w");
        assert_eq!(groups[1].params[0].0, "b");
        let got = two_steps(rule, groups.into(), &[&[0.57, 0.76], &[0.5]], 1.0);
        assert_close(&got[0], &[2.991303, 3.988404]);
        assert_close(&got[1], &[-0.45]);
    }

    #[test]
    fn adamw_by_hand() {
        // p₀ = 1, g = 2 (constant), η = 0.1, λ = 0.1, β = (0.9, 0.999), ε = 1e-8.
        // With a constant gradient m/(1 − β₁ᵗ) = g and v/(1 − β₂ᵗ) = g², so each
        // step is p ← p(1 − ηλ) − η·2/(2 + ε) = 0.99p − 0.0999999995.
        // Step 1: p = 0.99 − 0.0999999995 = 0.8900000005.
        // Step 2: p = 0.881100000495 − 0.0999999995 = 0.781100000995.
        let rule = Rule::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let group = ParamGroup::new(vec![("p".into(), param(&[1.0]))], 0.1);
        assert_close(
            &two_steps(rule, vec![group], &[&[2.0]], 0.1)[0],
            &[0.781100000995],
        );
    }

    #[test]
    fn a_fixed_rate_group_ignores_the_schedule() {
        // Plain SGD, g = 1: the scheduled group moves by 0.5 per step, the fixed one by 0.1.
        let rule = Rule::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
        };
        let mut fixed = ParamGroup::new(vec![("q".into(), param(&[0.0]))], 0.0);
        fixed.lr = GroupLr::Fixed(0.1);
        let groups = vec![
            ParamGroup::new(vec![("p".into(), param(&[0.0]))], 0.0),
            fixed,
        ];
        let got = two_steps(rule, groups, &[&[1.0], &[1.0]], 0.5);
        assert_close(&got[0], &[-1.0]);
        assert_close(&got[1], &[-0.2]);
    }

    #[test]
    fn from_config_keeps_the_predictor_at_its_fixed_rate() {
        // Plain SGD (momentum 0), gradient 1 everywhere, scheduled rate 0: only the
        // predictor, at its fixed rate 0.25, moves, by exactly −0.25.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let w = root.sub("backbone").zeros("w", &[2, 2]);
        let p = root.sub("predictor").zeros("p", &[2, 2]);
        let t = TrainConfig {
            optimizer: config::Optimizer::Sgd,
            momentum: 0.0,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = from_config(&t, &vs, Some(("predictor.", 0.25))).unwrap();
        opt.backward_step(&(w.sum(Kind::Float) + p.sum(Kind::Float)), 0.0);
        assert!(w.eq(0.0).all().int64_value(&[]) == 1);
        assert!(p.eq(-0.25).all().int64_value(&[]) == 1);
        let err = from_config(&t, &vs, Some(("head.", 0.1)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no trainable variable starts with \"head.\""),
            "{err}"
        );
    }

    #[test]
    fn a_parameter_in_two_groups_is_named() {
        let p = param(&[1.0]);
        let groups = vec![
            ParamGroup::new(vec![("x".into(), p.shallow_clone())], 0.0),
            ParamGroup::new(vec![("x".into(), p)], 0.0),
        ];
        let rule = Rule::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let err = Optimizer::new(rule, groups).unwrap_err().to_string();
        assert!(err.contains("parameter x is in two groups"), "{err}");
    }
}
