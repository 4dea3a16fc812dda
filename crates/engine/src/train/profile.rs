//! Where a training step's time goes: wall time per phase of the step loop, measured when
//! `SIMSWEEP_PROFILE=1` (as `simsweep bench train --profile` sets it). Each mark synchronises the
//! device first, so on CUDA the phases are device time plus the host time that was not hidden behind
//! it; that synchronisation slows the run, so profiled runs are never the timed ones.

use std::time::Instant;
use tch::Device;

/// Phases in step order (`eval`, `probe` and `checkpoint` are the periodic work between steps).
pub const PHASES: &[&str] = &[
    "batch",
    "forward",
    "loss",
    "backward",
    "optimizer",
    "metrics",
    "flush",
    "eval",
    "probe",
    "checkpoint",
];

/// Accumulated seconds per phase over the steps after `skip`.
pub struct Profile {
    on: bool,
    device: Device,
    last: Instant,
    secs: Vec<f64>,
    steps: u64,
    skip: i64,
}

impl Profile {
    /// On when the environment variable `SIMSWEEP_PROFILE` is `1`; the first `skip` steps (warm-up)
    /// are not counted.
    pub fn from_env(device: Device, skip: i64) -> Self {
        Profile {
            on: std::env::var("SIMSWEEP_PROFILE").is_ok_and(|v| v == "1"),
            device,
            last: Instant::now(),
            secs: vec![0.0; PHASES.len()],
            steps: 0,
            skip,
        }
    }

    pub fn on(&self) -> bool {
        self.on
    }

    fn sync(&self) {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
    }

    /// Start timing `step` (restarts the clock).
    pub fn start(&mut self, step: i64) {
        if self.on {
            self.sync();
            self.last = Instant::now();
            if step > self.skip {
                self.steps += 1;
            }
        }
    }

    /// The time since the previous mark was spent in `phase` (of `step`).
    pub fn mark(&mut self, step: i64, phase: &'static str) {
        if !self.on {
            return;
        }
        self.sync();
        let now = Instant::now();
        if step > self.skip {
            let i = PHASES
                .iter()
                .position(|p| *p == phase)
                .expect("a known phase");
            self.secs[i] += (now - self.last).as_secs_f64();
        }
        self.last = now;
    }

    /// `{"steps": N, "ms_per_step": {"batch": …, …}}` over the counted steps.
    pub fn summary(&self) -> String {
        let n = self.steps.max(1) as f64;
        let phases: Vec<String> = PHASES
            .iter()
            .zip(&self.secs)
            .map(|(p, s)| format!("\"{p}\": {:.4}", 1e3 * s / n))
            .collect();
        format!(
            "{{\"steps\": {}, \"ms_per_step\": {{{}}}}}",
            self.steps,
            phases.join(", ")
        )
    }
}

/// Parse [`Profile::summary`] back: (steps, [(phase, ms per step)]).
pub fn parse_summary(s: &str) -> Option<(u64, Vec<(String, f64)>)> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    let steps = v.get("steps")?.as_u64()?;
    let ms = v.get("ms_per_step")?.as_object()?;
    let phases = PHASES
        .iter()
        .filter_map(|p| Some((p.to_string(), ms.get(*p)?.as_f64()?)))
        .collect();
    Some((steps, phases))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_accumulate_after_the_skipped_steps_and_round_trip() {
        let mut p = Profile::from_env(Device::Cpu, 1);
        p.on = true;
        for step in 1..=3 {
            p.start(step);
            std::thread::sleep(std::time::Duration::from_millis(2));
            p.mark(step, "forward");
            p.mark(step, "loss");
        }
        let (steps, phases) = parse_summary(&p.summary()).unwrap();
        assert_eq!(steps, 2);
        let get = |n: &str| phases.iter().find(|(p, _)| p == n).unwrap().1;
        assert!(get("forward") >= 2.0, "{phases:?}");
        assert!(get("loss") < get("forward"));
        assert_eq!(get("eval"), 0.0);
    }
}
