//! A catalogue of bad inputs, one test each: the real binary is given the input, and the test
//! checks the exit status, the *whole* message on standard error (temporary paths written as
//! `TMP`), and that the results database is byte for byte as it was (or still absent).
//!
//! Exit status: 2 for bad input (sweep files, models, data, options, queries), 1 for a run-time
//! environment that cannot be used (a database from a newer simsweep, a corrupt database file, an
//! unwritable results folder); see docs/cli.md.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The valid sweep every case starts from. Line numbers matter: `extra` is line 9, `rest` starts at
/// line 10.
fn doc(extra: &str, rest: &str) -> String {
    format!(
        "[sweep]\nname = \"bad\"\nseeds = [1, 2]\n[base]\nmodel.path = \"micro-bert\"\nmodel.init = \"random\"\ndata.train = [\"train.txt\"]\ntrain.steps = 10\n{extra}\n{rest}"
    )
}

const GRID: &str = "[grid]\ntrain.temperature = [0.05, 0.1]\n";

/// A temporary folder with a micro model, a data folder with one training file, a sweep file and
/// (with `seeded`) a results database that already holds a planned sweep.
struct Case {
    dir: tempfile::TempDir,
    sweep: PathBuf,
    data: PathBuf,
    db: PathBuf,
}

impl Case {
    fn new(body: &str, seeded: bool) -> Case {
        let dir = tempfile::tempdir().unwrap();
        common::micro_model(dir.path());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("train.txt"), "a sentence\nanother sentence\n").unwrap();
        let sweep = dir.path().join("s.toml");
        std::fs::write(&sweep, body).unwrap();
        let db = dir.path().join("out/r.db");
        if seeded {
            std::fs::create_dir_all(db.parent().unwrap()).unwrap();
            std::fs::write(&db, template_db()).unwrap();
        }
        Case {
            dir,
            sweep,
            data,
            db,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Run `simsweep --db DB --data-dir DATA ARGS…` (`SWEEP` in ARGS is the sweep file) and check
    /// the status, the whole of standard error, and that the database folder did not change.
    fn expect(&self, args: &[&str], code: i32, message: &str) {
        let before = snapshot(self.db.parent().unwrap());
        let sweep = self.sweep.display().to_string();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "SWEEP" { sweep.as_str() } else { a })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .env_remove("SIMSWEEP_DB")
            .env_remove("SIMSWEEP_DATA_DIR")
            .env_remove("SIMSWEEP_FAULT")
            .arg("--db")
            .arg(&self.db)
            .arg("--data-dir")
            .arg(&self.data)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&self.dir.path().display().to_string(), "TMP")
            .replace(&common::repo().display().to_string(), "REPO");
        assert_eq!(
            stderr.trim(),
            message,
            "standard error of {args:?}\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(out.status.code(), Some(code), "exit status of {args:?}");
        if code != 0 {
            let diff = differences(&before, &snapshot(self.db.parent().unwrap()));
            assert!(diff.is_empty(), "the database folder changed: {diff:?}");
        }
    }
}

/// Every file under `dir` (the database, its -wal, anything else) with its bytes; empty when the
/// folder does not exist. SQLite's `-shm` (an index of the WAL, rebuilt from it, no data) is left
/// out, and so is an empty `-wal`, which a read-only connection to a WAL database leaves behind
/// (it cannot delete it when it closes): neither holds anything of the database's content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                stack.push(p);
            } else if name.ends_with("-shm") {
                continue;
            } else {
                let bytes = std::fs::read(&p).unwrap();
                if name.ends_with("-wal") && bytes.is_empty() {
                    continue;
                }
                out.insert(p.clone(), bytes);
            }
        }
    }
    out
}

/// Where two snapshots differ (names and sizes, not the bytes).
fn differences(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    for p in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (a.get(p), b.get(p)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => out.push(format!(
                "{}: {:?} bytes before, {:?} after",
                p.display(),
                x.map(Vec::len),
                y.map(Vec::len)
            )),
        }
    }
    out
}

/// A database in which sweep `bad` (the valid `doc`) is planned, built once per test process.
fn template_db() -> &'static [u8] {
    static DB: OnceLock<Vec<u8>> = OnceLock::new();
    DB.get_or_init(|| {
        let c = Case::new(&doc("", GRID), false);
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .arg("--db")
            .arg(&c.db)
            .arg("--data-dir")
            .arg(&c.data)
            .arg("plan")
            .arg(&c.sweep)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!c.db.with_extension("db-wal").exists());
        std::fs::read(&c.db).unwrap()
    })
}

