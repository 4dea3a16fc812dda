//! A scratch directory for benchmarks, removed when dropped.

use std::path::PathBuf;

/// `<temp>/simsweep-bench-<pid>`, created now and removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<Self> {
        let p = std::env::temp_dir().join(format!("simsweep-bench-{}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
