//! Data sets published as one `.tar.gz` archive (CIFAR-10, CIFAR-100, STL-10): download,
//! verify, extract atomically, and check the extracted copy later.
//!
//! Provisioning goes through states that each survive an interruption:
//! 1. the archive downloads into `<archive>.part` (resumed with a range request) and is
//!    renamed to `<archive>` only once its md5 matches the published one;
//! 2. the verified archive is extracted into a temporary directory next to the target
//!    (`.<top>.extract<pid>`, removed and redone if a previous run left one behind);
//! 3. the md5 and size of every expected file are written into a manifest
//!    ([`MANIFEST`]) inside the extracted tree, which is then renamed into place;
//! 4. the archive is removed.
//!
//! A directory at the final path therefore always came from a verified archive, and its
//! manifest lets later checks ([`Archive::check`]) detect files changed or truncated since.
//! Only the files the readers need are listed in the manifest; the archives' text files
//! (class names, readme) are extracted but not checked.

use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::{DataError, Progress, fetch, fsutil};

/// The manifest written inside an extracted tree: one `md5  size  name` line per file.
pub const MANIFEST: &str = ".mpcl-verified";

/// A published archive and what it must contain.
#[derive(Debug, Clone, Copy)]
pub struct Archive {
    /// The official download address.
    pub url: &'static str,
    /// The archive's file name.
    pub file: &'static str,
    /// The published md5 of the archive.
    pub md5: &'static str,
    /// The directory the archive extracts to.
    pub top: &'static str,
    /// The files the readers need, relative to `top`.
    pub files: &'static [&'static str],
    /// The official size in bytes of each of `files`, in order: a copy extracted outside
    /// mpcl (no manifest) is read when its files have these sizes.
    pub sizes: &'static [u64],
}

/// The state of an extracted copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Every file listed in the manifest is there with its recorded md5 and size.
    Verified,
    /// Something is there but does not verify; says what.
    Unverified(String),
    /// Extracted outside mpcl (no manifest), every file at its official size: usable, but
    /// not checksummed (the archive's md5 covers the archive, not its members).
    Unmanifested,
    /// Nothing is there.
    Missing,
}

impl Archive {
    /// The extracted tree inside the data set's directory `dir`.
    pub fn extracted(&self, dir: &Path) -> PathBuf {
        dir.join(self.top)
    }

    /// Checks the extracted copy in `dir` against its manifest, hashing every file.
    ///
    /// # Errors
    /// [`DataError::Io`] when a present file cannot be read.
    pub fn check(&self, dir: &Path) -> Result<Check, DataError> {
        self.check_files(dir, self.files)
    }

