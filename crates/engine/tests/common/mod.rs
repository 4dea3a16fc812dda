//! Shared by the engine's integration tests.
#![allow(dead_code)]

#[path = "../../../../tests/common/required.rs"]
mod required;
#[allow(unused_imports)]
pub use required::{missing, required};
