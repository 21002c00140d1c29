//! mpcl's optimizers against a second implementation: five steps of torch.optim.SGD and
//! torch.optim.AdamW (and of LARS as written after the SimCLR reference in
//! python/optim_reference.py), recorded in tests/fixtures/optim_reference.json by that script
//! with PyTorch 2.13.0. Also: saving and restoring the state mid-run changes nothing.

use mpcl_trainer::optim::{GroupLr, Optimizer, ParamGroup, Rule};
use serde_json::Value;
use tch::{Kind, Tensor};

const FIXTURE: &str = include_str!("fixtures/optim_reference.json");

/// The fixture's parameters and steps.
struct Fixture {
    json: Value,
}

impl Fixture {
    fn load() -> Self {
        Self {
            json: serde_json::from_str(FIXTURE).expect("the fixture parses"),
        }
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn shape(&self, name: &str) -> Vec<i64> {
        let dims = Self::floats(&self.json["shapes"][name]);
        dims.into_iter().map(|d| d as i64).collect()
    }

    fn tensor(&self, values: &Value, name: &str) -> Tensor {
        Tensor::from_slice(&Self::floats(values)).view(self.shape(name).as_slice())
    }

    /// Fresh float64 leaf parameters at the fixture's initial values, in fixture order.
    fn params(&self) -> Vec<(String, Tensor)> {
        ["w", "b", "p"]
            .iter()
            .map(|&n| {
                let t = self.tensor(&self.json["init"][n], n);
                (n.to_string(), t.set_requires_grad(true))
            })
            .collect()
    }

    fn steps(&self) -> usize {
        self.json["targets"].as_array().unwrap().len()
    }

    /// The loss of step k: Σ ½‖p − tₖ‖² + ⅓Σp³, as in the script.
    fn loss(&self, params: &[(String, Tensor)], k: usize) -> Tensor {
        params
            .iter()
            .map(|(n, p)| {
                let t = self.tensor(&self.json["targets"][k][n], n);
                (p - t).square().sum(Kind::Double) * 0.5
                    + p.pow_tensor_scalar(3).sum(Kind::Double) / 3.0
            })
            .reduce(|a, b| a + b)
            .unwrap()
    }

    /// The optimizer the case describes, over `params`: group 0 = (w, b) on the schedule,
    /// group 1 = p at a fixed rate; for LARS the bias b is split off unadapted.
    fn optimizer(&self, case: &Value, params: &[(String, Tensor)]) -> Optimizer {
        let f = |k: &str| case[k].as_f64().unwrap();
        let b = |k: &str| case[k].as_bool().unwrap();
        let pick = |names: &[&str]| -> Vec<(String, Tensor)> {
            params
                .iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect()
        };
        let wd = f("weight_decay");
        let (rule, mut groups) = match case["kind"].as_str().unwrap() {
            "sgd" => {
                let rule = Rule::Sgd {
                    momentum: f("momentum"),
                    dampening: f("dampening"),
                    nesterov: b("nesterov"),
                };
                (rule, vec![ParamGroup::new(pick(&["w", "b"]), wd)])
            }
            "adamw" => {
                let rule = Rule::AdamW {
                    beta1: f("beta1"),
                    beta2: f("beta2"),
                    eps: f("eps"),
                };
                (rule, vec![ParamGroup::new(pick(&["w", "b"]), wd)])
            }
            "lars" => {
                let rule = Rule::Lars {
                    momentum: f("momentum"),
                    trust: f("trust"),
                    nesterov: b("nesterov"),
                };
                (
                    rule,
                    ParamGroup::split_for_lars(pick(&["w", "b"]), wd).into(),
                )
            }
            other => panic!("unknown case kind {other}"),
        };
        let mut fixed = ParamGroup::new(pick(&["p"]), wd);
        fixed.lr = GroupLr::Fixed(self.json["group1_lr"].as_f64().unwrap());
        groups.push(fixed);
        Optimizer::new(rule, groups).unwrap()
    }

    fn lr(&self, k: usize) -> f64 {
        self.json["group0_lrs"][k].as_f64().unwrap()
    }
}

#[test]
fn five_steps_match_pytorch_to_1e_6() {
    let fx = Fixture::load();
    let cases = fx.json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let params = fx.params();
        let mut opt = fx.optimizer(case, &params);
        for k in 0..fx.steps() {
            opt.backward_step(&fx.loss(&params, k), fx.lr(k));
        }
        for (n, p) in &params {
            let got = Vec::<f64>::try_from(p.flatten(0, -1)).unwrap();
            let want = Fixture::floats(&case["final"][n]);
            let init = Fixture::floats(&fx.json["init"][n]);
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0, f64::max);
            assert!(
                err < 1e-6,
                "{name}, {n}: max error {err}: {got:?} vs {want:?}"
            );
            // The parameters moved by far more than the tolerance (LARS's adapted ones least,
            // 7e-4 to 2e-3: the trust ratio shrinks their steps), so the comparison is not
            // trivially between initial values.
            let moved = got
                .iter()
                .zip(&init)
                .map(|(g, i)| (g - i).abs())
                .fold(0.0, f64::max);
            assert!(moved > 1e-4, "{name}, {n}: moved only {moved}");
        }
    }
}

