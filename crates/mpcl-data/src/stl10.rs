//! STL-10, binary version: 96×96 RGB images, 5000 labelled training images, 8000 test images
//! and 100 000 unlabeled ones, 10 classes.
//!
//! `*_X.bin` holds the images one after the other, each as three 96×96 planes (R, G, B)
//! stored column-major: byte `c·9216 + x·96 + y` is the pixel in row `y`, column `x`. The
//! reader transposes every plane to the row-major layout of [`ImageSet`]. `*_y.bin` holds
//! one label byte per image, counting from 1 (1..=10 on disk, 0..10 in memory).

use std::path::Path;

use crate::archive::Archive;
use crate::dataset::check_labels;
use crate::{DataError, ImageSet};

/// Image side in pixels.
pub const SIDE: usize = 96;
/// Bytes per image: 3 planes of 96×96.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// The number of classes.
pub const CLASSES: usize = 10;

/// The official STL-10 binary archive (docs/science.md §7).
pub const STL10: Archive = Archive {
    url: "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    file: "stl10_binary.tar.gz",
    md5: "91f7769df0f17e558f3565bffb0c7dfb",
    top: "stl10_binary",
    files: &[
        "train_X.bin",
        "train_y.bin",
        "test_X.bin",
        "test_y.bin",
        "unlabeled_X.bin",
    ],
    // 5000, 8000 and 100 000 images of 3 × 96 × 96 bytes; one label byte per image.
    sizes: &[138_240_000, 5000, 221_184_000, 8000, 2_764_800_000],
};

/// Reads an image file (`*_X.bin`) and, when given, its labels (`*_y.bin`).
///
/// # Errors
/// [`DataError::Io`] for unreadable files; [`DataError::Format`] naming the file and offset
/// for an empty or truncated image file, a label count that differs from the image count, or
/// a label outside 1..=10.
pub fn read(images: &Path, labels: Option<&Path>) -> Result<ImageSet, DataError> {
    let bytes = std::fs::read(images).map_err(|e| DataError::io(images, e))?;
    let format = |path: &Path, offset: usize, what: String| DataError::Format {
        path: path.to_owned(),
        offset: offset as u64,
        what,
    };
    if bytes.is_empty() {
        return Err(format(images, 0, "empty file: no STL-10 image".into()));
    }
    let whole = bytes.len() / IMAGE_BYTES * IMAGE_BYTES;
    if whole != bytes.len() {
        let have = bytes.len() - whole;
        let what = format!("truncated image: {have} of {IMAGE_BYTES} bytes");
        return Err(format(images, whole, what));
    }
    let n = bytes.len() / IMAGE_BYTES;
    let labels = match labels {
        None => Vec::new(),
        Some(path) => {
            let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
            if raw.len() != n {
                let what = format!(
                    "{} labels for the {n} images of {}",
                    raw.len(),
                    images.display()
                );
                return Err(format(path, raw.len().min(n), what));
            }
            check_labels(path, &raw, 1, CLASSES, |i| i as u64)?
        }
    };
    let plane = SIDE * SIDE;
    let mut pixels = vec![0u8; bytes.len()];
    for (out, src) in pixels
        .chunks_exact_mut(plane)
        .zip(bytes.chunks_exact(plane))
    {
        for x in 0..SIDE {
            for y in 0..SIDE {
                out[y * SIDE + x] = src[x * SIDE + y];
            }
        }
    }
    Ok(ImageSet {
        pixels,
        labels,
        channels: 3,
        height: SIDE,
        width: SIDE,
        classes: CLASSES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image whose pixel (c, row y, col x) is `(c + 2y + 3x) mod 256`, stored column-major
    /// as on disk: byte c·9216 + x·96 + y.
    fn column_major() -> Vec<u8> {
        let mut out = vec![0u8; IMAGE_BYTES];
        for c in 0..3 {
            for x in 0..SIDE {
                for y in 0..SIDE {
                    out[c * SIDE * SIDE + x * SIDE + y] = ((c + 2 * y + 3 * x) % 256) as u8;
                }
            }
        }
        out
    }

    #[test]
    fn transposes_planes_and_shifts_labels() {
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = (
            dir.path().join("train_X.bin"),
            dir.path().join("train_y.bin"),
        );
        std::fs::write(&x, [column_major(), vec![5; IMAGE_BYTES]].concat()).unwrap();
        std::fs::write(&y, [10, 1]).unwrap();
        let set = read(&x, Some(&y)).unwrap();
        assert_eq!((set.len(), set.labels.clone()), (2, vec![9, 0]));
        // The shape configs are checked against before any data is loaded.
        let shape = (set.channels, set.height, set.width);
        assert_eq!(crate::Dataset::Stl10.image_shape(), Some(shape));
        // Row-major after the transpose: (c, y, x) at c·9216 + 96y + x holds c + 2y + 3x.
        let img = set.image(0);
        for (c, y, x) in [(0, 0, 1), (0, 1, 0), (1, 5, 7), (2, 95, 3)] {
            assert_eq!(
                usize::from(img[c * 9216 + 96 * y + x]),
                (c + 2 * y + 3 * x) % 256
            );
        }
        let unlabeled = read(&x, None).unwrap();
        assert!(!unlabeled.is_labeled() && unlabeled.len() == 2);
    }

    #[test]
    fn rejects_truncation_label_count_and_label_values() {
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = (dir.path().join("test_X.bin"), dir.path().join("test_y.bin"));
        std::fs::write(&x, &column_major()[..1000]).unwrap();
        let msg = read(&x, None).unwrap_err().to_string();
        assert!(
            msg.contains("test_X.bin") && msg.contains("offset 0"),
            "{msg}"
        );
        assert!(msg.contains("1000 of 27648"), "{msg}");
        std::fs::write(&x, column_major()).unwrap();
        std::fs::write(&y, [1, 2]).unwrap();
        let msg = read(&x, Some(&y)).unwrap_err().to_string();
        assert!(
            msg.contains("test_y.bin") && msg.contains("2 labels for the 1"),
            "{msg}"
        );
        // 0 is not a class on disk, where labels count from 1.
        std::fs::write(&y, [0]).unwrap();
        let msg = read(&x, Some(&y)).unwrap_err().to_string();
        assert!(msg.contains("label 0 is not a class (1..11)"), "{msg}");
        assert!(msg.contains("offset 0"), "{msg}");
    }
}
