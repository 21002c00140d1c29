//! Data sets of four IDX files (MNIST, Fashion-MNIST): 60 000 training and 10 000 test images,
//! 28×28 gray, 10 classes.
//!
//! The verified copy lives in `<data dir>/<key>/`. A file whose decompressed md5 is published
//! is stored decompressed (so a recompressed system copy, such as Debian's, can be checked);
//! otherwise the `.gz` is stored exactly as published and decompressed in memory on load.
//! The copy can come from three places, tried in this order by [`IdxSet::provision`]:
//! 1. the data directory itself (already verified);
//! 2. a system copy (Debian's `dataset-fashion-mnist` installs one in
//!    [`FASHION_MNIST_SYSTEM_DIR`]);
//! 3. the official download (each `.gz` checked as published, then again after
//!    decompression where the decompressed md5 is known).
//!
//! Every file is verified against the published md5 before it is written, and written
//! atomically, so a file at its final path is always a verified one.

use std::path::{Path, PathBuf};

use crate::dataset::check_labels;
use crate::{DataError, ImageSet, Progress, Split, fetch, fsutil, idx};

/// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
pub const FASHION_MNIST_SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// One file of an IDX data set with its published checksums.
#[derive(Debug, Clone, Copy)]
pub struct IdxFile {
    /// The decompressed file's name; the official download adds `.gz`.
    pub name: &'static str,
    /// md5 of the official `.gz` file.
    pub gz_md5: &'static str,
    /// md5 of the decompressed file, where one is published.
    pub raw_md5: Option<&'static str>,
}

impl IdxFile {
    /// The name of the verified file in the data directory: decompressed when its md5 is
    /// known, else the `.gz` as published.
    pub fn stored_name(&self) -> String {
        match self.raw_md5 {
            Some(_) => self.name.into(),
            None => format!("{}.gz", self.name),
        }
    }

    /// The md5 the stored file is verified against.
    pub fn stored_md5(&self) -> &'static str {
        self.raw_md5.unwrap_or(self.gz_md5)
    }
}

/// A data set of four IDX files: train images, train labels, test images, test labels.
#[derive(Debug, Clone)]
pub struct IdxSet {
    /// The name shown to users, e.g. `Fashion-MNIST`.
    pub title: &'static str,
    /// The registry name, also the sub-directory of the data directory.
    pub key: &'static str,
    /// The download location; a file's URL is this followed by its `.gz` name.
    pub base_url: &'static str,
    /// A system copy to import before downloading, if the platform packages one.
    pub system_dir: Option<&'static str>,
    /// The four files, in the order train images, train labels, test images, test labels.
    pub files: [IdxFile; 4],
    /// The number of classes; labels must lie in `0..classes`.
    pub classes: usize,
    /// The images' side in pixels; an image file of another size is refused.
    pub side: usize,
}

