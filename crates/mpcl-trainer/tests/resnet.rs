//! ResNets against torchvision: names and shapes against a fixture written by
//! python/resnet_names.py (torchvision 0.28.0), initialisation statistics against the
//! formulas, and safetensors round trips.

use std::collections::BTreeMap;

use mpcl_trainer::config::ModelConfig;
use mpcl_trainer::model::Model;
use mpcl_trainer::resnet::{Depth, ResNet, Stem};
use mpcl_trainer::weights;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

const NAMES: &str = include_str!("fixtures/resnet_names.json");

/// Names and shapes of a var store's variables under `prefix`, without it.
fn shapes(vs: &nn::VarStore, prefix: &str) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .filter_map(|(n, t)| Some((n.strip_prefix(prefix)?.to_owned(), t.size())))
        .collect()
}

#[test]
fn names_and_shapes_are_torchvisions() {
    let fixture: serde_json::Value = serde_json::from_str(NAMES).unwrap();
    for (arch, depth) in [("resnet18", Depth::R18), ("resnet50", Depth::R50)] {
        let want: BTreeMap<String, Vec<i64>> = fixture[arch]
            .as_object()
            .unwrap()
            .iter()
            // tch keeps no BN step counters: the one kind of entry we lack, by design.
            .filter(|(n, _)| !n.ends_with(".num_batches_tracked"))
            .map(|(n, s)| {
                let dims = s.as_array().unwrap().iter().map(|d| d.as_i64().unwrap());
                (n.clone(), dims.collect())
            })
            .collect();
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = ResNet::new(&(vs.root() / "backbone"), 3, depth, Stem::ImageNet, false);
        assert_eq!(shapes(&vs, "backbone."), want, "{arch}");
    }
}

/// Sample standard deviation of all values.
fn std(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).std(false).double_value(&[])
}

/// Asserts |sample std − σ| ≤ 5 standard errors; the std of the sample std of n draws is
/// about σ/√(2n) for the normal, and σ·√(0.8/4n) ≈ σ·0.447/√n for the uniform
/// (kurtosis 1.8), so 5·σ/√n covers both.
fn assert_std(name: &str, t: &Tensor, sigma: f64) {
    let n = t.numel() as f64;
    let got = std(t);
    assert!(
        (got - sigma).abs() <= 5.0 * sigma / n.sqrt(),
        "{name}: std {got}, expected {sigma} (n = {n})"
    );
}

#[test]
fn initialisation_follows_torchvision() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        encoder: mpcl_trainer::config::EncoderKind::Resnet18,
        projector_hidden: 512,
        projector_dim: 128,
        ..Default::default()
    };
    let _model = Model::new(&vs.root(), 3, &cfg, false);
    let mut checked = 0;
    for (name, t) in vs.variables() {
        let dims = t.size();
        if name == "backbone.conv1.weight" {
            // The CIFAR stem: PyTorch's default conv init, uniform with bound 1/√fan_in,
            // fan_in = 3·3·3 = 27, so σ = (1/√27)/√3 = 1/9.
            assert_std(&name, &t, 1.0 / 9.0);
            let bound = 1.0 / 27f64.sqrt();
            assert!(t.abs().max().double_value(&[]) <= bound, "{name}");
        } else if name.starts_with("backbone.") && name.ends_with("weight") && dims.len() == 4 {
            // Kaiming-normal, fan-out, ReLU gain: σ = √(2 / (c_out·k·k)).
            let fan_out = (dims[0] * dims[2] * dims[3]) as f64;
            assert_std(&name, &t, (2.0 / fan_out).sqrt());
            assert!(
                t.mean(Kind::Double).double_value(&[]).abs()
                    < 5.0 * (2.0 / fan_out).sqrt() / (t.numel() as f64).sqrt()
            );
        } else if name.contains(".bn") || name.contains("downsample.1") {
            // BN: weight 1, bias 0, running mean 0, running variance 1.
            let want = if name.ends_with("weight") || name.ends_with("running_var") {
                1.0
            } else {
                0.0
            };
            assert!(t.eq(want).all().int64_value(&[]) == 1, "{name}");
        } else if name.starts_with("projector.fc") {
            // PyTorch's Linear default: uniform with bound 1/√fan_in, weights and bias alike,
            // σ = 1/√(3·fan_in); fan_in = 512 for both layers.
            let fan_in: f64 = 512.0;
            assert_std(&name, &t, 1.0 / (3.0 * fan_in).sqrt());
            assert!(
                t.abs().max().double_value(&[]) <= 1.0 / fan_in.sqrt(),
                "{name}"
            );
        } else {
            continue;
        }
        checked += 1;
    }
    // 19 convs + the stem; 20 BNs of 4 tensors in the backbone, 1 in the projector;
    // projector fc0 weight, fc1 weight and bias.
    assert_eq!(checked, 20 + 21 * 4 + 3);
}

