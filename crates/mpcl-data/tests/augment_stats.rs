//! Statistical checks of the random draws against the laws torchvision samples from.
//!
//! Every tolerance comes from the sample size: Kolmogorov–Smirnov distances are compared with
//! the asymptotic critical value 1.95/√n (level 0.001), frequencies with 4.5 binomial
//! standard deviations √(p(1−p)/n) (two-sided level ≈ 7·10⁻⁶), and the permutation
//! counts with the χ² quantile. The generators are seeded, so each test is deterministic;
//! the levels say how unlikely a failure of a correct sampler would be for an arbitrary seed.

use mpcl_data::augment::{Pipeline, ViewKey, ViewParams, crop_box};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const N: usize = 20_000;

/// The Kolmogorov–Smirnov critical value at level 0.001 for `n` samples.
fn ks_critical(n: usize) -> f64 {
    1.95 / (n as f64).sqrt()
}

/// The Kolmogorov–Smirnov distance between `xs` and the uniform law on `[lo, hi]`.
fn ks_uniform(mut xs: Vec<f64>, lo: f64, hi: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// Asserts that `hits` of `n` trials agree with probability `p` within 4.5 standard
/// deviations.
fn assert_frequency(name: &str, hits: usize, n: usize, p: f64) {
    let freq = hits as f64 / n as f64;
    let tol = 4.5 * (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (freq - p).abs() <= tol,
        "{name}: frequency {freq} vs p = {p} (±{tol})"
    );
}

fn draws(p: &Pipeline, dims: (usize, usize)) -> Vec<ViewParams> {
    (0..N as u64)
        .map(|index| {
            let key = ViewKey {
                seed: 11,
                epoch: 2,
                index,
                view: index % 2,
            };
            p.draw(&mut key.rng(), dims)
        })
        .collect()
}

#[test]
fn crop_area_and_ratio_follow_the_sampling_law() {
    // With scale [0.08, 0.5] every attempt fits a 1000×1000 image (the widest side is
    // √(0.5·4/3)·1000 ≈ 816), so the first attempt is taken: the area fraction is uniform on
    // [0.08, 0.5] and the log aspect ratio uniform on [ln 3/4, ln 4/3]. Rounding the sides to
    // whole pixels moves each value by at most ~0.2 % of its range, added to the tolerance.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (ratio, scale) = ([0.75f64, 4.0 / 3.0], [0.08, 0.5]);
    let boxes: Vec<_> = (0..N)
        .map(|_| crop_box(&mut rng, (1000, 1000), scale, ratio))
        .collect();
    let areas = boxes.iter().map(|b| (b.2 * b.3) as f64 / 1e6).collect();
    let logs = boxes
        .iter()
        .map(|b| (b.3 as f64 / b.2 as f64).ln())
        .collect();
    let rounding = 0.005;
    let d = ks_uniform(areas, scale[0], scale[1]);
    assert!(d < ks_critical(N) + rounding, "area KS distance {d}");
    let d = ks_uniform(logs, ratio[0].ln(), ratio[1].ln());
    assert!(d < ks_critical(N) + rounding, "log-ratio KS distance {d}");
    // Positions are uniform over the free range: the mean of top/(1000 − h) is ½.
    let pos: f64 = boxes
        .iter()
        .map(|b| b.0 as f64 / (1000 - b.2) as f64)
        .sum::<f64>()
        / N as f64;
    assert!(
        (pos - 0.5).abs() < 4.5 * (1.0f64 / 12.0 / N as f64).sqrt(),
        "{pos}"
    );
}

#[test]
fn ten_failed_attempts_fall_back_to_the_whole_image() {
    // Scale [0.9, 1] and ratio [3/4, 4/3] on a square: an attempt (s, r) fits when s·r ≤ 1 and
    // s/r ≤ 1, i.e. |ln r| ≤ −ln s. With ln r uniform on ±ln 4/3 and s uniform on [0.9, 1]:
    //   p = E[−ln s] / ln 4/3,
    //   E[−ln s] = 10·∫₀.₉¹ −ln s ds = 10·(0.1 + 0.9 ln 0.9) = 0.051 75
    // so p = 0.179 9, and the fallback (the whole image, its ratio 1 being in range) follows
    // ten misses: (1 − p)¹⁰ = 0.137 7. A 10 000-pixel side makes rounding negligible.
    let e_log = 10.0 * (0.1 + 0.9 * 0.9f64.ln());
    let p_fit = e_log / (4.0f64 / 3.0).ln();
    let p_fallback = (1.0 - p_fit).powi(10);
    assert!((p_fallback - 0.1377).abs() < 1e-3, "{p_fallback}");
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let side = 10_000;
    let fallbacks = (0..N)
        .filter(|_| {
            crop_box(&mut rng, (side, side), [0.9, 1.0], [0.75, 4.0 / 3.0]) == (0, 0, side, side)
        })
        .count();
    assert_frequency("fallback", fallbacks, N, p_fallback);
}

#[test]
fn jitter_factors_are_uniform_on_torchvisions_ranges() {
    // Strength 0.4 → brightness, contrast and saturation factors uniform on [0.6, 1.4]; hue
    // 0.1 → shifts uniform on [−0.1, 0.1]; strength 1.5 clips the lower end at 0.
    let p = Pipeline {
        jitter_p: 1.0,
        brightness: 0.4,
        contrast: 0.4,
        saturation: 1.5,
        hue: 0.1,
        ..Pipeline::default()
    };
    let jitters: Vec<_> = draws(&p, (32, 32))
        .into_iter()
        .map(|v| v.jitter.expect("jitter_p = 1"))
        .collect();
    let take =
        |f: fn(&mpcl_data::augment::Jitter) -> f64| -> Vec<f64> { jitters.iter().map(f).collect() };
    let b = take(|j| f64::from(j.brightness.unwrap()));
    let c = take(|j| f64::from(j.contrast.unwrap()));
    let s = take(|j| f64::from(j.saturation.unwrap()));
    let h = take(|j| j.hue.unwrap());
    for (name, xs, lo, hi) in [
        ("brightness", b, 0.6, 1.4),
        ("contrast", c, 0.6, 1.4),
        ("saturation", s, 0.0, 2.5),
        ("hue", h, -0.1, 0.1),
    ] {
        let within = xs.iter().all(|&x| (lo..=hi).contains(&x));
        assert!(within, "{name} outside [{lo}, {hi}]");
        let d = ks_uniform(xs, lo, hi);
        assert!(d < ks_critical(N), "{name}: KS distance {d}");
    }
    // Zero strength draws no factor, as torchvision's `None`.
    let off = Pipeline {
        jitter_p: 1.0,
        ..Pipeline::default()
    };
    let j = off
        .draw(&mut ChaCha8Rng::seed_from_u64(1), (8, 8))
        .jitter
        .unwrap();
    assert!(j.saturation.is_none() && j.hue.is_none() && j.brightness.is_some());
}

#[test]
fn jitter_orders_are_uniform_permutations() {
    // 24 orders, each with probability 1/24: Pearson's χ² with 23 degrees of freedom stays
    // below 49.7 (its 0.001 upper quantile) for a uniform sampler.
    let p = Pipeline {
        jitter_p: 1.0,
        ..Pipeline::default()
    };
    let mut counts = std::collections::HashMap::new();
    for v in draws(&p, (32, 32)) {
        let order = v.jitter.unwrap().order;
        let mut sorted = order;
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3]);
        *counts.entry(order).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 24);
    let expected = N as f64 / 24.0;
    let chi2: f64 = counts
        .values()
        .map(|&k| (k as f64 - expected).powi(2) / expected)
        .sum();
    assert!(chi2 < 49.7, "χ² = {chi2}");
}

