//! Numerical fault injection, a testing aid: `SIMSWEEP_FAULT` makes chosen steps of chosen runs go
//! wrong the way real training does, so that divergence handling can be tested end to end.
//!
//! ```text
//! SIMSWEEP_FAULT = FAULT[,FAULT…]
//! FAULT          = KIND@STEP[-LAST][:RUN]
//!                                       at STEP, or at every step from STEP to LAST; RUN: a
//!                                       prefix of the run id (default: every run)
//! KIND           = nan_grad             after the backward pass, the gradient of one parameter
//!                                       (the first by name) is filled with NaN
//!                | loss_explode         the step's loss is multiplied by 1e39, beyond f32's
//!                                       range: loss and gradients become infinite
//!                | segv                 at the start of the step the engine process dereferences
//!                                       a null pointer: the kernel ends it with SIGSEGV
//!                | abort                at the start of the step the process calls abort(3), as
//!                                       a failed libtorch assertion does: SIGABRT
//! ```
//!
//! `segv` and `abort` kill the whole engine process natively (no unwinding, no message on
//! standard output), so they test what the front records of a worker that dies by a signal.
//!
//! Unset or empty: no fault, and nothing is done per step but a check of an empty list.

use anyhow::{bail, Result};
use std::path::Path;
use tch::{nn, Tensor};

use super::loss::LossOutput;

/// The environment variable read once per run.
pub const VAR: &str = "SIMSWEEP_FAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NanGrad,
    LossExplode,
    Segv,
    Abort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: Kind,
    pub step: i64,
    /// The last step it recurs at (`step` for one step).
    pub last: i64,
    /// A prefix of the run id; `None` = every run.
    pub run: Option<String>,
}

/// The faults that apply to one run.
#[derive(Debug, Clone, Default)]
pub struct Faults(Vec<Fault>);

/// Parse a `SIMSWEEP_FAULT` value.
pub fn parse(spec: &str) -> Result<Vec<Fault>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let usage = "expected KIND@STEP, KIND@STEP-LAST or either with :RUN_ID_PREFIX, KIND nan_grad, loss_explode, segv or abort";
        let Some((kind, rest)) = item.split_once('@') else {
            bail!("{VAR}: `{item}`: {usage}");
        };
        let kind = match kind {
            "nan_grad" => Kind::NanGrad,
            "loss_explode" => Kind::LossExplode,
            "segv" => Kind::Segv,
            "abort" => Kind::Abort,
            other => bail!("{VAR}: `{item}`: unknown fault `{other}`; {usage}"),
        };
        let (step, run) = match rest.split_once(':') {
            Some((s, r)) => (s, Some(r.to_string())),
            None => (rest, None),
        };
        let (first, last) = step.split_once('-').unwrap_or((step, step));
        let (step, last): (i64, i64) = match (first.parse(), last.parse()) {
            (Ok(s), Ok(l)) if s >= 1 && l >= s => (s, l),
            _ => bail!("{VAR}: `{item}`: the step must be an integer ≥ 1 (a range FIRST-LAST with LAST ≥ FIRST); {usage}"),
        };
        if run.as_deref().is_some_and(|r| {
            r.is_empty() || r.len() > 16 || !r.bytes().all(|b| b.is_ascii_hexdigit())
        }) {
            bail!("{VAR}: `{item}`: the run must be 1–16 hex digits of a run id; {usage}");
        }
        out.push(Fault {
            kind,
            step,
            last,
            run,
        });
    }
    Ok(out)
}

