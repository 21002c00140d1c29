//! The networks: backbones (a small CNN for 28×28 gray images, ResNets in resnet.rs), the
//! MLP heads (SimCLR's projector, SimSiam's projector and predictor) and the model that
//! chains them. Only the backbone's features are evaluated.

use tch::Tensor;
use tch::nn::{self, Init, Module, ModuleT};

use crate::config::{EncoderKind, ModelConfig, StemKind};
use crate::resnet::{Depth, ResNet, Stem, TORCH_DEFAULT_INIT};

/// 3×3 conv–BN–ReLU blocks, 2×2 max-pooling after each but the last, then average pooling to
/// a `pool × pool` grid (1: global), flattened.
#[derive(Debug)]
pub struct SmallCnn {
    blocks: Vec<(nn::Conv2D, nn::BatchNorm)>,
    pool: i64,
}

impl SmallCnn {
    /// Creates the backbone's parameters under `path`; its features have
    /// `widths[-1] · pool²` dimensions.
    pub fn new(path: &nn::Path, in_channels: usize, widths: &[usize], pool: usize) -> Self {
        let conv = nn::ConvConfig {
            padding: 1,
            bias: false,
            ..Default::default()
        };
        let mut c_in = in_channels as i64;
        let blocks = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let w = w as i64;
                let block = (
                    nn::conv2d(path / format!("conv{i}"), c_in, w, 3, conv),
                    nn::batch_norm2d(path / format!("bn{i}"), w, Default::default()),
                );
                c_in = w;
                block
            })
            .collect();
        Self {
            blocks,
            pool: pool as i64,
        }
    }
}

impl ModuleT for SmallCnn {
    /// # Shapes
    /// `[b, c, h, w]` to `[b, widths[-1] · pool²]`, channel-major.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.blocks.len() - 1;
        let mut xs = xs.shallow_clone();
        for (i, (conv, bn)) in self.blocks.iter().enumerate() {
            // ReLU in place on the batch norm's output, which its backward does not need.
            xs = xs.apply(conv).apply_t(bn, train).relu_();
            if i < last {
                xs = xs.max_pool2d_default(2);
            }
        }
        if self.pool == 1 {
            // Global pooling as a mean over the grid, as the PyTorch reference computes it
            // (python/bench_train.py); the same value as an adaptive pooling to 1 × 1.
            return xs.mean_dim([2i64, 3].as_slice(), false, None::<tch::Kind>);
        }
        xs.adaptive_avg_pool2d([self.pool, self.pool])
            .flatten(1, -1)
    }
}

/// How a head's layers are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadInit {
    /// PyTorch's defaults: linear weights and biases uniform with bound 1/√fan_in, BN weight
    /// 1 and bias 0 (the references' heads).
    Torch,
    /// tch's defaults: linear weights Kaiming-uniform with ReLU gain (bound √6/√fan_in),
    /// biases bound 1/√fan_in, BN weight uniform on [0, 1). The small-CNN experiments were
    /// tuned with these, so the small CNN keeps them.
    Tch,
}

/// An MLP head: (Linear without bias–BN–ReLU) per hidden layer, then a Linear, optionally
/// followed by a BN without affine parameters (SimSiam's projector; the last Linear then has
/// no bias, which that BN would cancel). Variables `fc0`, `bn0`, `fc1`, …
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<(nn::Linear, nn::BatchNorm)>,
    out: nn::Linear,
    out_bn: Option<nn::BatchNorm>,
}

impl Mlp {
    /// Creates the head under `path`; `dims` = [input, hidden…, output].
    ///
    /// # Panics
    /// If `dims` has fewer than 2 entries (config validation prevents it).
    pub fn new(path: &nn::Path, dims: &[usize], final_bn: bool, init: HeadInit) -> Self {
        assert!(dims.len() >= 2, "an MLP needs input and output widths");
        let linear = |i: usize, bias: bool| {
            let mut cfg = nn::LinearConfig {
                bias,
                ..Default::default()
            };
            if init == HeadInit::Torch {
                cfg.ws_init = TORCH_DEFAULT_INIT;
            }
            let (a, b) = (dims[i] as i64, dims[i + 1] as i64);
            nn::linear(path / format!("fc{i}"), a, b, cfg)
        };
        let bn = |i: usize, affine: bool| {
            let mut cfg = nn::BatchNormConfig {
                affine,
                ..Default::default()
            };
            if init == HeadInit::Torch {
                cfg.ws_init = Init::Const(1.0);
            }
            nn::batch_norm1d(path / format!("bn{i}"), dims[i + 1] as i64, cfg)
        };
        let last = dims.len() - 2;
        Self {
            hidden: (0..last).map(|i| (linear(i, false), bn(i, true))).collect(),
            out: linear(last, !final_bn),
            out_bn: final_bn.then(|| bn(last, false)),
        }
    }
}

