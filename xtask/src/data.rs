//! `cargo xtask download`: data sets into the data directory, verified.
//!
//! For Fashion-MNIST the sources are tried in order: the data directory, the system copy of
//! Debian's `dataset-fashion-mnist` (installed with apt-get when xtask runs as root and the
//! copy is missing), then the official download.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use mpcl_data::fashion_mnist::{self, FashionMnist};

use crate::say;

#[derive(clap::Args)]
pub struct Args {
    /// The data set: `fashion-mnist`.
    dataset: String,
    /// The data directory (default: $MPCL_DATA_DIR or ~/.local/share/mpcl/datasets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = resolve_dir(args.data_dir.as_deref());
    match args.dataset.as_str() {
        "fashion-mnist" => ensure_fashion_mnist(&dir),
        // FIXME(#7): CIFAR-10/100 and STL-10 readers and downloads.
        other => bail!("unknown data set {other:?}: known data sets are: fashion-mnist"),
    }
}

/// The `--data-dir` flag if given, else the library's default.
pub fn resolve_dir(flag: Option<&Path>) -> PathBuf {
    flag.map_or_else(mpcl_data::default_data_dir, Path::to_owned)
}

/// Makes sure a verified Fashion-MNIST is in `data_dir`, saying where it comes from.
pub fn ensure_fashion_mnist(data_dir: &Path) -> anyhow::Result<()> {
    let fm = FashionMnist::new(data_dir);
    let Some(first) = fm.first_unverified()? else {
        say(format!("Fashion-MNIST verified in {}", fm.dir().display()));
        return Ok(());
    };
    let system = Path::new(fashion_mnist::SYSTEM_DIR);
    if !system.exists() && can_apt() {
        say(
            "Fashion-MNIST is not installed: installing Debian's package dataset-fashion-mnist \
             (31 MB download) with apt-get",
        );
        if !apt_install() {
            say("apt-get could not install it; trying the official download next");
        }
    }
    if system.exists() {
        say(format!(
            "importing Fashion-MNIST from {} into {}",
            system.display(),
            dir(&fm)
        ));
        if fm.import(system)? {
            say("Fashion-MNIST verified");
            return Ok(());
        }
        say(format!("{} is incomplete", system.display()));
    }
    say(format!(
        "downloading Fashion-MNIST from {}",
        fashion_mnist::BASE_URL
    ));
    let mut last = (String::new(), 0u64);
    let progress = |name: &str, n: u64, total: Option<u64>| {
        let step = n >> 22; // every 4 MiB
        if last.0 != name || last.1 != step {
            last = (name.to_owned(), step);
            let total = total.map_or(String::new(), |t| format!(" of {:.1} MB", t as f64 / 1e6));
            say(format!("  {name}: {:.1} MB{total}", n as f64 / 1e6));
        }
    };
    if let Err(e) = fm.download(fashion_mnist::BASE_URL, progress) {
        bail!("{e}\n{}", fm.missing(&first));
    }
    say("Fashion-MNIST downloaded and verified");
    Ok(())
}

fn dir(fm: &FashionMnist) -> String {
    fm.dir().display().to_string()
}

/// Whether xtask runs as root on a machine with apt-get.
fn can_apt() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    root && Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the package, refreshing the package lists once if the first attempt fails.
fn apt_install() -> bool {
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "dataset-fashion-mnist",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    install() || {
        say("refreshing the package lists (apt-get update)");
        let updated = Command::new("apt-get").args(["update", "-q"]).status();
        updated.is_ok_and(|s| s.success()) && install()
    }
}
