//! Exact k-nearest-neighbour lists of a point set, computed blockwise on libtorch: the
//! t-SNE maps of `projection` start from them, and so does the eigenspace preset's pixel
//! k-NN graph. Distances are direct differences (`cdist`), not the expansion
//! `‖a‖² − 2a·b + ‖b‖²`, so they are exact up to rounding and a point's own zero is
//! the only one to mask. Cost: O(n²·D) arithmetic, O(block·n) memory.

use tch::{Kind, Tensor};

/// Rows of distances computed at once.
const BLOCK: i64 = 512;

/// One entry of a neighbour list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// The neighbour's row.
    pub index: usize,
    /// Its Euclidean distance from the point whose list holds it.
    pub distance: f64,
}

/// A neighbour count the point set cannot satisfy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("k = {k}: need 1 ≤ k < {n} points")]
pub struct BadCount {
    /// The count asked for.
    pub k: usize,
    /// The number of points.
    pub n: usize,
}

/// Each row's `k` nearest other rows by Euclidean distance, nearest first (ties in
/// libtorch's `topk` order), in double precision on the CPU.
///
/// # Shapes
/// `x`: `[n, …]` floats on any device, flattened to `[n, D]`; returns `n` lists of `k`.
///
/// # Errors
/// [`BadCount`] unless 1 ≤ k < n.
pub fn exact_neighbours(x: &Tensor, k: usize) -> Result<Vec<Vec<Neighbour>>, BadCount> {
    let n = x.size()[0];
    if k == 0 || k as i64 >= n {
        return Err(BadCount { k, n: n as usize });
    }
    let x = x
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Double)
        .flatten(1, -1)
        .contiguous();
    let mut out = Vec::with_capacity(n as usize);
    tch::no_grad(|| {
        for start in (0..n).step_by(BLOCK as usize) {
            let len = BLOCK.min(n - start);
            let d = Tensor::cdist(&x.narrow(0, start, len), &x, 2.0, 2);
            let own = Tensor::arange_start(start, start + len, (Kind::Int64, tch::Device::Cpu));
            let d = d.scatter_value(1, &own.unsqueeze(1), f64::INFINITY);
            let (dist, index) = d.topk(k as i64, 1, false, true);
            let dist = Vec::<f64>::try_from(dist.flatten(0, -1)).expect("double distances");
            let index = Vec::<i64>::try_from(index.flatten(0, -1)).expect("int64 indices");
            out.extend(dist.chunks(k).zip(index.chunks(k)).map(|(d, i)| {
                let pairs = d.iter().zip(i);
                pairs
                    .map(|(&distance, &index)| Neighbour {
                        index: index as usize,
                        distance,
                    })
                    .collect()
            }));
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_hold_the_closest_other_points_in_order() {
        // Rows 0‥4 hold 0, 1, 3, 7 and 8 on a line. By hand: row 1's two nearest are row 0
        // (at 1) and row 2 (at 2); row 4's are row 3 (at 1) and row 2 (at 5); row 0's are
        // row 1 (at 1) and row 2 (at 3); a row is never its own neighbour.
        let x = Tensor::from_slice(&[0.0f32, 1.0, 3.0, 7.0, 8.0]).view([5, 1]);
        let lists = exact_neighbours(&x, 2).unwrap();
        let pairs = |i: usize| -> Vec<(usize, f64)> {
            lists[i].iter().map(|n| (n.index, n.distance)).collect()
        };
        assert_eq!(pairs(1), [(0, 1.0), (2, 2.0)]);
        assert_eq!(pairs(4), [(3, 1.0), (2, 5.0)]);
        assert_eq!(pairs(0), [(1, 1.0), (2, 3.0)]);
    }

    #[test]
    fn a_count_the_points_cannot_meet_is_an_error() {
        let x = Tensor::zeros([3, 2], tch::kind::FLOAT_CPU);
        for k in [0, 3, 9] {
            let err = exact_neighbours(&x, k).unwrap_err().to_string();
            assert_eq!(err, format!("k = {k}: need 1 ≤ k < 3 points"));
        }
    }
}
