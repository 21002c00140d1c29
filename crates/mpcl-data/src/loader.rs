//! Shuffled batches of augmented views, prepared ahead on other threads.
//!
//! Each view of an image follows its own [`Pipeline`]; views whose pipelines give the same
//! resolution form a [`ViewGroup`] (the two main views, then the multi-crop views). A group of
//! `m` views of `B` images is one `[m·B, c, h, w]` buffer in which row `v·B + i` is the
//! group's view `v` of the batch's image `i`: the layout the contrastive losses expect. The
//! order of an epoch depends only on `(seed, epoch)`, each view only on
//! `(seed, epoch, index, view)`, so a run is reproducible whatever the number of threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::ImageSet;
use crate::augment::{Pipeline, ViewKey};

/// The views of a batch that share one resolution.
#[derive(Debug, Clone)]
pub struct ViewGroup {
    /// The index of the group's first view among the image's views.
    pub first_view: usize,
    /// Views in the group.
    pub views: usize,
    /// `[channels, height, width]` of each view.
    pub dims: [usize; 3],
    /// `[views · images, channels, height, width]` floats, view-major (see the module docs).
    pub pixels: Vec<f32>,
}

/// One batch of augmented views.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The views by resolution, in view order.
    pub groups: Vec<ViewGroup>,
    /// The data-set index of each image in the batch.
    pub indices: Vec<usize>,
}

/// How an epoch is cut into batches.
#[derive(Debug, Clone, Copy)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
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

/// The view groups of `pipelines` on `[c, h, w]` images: runs of consecutive views with the
/// same output resolution, as `(first view, views, dims)`.
pub fn view_groups(
    pipelines: &[Pipeline],
    (c, h, w): (usize, usize, usize),
) -> Vec<(usize, usize, [usize; 3])> {
    let mut groups: Vec<(usize, usize, [usize; 3])> = Vec::new();
    for (v, p) in pipelines.iter().enumerate() {
        let (oh, ow) = p.out_size((h, w));
        match groups.last_mut() {
            Some((_, n, dims)) if *dims == [c, oh, ow] => *n += 1,
            _ => groups.push((v, 1, [c, oh, ow])),
        }
    }
    groups
}

/// Makes the batch of `indices`: view v of every image drawn with `pipelines[v]`, all views
/// augmented in parallel.
///
/// # Panics
/// If a pipeline cannot take the set's images (see [`Pipeline::check_images`]).
pub fn make_batch(
    set: &ImageSet,
    pipelines: &[Pipeline],
    indices: &[usize],
    seed: u64,
    epoch: u64,
) -> Batch {
    let dims = (set.channels, set.height, set.width);
    let b = indices.len();
    let groups = view_groups(pipelines, dims)
        .into_iter()
        .map(|(first_view, views, [c, h, w])| {
            let len = c * h * w;
            let mut pixels = vec![0.0f32; views * b * len];
            pixels
                .par_chunks_mut(len)
                .enumerate()
                .for_each(|(row, out)| {
                    let (view, index) = (first_view + row / b, indices[row % b]);
                    let key = ViewKey {
                        seed,
                        epoch,
                        index: index as u64,
                        view: view as u64,
                    };
                    pipelines[view].view(set.image(index), dims, key, out);
                });
            ViewGroup {
                first_view,
                views,
                dims: [c, h, w],
                pixels,
            }
        })
        .collect();
    Batch {
        groups,
        indices: indices.to_vec(),
    }
}

/// The batches of one epoch from batch `first` on (0 for all; a resumed run starts where
/// it stopped), made on a background thread `cfg.prefetch` batches ahead while the consumer
/// works on the current one. Batch b is the same whatever `first` is. Dropping the receiver
/// stops the thread after the batch it is making.
pub fn epoch_batches(
    set: Arc<ImageSet>,
    pipelines: Arc<[Pipeline]>,
    cfg: LoaderConfig,
    epoch: u64,
    first: usize,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel(cfg.prefetch.max(1));
    std::thread::spawn(move || {
        let order = epoch_order(set.len(), cfg.seed, epoch);
        let count = batches_per_epoch(set.len(), &cfg);
        for chunk in order.chunks(cfg.batch_size).take(count).skip(first) {
            let batch = make_batch(&set, &pipelines, chunk, cfg.seed, epoch);
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
            seed: 3,
            drop_last,
            prefetch: 2,
        }
    }

    fn two_views() -> Arc<[Pipeline]> {
        vec![Pipeline::default(); 2].into()
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
        let aug = two_views();
        let kept: Vec<_> = epoch_batches(data.clone(), aug.clone(), cfg(false), 0, 0)
            .iter()
            .collect();
        assert_eq!(
            kept.iter().map(|b| b.indices.len()).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let dropped = epoch_batches(data.clone(), aug.clone(), cfg(true), 0, 0)
            .iter()
            .count();
        assert_eq!(dropped, 2);
        // Starting at batch 1 gives the later batches of the full epoch, pixel for pixel.
        let resumed: Vec<_> = epoch_batches(data.clone(), aug.clone(), cfg(false), 0, 1)
            .iter()
            .collect();
        assert_eq!(resumed.len(), 2);
        for (a, b) in resumed.iter().zip(&kept[1..]) {
            assert_eq!(a.indices, b.indices);
            assert_eq!(a.groups[0].pixels, b.groups[0].pixels);
        }
        // Row v·B + i of a batch is view v of image i: the same as augmenting it alone.
        let batch = &kept[1];
        let i = 3;
        let alone = make_batch(&data, &aug, &batch.indices[i..=i], 3, 0);
        let b = batch.indices.len();
        let (group, single) = (&batch.groups[0].pixels, &alone.groups[0].pixels);
        for v in 0..2 {
            let row = &group[(v * b + i) * 64..(v * b + i + 1) * 64];
            assert_eq!(row, &single[v * 64..(v + 1) * 64]);
        }
    }

    #[test]
    fn multi_crop_views_form_their_own_group() {
        let small = Pipeline {
            size: 4,
            ..Pipeline::default()
        };
        let pipelines = vec![
            Pipeline::default(),
            Pipeline::default(),
            small.clone(),
            small,
        ];
        let batch = make_batch(&set(3), &pipelines, &[0, 1, 2], 1, 0);
        let shapes: Vec<_> = batch
            .groups
            .iter()
            .map(|g| (g.first_view, g.views, g.dims, g.pixels.len()))
            .collect();
        assert_eq!(
            shapes,
            vec![(0, 2, [1, 8, 8], 2 * 3 * 64), (2, 2, [1, 4, 4], 2 * 3 * 16)]
        );
    }

    #[test]
    fn batches_do_not_depend_on_the_thread_count() {
        let data = set(16);
        let aug = two_views();
        let indices: Vec<usize> = (0..16).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool.install(|| make_batch(&data, &aug, &indices, 5, 1));
        let many = make_batch(&data, &aug, &indices, 5, 1);
        assert_eq!(one.groups[0].pixels, many.groups[0].pixels);
    }
}
