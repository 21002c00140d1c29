//! Unit tests of the pipeline: crop sampling edge cases, keys, normalisation, validation and
//! the `[augment]` tables. Distributions are tested in `tests/augment_stats.rs`, fidelity to
//! torchvision in `tests/augment_fixtures.rs`.

use super::*;

fn key(view: u64) -> ViewKey {
    ViewKey {
        seed: 7,
        epoch: 0,
        index: 3,
        view,
    }
}

#[test]
fn impossible_scale_falls_back_to_the_centre_crop() {
    // Ratio range [2, 3] on a square image: no box of ratio ≥ 2 and area 784 fits, so the
    // fallback keeps the width and takes height = round(28 / 2) = 14, centred: top 7.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    assert_eq!(
        crop_box(&mut rng, (28, 28), [1.0, 1.0], [2.0, 3.0]),
        (7, 0, 14, 28)
    );
}

#[test]
fn the_fallback_rounds_half_to_even_as_python() {
    // Width 5 and ratio 2: height round(2.5) = 2 under Python's rule (3 rounding half away
    // from zero); top (5 − 2) div 2 = 1.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    assert_eq!(
        crop_box(&mut rng, (5, 5), [1.0, 1.0], [2.0, 3.0]),
        (1, 0, 2, 5)
    );
}

#[test]
fn views_depend_only_on_their_key() {
    let aug = Pipeline::default();
    let img: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
    let draw = |k| {
        let mut out = vec![0.0; 784];
        aug.view(&img, (1, 28, 28), k, &mut out);
        out
    };
    assert_eq!(draw(key(0)), draw(key(0)));
    assert_ne!(draw(key(0)), draw(key(1)));
    assert_ne!(draw(key(0)), draw(ViewKey { epoch: 1, ..key(0) }));
    assert_ne!(draw(key(0)), draw(ViewKey { seed: 8, ..key(0) }));
}

#[test]
fn keys_are_not_aliased() {
    // The old stream layout (epoch ≪ 40 ⊕ index ≪ 8 ⊕ view) mapped (index 1, view 0) and
    // (index 0, view 256) to one stream; the 32-byte seed keeps every field apart.
    let a = ViewKey {
        index: 1,
        view: 0,
        ..key(0)
    };
    let b = ViewKey {
        index: 0,
        view: 256,
        ..key(0)
    };
    assert_ne!(a.rng().random::<u64>(), b.rng().random::<u64>());
}

#[test]
fn no_op_settings_only_normalise() {
    let aug = Pipeline {
        crop_scale: [1.0, 1.0],
        crop_ratio: [1.0, 1.0],
        flip_p: 0.0,
        jitter_p: 0.0,
        mean: vec![0.5],
        std: vec![0.5],
        ..Pipeline::default()
    };
    let img = [0u8, 255, 51, 204];
    let mut out = [0.0; 4];
    aug.view(&img, (1, 2, 2), key(0), &mut out);
    // (p/255 − 0.5)/0.5 by hand: −1, 1, −0.6, 0.6.
    let expected = [-1.0, 1.0, -0.6, 0.6];
    for (o, e) in out.iter().zip(expected) {
        assert!((o - e).abs() < 1e-6, "{out:?}");
    }
}

#[test]
fn normalisation_is_per_channel() {
    let aug = Pipeline {
        mean: vec![0.0, 0.5, 1.0],
        std: vec![1.0, 0.5, 0.25],
        ..Pipeline::default()
    };
    let mut out = [0.0; 3];
    aug.normalize(&[255, 255, 0], 1, &mut out);
    // (1 − 0)/1 = 1, (1 − 0.5)/0.5 = 1, (0 − 1)/0.25 = −4.
    for (o, e) in out.iter().zip([1.0, 1.0, -4.0]) {
        assert!((o - e).abs() < 1e-6, "{out:?}");
    }
}

