//! What a training run reports while it trains, and the protocol between the front and an engine
//! process: the front writes one [`RunJob`] (JSON) to the engine's standard input; the engine
//! writes one [`WorkerMessage`] per line (JSON) to its standard output, ending with `End` or
//! `Error`. A process that ends without either (a signal, an abort) is recorded by the front from
//! its exit status and the last lines of its standard error.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A probe value: (step, layer, metric, value).
pub type LayerRow = (i64, i64, String, f64);

/// The kind of the note that carries a run's reproducibility fingerprint (JSON: simsweep's version
/// and commit, libtorch, CUDA, the device, threads, precision, the evaluation mode, the STS
/// aggregation, the pooler and the evaluation max length).
pub const FINGERPRINT: &str = "fingerprint";

/// What a trainer reports about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The run is set up and about to take its first step.
    Started {
        device: String,
        parameters: i64,
        examples: usize,
        skipped_lines: usize,
        total_steps: i64,
        tokens_cached: bool,
        /// The pretrained weights were reused from an earlier run in this process.
        weights_cached: bool,
        /// The checkpoint step this run continues from.
        resumed_from: Option<i64>,
    },
    /// Scalar values at steps: (step, metric, value). Non-finite values travel as `null` and come
    /// back as NaN (the store keeps both NaN and ±Inf as NULL).
    Metrics(#[serde(with = "finite3")] Vec<(i64, String, f64)>),
    /// Probe values: (step, layer, metric, value); layer −1 = the run's own representation.
    LayerMetrics(#[serde(with = "finite4")] Vec<LayerRow>),
    /// A saved checkpoint.
    Checkpoint {
        kind: String,
        step: i64,
        path: PathBuf,
        metric: Option<String>,
        value: Option<f64>,
    },
    /// A free-form note for the run's event log.
    Note { kind: String, message: String },
}

/// How a run ended (errors are reported separately).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Done {
        steps: i64,
    },
    /// A non-finite loss or gradient at `step`.
    Diverged {
        step: i64,
        detail: String,
    },
    Cancelled {
        step: i64,
    },
    /// Stopped at `step` on the front's request (early stopping, SIGUSR1): the best checkpoint is
    /// kept, there is no final evaluation and nothing to resume.
    Stopped {
        step: i64,
    },
}

/// One line of an engine worker's standard output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerMessage {
    Event(Event),
    /// The run ended with this outcome.
    End(Outcome),
    /// The run failed. `resume`: the checkpoint it was asked to resume from cannot be used, so
    /// the run should start over from step 0.
    Error {
        message: String,
        resume: bool,
    },
}

/// What the front asks an engine worker to train: one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunJob {
    /// The run's id (fault injection and messages).
    pub run_id: String,
    /// The run's resolved settings, flat dotted keys (as `runs.config_json`).
    pub config: std::collections::BTreeMap<String, serde_json::Value>,
    /// The sweep file (model paths resolve against its folder).
    pub sweep_file: PathBuf,
    pub data_dir: PathBuf,
    /// Where this run's checkpoints go.
    pub out_dir: PathBuf,
    /// `cpu` or `cuda:N` as the worker sees it (a worker sees only its own GPU, as `cuda:0`).
    pub device: String,
    /// Continue from this `last-*` checkpoint instead of starting afresh.
    pub resume: Option<PathBuf>,
    /// The token cache's folder (see `tokcache`); `None`: tokenize in memory.
    #[serde(default)]
    pub token_cache: Option<PathBuf>,
    /// Early stopping: after each evaluation during training the worker waits for the front's
    /// verdict, one line on its standard input (`continue` or `stop`), so a pruned run stops at
    /// exactly the step it was judged at.
    #[serde(default)]
    pub verdicts: bool,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

mod finite3 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[(i64, String, f64)], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|(a, b, c)| (a, b, super::finite(*c)))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(i64, String, f64)>, D::Error> {
        Ok(Vec::<(i64, String, Option<f64>)>::deserialize(d)?
            .into_iter()
            .map(|(a, b, c)| (a, b, c.unwrap_or(f64::NAN)))
            .collect())
    }
}

mod finite4 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[super::LayerRow], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|(a, l, b, c)| (a, l, b, super::finite(*c)))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<super::LayerRow>, D::Error> {
        Ok(Vec::<(i64, i64, String, Option<f64>)>::deserialize(d)?
            .into_iter()
            .map(|(a, l, b, c)| (a, l, b, c.unwrap_or(f64::NAN)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_non_finite_values() {
        let m = WorkerMessage::Event(Event::Metrics(vec![
            (1, "loss".into(), 0.5),
            (2, "loss".into(), f64::NAN),
            (3, "grad_norm".into(), f64::INFINITY),
        ]));
        let line = serde_json::to_string(&m).unwrap();
        assert!(!line.contains('\n'));
        let WorkerMessage::Event(Event::Metrics(rows)) = serde_json::from_str(&line).unwrap()
        else {
            panic!("{line}")
        };
        assert_eq!(rows[0], (1, "loss".to_string(), 0.5));
        assert!(rows[1].2.is_nan() && rows[2].2.is_nan());
        let end = WorkerMessage::End(Outcome::Diverged {
            step: 7,
            detail: "loss is NaN".into(),
        });
        let back: WorkerMessage =
            serde_json::from_str(&serde_json::to_string(&end).unwrap()).unwrap();
        assert_eq!(back, end);
    }
}
