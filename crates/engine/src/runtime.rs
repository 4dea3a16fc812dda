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
    /// The linked PyTorch's own version string (`2.11.0+cu130`), when its version.py was found.
    pub torch_build: &'static str,
    /// The CUDA version that PyTorch was built for (`13.0`; empty for a CPU-only build).
    pub torch_cuda: &'static str,
    pub libtorch_lib: &'static str,
    pub threads: usize,
    pub torch_threads: i32,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    /// The NVIDIA driver's version and the newest CUDA it supports, from nvidia-smi.
    pub nvidia_driver: Option<String>,
    pub driver_cuda: Option<String>,
    /// GPUs visible to this process (nvidia-smi, CUDA_VISIBLE_DEVICES, Slurm's GPU variables).
    pub gpus_visible: Option<String>,
    /// Why visible GPUs cannot be used by libtorch, with the fix ([`cuda_problem`]).
    pub cuda_problem: Option<String>,
    /// Whether fp32 matrix products on CUDA may use TF32 (off unless `train.tf32`).
    pub tf32: bool,
    pub check: String,
}

/// What nvidia-smi reports.
#[derive(Debug, Clone)]
pub struct NvidiaSmi {
    pub driver: String,
    /// The newest CUDA version the driver supports (nvidia-smi's "CUDA Version").
    pub cuda: String,
    /// The GPUs' names, by nvidia-smi index.
    pub gpus: Vec<String>,
}

