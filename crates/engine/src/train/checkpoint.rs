//! A run's checkpoint directories and what makes a run resumable.
//!
//! Layout under the run's output folder (`<db dir>/<sweep>/<run id>/`):
//! - `last-<step>/`: written every `train.checkpoint_every` steps and when a run is interrupted: the
//!   model in Hugging Face format plus `trainer_state.json` and `optimizer.safetensors` (AdamW moments).
//!   A run that is claimed again resumes from the newest one the database records.
//! - `best-<step>/` while the run trains, renamed to `best/` when it is done: the model with the
//!   best STS-B dev score so far.
//!
//! Every directory is written into a staging folder and renamed into place, so a kill leaves either
//! the whole checkpoint or none. Old directories are removed once nothing can need them: the two
//! newest `last-*`, the current best and the best each kept `last-*` refers to are kept (the
//! database may still point at the previous `last-*` for the instant before its row is committed,
//! and a run resumed from a `last-*` must find the best model of that moment).

use crate::model::LoadedModel;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Tensor;

pub use simsweep_core::TRAINER_STATE;
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";
const FORMAT: u32 = 1;

/// Everything besides the weights that a resumed run needs to continue as if never stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub format: u32,
    /// Updates done: the run continues with step `step + 1`.
    pub step: i64,
    pub total_steps: i64,
    pub seed: i64,
    /// The best STS-B dev score so far and its step (its model is `best-<step>/`).
    pub best: Option<(i64, f64)>,
    /// fp16 loss scaler: scale and clean steps since the last change.
    pub loss_scale: f64,
    pub clean_steps: i64,
    /// AdamW's update count (bias correction).
    pub adam_step: i64,
}

/// The checkpoint directory of a `last` checkpoint at `step`.
pub fn last_dir(out_dir: &Path, step: i64) -> PathBuf {
    out_dir.join(format!("{}{step:07}", simsweep_core::LAST_PREFIX))
}

/// The directory of the best model found at `step` (while the run trains).
pub fn best_dir(out_dir: &Path, step: i64) -> PathBuf {
    out_dir.join(format!("best-{step:07}"))
}

/// Save a resumable checkpoint: the model plus the trainer and optimizer state, atomically.
pub fn save_last(
    model: &LoadedModel,
    dir: &Path,
    state: &TrainerState,
    m: &Tensor,
    v: &Tensor,
) -> Result<()> {
    let json = serde_json::to_vec_pretty(state).expect("JSON");
    model
        .save_pretrained_with(dir, &|tmp| {
            Tensor::write_safetensors(
                &[
                    ("exp_avg", m.to_device(tch::Device::Cpu)),
                    ("exp_avg_sq", v.to_device(tch::Device::Cpu)),
                ],
                tmp.join(OPTIMIZER_STATE),
            )
            .map_err(std::io::Error::other)?;
            // Written last: its presence marks a complete checkpoint.
            std::fs::write(tmp.join(TRAINER_STATE), &json)
        })
        .with_context(|| format!("saving the checkpoint {}", dir.display()))
}

/// Read a `last-*` checkpoint's trainer state and optimizer moments (on the CPU).
pub fn load_last(dir: &Path) -> Result<(TrainerState, Tensor, Tensor)> {
    let p = dir.join(TRAINER_STATE);
    let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    let state: TrainerState = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a trainer state", p.display()))?;
    if state.format != FORMAT {
        bail!(
            "{}: trainer state format {} (this simsweep reads {FORMAT})",
            p.display(),
            state.format
        );
    }
    let o = dir.join(OPTIMIZER_STATE);
    let tensors =
        Tensor::read_safetensors(&o).with_context(|| format!("reading {}", o.display()))?;
    let get = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.shallow_clone())
            .with_context(|| format!("{}: no tensor `{name}`", o.display()))
    };
    Ok((state, get("exp_avg")?, get("exp_avg_sq")?))
}

