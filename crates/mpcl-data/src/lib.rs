//! Datasets, provisioning and augmentations for mpcl.
//!
//! Everything here works on plain `u8` images and `f32` buffers: this crate never links
//! libtorch, so the trainer hands batches to tch itself and `xtask` can provision data before
//! libtorch exists.
//!
//! - [`idx`]: the IDX format of MNIST and Fashion-MNIST, validated on read.
//! - [`fashion_mnist`]: where the data set comes from, in order: the data directory, the system
//!   copy from Debian's `dataset-fashion-mnist`, the official download; every file verified.
//! - [`fetch`]: resumable, checksum-verified downloads written atomically.
//! - [`augment`]: SimCLR and BYOL augmentations with torchvision's semantics, per-view
//!   pipelines and multi-crop.
//! - [`loader`]: deterministic shuffled batches of augmented views, prepared ahead on other
//!   threads.

pub mod augment;
mod dataset;
mod error;
pub mod fashion_mnist;
pub mod fetch;
pub mod fsutil;
pub mod idx;
pub mod loader;

pub use dataset::{ImageSet, Split};
pub use error::DataError;

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
