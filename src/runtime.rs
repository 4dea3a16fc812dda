//! Process-wide libtorch set-up: threads and devices.

use serde::Serialize;

/// The PyTorch release this build links (tch 0.24).
pub const TORCH_VERSION: &str = "2.11.0";

/// Cores this process may use: `SIMSWEEP_THREADS` if set, else what the OS and cgroup grant.
pub fn threads() -> usize {
    std::env::var("SIMSWEEP_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Size libtorch's intra-op pool to the cores granted. libtorch's OpenMP otherwise sizes itself to
/// the host's cores, not the container's, and a 2-core container then runs an order of magnitude slower.
pub fn init() -> usize {
    let n = threads();
    tch::set_num_threads(n as i32);
    n
}

#[derive(Debug, Serialize)]
pub struct Info {
    pub simsweep: String,
    pub torch: &'static str,
    pub libtorch_lib: &'static str,
    pub threads: usize,
    pub torch_threads: i32,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub check: String,
}

/// What this build sees: versions, threads, CUDA. Runs a small matrix product to prove libtorch works.
pub fn info() -> Info {
    let threads = init();
    let a = tch::Tensor::arange(6, (tch::Kind::Float, tch::Device::Cpu)).reshape([2, 3]);
    let prod = a.matmul(&a.transpose(0, 1));
    let check = format!(
        "{:?}",
        Vec::<f32>::try_from(prod.flatten(0, -1)).unwrap_or_default()
    );
    Info {
        simsweep: crate::code_version(),
        torch: TORCH_VERSION,
        libtorch_lib: env!("SIMSWEEP_LIBTORCH_LIB"),
        threads,
        torch_threads: tch::get_num_threads(),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        check,
    }
}