#[test]
fn zero_init_residual_zeroes_each_blocks_last_bn() {
    for (depth, last) in [(Depth::R18, "bn2"), (Depth::R50, "bn3")] {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = ResNet::new(&vs.root(), 3, depth, Stem::Cifar { padding: 1 }, true);
        let mut zeroed = 0;
        for (name, t) in vs.variables() {
            let is_last = name.ends_with(&format!("{last}.weight")) && name.starts_with("layer");
            let zero = t.eq(0.0).all().int64_value(&[]) == 1;
            if name.ends_with("weight") && t.dim() == 1 {
                assert_eq!(zero, is_last, "{name}");
                zeroed += usize::from(zero);
            }
        }
        assert_eq!(zeroed, if depth == Depth::R18 { 8 } else { 16 });
    }
}

#[test]
fn forward_shapes() {
    let vs = nn::VarStore::new(Device::Cpu);
    let r18 = ResNet::new(&vs.root(), 1, Depth::R18, Stem::Cifar { padding: 1 }, false);
    let x = Tensor::randn([2, 1, 28, 28], tch::kind::FLOAT_CPU);
    assert_eq!(r18.forward_t(&x, true).size(), [2, 512]);
    let vs = nn::VarStore::new(Device::Cpu);
    let r50 = ResNet::new(&vs.root(), 3, Depth::R50, Stem::ImageNet, false);
    let x = Tensor::randn([2, 3, 64, 64], tch::kind::FLOAT_CPU);
    assert_eq!(r50.forward_t(&x, false).size(), [2, 2048]);
}

#[test]
fn save_then_load_gives_identical_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r18.safetensors");
    let build = |seed| {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ResNet::new(
            &(vs.root() / "backbone"),
            3,
            Depth::R18,
            Stem::ImageNet,
            false,
        );
        (vs, net)
    };
    let (a, net) = build(1);
    // A training-mode pass moves the BN running statistics off their initial values.
    let _ = net.forward_t(&Tensor::randn([4, 3, 32, 32], tch::kind::FLOAT_CPU), true);
    weights::save(&a, "backbone.", &path).unwrap();
    let (b, _) = build(2);
    weights::load(&b, "backbone.", &path).unwrap();
    let (va, vb) = (a.variables(), b.variables());
    assert_eq!(va.len(), vb.len());
    for (name, t) in &va {
        assert!(t.equal(&vb[name]), "{name} differs after the round trip");
    }
    let file = Tensor::read_safetensors(&path).unwrap();
    assert!(
        file.iter()
            .any(|(n, _)| n == "layer2.0.downsample.0.weight")
    );
    assert!(file.iter().all(|(n, _)| !n.starts_with("backbone.")));
}

#[test]
fn loading_a_mismatched_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r18.safetensors");
    let vs18 = nn::VarStore::new(Device::Cpu);
    let _ = ResNet::new(&vs18.root(), 3, Depth::R18, Stem::ImageNet, false);
    weights::save(&vs18, "", &path).unwrap();

    let vs34 = nn::VarStore::new(Device::Cpu);
    let _ = ResNet::new(&vs34.root(), 3, Depth::R34, Stem::ImageNet, false);
    let err = weights::load(&vs34, "", &path).unwrap_err().to_string();
    assert!(
        err.contains("r18.safetensors: layer1.2.") && err.contains("is missing"),
        "{err}"
    );

    let cifar = nn::VarStore::new(Device::Cpu);
    let _ = ResNet::new(
        &cifar.root(),
        3,
        Depth::R18,
        Stem::Cifar { padding: 1 },
        false,
    );
    let err = weights::load(&cifar, "", &path).unwrap_err().to_string();
    assert!(
        err.contains("conv1.weight has shape [64, 3, 7, 7], the network [64, 3, 3, 3]"),
        "{err}"
    );
}