    /// As [`Archive::check`], for `files` only (each one of [`Archive::files`]).
    ///
    /// # Errors
    /// [`DataError::Io`] when a present file cannot be read.
    pub fn check_files(&self, dir: &Path, files: &[&str]) -> Result<Check, DataError> {
        let top = self.extracted(dir);
        if !top.exists() {
            return Ok(Check::Missing);
        }
        let manifest = top.join(MANIFEST);
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            return self.check_sizes(&top, files);
        };
        let recorded: Vec<(&str, &str, &str)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, "  ");
                Some((f.next()?, f.next()?, f.next()?))
            })
            .collect();
        for name in files {
            let Some(&(md5, size, _)) = recorded.iter().find(|r| r.2 == *name) else {
                return Ok(Check::Unverified(format!(
                    "{} does not list {name}",
                    manifest.display()
                )));
            };
            let path = top.join(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                return Ok(Check::Unverified(format!("{} is missing", path.display())));
            };
            if meta.len().to_string() != size {
                let have = meta.len();
                let why = format!("{} has {have} bytes, {size} when extracted", path.display());
                return Ok(Check::Unverified(why));
            }
            if fsutil::md5_file(&path)? != md5 {
                let why = format!(
                    "{}: md5 differs from the one recorded at extraction",
                    path.display()
                );
                return Ok(Check::Unverified(why));
            }
        }
        Ok(Check::Verified)
    }

    /// The check of a tree without a manifest: each file at its official size.
    fn check_sizes(&self, top: &Path, files: &[&str]) -> Result<Check, DataError> {
        for name in files {
            let path = top.join(name);
            let official = self
                .files
                .iter()
                .position(|f| f == name)
                .and_then(|i| self.sizes.get(i));
            let Ok(meta) = std::fs::metadata(&path) else {
                return Ok(Check::Unverified(format!(
                    "{} is missing (no manifest {MANIFEST}: not extracted by mpcl)",
                    path.display()
                )));
            };
            if official != Some(&meta.len()) {
                return Ok(Check::Unverified(format!(
                    "{} has {} bytes, the official file {} (no manifest {MANIFEST}: not \
                     extracted by mpcl, so only sizes can be checked)",
                    path.display(),
                    meta.len(),
                    official.map_or("unknown".into(), u64::to_string)
                )));
            }
        }
        Ok(Check::Unmanifested)
    }

    /// Makes the verified, extracted copy in `dir`, downloading the archive from `url`
    /// (normally [`Archive::url`]) unless a verified archive is already in `dir`. Returns what
    /// it did, for the user.
    ///
    /// # Errors
    /// As [`fetch::download`]; [`DataError::Checksum`] when an archive placed in `dir` does
    /// not verify; [`DataError::Invalid`] when the archive lacks an expected file;
    /// [`DataError::Io`] for local files.
    pub fn provision(
        &self,
        dir: &Path,
        url: &str,
        progress: &mut Progress<'_>,
    ) -> Result<String, DataError> {
        let top = self.extracted(dir);
        let archive = dir.join(self.file);
        match self.check(dir)? {
            Check::Verified => {
                remove_if_present(&archive)?;
                return Ok(format!("{} verified", top.display()));
            }
            Check::Unmanifested => {
                return Ok(format!(
                    "{} present, extracted outside mpcl: every file has its official size \
                     (not checksummed)",
                    top.display()
                ));
            }
            Check::Unverified(_) | Check::Missing => {}
        }
        let done = if archive.exists() {
            let actual = fsutil::md5_file(&archive)?;
            if actual != self.md5 {
                return Err(DataError::Checksum {
                    path: archive,
                    expected: self.md5.into(),
                    actual,
                });
            }
            "extracted from the archive found there"
        } else {
            fetch::download(url, &archive, self.md5, |n, t| progress(self.file, n, t))?;
            "downloaded, verified and extracted"
        };
        self.extract(dir, &archive)?;
        remove_if_present(&archive)?;
        Ok(format!("{}: {done}", top.display()))
    }

    /// Extracts the verified `archive` into a temporary directory in `dir`, writes the
    /// manifest and renames the tree into place.
    fn extract(&self, dir: &Path, archive: &Path) -> Result<(), DataError> {
        let stale = format!(".{}.extract", self.top);
        let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| DataError::io(dir, e))?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with(&stale) {
                std::fs::remove_dir_all(&path).map_err(|e| DataError::io(&path, e))?;
            }
        }
        let tmp = dir.join(format!("{stale}{}", std::process::id()));
        let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
        let gz = flate2::read::GzDecoder::new(BufReader::new(file));
        // `unpack` refuses entries that would land outside `tmp` (absolute paths, `..`).
        tar::Archive::new(gz)
            .unpack(&tmp)
            .map_err(|e| DataError::io(archive, e))?;
        let tmp_top = tmp.join(self.top);
        let mut manifest = String::new();
        for name in self.files {
            let path = tmp_top.join(name);
            if !path.is_file() {
                return Err(DataError::Invalid(format!(
                    "{}: the archive holds no {}/{name}",
                    archive.display(),
                    self.top
                )));
            }
            let file = std::fs::File::open(&path).map_err(|e| DataError::io(&path, e))?;
            file.sync_all().map_err(|e| DataError::io(&path, e))?;
            let size = file.metadata().map_err(|e| DataError::io(&path, e))?.len();
            let md5 = fsutil::md5_file(&path)?;
            writeln!(manifest, "{md5}  {size}  {name}").expect("writing to a String");
        }
        fsutil::write_atomic(&tmp_top.join(MANIFEST), manifest.as_bytes())?;
        let top = self.extracted(dir);
        if top.exists() {
            // An unverified leftover (a verified one returns before extracting).
            std::fs::remove_dir_all(&top).map_err(|e| DataError::io(&top, e))?;
        }
        std::fs::rename(&tmp_top, &top).map_err(|e| DataError::io(&top, e))?;
        std::fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))
    }
}

fn remove_if_present(path: &Path) -> Result<(), DataError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::io(path, e)),
        _ => Ok(()),
    }
}
