//! Several aggregators in one step.

use tch::Tensor;

use crate::{Aggregator, Change, StateError, Step};

/// Aggregators applied together: transforms in order, weights multiplied, and the keys of
/// the one member that replaces keys ([`AggregatorsConfig`](crate::AggregatorsConfig) allows
/// at most one). State names are prefixed with the member's key, as in `multi-stage/bank`.
#[derive(Default)]
pub struct Stack {
    members: Vec<(String, Box<dyn Aggregator>)>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.members.iter().map(|(_, a)| a.name()))
            .finish()
    }
}

impl Stack {
    /// Adds a member under `key`, the name its state is saved under.
    pub fn push(&mut self, key: &str, aggregator: Box<dyn Aggregator>) {
        self.members.push((key.into(), aggregator));
    }

    /// Whether the stack changes nothing (the plain loss).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl Aggregator for Stack {
    fn name(&self) -> String {
        if self.members.is_empty() {
            return "plain".into();
        }
        let names: Vec<String> = self.members.iter().map(|(_, a)| a.name()).collect();
        names.join(" + ")
    }

    fn transform(&self, z: &Tensor) -> Tensor {
        self.members
            .iter()
            .fold(z.shallow_clone(), |z, (_, a)| a.transform(&z))
    }

    fn change(&mut self, step: &Step<'_>) -> Change {
        let mut change = Change::default();
        for (_, a) in &mut self.members {
            let Change { weights, keys } = a.change(step);
            change.weights = match (change.weights, weights) {
                (Some(w), Some(v)) => Some(w * v),
                (w, v) => w.or(v),
            };
            change.keys = change.keys.or(keys);
        }
        change
    }

    fn observe(&mut self, step: &Step<'_>) {
        for (_, a) in &mut self.members {
            a.observe(step);
        }
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.members
            .iter()
            .flat_map(|(key, a)| {
                a.state()
                    .into_iter()
                    .map(move |(name, t)| (format!("{key}/{name}"), t))
            })
            .collect()
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
        for (key, a) in &mut self.members {
            let prefix = format!("{key}/");
            let own: Vec<(String, Tensor)> = state
                .iter()
                .filter_map(|(n, t)| {
                    n.strip_prefix(&prefix)
                        .map(|rest| (rest.to_string(), t.shallow_clone()))
                })
                .collect();
            a.load_state(&own).map_err(|e| match e {
                StateError::Missing(n) => StateError::Missing(format!("{prefix}{n}")),
                StateError::Shape {
                    name,
                    found,
                    expected,
                } => StateError::Shape {
                    name: format!("{prefix}{name}"),
                    found,
                    expected,
                },
            })?;
        }
        Ok(())
    }
}
