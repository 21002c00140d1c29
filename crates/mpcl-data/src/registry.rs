//! The data-set registry: every data set mpcl knows, with its files, official sources and
//! checksums, how to check, provision and load it.
//!
//! | name | source | on disk under `<data dir>/<name>/` |
//! |---|---|---|
//! | `fashion-mnist` | four `.gz` IDX files, or Debian's package | decompressed IDX |
//! | `mnist` | four `.gz` IDX files from the PyTorch mirror | the `.gz` files |
//! | `cifar10` | `cifar-10-binary.tar.gz` | `cifar-10-batches-bin/` |
//! | `cifar100`, `cifar100-coarse` | `cifar-100-binary.tar.gz` | `cifar-100-binary/` |
//! | `stl10` | `stl10_binary.tar.gz` | `stl10_binary/` |
//! | `image-folder` | a directory the user provides | read in place |
//!
//! `cifar100` loads the 100 fine labels, `cifar100-coarse` the 20 super-classes of the same
//! files. Only `stl10` has a [`Split::Unlabeled`].

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::archive::{Archive, Check};
use crate::cifar::{self, Cifar100Labels};
use crate::folder::ImageFolder;
use crate::idx_set::{FASHION_MNIST, IdxSet, MNIST};
use crate::{DataError, ImageSet, Progress, Split, stl10};

/// The name of a registry entry, as written in configs and on the command line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// `fashion-mnist` (the default).
    #[default]
    FashionMnist,
    /// `mnist`.
    Mnist,
    /// `cifar10`.
    Cifar10,
    /// `cifar100`: fine labels.
    Cifar100,
    /// `cifar100-coarse`: the 20 super-classes.
    Cifar100Coarse,
    /// `stl10`.
    Stl10,
    /// `image-folder`: needs a root directory.
    ImageFolder,
}

impl DatasetName {
    /// Every name, in the order listings show them.
    pub const ALL: [Self; 7] = [
        Self::FashionMnist,
        Self::Mnist,
        Self::Cifar10,
        Self::Cifar100,
        Self::Cifar100Coarse,
        Self::Stl10,
        Self::ImageFolder,
    ];

    /// The name as written in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::Cifar100Coarse => "cifar100-coarse",
            Self::Stl10 => "stl10",
            Self::ImageFolder => "image-folder",
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|n| n.as_str()).collect();
                DataError::Invalid(format!(
                    "unknown data set {s:?}: known data sets are {}",
                    known.join(", ")
                ))
            })
    }
}

/// A data set of the registry, ready to check, provision or load.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// Fashion-MNIST: 28×28 gray, 10 classes, 60 000 + 10 000 images.
    FashionMnist,
    /// MNIST: 28×28 gray, 10 classes, 60 000 + 10 000 images.
    Mnist,
    /// CIFAR-10: 32×32 RGB, 10 classes, 50 000 + 10 000 images.
    Cifar10,
    /// CIFAR-100: 32×32 RGB, 100 fine or 20 coarse classes, 50 000 + 10 000 images.
    Cifar100(Cifar100Labels),
    /// STL-10: 96×96 RGB, 10 classes, 5000 + 8000 labelled and 100 000 unlabeled images.
    Stl10,
    /// PNG/JPEG files in one folder per class.
    ImageFolder(ImageFolder),
}