fn plan_fails(body: &str, message: &str) {
    Case::new(body, true).expect(&["plan", "SWEEP"], 2, message);
}

// ---------------------------------------------------------------- the sweep file

#[test]
fn malformed_toml_unclosed_table() {
    plan_fails(
        "[sweep]\nname = \"bad\"\n[base\n",
        "error: TMP/s.toml:3:6: invalid TOML: unclosed table, expected `]`",
    );
}

#[test]
fn malformed_toml_duplicate_key() {
    plan_fails(
        &doc("train.steps = 20", GRID),
        "error: TMP/s.toml:9:1: key `train.steps`: invalid TOML: duplicate key: it is set twice",
    );
}

#[test]
fn malformed_toml_string_without_end() {
    plan_fails(
        &doc("model.pooling = \"avg", GRID),
        "error: TMP/s.toml:9:21: invalid TOML: invalid basic string, expected `\"`",
    );
}

#[test]
fn sweep_file_that_is_not_utf8() {
    let c = Case::new("", true);
    std::fs::write(&c.sweep, b"[sweep]\nname = \"b\xffd\"\n").unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:2:10: the sweep file is not valid UTF-8",
    );
}

#[test]
fn sweep_file_that_does_not_exist() {
    let c = Case::new("", true);
    std::fs::remove_file(&c.sweep).unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml: cannot read sweep file: No such file or directory (os error 2)",
    );
}

#[test]
fn unknown_key_with_a_suggestion() {
    plan_fails(
        &doc("train.batchsize = 16", GRID),
        "error: TMP/s.toml:9:1: key `train.batchsize`: unknown setting (did you mean `train.batch_size`?)",
    );
}

#[test]
fn unknown_table() {
    plan_fails(
        &doc("", "[grids]\ntrain.temperature = [0.05, 0.1]\n"),
        "error: TMP/s.toml:10:2: key `grids`: unknown table (did you mean [grid]?)",
    );
}

#[test]
fn unknown_key_in_sweep_table() {
    plan_fails(
        &doc("", GRID).replace("seeds = [1, 2]", "seed = [1, 2]"),
        "error: TMP/s.toml:3:1: key `sweep.seed`: unknown setting (did you mean `sweep.seeds`, the runs' seeds, or `sweep.order_seed`, the seed of a shuffled order?)",
    );
}

#[test]
fn a_search_rung_beyond_the_last_step() {
    // train.steps = 10: a first rung at 20 could never be reached.
    plan_fails(
        &doc("eval.every = 5", &format!("{GRID}[search]\nmethod = \"asha\"\nmin_steps = 20\n")),
        "error: TMP/s.toml:14:13: key `search.min_steps`: min_steps = 20 is not before the last step of run 6364decbc5cd6dc3 (train.steps = 10): no decision could be taken; lower it",
    );
}

#[test]
fn a_search_metric_that_is_not_evaluated_during_training() {
    plan_fails(
        &doc("eval.every = 5", &format!("{GRID}[search]\nmethod = \"median\"\nmetric = \"uniformity\"\n")),
        "error: TMP/s.toml:14:10: key `search.metric`: `uniformity` is a probe metric, not an evaluation metric; a search judges runs by one evaluated during training: stsb_dev",
    );
}

#[test]
fn wrong_type_string_for_a_number() {
    plan_fails(
        &doc("train.lr = \"fast\"", GRID),
        "error: TMP/s.toml:9:12: key `train.lr`: expected a number > 0, found string \"fast\"",
    );
}

#[test]
fn wrong_type_float_for_an_integer() {
    plan_fails(
        &doc("train.batch_size = 8.5", GRID),
        "error: TMP/s.toml:9:20: key `train.batch_size`: expected an integer from 2 to 1048576, found float 8.5",
    );
}

#[test]
fn wrong_type_scalar_for_a_grid_axis() {
    plan_fails(
        &doc("", "[grid]\ntrain.temperature = 0.05\n"),
        "error: TMP/s.toml:11:21: key `train.temperature`: [grid] values must be an array of values to try, found float",
    );
}