#[test]
fn state_saved_and_restored_mid_run_changes_nothing() {
    let fx = Fixture::load();
    for case in fx.json["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let straight = fx.params();
        let mut opt = fx.optimizer(case, &straight);
        for k in 0..fx.steps() {
            opt.backward_step(&fx.loss(&straight, k), fx.lr(k));
        }

        // Two steps, then the state and the parameters go into a fresh optimizer.
        let first = fx.params();
        let mut opt = fx.optimizer(case, &first);
        for k in 0..2 {
            opt.backward_step(&fx.loss(&first, k), fx.lr(k));
        }
        let state: Vec<_> = opt
            .state()
            .into_iter()
            .map(|(n, t)| (n, t.copy()))
            .collect();
        assert!(
            state.iter().any(|(n, _)| n == "w.step"),
            "{name}: {state:?}"
        );
        let resumed: Vec<_> = first
            .iter()
            .map(|(n, p)| (n.clone(), p.detach().copy().set_requires_grad(true)))
            .collect();
        let mut opt = fx.optimizer(case, &resumed);
        opt.load_state(&state).unwrap();
        for k in 2..fx.steps() {
            opt.backward_step(&fx.loss(&resumed, k), fx.lr(k));
        }
        for ((n, a), (_, b)) in straight.iter().zip(&resumed) {
            assert!(a.equal(b), "{name}, {n}: resuming changed the result");
        }
    }
}

#[test]
fn bad_state_is_named() {
    let fx = Fixture::load();
    let adamw = &fx.json["cases"][3];
    assert_eq!(adamw["kind"], "adamw");
    let params = fx.params();
    let mut opt = fx.optimizer(adamw, &params);
    let cases = [
        (
            ("q.exp_avg", Tensor::zeros([4], tch::kind::FLOAT_CPU)),
            "no parameter q",
        ),
        (
            ("b.exp_avg", Tensor::zeros([5], tch::kind::FLOAT_CPU)),
            "shape [5]",
        ),
        (
            (
                "b.momentum_buffer",
                Tensor::zeros([4], tch::kind::FLOAT_CPU),
            ),
            "not a buffer",
        ),
        (("b.step", Tensor::from(1i64)), "b.exp_avg is missing"),
        (("b.step", Tensor::from(1.0)), "expected an int64 scalar"),
    ];
    for ((key, t), expected) in cases {
        let err = opt.load_state(&[(key.into(), t)]).unwrap_err().to_string();
        assert!(err.contains(expected), "{key}: {err}");
    }
}

#[test]
fn adamw_matches_tchs_builtin_on_the_small_cnn() {
    const STEPS: usize = 1;
    // The trainer used tch's nn::AdamW (libtorch's C++ AdamW) before these optimizers; on the
    // default small CNN, one step of each from the same weights and batch agrees to 1e-6
    // (6e-8 measured, float32 rounding), so the default experiment's optimiser semantics are
    // unchanged. Over three steps the rounding differences grow to 6e-5 (measured): Adam
    // divides by √v, which amplifies them where gradients are near 0, so the runs are not
    // bit-identical.
    use tch::nn::{self, OptimizerConfig};
    let cfg = mpcl_trainer::config::ModelConfig::default();
    let build = || {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = mpcl_trainer::model::Model::new(&vs.root(), 1, &cfg, false);
        (vs, model)
    };
    tch::manual_seed(8);
    let x = Tensor::randn([16, 1, 28, 28], tch::kind::FLOAT_CPU);
    let loss = |m: &mpcl_trainer::model::Model| m.forward_t(&x, true).1.square().mean(Kind::Float);

    let (vs_tch, m_tch) = build();
    let mut builtin = nn::AdamW::default().wd(1e-2).build(&vs_tch, 3e-3).unwrap();
    let (vs_own, m_own) = build();
    let t = mpcl_trainer::config::TrainConfig {
        weight_decay: 1e-2,
        ..Default::default()
    };
    let mut own = mpcl_trainer::optim::from_config(&t, &vs_own, None).unwrap();
    for _ in 0..STEPS {
        builtin.backward_step(&loss(&m_tch));
        own.backward_step(&loss(&m_own), 3e-3);
    }
    let own_vars = vs_own.variables();
    let mut compared = 0;
    for (name, a) in vs_tch.variables() {
        let b = &own_vars[&name];
        let err = (&a - b).abs().max().double_value(&[]);
        assert!(err < 1e-6, "{name}: max difference {err}");
        compared += 1;
    }
    assert!(compared > 10);
}