/// Which checkpoint directories of a run are still needed, and removal of the rest.
#[derive(Debug, Default)]
pub struct Keeper {
    /// The newest `last-*` checkpoints: (step, best step at that moment), newest last.
    lasts: Vec<(i64, Option<i64>)>,
    /// The current best step.
    best: Option<i64>,
}

impl Keeper {
    pub fn new(resumed: Option<&TrainerState>) -> Self {
        Keeper {
            lasts: resumed
                .map(|s| vec![(s.step, s.best.map(|b| b.0))])
                .unwrap_or_default(),
            best: resumed.and_then(|s| s.best.map(|b| b.0)),
        }
    }

    pub fn saved_last(&mut self, step: i64) {
        self.lasts.push((step, self.best));
        if self.lasts.len() > 2 {
            self.lasts.remove(0);
        }
    }

    pub fn saved_best(&mut self, step: i64) {
        self.best = Some(step);
    }

    /// Remove every `last-*` / `best-*` directory (and stale staging folders) of `out_dir` that is
    /// not needed any more. Errors are ignored: a leftover directory costs disk, not correctness.
    pub fn collect(&self, out_dir: &Path) {
        let keep_last = |s: i64| self.lasts.iter().any(|(l, _)| *l == s);
        let keep_best =
            |s: i64| self.best == Some(s) || self.lasts.iter().any(|(_, b)| *b == Some(s));
        let Ok(entries) = std::fs::read_dir(out_dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = |prefix: &str| {
                name.strip_prefix(prefix)
                    .and_then(|s| s.parse::<i64>().ok())
            };
            let stale = if let Some(s) = step("last-") {
                !keep_last(s)
            } else if let Some(s) = step("best-") {
                !keep_best(s)
            } else {
                // Staging or swapped-out folders of an interrupted save.
                name.starts_with(".last-") || name.starts_with(".best-")
            };
            if stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// The run is done: only the best model stays, as `best/`. Returns its path.
    pub fn finish(&mut self, out_dir: &Path) -> Result<Option<PathBuf>> {
        self.lasts.clear();
        let Some(b) = self.best else {
            self.collect(out_dir);
            return Ok(None);
        };
        let final_dir = simsweep_core::promote_best(out_dir, &best_dir(out_dir, b))?;
        self.best = None;
        self.collect(out_dir);
        Ok(Some(final_dir))
    }
}

/// The dropout seed of step `step` of a run with seed `seed`: the random stream restarts at every
/// step, so a run resumed from a checkpoint draws the same masks as one never stopped.
pub fn step_seed(seed: i64, step: i64) -> i64 {
    let mut z = (seed as u64) ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(p: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_keeper_keeps_two_lasts_and_the_bests_they_need() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path();
        let mk = |p: PathBuf| std::fs::create_dir_all(p).unwrap();
        let mut k = Keeper::new(None);
        mk(best_dir(out, 0));
        k.saved_best(0);
        mk(last_dir(out, 10));
        k.saved_last(10);
        mk(best_dir(out, 20));
        k.saved_best(20);
        k.collect(out);
        // last-10 refers to best-0: both stay.
        assert_eq!(dirs(out), ["best-0000000", "best-0000020", "last-0000010"]);
        mk(last_dir(out, 30));
        k.saved_last(30);
        mk(last_dir(out, 40));
        k.saved_last(40);
        mk(out.join(".last-0000050.tmp-1-2"));
        k.collect(out);
        assert_eq!(dirs(out), ["best-0000020", "last-0000030", "last-0000040"]);
        assert_eq!(k.finish(out).unwrap(), Some(out.join("best")));
        assert_eq!(dirs(out), ["best"]);
    }

    #[test]
    fn step_seeds_differ_by_step_and_seed_and_are_non_negative() {
        let a: Vec<i64> = (0..1000).map(|s| step_seed(42, s)).collect();
        let mut u = a.clone();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), a.len());
        assert!(a.iter().all(|&x| x >= 0));
        assert_ne!(step_seed(1, 5), step_seed(2, 5));
    }
}