#[test]
fn out_of_range_negative_temperature() {
    plan_fails(
        &doc("", "[grid]\ntrain.temperature = [0.05, -1.0]\n"),
        "error: TMP/s.toml:11:28: key `train.temperature`: -1.0 is out of range: expected a number > 0",
    );
}

#[test]
fn out_of_range_dropout_of_one() {
    plan_fails(
        &doc("model.config.hidden_dropout_prob = 1.0", GRID),
        "error: TMP/s.toml:9:36: key `model.config.hidden_dropout_prob`: 1.0 is out of range: expected a number ≥ 0 and < 1",
    );
}

#[test]
fn out_of_range_batch_of_one() {
    plan_fails(
        &doc("train.batch_size = 1", GRID),
        "error: TMP/s.toml:9:20: key `train.batch_size`: 1 is out of range: expected an integer from 2 to 1048576",
    );
}

#[test]
fn negative_seed() {
    plan_fails(
        &doc("", GRID).replace("seeds = [1, 2]", "seeds = [1, -2]"),
        "error: TMP/s.toml:3:9: key `sweep.seeds`: expected integers ≥ 0, found integer -2",
    );
}

#[test]
fn missing_sweep_name() {
    plan_fails(
        &doc("", GRID).replace("name = \"bad\"\n", ""),
        "error: TMP/s.toml:1:2: key `sweep.name`: missing: every sweep needs a name",
    );
}

#[test]
fn empty_grid_axis() {
    plan_fails(
        &doc("", "[grid]\ntrain.temperature = []\n"),
        "error: TMP/s.toml:11:21: key `train.temperature`: [grid] lists no values: give at least one",
    );
}

#[test]
fn a_value_twice_in_a_grid_axis() {
    plan_fails(
        &doc("", "[grid]\ntrain.temperature = [0.05, 0.1, 0.05]\n"),
        "error: TMP/s.toml:11:33: key `train.temperature`: [grid] lists 0.05 twice",
    );
}

#[test]
fn unequal_zip_lists() {
    plan_fails(
        &doc(
            "",
            "[[zip]]\ntrain.lr = [1e-5, 2e-5, 3e-5]\ntrain.batch_size = [8, 16]\n",
        ),
        "error: TMP/s.toml:12:1: key `train.batch_size`: [[zip]] lists must have equal lengths: `train.lr` has 3 values, `train.batch_size` has 2",
    );
}

#[test]
fn a_key_in_both_grid_and_zip() {
    plan_fails(
        &doc(
            "",
            "[grid]\ntrain.lr = [1e-5, 2e-5]\n[[zip]]\ntrain.lr = [1e-5, 2e-5]\ntrain.batch_size = [8, 16]\n",
        ),
        "error: TMP/s.toml:13:1: key `train.lr`: is already varied in [grid] (line 11); a key may be in [grid] or one [[zip]], not both",
    );
}

#[test]
fn an_exclude_that_matches_nothing_is_a_warning() {
    let c = Case::new(
        &doc("", &format!("{GRID}[[exclude]]\ntrain.temperature = 0.5\n")),
        true,
    );
    c.expect(
        &["plan", "SWEEP"],
        0,
        "warning: TMP/s.toml:12:1: [[exclude]] matches no run (train.temperature = 0.5); check its keys and values",
    );
}

#[test]
fn an_exclude_that_drops_every_run() {
    plan_fails(
        &doc(
            "",
            &format!("{GRID}[[exclude]]\ntrain.temperature = [0.05, 0.1]\n"),
        ),
        "error: TMP/s.toml:1:1: every combination is excluded: the sweep has no runs",
    );
}

#[test]
fn unknown_pooler() {
    plan_fails(
        &doc("model.pooling = \"max\"", GRID),
        "error: TMP/s.toml:9:17: key `model.pooling`: unknown value \"max\": expected one of \"cls\", \"cls_before_pooler\", \"avg\", \"avg_top2\", \"avg_first_last\"",
    );
}

#[test]
fn unknown_loss() {
    plan_fails(
        &doc("loss.kind = \"triplet\"", GRID),
        "error: TMP/s.toml:9:13: key `loss.kind`: unknown value \"triplet\": expected one of \"infonce\", \"arccon\", \"mpt\", \"met\", \"mat\", \"barlow_twins\", \"vicreg\", \"mhe\", \"mhs\"",
    );
}

