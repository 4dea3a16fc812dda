//! `[search]`: early stopping of hopeless settings (ASHA, the median stopping rule), and
//! `[sweep] order`: the order runs are claimed in. Parsed and checked here; the decisions are
//! [`crate::search`]'s.

use super::{value, Ctx, Span};
use crate::metrics::{self, Direction, Family};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use toml::de::DeTable;

/// The early-stopping rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Asynchronous successive halving (Li et al. 2020), the stopping variant: at each rung a
    /// setting continues when its value is within the top 1/η of the values recorded there.
    Asha,
    /// The median stopping rule (Golovin et al. 2017): stop when the best value so far is worse
    /// than the median of the other settings' running averages at the same step.
    Median,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Asha => "asha",
            Method::Median => "median",
        }
    }
}

/// Whether larger or smaller values of the search metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Max,
    Min,
}

impl Goal {
    pub fn name(self) -> &'static str {
        match self {
            Goal::Max => "max",
            Goal::Min => "min",
        }
    }
    /// `a` strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Max => a > b,
            Goal::Min => a < b,
        }
    }
}

/// A sweep's `[search]` table, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    pub method: Method,
    pub metric: String,
    pub goal: Goal,
    /// No decision before this step (ASHA's first rung).
    pub min_steps: i64,
    /// ASHA's η: the top 1/η continue at each rung; rungs at min_steps·η^k.
    pub reduction_factor: i64,
    /// Median rule: decide only once this many other settings reported at that step.
    pub min_runs: i64,
}

/// The keys of `[search]`.
pub const SEARCH_KEYS: &[&str] = &[
    "method",
    "metric",
    "goal",
    "min_steps",
    "reduction_factor",
    "min_runs",
];

/// Metrics a search can judge by: evaluation metrics recorded during training.
pub const DURING_TRAINING: &[&str] = &["stsb_dev"];

/// ASHA's default η.
pub const DEFAULT_REDUCTION_FACTOR: i64 = 3;
/// The median rule's default `min_runs`.
pub const DEFAULT_MIN_RUNS: i64 = 5;

impl Search {
    /// ASHA's rungs below `total` steps: min_steps·η^k (a rung at the last step decides nothing).
    pub fn rungs(&self, total: i64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut r = self.min_steps.max(1);
        while r < total {
            out.push(r);
            match r.checked_mul(self.reduction_factor.max(2)) {
                Some(n) => r = n,
                None => break,
            }
        }
        out
    }
}

/// Where the keys of `[search]` were written, for checks made once the runs are known.
#[derive(Debug, Clone, Default)]
pub(super) struct SearchSpans {
    pub table: Span,
    pub metric: Option<Span>,
    pub min_steps: Option<Span>,
}

fn int_at(
    cx: &mut Ctx<'_>,
    key: &str,
    v: &toml::Spanned<toml::de::DeValue<'_>>,
    min: i64,
) -> Option<i64> {
    match value::to_json(v.get_ref())
        .ok()
        .as_ref()
        .and_then(Value::as_i64)
    {
        Some(i) if i >= min => Some(i),
        _ => {
            cx.err(
                &v.span(),
                Some(key),
                format!(
                    "expected an integer ≥ {min}, found {}",
                    value::to_json(v.get_ref())
                        .map(|j| value::describe(&j))
                        .unwrap_or_else(|_| v.get_ref().type_str().to_string())
                ),
            );
            None
        }
    }
}

