//! Shared build script for every package that links libtorch (`build = "../rpath.rs"`).
//!
//! torch-sys (`links = "tch"`) exports the libtorch library directory to the build scripts of its
//! direct dependents as `DEP_TCH_LIBTORCH_LIB`. We embed it as an rpath in every binary, test and
//! bench of the package, so `r3m` runs without `LD_LIBRARY_PATH`, and we record the libtorch version
//! (read from the `torch/version.py` next to that directory) for `r3m doctor`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // The PyPI wheel carries CUDA in libtorch_cuda.so, which nothing references by symbol: keep it
    // linked (the linker's --as-needed would drop it) so the same binary uses a GPU where one is.
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let version_py = std::path::Path::new(&lib).join("..").join("version.py");
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=R3M_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=R3M_LIBTORCH_LIB={lib}");
}