#[test]
fn a_loss_parameter_of_another_loss() {
    plan_fails(
        &doc("loss.kind = \"mpt\"\nloss.angle = 0.2", GRID),
        "error: TMP/s.toml:10:14: key `loss.angle`: is not a parameter of loss `mpt` (it takes `loss.margin`)",
    );
}

#[test]
fn a_modifier_parameter_without_its_switch() {
    plan_fails(
        &doc("loss.kind = \"vicreg\"\nloss.temperature = 0.1", GRID),
        "error: TMP/s.toml:10:20: key `loss.temperature`: loss `vicreg` takes `loss.temperature` only with `loss.weight = true`",
    );
}

#[test]
fn steps_and_epochs_together() {
    plan_fails(
        &doc("train.epochs = 2", GRID),
        "error: TMP/s.toml:9:16: key `train.epochs`: give train.steps or train.epochs, not both",
    );
}

#[test]
fn a_sweep_far_too_large_is_refused_with_its_count() {
    let mut grid = String::from("[grid]\n");
    for key in [
        "train.lr",
        "train.temperature",
        "train.weight_decay",
        "train.max_grad_norm",
        "loss.margin",
    ] {
        let vals: Vec<String> = (1..=100).map(|i| format!("{}.5e-3", i)).collect();
        grid.push_str(&format!("{key} = [{}]\n", vals.join(", ")));
    }
    let body = doc("loss.kind = \"mpt\"", &grid);
    let t = std::time::Instant::now();
    plan_fails(
        &body,
        "error: TMP/s.toml:11:13: the sweep expands to 20000000000 runs (100 (train.lr) × 100 (train.temperature) × 100 (train.weight_decay) × 100 (train.max_grad_norm) × 100 (loss.margin) × 2 seeds), more than the limit of 100000; split it into smaller sweeps",
    );
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}

#[test]
fn random_search_without_n() {
    plan_fails(
        &doc("", "[random]\ntrain.lr = { log_uniform = [1e-5, 1e-3] }\n"),
        "error: TMP/s.toml:10:1: key `random.n`: missing: [random] needs n, the number of samples",
    );
}

// ---------------------------------------------------------------- the model directory

#[test]
fn missing_model_directory() {
    plan_fails(
        &doc("", GRID).replace("\"micro-bert\"", "\"no-such-model\""),
        "error: TMP/s.toml:5:14: key `model.path`: model directory TMP/no-such-model does not exist",
    );
}

#[test]
fn model_directory_without_config() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::remove_file(c.path("micro-bert/config.json")).unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert has no config.json (expected a Hugging Face model directory)",
    );
}

#[test]
fn corrupt_config_json() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::write(
        c.path("micro-bert/config.json"),
        "{\n  \"model_type\": \"bert\",\n  \"hidden_size\": ",
    )
    .unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/config.json: not valid JSON: EOF while parsing a value at line 3 column 17",
    );
}

#[test]
fn config_json_of_an_unsupported_model() {
    let c = Case::new(&doc("", GRID), true);
    let p = c.path("micro-bert/config.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"model_type\": \"bert\"", "\"model_type\": \"gpt2\"");
    std::fs::write(&p, text).unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/config.json: model_type `gpt2` is not supported (supported: bert, roberta, xlm-roberta, distilbert, mpnet, modernbert)",
    );
}

#[test]
fn config_json_of_other_architectures_is_checked_under_their_own_names() {
    // DistilBERT names its sizes dim / n_heads; ModernBERT's window is local_attention. `plan`
    // reads them as loading does and names the architecture's key.
    for (config, message) in [
        (
            r#"{"model_type": "distilbert", "vocab_size": 30522, "dim": 30, "n_heads": 4, "n_layers": 1, "hidden_dim": 64}"#,
            "n_heads (4) must divide dim (30)",
        ),
        (
            r#"{"model_type": "modernbert", "vocab_size": 30522, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "pad_token_id": 0, "local_attention": "wide"}"#,
            "key `local_attention` must be an integer, found \"wide\"",
        ),
        (
            r#"{"model_type": "mpnet", "vocab_size": 30522, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "relative_attention_num_buckets": 8}"#,
            "relative_attention_num_buckets must be at least 32 (MPNet buckets relative positions into 32), found 8",
        ),
    ] {
        let c = Case::new(&doc("", GRID), true);
        std::fs::write(c.path("micro-bert/config.json"), config).unwrap();
        c.expect(
            &["plan", "SWEEP"],
            2,
            &format!("error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/config.json: {message}"),
        );
    }
}

