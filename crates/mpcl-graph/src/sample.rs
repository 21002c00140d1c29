//! Positive pairs drawn from a graph: an ordered pair (x, x′) with probability
//! `A[x, x′] / ΣA`, so the population of pairs a contrastive objective sees is the graph.
//!
//! A batch is a function of `(seed, step)` alone (ChaCha8 keyed by both), so two runs that
//! ask for the same steps see the same pairs, and a run's pairs do not depend on what came
//! before.

use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand_chacha::ChaCha8Rng;

use crate::{CsrGraph, GraphError};

/// Draws the stored entries of a graph in proportion to their weights.
#[derive(Debug, Clone)]
pub struct EdgeSampler {
    pairs: Vec<(usize, usize)>,
    index: WeightedIndex<f64>,
}

impl EdgeSampler {
    /// The sampler of `graph`'s entries (a symmetric graph stores both directions, so both
    /// orders of an edge are drawn equally often).
    ///
    /// # Errors
    /// [`GraphError::Parameter`] for a graph without an entry of positive weight.
    ///
    /// Complexity: O(E) to build; a draw costs O(log E).
    pub fn new(graph: &CsrGraph) -> Result<Self, GraphError> {
        let (pairs, weights): (Vec<_>, Vec<_>) =
            graph.triplets().map(|(i, j, w)| ((i, j), w)).unzip();
        let index = WeightedIndex::new(&weights).map_err(|e| {
            GraphError::Parameter(format!("cannot draw edges from this graph: {e}"))
        })?;
        Ok(Self { pairs, index })
    }

    /// One pair.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> (usize, usize) {
        self.pairs[self.index.sample(rng)]
    }

    /// `size` pairs for step `step` of a run seeded with `seed`.
    pub fn batch(&self, size: usize, seed: u64, step: u64) -> Vec<(usize, usize)> {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&step.to_le_bytes());
        // A tag so these streams differ from other uses of ChaCha8 keyed by (seed, step).
        key[16..24].copy_from_slice(b"edges\0\0\0");
        let mut rng = ChaCha8Rng::from_seed(key);
        (0..size).map(|_| self.sample(&mut rng)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_depend_on_seed_and_step_only() {
        let g = CsrGraph::from_triplets(3, vec![(0, 1, 1.0), (1, 0, 1.0), (2, 2, 3.0)]).unwrap();
        let s = EdgeSampler::new(&g).unwrap();
        assert_eq!(s.batch(50, 1, 7), s.batch(50, 1, 7));
        assert_ne!(s.batch(50, 1, 7), s.batch(50, 1, 8));
        assert_ne!(s.batch(50, 1, 7), s.batch(50, 2, 7));
        let empty = CsrGraph::from_triplets(2, vec![(0, 1, 0.0)]).unwrap();
        let e = EdgeSampler::new(&empty).unwrap_err().to_string();
        assert!(e.contains("cannot draw edges"), "{e}");
    }
}
