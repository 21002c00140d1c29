//! The error type of the data crate.

use std::path::PathBuf;

/// What can go wrong while reading, verifying or fetching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O error on a named file.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error (kept out of the error chain: the message already says it).
        cause: std::io::Error,
    },
    /// A file whose content does not match its format.
    #[error("{path}: {what} (at byte offset {offset})")]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// The offset of the first problem.
        offset: u64,
        /// What is wrong there.
        what: String,
    },
    /// An image file that cannot be decoded.
    #[error("{path}: cannot decode the image: {reason}")]
    Decode {
        /// The file concerned.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },
    /// A file whose checksum differs from the published one.
    #[error("{path}: md5 {actual} does not match the expected {expected}")]
    Checksum {
        /// The file concerned.
        path: PathBuf,
        /// The published checksum.
        expected: String,
        /// The checksum of the file on disk.
        actual: String,
    },
    /// A download that failed.
    #[error("downloading {url}: {reason}")]
    Download {
        /// The address asked for.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// A data set that is nowhere to be found, with every way to provide it.
    #[error("{dataset} is missing: {missing} not found in {dir}\n{how}")]
    Missing {
        /// The data set's name.
        dataset: String,
        /// The first file that is missing.
        missing: String,
        /// Where it was expected.
        dir: PathBuf,
        /// The ways to provide it, one per line.
        how: String,
    },
    /// An invalid argument, named with its value.
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause: source,
        }
    }
}
