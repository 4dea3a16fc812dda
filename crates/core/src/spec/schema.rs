//! Every setting a sweep file may name: its dotted key, type, range, default and meaning.
//! This one table drives validation, default filling, run identity and `docs/sweep-file.md`
//! (a test checks that the document lists every key).
//!
//! Stability rule: a key's default never changes once released, and a key added later gets the
//! default that reproduces earlier behaviour. Run identity hashes only values that differ from the
//! defaults, so both rules together keep every existing run id valid across versions.

use serde_json::Value;

/// The value type and allowed range of a setting.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A float in `[min, max]`; `min_open` / `max_open` make that end exclusive.
    Float {
        min: f64,
        min_open: bool,
        max: f64,
        max_open: bool,
    },
    /// An integer in `[min, max]`.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// Free text (a path, a hub id).
    Str,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A non-empty list of strings; a single string means a one-element list.
    StrList,
    /// A list (possibly empty) of words from a fixed set.
    ChoiceList(&'static [&'static str]),
    /// `"last"`, `"all"`, or a non-empty list of layer indices (0 = embedding output);
    /// a single integer means a one-element list.
    Layers,
}

/// One setting.
#[derive(Debug)]
pub struct KeySpec {
    pub key: &'static str,
    pub kind: Kind,
    /// The default as a JSON literal; `None`: unset unless given (or filled from the loss's defaults).
    pub default: Option<&'static str>,
    /// Whether the value takes part in run identity. Only settings that cannot change what a run
    /// computes (how often it checkpoints, for instance) are left out.
    pub identity: bool,
    pub doc: &'static str,
}

impl KeySpec {
    pub fn default_value(&self) -> Option<Value> {
        self.default
            .map(|d| serde_json::from_str(d).expect("schema default is valid JSON"))
    }
}

/// The pooler names of `model.pooling` (the engine's `Pooling` reads its names here).
pub const POOLERS: &[&str] = &[
    "cls",
    "cls_before_pooler",
    "avg",
    "avg_top2",
    "avg_first_last",
];
/// The `model.config.*` overrides that change a model's architecture (defined with the config.json
/// they override).
pub use crate::hf::config::ARCHITECTURE_KEYS;
pub const LOSSES: &[&str] = &[
    "infonce",
    "arccon",
    "mpt",
    "met",
    "mat",
    "barlow_twins",
    "vicreg",
    "mhe",
    "mhs",
];
pub const DATA_FORMATS: &[&str] = &["auto", "lines", "nli_csv", "snli"];
pub const EVAL_TASKS: &[&str] = &[
    "sts12",
    "sts13",
    "sts14",
    "sts15",
    "sts16",
    "stsb_dev",
    "stsb_test",
    "sickr_test",
    "mr",
    "cr",
    "subj",
    "mpqa",
    "sst2",
    "trec",
    "mrpc",
    "sts",
    "transfer",
    "full",
];

const INF: f64 = f64::INFINITY;
const POS: Kind = Kind::Float {
    min: 0.0,
    min_open: true,
    max: INF,
    max_open: false,
};
const NONNEG: Kind = Kind::Float {
    min: 0.0,
    min_open: false,
    max: INF,
    max_open: false,
};
const PROB: Kind = Kind::Float {
    min: 0.0,
    min_open: false,
    max: 1.0,
    max_open: true,
};
const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}
const BIG: i64 = 1 << 40;

const fn key(
    key: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    doc: &'static str,
) -> KeySpec {
    KeySpec {
        key,
        kind,
        default,
        identity: true,
        doc,
    }
}

