//! Errors every layer shares.

/// Exit status for bad input (a sweep file, a flag value), as clap uses for usage errors.
pub const EXIT_BAD_INPUT: i32 = 2;

/// An error caused by the user's input rather than by simsweep or the machine: the commands print
/// it as `error: …` and exit with [`EXIT_BAD_INPUT`].
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

impl BadInput {
    /// A `BadInput` as an `anyhow::Error`, for `return Err(BadInput::err(…))`.
    pub fn err(msg: impl Into<String>) -> anyhow::Error {
        BadInput(msg.into()).into()
    }
}

/// The text of a panic's payload (tch reports libtorch errors, CUDA out-of-memory included, as
/// panics).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}
