//! The networks: a small CNN backbone for 28×28 gray images and the SimCLR projector.

use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::config::ModelConfig;

/// 3×3 conv–BN–ReLU blocks, 2×2 max-pooling after each but the last, global average pooling.
#[derive(Debug)]
pub struct SmallCnn {
    blocks: Vec<(nn::Conv2D, nn::BatchNorm)>,
}

impl SmallCnn {
    /// Creates the backbone's parameters under `path`.
    pub fn new(path: &nn::Path, in_channels: usize, widths: &[usize]) -> Self {
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
        Self { blocks }
    }
}

impl ModuleT for SmallCnn {
    /// # Shapes
    /// `[b, c, h, w]` to `[b, widths[-1]]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.blocks.len() - 1;
        let mut xs = xs.shallow_clone();
        for (i, (conv, bn)) in self.blocks.iter().enumerate() {
            xs = xs.apply(conv).apply_t(bn, train).relu();
            if i < last {
                xs = xs.max_pool2d_default(2);
            }
        }
        xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

/// Linear–BN–ReLU–Linear, SimCLR's projection head.
#[derive(Debug)]
pub struct Projector {
    hidden: nn::Linear,
    bn: nn::BatchNorm,
    out: nn::Linear,
}

impl Projector {
    /// Creates the projector's parameters under `path`.
    pub fn new(path: &nn::Path, input: usize, hidden: usize, output: usize) -> Self {
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        Self {
            hidden: nn::linear(path / "fc0", input as i64, hidden as i64, no_bias),
            bn: nn::batch_norm1d(path / "bn0", hidden as i64, Default::default()),
            out: nn::linear(
                path / "fc1",
                hidden as i64,
                output as i64,
                Default::default(),
            ),
        }
    }
}

impl ModuleT for Projector {
    /// # Shapes
    /// `[b, input]` to `[b, output]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.out
            .forward(&xs.apply(&self.hidden).apply_t(&self.bn, train).relu())
    }
}

/// Backbone and projector.
#[derive(Debug)]
pub struct Model {
    /// The encoder whose features are evaluated.
    pub backbone: SmallCnn,
    /// The head whose output the loss sees.
    pub projector: Projector,
}

impl Model {
    /// Creates both networks under `path` (`backbone.*`, `projector.*`).
    pub fn new(path: &nn::Path, in_channels: usize, cfg: &ModelConfig) -> Self {
        let feature = *cfg.widths.last().expect("validated: widths is not empty");
        Self {
            backbone: SmallCnn::new(&(path / "backbone"), in_channels, &cfg.widths),
            projector: Projector::new(
                &(path / "projector"),
                feature,
                cfg.projector_hidden,
                cfg.projector_dim,
            ),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_config() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = ModelConfig {
            widths: vec![4, 8, 16],
            projector_hidden: 12,
            projector_dim: 6,
            ..Default::default()
        };
        let model = Model::new(&vs.root(), 1, &cfg);
        let x = Tensor::randn([5, 1, 28, 28], tch::kind::FLOAT_CPU);
        let (h, z) = model.forward_t(&x, true);
        assert_eq!(h.size(), [5, 16]);
        assert_eq!(z.size(), [5, 6]);
        // conv weights without bias, BN weight and bias (plus running stats as buffers),
        // linear weights: 3 convs + 3 BN·2 + fc0 + BN·2 + fc1 weight and bias.
        assert_eq!(vs.trainable_variables().len(), 3 + 6 + 1 + 2 + 2);
    }
}
