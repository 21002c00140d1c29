//! The reference probe's train-time augmentation on image batches as tensors: torchvision's
//! `RandomCrop(size, padding, padding_mode="reflect")` followed by `RandomHorizontalFlip()`.
//!
//! The crop keeps the image size: the image is padded by `p` on every side by reflection
//! (the edge is not repeated: `x₂ x₁ | x₀ x₁ x₂`), and an `h × w` window is cut at an
//! offset drawn uniformly from `0..=2p` in each direction. The flip mirrors the window with
//! probability ½. Placements come from a seeded generator, so a batch depends only on the
//! generator's state; nothing here touches libtorch's global generator.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// Where one image's window lies in its padded image, and whether it is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// First padded row of the window, in `0..=2p`.
    pub top: usize,
    /// First padded column of the window, in `0..=2p`.
    pub left: usize,
    /// Mirror the window left to right.
    pub flip: bool,
}

/// Draws a placement per image for padding `p`, as `RandomCrop` and `RandomHorizontalFlip`
/// draw them: offsets uniform in `0..=2p`, a flip with probability ½.
pub fn draw_placements(rng: &mut ChaCha8Rng, n: usize, padding: usize) -> Vec<Placement> {
    (0..n)
        .map(|_| Placement {
            top: rng.random_range(0..=2 * padding),
            left: rng.random_range(0..=2 * padding),
            flip: rng.random_bool(0.5),
        })
        .collect()
}

/// Crops and flips each image of `images` at its placement; `u8` input is converted to
/// `f32` with its values unchanged.
///
/// # Shapes
/// `images`: `[b, c, h, w]` (`u8` or float), `placements`: `b` entries; returns
/// `[b, c, h, w]` float on the device of `images`.
///
/// # Panics
/// If `images` is not 4-D, the placement count is not `b`, `padding` is not below `h` and `w`
/// (reflection needs it), or a placement lies outside `0..=2·padding`.
pub fn crop_flip(images: &Tensor, padding: usize, placements: &[Placement]) -> Tensor {
    let [b, c, h, w] = images.size()[..] else {
        panic!(
            "crop_flip: images must be [b, c, h, w], got {:?}",
            images.size()
        )
    };
    assert_eq!(
        placements.len() as i64,
        b,
        "crop_flip: one placement per image"
    );
    let p = padding as i64;
    assert!(
        p < h && p < w,
        "crop_flip: padding {p} must be below {h} × {w}"
    );
    assert!(
        placements
            .iter()
            .all(|q| q.top <= 2 * padding && q.left <= 2 * padding),
        "crop_flip: placements must lie in 0..={}",
        2 * padding
    );
    let x = match images.kind() {
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16 => images.shallow_clone(),
        _ => images.to_kind(Kind::Float),
    };
    let padded = if p > 0 {
        x.reflection_pad2d([p, p, p, p])
    } else {
        x
    };
    let device = images.device();

    // Row and column indices of each window in its padded image: rows `top + i`, columns
    // `left + j`, or `left + w − 1 − j` when mirrored.
    let rows: Vec<i64> = placements
        .iter()
        .flat_map(|q| (0..h).map(move |i| q.top as i64 + i))
        .collect();
    let cols: Vec<i64> = placements
        .iter()
        .flat_map(|q| (0..w).map(move |j| q.left as i64 + if q.flip { w - 1 - j } else { j }))
        .collect();
    let rows = Tensor::from_slice(&rows)
        .view([b, 1, h, 1])
        .to_device(device);
    let cols = Tensor::from_slice(&cols)
        .view([b, 1, 1, w])
        .to_device(device);
    padded
        .gather(2, &rows.expand([b, c, h, w + 2 * p], false), false)
        .gather(3, &cols.expand([b, c, h, w], false), false)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// A second implementation, pixel by pixel: the padded coordinate `r` of an `n`-long axis
    /// reflects to `|r − p|` below 0 and `2(n − 1) − (r − p)` past the end.
    fn reference(
        img: &[f32],
        (c, h, w): (usize, usize, usize),
        p: usize,
        q: Placement,
    ) -> Vec<f32> {
        let reflect = |r: usize, n: usize| {
            let r = r as i64 - p as i64;
            let n = n as i64;
            (if r < 0 {
                -r
            } else if r >= n {
                2 * (n - 1) - r
            } else {
                r
            }) as usize
        };
        let mut out = Vec::with_capacity(c * h * w);
        for ch in 0..c {
            for i in 0..h {
                for j in 0..w {
                    let jj = if q.flip { w - 1 - j } else { j };
                    let (y, x) = (reflect(q.top + i, h), reflect(q.left + jj, w));
                    out.push(img[(ch * h + y) * w + x]);
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_pixelwise_reference() {
        // Oracle: `reference` above, for every placement of a 2-channel 5 × 6 image padded by
        // 3 (offsets 0..=6, both flips), on u8 and f32 input.
        let (c, h, w, p) = (2usize, 5usize, 6usize, 3usize);
        let img: Vec<u8> = (0..(c * h * w) as u32)
            .map(|v| (v * 7 % 251) as u8)
            .collect();
        let img_f: Vec<f32> = img.iter().map(|&v| f32::from(v)).collect();
        let mut placements = Vec::new();
        for top in 0..=2 * p {
            for left in 0..=2 * p {
                for flip in [false, true] {
                    placements.push(Placement { top, left, flip });
                }
            }
        }
        let n = placements.len();
        let batch: Vec<u8> = img.iter().copied().cycle().take(n * img.len()).collect();
        let dims = [n as i64, c as i64, h as i64, w as i64];
        for input in [
            Tensor::from_slice(&batch).view(dims),
            Tensor::from_slice(&batch).view(dims).to_kind(Kind::Float),
        ] {
            let out = crop_flip(&input, p, &placements);
            assert_eq!(out.size(), dims.to_vec());
            assert_eq!(out.kind(), Kind::Float);
            for (k, q) in placements.iter().enumerate() {
                let got = Vec::<f32>::try_from(out.get(k as i64).flatten(0, -1)).unwrap();
                assert_eq!(got, reference(&img_f, (c, h, w), p, *q), "{q:?}");
            }
        }
    }

    #[test]
    fn placements_cover_the_range_and_repeat_with_the_seed() {
        // 4000 draws with p = 4: every offset 0..=8 appears, flips are near half (a binomial
        // with σ ≈ 32 around 2000), and a generator with the same seed repeats the sequence.
        let draw = |seed| draw_placements(&mut ChaCha8Rng::seed_from_u64(seed), 4000, 4);
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        for offset in 0..=8 {
            assert!(a.iter().any(|q| q.top == offset) && a.iter().any(|q| q.left == offset));
        }
        assert!(a.iter().all(|q| q.top <= 8 && q.left <= 8));
        let flips = a.iter().filter(|q| q.flip).count();
        assert!((1850..2150).contains(&flips), "{flips}");
    }
}
