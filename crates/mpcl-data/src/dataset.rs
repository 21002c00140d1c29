//! In-memory labelled image sets.

/// Which part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

/// Labelled `u8` images stored contiguously as `[n, channels, height, width]`.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// The pixels, `n · channels · height · width` bytes, channel planes per image.
    pub pixels: Vec<u8>,
    /// One label per image, in `0..classes`.
    pub labels: Vec<u8>,
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
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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
