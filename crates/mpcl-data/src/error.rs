//! The error type of the data crate, and how mpcl's command-line tools print errors.

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

/// `error` and its causes as mpcl's command-line tools print them: the message, then the
/// causes under `Caused by:`, one a line, as anyhow's report lays them out but without the
/// backtrace it adds under `RUST_BACKTRACE=1`. These errors are the input's (a config, a
/// file, a flag), not the program's, whose panics keep their backtraces.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("Error: {error}");
    let mut cause = error.source();
    if cause.is_some() {
        out.push_str("\n\nCaused by:");
    }
    while let Some(e) = cause {
        out.push_str(&format!("\n    {e}"));
        cause = e.source();
    }
    out
}

/// The exit of a command-line tool's `main`: success, or failure with the error's
/// [`report`] on standard error.
pub fn finish(
    result: Result<(), impl AsRef<dyn std::error::Error + Send + Sync + 'static>>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", report(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// An error with a cause, as a config reader's would be.
    #[derive(Debug, thiserror::Error)]
    #[error("reading x.toml")]
    struct Reading(#[source] std::io::Error);

    #[test]
    fn a_report_lists_the_causes_and_no_backtrace() {
        // The layout of anyhow's report of the same chain, written out.
        let e = Reading(std::io::Error::other("no such file"));
        assert_eq!(
            super::report(&e),
            "Error: reading x.toml\n\nCaused by:\n    no such file"
        );
        let alone = std::io::Error::other("bad");
        assert_eq!(super::report(&alone), "Error: bad");
    }
}
