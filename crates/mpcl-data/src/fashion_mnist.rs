//! Fashion-MNIST: 60 000 training and 10 000 test images, 28×28 gray, 10 classes, in IDX files.
//!
//! The verified copy lives in `<data dir>/fashion-mnist/` as the four decompressed IDX files.
//! It can come from three places, tried in this order by the provisioning tools:
//! 1. the data directory itself (already verified);
//! 2. the system copy that Debian's `dataset-fashion-mnist` installs in [`SYSTEM_DIR`]
//!    (recompressed by Debian, so the check is on the decompressed bytes);
//! 3. the official download from [`BASE_URL`] (the `.gz` files are checked as published, then
//!    again after decompression).
//!
//! Every file is verified against the published md5 before it is written, and written
//! atomically, so a file at its final path is always a verified one.

use std::path::{Path, PathBuf};

use crate::{DataError, ImageSet, Split, fetch, fsutil, idx};

/// Where Debian's `dataset-fashion-mnist` package installs the data set.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The official download location, as listed by the data set's authors.
pub const BASE_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/// The sub-directory of the data directory that holds this data set.
pub const DIR_NAME: &str = "fashion-mnist";

/// One file of the data set with its published checksums.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    /// The decompressed file's name; the official download adds `.gz`.
    pub name: &'static str,
    /// md5 of the official `.gz` file.
    pub gz_md5: &'static str,
    /// md5 of the decompressed file.
    pub raw_md5: &'static str,
}

/// The four files; checksums from the authors' repository (compressed) and from the
/// decompressed official files (docs/science.md §7).
pub const FILES: [FileSpec; 4] = [
    FileSpec {
        name: "train-images-idx3-ubyte",
        gz_md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        raw_md5: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    },
    FileSpec {
        name: "train-labels-idx1-ubyte",
        gz_md5: "25c81989df183df01b3e8a0aad5dffbe",
        raw_md5: "9018921c3c673c538a1fc5bad174d6f9",
    },
    FileSpec {
        name: "t10k-images-idx3-ubyte",
        gz_md5: "bef4ecab320f06d8554ea6380940ec79",
        raw_md5: "8181f5470baa50b63fa0f6fddb340f0a",
    },
    FileSpec {
        name: "t10k-labels-idx1-ubyte",
        gz_md5: "bb300cfdad3c16e7a12a480ee83cd310",
        raw_md5: "15d484375f8d13e6eb1aabb0c3f46965",
    },
];

/// The class names, in label order.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Fashion-MNIST in a data directory, with the checksums it is verified against.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    dir: PathBuf,
    files: [FileSpec; 4],
}

impl FashionMnist {
    /// The data set under `data_dir/fashion-mnist`, verified against [`FILES`].
    pub fn new(data_dir: &Path) -> Self {
        Self::with_files(data_dir, FILES)
    }

    /// The same with other checksums: for tests that write small files in the real format.
    pub fn with_files(data_dir: &Path, files: [FileSpec; 4]) -> Self {
        Self {
            dir: data_dir.join(DIR_NAME),
            files,
        }
    }

