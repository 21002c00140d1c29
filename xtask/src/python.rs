//! The reference Python environment: PyTorch, torchvision and SciPy at pinned versions, for
//! the side-by-side benchmarks and for regenerating golden fixtures.
//!
//! It is a virtual environment in the per-user cache (`<cache>/pyenv-torch-<version>`),
//! created on first use from PyPI and reused by every clone. Its requirements live in
//! `python/requirements.txt`; a stamp holding that file's text marks a finished install, so an
//! interrupted or outdated one is rebuilt rather than trusted.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::setup::{TORCH_VERSION, cache_dir};
use crate::{root, run_cmd, say};

const STAMP: &str = "mpcl-requirements.txt";

/// The interpreter of the reference environment, installed first if missing or outdated.
pub fn ensure_env() -> anyhow::Result<PathBuf> {
    let requirements_path = root().join("python/requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path)
        .with_context(|| format!("reading {}", requirements_path.display()))?;
    let env = cache_dir()?.join(format!("pyenv-torch-{TORCH_VERSION}"));
    let python = env.join("bin/python");
    let stamp = env.join(STAMP);
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str()) {
        return Ok(python);
    }
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    say(format!(
        "creating the reference Python environment (PyTorch {TORCH_VERSION}, torchvision, \
         SciPy from PyPI; several GB, minutes) in {}",
        env.display()
    ));
    if env.exists() {
        std::fs::remove_dir_all(&env).with_context(|| format!("removing {}", env.display()))?;
    }
    let venv_ok = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&env)
        .status()
        .is_ok_and(|s| s.success());
    if !venv_ok {
        bail!(
            "`{base} -m venv {}` failed: the benchmarks need Python 3 with venv and pip (set \
             PYTHON to another interpreter)",
            env.display()
        );
    }
    run_cmd(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--progress-bar", "off", "-r"])
            .arg(&requirements_path),
    )?;
    write_stamp(&stamp, &requirements)?;
    Ok(python)
}

fn write_stamp(stamp: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = stamp.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, stamp).with_context(|| format!("writing {}", stamp.display()))
}
