//! Image folders: one sub-directory per class holding PNG or JPEG files, the layout of
//! ImageNet-100-style subsets.
//!
//! ```text
//! <root>/train/<class>/<image>.{png,jpg,jpeg}
//! <root>/val/<class>/…      (or <root>/test/<class>/…)
//! ```
//!
//! Labels follow the class list file when one is given (one folder name per line; blank
//! lines and lines starting with `#` are skipped; folders it does not name are ignored, so a
//! list selects a subset), else the sorted folder names. Files with other extensions and
//! hidden entries are ignored. Every image is decoded to RGB and all must share one size:
//! nothing is resized here, so resize a subset beforehand (for instance to 64×64 or 96×96).
//! There is no checksum to verify: [`ImageFolder::load`] checks that every class has images
//! and that every image decodes.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::{DataError, ImageSet, Split};

/// An image-folder data set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageFolder {
    /// The directory holding `train/` and `val/` (or `test/`).
    pub root: PathBuf,
    /// A file naming the class folders in label order; sorted folder names when absent.
    pub class_list: Option<PathBuf>,
}

/// The image extensions read, compared case-insensitively.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

impl ImageFolder {
    /// The directory of a split: `train/` for [`Split::Train`], `val/` or else `test/` for
    /// [`Split::Test`].
    ///
    /// # Errors
    /// [`DataError::Invalid`] for [`Split::Unlabeled`] or when the directory is absent.
    pub fn split_dir(&self, split: Split) -> Result<PathBuf, DataError> {
        let names: &[&str] = match split {
            Split::Train => &["train"],
            Split::Test => &["val", "test"],
            Split::Unlabeled => {
                return Err(DataError::Invalid(
                    "an image folder has no unlabeled split (splits: train, test)".into(),
                ));
            }
        };
        let found = names.iter().map(|n| self.root.join(n)).find(|p| p.is_dir());
        found.ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: no {} directory for the {split} split",
                self.root.display(),
                names.join(" or ")
            ))
        })
    }

    /// The class folder names in label order.
    ///
    /// # Errors
    /// [`DataError::Io`] for unreadable files; [`DataError::Format`] naming the class list and
    /// the offset of a duplicate name; [`DataError::Invalid`] when there is no class.
    pub fn classes(&self, split_dir: &Path) -> Result<Vec<String>, DataError> {
        let classes = match &self.class_list {
            Some(list) => self
                .listed(list)?
                .into_iter()
                .map(|(_, name)| name)
                .collect(),
            None => {
                let mut names: Vec<String> = entries(split_dir)?
                    .into_iter()
                    .filter(|p| p.is_dir())
                    .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
                    .collect();
                names.sort();
                names
            }
        };
        if classes.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: no class folder",
                self.class_list.as_deref().unwrap_or(split_dir).display()
            )));
        }
        if classes.len() > usize::from(u16::MAX) + 1 {
            return Err(DataError::Invalid(format!(
                "{}: {} classes, at most 65536 are supported",
                split_dir.display(),
                classes.len()
            )));
        }
        Ok(classes)
    }

    /// The class list's names with the byte offset of each line.
    fn listed(&self, list: &Path) -> Result<Vec<(u64, String)>, DataError> {
        let text = std::fs::read_to_string(list).map_err(|e| DataError::io(list, e))?;
        let mut out: Vec<(u64, String)> = Vec::new();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            let name = line.trim();
            if !name.is_empty() && !name.starts_with('#') {
                if out.iter().any(|(_, n)| n == name) {
                    return Err(DataError::Format {
                        path: list.to_owned(),
                        offset,
                        what: format!("class {name:?} is listed twice"),
                    });
                }
                out.push((offset, name.to_owned()));
            }
            offset += line.len() as u64;
        }
        Ok(out)
    }

    /// Loads a split: every image decoded to RGB, in label order then file-name order.
    ///
    /// # Errors
    /// As [`ImageFolder::split_dir`] and [`ImageFolder::classes`]; [`DataError::Format`]
    /// naming the class list and the offset of a class with no folder; [`DataError::Invalid`]
    /// for a class without images or an image whose size differs from the first one;
    /// [`DataError::Decode`] for an image that does not decode.
    pub fn load(&self, split: Split) -> Result<ImageSet, DataError> {
        let dir = self.split_dir(split)?;
        let classes = self.classes(&dir)?;
        let mut files: Vec<(PathBuf, u16)> = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let class_dir = dir.join(class);
            if !class_dir.is_dir() {
                let list = self.class_list.as_deref().expect("listed folders exist");
                let offset = self
                    .listed(list)?
                    .into_iter()
                    .find_map(|(o, n)| (n == *class).then_some(o))
                    .unwrap_or(0);
                return Err(DataError::Format {
                    path: list.to_owned(),
                    offset,
                    what: format!("class {class:?} has no folder {}", class_dir.display()),
                });
            }
            let mut images: Vec<PathBuf> = entries(&class_dir)?
                .into_iter()
                .filter(|p| is_image(p))
                .collect();
            if images.is_empty() {
                return Err(DataError::Invalid(format!(
                    "{}: no PNG or JPEG image in the class folder",
                    class_dir.display()
                )));
            }
            images.sort();
            let label = u16::try_from(label).expect("classes() caps the count");
            files.extend(images.into_iter().map(|p| (p, label)));
        }
        let decoded: Vec<image::RgbImage> = files
            .par_iter()
            .map(|(path, _)| decode(path))
            .collect::<Result<_, _>>()?;
        let (width, height) = decoded[0].dimensions();
        let plane = (width * height) as usize;
        let mut pixels = Vec::with_capacity(decoded.len() * 3 * plane);
        for (img, (path, _)) in decoded.iter().zip(&files) {
            if img.dimensions() != (width, height) {
                let (w, h) = img.dimensions();
                return Err(DataError::Invalid(format!(
                    "{}: {w}×{h} pixels, but {} is {width}×{height}; all images of a folder \
                     data set must share one size (resize them beforehand)",
                    path.display(),
                    files[0].0.display()
                )));
            }
            for c in 0..3 {
                pixels.extend(img.pixels().map(|p| p.0[c]));
            }
        }
        Ok(ImageSet {
            pixels,
            labels: files.iter().map(|(_, l)| *l).collect(),
            channels: 3,
            height: height as usize,
            width: width as usize,
            classes: classes.len(),
        })
    }
}

/// The non-hidden entries of a directory.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let read = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in read {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(path);
        }
    }
    Ok(out)
}

fn is_image(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    path.is_file() && ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

fn decode(path: &Path) -> Result<image::RgbImage, DataError> {
    let fail = |reason: String| DataError::Decode {
        path: path.to_owned(),
        reason,
    };
    let reader = image::ImageReader::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    // The decoder's sentences end in a period; mpcl's messages do not.
    let decoded = reader
        .decode()
        .map_err(|e| fail(e.to_string().trim_end_matches('.').into()));
    Ok(decoded?.to_rgb8())
}
