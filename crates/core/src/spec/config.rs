//! The typed form of one run's resolved settings, and path resolution rules.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub seed: i64,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub loss: LossConfig,
    pub probe: ProbeConfig,
    pub eval: EvalConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub path: Option<String>,
    pub hub: Option<String>,
    pub init: String,
    pub pooling: String,
    pub mlp_only_train: bool,
    #[serde(default)]
    pub config: ModelOverrides,
}

pub use crate::hf::config::ModelOverrides;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub train: Vec<String>,
    pub format: String,
    pub max_examples: i64,
    pub shuffle: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub batch_size: i64,
    pub lr: f64,
    pub max_len: i64,
    pub steps: Option<i64>,
    pub epochs: Option<i64>,
    pub temperature: f64,
    pub warmup_steps: i64,
    pub lr_schedule: String,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub precision: String,
    /// Older stored configs lack it: off.
    #[serde(default)]
    pub tf32: bool,
    pub hard_negative_weight: f64,
    pub checkpoint_every: i64,
    pub log_every: i64,
    pub step_metrics: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub kind: String,
    pub margin: Option<f64>,
    pub angle: Option<f64>,
    pub gd: Option<bool>,
    pub weight: Option<bool>,
    pub ratio: Option<bool>,
    pub temperature: Option<f64>,
    pub ratio_scale: Option<f64>,
    pub lambda: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub every: i64,
    pub sentences: String,
    pub size: i64,
    pub max_len: i64,
    /// `"last"`, `"all"`, or a list of layer indices.
    pub layers: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub every: i64,
    pub tasks: Vec<String>,
    pub batch_size: i64,
    /// The transfer tasks' protocol (absent from configs stored before it existed).
    #[serde(default = "default_eval_mode")]
    pub mode: String,
    #[serde(default = "default_eval_seed")]
    pub seed: i64,
}

fn default_eval_mode() -> String {
    "test".into()
}

fn default_eval_seed() -> i64 {
    1111
}

impl RunConfig {
    /// Build from the flat dotted-key map that planning produces (and the database stores).
    pub fn from_flat(flat: &BTreeMap<String, Value>) -> Result<Self, serde_json::Error> {
        serde_json::from_value(unflatten(flat))
    }
}

/// `{"a.b": 1, "a.c": 2}` → `{"a": {"b": 1, "c": 2}}`.
pub fn unflatten(flat: &BTreeMap<String, Value>) -> Value {
    let mut root = serde_json::Map::new();
    for (k, v) in flat {
        let mut node = &mut root;
        let parts: Vec<&str> = k.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            node = node
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Default::default()))
                .as_object_mut()
                .expect("settings never nest under a leaf");
        }
        node.insert(parts[parts.len() - 1].to_string(), v.clone());
    }
    Value::Object(root)
}

pub use crate::data::data_format_of;

/// A data path: absolute as is, else under the data directory.
pub fn resolve_data_path(data_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.into()
    } else {
        data_dir.join(p)
    }
}

/// A model path: absolute as is, `~/` under $HOME, else relative to the sweep file's folder.
pub fn resolve_model_path(sweep_file: &Path, p: &str) -> PathBuf {
    if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        return Path::new(&home).join(rest);
    }
    let path = Path::new(p);
    if path.is_absolute() {
        path.into()
    } else {
        sweep_file.parent().unwrap_or(Path::new(".")).join(path)
    }
}

/// The Hugging Face hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
pub fn hf_hub_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return p.into();
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Path::new(&p).join("hub");
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/huggingface/hub")
}

/// Resolve a hub id offline: `<cache>/models--org--name/snapshots/<revision>`, the revision named by
/// `refs/main` when present, else the only snapshot.
pub fn resolve_hub(id: &str) -> Result<PathBuf, String> {
    let cache = hf_hub_cache();
    let dir = cache.join(format!("models--{}", id.replace('/', "--")));
    if !dir.is_dir() {
        return Err(format!(
            "hub model `{id}` is not in the Hugging Face cache ({} not found); download it where you have network (huggingface-cli download {id}) or use model.path",
            dir.display()
        ));
    }
    let snaps = dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(dir.join("refs/main")) {
        let p = snaps.join(rev.trim());
        if p.is_dir() {
            return Ok(p);
        }
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&snaps)
        .map_err(|e| format!("cannot read {}: {e}", snaps.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    match entries.len() {
        1 => Ok(entries.remove(0)),
        0 => Err(format!("no snapshot of `{id}` in {}", snaps.display())),
        n => Err(format!(
            "{n} snapshots of `{id}` in {} and no refs/main to choose one; use model.path",
            snaps.display()
        )),
    }
}

/// Serialises tests that set the process-wide Hugging Face cache variables.
#[cfg(test)]
pub(crate) static HF_ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_detection() {
        assert_eq!(data_format_of("auto", "wiki1m_for_simcse.txt"), "lines");
        assert_eq!(data_format_of("auto", "data/nli_for_simcse.csv"), "nli_csv");
        assert_eq!(
            data_format_of("auto", "SentEval/data/downstream/SNLI/s1.dev"),
            "snli"
        );
        assert_eq!(data_format_of("lines", "x.csv"), "lines");
    }

    #[test]
    fn unflatten_nests() {
        let mut m = BTreeMap::new();
        m.insert("a.b".to_string(), Value::from(1));
        m.insert("a.c.d".to_string(), Value::from(2));
        m.insert("e".to_string(), Value::from(3));
        assert_eq!(
            unflatten(&m),
            serde_json::json!({"a": {"b": 1, "c": {"d": 2}}, "e": 3})
        );
    }

    #[test]
    fn hub_resolution_reads_refs_main() {
        let _env = HF_ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("models--org--m");
        std::fs::create_dir_all(d.join("snapshots/abc")).unwrap();
        std::fs::create_dir_all(d.join("snapshots/def")).unwrap();
        std::fs::create_dir_all(d.join("refs")).unwrap();
        std::fs::write(d.join("refs/main"), "def\n").unwrap();
        std::env::set_var("HF_HUB_CACHE", tmp.path());
        assert_eq!(resolve_hub("org/m").unwrap(), d.join("snapshots/def"));
        assert!(resolve_hub("org/missing")
            .unwrap_err()
            .contains("not in the Hugging Face cache"));
        std::env::remove_var("HF_HUB_CACHE");
    }
}