/// Parse `[search]`. `None` with errors recorded in `cx` when it is not valid.
pub(super) fn parse(
    cx: &mut Ctx<'_>,
    t: &DeTable<'_>,
    table: Span,
) -> Option<(Search, SearchSpans)> {
    let mut spans = SearchSpans {
        table: table.clone(),
        ..Default::default()
    };
    let errors_before = cx.errors.len();
    let mut method = None;
    let mut metric = "stsb_dev".to_string();
    let mut goal = None;
    let mut min_steps = None;
    let mut reduction_factor = None;
    let mut min_runs = None;
    for (k, v) in t.iter() {
        let name = k.get_ref().as_ref();
        let key = format!("search.{name}");
        match name {
            "method" => match v.get_ref().as_str() {
                Some("asha") => method = Some((Method::Asha, v.span())),
                Some("median") => method = Some((Method::Median, v.span())),
                Some(other) => cx.err(
                    &v.span(),
                    Some(&key),
                    format!("unknown method `{other}`: expected \"asha\" or \"median\""),
                ),
                None => cx.err(
                    &v.span(),
                    Some(&key),
                    format!(
                        "expected a string (\"asha\" or \"median\"), found {}",
                        v.get_ref().type_str()
                    ),
                ),
            },
            "metric" => match v.get_ref().as_str() {
                Some(m) => {
                    spans.metric = Some(v.span());
                    match metrics::lookup(m) {
                        Some(spec) if DURING_TRAINING.contains(&m) => {
                            metric = spec.name.to_string();
                        }
                        Some(spec) if spec.family == Family::Evaluation => cx.err(
                            &v.span(),
                            Some(&key),
                            format!(
                                "`{m}` is evaluated only after training, on the best checkpoint; a search judges runs while they train, by {}",
                                DURING_TRAINING.join(", ")
                            ),
                        ),
                        Some(spec) => cx.err(
                            &v.span(),
                            Some(&key),
                            format!(
                                "`{m}` is a {} metric, not an evaluation metric; a search judges runs by one evaluated during training: {}",
                                spec.family.name(),
                                DURING_TRAINING.join(", ")
                            ),
                        ),
                        None => cx.err(
                            &v.span(),
                            Some(&key),
                            format!(
                                "unknown metric `{m}`; a search judges runs by an evaluation metric recorded during training: {}",
                                DURING_TRAINING.join(", ")
                            ),
                        ),
                    }
                }
                None => cx.err(
                    &v.span(),
                    Some(&key),
                    format!("expected a metric name, found {}", v.get_ref().type_str()),
                ),
            },
            "goal" => match v.get_ref().as_str() {
                Some("max") => goal = Some(Goal::Max),
                Some("min") => goal = Some(Goal::Min),
                _ => cx.err(&v.span(), Some(&key), "expected \"max\" or \"min\""),
            },
            "min_steps" => {
                spans.min_steps = Some(v.span());
                min_steps = int_at(cx, &key, v, 1);
            }
            "reduction_factor" => reduction_factor = int_at(cx, &key, v, 2).map(|i| (i, v.span())),
            "min_runs" => min_runs = int_at(cx, &key, v, 1).map(|i| (i, v.span())),
            other => {
                let hint = super::schema::suggest(other, SEARCH_KEYS.iter().copied())
                    .map(|s| format!(" (did you mean `search.{s}`?)"))
                    .unwrap_or_else(|| format!(" ([search] takes {})", SEARCH_KEYS.join(", ")));
                cx.err(&k.span(), Some(&key), format!("unknown setting{hint}"));
            }
        }
    }
    let Some((method, _)) = method else {
        if cx.errors.len() == errors_before {
            cx.err(
                &table,
                Some("search.method"),
                "missing: [search] needs method = \"asha\" or \"median\"",
            );
        }
        return None;
    };
    if let (Method::Median, Some((_, s))) = (method, &reduction_factor) {
        cx.err(
            s,
            Some("search.reduction_factor"),
            "applies to method = \"asha\" only (the median rule has no rungs)",
        );
    }
    if let (Method::Asha, Some((_, s))) = (method, &min_runs) {
        cx.err(
            s,
            Some("search.min_runs"),
            "applies to method = \"median\" only (ASHA decides from the first value at each rung)",
        );
    }
    let goal = goal.unwrap_or(match metrics::direction(&metric) {
        Direction::Lower => Goal::Min,
        _ => Goal::Max,
    });
    if cx.errors.len() > errors_before {
        return None;
    }
    Some((
        Search {
            method,
            metric,
            goal,
            min_steps: min_steps.unwrap_or(0),
            reduction_factor: reduction_factor.map_or(DEFAULT_REDUCTION_FACTOR, |r| r.0),
            min_runs: min_runs.map_or(DEFAULT_MIN_RUNS, |r| r.0),
        },
        spans,
    ))
}

/// The setting a run belongs to: the hash of its resolved settings without `seed`. Seeds of one
/// setting are judged together.
pub fn setting_id(sweep: &str, config: &std::collections::BTreeMap<String, Value>) -> String {
    let mut c = config.clone();
    c.remove("seed");
    super::run_id(sweep, &super::canonical_json(&c))
}

/// A small deterministic generator (SplitMix64) for the shuffled order.
pub(super) fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = super::SplitMix64(seed ^ 0x5153_5745_4550_0002);
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
