//! Compiles `src/shim.cpp`, four C functions over libtorch's `at::autocast` API, against the
//! headers of the libtorch that torch-sys links (its `lib` directory arrives as
//! `DEP_TCH_LIBTORCH_LIB`; the headers sit beside it in `include`), and sets libtorch's rpath
//! as the workspace's shared build script does for the other crates that link it.

use std::path::PathBuf;

#[path = "../../build/libtorch_rpath.rs"]
mod libtorch;

fn main() {
    libtorch::main();
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys exports DEP_TCH_LIBTORCH_LIB (its `links = \"tch\"`)");
    let include = PathBuf::from(&lib)
        .parent()
        .map(|root| root.join("include"))
        .expect("libtorch's lib directory has a parent");
    // The symbols used take only enums and bools, so the C++11 string ABI does not change
    // them; it is set as torch-sys sets it anyway, to compile the headers alike.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("src/shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("mpcl_autocast_shim");
}