/// The settings, grouped by section, in the order the documentation lists them.
pub static KEYS: &[KeySpec] = &[
    // ---- model
    key("model.path", Kind::Str, None, "Hugging Face model directory (config.json, model.safetensors or pytorch_model.bin, tokenizer.json or vocab.txt) of a BERT, RoBERTa, XLM-R, DistilBERT, MPNet or ModernBERT checkpoint (config.json's `model_type`; docs/models.md). Relative paths resolve against the sweep file's folder. Exactly one of model.path / model.hub; either may be swept to compare encoders in one sweep."),
    key("model.hub", Kind::Str, None, "Hub id (e.g. `bert-base-uncased`), resolved offline from the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)."),
    key("model.init", Kind::Choice(&["pretrained", "random"]), Some("\"pretrained\""), "`pretrained` loads the checkpoint's weights; `random` builds the architecture from its config.json (with model.config.* overrides) and initialises it from the run's seed."),
    key("model.pooling", Kind::Choice(POOLERS), Some("\"cls\""), "Sentence pooler, as SimCSE defines them: cls (with the MLP in training), cls_before_pooler, avg, avg_top2, avg_first_last (layer 1 + last)."),
    key("model.mlp_only_train", Kind::Bool, Some("false"), "With pooling = cls: use the MLP in training only and drop it at evaluation (SimCSE's unsupervised setting)."),
    key("model.config.hidden_size", int(1, 65_536), None, "Override of config.json (random init only); DistilBERT's `dim`."),
    key("model.config.num_hidden_layers", int(1, 256), None, "Override of config.json (random init only); DistilBERT's `n_layers`."),
    key("model.config.num_attention_heads", int(1, 1024), None, "Override of config.json (random init only); must divide hidden_size; DistilBERT's `n_heads`."),
    key("model.config.intermediate_size", int(1, 1 << 20), None, "Override of config.json (random init only); DistilBERT's `hidden_dim`, ModernBERT's GeGLU width."),
    key("model.config.max_position_embeddings", int(2, 1 << 20), None, "Override of config.json (random init only)."),
    key("model.config.hidden_dropout_prob", PROB, None, "Override of config.json; with unsupervised SimCSE this is the augmentation (SimCSE Table 2 sweeps it). DistilBERT's `dropout`; ModernBERT's `embedding_dropout` and `mlp_dropout` (0 in its checkpoints: set it for SimCSE)."),
    key("model.config.attention_probs_dropout_prob", PROB, None, "Override of config.json; DistilBERT's and ModernBERT's `attention_dropout` (ModernBERT applies it to the attention output too)."),
    // ---- data
    key("data.train", Kind::StrList, None, "Training files (required), relative to the data directory (--data-dir / SIMSWEEP_DATA_DIR) unless absolute. Tokenized once per content, tokenizer and `train.max_len` into the token cache, which later runs and processes map (`simsweep cache`, docs/cli.md)."),
    key("data.format", Kind::Choice(DATA_FORMATS), Some("\"auto\""), "`lines`: one sentence per line (wiki1m_for_simcse.txt); `nli_csv`: SimCSE's nli_for_simcse.csv (sent0, sent1, hard_neg); `snli`: SentEval's s1.*/s2.*/labels.* (name the s1 file). `auto` picks by file name (.csv → nli_csv, s1.* → snli, else lines)."),
    key("data.max_examples", int(0, BIG), Some("0"), "Use only the first N examples after shuffling (0 = all)."),
    key("data.shuffle", Kind::Bool, Some("true"), "Shuffle the training examples with the run's seed."),
    // ---- train
    key("train.batch_size", int(2, 1 << 20), Some("64"), "Sentences (or triplets) per step."),
    key("train.lr", POS, Some("3e-5"), "Peak learning rate of AdamW."),
    key("train.max_len", int(2, 8192), Some("32"), "Tokens per sentence after truncation, specials included."),
    key("train.steps", int(1, BIG), None, "Optimisation steps. Give train.steps or train.epochs, not both; neither means one epoch."),
    key("train.epochs", int(1, 1_000_000), None, "Passes over the training data."),
    key("train.temperature", POS, Some("0.05"), "Temperature τ of the similarity logits (InfoNCE, ArcCon)."),
    key("train.warmup_steps", int(0, BIG), Some("0"), "Linear warm-up steps."),
    key("train.lr_schedule", Kind::Choice(&["linear", "constant"]), Some("\"linear\""), "After warm-up: linear decay to 0 at the last step, or constant."),
    key("train.weight_decay", NONNEG, Some("0.0"), "AdamW decoupled weight decay (biases and every normalisation layer excluded, as in HF Trainer: names with `bias`, `LayerNorm`, a `norm` / `*_norm` module)."),
    key("train.max_grad_norm", NONNEG, Some("1.0"), "Clip the global gradient L2 norm to this value (0 = no clipping); HF Trainer's default 1.0."),
    key("train.precision", Kind::Choice(&["fp32", "bf16", "fp16"]), Some("\"fp32\""), "Autocast precision on CUDA; runs on the CPU always compute in fp32."),
    key("train.tf32", Kind::Bool, Some("false"), "On CUDA, let fp32 matrix products use TF32 tensor cores (PyTorch's torch.backends.cuda.matmul.allow_tf32; off by default, as in PyTorch). Faster on Ampere and later GPUs, with a 10-bit mantissa in the products. No effect on the CPU; under bf16/fp16 autocast it still applies to what stays fp32 (the loss's similarity products)."),
    key("train.hard_negative_weight", Kind::Float { min: -INF, min_open: true, max: INF, max_open: true }, Some("0.0"), "Supervised data only: added to the logits of the hard negatives (SimCSE's hard_negative_weight)."),
    KeySpec { identity: false, ..key("train.checkpoint_every", int(0, BIG), Some("250"), "Save a resumable checkpoint (model in Hugging Face format + optimizer and trainer state, `last-<step>/`) every N steps; an interrupted or killed run resumes from the newest one (0 = never: it starts over). The best checkpoint by STS-B dev is always kept. Not part of run identity.") },
    KeySpec { identity: false, ..key("train.log_every", int(1, BIG), Some("1"), "Record step metrics every N steps. Not part of run identity.") },
    KeySpec { identity: false, ..key("train.step_metrics", Kind::Bool, Some("true"), "Compute and record the batch step metrics (pos_cos, neg_cos, batch_alignment, batch_uniformity, gd_mean, w_entropy, w_max, ratio_mean) every step; false records only loss, grad_norm, lr and tokens_per_s. Training is the same either way. Not part of run identity.") },
    // ---- loss
    key("loss.kind", Kind::Choice(LOSSES), Some("\"infonce\""), "Training objective (see docs/metrics in shared: infonce, arccon, mpt, met, mat, barlow_twins, vicreg, mhe, mhs)."),
    key("loss.margin", NONNEG, None, "Margin m: mpt (default 0.23), met (0.45), mat (0.15, in units of π), and the gd modifier of the non-contrastive losses (0.30)."),
    key("loss.angle", Kind::Float { min: 0.0, min_open: false, max: std::f64::consts::PI, max_open: false }, None, "ArcCon's additive angular margin u, in radians (default 10° = 0.17453292519943295)."),
    key("loss.gd", Kind::Bool, None, "Non-contrastive losses: switch on the gradient-dissipation modifier (default false)."),
    key("loss.weight", Kind::Bool, None, "barlow_twins, vicreg, mhe: switch on the softmax weight modifier over negatives (default false); mhs has none."),
    key("loss.ratio", Kind::Bool, None, "Non-contrastive losses: switch on the ratio modifier of the positive term (default false)."),
    key("loss.temperature", POS, None, "Temperature of the weight modifier's softmax (default 0.05); needs loss.weight = true."),
    key("loss.ratio_scale", POS, None, "Scale of the positive term under the ratio modifier (default 1.5 for barlow_twins/vicreg, 1.75 for mhe/mhs); needs loss.ratio = true."),
    key("loss.lambda", NONNEG, None, "Non-contrastive losses: weight λ of the negative (uniformity / redundancy) term against the positive term (default 1.0 for barlow_twins, vicreg, mhe and mhs, as in the reference code)."),
    // ---- probe
    key("probe.every", int(0, BIG), Some("125"), "Probe the embedding geometry every N steps, always at step 0 and the last step (0 = only those two)."),
    key("probe.sentences", Kind::Str, Some("\"stsb-dev\""), "Probe set: `stsb-dev` (the first sentence1 of STS-B dev) or a file of one sentence per line under the data directory."),
    key("probe.size", int(2, 1_000_000), Some("1000"), "Number of probe sentences."),
    key("probe.max_len", int(2, 8192), Some("32"), "Tokens per probe sentence."),
    key("probe.layers", Kind::Layers, Some("\"last\""), "Layers to probe: \"last\", \"all\", or a list of indices (0 = embedding output)."),
    // ---- eval
    key("eval.every", int(0, BIG), Some("125"), "STS-B dev Spearman every N steps and at the end (0 = only at the end); the best checkpoint by it is kept."),
    key("eval.tasks", Kind::ChoiceList(EVAL_TASKS), Some("[\"sts12\",\"sts13\",\"sts14\",\"sts15\",\"sts16\",\"stsb_test\",\"sickr_test\"]"), "Tasks evaluated on the best checkpoint after training ([] = none): STS tasks, SentEval's transfer tasks (mr, cr, subj, mpqa, sst2, trec, mrpc; protocol eval.mode), or the groups `sts` (the eight STS tasks), `transfer` and `full` (both)."),
    key("eval.batch_size", int(1, 1 << 20), Some("128"), "Sentences per evaluation forward pass."),
    key("eval.mode", Kind::Choice(&["test", "fasttest"]), Some("\"test\""), "Protocol of the transfer tasks in eval.tasks, as SimCSE names them: `test` (10-fold, Adam, batch 64, tenacity 5, epoch size 4: the numbers papers report) or `fasttest` (5-fold, RMSprop, batch 128, tenacity 3, epoch size 2)."),
    key("eval.seed", int(0, u32::MAX as i64), Some("1111"), "SentEval's seed for the transfer tasks: folds, batch order, validation splits and the classifier's initial weights."),
];