/// nvidia-smi's driver version, CUDA version and GPU names; `None` where it cannot be run.
pub fn nvidia_smi() -> Option<NvidiaSmi> {
    static SMI: std::sync::OnceLock<Option<NvidiaSmi>> = std::sync::OnceLock::new();
    SMI.get_or_init(|| {
        let run = |args: &[&str]| -> Option<String> {
            let out = std::process::Command::new("nvidia-smi")
                .args(args)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let list = run(&["--query-gpu=name,driver_version", "--format=csv,noheader"])?;
        let rows: Vec<(String, String)> = list
            .lines()
            .filter_map(|l| {
                let (name, driver) = l.rsplit_once(',')?;
                Some((name.trim().to_string(), driver.trim().to_string()))
            })
            .collect();
        let header = run(&[]).unwrap_or_default();
        let cuda = header
            .split("CUDA Version:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("unknown")
            .to_string();
        Some(NvidiaSmi {
            driver: rows.first().map_or("unknown".into(), |r| r.1.clone()),
            cuda,
            gpus: rows.into_iter().map(|r| r.0).collect(),
        })
    })
    .clone()
}

/// The environment variables that hand GPUs to a process, checked for [`gpus_visible`].
const GPU_VARIABLES: [&str; 3] = ["CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"];

/// Where GPUs are visible to this process, in words (nvidia-smi's list, or the variables that
/// assign GPUs: `CUDA_VISIBLE_DEVICES`, Slurm's `SLURM_STEP_GPUS` / `SLURM_JOB_GPUS`); `None` when
/// nothing shows one. An empty value, `-1` or `NoDevFiles` hides the GPUs and shows none.
pub fn gpus_visible() -> Option<String> {
    let mut seen = Vec::new();
    if let Some(smi) = nvidia_smi().filter(|s| !s.gpus.is_empty()) {
        seen.push(format!(
            "nvidia-smi lists {} GPU{}: {}",
            smi.gpus.len(),
            if smi.gpus.len() == 1 { "" } else { "s" },
            smi.gpus.join(", ")
        ));
    }
    for var in GPU_VARIABLES {
        if let Ok(v) = std::env::var(var) {
            let v = v.trim();
            let hidden = v.is_empty() || v == "-1" || v.eq_ignore_ascii_case("nodevfiles");
            if !hidden {
                seen.push(format!("{var}={v}"));
            }
        }
    }
    (!seen.is_empty()).then(|| seen.join("; "))
}

/// The oldest Linux NVIDIA driver for a CUDA major version (NVIDIA's compatibility table).
fn minimum_driver(cuda: &str) -> Option<&'static str> {
    match cuda.split('.').next()? {
        "13" => Some("580"),
        "12" => Some("525"),
        "11" => Some("450"),
        _ => None,
    }
}

/// When GPUs are visible but libtorch cannot use them (the usual cause: PyPI's torch 2.11.0 is
/// built for CUDA 13 and the driver is older): the driver's and libtorch's CUDA versions, and the
/// fix. `None` when CUDA works or no GPU is visible. A run never falls back to the CPU silently.
pub fn cuda_problem() -> Option<String> {
    if tch::Cuda::is_available() {
        return None;
    }
    let seen = gpus_visible()?;
    let (build, cuda) = (env!("SIMSWEEP_TORCH_BUILD"), env!("SIMSWEEP_TORCH_CUDA"));
    let build = if build.is_empty() {
        TORCH_VERSION
    } else {
        build
    };
    let needs = if cuda.is_empty() {
        format!("the linked libtorch ({build}) is a CPU-only build")
    } else {
        format!(
            "libtorch {build} is built for CUDA {cuda}, which needs an NVIDIA driver for CUDA {cuda} or newer{}",
            minimum_driver(cuda).map_or(String::new(), |d| format!(" (Linux driver {d} or later)"))
        )
    };
    let driver = match nvidia_smi() {
        Some(s) => format!(
            "this machine's driver is {} (CUDA up to {})",
            s.driver, s.cuda
        ),
        None => "nvidia-smi cannot be run here, so the driver is unknown".into(),
    };
    Some(format!(
        "GPUs are visible ({seen}) but libtorch cannot use them: {needs}; {driver}. Fix: update the NVIDIA driver, or build simsweep against a PyTorch for this driver's CUDA (README, \"Another PyTorch build\"); to compute on the CPU on purpose, name it (--devices cpu, --device cpu)"
    ))
}

mod context {
    extern "C" {
        // at::globalContext() and its TF32 switches (libtorch_cpu): plain functions and member
        // functions taking the context as their first argument (x86-64 SysV).
        #[link_name = "_ZN2at13globalContextEv"]
        pub fn global_context() -> *mut std::ffi::c_void;
        #[link_name = "_ZN2at7Context18setAllowTF32CuBLASEb"]
        pub fn set_allow_tf32_cublas(ctx: *mut std::ffi::c_void, allow: bool);
        #[link_name = "_ZNK2at7Context15allowTF32CuBLASEv"]
        pub fn allow_tf32_cublas(ctx: *const std::ffi::c_void) -> bool;
    }
}

/// Allow (or forbid) TF32 for fp32 matrix products on CUDA (`train.tf32`; cuBLAS, PyTorch's
/// `torch.backends.cuda.matmul.allow_tf32`). Off by default, as in PyTorch: fp32 products then run
/// in full fp32, at a fraction of an Ampere-or-later GPU's tensor-core speed. cuDNN's own switch
/// (convolutions, which BERT has none of) keeps PyTorch's default. Process-wide; each run has its
/// own engine process.
pub fn set_tf32(allow: bool) {
    // SAFETY: libtorch's global context lives for the whole process; the setter takes a bool.
    unsafe { context::set_allow_tf32_cublas(context::global_context(), allow) }
}

/// Whether fp32 matrix products on CUDA may use TF32.
pub fn tf32() -> bool {
    // SAFETY: as in `set_tf32`.
    unsafe { context::allow_tf32_cublas(context::global_context()) }
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
        torch_build: env!("SIMSWEEP_TORCH_BUILD"),
        torch_cuda: env!("SIMSWEEP_TORCH_CUDA"),
        nvidia_driver: nvidia_smi().map(|s| s.driver),
        driver_cuda: nvidia_smi().map(|s| s.cuda),
        gpus_visible: gpus_visible(),
        cuda_problem: cuda_problem(),
        tf32: tf32(),
        check,
    }
}

