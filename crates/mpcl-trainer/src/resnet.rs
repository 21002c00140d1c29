//! ResNet-18/34/50 backbones (He et al. 2016) with torchvision's parameter names and
//! initialisation, and the CIFAR stem of the SimCLR and SimSiam references.
//!
//! Under its var-store path a backbone's variables are named as in torchvision's
//! `state_dict()`: `conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`,
//! `layer2.0.downsample.0.weight`, …, without the classifier `fc` and without BN's
//! `num_batches_tracked` counters (tch does not keep them). Initialisation follows torchvision:
//! convolutions Kaiming-normal with fan-out and ReLU gain (std √(2 / (c_out·k²))), BN weight 1
//! and bias 0, optionally the last BN of each residual block at weight 0; the CIFAR stem's
//! 3×3 convolution keeps PyTorch's default conv init (uniform, bound 1/√fan_in), as it does in
//! the references, which replace torchvision's stem after construction. Classifier heads are
//! not built here.

use tch::nn::{self, ModuleT};
use tch::{Tensor, nn::Init};

/// Kaiming-normal, fan-out, ReLU gain: torchvision's ResNet convolution init.
pub const CONV_INIT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// PyTorch's default for conv and linear weights: Kaiming-uniform with a = √5, that is gain
/// √(2 / (1 + a²)) = √(1/3) and bound √3·gain/√fan_in = 1/√fan_in.
pub const TORCH_DEFAULT_INIT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Uniform,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::ExplicitGain(0.577_350_269_189_625_8),
};

/// The network depths of torchvision's family that mpcl builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Basic blocks, [2, 2, 2, 2]; 512 features.
    R18,
    /// Basic blocks, [3, 4, 6, 3]; 512 features.
    R34,
    /// Bottleneck blocks, [3, 4, 6, 3]; 2048 features.
    R50,
}

impl Depth {
    fn blocks(self) -> [usize; 4] {
        match self {
            Self::R18 => [2, 2, 2, 2],
            Self::R34 | Self::R50 => [3, 4, 6, 3],
        }
    }

    fn bottleneck(self) -> bool {
        self == Self::R50
    }

    /// The width of the pooled features.
    pub fn features(self) -> usize {
        if self.bottleneck() { 2048 } else { 512 }
    }
}

/// The first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stem {
    /// torchvision's 7×7 stride-2 convolution (padding 3) and 3×3 stride-2 max-pooling.
    ImageNet,
    /// A 3×3 stride-1 convolution with this padding and no max-pooling (SimCLR's CIFAR
    /// setting uses padding 1, SimSiam's reference 2).
    Cifar {
        /// Zero padding on each side.
        padding: i64,
    },
}

/// conv–BN pairs of a residual block; `conv3` only in bottlenecks.
#[derive(Debug)]
struct Block {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

fn conv(path: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ws_init: CONV_INIT,
        ..Default::default()
    };
    nn::conv2d(path, c_in, c_out, k, cfg)
}

fn bn(path: nn::Path, c: i64, weight: f64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        ws_init: Init::Const(weight),
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::batch_norm2d(path, c, cfg)
}

impl Block {
    /// A basic block (two 3×3) or a bottleneck (1×1, 3×3 with the stride, 1×1 to 4·width).
    fn new(p: &nn::Path, c_in: i64, width: i64, stride: i64, bottleneck: bool, zero: bool) -> Self {
        let last_bn = if zero { 0.0 } else { 1.0 };
        let (convs, c_out) = if bottleneck {
            let c_out = 4 * width;
            let convs = vec![
                (
                    conv(p / "conv1", c_in, width, 1, 1, 0),
                    bn(p / "bn1", width, 1.0),
                ),
                (
                    conv(p / "conv2", width, width, 3, stride, 1),
                    bn(p / "bn2", width, 1.0),
                ),
                (
                    conv(p / "conv3", width, c_out, 1, 1, 0),
                    bn(p / "bn3", c_out, last_bn),
                ),
            ];
            (convs, c_out)
        } else {
            let convs = vec![
                (
                    conv(p / "conv1", c_in, width, 3, stride, 1),
                    bn(p / "bn1", width, 1.0),
                ),
                (
                    conv(p / "conv2", width, width, 3, 1, 1),
                    bn(p / "bn2", width, last_bn),
                ),
            ];
            (convs, width)
        };
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = p / "downsample";
            (
                conv(&d / "0", c_in, c_out, 1, stride, 0),
                bn(&d / "1", c_out, 1.0),
            )
        });
        Self { convs, downsample }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.convs.len() - 1;
        let mut ys = xs.shallow_clone();
        for (i, (c, b)) in self.convs.iter().enumerate() {
            ys = ys.apply(c).apply_t(b, train);
            if i < last {
                ys = ys.relu_();
            }
        }
        let shortcut = match &self.downsample {
            Some((c, b)) => xs.apply(c).apply_t(b, train),
            None => xs.shallow_clone(),
        };
        // In place, as torchvision's blocks do: a batch norm's backward needs its input, not
        // its output, so the sum and the ReLU may overwrite that output.
        ys.g_add_(&shortcut).relu_()
    }
}

/// A ResNet without its classifier: the pooled features are the representation.
#[derive(Debug)]
pub struct ResNet {
    stem: (nn::Conv2D, nn::BatchNorm),
    max_pool: bool,
    layers: Vec<Block>,
    features: usize,
}

impl ResNet {
    /// Creates the variables under `path` with torchvision's names. `zero_init_residual` sets
    /// the last BN weight of every block to 0, so each block starts as the identity.
    pub fn new(
        path: &nn::Path,
        in_channels: usize,
        depth: Depth,
        stem: Stem,
        zero_init_residual: bool,
    ) -> Self {
        let c_in = in_channels as i64;
        let stem_conv = match stem {
            Stem::ImageNet => conv(path / "conv1", c_in, 64, 7, 2, 3),
            Stem::Cifar { padding } => {
                let cfg = nn::ConvConfig {
                    padding,
                    bias: false,
                    ws_init: TORCH_DEFAULT_INIT,
                    ..Default::default()
                };
                nn::conv2d(path / "conv1", c_in, 64, 3, cfg)
            }
        };
        let mut layers = Vec::new();
        let mut c = 64;
        for (i, &n) in depth.blocks().iter().enumerate() {
            let width = 64 << i;
            let layer = path / format!("layer{}", i + 1);
            for j in 0..n {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                let block = Block::new(
                    &(&layer / j.to_string()),
                    c,
                    width,
                    stride,
                    depth.bottleneck(),
                    zero_init_residual,
                );
                c = if depth.bottleneck() { 4 * width } else { width };
                layers.push(block);
            }
        }
        Self {
            stem: (stem_conv, bn(path / "bn1", 64, 1.0)),
            max_pool: stem == Stem::ImageNet,
            layers,
            features: depth.features(),
        }
    }

    /// The width of the features.
    pub fn features(&self) -> usize {
        self.features
    }
}

impl ModuleT for ResNet {
    /// # Shapes
    /// `[b, c, h, w]` to `[b, 512]` (ResNet-18/34) or `[b, 2048]` (ResNet-50).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut xs = xs.apply(&self.stem.0).apply_t(&self.stem.1, train).relu_();
        if self.max_pool {
            xs = xs.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for block in &self.layers {
            xs = block.forward_t(&xs, train);
        }
        xs.mean_dim([2i64, 3].as_slice(), false, None::<tch::Kind>)
    }
}
