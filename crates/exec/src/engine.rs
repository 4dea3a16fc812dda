//! Finding and starting the engine binary (`simsweep-engine`), the only program that links
//! libtorch. The front runs it for every command that computes.

use anyhow::{Context, Result};
use simsweep_core::BadInput;
use std::path::PathBuf;
use std::process::Command;

/// Names the engine binary explicitly (else it is looked for beside the running `simsweep`).
pub const ENV: &str = "SIMSWEEP_ENGINE";

/// The engine binary's file name.
pub const NAME: &str = "simsweep-engine";

/// The engine binary: `$SIMSWEEP_ENGINE`, else `simsweep-engine` in the folder of the running
/// executable. Missing: an error that says where it was looked for and how to get it.
pub fn locate() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(BadInput::err(format!(
            "{ENV}={}: no such file (it names the engine binary, {NAME})",
            p.display()
        )));
    }
    let exe = std::env::current_exe().context("finding the running executable")?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let p = dir.join(NAME);
    if p.is_file() {
        return Ok(p);
    }
    anyhow::bail!(
        "the engine binary {NAME} is not beside {} (it trains, evaluates and probes; the front links no libtorch): build it with `cargo build --release` (scripts/simsweep does), or set {ENV} to its path",
        exe.display()
    )
}

/// A command running the engine.
pub fn command() -> Result<Command> {
    Ok(Command::new(locate()?))
}

/// Hand this invocation to the engine: `simsweep-engine ARGS…` with the front's data directory and
/// database in the environment, standard streams shared; never returns on success (the engine
/// replaces this process, so its exit status and signals are the command's).
pub fn hand_over(
    args: &[std::ffi::OsString],
    data_dir: &std::path::Path,
    db: &std::path::Path,
) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let engine = locate()?;
    let err = Command::new(&engine)
        .args(args)
        .env("SIMSWEEP_DATA_DIR", data_dir)
        .env("SIMSWEEP_DB", db)
        .exec();
    Err(anyhow::Error::new(err).context(format!("starting {}", engine.display())))
}

/// What the engine sees of the machine (`simsweep-engine info --json`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct EngineInfo {
    pub cuda_available: bool,
    pub cuda_devices: i64,
    /// GPUs are visible but libtorch cannot use them: why, and the fix.
    #[serde(default)]
    pub cuda_problem: Option<String>,
}

/// Ask the engine which CUDA devices it sees (one short engine process).
pub fn info() -> Result<EngineInfo> {
    let out = command()?
        .args(["info", "--json"])
        .output()
        .context("running the engine (info)")?;
    anyhow::ensure!(
        out.status.success(),
        "the engine's `info` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout).context("reading the engine's `info --json`")
}
