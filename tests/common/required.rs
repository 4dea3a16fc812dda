//! Skipping for a missing input, or failing where the suite must run in full (shared by the
//! workspace's integration tests: `tests/common` and `crates/engine/tests/common` include it).
#![allow(dead_code)]

/// Whether this run of the suite must not skip for missing inputs: CI (`CI=true`) or
/// `SIMSWEEP_REQUIRE_DATA=1`. There a missing input fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("SIMSWEEP_REQUIRE_DATA").is_ok_and(|v| v == "1")
}

/// A missing input: a skip with a message, or a failure where [`required`].
pub fn missing(what: &str) {
    assert!(
        !required(),
        "{what}: this test must run under CI / SIMSWEEP_REQUIRE_DATA=1, not skip"
    );
    eprintln!("skipped: {what}");
}