#[test]
fn each_random_step_fires_with_its_probability() {
    let p = Pipeline {
        flip_p: 0.5,
        jitter_p: 0.8,
        grayscale_p: 0.2,
        blur_p: 0.3,
        blur_sigma: [0.1, 2.0],
        solarize_p: 0.1,
        ..Pipeline::default()
    };
    let views = draws(&p, (32, 32));
    let count = |f: fn(&ViewParams) -> bool| views.iter().filter(|v| f(v)).count();
    assert_frequency("flip", count(|v| v.flip), N, 0.5);
    assert_frequency("jitter", count(|v| v.jitter.is_some()), N, 0.8);
    assert_frequency("grayscale", count(|v| v.grayscale), N, 0.2);
    assert_frequency("blur", count(|v| v.blur_sigma.is_some()), N, 0.3);
    assert_frequency("solarize", count(|v| v.solarize), N, 0.1);
    // The blur's σ is uniform on [0.1, 2.0] (torchvision's default range).
    let sigmas: Vec<f64> = views
        .iter()
        .filter_map(|v| v.blur_sigma.map(f64::from))
        .collect();
    let n = sigmas.len();
    let d = ks_uniform(sigmas, 0.1, 2.0);
    assert!(d < ks_critical(n), "σ KS distance {d}");
}
