//! Golden fixtures: torchvision 0.28's PIL path against ours, within ±1 per value.
//!
//! `tests/fixtures/augment.json` is written by `python/augment_fixtures.py` (run it with the
//! reference Python environment to regenerate): images and torchvision's outputs for fixed
//! parameters. Every case is replayed here through [`Pipeline::apply`] with the same choices
//! fixed in [`ViewParams`], so the whole path (crop, resize, flip, jitter order, grayscale,
//! blur, solarize, normalisation) is what is compared.

use mpcl_data::augment::{Interpolation, Jitter, Pipeline, ViewParams};
use serde_json::Value;

const FIXTURES: &str = include_str!("fixtures/augment.json");

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn dims(v: &Value) -> (usize, usize, usize) {
    let d: Vec<usize> = serde_json::from_value(v.clone()).expect("dims");
    (d[0], d[1], d[2])
}

/// A pipeline that only normalises with mean 0 and std 1, so that `255·out` is the image.
fn identity(size: usize) -> Pipeline {
    Pipeline {
        size,
        mean: vec![0.0],
        std: vec![1.0],
        ..Pipeline::default()
    }
}

fn nothing(h: usize, w: usize) -> ViewParams {
    ViewParams {
        crop: (0, 0, h, w),
        flip: false,
        jitter: None,
        grayscale: false,
        blur_sigma: None,
        solarize: false,
    }
}

fn jitter_only(step: u8, factor: f64) -> Jitter {
    let mut j = Jitter {
        order: [0, 1, 2, 3],
        brightness: None,
        contrast: None,
        saturation: None,
        hue: None,
    };
    match step {
        0 => j.brightness = Some(factor as f32),
        1 => j.contrast = Some(factor as f32),
        2 => j.saturation = Some(factor as f32),
        _ => j.hue = Some(factor),
    }
    j
}

fn interpolation(p: &Value) -> Interpolation {
    serde_json::from_value(p["interpolation"].clone()).expect("interpolation")
}

fn crop_params(p: &Value) -> ((usize, usize, usize, usize), usize) {
    let n = |k: &str| p[k].as_u64().expect(k) as usize;
    ((n("top"), n("left"), n("height"), n("width")), n("size"))
}

/// Our pipeline and choices for one fixture case.
fn replay(op: &str, p: &Value, (h, w): (usize, usize)) -> (Pipeline, ViewParams) {
    let mut pipe = identity(0);
    let mut params = nothing(h, w);
    let f = || p["factor"].as_f64().expect("factor");
    match op {
        "resized_crop" => {
            let (crop, size) = crop_params(p);
            pipe = Pipeline {
                interpolation: interpolation(p),
                ..identity(size)
            };
            params.crop = crop;
        }
        "flip" => params.flip = true,
        "brightness" => params.jitter = Some(jitter_only(0, f())),
        "contrast" => params.jitter = Some(jitter_only(1, f())),
        "saturation" => params.jitter = Some(jitter_only(2, f())),
        "hue" => params.jitter = Some(jitter_only(3, f())),
        "grayscale" => params.grayscale = true,
        "blur" => {
            pipe.blur_kernel = p["kernel"].as_u64().expect("kernel") as usize;
            params.blur_sigma = Some(p["sigma"].as_f64().expect("sigma") as f32);
        }
        "solarize" => {
            pipe.solarize_threshold = p["threshold"].as_u64().expect("threshold") as u8;
            params.solarize = true;
        }
        "pipeline" => {
            let (crop, size) = crop_params(&p["crop"]);
            pipe = Pipeline {
                interpolation: interpolation(&p["crop"]),
                blur_kernel: p["blur_kernel"].as_u64().expect("kernel") as usize,
                ..identity(size)
            };
            let factor = |k: &str| p[k].as_f64().expect(k);
            let order: Vec<u8> = serde_json::from_value(p["order"].clone()).expect("order");
            params = ViewParams {
                crop,
                flip: p["flip"].as_bool().expect("flip"),
                jitter: Some(Jitter {
                    order: order.try_into().expect("four steps"),
                    brightness: Some(factor("brightness") as f32),
                    contrast: Some(factor("contrast") as f32),
                    saturation: Some(factor("saturation") as f32),
                    hue: Some(factor("hue")),
                }),
                grayscale: p["grayscale"].as_bool().expect("grayscale"),
                blur_sigma: p["blur_sigma"].as_f64().map(|s| s as f32),
                solarize: !p["solarize_threshold"].is_null(),
            };
            if let Some(t) = p["solarize_threshold"].as_u64() {
                pipe.solarize_threshold = t as u8;
            }
        }
        other => panic!("unknown fixture op {other}"),
    }
    (pipe, params)
}

#[test]
fn torchvision_outputs_are_matched_within_one() {
    let doc: Value = serde_json::from_str(FIXTURES).expect("valid fixture JSON");
    let images: Vec<(Vec<u8>, (usize, usize, usize))> = doc["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|im| (bytes(im["hex"].as_str().expect("hex")), dims(&im["dims"])))
        .collect();
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 60, "only {} fixture cases", cases.len());
    let (mut values, mut off_by_one, mut failures) = (0usize, 0usize, Vec::new());
    for case in cases {
        let op = case["op"].as_str().expect("op");
        let (image, (c, h, w)) = &images[case["image"].as_u64().expect("image") as usize];
        let expected = bytes(case["hex"].as_str().expect("hex"));
        assert_eq!(dims(&case["dims"]).0, *c, "{op}: channel count changed");
        let (pipe, params) = replay(op, &case["params"], (*h, *w));
        let mut out = vec![0f32; expected.len()];
        pipe.apply(&params, image, (*c, *h, *w), &mut out);
        let ours: Vec<i32> = out.iter().map(|v| (v * 255.0).round() as i32).collect();
        let diffs: Vec<i32> = ours
            .iter()
            .zip(&expected)
            .map(|(a, &b)| (a - i32::from(b)).abs())
            .collect();
        values += diffs.len();
        off_by_one += diffs.iter().filter(|&&d| d == 1).count();
        let worst = diffs.iter().copied().max().unwrap_or(0);
        if worst > 1 {
            let bad = diffs.iter().filter(|&&d| d > 1).count();
            failures.push(format!(
                "image {} {op} {}: {bad} values off by more than 1 (worst {worst})",
                case["image"], case["params"]
            ));
        }
    }
    eprintln!(
        "{} cases, {values} values: {off_by_one} off by one, the rest exact",
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
