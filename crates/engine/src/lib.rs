//! simsweep-engine: everything that computes with libtorch (through tch): the encoders behind one
//! interface ([`model::Encoder`]), the trainer ([`train`]), the losses, the probes ([`probe`]),
//! the STS evaluation ([`eval`]) and the training benchmark. The `simsweep-engine` binary
//! ([`worker`] and [`cli`]) is started by the front, one process per run; nothing else links
//! libtorch.

pub mod batch;
pub mod bench_train;
pub mod cli;
pub mod eval;
pub mod model;
pub mod probe;
pub mod runtime;
pub mod train;
pub mod worker;

// The core's modules under their own names, so engine code reads `crate::spec`, `crate::store`…
pub use simsweep_core::{
    code_version, data, events, hf, metrics, query, spec, store, table, tokcache,
};
