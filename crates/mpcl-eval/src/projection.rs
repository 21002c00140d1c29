//! Two-dimensional maps of features for figures: PCA, and t-SNE (Barnes-Hut, from the
//! bhtsne crate) started from the PCA map rather than at random, on the exact neighbours
//! of [`crate::neighbours`], so repeated fits give the same map.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::neighbours::{Neighbour, exact_neighbours};

/// `[eval.projection]`: the feature maps drawn after evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table", default)]
pub struct ProjectionConfig {
    /// Draw them. Default true.
    pub enabled: bool,
    /// The first this many test images are mapped. Default 2000.
    pub samples: usize,
    /// t-SNE perplexity (lowered to (n − 1)/3 for small n). Default 30.
    pub perplexity: f64,
    /// t-SNE iterations. Default 1000.
    pub iterations: usize,
    /// Barnes-Hut θ (0 would be exact and quadratic). Default 0.5.
    pub theta: f64,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            samples: 2000,
            perplexity: 30.0,
            iterations: 1000,
            theta: 0.5,
        }
    }
}

/// The coordinates of each row of `features` on its first two principal axes (centred, in
/// double precision). Each axis's sign makes its largest-magnitude coordinate positive, so
/// the map does not flip between runs.
///
/// # Shapes
/// `features`: `[n, D]` with `n ≥ 2`; returns `n` points.
pub fn pca(features: &Tensor) -> Vec<(f64, f64)> {
    let x = features.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    let x = &x - x.mean_dim(0, true, Kind::Double);
    let (_, _, v) = tch::no_grad(|| x.svd(true, true));
    let scores = x.matmul(&v.narrow(1, 0, 2.min(v.size()[1])));
    let columns = scores.size()[1];
    let signs: Vec<f64> = (0..columns)
        .map(|c| {
            let col = scores.select(1, c);
            let at = col.abs().argmax(0, false).int64_value(&[]);
            if col.double_value(&[at]) < 0.0 {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    (0..scores.size()[0])
        .map(|i| {
            let v = |c: i64| {
                if c < columns {
                    signs[c as usize] * scores.double_value(&[i, c])
                } else {
                    0.0
                }
            };
            (v(0), v(1))
        })
        .collect()
}

/// A t-SNE map of the rows of `features` under Euclidean distance, initialised with their
/// PCA map scaled to standard deviation 10⁻⁴ (as openTSNE does). The ⌊3·perplexity⌋
/// nearest neighbours come from [`exact_neighbours`], in a fixed order, rather than from the
/// crate's vantage-point tree, whose unseeded pivots reorder the sums and, through
/// t-SNE's sensitive dynamics, move points by whole units between fits; with the fit on
/// one thread, the same features give the same map, bit for bit.
///
/// # Shapes
/// `features`: `[n, D]` with `n ≥ 4`; returns `n` points.
pub fn tsne(features: &Tensor, cfg: &ProjectionConfig) -> Vec<(f64, f64)> {
    let n = features.size()[0] as usize;
    let init = pca(features);
    let std = (init.iter().map(|p| p.0 * p.0).sum::<f64>() / n as f64).sqrt();
    let scale = if std > 0.0 { 1e-4 / std } else { 1.0 };
    let init: Vec<f64> = init
        .iter()
        .flat_map(|&(a, b)| [a * scale, b * scale])
        .collect();
    let x = features
        .to_kind(Kind::Double)
        .to_device(tch::Device::Cpu)
        .contiguous();
    let perplexity = cfg.perplexity.min((n as f64 - 1.0) / 3.0);
    let k = ((3.0 * perplexity) as usize).clamp(1, n - 1);
    let neighbours: Vec<Vec<bhtsne::Neighbor<f64>>> = exact_neighbours(&x, k)
        .expect("1 ≤ k < n by the clamp above")
        .into_iter()
        .map(|list| {
            let to = |n: Neighbour| bhtsne::Neighbor {
                index: n.index,
                distance: n.distance,
            };
            list.into_iter().map(to).collect()
        })
        .collect();
    let rows: Vec<usize> = (0..n).collect();
    // The crate's parallel float sums split work as threads become free, so their rounding
    // varies between fits; one thread fixes the order.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
    let pool = pool.expect("a one-thread rayon pool");
    let map = pool.install(|| {
        let mut t: bhtsne::tSNE<f64, usize> = bhtsne::tSNE::new(&rows);
        t.perplexity(perplexity)
            .epochs(cfg.iterations)
            .initial_embedding(init)
            .barnes_hut_with_neighbors(cfg.theta, &neighbours);
        t.embedding()
    });
    map.chunks(2).map(|p| (p[0], p[1])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_recovers_the_axes_of_a_planted_ellipse() {
        // Points a·u + b·w in R⁵ with orthonormal u, w and centred, uncorrelated coordinates
        // a = (5, 1, −2, −4), b = (2, −4, 1, 1) (Σa = Σb = Σab = 0, var a = 11.5 > var b =
        // 5.5): the principal axes are u then w and the scores are a and b, up to the sign
        // rule: the largest |a| is +5 (kept), the largest |b| is −4 (flipped).
        let u = [0.6, 0.8, 0.0, 0.0, 0.0];
        let w = [0.0, 0.0, 0.0, 1.0, 0.0];
        let coords = [(5.0, 2.0), (1.0, -4.0), (-2.0, 1.0), (-4.0, 1.0)];
        let rows: Vec<f64> = coords
            .iter()
            .flat_map(|&(a, b)| (0..5).map(move |k| a * u[k] + b * w[k]))
            .collect();
        let map = pca(&Tensor::from_slice(&rows).view([4, 5]));
        for (&(a, b), &(p, q)) in coords.iter().zip(&map) {
            assert!((p - a).abs() < 1e-12 && (q + b).abs() < 1e-12, "{map:?}");
        }
    }

    #[test]
    fn tsne_keeps_separated_clusters_apart_and_is_deterministic() {
        // Two Gaussian clusters 20σ apart in R¹⁰: in the map, each point's nearest
        // neighbour must lie in its own cluster (a property t-SNE preserves for clusters
        // this far apart), and two fits must agree exactly (with the crate's own
        // neighbour search they differed by up to 4 units in 2 of 12 runs).
        tch::manual_seed(3);
        let a = Tensor::randn([60, 10], tch::kind::DOUBLE_CPU);
        let b = Tensor::randn([60, 10], tch::kind::DOUBLE_CPU) + 20.0;
        let x = Tensor::cat(&[a, b], 0);
        let cfg = ProjectionConfig {
            perplexity: 10.0,
            iterations: 300,
            ..Default::default()
        };
        let map = tsne(&x, &cfg);
        for (p, q) in map.iter().zip(&tsne(&x, &cfg)) {
            assert!(
                p.0.to_bits() == q.0.to_bits() && p.1.to_bits() == q.1.to_bits(),
                "{p:?} {q:?}"
            );
        }
        for (i, p) in map.iter().enumerate() {
            let nearest = (0..map.len())
                .filter(|&j| j != i)
                .min_by(|&j, &k| {
                    let d = |q: &(f64, f64)| (q.0 - p.0).powi(2) + (q.1 - p.1).powi(2);
                    d(&map[j]).total_cmp(&d(&map[k]))
                })
                .unwrap();
            assert_eq!(i < 60, nearest < 60, "point {i}");
        }
    }
}
