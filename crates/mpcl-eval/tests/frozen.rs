//! Evaluation judges a frozen encoder: its weights (and batch-norm statistics) are bit for bit
//! the same after extraction and both probe protocols, the reference protocol that re-encodes
//! augmented images reaches 100 % on separable images, and probing twice with one seed gives
//! the same numbers.

use mpcl_data::ImageSet;
use mpcl_eval::{
    Encoder, Normalize, ProbeConfig, ProbeProtocol, ReferenceProbe, extract, labels,
    pixel_features, probe,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// `n` two-channel 8 × 8 images in three classes whose channel means sit at
/// (40, 128), (215, 128) and (128, 215), with uniform pixel noise of ±20.
fn blobs(n: usize, seed: u64) -> ImageSet {
    let centres = [[40u8, 128], [215, 128], [128, 215]];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<u16> = (0..n).map(|i| (i % 3) as u16).collect();
    let pixels = labels
        .iter()
        .flat_map(|&l| centres[l as usize])
        .flat_map(|c| (0..64).map(move |_| c))
        .map(|c: u8| (i16::from(c) + rng.random_range(-20i16..=20)) as u8)
        .collect();
    ImageSet {
        pixels,
        labels,
        channels: 2,
        height: 8,
        width: 8,
        classes: 3,
    }
}

/// A small convolutional encoder with batch norm, so that a forward pass in training mode
/// would change its running statistics.
fn conv_encoder(vs: &nn::VarStore) -> impl ModuleT {
    let p = vs.root();
    nn::seq_t()
        .add(nn::conv2d(&p / "conv", 2, 6, 3, Default::default()))
        .add(nn::batch_norm2d(&p / "bn", 6, Default::default()))
        .add_fn(|x| x.relu().mean_dim([2i64, 3].as_slice(), false, Kind::Float))
        .add(nn::linear(&p / "fc", 6, 5, Default::default()))
}

fn reference_cfg(iterations: usize, seed: u64) -> ProbeConfig {
    ProbeConfig {
        protocol: ProbeProtocol::SimclrReference,
        seed,
        reference: ReferenceProbe {
            iterations,
            batch_size: 64,
            ..ReferenceProbe::default()
        },
        ..ProbeConfig::default()
    }
}

/// Runs `cfg`'s probe of `model` on the train and test sets.
fn probe_model(
    model: &impl ModuleT,
    cfg: &ProbeConfig,
    (train, test): (&ImageSet, &ImageSet),
) -> mpcl_eval::TopK {
    let mut encode = |x: &Tensor| model.forward_t(x, false);
    let mut encoder = Encoder {
        encode: &mut encode,
        norm: Normalize {
            mean: vec![0.5],
            std: vec![0.25],
        },
        batch_size: 32,
        device: Device::Cpu,
    };
    let f_train = encoder.extract(train);
    let f_test = encoder.extract(test);
    probe(cfg, train, (&f_train, &f_test), &labels(test), &mut encoder)
}

#[test]
fn evaluation_leaves_the_encoder_bit_identical() {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = conv_encoder(&vs);
    let (train, test) = (blobs(96, 1), blobs(48, 2));
    // Give the batch-norm statistics values that a training-mode pass would move.
    let _ = model.forward_t(&Tensor::randn([16, 2, 8, 8], tch::kind::FLOAT_CPU), true);
    let before: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.copy()))
        .collect();
    assert!(before.iter().any(|(name, _)| name.contains("running_mean")));

    for protocol in [ProbeProtocol::Standardised, ProbeProtocol::SimclrReference] {
        let cfg = ProbeConfig {
            protocol,
            epochs: 2,
            ..reference_cfg(5, 0)
        };
        probe_model(&model, &cfg, (&train, &test));
    }
    let after = vs.variables();
    assert_eq!(after.len(), before.len());
    for (name, old) in &before {
        assert!(after[name].equal(old), "{name} changed during evaluation");
    }
}

#[test]
fn reference_protocol_learns_separable_images_perfectly() {
    // The encoder averages each channel, so the features are the (normalised) class centres
    // plus noise of at most 20/255/0.25 ≈ 0.31 after a crop, far from the decision
    // boundaries at distance ≈ 0.97: linearly separable, and a converged probe is exact.
    let (train, test) = (blobs(300, 3), blobs(150, 4));
    let mean = nn::func(|x| x.mean_dim([2i64, 3].as_slice(), false, Kind::Float));
    let acc = probe_model(&mean, &reference_cfg(300, 0), (&train, &test));
    assert_eq!(acc.top1, 1.0, "{acc:?}");
    assert_eq!(acc.top5, 1.0, "{acc:?}");
}

#[test]
fn same_seed_same_numbers() {
    // Labels drawn independently of the images, so accuracy depends on every detail of the
    // training (order, crops, flips); one seed must reproduce it exactly.
    tch::manual_seed(12);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = conv_encoder(&vs);
    let shuffle = |mut set: ImageSet, seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        set.labels
            .iter_mut()
            .for_each(|l| *l = rng.random_range(0..3));
        set
    };
    let (train, test) = (shuffle(blobs(150, 5), 6), shuffle(blobs(150, 7), 8));
    for cfg in [
        reference_cfg(40, 9),
        ProbeConfig {
            epochs: 5,
            seed: 9,
            ..ProbeConfig::default()
        },
    ] {
        let first = probe_model(&model, &cfg, (&train, &test));
        let again = probe_model(&model, &cfg, (&train, &test));
        assert_eq!(first, again, "{:?}", cfg.protocol);
    }
}

#[test]
fn identity_encoder_extracts_raw_pixels() {
    // Oracle: `pixel_features` (x/255) equals extraction through the identity with
    // normalisation (0, 1).
    let set = blobs(10, 13);
    let mut flat = |x: &Tensor| x.flatten(1, -1);
    let f = extract(&set, &Normalize::unit(), 3, Device::Cpu, &mut flat);
    assert!(f.allclose(&pixel_features(&set), 1e-6, 1e-6, false));
}
