//! What `simsweep run` shows while it works: on a terminal, a sweep bar (runs done of total,
//! failures, ETA) over one bar per active run (step of total, loss, STS-B dev, steps/s); otherwise
//! plain lines, one per event worth a line (logs, CI, Slurm output files).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Bars when stdout is a terminal, lines otherwise.
    #[default]
    Auto,
    /// Plain lines (logs, CI, Slurm output files).
    Lines,
    /// Nothing but errors.
    Quiet,
}

/// Per-run progress is counted in thousandths of a run on the sweep bar, so its ETA moves with
/// the steps of the active runs, not only when a run ends.
const UNITS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// The sweep's progress display, shared by the runner's slots.
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    sweep_bar: Option<ProgressBar>,
    state: Mutex<SweepState>,
}

struct SweepState {
    total: usize,
    finished: usize,
    failed: usize,
    /// Fraction done of each active run, by slot.
    active: Vec<f64>,
}

impl Progress {
    /// `runs` to execute in this invocation; `slots` runs at a time.
    pub fn new(mode: ProgressMode, sweep: &str, runs: usize, slots: usize) -> Self {
        use ProgressMode as P;
        let mode = match mode {
            P::Auto if std::io::stdout().is_terminal() => Mode::Bars,
            P::Auto | P::Lines => Mode::Lines,
            P::Quiet => Mode::Quiet,
        };
        let (multi, sweep_bar) = if mode == Mode::Bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(8));
            let bar = multi.add(ProgressBar::new(runs as u64 * UNITS));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.cyan/blue}] {msg}  {elapsed_precise} elapsed, ETA {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.set_prefix(sweep.to_string());
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        let p = Progress {
            mode,
            multi,
            sweep_bar,
            state: Mutex::new(SweepState {
                total: runs,
                finished: 0,
                failed: 0,
                active: vec![0.0; slots],
            }),
        };
        p.update_sweep();
        p
    }

    /// A line above the bars (or on its own without them).
    pub fn line(&self, text: &str) {
        match (self.mode, &self.multi) {
            (Mode::Quiet, _) => {}
            (Mode::Bars, Some(m)) => {
                let _ = m.println(text);
            }
            _ => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    /// Whether step lines should be printed (line mode only: bars show steps themselves).
    pub fn lines(&self) -> bool {
        self.mode == Mode::Lines
    }

    /// A bar for a run starting in `slot`.
    pub fn start_run(&self, slot: usize, label: &str, total_steps: i64) -> RunBar<'_> {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total_steps.max(1) as u64));
            b.set_style(
                ProgressStyle::with_template("  {prefix} [{bar:25}] {pos}/{len} {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b
        });
        self.set_active(slot, 1e-6);
        RunBar {
            progress: self,
            slot,
            bar,
            total: total_steps.max(1),
            last: None,
            loss: None,
            dev: None,
        }
    }

    /// A run ended (`ok` = done).
    pub fn finish_run(&self, slot: usize, ok: bool) {
        {
            let mut st = self.state.lock().expect("progress state");
            st.finished += 1;
            if !ok {
                st.failed += 1;
            }
            if let Some(a) = st.active.get_mut(slot) {
                *a = 0.0;
            }
        }
        self.update_sweep();
    }

    fn set_active(&self, slot: usize, fraction: f64) {
        if let Some(a) = self
            .state
            .lock()
            .expect("progress state")
            .active
            .get_mut(slot)
        {
            *a = fraction.clamp(0.0, 1.0);
        }
        self.update_sweep();
    }

    fn update_sweep(&self) {
        let Some(bar) = &self.sweep_bar else { return };
        let st = self.state.lock().expect("progress state");
        let running = st.active.iter().filter(|a| **a > 0.0).count();
        let partial: f64 = st.active.iter().sum();
        bar.set_position(((st.finished as f64 + partial) * UNITS as f64) as u64);
        bar.set_message(format!(
            "{}/{} runs done{}{}",
            st.finished - st.failed,
            st.total,
            if st.failed > 0 {
                format!(", {} failed", st.failed)
            } else {
                String::new()
            },
            if running > 0 {
                format!(", {running} running")
            } else {
                String::new()
            }
        ));
    }

    /// Remove the bars (the lines printed above them stay).
    pub fn finish(&self) {
        if let Some(b) = &self.sweep_bar {
            b.finish();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// One active run's bar.
pub struct RunBar<'a> {
    progress: &'a Progress,
    slot: usize,
    bar: Option<ProgressBar>,
    total: i64,
    /// (step, when) of the previous update, for steps/s.
    last: Option<(i64, Instant)>,
    loss: Option<f64>,
    dev: Option<f64>,
}

impl RunBar<'_> {
    /// The run reached `step`, with the newest loss / STS-B dev when known.
    pub fn update(&mut self, step: i64, loss: Option<f64>, dev: Option<f64>) {
        self.loss = loss.or(self.loss);
        self.dev = dev.or(self.dev);
        let now = Instant::now();
        let rate = match self.last {
            Some((s, t)) if step > s => {
                let secs = now.duration_since(t).as_secs_f64();
                (secs > 0.0).then(|| (step - s) as f64 / secs)
            }
            _ => None,
        };
        if self.last.is_none_or(|(s, _)| step > s) {
            self.last = Some((step, now));
        }
        if let Some(b) = &self.bar {
            b.set_position(step.max(0) as u64);
            let mut msg = String::new();
            if let Some(l) = self.loss {
                msg.push_str(&format!("loss {l:.4}"));
            }
            if let Some(d) = self.dev {
                msg.push_str(&format!("  stsb_dev {d:.2}"));
            }
            if let Some(r) = rate {
                msg.push_str(&format!("  {r:.2} steps/s"));
            }
            b.set_message(msg);
        }
        self.progress
            .set_active(self.slot, step as f64 / self.total as f64);
    }
}

impl Drop for RunBar<'_> {
    fn drop(&mut self) {
        if let (Some(b), Some(m)) = (&self.bar, &self.progress.multi) {
            b.finish_and_clear();
            m.remove(b);
        }
    }
}
