//! `cargo xtask setup`: libtorch and the default data set.
//!
//! libtorch comes from PyPI, the one source of PyTorch's C++ libraries that the project's
//! machines can reach: the `torch` wheel holds them under `torch/lib` and `torch/include`.
//! It is installed once per user into a cache directory keyed by the version and shared by
//! every clone; `.cargo/libtorch.toml` then points cargo at it, so plain `cargo build` works.
//! A `LIBTORCH` set in the environment (a CUDA build, say) is used as it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{data, run_cmd, say};

/// The PyTorch release whose libtorch tch 0.26.0 is built against.
pub const TORCH_VERSION: &str = "2.13.0";

/// Wheels for a CPU-only install: the torch wheel without its dependencies, plus the two CUDA
/// runtime libraries that libtorch_cpu links against even on machines without a GPU.
const CPU_WHEELS: [&str; 3] = [
    "torch==2.13.0",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cupti==13.0.85",
];

/// Wheels for a CUDA install, with `--no-deps` as well: torch's CUDA dependencies as its
/// 2.13.0 metadata pins them (the `cuda-toolkit` extras spelled out), and the nvJitLink that
/// pip resolved for them. Left out are the dependencies only Python uses (triton, sympy,
/// networkx, jinja2, fsspec, filelock, setuptools, cuda-bindings), about 0.8 GB.
const CUDA_WHEELS: [&str; 16] = [
    "torch==2.13.0",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cupti==13.0.85",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.1.1.3",
    "nvidia-cufft==12.0.0.61",
    "nvidia-cufile==1.15.1.6",
    "nvidia-curand==10.4.0.35",
    "nvidia-cusolver==12.0.4.66",
    "nvidia-cusparse==12.6.3.3",
    "nvidia-nvjitlink==13.5.37",
    "nvidia-nvtx==13.0.85",
    "nvidia-cudnn-cu13==9.20.0.48",
    "nvidia-cusparselt-cu13==0.8.1",
    "nvidia-nccl-cu13==2.29.7",
    "nvidia-nvshmem-cu13==3.4.5",
];

#[derive(clap::Args)]
pub struct Args {
    /// Also install the CUDA libraries torch 2.13.0 depends on (cuDNN, cuBLAS, NCCL, …),
    /// for training on an NVIDIA GPU (several GB).
    #[arg(long)]
    cuda: bool,
    /// Also create the reference Python environment (PyTorch, torchvision, SciPy) that the
    /// side-by-side benchmarks and fixture scripts use; `cargo xtask bench` does so on demand.
    #[arg(long)]
    python: bool,
    /// The data directory (default: $MPCL_DATA_DIR or ~/.local/share/mpcl/datasets).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure_libtorch(args.cuda)?;
    if args.python {
        let python = crate::python::ensure_env()?;
        say(format!(
            "reference Python environment ready: {}",
            python.display()
        ));
    }
    data::ensure(
        &mpcl_data::Dataset::FashionMnist,
        &data::resolve_dir(args.data_dir.as_deref()),
        None,
    )
}

/// The per-user cache: `$MPCL_CACHE_DIR`, else `$XDG_CACHE_HOME/mpcl`, else `~/.cache/mpcl`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("MPCL_CACHE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = env("XDG_CACHE_HOME") {
        return Ok(dir.join("mpcl"));
    }
    let home = env("HOME").context("neither MPCL_CACHE_DIR nor HOME is set")?;
    Ok(home.join(".cache/mpcl"))
}

fn is_libtorch(dir: &Path) -> bool {
    dir.join("lib/libtorch_cpu.so").exists() && dir.join("include/torch").exists()
}

