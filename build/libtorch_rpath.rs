//! Build script shared by the crates that link libtorch. It records libtorch's library
//! directory as an rpath of every binary, test and benchmark they build, so nothing needs
//! `LD_LIBRARY_PATH`, and exposes the libtorch version it finds as `MPCL_LIBTORCH_VERSION`
//! and that directory as `MPCL_LIBTORCH_LIB`. torch-sys exports the directory it linked
//! against as `DEP_TCH_LIBTORCH_LIB` to the crates that depend on it directly.
//!
//! With a CUDA libtorch it also keeps `libtorch_cuda.so` among the libraries those binaries
//! load. torch-sys asks for it, but rustc links with `--as-needed`, and since no Rust or C++
//! code calls into it by name (its kernels register themselves when it loads), the linker
//! drops it: the binary then runs, but libtorch knows no CUDA device on any machine. The PyPI
//! torch wheel always holds `libtorch_cuda.so`; `cargo xtask setup` installs it without the
//! NVIDIA libraries it needs, and there dropping it is what lets the binary start at all. So
//! the library is kept only when it would load: when `ldd`, which resolves dependencies as
//! the loader does (through the library's RPATH), finds every one of them.
//! `MPCL_LIBTORCH_CUDA` tells the crates which way it went ("1" or "0").

use std::path::Path;

/// Emits the rpath, the CUDA link, the directory and the version; public so that a crate
/// with a build script of its own (mpcl-autocast) can include this file as a module and call
/// it.
pub fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=MPCL_LIBTORCH_VERSION=unknown");
        println!("cargo:rustc-env=MPCL_LIBTORCH_LIB=");
        println!("cargo:rustc-env=MPCL_LIBTORCH_CUDA=0");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-env=MPCL_LIBTORCH_LIB={lib}");
    let cuda = loads(&Path::new(&lib).join("libtorch_cuda.so"));
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-env=MPCL_LIBTORCH_CUDA={}", u8::from(cuda));
    println!(
        "cargo:rustc-env=MPCL_LIBTORCH_VERSION={}",
        version(Path::new(&lib))
    );
}

/// Whether the shared library at `path` exists and `ldd` resolves all its dependencies. An
/// `ldd` that cannot run is reported as a build warning (and CUDA left out).
fn loads(path: &Path) -> bool {
    if !path.exists() {
        return false;
    }
    match std::process::Command::new("ldd").arg(path).output() {
        Ok(out) if out.status.success() => {
            !String::from_utf8_lossy(&out.stdout).contains("not found")
        }
        _ => {
            println!(
                "cargo:warning=linking libtorch without CUDA: `ldd {}` did not run",
                path.display()
            );
            false
        }
    }
}

/// The version of the libtorch whose `lib` directory is `lib`: from `build-version` (the
/// libtorch archives) or `version.py` (the PyPI wheel), else "unknown".
fn version(lib: &Path) -> String {
    let root = lib.parent().unwrap_or(lib);
    let from_archive = std::fs::read_to_string(root.join("build-version")).ok();
    let from_wheel = || {
        let text = std::fs::read_to_string(root.join("version.py")).ok()?;
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        Some(line.split('\'').nth(1)?.to_owned())
    };
    from_archive
        .map(|v| v.trim().to_owned())
        .or_else(from_wheel)
        .unwrap_or("unknown".into())
}