#[test]
fn corrupt_tokenizer_json() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::write(
        c.path("micro-bert/tokenizer.json"),
        "{\"version\": \"1.0\", \"model\": ",
    )
    .unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/tokenizer.json: tokenizer: not a valid tokenizer.json (EOF while parsing a value at line 1 column 28)",
    );
}

#[test]
fn model_directory_without_a_tokenizer() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::remove_file(c.path("micro-bert/vocab.txt")).unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/tokenizer.json not found: the tokenizer needs tokenizer.json, vocab.txt (BERT) or vocab.json + merges.txt (RoBERTa)",
    );
}

#[test]
fn pretrained_model_without_weights() {
    plan_fails(
        &doc("", GRID).replace("model.init = \"random\"", "model.init = \"pretrained\""),
        "error: TMP/s.toml:5:14: key `model.path`: no weights in TMP/micro-bert: expected model.safetensors (or its index) or pytorch_model.bin (or its index); use model.init = \"random\" to train from scratch",
    );
}

/// A safetensors file whose header (93 bytes) names one f32 tensor of 1,024 values (4,096 bytes) but
/// holds only `have` bytes of data (a truncated download).
fn truncated_safetensors(have: usize) -> Vec<u8> {
    let header = br#"{"embeddings.word_embeddings.weight":{"dtype":"F32","shape":[32,32],"data_offsets":[0,4096]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.extend(std::iter::repeat_n(0u8, have));
    b
}

#[test]
fn truncated_safetensors_weights() {
    let c = Case::new(
        &doc("", GRID).replace("model.init = \"random\"", "model.init = \"pretrained\""),
        true,
    );
    std::fs::write(
        c.path("micro-bert/model.safetensors"),
        truncated_safetensors(1000),
    )
    .unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/model.safetensors: cannot read weights: not a valid safetensors file (truncated: its tensors need 4197 bytes, the file has 1101)",
    );
}

#[test]
fn garbage_safetensors_weights() {
    let c = Case::new(
        &doc("", GRID).replace("model.init = \"random\"", "model.init = \"pretrained\""),
        true,
    );
    std::fs::write(
        c.path("micro-bert/model.safetensors"),
        "this is not a safetensors file, only text",
    )
    .unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/model.safetensors: cannot read weights: not a valid safetensors file (its header length field says 2338328219631577204 bytes, the file has 41 bytes)",
    );
}

#[test]
fn run_refuses_a_corrupt_model_before_claiming_anything() {
    let c = Case::new(
        &doc("", GRID).replace("model.init = \"random\"", "model.init = \"pretrained\""),
        true,
    );
    std::fs::write(
        c.path("micro-bert/model.safetensors"),
        truncated_safetensors(10),
    )
    .unwrap();
    c.expect(
        &["run", "SWEEP", "--device", "cpu"],
        2,
        "error: TMP/s.toml:5:14: key `model.path`: TMP/micro-bert/model.safetensors: cannot read weights: not a valid safetensors file (truncated: its tensors need 4197 bytes, the file has 111)",
    );
}

// ---------------------------------------------------------------- data files

#[test]
fn missing_data_file() {
    plan_fails(
        &doc("", GRID).replace("train.txt", "nope.txt"),
        "error: TMP/s.toml:7:14: key `data.train`: data file TMP/data/nope.txt not found (relative paths resolve against the data directory TMP/data; set --data-dir or SIMSWEEP_DATA_DIR)",
    );
}

#[test]
fn empty_data_file() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::write(c.data.join("train.txt"), "").unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:7:14: key `data.train`: data file TMP/data/train.txt is empty",
    );
}

#[test]
fn data_file_of_empty_lines() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::write(c.data.join("train.txt"), "\n  \n\t\n").unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:7:14: key `data.train`: data file TMP/data/train.txt has no text (3 empty lines)",
    );
}

#[test]
fn binary_data_file() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::write(
        c.data.join("train.txt"),
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
    )
    .unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:7:14: key `data.train`: data file TMP/data/train.txt looks binary (line 1 contains a NUL byte); expected text",
    );
}

