//! Datasets, provisioning and augmentations for mpcl.
//!
//! Everything here works on plain `u8` images and `f32` buffers: this crate never links
//! libtorch, so the trainer hands batches to tch itself and `xtask` can provision data before
//! libtorch exists.
//!
//! - [`registry`]: every data set by name ([`Dataset`]), with its sources and checksums:
//!   status for listings, provisioning, loading a [`Split`] into an [`ImageSet`].
//! - [`idx`], [`idx_set`]: the IDX format and the data sets made of IDX files (MNIST,
//!   Fashion-MNIST), imported from a system copy or downloaded, every file verified.
//! - [`cifar`], [`stl10`]: readers of the binary CIFAR-10/100 and STL-10 files.
//! - [`folder`]: PNG/JPEG images in one folder per class.
//! - [`archive`]: `.tar.gz` data sets verified, extracted atomically and checked later.
//! - [`fetch`]: resumable, checksum-verified downloads written atomically.
//! - [`augment`]: SimCLR and BYOL augmentations with torchvision's semantics, per-view
//!   pipelines and multi-crop.
//! - [`loader`]: deterministic shuffled batches of augmented views, prepared ahead on other
//!   threads.

pub mod archive;
pub mod augment;
pub mod cifar;
mod dataset;
mod error;
pub mod fetch;
pub mod folder;
pub mod fsutil;
pub mod idx;
pub mod idx_set;
pub mod loader;
pub mod registry;
pub mod stl10;

pub use dataset::{ImageSet, Split};
pub use error::{DataError, finish, report};
pub use registry::{Dataset, DatasetName, Status};

/// A download's progress report: the file's name, the bytes received so far and the total
/// when the server says it.
pub type Progress<'a> = dyn FnMut(&str, u64, Option<u64>) + 'a;

use std::path::PathBuf;

/// The environment variable that overrides the default data directory.
pub const DATA_DIR_ENV: &str = "MPCL_DATA_DIR";

/// The data directory: `$MPCL_DATA_DIR` if set, else `$XDG_DATA_HOME/mpcl/datasets`, else
/// `~/.local/share/mpcl/datasets`. Every data set has a sub-directory there.
pub fn default_data_dir() -> PathBuf {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env(DATA_DIR_ENV) {
        return dir;
    }
    let share = env("XDG_DATA_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    share.join("mpcl/datasets")
}