impl Faults {
    /// The faults of `SIMSWEEP_FAULT` for the run whose checkpoints go to `out_dir` (named by the
    /// run id). A malformed value is an error (the run fails saying why).
    pub fn from_env(out_dir: &Path) -> Result<Faults> {
        let Ok(spec) = std::env::var(VAR) else {
            return Ok(Faults::default());
        };
        let id = out_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Faults::for_run(parse(&spec)?, &id))
    }

    /// The faults of `all` that apply to run `id`.
    pub fn for_run(all: Vec<Fault>, id: &str) -> Faults {
        Faults(
            all.into_iter()
                .filter(|f| f.run.as_deref().is_none_or(|p| id.starts_with(p)))
                .collect(),
        )
    }

    fn at(&self, kind: Kind, step: i64) -> bool {
        self.0
            .iter()
            .any(|f| f.kind == kind && (f.step..=f.last).contains(&step))
    }

    /// `segv` or `abort` at this step: end the process by that signal, natively.
    pub fn on_step(&self, step: i64) {
        if self.at(Kind::Segv, step) {
            eprintln!("{VAR}: segv at step {step}");
            // SAFETY: none — this is the fault being injected. A volatile read of address 0 is a
            // real invalid access (the optimiser cannot remove it), so the kernel sends SIGSEGV.
            unsafe {
                std::ptr::read_volatile(std::ptr::null::<u8>());
            }
        }
        if self.at(Kind::Abort, step) {
            eprintln!("{VAR}: abort at step {step}");
            std::process::abort();
        }
    }

    /// `loss_explode` at this step: the loss (value and graph) times 1e39.
    pub fn on_loss(&self, step: i64, mut out: LossOutput) -> LossOutput {
        if self.at(Kind::LossExplode, step) {
            out.loss = &out.loss * 1e39;
        }
        out
    }

    /// `nan_grad` at this step: the gradient of the first trainable variable (by name) becomes NaN.
    pub fn on_backward(&self, step: i64, vs: &nn::VarStore) {
        if !self.at(Kind::NanGrad, step) {
            return;
        }
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad() && t.grad().defined())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some((_, t)) = vars.first() {
            tch::no_grad(|| {
                let _ = t.grad().fill_(f64::NAN);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_steps_and_run_prefixes() {
        let kinds = parse("segv@3,abort@4:ab").unwrap();
        assert_eq!((kinds[0].kind, kinds[1].kind), (Kind::Segv, Kind::Abort));
        let f = parse("nan_grad@37:4f54, loss_explode@12").unwrap();
        assert_eq!(
            f,
            vec![
                Fault {
                    kind: Kind::NanGrad,
                    step: 37,
                    last: 37,
                    run: Some("4f54".into())
                },
                Fault {
                    kind: Kind::LossExplode,
                    step: 12,
                    last: 12,
                    run: None
                },
            ]
        );
        assert!(parse("").unwrap().is_empty());
        let only = Faults::for_run(f.clone(), "4f549362179e502c");
        assert!(only.at(Kind::NanGrad, 37) && only.at(Kind::LossExplode, 12));
        let other = Faults::for_run(f, "b00b6ec2c8314602");
        assert!(!other.at(Kind::NanGrad, 37) && other.at(Kind::LossExplode, 12));
        // A range recurs at each of its steps.
        let r = Faults::for_run(parse("nan_grad@5-8").unwrap(), "ab");
        assert_eq!(
            (3..=10).map(|s| r.at(Kind::NanGrad, s)).collect::<Vec<_>>(),
            [false, false, true, true, true, true, false, false]
        );
    }

    #[test]
    fn malformed_values_are_refused_with_the_usage() {
        for (spec, msg) in [
            ("nan_grad", "SIMSWEEP_FAULT: `nan_grad`: expected KIND@STEP, KIND@STEP-LAST or either with :RUN_ID_PREFIX, KIND nan_grad, loss_explode, segv or abort"),
            ("inf_grad@3", "SIMSWEEP_FAULT: `inf_grad@3`: unknown fault `inf_grad`; expected KIND@STEP, KIND@STEP-LAST or either with :RUN_ID_PREFIX, KIND nan_grad, loss_explode, segv or abort"),
            ("nan_grad@0", "SIMSWEEP_FAULT: `nan_grad@0`: the step must be an integer ≥ 1 (a range FIRST-LAST with LAST ≥ FIRST); expected KIND@STEP, KIND@STEP-LAST or either with :RUN_ID_PREFIX, KIND nan_grad, loss_explode, segv or abort"),
            ("nan_grad@9-3", "SIMSWEEP_FAULT: `nan_grad@9-3`: the step must be an integer ≥ 1 (a range FIRST-LAST with LAST ≥ FIRST); expected KIND@STEP, KIND@STEP-LAST or either with :RUN_ID_PREFIX, KIND nan_grad, loss_explode, segv or abort"),
            ("nan_grad@3:xyz", "SIMSWEEP_FAULT: `nan_grad@3:xyz`: the run must be 1–16 hex digits of a run id; expected KIND@STEP, KIND@STEP-LAST or either with :RUN_ID_PREFIX, KIND nan_grad, loss_explode, segv or abort"),
        ] {
            assert_eq!(parse(spec).unwrap_err().to_string(), msg);
        }
    }
}
