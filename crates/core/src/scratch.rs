//! A scratch directory for benchmarks, removed when dropped.

use std::path::{Path, PathBuf};

/// `<temp>/simsweep-bench-<pid>`, created now and removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<Self> {
        let p = std::env::temp_dir().join(format!("simsweep-bench-{}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
