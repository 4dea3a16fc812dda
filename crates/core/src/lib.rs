//! simsweep-core: everything about a sweep that needs no libtorch.
//!
//! Data path (one direction): sweep file → [`spec`] (validated run configs, run identity) →
//! [`store`] (runs table) → an engine process trains a run and reports [`events`] → the store
//! writer → [`query`] and the report crate. [`metrics`] is the one registry of what each recorded
//! metric means and which direction is better; [`hf`] reads Hugging Face model directories as far
//! as planning needs (config.json, tokenizers, weight-file framing); [`data`] reads text corpora.
//!
//! This crate depends on no tch and no clap: the front (`simsweep`) and every library build on it.

pub mod data;
pub mod device;
pub mod error;
pub mod events;
pub mod hf;
pub mod metrics;
pub mod query;
pub mod scratch;
pub mod search;
pub mod spec;
pub mod store;
pub mod table;
pub mod tokcache;

pub use error::{BadInput, EXIT_BAD_INPUT};

/// simsweep's version and the commit it was built from, as recorded with every run.
pub fn code_version() -> String {
    let sha = env!("SIMSWEEP_GIT_SHA");
    if sha.is_empty() {
        env!("CARGO_PKG_VERSION").to_string()
    } else {
        format!("{}+{sha}", env!("CARGO_PKG_VERSION"))
    }
}

/// `SIMSWEEP_CHECK_ARGS=1`: parse the command line, say so and exit 0 without doing anything (exit 2
/// for arguments that do not parse, as always). The docs' examples that cannot run here (a Slurm
/// cluster with a GPU partition, a model on the Hugging Face hub) are checked this way.
pub fn check_args_only() -> bool {
    std::env::var_os("SIMSWEEP_CHECK_ARGS").is_some_and(|v| v == "1")
}

/// The file in a `last-<step>` checkpoint folder that holds the trainer's state (optimizer,
/// scheduler, data order, generators): a checkpoint without it cannot be resumed.
pub const TRAINER_STATE: &str = "trainer_state.json";

/// The folder a run's best checkpoint ends in: `<run dir>/best`.
pub const BEST_DIR: &str = "best";

/// The prefix of a run's resumable checkpoint folders, `last-<step>`.
pub const LAST_PREFIX: &str = "last-";

/// Make `from` (a `best-<step>/` folder) the run's final best checkpoint, `<run_dir>/best`,
/// replacing an older one. Returns the new path. The engine does this when a run ends; the front
/// for a run pruned before it could resume.
pub fn promote_best(
    run_dir: &std::path::Path,
    from: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    let to = run_dir.join(BEST_DIR);
    if to.exists() {
        std::fs::remove_dir_all(&to).with_context(|| format!("removing {}", to.display()))?;
    }
    std::fs::rename(from, &to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    Ok(to)
}