impl ModuleT for Mlp {
    /// # Shapes
    /// `[b, dims[0]]` to `[b, dims[-1]]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut xs = xs.shallow_clone();
        for (fc, bn) in &self.hidden {
            xs = xs.apply(fc).apply_t(bn, train).relu_();
        }
        xs = self.out.forward(&xs);
        match &self.out_bn {
            Some(bn) => xs.apply_t(bn, train),
            None => xs,
        }
    }
}

/// The encoder whose features are evaluated.
#[derive(Debug)]
pub enum Backbone {
    /// [`SmallCnn`].
    SmallCnn(SmallCnn),
    /// [`ResNet`] (boxed: it is large).
    ResNet(Box<ResNet>),
}

impl ModuleT for Backbone {
    /// # Shapes
    /// `[b, c, h, w]` to `[b, D]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Self::SmallCnn(m) => m.forward_t(xs, train),
            Self::ResNet(m) => m.forward_t(xs, train),
        }
    }
}

/// Backbone, projector and, for SimSiam, the predictor.
#[derive(Debug)]
pub struct Model {
    /// The encoder whose features are evaluated.
    pub backbone: Backbone,
    /// The head whose output the loss sees.
    pub projector: Mlp,
    /// SimSiam's predictor on top of the projector.
    pub predictor: Option<Mlp>,
    device: tch::Device,
}

impl Model {
    /// Creates the networks under `path` (`backbone.*` with torchvision's names for ResNets,
    /// `projector.*`, `predictor.*`). With `simsiam` the projector ends in a BN without
    /// affine parameters and a predictor (projector_dim → predictor_hidden → projector_dim)
    /// is added.
    pub fn new(path: &nn::Path, in_channels: usize, cfg: &ModelConfig, simsiam: bool) -> Self {
        let bp = path / "backbone";
        let (backbone, feature, init) = match cfg.encoder {
            EncoderKind::SmallCnn => {
                let last = *cfg.widths.last().expect("validated: widths is not empty");
                let feature = last * cfg.pool * cfg.pool;
                let cnn = SmallCnn::new(&bp, in_channels, &cfg.widths, cfg.pool);
                (Backbone::SmallCnn(cnn), feature, HeadInit::Tch)
            }
            kind => {
                let depth = match kind {
                    EncoderKind::Resnet18 => Depth::R18,
                    EncoderKind::Resnet34 => Depth::R34,
                    _ => Depth::R50,
                };
                let stem = match cfg.stem {
                    StemKind::Cifar => Stem::Cifar {
                        padding: cfg.stem_padding as i64,
                    },
                    StemKind::Imagenet => Stem::ImageNet,
                };
                let net = ResNet::new(&bp, in_channels, depth, stem, cfg.zero_init_residual);
                (
                    Backbone::ResNet(Box::new(net)),
                    depth.features(),
                    HeadInit::Torch,
                )
            }
        };
        let mut dims = vec![feature];
        dims.extend(std::iter::repeat_n(
            cfg.projector_hidden,
            cfg.projector_layers - 1,
        ));
        dims.push(cfg.projector_dim);
        let projector = Mlp::new(&(path / "projector"), &dims, simsiam, init);
        let predictor = simsiam.then(|| {
            let dims = [cfg.projector_dim, cfg.predictor_hidden, cfg.projector_dim];
            Mlp::new(&(path / "predictor"), &dims, false, init)
        });
        Self {
            backbone,
            projector,
            predictor,
            device: path.device(),
        }
    }

    /// A new variable store on `device` holding a new model at its root, with its
    /// convolution weights in channels-last order when `cfg.channels_last`
    /// ([`to_channels_last`]). The weights are drawn on the CPU and then moved, so one seed
    /// gives one initial network on every device (CUDA has generators of its own).
    pub fn in_new_store(
        device: tch::Device,
        in_channels: usize,
        cfg: &ModelConfig,
        simsiam: bool,
    ) -> (nn::VarStore, Self) {
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        let mut model = Self::new(&vs.root(), in_channels, cfg, simsiam);
        vs.set_device(device);
        model.device = device;
        if cfg.channels_last {
            to_channels_last(&vs);
        }
        (vs, model)
    }

    /// The device the variables live on.
    pub fn device(&self) -> tch::Device {
        self.device
    }

    /// Backbone features and projections of a batch.
    ///
    /// # Shapes
    /// `[b, c, h, w]` to (`[b, D]`, `[b, d]`).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let h = self.backbone.forward_t(xs, train);
        let z = self.projector.forward_t(&h, train);
        (h, z)
    }
}