#[test]
fn data_file_with_a_non_utf8_line() {
    let c = Case::new(&doc("", GRID), true);
    std::fs::write(
        c.data.join("train.txt"),
        b"a sentence\nanother one\nna\xefve caf\xe9 latin-1\nthe end\n",
    )
    .unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:7:14: key `data.train`: data file TMP/data/train.txt: line 3 is not valid UTF-8 (byte 0xEF at column 3); convert the file to UTF-8 or remove the line",
    );
}

#[test]
fn probe_sentences_file_with_a_non_utf8_line() {
    let c = Case::new(&doc("probe.sentences = \"probe.txt\"", GRID), true);
    std::fs::write(c.data.join("probe.txt"), b"one\ntwo\n\x80\n").unwrap();
    c.expect(
        &["plan", "SWEEP"],
        2,
        "error: TMP/s.toml:9:19: key `probe.sentences`: data file TMP/data/probe.txt: line 3 is not valid UTF-8 (byte 0x80 at column 1); convert the file to UTF-8 or remove the line",
    );
}

// ---------------------------------------------------------------- the results database

#[test]
fn unwritable_results_directory() {
    let c = Case::new(&doc("", GRID), false);
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .args(["--db", "/proc/simsweep/r.db", "--data-dir"])
        .arg(&c.data)
        .arg("plan")
        .arg(&c.sweep)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: database /proc/simsweep/r.db: cannot create its folder /proc/simsweep: No such file or directory (os error 2)"
    );
    assert!(!Path::new("/proc/simsweep").exists());
}

#[test]
fn database_from_a_newer_schema() {
    let c = Case::new(&doc("", GRID), false);
    std::fs::create_dir_all(c.db.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&c.db).unwrap();
        conn.execute_batch("CREATE TABLE runs (x); PRAGMA user_version = 7;")
            .unwrap();
    }
    c.expect(
        &["plan", "SWEEP"],
        1,
        "error: database TMP/out/r.db: schema version 7 is newer than this simsweep understands (3); use a newer simsweep",
    );
    c.expect(
        &["status"],
        1,
        "error: database TMP/out/r.db: schema version 7 is newer than this simsweep understands (3); use a newer simsweep",
    );
}

#[test]
fn database_file_of_garbage() {
    let c = Case::new(&doc("", GRID), false);
    std::fs::create_dir_all(c.db.parent().unwrap()).unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&c.db, garbage).unwrap();
    let msg = "error: database TMP/out/r.db: not a SQLite database, or the file is corrupt (file is not a database); it was left as it is: restore it from a copy or choose another --db";
    c.expect(&["plan", "SWEEP"], 1, msg);
    c.expect(&["run", "SWEEP", "--device", "cpu"], 1, msg);
    c.expect(&["query", "SELECT count(*) FROM runs"], 1, msg);
}

#[test]
fn truncated_database_file() {
    let c = Case::new(&doc("", GRID), true);
    let bytes = std::fs::read(&c.db).unwrap();
    std::fs::write(&c.db, &bytes[..bytes.len() / 2]).unwrap();
    let msg = "error: database TMP/out/r.db: not a SQLite database, or the file is corrupt (database disk image is malformed); it was left as it is: restore it from a copy or choose another --db";
    c.expect(&["plan", "SWEEP"], 1, msg);
    c.expect(&["status"], 1, msg);
}

// ---------------------------------------------------------------- queries

fn query_refused(sql: &str, message: &str) {
    Case::new("", true).expect(&["query", sql], 2, message);
}

const WRITE_REFUSED: &str = "error: only reading statements are allowed (SELECT, WITH … SELECT, EXPLAIN, read-only PRAGMA); this statement would change the database";

#[test]
fn query_insert_is_refused() {
    query_refused(
        "INSERT INTO events (run_pk, kind, message) VALUES (1, 'x', 'y')",
        WRITE_REFUSED,
    );
}

#[test]
fn query_drop_is_refused() {
    query_refused("DROP TABLE metrics", WRITE_REFUSED);
}

#[test]
fn query_writing_pragma_is_refused() {
    query_refused("PRAGMA user_version = 9", WRITE_REFUSED);
}

#[test]
fn query_attach_is_refused() {
    query_refused(
        "ATTACH DATABASE '/tmp/simsweep-attached.db' AS x",
        "error: ATTACH, DETACH and transaction statements are refused: give one SELECT (or WITH … SELECT) statement",
    );
    assert!(!Path::new("/tmp/simsweep-attached.db").exists());
}

