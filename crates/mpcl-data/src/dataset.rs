//! In-memory labelled image sets.

use std::path::Path;

use crate::DataError;

/// Which part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split.
    Test,
    /// Images without labels: STL-10's 100 000 unlabeled images.
    Unlabeled,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Train => "train",
            Self::Test => "test",
            Self::Unlabeled => "unlabeled",
        })
    }
}

/// Labelled `u8` images stored contiguously as `[n, channels, height, width]`.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// The pixels, `n · channels · height · width` bytes, channel planes per image, rows
    /// top to bottom, each row left to right.
    pub pixels: Vec<u8>,
    /// One label per image, in `0..classes`; empty for an unlabeled split.
    pub labels: Vec<u16>,
    /// Channels per image.
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// The number of classes.
    pub classes: usize,
}

impl ImageSet {
    /// The number of images.
    pub fn len(&self) -> usize {
        match self.image_len() {
            0 => self.labels.len(),
            len => self.pixels.len() / len,
        }
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every image has a label (false for an unlabeled split).
    pub fn is_labeled(&self) -> bool {
        self.labels.len() == self.len()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.pixels[i * len..(i + 1) * len]
    }

    /// The first `n` images (all of them when `n` is 0 or larger than the set).
    pub fn truncated(mut self, n: usize) -> Self {
        if n > 0 && n < self.len() {
            self.labels.truncate(n);
            self.pixels.truncate(n * self.image_len());
        }
        self
    }

    /// The images as `f32` in `[0, 1]`, one row of `channels · height · width` values each.
    pub fn to_unit_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
    }
}

/// Labels in `0..classes` from their bytes on disk, where they count from `first` (0, or 1
/// for STL-10); `offset(i)` is the byte offset of label `i` in `path`, for the error.
///
/// # Errors
/// [`DataError::Format`] naming the file and the offset of the first label out of range.
pub(crate) fn check_labels(
    path: &Path,
    raw: &[u8],
    first: u8,
    classes: usize,
    offset: impl Fn(usize) -> u64,
) -> Result<Vec<u16>, DataError> {
    raw.iter()
        .enumerate()
        .map(|(i, &b)| match b.checked_sub(first) {
            Some(l) if usize::from(l) < classes => Ok(u16::from(l)),
            _ => Err(DataError::Format {
                path: path.to_owned(),
                offset: offset(i),
                what: format!(
                    "label {b} is not a class ({first}..{})",
                    usize::from(first) + classes
                ),
            }),
        })
        .collect()
}
