//! Multi-stage aggregation (the paper's jumping-knowledge variant, docs/science.md §4): the
//! positives are mixed with each sample's projection from the previous epoch.
//!
//! ```text
//! keyᵥᵢ = (1 − α)·zᵥᵢ + α·bank[i]    from `start_epoch` on, samples already banked
//! bank[i] ← mean over views v of zᵥᵢ   (detached; optionally normalised)
//! ```
//! For SimSiam the keys are the targets of the predictor (stop-gradient); for SimCLR they
//! are the positives' keys of InfoNCE. Each sample appears once per epoch, so reading its
//! row before overwriting it in the same step reads the previous epoch's projection: the
//! same as refreshing the whole bank at the end of every epoch, with one bank instead of two.
//!
//! Memory: `d` values per sample in the bank's precision, plus one flag byte: 4d + 1 bytes in
//! f32, 2d + 1 in f16 or bf16 (e.g. 2048-d SimSiam projections of 1.28 M images: 10.5 GB in
//! f32, 5.2 GB in bf16).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use mpcl_losses::normalize_rows;

use crate::{Aggregator, Change, StateError, Step, restore};

/// The element type of the bank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BankPrecision {
    /// 32-bit floats.
    #[default]
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16: f32's range with 8 bits of mantissa.
    Bf16,
}

impl BankPrecision {
    fn kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::F16 => Kind::Half,
            Self::Bf16 => Kind::BFloat16,
        }
    }
}

/// A bank of one projection per sample, mixed into the positives.
#[derive(Debug)]
pub struct MultiStage {
    start_epoch: usize,
    mix: f64,
    normalize: bool,
    /// `[samples, d]`.
    bank: Tensor,
    /// `[samples]` bool: the row holds a projection.
    filled: Tensor,
}

impl MultiStage {
    /// An empty bank for `samples` samples of `dim`-dimensional projections; the mix `α`
    /// applies from epoch `start_epoch` (counted from 1) on.
    pub fn new(
        samples: usize,
        dim: usize,
        (start_epoch, mix, normalize): (usize, f64, bool),
        precision: BankPrecision,
        device: Device,
    ) -> Self {
        let (n, d) = (samples as i64, dim as i64);
        Self {
            start_epoch,
            mix,
            normalize,
            bank: Tensor::zeros([n, d], (precision.kind(), device)),
            filled: Tensor::zeros([n], (Kind::Bool, device)),
        }
    }

    /// Bytes of state per sample.
    pub fn bytes_per_sample(&self) -> usize {
        self.bank.size()[1] as usize * self.bank.kind().elt_size_in_bytes() + 1
    }

    /// The banked projections, `[samples, d]`.
    pub fn bank(&self) -> &Tensor {
        &self.bank
    }

    /// Row `r` of a view-major batch belongs to sample `samples[r mod N]`.
    fn row_samples(step: &Step<'_>) -> Tensor {
        step.samples.repeat([step.views as i64])
    }
}

impl Aggregator for MultiStage {
    fn name(&self) -> String {
        format!(
            "multi-stage (α = {}, from epoch {})",
            self.mix, self.start_epoch
        )
    }

    fn change(&mut self, step: &Step<'_>) -> Change {
        if step.epoch < self.start_epoch || self.mix == 0.0 {
            return Change::default();
        }
        let z = step.projection;
        let rows = Self::row_samples(step);
        let (stored, have) = tch::no_grad(|| {
            (
                self.bank.index_select(0, &rows).to_kind(z.kind()),
                self.filled.index_select(0, &rows).unsqueeze(1),
            )
        });
        let mixed = z * (1.0 - self.mix) + stored * self.mix;
        Change {
            weights: None,
            keys: Some(mixed.where_self(&have, z)),
        }
    }

    fn observe(&mut self, step: &Step<'_>) {
        tch::no_grad(|| {
            let z = step.projection.detach();
            let n = step.samples.size()[0];
            let mean =
                z.view([step.views as i64, n, -1])
                    .mean_dim([0i64].as_slice(), false, z.kind());
            let value = if self.normalize {
                normalize_rows(&mean)
            } else {
                mean
            };
            let _ = self
                .bank
                .index_copy_(0, step.samples, &value.to_kind(self.bank.kind()));
            let _ = self.filled.index_fill_(0, step.samples, 1);
        });
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        vec![
            ("bank".into(), self.bank.shallow_clone()),
            ("filled".into(), self.filled.shallow_clone()),
        ]
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
        restore(state, "bank", &mut self.bank)?;
        restore(state, "filled", &mut self.filled)
    }
}