#[test]
fn validate_names_the_field() {
    let cases = [
        (
            Pipeline {
                flip_p: 1.5,
                ..Pipeline::default()
            },
            "flip_p = 1.5",
        ),
        (
            Pipeline {
                crop_scale: [0.5, 0.2],
                ..Pipeline::default()
            },
            "crop_scale",
        ),
        (
            Pipeline {
                hue: 0.6,
                ..Pipeline::default()
            },
            "hue = 0.6",
        ),
        (
            Pipeline {
                blur_kernel: 4,
                ..Pipeline::default()
            },
            "blur_kernel = 4",
        ),
        (
            Pipeline {
                std: vec![0.3, 0.0],
                ..Pipeline::default()
            },
            "std = [0.3, 0.0]",
        ),
    ];
    for (p, expected) in cases {
        let err = p.validate().unwrap_err();
        assert!(err.starts_with(expected), "{err}");
    }
    assert!(Pipeline::default().validate().is_ok());
}

#[test]
fn image_checks_name_what_does_not_fit() {
    let p = Pipeline {
        mean: vec![0.1, 0.2],
        ..Pipeline::default()
    };
    assert!(
        p.check_images((3, 32, 32))
            .unwrap_err()
            .starts_with("mean = [0.1, 0.2]")
    );
    let p = Pipeline {
        blur_p: 0.5,
        blur_kernel: 17,
        size: 8,
        ..Pipeline::default()
    };
    assert!(
        p.check_images((1, 28, 28))
            .unwrap_err()
            .starts_with("blur_kernel = 17")
    );
    assert!(Pipeline::default().check_images((4, 8, 8)).is_err());
    assert!(Pipeline::default().check_images((1, 28, 28)).is_ok());
}

const BYOL: &str = r#"
size = 32
mean = [0.49, 0.48, 0.45]
std = [0.25, 0.24, 0.26]
blur_p = 1.0
[view1]
blur_p = 0.1
solarize_p = 0.2
[multicrop]
count = 4
size = 16
crop_scale = [0.05, 0.14]
"#;

#[test]
fn view_tables_change_only_their_keys() {
    let cfg: AugmentConfig = toml::from_str(BYOL).unwrap();
    cfg.validate().unwrap();
    let p = cfg.pipelines(2).unwrap();
    assert_eq!(p.len(), 6);
    assert_eq!((p[0].blur_p, p[0].solarize_p), (1.0, 0.0));
    assert_eq!((p[1].blur_p, p[1].solarize_p, p[1].size), (0.1, 0.2, 32));
    assert_eq!(p[1].mean, p[0].mean);
    assert!(
        p[2..]
            .iter()
            .all(|q| q.size == 16 && q.crop_scale == [0.05, 0.14])
    );
    assert_eq!(p[5].blur_p, 1.0);
    // The written form reads back to the same pipelines.
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(toml::from_str::<AugmentConfig>(&text).unwrap(), cfg);
}

#[test]
fn bad_tables_are_named() {
    let err = toml::from_str::<AugmentConfig>("[view1]\nblur_q = 1.0\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("view1.blur_q: unknown field `blur_q`"),
        "{err}"
    );
    // Keys of the base table and indices into arrays are named too.
    let err = toml::from_str::<AugmentConfig>("[multicrop]\ncrop_scale = [0.1, true]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("multicrop.crop_scale[1]: invalid type: boolean `true`"),
        "{err}"
    );
    let err = toml::from_str::<AugmentConfig>("[view1]\nflip_p = 0.1\n[view01]\nflip_p = 0.9\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("view01: write view1"), "{err}");
    let err = toml::from_str::<AugmentConfig>("view1 = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("view1: expected a table"), "{err}");
    let cfg: AugmentConfig = toml::from_str("[view2]\nflip_p = 0.0\n").unwrap();
    assert!(
        cfg.pipelines(2)
            .unwrap_err()
            .starts_with("view2: there are only 2 views")
    );
    let cfg: AugmentConfig = toml::from_str("[multicrop]\ncount = 2\n").unwrap();
    assert!(
        cfg.validate()
            .unwrap_err()
            .starts_with("multicrop.size = 0")
    );
    let cfg: AugmentConfig = toml::from_str("[view0]\nflip_p = 3.0\n").unwrap();
    assert!(cfg.validate().unwrap_err().starts_with("view0.flip_p = 3"));
}
