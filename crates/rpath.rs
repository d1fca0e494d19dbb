//! Shared build script for every package that links libtorch (`build = "../rpath.rs"`).
//!
//! torch-sys (`links = "tch"`) exports the libtorch library directory to the build scripts of its
//! direct dependents as `DEP_TCH_LIBTORCH_LIB`. We embed it as an rpath in every binary, test and
//! bench of the package, so `r3m` runs without `LD_LIBRARY_PATH`, and we record the libtorch version
//! (read from the `torch/version.py` next to that directory) for `r3m doctor`.
//!
//! A package with `src/shim.cpp` (r3m-model's autocast switches, r3m-train's c10d process groups
//! and fused Adam) gets it compiled by the `cc` crate (warnings on for the shim; the headers of
//! libtorch, Gloo and CUDA as system headers) against that same libtorch and linked statically.

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
    compile_shim(&lib);
}

fn compile_shim(lib: &str) {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let src = dir.join("src").join("shim.cpp");
    if !src.exists() {
        return;
    }
    println!("cargo:rerun-if-changed={}", src.display());
    let include = std::path::Path::new(lib).join("..").join("include");
    // c10d's Gloo process group (r3m-train's data-parallel shim) needs Gloo's headers, which the
    // PyPI wheel lacks: Debian's libgloo-dev (scripts/setup.sh installs it) or $GLOO_INCLUDE
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE");
    let gloo = std::env::var("GLOO_INCLUDE").map(std::path::PathBuf::from).unwrap_or_else(|_| "/usr/include".into());
    let mut gloo_flags: Vec<String> = Vec::new();
    if gloo.join("gloo/config.h").exists() {
        gloo_flags.extend(["-DUSE_C10D_GLOO".into(), "-DR3M_HAVE_GLOO".into(), format!("-I{}", gloo.display())]);
    } else {
        println!(
            "cargo:warning=no Gloo headers ({}/gloo): data-parallel training is off in this build",
            gloo.display()
        );
    }
    let nccl_flags = nccl_flags(lib);
    // the cc crate, warnings on for our code; libtorch's, Gloo's and CUDA's headers as system
    // headers, so their own warnings stay out
    let mut build = cc::Build::new();
    build.cpp(true).file(&src).flag("-std=c++17").warnings(true).extra_warnings(true);
    for dir in [include.clone(), include.join("torch/csrc/api/include")] {
        build.flag("-isystem").flag(dir.to_string_lossy().as_ref());
    }
    for f in gloo_flags.iter().chain(&nccl_flags) {
        match f.strip_prefix("-I") {
            // the compiler's own system folder stays where it is (naming it again breaks
            // libstdc++'s #include_next)
            Some("/usr/include") => {}
            Some(dir) => {
                build.flag("-isystem").flag(dir);
            }
            None => {
                build.flag(f.as_str());
            }
        }
    }
    build.compile("r3m_shim");
}

/// Flags that build the NCCL process group into a shim that asks for it (`R3M_WANTS_NCCL` in its
/// source), or none. NCCL needs a libtorch with CUDA (`libtorch_cuda.so`) and headers that the PyPI
/// wheels spread over Python packages next to torch: `nccl.h` (nvidia-nccl), the CUDA runtime's
/// (nvidia-cuda-runtime), `crt/host_config.h` (nvidia-cuda-crt) and `nv/target` (nvidia-cuda-cccl);
/// scripts/setup.sh installs them. `$NCCL_INCLUDE` and `$CUDA_INCLUDE` point elsewhere.
fn nccl_flags(lib: &str) -> Vec<String> {
    println!("cargo:rerun-if-env-changed=NCCL_INCLUDE");
    println!("cargo:rerun-if-env-changed=CUDA_INCLUDE");
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let wants = std::fs::read_to_string(dir.join("src").join("shim.cpp")).is_ok_and(|s| s.contains("R3M_WANTS_NCCL"));
    if !wants {
        return Vec::new();
    }
    let lib = std::path::Path::new(lib);
    // torch/lib → site-packages/nvidia/...
    let nvidia = lib.join("../../nvidia");
    let env_dir = |k: &str| std::env::var(k).ok().map(std::path::PathBuf::from);
    let nccl = env_dir("NCCL_INCLUDE").unwrap_or_else(|| nvidia.join("nccl/include"));
    let cuda = env_dir("CUDA_INCLUDE").unwrap_or_else(|| {
        ["cu13/include", "cu12/include", "cuda_runtime/include"]
            .iter()
            .map(|d| nvidia.join(d))
            .find(|d| d.join("cuda_runtime_api.h").exists())
            .unwrap_or_else(|| nvidia.join("cu13/include"))
    });
    let missing: Vec<String> = [
        (lib.join("libtorch_cuda.so"), "a libtorch with CUDA"),
        (nccl.join("nccl.h"), "nccl.h"),
        (cuda.join("cuda_runtime_api.h"), "the CUDA runtime headers"),
        (cuda.join("crt/host_config.h"), "crt/host_config.h (pip install nvidia-cuda-crt)"),
        (cuda.join("nv/target"), "nv/target (pip install nvidia-cuda-cccl)"),
    ]
    .iter()
    .filter(|(p, _)| !p.exists())
    .map(|(p, what)| format!("{what} at {}", p.display()))
    .collect();
    if !missing.is_empty() {
        println!("cargo:warning=NCCL is not built (data-parallel CUDA runs use Gloo): missing {}", missing.join("; "));
        return Vec::new();
    }
    vec![
        "-DUSE_C10D_NCCL".into(),
        "-DR3M_HAVE_NCCL".into(),
        format!("-I{}", nccl.display()),
        format!("-I{}", cuda.display()),
    ]
}
