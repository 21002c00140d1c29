//! The `[aggregators]` table of an experiment: each present sub-table switches one on.
//!
//! ```toml
//! [aggregators.attention]          # graph attention on backbone features
//! [aggregators.multi-stage]        # jumping knowledge: mix a bank of last epoch's projections
//! start_epoch = 2
//! mix = 0.5
//! [aggregators.rewiring]           # nearest-neighbour positives from a support queue
//! queue_size = 65536
//! [aggregators.contranorm]         # uniformity as a layer on the projector output
//! strength = 0.1
//! ```
//! No sub-table is the plain loss.

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::{
    AttentionFeatures, BankPrecision, ContraNorm, GraphAttention, MultiStage, Rewiring, Stack,
};

/// `[aggregators]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", rename_all = "kebab-case")]
pub struct AggregatorsConfig {
    /// `[aggregators.attention]`: graph attention.
    pub attention: Option<AttentionConfig>,
    /// `[aggregators.multi-stage]`: multi-stage aggregation.
    pub multi_stage: Option<MultiStageConfig>,
    /// `[aggregators.rewiring]`: nearest-neighbour positives.
    pub rewiring: Option<RewiringConfig>,
    /// `[aggregators.contranorm]`: the ContraNorm layer.
    pub contranorm: Option<ContraNormConfig>,
}

/// `[aggregators.attention]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct AttentionConfig {
    /// `"backbone"` (default, the paper's) or `"projection"`.
    pub features: AttentionFeatures,
}

/// `[aggregators.multi-stage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct MultiStageConfig {
    /// The first epoch (from 1) whose positives are mixed. Default 2, the first epoch with a
    /// full bank; the reference starts at epoch 50 of its schedule.
    pub start_epoch: usize,
    /// The weight α of the bank in the mix, in [0, 1]. Default 0.5 (the reference's ½).
    pub mix: f64,
    /// Bank normalised projections instead of raw ones (the reference's). Default false.
    pub normalize: bool,
    /// `"f32"` (default), `"f16"` or `"bf16"`: halves the bank's memory for large data sets.
    pub precision: BankPrecision,
}

impl Default for MultiStageConfig {
    fn default() -> Self {
        Self {
            start_epoch: 2,
            mix: 0.5,
            normalize: false,
            precision: BankPrecision::F32,
        }
    }
}

/// `[aggregators.rewiring]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct RewiringConfig {
    /// Rows of the support queue. Default 65536, or the data set's size if smaller.
    pub queue_size: Option<usize>,
    /// Neighbours averaged into each key. Default 1 (NNCLR).
    pub top_k: usize,
}

impl Default for RewiringConfig {
    fn default() -> Self {
        Self {
            queue_size: None,
            top_k: 1,
        }
    }
}

/// `[aggregators.contranorm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ContraNormConfig {
    /// The strength s ≥ 0. Default 0.1.
    pub strength: f64,
    /// The temperature τ > 0 of the affinities. Default 1.
    pub temperature: f64,
}

impl Default for ContraNormConfig {
    fn default() -> Self {
        Self {
            strength: 0.1,
            temperature: 1.0,
        }
    }
}

/// The default support-queue size (NNCLR's).
const DEFAULT_QUEUE: usize = 65536;

impl AggregatorsConfig {
    /// Checks every value, naming the key at fault.
    ///
    /// # Errors
    /// A message naming the key and the accepted values.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(m) = &self.multi_stage {
            if !(0.0..=1.0).contains(&m.mix) {
                return Err(format!(
                    "aggregators.multi-stage.mix = {}: expected a value in [0, 1]",
                    m.mix
                ));
            }
            if m.start_epoch == 0 {
                return Err("aggregators.multi-stage.start_epoch = 0: epochs count from 1".into());
            }
        }
        if let Some(r) = &self.rewiring {
            if r.top_k == 0 {
                return Err("aggregators.rewiring.top_k = 0: expected at least 1".into());
            }
            if r.queue_size == Some(0) {
                return Err("aggregators.rewiring.queue_size = 0: expected at least 1".into());
            }
        }
        if self.multi_stage.is_some() && self.rewiring.is_some() {
            return Err(
                "aggregators.multi-stage and aggregators.rewiring both replace the positives' \
                 keys: choose one"
                    .into(),
            );
        }
        if let Some(c) = &self.contranorm
            && !(c.strength >= 0.0 && c.temperature > 0.0)
        {
            return Err(format!(
                "aggregators.contranorm: strength = {} and temperature = {}: expected \
                 strength ≥ 0 and temperature > 0",
                c.strength, c.temperature
            ));
        }
        Ok(())
    }

    /// The configured aggregators for a data set of `samples` samples and projections of
    /// dimension `dim`, on `device`. Validate first.
    pub fn build(&self, samples: usize, dim: usize, device: Device) -> Stack {
        let mut stack = Stack::default();
        if let Some(c) = &self.contranorm {
            let layer = ContraNorm {
                strength: c.strength,
                temperature: c.temperature,
            };
            stack.push("contranorm", Box::new(layer));
        }
        if let Some(a) = &self.attention {
            let attention = GraphAttention {
                features: a.features,
            };
            stack.push("attention", Box::new(attention));
        }
        if let Some(m) = &self.multi_stage {
            let bank = MultiStage::new(
                samples,
                dim,
                (m.start_epoch, m.mix, m.normalize),
                m.precision,
                device,
            );
            stack.push("multi-stage", Box::new(bank));
        }
        if let Some(r) = &self.rewiring {
            let size = r.queue_size.unwrap_or(DEFAULT_QUEUE.min(samples));
            stack.push(
                "rewiring",
                Box::new(Rewiring::new(size, dim, r.top_k, device)),
            );
        }
        stack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Aggregator;

    fn parse(text: &str) -> Result<AggregatorsConfig, String> {
        let cfg: AggregatorsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn tables_switch_aggregators_on_with_defaults() {
        let cfg = parse("[attention]\n[multi-stage]\nmix = 0.25\n[contranorm]\n").unwrap();
        assert_eq!(cfg.multi_stage.as_ref().unwrap().start_epoch, 2);
        let stack = cfg.build(10, 4, Device::Cpu);
        assert_eq!(
            stack.name(),
            "contranorm (s = 0.1) + attention + multi-stage (α = 0.25, from epoch 2)"
        );
        assert_eq!(parse("").unwrap().build(10, 4, Device::Cpu).name(), "plain");
        // The queue defaults to the data set's size when it is below 65536.
        let rw = parse("[rewiring]\n").unwrap().build(1000, 4, Device::Cpu);
        assert_eq!(rw.name(), "rewiring (top-1 of 1000)");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, needle) in [
            (
                "[multi-stage]\nmix = 1.5",
                "aggregators.multi-stage.mix = 1.5",
            ),
            ("[multi-stage]\nstart_epoch = 0", "start_epoch = 0"),
            ("[rewiring]\ntop_k = 0", "aggregators.rewiring.top_k = 0"),
            ("[multi-stage]\n[rewiring]", "choose one"),
            ("[contranorm]\ntemperature = 0.0", "temperature = 0"),
            ("[atention]", "unknown field `atention`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