#[cfg(test)]
mod tests {
    use mpcl_losses::InfoNce;

    use super::*;
    use crate::testing::{samples, t};

    fn step<'a>(z: &'a Tensor, ids: &'a Tensor, epoch: usize) -> Step<'a> {
        Step {
            backbone: z,
            projection: z,
            samples: ids,
            views: 2,
            epoch,
        }
    }

    fn bank(start: usize, mix: f64) -> MultiStage {
        MultiStage::new(4, 2, (start, mix, false), BankPrecision::F32, Device::Cpu)
    }

    #[test]
    fn before_its_start_or_with_mix_zero_it_is_the_baseline() {
        let z = t(&[[1., 0.], [0., 1.], [0.6, 0.8], [0.8, 0.6]]);
        let ids = samples(&[2, 3]);
        let mut early = bank(3, 0.5);
        early.observe(&step(&z, &ids, 1));
        assert!(early.change(&step(&z, &ids, 2)).keys.is_none());
        let mut off = bank(1, 0.0);
        off.observe(&step(&z, &ids, 1));
        assert!(off.change(&step(&z, &ids, 2)).keys.is_none());
        // Keys equal to z where nothing is banked yet: the plain loss.
        let mut fresh = bank(1, 0.5);
        let keys = fresh.change(&step(&z, &ids, 1)).keys.unwrap();
        let nce = InfoNce::new(0.5, 2).unwrap();
        let plain = nce.loss(&z, None).unwrap().double_value(&[]);
        let mixed = nce
            .loss_with_keys(&z, None, Some(&keys))
            .unwrap()
            .double_value(&[]);
        assert!((plain - mixed).abs() < 1e-7);
    }

    #[test]
    fn keys_mix_the_previous_epoch_by_hand() {
        // Epoch 1 banks the mean of each sample's two views: sample 2 → ([1,0]+[0.6,0.8])/2 =
        // [0.8, 0.4], sample 3 → ([0,1]+[0.8,0.6])/2 = [0.4, 0.8].
        let ids = samples(&[2, 3]);
        let z1 = t(&[[1., 0.], [0., 1.], [0.6, 0.8], [0.8, 0.6]]);
        let mut ms = bank(2, 0.5);
        ms.observe(&step(&z1, &ids, 1));
        let banked = Vec::<f32>::try_from(ms.bank().index_select(0, &ids).flatten(0, -1));
        assert_eq!(banked.unwrap(), [0.8, 0.4, 0.4, 0.8]);
        // Epoch 2, z all [0, 0]: keys = ½·0 + ½·bank[sample of the row].
        let z2 = Tensor::zeros([4, 2], tch::kind::FLOAT_CPU);
        let keys = ms.change(&step(&z2, &ids, 2)).keys.unwrap();
        let keys = Vec::<f32>::try_from(keys.flatten(0, -1)).unwrap();
        assert_eq!(keys, [0.4, 0.2, 0.2, 0.4, 0.4, 0.2, 0.2, 0.4]);
    }

    #[test]
    fn state_round_trips_and_bad_state_is_named() {
        let ids = samples(&[0, 1]);
        let z = t(&[[1., 2.], [3., 4.], [5., 6.], [7., 8.]]);
        let mut a = MultiStage::new(4, 2, (1, 0.5, true), BankPrecision::Bf16, Device::Cpu);
        a.observe(&step(&z, &ids, 1));
        let mut b = MultiStage::new(4, 2, (1, 0.5, true), BankPrecision::Bf16, Device::Cpu);
        b.load_state(&a.state()).unwrap();
        assert!(a.bank().equal(b.bank()));
        assert_eq!(a.bytes_per_sample(), 2 * 2 + 1);
        let mut wrong = bank(1, 0.5);
        let err = wrong.load_state(&[("bank".into(), Tensor::zeros([3, 2], tch::kind::FLOAT_CPU))]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "aggregator state \"bank\" has shape [3, 2], expected [4, 2]"
        );
    }
}