/// Moves every four-dimensional variable of `vs` (the convolution weights `[O, I, kh, kw]`)
/// to channels-last memory order in place: strides `[I·kh·kw, 1, kw·I, I]`, the layout of an
/// `[O, kh, kw, I]` array. The variables keep their values, names and autograd identity, and
/// the optimizer's buffers made from them take the same order. A convolution whose weight
/// is channels-last returns channels-last activations, so the layers after it (batch norm,
/// pooling, the next convolution) run in that order too.
pub fn to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() != 4 {
                continue;
            }
            let size = var.size();
            let (i, h, w) = (size[1], size[2], size[3]);
            let strides = [i * h * w, 1, w * i, i];
            let mut moved = Tensor::empty_strided(&size, strides, (var.kind(), var.device()));
            moved.copy_(&var);
            var.set_data(&moved);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_last_moves_the_conv_weights_and_keeps_what_the_model_computes() {
        // Oracle: the same model in the default order. Strides checked against the formula
        // of `to_channels_last`; values bit for bit; one training-mode forward and backward
        // pass to rounding (f32 sums of a few hundred terms in another order). Gradients are
        // compared relative to their largest entry, which ranges over 1…60 with the random
        // input: over 300 draws the largest relative gap was 5.3e-5 and features differed
        // by at most 3.9e-7 (largest feature ≈ 0.5), so the bounds leave a 10-25× margin.
        let cfg = ModelConfig {
            widths: vec![4, 8],
            projector_hidden: 12,
            projector_dim: 6,
            ..Default::default()
        };
        let build = |channels_last: bool| {
            let cfg = ModelConfig {
                channels_last,
                ..cfg.clone()
            };
            Model::in_new_store(tch::Device::Cpu, 3, &cfg, false)
        };
        let (plain_vs, plain) = build(false);
        let (last_vs, last) = build(true);
        let plain_vars = plain_vs.variables();
        // The same values in both (tests share libtorch's generator, so a seed could not
        // promise that); `copy_` keeps the destination's memory order.
        tch::no_grad(|| {
            for (name, mut var) in last_vs.variables() {
                var.copy_(&plain_vars[&name]);
            }
        });
        for (name, var) in last_vs.variables() {
            assert!(var.equal(&plain_vars[&name]), "{name}");
            if var.dim() == 4 {
                let s = var.size();
                assert_eq!(
                    var.stride(),
                    [s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]],
                    "{name}"
                );
            } else {
                assert!(var.is_contiguous(), "{name}");
            }
        }
        let x = Tensor::randn([6, 3, 12, 12], tch::kind::FLOAT_CPU);
        let outputs = [&plain, &last].map(|m| {
            let (h, z) = m.forward_t(&x, true);
            z.square().sum(tch::Kind::Float).backward();
            h
        });
        let gap = (&outputs[0] - &outputs[1]).abs().max().double_value(&[]);
        assert!(gap < 1e-5, "features differ by {gap}");
        let pairs = last_vs.trainable_variables().into_iter();
        for (last, plain) in pairs.zip(plain_vs.trainable_variables()) {
            let (last, plain) = (last.grad(), plain.grad());
            let gap = (&last - &plain).abs().max().double_value(&[]);
            let scale = plain.abs().max().double_value(&[]);
            assert!(
                gap <= 1e-3 * scale,
                "a gradient differs by {gap} (largest entry {scale})"
            );
        }
    }

    #[test]
    fn shapes_follow_the_config() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = ModelConfig {
            widths: vec![4, 8, 16],
            projector_hidden: 12,
            projector_dim: 6,
            ..Default::default()
        };
        let model = Model::new(&vs.root(), 1, &cfg, false);
        let x = Tensor::randn([5, 1, 28, 28], tch::kind::FLOAT_CPU);
        let (h, z) = model.forward_t(&x, true);
        assert_eq!(h.size(), [5, 16]);
        assert_eq!(z.size(), [5, 6]);
        // conv weights without bias, BN weight and bias (plus running stats as buffers),
        // linear weights: 3 convs + 3 BN·2 + fc0 + BN·2 + fc1 weight and bias.
        assert_eq!(vs.trainable_variables().len(), 3 + 6 + 1 + 2 + 2);
    }

    #[test]
    fn pooling_to_a_grid_keeps_each_cell_and_their_mean_is_the_global_pool() {
        // Two blocks: 28×28 → max-pool → 14×14, which a 2×2 grid splits into four 7×7 cells
        // exactly, so the cells' mean is the global average (pool = 1) of the same weights.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = SmallCnn::new(&vs.root(), 1, &[4, 8], 1);
        let x = Tensor::randn([3, 1, 28, 28], tch::kind::FLOAT_CPU);
        let global = net.forward_t(&x, false);
        net.pool = 2;
        let grid = net.forward_t(&x, false);
        assert_eq!(grid.size(), [3, 8 * 4]);
        let means = grid.view([3, 8, 4]).mean_dim(2, false, tch::Kind::Float);
        let gap = (means - global).abs().max().double_value(&[]);
        assert!(gap < 1e-5, "{gap}");
    }
}
