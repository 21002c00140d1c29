//! Image folders written by the test with the `image` crate's encoders: label order from the
//! class list or sorted names, PNG and JPEG decoding, and the errors for bad layouts.

use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};
use mpcl_data::folder::ImageFolder;
use mpcl_data::{Dataset, DatasetName, Split, Status};

/// A `w`×`h` image whose pixel (x, y) is (x, y, v).
fn img(w: u32, h: u32, v: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, v]))
}

fn save(path: &Path, image: &RgbImage, format: ImageFormat) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save_with_format(path, format).unwrap();
}

/// train/{cat,dog,emu} with 2, 1 and 1 PNG images, val/{cat,dog,emu} with one each (a JPEG
/// for dog); every image 4×3 and its blue channel names its class and index.
fn layout(root: &Path) {
    let t = root.join("train");
    save(&t.join("cat/b.png"), &img(4, 3, 11), ImageFormat::Png);
    save(&t.join("cat/a.png"), &img(4, 3, 10), ImageFormat::Png);
    save(&t.join("dog/a.png"), &img(4, 3, 20), ImageFormat::Png);
    save(&t.join("emu/a.png"), &img(4, 3, 30), ImageFormat::Png);
    std::fs::write(t.join("cat/notes.txt"), "not an image").unwrap();
    let v = root.join("val");
    save(&v.join("cat/x.png"), &img(4, 3, 15), ImageFormat::Png);
    save(&v.join("dog/x.JPG"), &img(4, 3, 25), ImageFormat::Jpeg);
    save(&v.join("emu/x.png"), &img(4, 3, 35), ImageFormat::Png);
}

fn folder(root: &Path, list: Option<&Path>) -> ImageFolder {
    ImageFolder {
        root: root.to_owned(),
        class_list: list.map(Path::to_owned),
    }
}

#[test]
fn sorted_names_give_labels_and_planes_are_rgb() {
    let root = tempfile::tempdir().unwrap();
    layout(root.path());
    let train = folder(root.path(), None).load(Split::Train).unwrap();
    assert_eq!(
        (train.len(), train.channels, train.height, train.width),
        (4, 3, 3, 4)
    );
    assert_eq!(train.classes, 3);
    // Sorted classes cat, dog, emu; files sorted inside a class (a.png before b.png).
    assert_eq!(train.labels, vec![0, 0, 1, 2]);
    let first = train.image(0);
    // Planes R, G, B of 3×4: R(x, y) = x, G = y, B = 10 for cat/a.png.
    assert_eq!(first[3], 3, "R at row 0, column 3");
    assert_eq!(first[12 + 4 * 2], 2, "G at row 2, column 0");
    assert!(first[24..].iter().all(|&b| b == 10), "B plane");
    assert_eq!(train.image(1)[24], 11);
    let test = folder(root.path(), None).load(Split::Test).unwrap();
    assert_eq!(test.labels, vec![0, 1, 2]);
    // JPEG is lossy: the decoded blue value is near the 25 encoded.
    assert!(
        (i32::from(test.image(1)[24]) - 25).abs() <= 3,
        "{}",
        test.image(1)[24]
    );
}

#[test]
fn a_class_list_fixes_the_order_and_selects_a_subset() {
    let root = tempfile::tempdir().unwrap();
    layout(root.path());
    let list = root.path().join("classes.txt");
    std::fs::write(&list, "# subset\nemu\n\ncat\n").unwrap();
    let ds = Dataset::new(DatasetName::ImageFolder, Some(root.path()), Some(&list)).unwrap();
    let train = ds.load(Path::new("/unused"), Split::Train).unwrap();
    assert_eq!(train.classes, 2);
    assert_eq!(
        train.labels,
        vec![0, 1, 1],
        "emu first, then the two cats; dog ignored"
    );
    assert_eq!(train.image(0)[24], 30);
    assert_eq!(ds.status(Path::new("/unused")).unwrap(), Status::Present);
    // Offsets of lines: "# subset\n" is 9 bytes, "emu\n" 4, "\n" 1: "cat" at 14.
    std::fs::write(&list, "# subset\nemu\n\ncat\nemu\n").unwrap();
    let msg = ds
        .load(Path::new("/unused"), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("classes.txt") && msg.contains("offset 18"),
        "{msg}"
    );
    assert!(msg.contains("\"emu\" is listed twice"), "{msg}");
    std::fs::write(&list, "emu\nyak\n").unwrap();
    let msg = ds
        .load(Path::new("/unused"), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("\"yak\" has no folder") && msg.contains("offset 4"),
        "{msg}"
    );
}

#[test]
fn bad_images_and_layouts_are_named() {
    let root = tempfile::tempdir().unwrap();
    layout(root.path());
    let f = folder(root.path(), None);
    save(
        &root.path().join("train/dog/b.png"),
        &img(5, 3, 0),
        ImageFormat::Png,
    );
    let msg = f.load(Split::Train).unwrap_err().to_string();
    assert!(
        msg.contains("dog/b.png: 5×3 pixels") && msg.contains("4×3"),
        "{msg}"
    );
    // A truncated PNG, then no PNG at all (the decoder's message ends in a period).
    for bytes in [&b"\x89PNG\r\n\x1a\nbroken"[..], b"broken"] {
        std::fs::write(root.path().join("train/dog/b.png"), bytes).unwrap();
        let msg = f.load(Split::Train).unwrap_err().to_string();
        assert!(msg.contains("dog/b.png: cannot decode"), "{msg}");
        assert!(!msg.ends_with('.'), "{msg}");
    }
    std::fs::remove_file(root.path().join("train/dog/b.png")).unwrap();
    std::fs::remove_file(root.path().join("train/dog/a.png")).unwrap();
    let msg = f.load(Split::Train).unwrap_err().to_string();
    assert!(msg.contains("dog: no PNG or JPEG image"), "{msg}");
    assert!(f.load(Split::Unlabeled).is_err());
    let empty = tempfile::tempdir().unwrap();
    let ds = Dataset::new(DatasetName::ImageFolder, Some(empty.path()), None).unwrap();
    assert_eq!(ds.status(Path::new("/unused")).unwrap(), Status::Missing);
    let msg = ds
        .load(Path::new("/unused"), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no train directory"), "{msg}");
    assert!(Dataset::new(DatasetName::ImageFolder, None, None).is_err());
    assert!(Dataset::new(DatasetName::Cifar10, Some(empty.path()), None).is_err());
}