#[test]
fn query_with_several_statements_is_refused() {
    query_refused(
        "SELECT 1; DELETE FROM metrics",
        "error: one statement at a time: the query holds more than one (remove the `;` between them)",
    );
}

#[test]
fn query_on_a_missing_database_creates_nothing() {
    let c = Case::new("", false);
    c.expect(
        &["query", "SELECT 1"],
        2,
        "error: no results database at TMP/out/r.db (record a sweep with `simsweep plan FILE`, or choose one with --db / SIMSWEEP_DB)",
    );
    assert!(!c.db.parent().unwrap().exists());
}

#[test]
fn hostile_where_values_are_only_values() {
    let c = Case::new("", true);
    for hostile in [
        "train.temperature=0.05' OR '1'='1",
        "train.temperature=0.05; DROP TABLE runs; --",
        "train.temperature=\") OR 1=1 --",
    ] {
        let before = snapshot(c.db.parent().unwrap());
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .arg("--db")
            .arg(&c.db)
            .args(["runs", "bad", "--where", hostile, "--format", "csv"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{hostile}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{hostile}");
        // The CSV header and no run: the value matched nothing, and nothing was executed.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            1,
            "{hostile}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let diff = differences(&before, &snapshot(c.db.parent().unwrap()));
        assert!(
            diff.is_empty(),
            "{hostile}: the database folder changed: {diff:?}"
        );
    }
    // The same selection with an honest value finds the two seeds.
    let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
        .arg("--db")
        .arg(&c.db)
        .args([
            "runs",
            "bad",
            "--where",
            "train.temperature=0.05",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[test]
fn where_with_an_unknown_key() {
    Case::new("", true).expect(
        &["runs", "bad", "--where", "train.temprature=0.05"],
        2,
        "error: unknown key `train.temprature` in --where (did you mean `train.temperature`?): sweep `bad` varies train.temperature, seed; any other setting of its runs works too (e.g. `loss.kind`)",
    );
}

/// A database that cannot be created names the cause in the operating system's words, once (SQLite
/// alone says "unable to open database file"). Root may write anywhere, so the cases are ones root
/// cannot create either.
#[test]
fn a_database_that_cannot_be_created_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = dir.path().join("s.toml");
    std::fs::write(
        &sweep,
        format!(
            "[sweep]\nname = \"x\"\n[base]\nmodel.path = \"{}\"\nmodel.init = \"random\"\ndata.train = [\"t.txt\"]\n",
            common::repo().join("models/tiny-bert").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("t.txt"), "a sentence\nanother one\n").unwrap();
    std::fs::write(dir.path().join("plain-file"), "").unwrap();
    let cases = [
        (
            dir.path().to_path_buf(),
            "error: database TMP: it is a directory; --db names the database file".to_string(),
        ),
        (
            dir.path().join("plain-file/r.db"),
            "error: database TMP/plain-file/r.db: cannot create its folder TMP/plain-file: File exists (os error 17)".to_string(),
        ),
        (
            PathBuf::from("/proc/simsweep-test.db"),
            "error: database /proc/simsweep-test.db: cannot create it in /proc: No such file or directory (os error 2)".to_string(),
        ),
    ];
    for (db, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .env_remove("SIMSWEEP_DB")
            .arg("--db")
            .arg(&db)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["plan", &sweep.display().to_string()])
            .output()
            .unwrap();
        let stderr =
            String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "TMP");
        assert_eq!(stderr.trim(), want, "--db {}", db.display());
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn an_unknown_transfer_mode() {
    plan_fails(
        &doc("eval.mode = \"fast\"", GRID),
        "error: TMP/s.toml:9:13: key `eval.mode`: unknown value \"fast\": expected one of \"test\", \"fasttest\" (did you mean \"test\"?)",
    );
}

#[test]
fn an_unknown_evaluation_task() {
    plan_fails(
        &doc("eval.tasks = [\"sts\", \"mrr\"]", GRID),
        "error: TMP/s.toml:9:14: key `eval.tasks`: unknown value \"mrr\": expected only \"sts12\", \"sts13\", \"sts14\", \"sts15\", \"sts16\", \"stsb_dev\", \"stsb_test\", \"sickr_test\", \"mr\", \"cr\", \"subj\", \"mpqa\", \"sst2\", \"trec\", \"mrpc\", \"sts\", \"transfer\", \"full\"",
    );
}
