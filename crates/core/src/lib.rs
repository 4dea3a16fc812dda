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

/// The file in a `last-<step>` checkpoint folder that holds the trainer's state (optimizer,
/// scheduler, data order, generators): a checkpoint without it cannot be resumed.
pub const TRAINER_STATE: &str = "trainer_state.json";
