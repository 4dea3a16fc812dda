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

/// Size libtorch's intra-op pool (and rayon's) to the cores granted. libtorch's OpenMP otherwise sizes itself to
/// the host's cores, not the container's, and a 2-core container then runs an order of magnitude slower.
pub fn init() -> usize {
    let n = threads();
    tch::set_num_threads(n as i32);
    // The same number of threads for simsweep's own parallel loops (dropout masks, the fused
    // optimizer, tokenizing); a second call finds the pool built and keeps it.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
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

mod ffi {
    extern "C" {
        // at::autocast::set_autocast_dtype(c10::DeviceType, c10::ScalarType) and its getter, exported
        // by libtorch_cpu. Both enums are 8-bit integers passed in registers (x86-64 SysV).
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
    }
}

const DEVICE_TYPE_CUDA: i8 = 1;

fn scalar_type(kind: tch::Kind) -> i8 {
    match kind {
        tch::Kind::Half => 5,
        tch::Kind::BFloat16 => 15,
        _ => 6, // Float
    }
}

/// Run `f` under CUDA autocast in `dtype` (bf16 or fp16). tch's own `autocast` always uses
/// libtorch's default (fp16), so the dtype is set here first and restored afterwards.
pub fn autocast<T>(dtype: tch::Kind, f: impl FnOnce() -> T) -> T {
    // SAFETY: plain functions of libtorch taking and returning small integers; the value set is a
    // valid ScalarType and is restored before returning.
    let previous = unsafe { ffi::get_autocast_dtype(DEVICE_TYPE_CUDA) };
    unsafe { ffi::set_autocast_dtype(DEVICE_TYPE_CUDA, scalar_type(dtype)) };
    let out = tch::autocast(true, f);
    unsafe { ffi::set_autocast_dtype(DEVICE_TYPE_CUDA, previous) };
    out
}

/// The name of a libtorch device (`cpu`, `cuda:N`).
pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The libtorch device of a device name.
pub fn torch_device(d: simsweep_core::device::Device) -> tch::Device {
    match d {
        simsweep_core::device::Device::Cpu => tch::Device::Cpu,
        simsweep_core::device::Device::Cuda(i) => tch::Device::Cuda(i),
    }
}

/// `--device` as given, or CUDA device 0 where CUDA is available, else the CPU; a CUDA device
/// that does not exist is bad input.
pub fn device_arg(d: Option<&str>) -> anyhow::Result<tch::Device> {
    let Some(s) = d else {
        return Ok(tch::Device::cuda_if_available());
    };
    let device = torch_device(
        simsweep_core::device::Device::parse(s).map_err(simsweep_core::BadInput::err)?,
    );
    if let tch::Device::Cuda(i) = device {
        if !tch::Cuda::is_available() || i as i64 >= tch::Cuda::device_count() {
            return Err(simsweep_core::BadInput::err(format!(
                "--device: cuda:{i} is not available ({} CUDA devices)",
                tch::Cuda::device_count()
            )));
        }
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    #[test]
    fn autocast_dtype_round_trips() {
        unsafe {
            let before = super::ffi::get_autocast_dtype(super::DEVICE_TYPE_CUDA);
            super::ffi::set_autocast_dtype(super::DEVICE_TYPE_CUDA, 15);
            assert_eq!(super::ffi::get_autocast_dtype(super::DEVICE_TYPE_CUDA), 15);
            super::ffi::set_autocast_dtype(super::DEVICE_TYPE_CUDA, before);
            assert_eq!(before, 5, "libtorch's default CUDA autocast dtype is fp16");
        }
        // On a machine without CUDA the closure simply runs.
        assert_eq!(super::autocast(tch::Kind::BFloat16, || 3), 3);
    }
}
