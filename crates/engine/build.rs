//! Link-time set-up for libtorch, for the engine binary only (the front links no libtorch):
//! * an rpath to libtorch's lib folder, so `target/release/simsweep-engine` runs without `LD_LIBRARY_PATH`;
//! * `libtorch_cuda` linked with `--no-as-needed` when it exists, so CUDA is found on a GPU machine
//!   (otherwise the linker drops it: nothing references it by symbol, and `Cuda::is_available()` stays false).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // Exported by torch-sys (links = "tch") to crates that depend on it directly.
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set; no rpath added for libtorch");
        println!("cargo:rustc-env=SIMSWEEP_LIBTORCH_LIB=");
        println!("cargo:rustc-env=SIMSWEEP_TORCH_CUDA=");
        println!("cargo:rustc-env=SIMSWEEP_TORCH_BUILD=");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-env=SIMSWEEP_LIBTORCH_LIB={lib}");
    // The CUDA version the linked PyTorch was built for (`cuda = '13.0'` in torch/version.py;
    // empty for a CPU-only build or a bare libtorch), for the messages of a GPU it cannot use.
    let version_py = Path::new(&lib).join("../version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let text = std::fs::read_to_string(&version_py).unwrap_or_default();
    let field = |name: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(['\'', '"']).nth(1))
            .unwrap_or("")
            .to_string()
    };
    println!("cargo:rustc-env=SIMSWEEP_TORCH_CUDA={}", field("cuda"));
    println!(
        "cargo:rustc-env=SIMSWEEP_TORCH_BUILD={}",
        field("__version__")
    );
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
