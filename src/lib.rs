//! simsweep: ablation sweeps of contrastive sentence-embedding training, recorded in SQLite.
//!
//! Data path (one direction): sweep file → [`spec`] (validated run configs) → [`store`]
//! (runs table) → trainer → events → store writer → queries and charts.

pub mod bench;
pub mod cli;
pub mod data;
pub mod eval;
pub mod exec;
pub mod model;
pub mod plot;
pub mod probe;
pub mod progress;
pub mod query;
pub mod runtime;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod table;
pub mod train;

/// simsweep's version and the commit it was built from, as recorded with every run.
pub fn code_version() -> String {
    let sha = env!("SIMSWEEP_GIT_SHA");
    if sha.is_empty() {
        env!("CARGO_PKG_VERSION").to_string()
    } else {
        format!("{}+{sha}", env!("CARGO_PKG_VERSION"))
    }
}