mod ffi {
    extern "C" {
        // libtorch_cpu's per-device autocast state (at::autocast, c10::DeviceType and
        // c10::ScalarType are 8-bit integers passed in registers, x86-64 SysV). tch's own
        // `autocast` calls the device-less `is_enabled`/`set_enabled`, deprecated in libtorch 2.11:
        // each call prints a warning, several per step.
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device_type: i8) -> bool;
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device_type: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> std::ffi::c_int;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> std::ffi::c_int;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
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

/// CUDA autocast switched on in a dtype for as long as it lives; dropping it (also while a panic
/// unwinds) restores the previous state and dtype, and clears the cast cache when the outermost
/// region ends, as `torch.autocast` does.
pub struct Autocast {
    previous_enabled: bool,
    previous_dtype: i8,
    /// Autocast state is per thread: the guard must be dropped where it was made (not `Send`).
    _thread: std::marker::PhantomData<*const ()>,
}

impl Autocast {
    pub fn new(dtype: tch::Kind) -> Autocast {
        // SAFETY: plain libtorch functions of thread-local state, taking and returning small
        // integers; the values set are a valid DeviceType and ScalarType.
        unsafe {
            let guard = Autocast {
                previous_enabled: ffi::is_autocast_enabled(DEVICE_TYPE_CUDA),
                previous_dtype: ffi::get_autocast_dtype(DEVICE_TYPE_CUDA),
                _thread: std::marker::PhantomData,
            };
            ffi::set_autocast_dtype(DEVICE_TYPE_CUDA, scalar_type(dtype));
            ffi::set_autocast_enabled(DEVICE_TYPE_CUDA, true);
            ffi::increment_nesting();
            guard
        }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe {
            if ffi::decrement_nesting() == 0 {
                ffi::clear_cache();
            }
            ffi::set_autocast_enabled(DEVICE_TYPE_CUDA, self.previous_enabled);
            ffi::set_autocast_dtype(DEVICE_TYPE_CUDA, self.previous_dtype);
        }
    }
}

/// Run `f` under CUDA autocast in `dtype` (bf16 or fp16), through libtorch's per-device API
/// ([`Autocast`]). Where CUDA is unavailable autocast changes nothing, as tch's does.
pub fn autocast<T>(dtype: tch::Kind, f: impl FnOnce() -> T) -> T {
    if !tch::Cuda::is_available() {
        return f();
    }
    let _on = Autocast::new(dtype);
    f()
}

/// A host tensor on `device`: itself on the CPU; on CUDA copied from page-locked memory and
/// queued behind the device's work (the host goes on preparing the step; a copy from pageable
/// memory would wait). Pinned through `_pin_memory`: `pin_memory(device)` and `is_pinned(device)`
/// are deprecated in libtorch 2.11 and print a warning on every call.
pub fn to_device_queued(t: tch::Tensor, device: tch::Device) -> tch::Tensor {
    match device {
        tch::Device::Cpu => t,
        _ => t
            .internal_pin_memory(device)
            .to_device_(device, t.kind(), true, false),
    }
}

static HOST_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A read of device values by the host in the training loop. On CUDA each one waits until the
/// device has finished everything queued before it, so the loop keeps them few: one per metric
/// window (and, with fp16's loss scaler, one per step); every such read goes through here so that
/// tests can count them ([`host_reads`]).
pub fn host_read<T>(f: impl FnOnce() -> T) -> T {
    HOST_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    f()
}

/// How many [`host_read`]s this process has made.
pub fn host_reads() -> u64 {
    HOST_READS.load(std::sync::atomic::Ordering::Relaxed)
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
        if let Some(problem) = cuda_problem() {
            anyhow::bail!(problem);
        }
        return Ok(tch::Device::cuda_if_available());
    };
    let device = torch_device(
        simsweep_core::device::Device::parse(s).map_err(simsweep_core::BadInput::err)?,
    );
    if let tch::Device::Cuda(i) = device {
        if !tch::Cuda::is_available() || i as i64 >= tch::Cuda::device_count() {
            return Err(simsweep_core::BadInput::err(format!(
                "--device: cuda:{i} is not available ({} CUDA devices){}",
                tch::Cuda::device_count(),
                cuda_problem().map_or(String::new(), |p| format!("; {p}"))
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

    #[test]
    fn the_autocast_guard_sets_the_per_device_state_and_restores_it_even_on_panic() {
        use super::{ffi, Autocast, DEVICE_TYPE_CUDA as CUDA};
        // The state is thread-local: this test's thread starts with libtorch's defaults.
        let state = || unsafe {
            (
                ffi::is_autocast_enabled(CUDA),
                ffi::get_autocast_dtype(CUDA),
            )
        };
        assert_eq!(state(), (false, 5));
        {
            let _outer = Autocast::new(tch::Kind::BFloat16);
            assert_eq!(state(), (true, 15));
            {
                let _inner = Autocast::new(tch::Kind::Half);
                assert_eq!(state(), (true, 5));
            }
            assert_eq!(
                state(),
                (true, 15),
                "the inner region restored the outer one"
            );
        }
        assert_eq!(state(), (false, 5));
        let caught = std::panic::catch_unwind(|| {
            let _on = Autocast::new(tch::Kind::BFloat16);
            panic!("inside autocast");
        });
        assert!(caught.is_err());
        assert_eq!(state(), (false, 5), "restored while the panic unwound");
    }

    #[test]
    fn tf32_is_off_by_default_and_switches() {
        // The flags live in libtorch's global context: this test alone in the process touches them.
        assert!(!super::tf32(), "PyTorch's default: no TF32 in fp32 matmuls");
        super::set_tf32(true);
        assert!(super::tf32());
        super::set_tf32(false);
        assert!(!super::tf32());
    }

    #[test]
    fn minimum_drivers_follow_the_cuda_major_version() {
        assert_eq!(super::minimum_driver("13.0"), Some("580"));
        assert_eq!(super::minimum_driver("12.6"), Some("525"));
        assert_eq!(super::minimum_driver("9.2"), None);
    }
}

/// What a result depends on beyond its configuration: recorded by every run (an event of kind
/// `fingerprint`), shown by `eval --json`, `runs --format json` and the report, which warns when
/// runs compared side by side differ in it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Fingerprint {
    /// simsweep's version and commit (`0.1.0+<sha>`).
    pub simsweep: String,
    /// The linked PyTorch (`2.11.0+cu130`).
    pub libtorch: String,
    /// The CUDA version PyTorch was built for (empty for a CPU-only build).
    pub cuda: String,
    /// The device computed on: the GPU's name and driver, or the CPU's model.
    pub device: String,
    /// libtorch's intra-op threads.
    pub threads: i32,
    /// Training precision as computed (`fp32` on the CPU whatever `train.precision` says).
    pub precision: String,
    /// Whether fp32 products on CUDA may use TF32.
    pub tf32: bool,
    /// The transfer tasks' evaluation mode (`test`, `fasttest`).
    pub eval_mode: String,
    /// How STS12–16 are aggregated (SimCSE's `all`: one Spearman over the year's pairs).
    pub sts_aggregation: String,
    /// The sentence pooler of evaluations (`cls`, `cls_before_pooler`, …; `+mlp` when the MLP applies).
    pub pooler: String,
    /// Evaluation max length in tokens.
    pub max_len: usize,
}

/// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

impl Fingerprint {
    /// This process's fingerprint on `device`.
    pub fn new(
        device: tch::Device,
        precision: &str,
        eval_mode: &str,
        pooler: String,
        max_len: usize,
    ) -> Fingerprint {
        let device_desc = match device {
            tch::Device::Cuda(i) => {
                let smi = nvidia_smi();
                let name = smi
                    .as_ref()
                    .and_then(|s| s.gpus.get(i).cloned())
                    .unwrap_or_else(|| format!("cuda:{i}"));
                let driver = smi.map_or("unknown".into(), |s| s.driver);
                format!("{name}, driver {driver}")
            }
            _ => cpu_model(),
        };
        Fingerprint {
            simsweep: crate::code_version(),
            libtorch: env!("SIMSWEEP_TORCH_BUILD").to_string(),
            cuda: env!("SIMSWEEP_TORCH_CUDA").to_string(),
            device: device_desc,
            threads: tch::get_num_threads(),
            precision: precision.to_string(),
            tf32: tf32(),
            eval_mode: eval_mode.to_string(),
            sts_aggregation: "all".into(),
            pooler,
            max_len,
        }
    }
}
