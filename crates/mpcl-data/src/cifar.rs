//! CIFAR-10 and CIFAR-100, binary versions: 32×32 RGB images in fixed-size records.
//!
//! A CIFAR-10 record is 1 label byte then 3072 pixel bytes (the R, G and B planes, each
//! row-major); `data_batch_1.bin` … `data_batch_5.bin` hold the 50 000 training images and
//! `test_batch.bin` the 10 000 test images, 10 000 records each. A CIFAR-100 record has two
//! label bytes, coarse (20 super-classes) then fine (100 classes), before the same 3072 bytes,
//! in `train.bin` (50 000) and `test.bin` (10 000).

use std::path::Path;

use crate::archive::Archive;
use crate::dataset::check_labels;
use crate::{DataError, ImageSet};

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Pixel bytes per record: 3 planes of 32×32.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;

/// The official CIFAR-10 binary archive (docs/science.md §7).
pub const CIFAR10: Archive = Archive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    file: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    top: "cifar-10-batches-bin",
    files: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ],
    // 10 000 records of 1 + 3072 bytes each.
    sizes: &[30_730_000; 6],
};

/// The official CIFAR-100 binary archive (docs/science.md §7).
pub const CIFAR100: Archive = Archive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    file: "cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    top: "cifar-100-binary",
    files: &["train.bin", "test.bin"],
    // 50 000 and 10 000 records of 2 + 3072 bytes.
    sizes: &[153_700_000, 30_740_000],
};

/// Which CIFAR-100 labels to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cifar100Labels {
    /// The 20 super-classes (first label byte).
    Coarse,
    /// The 100 classes (second label byte).
    Fine,
}

/// Reads CIFAR record files and concatenates them. A record is `label_classes.len()` label
/// bytes then [`IMAGE_BYTES`] pixel bytes; every label byte `j` must lie in
/// `0..label_classes[j]`, and the labels returned are those of byte `pick`.
///
/// # Errors
/// [`DataError::Io`] for unreadable files; [`DataError::Format`] naming the file and offset
/// for an empty file, a truncated record or a label out of range.
pub fn read_records(
    paths: &[impl AsRef<Path>],
    label_classes: &[usize],
    pick: usize,
) -> Result<ImageSet, DataError> {
    let record = label_classes.len() + IMAGE_BYTES;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let format = |offset: usize, what: String| DataError::Format {
            path: path.to_owned(),
            offset: offset as u64,
            what,
        };
        if bytes.is_empty() {
            return Err(format(0, "empty file: no CIFAR record".into()));
        }
        let whole = bytes.len() / record * record;
        if whole != bytes.len() {
            let have = bytes.len() - whole;
            return Err(format(
                whole,
                format!("truncated record: {have} of {record} bytes"),
            ));
        }
        for (j, &classes) in label_classes.iter().enumerate() {
            let raw: Vec<u8> = bytes.iter().skip(j).step_by(record).copied().collect();
            let checked = check_labels(path, &raw, 0, classes, |i| (i * record + j) as u64)?;
            if j == pick {
                labels.extend(checked);
            }
        }
        for rec in bytes.chunks_exact(record) {
            pixels.extend_from_slice(&rec[label_classes.len()..]);
        }
    }
    Ok(ImageSet {
        pixels,
        labels,
        channels: 3,
        height: SIDE,
        width: SIDE,
        classes: label_classes[pick],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with the given label bytes and every pixel byte equal to `fill`.
    fn record(labels: &[u8], fill: u8) -> Vec<u8> {
        let mut r = labels.to_vec();
        r.extend(std::iter::repeat_n(fill, IMAGE_BYTES));
        r
    }

    #[test]
    fn reads_cifar10_records_plane_by_plane() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        // One record whose pixel byte k is k mod 251: the R plane is bytes 0..1024, so the
        // first G pixel is 1024 mod 251 = 20.
        let mut rec = vec![7u8];
        rec.extend((0..IMAGE_BYTES).map(|k| (k % 251) as u8));
        rec.extend(record(&[3], 9));
        std::fs::write(&path, &rec).unwrap();
        let set = read_records(&[&path], &[10], 0).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.classes),
            (2, 3, 32, 10)
        );
        assert_eq!(set.labels, vec![7, 3]);
        assert_eq!(set.image(0)[SIDE * SIDE], 20);
        assert_eq!(set.image(1), &[9; IMAGE_BYTES][..]);
    }

    #[test]
    fn cifar100_picks_coarse_or_fine_and_checks_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.bin");
        let bytes = [record(&[19, 99], 1), record(&[0, 42], 2)].concat();
        std::fs::write(&path, &bytes).unwrap();
        let coarse = read_records(&[&path], &[20, 100], 0).unwrap();
        assert_eq!((coarse.labels.clone(), coarse.classes), (vec![19, 0], 20));
        let fine = read_records(&[&path], &[20, 100], 1).unwrap();
        assert_eq!((fine.labels.clone(), fine.classes), (vec![99, 42], 100));
        // A fine label of 100 in the second record: offset 3074 + 1.
        let bad = [record(&[19, 99], 1), record(&[0, 100], 2)].concat();
        std::fs::write(&path, &bad).unwrap();
        let msg = read_records(&[&path], &[20, 100], 0)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("train.bin") && msg.contains("label 100"),
            "{msg}"
        );
        assert!(msg.contains("offset 3075"), "{msg}");
    }

    #[test]
    fn truncated_and_empty_files_name_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test_batch.bin");
        let mut bytes = [record(&[1], 0), record(&[2], 0)].concat();
        bytes.truncate(3073 + 100);
        std::fs::write(&path, &bytes).unwrap();
        let msg = read_records(&[&path], &[10], 0).unwrap_err().to_string();
        // The second record starts at 3073 and has 100 of its 3073 bytes.
        assert!(
            msg.contains("test_batch.bin") && msg.contains("offset 3073"),
            "{msg}"
        );
        assert!(msg.contains("100 of 3073"), "{msg}");
        std::fs::write(&path, b"").unwrap();
        let msg = read_records(&[&path], &[10], 0).unwrap_err().to_string();
        assert!(
            msg.contains("empty file") && msg.contains("offset 0"),
            "{msg}"
        );
        let msg = read_records(&[dir.path().join("nope.bin")], &[10], 0).unwrap_err();
        assert!(msg.to_string().contains("nope.bin"), "{msg}");
    }
}
