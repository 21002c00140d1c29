//! `cargo xtask download`: data sets into the data directory, verified; `--list` shows what
//! is there.
//!
//! The data directory is, in order: `--data-dir`, `data.dir` of the experiment's config (for
//! `cargo xtask experiment`), `$MPCL_DATA_DIR`, `~/.local/share/mpcl/datasets`. For
//! Fashion-MNIST the system copy of Debian's `dataset-fashion-mnist` is tried before the
//! download (installed with apt-get when xtask runs as root and the copy is missing).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mpcl_data::idx_set::FASHION_MNIST_SYSTEM_DIR;
use mpcl_data::{Dataset, DatasetName, Status};

use crate::say;

#[derive(clap::Args)]
pub struct Args {
    /// The data set: fashion-mnist, mnist, cifar10, cifar100, cifar100-coarse, stl10 or
    /// image-folder (with --root).
    #[arg(required_unless_present = "list")]
    dataset: Option<DatasetName>,
    /// Show every data set: verified, present, unverified or missing, with its path.
    #[arg(long, conflicts_with = "dataset")]
    list: bool,
    /// The data directory (default: $MPCL_DATA_DIR or ~/.local/share/mpcl/datasets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The root of an image folder (image-folder only; also listed by --list).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Download from this base URL (ending in `/`) instead of the official one: a mirror or a
    /// local copy served over HTTP holding the official file names.
    #[arg(long)]
    mirror: Option<String>,
    /// The class list file of an image folder, one class folder per line, in label order.
    #[arg(long, requires = "root")]
    class_list: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = resolve_dir(args.data_dir.as_deref());
    let folder = |name| Dataset::new(name, args.root.as_deref(), args.class_list.as_deref());
    match args.dataset {
        Some(name) => ensure(&folder(name)?, &dir, args.mirror.as_deref()),
        None => list(
            &dir,
            args.root
                .is_some()
                .then(|| folder(DatasetName::ImageFolder)),
        ),
    }
}

/// The `--data-dir` flag if given, else the library's default.
pub fn resolve_dir(flag: Option<&Path>) -> PathBuf {
    flag.map_or_else(mpcl_data::default_data_dir, Path::to_owned)
}

/// Prints one line per data set: its status and where it is, hashing every file.
fn list(
    data_dir: &Path,
    folder: Option<Result<Dataset, mpcl_data::DataError>>,
) -> anyhow::Result<()> {
    println!("data directory: {}", data_dir.display());
    let mut sets: Vec<Dataset> = DatasetName::ALL
        .into_iter()
        .filter(|&n| n != DatasetName::ImageFolder)
        .map(|n| Dataset::new(n, None, None))
        .collect::<Result<_, _>>()?;
    if let Some(folder) = folder {
        sets.push(folder?);
    }
    for ds in sets {
        let status = match ds.status(data_dir)? {
            Status::Verified => "verified".to_owned(),
            Status::Present => "present (read in place, no checksum)".to_owned(),
            Status::Unverified(why) => format!("unverified: {why}"),
            Status::Missing => "missing".to_owned(),
        };
        println!(
            "{:<16} {:<11} {}",
            ds.name(),
            status_word(&status),
            ds.dir(data_dir).display()
        );
        if let Some((_, detail)) = status.split_once(": ") {
            println!("{:<16} {detail}", "");
        }
    }
    Ok(())
}

fn status_word(status: &str) -> &str {
    status.split([' ', ':']).next().unwrap_or(status)
}

/// Makes sure a verified copy of `ds` is in `data_dir`, downloading from `mirror` if given,
/// saying where it comes from; on failure the error lists every way to provide it.
pub fn ensure(ds: &Dataset, data_dir: &Path, mirror: Option<&str>) -> anyhow::Result<()> {
    if *ds == Dataset::FashionMnist
        && ds.status(data_dir)? != Status::Verified
        && !Path::new(FASHION_MNIST_SYSTEM_DIR).exists()
        && can_apt()
    {
        say(
            "Fashion-MNIST is not installed: installing Debian's package dataset-fashion-mnist \
             (31 MB download) with apt-get",
        );
        if !apt_install() {
            say("apt-get could not install it; trying the official download next");
        }
    }
    let mut progress = Progress::new();
    let said = ds.provision_from(data_dir, mirror, &mut |name, n, total| {
        progress.update(name, n, total)
    });
    progress.finish();
    say(said?);
    Ok(())
}

/// A download's progress: a bar with size and rate on a terminal, else a line every 8 MB.
struct Progress {
    bar: Option<ProgressBar>,
    file: String,
    last_line: u64,
}

impl Progress {
    fn new() -> Self {
        Self {
            bar: None,
            file: String::new(),
            last_line: 0,
        }
    }

    fn update(&mut self, file: &str, bytes: u64, total: Option<u64>) {
        if file != self.file {
            self.finish();
            self.file = file.to_owned();
            self.last_line = 0;
            if std::io::stderr().is_terminal() {
                let bar = ProgressBar::new(total.unwrap_or(0));
                let style = ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(file.to_owned());
                bar.enable_steady_tick(Duration::from_millis(200));
                self.bar = Some(bar);
            }
        }
        match &self.bar {
            Some(bar) => {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(bytes);
            }
            None if bytes >= self.last_line + 8_000_000 || Some(bytes) == total => {
                self.last_line = bytes;
                let of = total.map_or(String::new(), |t| format!(" of {:.1} MB", t as f64 / 1e6));
                say(format!("  {file}: {:.1} MB{of}", bytes as f64 / 1e6));
            }
            None => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
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
