//! Shuffled batches of augmented views, prepared ahead on other threads.
//!
//! A batch of `B` images with `m` views is one `[m·B, c, h, w]` buffer in which row `v·B + i`
//! is view `v` of the batch's image `i`: the layout the contrastive losses expect. The order of
//! an epoch depends only on `(seed, epoch)`, each view only on `(seed, epoch, index, view)`,
//! so a run is reproducible whatever the number of threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::ImageSet;
use crate::augment::{GrayAugment, ViewKey};

/// One batch of augmented views.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[views · images, channels, height, width]` floats, view-major (see the module docs).
    pub pixels: Vec<f32>,
    /// The data-set index of each image in the batch.
    pub indices: Vec<usize>,
    /// Views per image.
    pub views: usize,
}

/// How an epoch is cut into batches.
#[derive(Debug, Clone, Copy)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Views per image.
    pub views: usize,
    /// The run's seed.
    pub seed: u64,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
}

/// The shuffled order of `n` indices in `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f0d_a7a0);
    rng.set_stream(epoch);
    order.shuffle(&mut rng);
    order
}

/// The number of batches in an epoch of `n` images.
pub fn batches_per_epoch(n: usize, cfg: &LoaderConfig) -> usize {
    if cfg.drop_last {
        n / cfg.batch_size
    } else {
        n.div_ceil(cfg.batch_size)
    }
}

/// Makes the batch of `indices`: every view augmented in parallel.
pub fn make_batch(
    set: &ImageSet,
    aug: &GrayAugment,
    indices: &[usize],
    views: usize,
    seed: u64,
    epoch: u64,
) -> Batch {
    assert_eq!(
        set.channels, 1,
        "the gray pipeline takes single-channel images"
    );
    let len = set.image_len();
    let b = indices.len();
    let mut pixels = vec![0.0f32; views * b * len];
    pixels
        .par_chunks_mut(len)
        .enumerate()
        .for_each(|(row, out)| {
            let (view, i) = (row / b, row % b);
            let index = indices[i];
            let key = ViewKey {
                seed,
                epoch,
                index: index as u64,
                view: view as u64,
            };
            aug.view(set.image(index), (set.height, set.width), key, out);
        });
    Batch {
        pixels,
        indices: indices.to_vec(),
        views,
    }
}

/// The batches of one epoch, made on a background thread `cfg.prefetch` batches ahead.
/// Dropping the receiver stops the thread after the batch it is making.
pub fn epoch_batches(
    set: Arc<ImageSet>,
    aug: Arc<GrayAugment>,
    cfg: LoaderConfig,
    epoch: u64,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel(cfg.prefetch.max(1));
    std::thread::spawn(move || {
        let order = epoch_order(set.len(), cfg.seed, epoch);
        let count = batches_per_epoch(set.len(), &cfg);
        for chunk in order.chunks(cfg.batch_size).take(count) {
            let batch = make_batch(&set, &aug, chunk, cfg.views, cfg.seed, epoch);
            if tx.send(batch).is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> Arc<ImageSet> {
        Arc::new(ImageSet {
            pixels: (0..n * 64).map(|i| (i % 251) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u16).collect(),
            channels: 1,
            height: 8,
            width: 8,
            classes: 10,
        })
    }

    fn cfg(drop_last: bool) -> LoaderConfig {
        LoaderConfig {
            batch_size: 4,
            views: 2,
            seed: 3,
            drop_last,
            prefetch: 2,
        }
    }

    #[test]
    fn epochs_cover_every_index_once_in_different_orders() {
        let a = epoch_order(100, 1, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, epoch_order(100, 1, 1));
        assert_eq!(a, epoch_order(100, 1, 0));
    }

    #[test]
    fn batches_have_the_documented_layout_and_count() {
        let data = set(10);
        let aug = Arc::new(GrayAugment::default());
        let kept: Vec<_> = epoch_batches(data.clone(), aug.clone(), cfg(false), 0)
            .iter()
            .collect();
        assert_eq!(
            kept.iter().map(|b| b.indices.len()).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let dropped = epoch_batches(data.clone(), aug.clone(), cfg(true), 0)
            .iter()
            .count();
        assert_eq!(dropped, 2);
        // Row v·B + i of a batch is view v of image i: the same as augmenting it alone.
        let batch = &kept[1];
        let i = 3;
        let alone = make_batch(&data, &aug, &batch.indices[i..=i], 2, 3, 0);
        let b = batch.indices.len();
        for v in 0..2 {
            let row = &batch.pixels[(v * b + i) * 64..(v * b + i + 1) * 64];
            assert_eq!(row, &alone.pixels[v * 64..(v + 1) * 64]);
        }
    }

    #[test]
    fn batches_do_not_depend_on_the_thread_count() {
        let data = set(16);
        let aug = GrayAugment::default();
        let indices: Vec<usize> = (0..16).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool.install(|| make_batch(&data, &aug, &indices, 2, 5, 1));
        let many = make_batch(&data, &aug, &indices, 2, 5, 1);
        assert_eq!(one.pixels, many.pixels);
    }
}