/// Where a data set's files come from.
enum Source<'a> {
    Idx(&'static IdxSet),
    Archive(&'static Archive),
    Folder(&'a ImageFolder),
}

/// What a listing says about a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every file is there and matches its checksum.
    Verified,
    /// There, but nothing to verify it against: image folders, and archive trees extracted
    /// outside mpcl whose files have their official sizes.
    Present,
    /// Something is there but does not verify; says what.
    Unverified(String),
    /// Nothing is there.
    Missing,
}

impl Dataset {
    /// The entry called `name`; `root` and `class_list` are for `image-folder` only.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when `image-folder` has no root, or another data set is given
    /// one.
    pub fn new(
        name: DatasetName,
        root: Option<&Path>,
        class_list: Option<&Path>,
    ) -> Result<Self, DataError> {
        if name != DatasetName::ImageFolder && (root.is_some() || class_list.is_some()) {
            return Err(DataError::Invalid(format!(
                "a root directory and a class list apply to image-folder only, not to {name}"
            )));
        }
        Ok(match name {
            DatasetName::FashionMnist => Self::FashionMnist,
            DatasetName::Mnist => Self::Mnist,
            DatasetName::Cifar10 => Self::Cifar10,
            DatasetName::Cifar100 => Self::Cifar100(Cifar100Labels::Fine),
            DatasetName::Cifar100Coarse => Self::Cifar100(Cifar100Labels::Coarse),
            DatasetName::Stl10 => Self::Stl10,
            DatasetName::ImageFolder => Self::ImageFolder(ImageFolder {
                root: root
                    .ok_or_else(|| {
                        DataError::Invalid("image-folder needs a root directory".into())
                    })?
                    .to_owned(),
                class_list: class_list.map(Path::to_owned),
            }),
        })
    }

    /// The registry name.
    pub fn name(&self) -> DatasetName {
        match self {
            Self::FashionMnist => DatasetName::FashionMnist,
            Self::Mnist => DatasetName::Mnist,
            Self::Cifar10 => DatasetName::Cifar10,
            Self::Cifar100(Cifar100Labels::Fine) => DatasetName::Cifar100,
            Self::Cifar100(Cifar100Labels::Coarse) => DatasetName::Cifar100Coarse,
            Self::Stl10 => DatasetName::Stl10,
            Self::ImageFolder(_) => DatasetName::ImageFolder,
        }
    }

    /// The name shown to users.
    pub fn title(&self) -> String {
        match self {
            Self::FashionMnist => FASHION_MNIST.title.into(),
            Self::Mnist => MNIST.title.into(),
            Self::Cifar10 => "CIFAR-10".into(),
            Self::Cifar100(Cifar100Labels::Fine) => "CIFAR-100".into(),
            Self::Cifar100(Cifar100Labels::Coarse) => "CIFAR-100 (coarse labels)".into(),
            Self::Stl10 => "STL-10".into(),
            Self::ImageFolder(f) => format!("image folder {}", f.root.display()),
        }
    }

    /// The splits it has.
    pub fn splits(&self) -> &'static [Split] {
        match self {
            Self::Stl10 => &[Split::Train, Split::Test, Split::Unlabeled],
            _ => &[Split::Train, Split::Test],
        }
    }

    /// The `(channels, height, width)` of every image, where the data set fixes it: all
    /// but image folders, whose size is that of their first image.
    pub fn image_shape(&self) -> Option<(usize, usize, usize)> {
        match self {
            Self::FashionMnist => Some((1, FASHION_MNIST.side, FASHION_MNIST.side)),
            Self::Mnist => Some((1, MNIST.side, MNIST.side)),
            Self::Cifar10 | Self::Cifar100(_) => Some((3, cifar::SIDE, cifar::SIDE)),
            Self::Stl10 => Some((3, stl10::SIDE, stl10::SIDE)),
            Self::ImageFolder(_) => None,
        }
    }

    fn source(&self) -> Source<'_> {
        match self {
            Self::FashionMnist => Source::Idx(&FASHION_MNIST),
            Self::Mnist => Source::Idx(&MNIST),
            Self::Cifar10 => Source::Archive(&cifar::CIFAR10),
            Self::Cifar100(_) => Source::Archive(&cifar::CIFAR100),
            Self::Stl10 => Source::Archive(&stl10::STL10),
            Self::ImageFolder(f) => Source::Folder(f),
        }
    }

    /// The directory holding its verified files: `<data_dir>/<name>` (both CIFAR-100 label
    /// choices share `cifar100`), or the root of an image folder.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        match self {
            Self::Cifar100(_) => data_dir.join("cifar100"),
            Self::ImageFolder(f) => f.root.clone(),
            other => data_dir.join(other.name().as_str()),
        }
    }

    /// Whether it is present and verified in `data_dir`, hashing every file.
    ///
    /// # Errors
    /// [`DataError::Io`] when a present file cannot be read.
    pub fn status(&self, data_dir: &Path) -> Result<Status, DataError> {
        let dir = self.dir(data_dir);
        Ok(match self.source() {
            Source::Idx(set) => match set.first_unverified(data_dir)? {
                None => Status::Verified,
                Some(_) if !dir.exists() => Status::Missing,
                Some(file) => {
                    let path = dir.join(file.stored_name());
                    let why = if path.exists() {
                        "fails its md5"
                    } else {
                        "is missing"
                    };
                    Status::Unverified(format!("{} {why}", path.display()))
                }
            },
            Source::Archive(archive) => match archive.check(&dir)? {
                Check::Verified => Status::Verified,
                Check::Unmanifested => Status::Present,
                Check::Unverified(why) => Status::Unverified(why),
                Check::Missing => Status::Missing,
            },
            Source::Folder(folder) => match folder.split_dir(Split::Train) {
                Ok(_) => Status::Present,
                Err(_) => Status::Missing,
            },
        })
    }

    /// Makes a verified copy in `data_dir` (see the modules of each format for the sources
    /// tried), downloading from the official URLs; `progress` hears of downloads as (file,
    /// bytes so far, total if known). Returns what it did, for the user.
    ///
    /// # Errors
    /// As [`Dataset::provision_from`].
    pub fn provision(
        &self,
        data_dir: &Path,
        progress: &mut Progress<'_>,
    ) -> Result<String, DataError> {
        self.provision_from(data_dir, None, progress)
    }

    /// As [`Dataset::provision`], downloading from `mirror` when given: a base URL ending in
    /// `/` under which the official file names are found (e.g. a local copy served over
    /// HTTP).
    ///
    /// # Errors
    /// The provisioning error (download, checksum, archive content) followed by every way to
    /// provide the data set; for an image folder, [`DataError::Invalid`] when its train
    /// directory is absent.
    pub fn provision_from(
        &self,
        data_dir: &Path,
        mirror: Option<&str>,
        progress: &mut Progress<'_>,
    ) -> Result<String, DataError> {
        let result = match self.source() {
            Source::Idx(set) => set.provision(data_dir, mirror.unwrap_or(set.base_url), progress),
            Source::Archive(archive) => {
                let url = mirror.map_or(archive.url.to_owned(), |m| format!("{m}{}", archive.file));
                archive.provision(&self.dir(data_dir), &url, progress)
            }
            Source::Folder(folder) => {
                let dir = folder.split_dir(Split::Train)?;
                return Ok(format!(
                    "{} is read in place from {}",
                    self.title(),
                    dir.display()
                ));
            }
        };
        result.map_err(|e| self.with_ways(data_dir, e.to_string()))
    }

    /// An error saying `what` went wrong, followed by the ways to provide the data set.
    fn with_ways(&self, data_dir: &Path, what: String) -> DataError {
        match self.missing(data_dir) {
            DataError::Missing { how, .. } => DataError::Invalid(format!("{what}\n{how}")),
            other => other,
        }
    }

    /// Loads a split, verifying checksums (where there are any), sizes and headers.
    ///
    /// # Errors
    /// [`DataError::Missing`] with the ways to provide it when it is absent or unverified;
    /// [`DataError::Format`] naming the file and offset for corrupt files;
    /// [`DataError::Invalid`] for a split the data set does not have.
    pub fn load(&self, data_dir: &Path, split: Split) -> Result<ImageSet, DataError> {
        if !self.splits().contains(&split) {
            return Err(DataError::Invalid(format!(
                "{} has no {split} split",
                self.title()
            )));
        }
        let dir = self.dir(data_dir);
        for path in [data_dir, &dir] {
            if path.exists() && !path.is_dir() {
                return Err(DataError::Invalid(format!(
                    "{}: a file where {}'s directory should be",
                    path.display(),
                    self.title()
                )));
            }
        }
        let archive = match self.source() {
            Source::Idx(set) => {
                // A corrupt copy is replaced the way a missing one is provided.
                return set.load(data_dir, split).map_err(|e| match e {
                    DataError::Checksum { .. } => self.with_ways(data_dir, e.to_string()),
                    e => e,
                });
            }
            Source::Folder(folder) => return folder.load(split),
            Source::Archive(archive) => archive,
        };
        let top = archive.extracted(&dir);
        let files: Vec<&str> = match (self, split) {
            (Self::Cifar10, Split::Train) => archive.files[..5].to_vec(),
            (Self::Cifar10, _) => vec!["test_batch.bin"],
            (Self::Cifar100(_), Split::Train) => vec!["train.bin"],
            (Self::Cifar100(_), _) => vec!["test.bin"],
            (_, Split::Train) => vec!["train_X.bin", "train_y.bin"],
            (_, Split::Test) => vec!["test_X.bin", "test_y.bin"],
            (_, Split::Unlabeled) => vec!["unlabeled_X.bin"],
        };
        match archive.check_files(&dir, &files)? {
            Check::Verified => {}
            Check::Unmanifested => tracing::warn!(
                "{}: extracted outside mpcl (no manifest); the files have their official sizes \
                 and are read with format checks, but not checksummed",
                top.display()
            ),
            Check::Missing => return Err(self.missing(data_dir)),
            Check::Unverified(why) => return Err(self.with_ways(data_dir, why)),
        }
        let paths: Vec<PathBuf> = files.iter().map(|f| top.join(f)).collect();
        match self {
            Self::Cifar10 => cifar::read_records(&paths, &[10], 0),
            Self::Cifar100(labels) => {
                let pick = usize::from(*labels == Cifar100Labels::Fine);
                cifar::read_records(&paths, &[20, 100], pick)
            }
            _ => stl10::read(&paths[0], paths.get(1).map(PathBuf::as_path)),
        }
    }

    /// The error for a data set that is not in `data_dir`, listing every way to provide it.
    pub fn missing(&self, data_dir: &Path) -> DataError {
        let dir = self.dir(data_dir);
        let key = self.name().as_str();
        match self.source() {
            Source::Idx(set) => {
                let first = set.files[0].stored_name();
                missing(set.title, key, &first, data_dir, &dir, &set.ways(data_dir))
            }
            Source::Archive(a) => {
                let ways = [
                    format!(
                        "place {} (from {}, md5 {}) in {} and run the command above: it is \
                         verified and extracted without a download",
                        a.file,
                        a.url,
                        a.md5,
                        dir.display()
                    ),
                    format!(
                        "or extract it yourself into {}: its files are read in place when \
                         they have their official sizes (not checksummed then)",
                        a.extracted(&dir).display()
                    ),
                ];
                missing(&self.title(), key, a.top, data_dir, &dir, &ways)
            }
            Source::Folder(f) => DataError::Missing {
                dataset: self.title(),
                missing: "train".into(),
                dir,
                how: format!(
                    "an image folder is not downloaded: give the root of a directory with \
                     train/<class>/*.png|jpg and val/<class>/… (data.root in the config, \
                     --root for xtask){}",
                    f.class_list
                        .as_ref()
                        .map_or(String::new(), |l| format!("; class list {}", l.display()))
                ),
            },
        }
    }
}

/// The error for a data set whose file `file` is not in `dir`: the download command first,
/// then `ways`, then pointing the data directory at an existing copy.
pub(crate) fn missing(
    title: &str,
    key: &str,
    file: &str,
    data_dir: &Path,
    dir: &Path,
    ways: &[String],
) -> DataError {
    let mut how = format!(
        "ways to provide it:\n- run `cargo xtask download {key} --data-dir {}` (imports a \
         system copy where there is one, else downloads the official files)",
        data_dir.display()
    );
    for way in ways {
        how.push_str(&format!("\n- {way}"));
    }
    how.push_str(&format!(
        "\n- point the data directory at an existing copy: {}, `--data-dir`, or `data.dir` in \
         the config",
        crate::DATA_DIR_ENV
    ));
    DataError::Missing {
        dataset: title.into(),
        missing: file.into(),
        dir: dir.to_owned(),
        how,
    }
}