/// Makes sure a libtorch is available to cargo and returns its directory.
pub fn ensure_libtorch(cuda: bool) -> anyhow::Result<PathBuf> {
    if let Some(dir) = user_libtorch() {
        if !is_libtorch(&dir) {
            bail!(
                "LIBTORCH={} has no lib/libtorch_cpu.so and include/torch: unset it to let \
                 xtask install libtorch {TORCH_VERSION}, or point it at a libtorch install",
                dir.display()
            );
        }
        say(format!("using libtorch from LIBTORCH={}", dir.display()));
        if cuda {
            say("--cuda installs nothing while LIBTORCH is set: unset it to install the CUDA one");
        }
        return Ok(dir);
    }
    let cache = cache_dir()?;
    let cpu_root = cache.join(format!("libtorch-{TORCH_VERSION}"));
    let cuda_root = cache.join(format!("libtorch-{TORCH_VERSION}-cuda"));
    // A CUDA install serves CPU training too, so it is preferred once present.
    let root = if cuda || is_libtorch(&cuda_root.join("torch")) {
        cuda_root
    } else {
        cpu_root
    };
    let torch = root.join("torch");
    if is_libtorch(&torch) {
        say(format!(
            "libtorch {TORCH_VERSION} found in {}",
            torch.display()
        ));
    } else {
        install(&root, cuda)?;
    }
    write_cargo_config(&torch)?;
    Ok(torch)
}

/// A `LIBTORCH` that the user set. Cargo also passes the value from `.cargo/` to xtask, so
/// the guard's directory and the one `.cargo/libtorch.toml` names do not count.
pub fn user_libtorch() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("LIBTORCH").filter(|v| !v.is_empty())?);
    let cargo_dir = crate::root().join(".cargo");
    let written = std::fs::read_to_string(cargo_dir.join("libtorch.toml")).unwrap_or_default();
    let ours = dir == cargo_dir.join("libtorch-missing")
        || written.contains(&format!("{:?}", dir.display().to_string()));
    (!ours).then_some(dir)
}

/// Installs the wheels with pip into a temporary directory renamed into place at the end, so
/// an interrupted install never looks like a complete one.
fn install(root: &Path, cuda: bool) -> anyhow::Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let pip_ok = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pip_ok {
        bail!(
            "installing libtorch {TORCH_VERSION} needs `{python} -m pip` (set PYTHON to \
             another interpreter), or set LIBTORCH to an existing libtorch {TORCH_VERSION}"
        );
    }
    let partial = root.with_extension("partial");
    if partial.exists() {
        say(format!(
            "removing an interrupted install in {}",
            partial.display()
        ));
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .args(["--progress-bar", "off", "--target"])
    .arg(&partial);
    let wheels: &[&str] = if cuda {
        say(format!(
            "installing libtorch {TORCH_VERSION} with its CUDA libraries from PyPI (torch and \
             {} NVIDIA wheels: cuDNN, cuBLAS, NCCL, …; 2.5 GB to download, 3.8 GB on disk) \
             into {}",
            CUDA_WHEELS.len() - 1,
            root.display()
        ));
        &CUDA_WHEELS
    } else {
        say(format!(
            "installing libtorch {TORCH_VERSION} for CPU from PyPI ({}; about 1.2 GB on disk, \
             a minute or two) into {}",
            CPU_WHEELS.join(", "),
            root.display()
        ));
        &CPU_WHEELS
    };
    pip.arg("--no-deps").args(wheels);
    run_cmd(&mut pip)?;
    if !is_libtorch(&partial.join("torch")) {
        bail!("pip finished but {} holds no libtorch", partial.display());
    }
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    std::fs::rename(&partial, root).with_context(|| format!("renaming to {}", root.display()))?;
    say(format!(
        "libtorch {TORCH_VERSION} installed in {}",
        root.join("torch").display()
    ));
    Ok(())
}

/// Points cargo at `torch` through `.cargo/libtorch.toml`, which overrides the guard that
/// otherwise makes builds fail with instructions.
fn write_cargo_config(torch: &Path) -> anyhow::Result<()> {
    let path = crate::root().join(".cargo/libtorch.toml");
    let text = format!(
        "# Written by `cargo xtask setup`; not tracked. A LIBTORCH in the environment wins.\n\
         [env]\nLIBTORCH = {{ value = {:?}, force = false }}\n",
        torch.display().to_string()
    );
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        say(format!("pointing cargo at it in {}", path.display()));
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