    /// The directory holding the verified files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first file that is absent from the data directory or fails its checksum, or `None`
    /// when all four are present and verified.
    ///
    /// # Errors
    /// [`DataError::Io`] when a present file cannot be read.
    pub fn first_unverified(&self) -> Result<Option<FileSpec>, DataError> {
        for spec in self.files {
            let path = self.dir.join(spec.name);
            if !path.exists() || fsutil::md5_file(&path)? != spec.raw_md5 {
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
    pub fn import(&self, source: &Path) -> Result<bool, DataError> {
        let mut found = Vec::new();
        for spec in self.files {
            let gz = source.join(format!("{}.gz", spec.name));
            let raw = source.join(spec.name);
            match [gz, raw].into_iter().find(|p| p.exists()) {
                Some(path) => found.push((spec, path)),
                None => return Ok(false),
            }
        }
        for (spec, path) in found {
            let bytes = idx::read_maybe_gz(&path)?;
            fsutil::verify_md5(&path, &bytes, spec.raw_md5)?;
            fsutil::write_atomic(&self.dir.join(spec.name), &bytes)?;
        }
        Ok(true)
    }

    /// Downloads every file that is not yet verified from `base_url`, resuming partial
    /// downloads; `progress` receives the file name, bytes so far and the total if known.
    ///
    /// # Errors
    /// As [`fetch::download`], and [`DataError::Checksum`] when a decompressed file does not
    /// verify.
    pub fn download(
        &self,
        base_url: &str,
        mut progress: impl FnMut(&str, u64, Option<u64>),
    ) -> Result<(), DataError> {
        for spec in self.files {
            let target = self.dir.join(spec.name);
            if target.exists() && fsutil::md5_file(&target)? == spec.raw_md5 {
                continue;
            }
            let gz_name = format!("{}.gz", spec.name);
            let gz = self.dir.join(&gz_name);
            let url = format!("{base_url}{gz_name}");
            if !(gz.exists() && fsutil::md5_file(&gz)? == spec.gz_md5) {
                fetch::download(&url, &gz, spec.gz_md5, |n, t| progress(&gz_name, n, t))?;
            }
            let bytes = idx::read_maybe_gz(&gz)?;
            fsutil::verify_md5(&gz, &bytes, spec.raw_md5)?;
            fsutil::write_atomic(&target, &bytes)?;
            std::fs::remove_file(&gz).map_err(|e| DataError::io(&gz, e))?;
        }
        Ok(())
    }

    /// The error for a data set that could not be provisioned, listing every way to get it.
    pub fn missing(&self, missing: &FileSpec) -> DataError {
        DataError::Missing {
            dataset: "Fashion-MNIST".into(),
            missing: missing.name.into(),
            dir: self.dir.clone(),
            how: format!(
                "ways to provide it:\n\
                 - run `cargo xtask download fashion-mnist --data-dir {data}` (imports the \
                 system copy, or downloads the official files from {BASE_URL})\n\
                 - install Debian's package: `apt-get install dataset-fashion-mnist` (files in \
                 {SYSTEM_DIR}), then run the command above\n\
                 - copy the four decompressed IDX files ({names}) into {dir}\n\
                 - point the data directory at an existing copy: MPCL_DATA_DIR, `--data-dir`, \
                 or `data.dir` in the config",
                data = self.dir.parent().unwrap_or(&self.dir).display(),
                names = self.files.map(|f| f.name).join(", "),
                dir = self.dir.display()
            ),
        }
    }

    /// Loads a split from the verified files, checking checksums, headers and that images and
    /// labels agree.
    ///
    /// # Errors
    /// [`DataError::Missing`] when a file is absent, [`DataError::Checksum`] or
    /// [`DataError::Format`] when one is corrupt.
    pub fn load(&self, split: Split) -> Result<ImageSet, DataError> {
        let (images, labels) = match split {
            Split::Train => (self.files[0], self.files[1]),
            Split::Test => (self.files[2], self.files[3]),
        };
        let read = |spec: FileSpec, ndims: usize| {
            let path = self.dir.join(spec.name);
            if !path.exists() {
                return Err(self.missing(&spec));
            }
            let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            fsutil::verify_md5(&path, &bytes, spec.raw_md5)?;
            let format = |(offset, what)| DataError::Format {
                path: path.clone(),
                offset,
                what,
            };
            idx::parse(&bytes, ndims).map_err(format)
        };
        let images_arr = read(images, 3)?;
        let labels_arr = read(labels, 1)?;
        let (n, height, width) = (images_arr.dims[0], images_arr.dims[1], images_arr.dims[2]);
        let labels_path = self.dir.join(labels.name);
        if labels_arr.dims[0] != n {
            return Err(DataError::Format {
                path: labels_path,
                offset: 4,
                what: format!("{} labels for {n} images", labels_arr.dims[0]),
            });
        }
        if let Some(pos) = labels_arr
            .data
            .iter()
            .position(|&l| usize::from(l) >= CLASSES.len())
        {
            return Err(DataError::Format {
                path: labels_path,
                offset: 8 + pos as u64,
                what: format!("label {} is not a class (0..10)", labels_arr.data[pos]),
            });
        }
        Ok(ImageSet {
            pixels: images_arr.data,
            labels: labels_arr.data,
            channels: 1,
            height,
            width,
            classes: CLASSES.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a small data set in the real format (3 train and 2 test images of 4×4) and
    /// returns the specs with its checksums.
    fn write_small(dir: &Path, gz: bool) -> [FileSpec; 4] {
        use std::io::Write;
        let train_images: Vec<u8> = (0..48).collect();
        let test_images: Vec<u8> = (100..132).collect();
        let contents = [
            idx::encode(&[3, 4, 4], &train_images),
            idx::encode(&[3], &[0, 9, 4]),
            idx::encode(&[2, 4, 4], &test_images),
            idx::encode(&[2], &[1, 2]),
        ];
        let mut specs = FILES;
        for (spec, bytes) in specs.iter_mut().zip(&contents) {
            let md5 = Box::leak(fsutil::md5_hex(bytes).into_boxed_str());
            spec.raw_md5 = md5;
            if gz {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                enc.write_all(bytes).unwrap();
                std::fs::write(dir.join(format!("{}.gz", spec.name)), enc.finish().unwrap())
                    .unwrap();
            } else {
                std::fs::write(dir.join(spec.name), bytes).unwrap();
            }
        }
        specs
    }

    #[test]
    fn imports_a_gzipped_copy_and_loads_both_splits() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let specs = write_small(src.path(), true);
        let fm = FashionMnist::with_files(data.path(), specs);
        assert_eq!(
            fm.first_unverified().unwrap().unwrap().name,
            "train-images-idx3-ubyte"
        );
        assert!(fm.import(src.path()).unwrap());
        assert!(fm.first_unverified().unwrap().is_none());
        let train = fm.load(Split::Train).unwrap();
        assert_eq!((train.len(), train.height, train.width), (3, 4, 4));
        assert_eq!(train.labels, vec![0, 9, 4]);
        assert_eq!(train.image(1)[0], 16);
        let test = fm.load(Split::Test).unwrap();
        assert_eq!(test.image(0)[0], 100);
    }

    #[test]
    fn import_reports_absent_sources_and_rejects_bad_checksums() {
        let src = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut specs = write_small(src.path(), false);
        let fm = FashionMnist::with_files(data.path(), specs);
        assert!(
            !fm.import(data.path()).unwrap(),
            "an empty directory holds no copy"
        );
        specs[2].raw_md5 = "00000000000000000000000000000000";
        let fm = FashionMnist::with_files(data.path(), specs);
        let err = fm.import(src.path()).unwrap_err().to_string();
        assert!(
            err.contains("t10k-images-idx3-ubyte") && err.contains("does not match"),
            "{err}"
        );
        assert!(
            !fm.dir().join("t10k-images-idx3-ubyte").exists(),
            "nothing unverified lands"
        );
    }

    #[test]
    fn load_rejects_corruption_and_names_missing_files() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(DIR_NAME);
        std::fs::create_dir_all(&dir).unwrap();
        let specs = write_small(&dir, false);
        let fm = FashionMnist::with_files(data.path(), specs);
        std::fs::write(dir.join(specs[1].name), idx::encode(&[3], &[0, 1, 2])).unwrap();
        let err = fm.load(Split::Train).unwrap_err().to_string();
        assert!(err.contains("train-labels-idx1-ubyte: md5"), "{err}");
        std::fs::remove_file(dir.join(specs[3].name)).unwrap();
        let err = fm.load(Split::Test).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte not found"), "{err}");
        assert!(
            err.contains("MPCL_DATA_DIR"),
            "the message lists the ways: {err}"
        );
    }

    #[test]
    fn load_rejects_labels_out_of_range() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(DIR_NAME);
        std::fs::create_dir_all(&dir).unwrap();
        let mut specs = write_small(&dir, false);
        let bad = idx::encode(&[3], &[0, 10, 4]);
        std::fs::write(dir.join(specs[1].name), &bad).unwrap();
        specs[1].raw_md5 = Box::leak(fsutil::md5_hex(&bad).into_boxed_str());
        let err = FashionMnist::with_files(data.path(), specs)
            .load(Split::Train)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("label 10") && msg.contains("offset 9"),
            "{msg}"
        );
    }
}
