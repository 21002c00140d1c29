//! Build script shared by the crates that link libtorch: it records libtorch's library
//! directory as an rpath of every binary, test and benchmark they build, so nothing needs
//! `LD_LIBRARY_PATH`. torch-sys exports the directory it linked against as
//! `DEP_TCH_LIBTORCH_LIB` to the crates that depend on it directly.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
