//! Graph rewiring with nearest-neighbour positives (NNCLR, Dwibedi et al., 2021; named by
//! the paper, not in its code): each positive's key is replaced by its nearest neighbour in a
//! FIFO support queue of past projections, so the positive edge of the augmentation graph is
//! rewired to a semantically close view of another sample.
//!
//! ```text
//! keyₜ = mean of the top-k rows q of the queue by cos(zₜ, q)   (detached)
//! ```
//! Symmetric in the views: every row's key is replaced, so each anchor's positive is its
//! partner's neighbour. The queue stores unit rows; after each step all its views are pushed,
//! the oldest dropped. Memory: 4d bytes per queue row.

use tch::{Device, Kind, Tensor};

use mpcl_losses::normalize_rows;

use crate::{Aggregator, Change, StateError, Step, restore};

/// A support queue of past projections and the neighbour lookup.
#[derive(Debug)]
pub struct Rewiring {
    top_k: usize,
    /// `[capacity, d]` unit rows; the first `len` are valid.
    queue: Tensor,
    /// `[2]` int64: (len, head), kept as a tensor so it checkpoints with the rows.
    cursor: Tensor,
}

impl Rewiring {
    /// An empty queue of `capacity` rows of dimension `dim`; keys mix the `top_k` nearest.
    pub fn new(capacity: usize, dim: usize, top_k: usize, device: Device) -> Self {
        Self {
            top_k,
            queue: Tensor::zeros([capacity as i64, dim as i64], (Kind::Float, device)),
            cursor: Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
        }
    }

    fn len_head(&self) -> (i64, i64) {
        (self.cursor.int64_value(&[0]), self.cursor.int64_value(&[1]))
    }

    /// Pushes rows (normalised here), dropping the oldest when full.
    ///
    /// # Shapes
    /// `z`: `[R, d]`.
    pub fn push(&mut self, z: &Tensor) {
        tch::no_grad(|| {
            let capacity = self.queue.size()[0];
            let unit = normalize_rows(&z.detach().to_kind(Kind::Float));
            // Only the newest `capacity` rows can stay.
            let rows = unit.size()[0];
            let unit = unit.narrow(0, (rows - capacity).max(0), rows.min(capacity));
            let (len, head) = self.len_head();
            let count = unit.size()[0];
            let slots =
                Tensor::arange_start(head, head + count, (Kind::Int64, self.queue.device()))
                    .remainder(capacity);
            let _ = self.queue.index_copy_(0, &slots, &unit);
            self.cursor =
                Tensor::from_slice(&[(len + count).min(capacity), (head + count) % capacity]);
        });
    }

    /// The keys for `z`: the mean of each row's `top_k` nearest queue rows, or `None` while
    /// the queue is empty.
    ///
    /// # Shapes
    /// `z`: `[R, d]`; returns `[R, d]`.
    pub fn neighbours(&self, z: &Tensor) -> Option<Tensor> {
        let (len, _) = self.len_head();
        if len == 0 {
            return None;
        }
        Some(tch::no_grad(|| {
            let valid = self.queue.narrow(0, 0, len);
            let unit = normalize_rows(&z.detach().to_kind(Kind::Float));
            let k = (self.top_k as i64).min(len);
            let (_, idx) = unit.mm(&valid.tr()).topk(k, 1, true, true);
            let rows = idx.size()[0];
            valid
                .index_select(0, &idx.flatten(0, -1))
                .view([rows, k, -1])
                .mean_dim([1i64].as_slice(), false, Kind::Float)
                .to_kind(z.kind())
        }))
    }
}

impl Aggregator for Rewiring {
    fn name(&self) -> String {
        format!("rewiring (top-{} of {})", self.top_k, self.queue.size()[0])
    }

    fn change(&mut self, step: &Step<'_>) -> Change {
        Change {
            weights: None,
            keys: self.neighbours(step.projection),
        }
    }

    fn observe(&mut self, step: &Step<'_>) {
        self.push(step.projection);
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        vec![
            ("queue".into(), self.queue.shallow_clone()),
            ("cursor".into(), self.cursor.shallow_clone()),
        ]
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
        restore(state, "queue", &mut self.queue)?;
        restore(state, "cursor", &mut self.cursor)
    }
}

#[cfg(test)]
mod tests {
    use mpcl_losses::InfoNce;

    use super::*;
    use crate::testing::t;

    #[test]
    fn a_queue_of_the_views_themselves_gives_the_baseline() {
        tch::manual_seed(5);
        let z = Tensor::randn([8, 6], tch::kind::FLOAT_CPU);
        let mut rw = Rewiring::new(16, 6, 1, Device::Cpu);
        assert!(
            rw.neighbours(&z).is_none(),
            "an empty queue changes nothing"
        );
        rw.push(&z);
        let keys = rw.neighbours(&z).unwrap();
        let nce = InfoNce::new(0.3, 2).unwrap();
        let plain = nce.loss(&z, None).unwrap().double_value(&[]);
        let rewired = nce
            .loss_with_keys(&z, None, Some(&keys))
            .unwrap()
            .double_value(&[]);
        assert!((plain - rewired).abs() < 1e-6, "{plain} vs {rewired}");
    }

    #[test]
    fn neighbours_and_fifo_by_hand() {
        // Queue of 3: push [1,0], [0,1], then [−1,0] and [0,−1]: the oldest ([1,0]) is dropped.
        let mut rw = Rewiring::new(3, 2, 1, Device::Cpu);
        rw.push(&t(&[[2., 0.], [0., 3.]]));
        rw.push(&t(&[[-1., 0.], [0., -1.]]));
        assert_eq!(rw.len_head(), (3, 1));
        // [0.9, 0.1] is nearest to [0,1] now that [1,0] is gone; [0.1, −0.9] to [0,−1].
        let keys = rw.neighbours(&t(&[[0.9, 0.1], [0.1, -0.9]])).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(keys.flatten(0, -1)).unwrap(),
            [0., 1., 0., -1.]
        );
        // Top-2 mixes: [0.9, 0.1] has cosines 0.11, −0.11 and −0.99 with [0,1], [0,−1] and
        // [−1,0]; the mean of the two nearest, [0,1] and [0,−1], is [0, 0].
        let mut two = Rewiring::new(3, 2, 2, Device::Cpu);
        two.load_state(&rw.state()).unwrap();
        let keys = two.neighbours(&t(&[[0.9, 0.1]])).unwrap();
        assert_eq!(Vec::<f32>::try_from(keys.flatten(0, -1)).unwrap(), [0., 0.]);
    }
}
