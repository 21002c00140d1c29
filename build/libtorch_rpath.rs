//! Build script shared by the crates that link libtorch. It records libtorch's library
//! directory as an rpath of every binary, test and benchmark they build, so nothing needs
//! `LD_LIBRARY_PATH`, and exposes the libtorch version it finds as `MPCL_LIBTORCH_VERSION`.
//! torch-sys exports the directory it linked against as `DEP_TCH_LIBTORCH_LIB` to the crates
//! that depend on it directly.

use std::path::Path;

/// Emits the rpath and the version; public so that a crate with a build script of its own
/// (mpcl-autocast) can include this file as a module and call it.
pub fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=MPCL_LIBTORCH_VERSION=unknown");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!(
        "cargo:rustc-env=MPCL_LIBTORCH_VERSION={}",
        version(Path::new(&lib))
    );
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