/// The settings of the `[sweep]` table (not run settings).
pub const SWEEP_KEYS: &[&str] = &["name", "description", "seeds", "order", "order_seed"];
/// The top-level tables of a sweep file.
pub const TOP_LEVEL: &[&str] = &[
    "sweep", "base", "grid", "zip", "exclude", "random", "search",
];

pub fn lookup(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.key == key)
}

/// True if `prefix` names a section that contains settings (`model`, `model.config`, ...).
pub fn is_section(prefix: &str) -> bool {
    KEYS.iter().any(|k| {
        k.key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Loss parameters: which losses take which `loss.*` keys, and the defaults filled in when unset.
/// Keys not listed for a loss are refused for it.
pub fn loss_params(kind: &str) -> &'static [(&'static str, &'static str)] {
    const U10: &str = "0.17453292519943295";
    match kind {
        "infonce" => &[],
        "arccon" => &[("loss.angle", U10)],
        "mpt" => &[("loss.margin", "0.23")],
        "met" => &[("loss.margin", "0.45")],
        "mat" => &[("loss.margin", "0.15")],
        // λ defaults to 1 for all four, as `loss_params.get('lambda', 1)` in the reference code
        // (its scripts pass 30 / 30 / 10 / 1 for the original forms, 1 for the modified ones).
        "barlow_twins" | "vicreg" | "mhe" => &[
            ("loss.gd", "false"),
            ("loss.weight", "false"),
            ("loss.ratio", "false"),
            ("loss.lambda", "1.0"),
        ],
        // MHS has no weight modifier: its W is already one-hot on the nearest negative (the
        // reference code ignores `w_w` for mhs).
        "mhs" => &[
            ("loss.gd", "false"),
            ("loss.ratio", "false"),
            ("loss.lambda", "1.0"),
        ],
        _ => &[],
    }
}

/// Parameters that exist only under a modifier switch of a non-contrastive loss:
/// (parameter, switch, default).
pub const MODIFIER_PARAMS: &[(&str, &str, &str)] = &[
    ("loss.margin", "loss.gd", "0.30"),
    ("loss.temperature", "loss.weight", "0.05"),
];

/// The ratio modifier's default scale for a non-contrastive loss.
pub fn ratio_scale_default(kind: &str) -> &'static str {
    if kind == "mhe" || kind == "mhs" {
        "1.75"
    } else {
        "1.5"
    }
}

/// The default of a numeric `loss.*` parameter of loss `kind`, from [`loss_params`],
/// [`MODIFIER_PARAMS`] and [`ratio_scale_default`]: the one place the defaults are written (the
/// trainer reads them here).
pub fn loss_default(kind: &str, key: &str) -> Option<f64> {
    if key == "loss.ratio_scale" {
        return is_non_contrastive(kind)
            .then(|| ratio_scale_default(kind).parse().ok())
            .flatten();
    }
    let own = loss_params(kind).iter().find(|(k, _)| *k == key);
    let modifier = || {
        is_non_contrastive(kind)
            .then(|| MODIFIER_PARAMS.iter().find(|(k, _, _)| *k == key))
            .flatten()
            .map(|(_, _, v)| *v)
    };
    own.map(|(_, v)| *v)
        .or_else(modifier)
        .and_then(|v| v.parse().ok())
}

pub fn is_non_contrastive(kind: &str) -> bool {
    matches!(kind, "barlow_twins" | "vicreg" | "mhe" | "mhs")
}

/// Edit distance, for "did you mean" suggestions.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let last = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    candidates
        .into_iter()
        .map(|c| {
            // Compare whole keys, and also the last segment (`train.temprature` vs `loss.temperature`).
            let d = levenshtein(word, c).min(levenshtein(&last(word), &last(c)) + 1);
            (d, c)
        })
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The settings reference table of `docs/sweep-file.md`, generated from [`KEYS`].
pub fn markdown_reference() -> String {
    let mut out = String::from("| key | type | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = match k.default {
            Some(d) => format!("`{d}`"),
            None => "—".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.key,
            crate::spec::value::expected(&k.kind).replace('|', "\\|"),
            default,
            k.doc.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/sweep-file.md carries the generated reference; `SIMSWEEP_BLESS=1` rewrites it.
    #[test]
    fn docs_list_every_setting() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sweep-file.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (begin, end) = ("<!-- keys:begin -->\n", "<!-- keys:end -->");
        let a = doc.find(begin).expect("begin marker") + begin.len();
        let b = doc.find(end).expect("end marker");
        let want = markdown_reference();
        if doc[a..b] != want {
            if std::env::var_os("SIMSWEEP_BLESS").is_some() {
                std::fs::write(path, format!("{}{}{}", &doc[..a], want, &doc[b..])).unwrap();
            } else {
                panic!("docs/sweep-file.md is out of date with src/spec/schema.rs; rerun with SIMSWEEP_BLESS=1");
            }
        }
        for k in KEYS {
            assert!(doc.contains(&format!("`{}`", k.key)) || want.contains(k.key));
        }
    }

    #[test]
    fn defaults_parse_and_match_their_kind() {
        for k in KEYS {
            if let Some(v) = k.default_value() {
                crate::spec::value::check_json(k, &v)
                    .unwrap_or_else(|e| panic!("default of {} invalid: {e}", k.key));
            }
        }
    }

    #[test]
    fn keys_are_unique_and_sectioned() {
        for (i, a) in KEYS.iter().enumerate() {
            assert!(a.key.contains('.'), "{}", a.key);
            for b in &KEYS[i + 1..] {
                assert_ne!(a.key, b.key);
            }
        }
        assert!(is_section("model") && is_section("model.config") && !is_section("mode"));
    }

    #[test]
    fn loss_defaults_are_valid_values() {
        for l in LOSSES {
            for (k, v) in loss_params(l) {
                let spec = lookup(k).unwrap();
                let v: Value = serde_json::from_str(v).unwrap();
                crate::spec::value::check_json(spec, &v).unwrap();
            }
        }
    }

    #[test]
    fn suggestions() {
        let keys = KEYS.iter().map(|k| k.key);
        assert_eq!(
            suggest("train.temprature", keys.clone()),
            Some("train.temperature")
        );
        assert_eq!(
            suggest("train.batchsize", keys.clone()),
            Some("train.batch_size")
        );
        assert_eq!(suggest("model.pooler", keys.clone()), Some("model.pooling"));
        assert_eq!(suggest("zzz.qqqqqq", keys), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