/// Fashion-MNIST; `.gz` checksums from the authors' repository, decompressed ones computed
/// from the official files (docs/science.md §7).
pub const FASHION_MNIST: IdxSet = IdxSet {
    title: "Fashion-MNIST",
    key: "fashion-mnist",
    base_url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    system_dir: Some(FASHION_MNIST_SYSTEM_DIR),
    files: [
        IdxFile {
            name: "train-images-idx3-ubyte",
            gz_md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            raw_md5: Some("f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        },
        IdxFile {
            name: "train-labels-idx1-ubyte",
            gz_md5: "25c81989df183df01b3e8a0aad5dffbe",
            raw_md5: Some("9018921c3c673c538a1fc5bad174d6f9"),
        },
        IdxFile {
            name: "t10k-images-idx3-ubyte",
            gz_md5: "bef4ecab320f06d8554ea6380940ec79",
            raw_md5: Some("8181f5470baa50b63fa0f6fddb340f0a"),
        },
        IdxFile {
            name: "t10k-labels-idx1-ubyte",
            gz_md5: "bb300cfdad3c16e7a12a480ee83cd310",
            raw_md5: Some("15d484375f8d13e6eb1aabb0c3f46965"),
        },
    ],
    classes: 10,
    side: 28,
};

/// MNIST from the PyTorch mirror; the `.gz` checksums are the ones torchvision checks (no
/// decompressed checksum is published, so the `.gz` files are stored as downloaded).
pub const MNIST: IdxSet = IdxSet {
    title: "MNIST",
    key: "mnist",
    base_url: "https://ossci-datasets.s3.amazonaws.com/mnist/",
    system_dir: None,
    files: [
        IdxFile {
            name: "train-images-idx3-ubyte",
            gz_md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            raw_md5: None,
        },
        IdxFile {
            name: "train-labels-idx1-ubyte",
            gz_md5: "d53e105ee54ea40749a09fcbcd1e9432",
            raw_md5: None,
        },
        IdxFile {
            name: "t10k-images-idx3-ubyte",
            gz_md5: "9fb629c4189551a2d022fa330f9573f3",
            raw_md5: None,
        },
        IdxFile {
            name: "t10k-labels-idx1-ubyte",
            gz_md5: "ec29112dd5afa0611ce80d1b7f02629c",
            raw_md5: None,
        },
    ],
    classes: 10,
    side: 28,
};

impl IdxSet {
    /// The directory holding the verified files.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.key)
    }

    /// The first file that is absent from the data directory or fails its checksum, or `None`
    /// when all four are present and verified.
    ///
    /// # Errors
    /// [`DataError::Io`] when a present file cannot be read.
    pub fn first_unverified(&self, data_dir: &Path) -> Result<Option<IdxFile>, DataError> {
        let dir = self.dir(data_dir);
        for spec in self.files {
            if !verified(&dir.join(spec.stored_name()), spec.stored_md5())? {
                return Ok(Some(spec));
            }
        }
        Ok(None)
    }

    /// Copies the data set from `source` (a directory with the four files, compressed as
    /// `.gz` or not), verifying each. Returns `false`, copying nothing, when a file is absent.
    ///
    /// # Errors
    /// [`DataError::Checksum`] when a source file does not verify (nothing of it is written),
    /// [`DataError::Io`] for unreadable or unwritable files.
    pub fn import(&self, data_dir: &Path, source: &Path) -> Result<bool, DataError> {
        let mut found = Vec::new();
        for spec in self.files {
            let gz = source.join(format!("{}.gz", spec.name));
            let raw = source.join(spec.name);
            // A decompressed source can only be checked against a decompressed checksum.
            let candidates = match spec.raw_md5 {
                Some(_) => vec![gz, raw],
                None => vec![gz],
            };
            match candidates.into_iter().find(|p| p.exists()) {
                Some(path) => found.push((spec, path)),
                None => return Ok(false),
            }
        }
        for (spec, path) in found {
            self.store(data_dir, spec, &path)?;
        }
        Ok(true)
    }

    /// Verifies `source` (the `.gz` or the decompressed file) and writes the stored form of
    /// `spec` atomically.
    fn store(&self, data_dir: &Path, spec: IdxFile, source: &Path) -> Result<(), DataError> {
        let bytes = match spec.raw_md5 {
            Some(raw_md5) => {
                let bytes = idx::read_maybe_gz(source)?;
                fsutil::verify_md5(source, &bytes, raw_md5)?;
                bytes
            }
            None => {
                let bytes = std::fs::read(source).map_err(|e| DataError::io(source, e))?;
                fsutil::verify_md5(source, &bytes, spec.gz_md5)?;
                bytes
            }
        };
        let target = self.dir(data_dir).join(spec.stored_name());
        if target != source {
            fsutil::write_atomic(&target, &bytes)?;
        }
        Ok(())
    }

    /// Downloads every file that is not yet verified from `base_url` (normally
    /// [`IdxSet::base_url`]), resuming partial downloads.
    ///
    /// # Errors
    /// As [`fetch::download`], and [`DataError::Checksum`] when a decompressed file does not
    /// verify.
    pub fn download(
        &self,
        data_dir: &Path,
        base_url: &str,
        progress: &mut Progress<'_>,
    ) -> Result<(), DataError> {
        let dir = self.dir(data_dir);
        for spec in self.files {
            if verified(&dir.join(spec.stored_name()), spec.stored_md5())? {
                continue;
            }
            let gz_name = format!("{}.gz", spec.name);
            let gz = dir.join(&gz_name);
            if !verified(&gz, spec.gz_md5)? {
                let url = format!("{base_url}{gz_name}");
                fetch::download(&url, &gz, spec.gz_md5, |n, t| progress(&gz_name, n, t))?;
            }
            if spec.raw_md5.is_some() {
                self.store(data_dir, spec, &gz)?;
                std::fs::remove_file(&gz).map_err(|e| DataError::io(&gz, e))?;
            }
        }
        Ok(())
    }

    /// Makes the verified copy: nothing when it is there, else an import from the system
    /// copy, else the download from `base_url` (normally [`IdxSet::base_url`]). Returns what
    /// it did, for the user.
    ///
    /// # Errors
    /// As [`IdxSet::import`] and [`IdxSet::download`].
    pub fn provision(
        &self,
        data_dir: &Path,
        base_url: &str,
        progress: &mut Progress<'_>,
    ) -> Result<String, DataError> {
        let dir = self.dir(data_dir);
        let Some(first) = self.first_unverified(data_dir)? else {
            return Ok(format!("{} verified in {}", self.title, dir.display()));
        };
        // A copy that fails its checksum is replaced; the user is told.
        let corrupt = dir.join(first.stored_name());
        let replaced = if corrupt.exists() {
            format!(", replacing {}, which failed its md5", corrupt.display())
        } else {
            String::new()
        };
        if let Some(system) = self.system_dir.map(Path::new)
            && system.exists()
            && self.import(data_dir, system)?
        {
            let from = system.display();
            return Ok(format!(
                "{} imported from {from} into {}{replaced}",
                self.title,
                dir.display()
            ));
        }
        self.download(data_dir, base_url, progress)?;
        Ok(format!(
            "{} downloaded and verified in {}{replaced}",
            self.title,
            dir.display()
        ))
    }

    /// The ways to provide this data set besides the download command, one per line.
    pub(crate) fn ways(&self, data_dir: &Path) -> Vec<String> {
        let mut ways = Vec::new();
        if let Some(system) = self.system_dir {
            ways.push(format!(
                "install Debian's package: `apt-get install dataset-{}` (files in {system}), \
                 then run the command above",
                self.key
            ));
        }
        let names: Vec<String> = self.files.iter().map(IdxFile::stored_name).collect();
        ways.push(format!(
            "copy the four files ({}) into {}",
            names.join(", "),
            self.dir(data_dir).display()
        ));
        ways
    }

    /// Loads a split from the verified files, checking checksums, headers and that images and
    /// labels agree.
    ///
    /// # Errors
    /// [`DataError::Missing`] when a file is absent, [`DataError::Checksum`] or
    /// [`DataError::Format`] when one is corrupt, [`DataError::Invalid`] for
    /// [`Split::Unlabeled`], which these data sets do not have.
    pub fn load(&self, data_dir: &Path, split: Split) -> Result<ImageSet, DataError> {
        let (images, labels) = match split {
            Split::Train => (self.files[0], self.files[1]),
            Split::Test => (self.files[2], self.files[3]),
            Split::Unlabeled => {
                return Err(DataError::Invalid(format!(
                    "{} has no unlabeled split (splits: train, test)",
                    self.title
                )));
            }
        };
        let dir = self.dir(data_dir);
        let read = |spec: IdxFile, ndims: usize| {
            let path = dir.join(spec.stored_name());
            if !path.exists() {
                return Err(crate::registry::missing(
                    self.title,
                    self.key,
                    &spec.stored_name(),
                    data_dir,
                    &dir,
                    &self.ways(data_dir),
                ));
            }
            let stored = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            fsutil::verify_md5(&path, &stored, spec.stored_md5())?;
            idx::parse_maybe_gz(&path, stored, ndims)
        };
        let images_arr = read(images, 3)?;
        let labels_arr = read(labels, 1)?;
        let (n, height, width) = (images_arr.dims[0], images_arr.dims[1], images_arr.dims[2]);
        if (height, width) != (self.side, self.side) {
            return Err(DataError::Format {
                path: dir.join(images.stored_name()),
                offset: 8,
                what: format!(
                    "{height} × {width} images, {} has {} × {}",
                    self.title, self.side, self.side
                ),
            });
        }
        let labels_path = dir.join(labels.stored_name());
        if labels_arr.dims[0] != n {
            return Err(DataError::Format {
                path: labels_path,
                offset: 4,
                what: format!("{} labels for {n} images", labels_arr.dims[0]),
            });
        }
        let labels = check_labels(&labels_path, &labels_arr.data, 0, self.classes, |i| {
            8 + i as u64
        })?;
        Ok(ImageSet {
            pixels: images_arr.data,
            labels,
            channels: 1,
            height,
            width,
            classes: self.classes,
        })
    }
}

/// Whether `path` exists with the md5 `expected`.
fn verified(path: &Path, expected: &str) -> Result<bool, DataError> {
    Ok(path.exists() && fsutil::md5_file(path)? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Writes a small data set in the real format (3 train and 2 test images of 4×4) and
    /// returns `base` with its checksums: decompressed md5s when `raw` (Fashion-MNIST's
    /// scheme), `.gz` md5s only otherwise (MNIST's). The checksums are those of the bytes
    /// written here, computed by the RFC 1321-tested [`fsutil::md5_hex`].
    fn write_small(dir: &Path, base: &IdxSet, gz: bool, raw: bool) -> IdxSet {
        let train_images: Vec<u8> = (0..48).collect();
        let test_images: Vec<u8> = (100..132).collect();
        let contents = [
            idx::encode(&[3, 4, 4], &train_images),
            idx::encode(&[3], &[0, 9, 4]),
            idx::encode(&[2, 4, 4], &test_images),
            idx::encode(&[2], &[1, 2]),
        ];
        let mut set = base.clone();
        set.side = 4;
        for (spec, bytes) in set.files.iter_mut().zip(&contents) {
            let compressed = gzip(bytes);
            spec.gz_md5 = leak(fsutil::md5_hex(&compressed));
            spec.raw_md5 = raw.then(|| leak(fsutil::md5_hex(bytes)));
            if gz {
                std::fs::write(dir.join(format!("{}.gz", spec.name)), compressed).unwrap();
            } else {
                std::fs::write(dir.join(spec.name), bytes).unwrap();
            }
        }
        set
    }

    #[test]
    fn imports_a_gzipped_copy_and_loads_both_splits() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let set = write_small(src.path(), &FASHION_MNIST, true, true);
        assert_eq!(
            set.first_unverified(data.path()).unwrap().unwrap().name,
            "train-images-idx3-ubyte"
        );
        assert!(set.import(data.path(), src.path()).unwrap());
        assert!(set.first_unverified(data.path()).unwrap().is_none());
        let train = set.load(data.path(), Split::Train).unwrap();
        assert_eq!((train.len(), train.height, train.width), (3, 4, 4));
        // The labels and pixels written by write_small.
        assert_eq!(train.labels, vec![0, 9, 4]);
        assert_eq!(train.image(1)[0], 16);
        let test = set.load(data.path(), Split::Test).unwrap();
        assert_eq!(test.image(0)[0], 100);
        assert!(set.load(data.path(), Split::Unlabeled).is_err());
    }

    #[test]
    fn provisioning_says_when_it_replaces_a_corrupt_copy() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut set = write_small(src.path(), &FASHION_MNIST, true, true);
        set.system_dir = Some(leak(src.path().display().to_string()));
        let dir = set.dir(data.path());
        let offline = "http://127.0.0.1:9/unused/";
        let said = set
            .provision(data.path(), offline, &mut |_, _, _| {})
            .unwrap();
        assert_eq!(
            said,
            format!(
                "Fashion-MNIST imported from {} into {}",
                src.path().display(),
                dir.display()
            )
        );
        let stored = dir.join(set.files[0].stored_name());
        std::fs::write(&stored, b"truncated").unwrap();
        let said = set
            .provision(data.path(), offline, &mut |_, _, _| {})
            .unwrap();
        assert!(
            said.ends_with(&format!(
                ", replacing {}, which failed its md5",
                stored.display()
            )),
            "{said}"
        );
        assert!(set.first_unverified(data.path()).unwrap().is_none());
        let said = set
            .provision(data.path(), offline, &mut |_, _, _| {})
            .unwrap();
        assert_eq!(said, format!("Fashion-MNIST verified in {}", dir.display()));
    }

    #[test]
    fn a_corrupt_file_is_told_from_a_missing_one_with_the_ways_to_replace_it() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(FASHION_MNIST.key);
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join(FASHION_MNIST.files[0].stored_name());
        let status = || crate::Dataset::FashionMnist.status(data.path()).unwrap();
        assert_eq!(
            status(),
            crate::Status::Unverified(format!("{} is missing", first.display()))
        );
        std::fs::write(&first, b"junk").unwrap();
        assert_eq!(
            status(),
            crate::Status::Unverified(format!("{} fails its md5", first.display()))
        );
        // Loading it says so too, with the ways to replace it.
        let err = crate::Dataset::FashionMnist
            .load(data.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match the expected")
                && err.contains("cargo xtask download fashion-mnist"),
            "{err}"
        );
    }

    #[test]
    fn mnist_scheme_keeps_the_gz_files_as_published() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let set = write_small(src.path(), &MNIST, true, false);
        assert!(set.import(data.path(), src.path()).unwrap());
        let stored = set.dir(data.path()).join("t10k-labels-idx1-ubyte.gz");
        assert_eq!(
            std::fs::read(&stored).unwrap(),
            std::fs::read(src.path().join("t10k-labels-idx1-ubyte.gz")).unwrap()
        );
        assert_eq!(
            set.load(data.path(), Split::Test).unwrap().labels,
            vec![1, 2]
        );
        // A decompressed copy cannot be checked against `.gz` checksums: not importable.
        let raw_src = tempfile::tempdir().unwrap();
        let raw = write_small(raw_src.path(), &MNIST, false, false);
        assert!(!raw.import(data.path(), raw_src.path()).unwrap());
    }

    #[test]
    fn import_reports_absent_sources_and_rejects_bad_checksums() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut set = write_small(src.path(), &FASHION_MNIST, false, true);
        assert!(
            !set.import(data.path(), data.path()).unwrap(),
            "an empty directory holds no copy"
        );
        set.files[2].raw_md5 = Some("00000000000000000000000000000000");
        let err = set.import(data.path(), src.path()).unwrap_err().to_string();
        assert!(
            err.contains("t10k-images-idx3-ubyte") && err.contains("does not match"),
            "{err}"
        );
        assert!(
            !set.dir(data.path()).join("t10k-images-idx3-ubyte").exists(),
            "nothing unverified lands"
        );
    }

    #[test]
    fn load_rejects_corruption_and_names_missing_files() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(FASHION_MNIST.key);
        std::fs::create_dir_all(&dir).unwrap();
        let set = write_small(&dir, &FASHION_MNIST, false, true);
        std::fs::write(dir.join(set.files[1].name), idx::encode(&[3], &[0, 1, 2])).unwrap();
        let err = set.load(data.path(), Split::Train).unwrap_err().to_string();
        assert!(err.contains("train-labels-idx1-ubyte: md5"), "{err}");
        std::fs::remove_file(dir.join(set.files[3].name)).unwrap();
        let err = set.load(data.path(), Split::Test).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte not found"), "{err}");
        assert!(
            err.contains("MPCL_DATA_DIR"),
            "the message lists the ways: {err}"
        );
    }

    #[test]
    fn load_rejects_labels_out_of_range_and_corrupt_headers() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(FASHION_MNIST.key);
        std::fs::create_dir_all(&dir).unwrap();
        let mut set = write_small(&dir, &FASHION_MNIST, false, true);
        let bad = idx::encode(&[3], &[0, 10, 4]);
        std::fs::write(dir.join(set.files[1].name), &bad).unwrap();
        set.files[1].raw_md5 = Some(leak(fsutil::md5_hex(&bad)));
        let msg = set.load(data.path(), Split::Train).unwrap_err().to_string();
        // Label 10 is the second label: 8 header bytes + 1.
        assert!(
            msg.contains("label 10") && msg.contains("offset 9"),
            "{msg}"
        );
        let mut header = idx::encode(&[2, 4, 4], &[0; 32]);
        header[2] = 0x0b;
        std::fs::write(dir.join(set.files[2].name), &header).unwrap();
        set.files[2].raw_md5 = Some(leak(fsutil::md5_hex(&header)));
        let msg = set.load(data.path(), Split::Test).unwrap_err().to_string();
        assert!(
            msg.contains("t10k-images-idx3-ubyte") && msg.contains("offset 2"),
            "{msg}"
        );
        // Images of another size than the set's: the height is the second dimension, at
        // 4 magic bytes + 4 bytes of count.
        let wide = idx::encode(&[2, 4, 5], &[0; 40]);
        std::fs::write(dir.join(set.files[2].name), &wide).unwrap();
        set.files[2].raw_md5 = Some(leak(fsutil::md5_hex(&wide)));
        let msg = set.load(data.path(), Split::Test).unwrap_err().to_string();
        assert!(
            msg.contains("offset 8") && msg.contains("4 × 5 images, Fashion-MNIST has 4 × 4"),
            "{msg}"
        );
    }
}
