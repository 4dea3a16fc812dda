use super::*;
use serde_json::json;

const HEAD: &str =
    "[sweep]\nname = \"t\"\n[base]\nmodel.path = \"m\"\ndata.train = [\"wiki.txt\"]\n";

fn ok(text: &str) -> Sweep {
    parse(Path::new("s.toml"), text).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

/// The single error message of a bad file, as printed.
fn err(text: &str) -> String {
    match parse(Path::new("s.toml"), text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            assert_eq!(e.0.len(), 1, "expected one error, got:\n{e}");
            e.to_string()
        }
    }
}

fn ids(s: &Sweep) -> Vec<String> {
    s.runs.iter().map(|r| r.id.clone()).collect()
}

#[test]
fn the_issue_example_expands_to_grid_times_zip_times_seeds_minus_excludes() {
    let text = r#"
[sweep]
name = "temperature-pooling"
description = "SimCSE Table D.1 and Table 6 on one grid"
seeds = [1, 2, 3]

[base]
model.path = "m"
model.init = "pretrained"
model.pooling = "cls"
data.train = ["wiki1m_for_simcse.head.txt"]
train.batch_size = 64
train.lr = 3e-5
train.max_len = 32
train.steps = 500
train.temperature = 0.05
loss.kind = "infonce"
probe.every = 25
eval.every = 125

[grid]
"train.temperature" = [0.001, 0.01, 0.05, 0.1, 1.0]
"model.pooling" = ["cls", "cls_before_pooler", "avg"]

[[zip]]
"train.batch_size" = [64, 128, 256]
"train.lr" = [3e-5, 5e-5, 1e-4]

[[exclude]]
"model.pooling" = "avg"
"train.temperature" = 1.0
"#;
    let s = ok(text);
    // 5 × 3 grid × 3 zip × 3 seeds = 135, minus avg@1.0 (3 zip × 3 seeds = 9).
    assert_eq!(s.runs.len(), 135 - 9);
    assert_eq!(
        s.swept_keys,
        vec![
            "train.temperature",
            "model.pooling",
            "train.batch_size",
            "train.lr"
        ]
    );
    assert!(s.warnings.is_empty());
    // Last axis fastest, seeds innermost.
    let r0 = &s.runs[0];
    assert_eq!(r0.params["train.temperature"], json!(0.001));
    assert_eq!(r0.params["model.pooling"], json!("cls"));
    assert_eq!(r0.params["train.batch_size"], json!(64));
    assert_eq!(r0.params["seed"], json!(1));
    assert_eq!(s.runs[1].params["seed"], json!(2));
    assert_eq!(s.runs[3].params["train.batch_size"], json!(128));
    assert_eq!(s.runs[3].params["train.lr"], json!(5e-5));
    // Zip keys move together.
    for r in &s.runs {
        let (b, lr) = (
            r.params["train.batch_size"].as_i64().unwrap(),
            r.params["train.lr"].as_f64().unwrap(),
        );
        assert_eq!(
            (b, lr),
            match b {
                64 => (64, 3e-5),
                128 => (128, 5e-5),
                _ => (256, 1e-4),
            }
        );
        assert!(
            !(r.params["model.pooling"] == json!("avg")
                && r.params["train.temperature"] == json!(1.0))
        );
    }
    // Ids unique, 16 hex digits; ordinals consecutive.
    let mut u = ids(&s);
    u.sort();
    u.dedup();
    assert_eq!(u.len(), s.runs.len());
    assert!(s
        .runs
        .iter()
        .all(|r| r.id.len() == 16 && r.id.chars().all(|c| c.is_ascii_hexdigit())));
    assert!(s.runs.iter().enumerate().all(|(i, r)| r.ordinal == i));
    // The typed config builds from every run.
    for r in &s.runs {
        let c = config::RunConfig::from_flat(&r.config).unwrap();
        assert_eq!(c.seed, r.seed);
        assert_eq!(c.train.steps, Some(500));
        assert_eq!(c.eval.tasks.len(), 7);
    }
}

#[test]
fn two_grid_axes_and_two_zip_groups_multiply() {
    let s = ok(&format!(
        "{HEAD}[grid]\ntrain.temperature = [0.05, 0.1]\nmodel.pooling = [\"cls\", \"avg\", \"avg_top2\"]\n[[zip]]\ntrain.batch_size = [32, 64]\ntrain.lr = [1e-5, 2e-5]\n[[zip]]\ntrain.max_len = [16, 32, 64]\n[sweep.x]\n"
    ).replace("[sweep.x]\n", ""));
    assert_eq!(s.runs.len(), 2 * 3 * 2 * 3);
}

#[test]
fn nested_grid_tables_mean_the_same_as_dotted_keys() {
    let a = ok(&format!("{HEAD}[grid]\n\"train.temperature\" = [0.05, 0.1]\n\"model.pooling\" = [\"cls\", \"avg\"]\n"));
    let b = ok(&format!("{HEAD}[grid.train]\ntemperature = [0.05, 0.1]\n[grid.model]\npooling = [\"cls\", \"avg\"]\n"));
    let c = ok(&format!("{HEAD}[grid]\ntrain.temperature = [0.05, 0.1]\nmodel = {{ pooling = [\"cls\", \"avg\"] }}\n"));
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(ids(&a), ids(&c));
}

#[test]
fn identity_is_stable_under_edits_that_do_not_change_a_run() {
    let a = ok(&format!("{HEAD}[grid]\ntrain.temperature = [0.05, 0.1]\n"));
    // Reordered, reformatted, described, a default stated explicitly, a non-identity key changed.
    let b = ok("# comment\n[sweep]\ndescription = \"now described\"\nname = \"t\"\n[grid]\n\"train.temperature\" = [ 0.05 , 1e-1 ]\n[base]\ndata.train = \"wiki.txt\"\ntrain.lr = 3e-5\nmodel.pooling = \"cls\"\ntrain.checkpoint_every = 50\nmodel.path = \"m\"\n");
    assert_eq!(ids(&a), ids(&b));
    // Adding an axis value adds only the new run.
    let c = ok(&format!(
        "{HEAD}[grid]\ntrain.temperature = [0.05, 0.1, 0.2]\n"
    ));
    assert_eq!(&ids(&c)[..2], &ids(&a)[..]);
    // An integer written for a float setting is the same value.
    let d = ok(&format!("{HEAD}train.lr = 1\n"));
    let e = ok(&format!("{HEAD}train.lr = 1.0\n"));
    assert_eq!(ids(&d), ids(&e));
    // A changed setting is a different run; so is another seed and another sweep name.
    let f = ok(&format!("{HEAD}train.lr = 2.0\n"));
    assert_ne!(ids(&d), ids(&f));
    let g = ok(&HEAD.replace("[sweep]\n", "[sweep]\nseeds = [7]\n"));
    assert_ne!(ids(&g), ids(&ok(HEAD)));
    let h = ok(&HEAD.replace("name = \"t\"", "name = \"u\""));
    assert_ne!(ids(&h), ids(&ok(HEAD)));
    // Canonical form is what the id hashes, pinned so it cannot drift silently.
    let r = &ok(HEAD).runs[0];
    assert_eq!(
        r.canonical,
        r#"{"data.train":["wiki.txt"],"model.path":"m","seed":42}"#
    );
    assert_eq!(r.id, run_id("t", &r.canonical));
    assert_eq!(run_id("t", r#"{"seed":42}"#), run_id("t", r#"{"seed":42}"#));
    assert_ne!(run_id("t", r#"{"seed":42}"#), run_id("t", r#"{"seed":43}"#));
}

#[test]
fn loss_defaults_are_filled_and_kept_out_of_identity() {
    let s = ok(&format!(
        "{HEAD}[grid]\nloss.kind = [\"infonce\", \"mpt\", \"met\", \"barlow_twins\"]\n"
    ));
    let c = |i: usize| &s.runs[i].config;
    assert!(!c(0).contains_key("loss.margin"));
    assert_eq!(c(1)["loss.margin"], json!(0.23));
    assert_eq!(c(2)["loss.margin"], json!(0.45));
    assert_eq!(c(3)["loss.gd"], json!(false));
    assert_eq!(c(3)["loss.lambda"], json!(1.0));
    // Stating the loss's default margin does not change the id.
    let t = ok(&format!("{HEAD}loss.kind = \"mpt\"\nloss.margin = 0.23\n"));
    assert_eq!(t.runs[0].id, s.runs[1].id);
    // Modifier parameters appear with their switch.
    let m = ok(&format!(
        "{HEAD}loss.kind = \"mhe\"\nloss.ratio = true\nloss.gd = true\n"
    ));
    assert_eq!(m.runs[0].config["loss.ratio_scale"], json!(1.75));
    assert_eq!(m.runs[0].config["loss.margin"], json!(0.3));
}

#[test]
fn random_search_is_deterministic_and_in_range() {
    let text = format!("{HEAD}[random]\nn = 6\nseed = 3\n\"train.lr\" = {{ log_uniform = [1e-5, 1e-3] }}\n\"train.batch_size\" = {{ uniform = [16, 128] }}\n\"model.pooling\" = {{ choice = [\"cls\", \"avg\"] }}\n");
    let a = ok(&text);
    let b = ok(&text);
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.runs.len(), 6);
    for r in &a.runs {
        let lr = r.config["train.lr"].as_f64().unwrap();
        assert!((1e-5..=1e-3).contains(&lr), "{lr}");
        let bs = r.config["train.batch_size"].as_i64().unwrap();
        assert!((16..=128).contains(&bs));
    }
    let c = ok(&text.replace("seed = 3", "seed = 4"));
    assert_ne!(ids(&a), ids(&c));
    assert_eq!(
        err(&format!("{HEAD}[random]\nn = 2\n\"train.lr\" = {{ gaussian = [0, 1] }}\n")),
        "s.toml:8:14: key `train.lr`: unknown distribution `gaussian`: expected uniform, log_uniform or choice"
    );
}

#[test]
fn exclude_that_matches_nothing_warns() {
    let s = ok(&format!(
        "{HEAD}[grid]\ntrain.temperature = [0.05, 0.1]\n[[exclude]]\ntrain.temperature = 0.5\n"
    ));
    assert_eq!(s.runs.len(), 2);
    assert_eq!(
        s.warnings,
        vec!["s.toml:8:1: [[exclude]] matches no run (train.temperature = 0.5); check its keys and values"]
    );
    // A list of alternatives excludes each.
    let t = ok(&format!("{HEAD}[grid]\ntrain.temperature = [0.05, 0.1, 0.2]\n[[exclude]]\ntrain.temperature = [0.05, 0.2]\n"));
    assert_eq!(t.runs.len(), 1);
}

#[test]
fn validation_errors_name_file_line_column_and_key() {
    let cases: &[(&str, &str)] = &[
        ("[sweep]\nname = \"t\"\n[base\n", "s.toml:3:6: invalid TOML: unclosed table, expected `]`"),
        (&format!("{HEAD}train.temprature = 0.1\n"), "s.toml:6:1: key `train.temprature`: unknown setting (did you mean `train.temperature`?)"),
        (&format!("{HEAD}[grdi]\n"), "s.toml:6:2: key `grdi`: unknown table (did you mean [grid]?)"),
        (&format!("{HEAD}train.batch_size = \"64\"\n"), "s.toml:6:20: key `train.batch_size`: expected an integer from 2 to 1048576, found string \"64\""),
        (&format!("{HEAD}train.temperature = 0.0\n"), "s.toml:6:21: key `train.temperature`: 0.0 is out of range: expected a number > 0"),
        (&format!("{HEAD}train.temperature = -0.05\n"), "s.toml:6:21: key `train.temperature`: -0.05 is out of range: expected a number > 0"),
        (&format!("{HEAD}train.batch_size = 1\n"), "s.toml:6:20: key `train.batch_size`: 1 is out of range: expected an integer from 2 to 1048576"),
        (&format!("{HEAD}train.lr = 0\n"), "s.toml:6:12: key `train.lr`: 0.0 is out of range: expected a number > 0"),
        (&format!("{HEAD}[grid]\ntrain.temperature = []\n"), "s.toml:7:21: key `train.temperature`: [grid] lists no values: give at least one"),
        (&format!("{HEAD}[grid]\ntrain.temperature = 0.05\n"), "s.toml:7:21: key `train.temperature`: [grid] values must be an array of values to try, found float"),
        (&format!("{HEAD}[grid]\ntrain.temperature = [0.05, 0.05]\n"), "s.toml:7:28: key `train.temperature`: [grid] lists 0.05 twice"),
        (&format!("{HEAD}[[zip]]\ntrain.batch_size = [64, 128, 256]\ntrain.lr = [3e-5, 5e-5]\n"), "s.toml:8:1: key `train.lr`: [[zip]] lists must have equal lengths: `train.batch_size` has 3 values, `train.lr` has 2"),
        (&format!("{HEAD}[grid]\ntrain.lr = [1e-5]\n[[zip]]\ntrain.lr = [3e-5, 5e-5]\ntrain.batch_size = [8, 16]\n"), "s.toml:9:1: key `train.lr`: is already varied in [grid] (line 7); a key may be in [grid] or one [[zip]], not both"),
        (&format!("{HEAD}model.pooling = \"mean\"\n"), "s.toml:6:17: key `model.pooling`: unknown value \"mean\": expected one of \"cls\", \"cls_before_pooler\", \"avg\", \"avg_top2\", \"avg_first_last\""),
        (&format!("{HEAD}loss.kind = \"triplet\"\n"), "s.toml:6:13: key `loss.kind`: unknown value \"triplet\": expected one of \"infonce\", \"arccon\", \"mpt\", \"met\", \"mat\", \"barlow_twins\", \"vicreg\", \"mhe\", \"mhs\""),
        (&format!("{HEAD}loss.kind = \"infonce\"\nloss.margin = 0.2\n"), "s.toml:7:15: key `loss.margin`: is not a parameter of loss `infonce` (it takes none)"),
        (&format!("{HEAD}loss.kind = \"arccon\"\nloss.margin = 0.2\n"), "s.toml:7:15: key `loss.margin`: is not a parameter of loss `arccon` (it takes `loss.angle`)"),
        (&format!("{HEAD}loss.kind = \"vicreg\"\nloss.temperature = 0.1\n"), "s.toml:7:20: key `loss.temperature`: loss `vicreg` takes `loss.temperature` only with `loss.weight = true`"),
        (&format!("{HEAD}train.steps = 10\ntrain.epochs = 1\n"), "s.toml:7:16: key `train.epochs`: give train.steps or train.epochs, not both"),
        (&format!("{HEAD}model.hub = \"bert-base-uncased\"\n"), "s.toml:6:13: key `model.hub`: give model.path or model.hub, not both"),
        ("[sweep]\nname = \"t\"\n[base]\ndata.train = \"w.txt\"\n", "s.toml:1:1: key `model.path`: missing: set model.path (an HF model directory) or model.hub (a hub id in the HF cache) in [base]"),
        ("[base]\nmodel.path = \"m\"\n", "s.toml:1:1: key `sweep.name`: missing [sweep] table with a name, e.g. [sweep] name = \"my-sweep\""),
        ("[sweep]\nname = \"a b\"\n", "s.toml:2:8: key `sweep.name`: a sweep name is 1–100 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"),
        ("[sweep]\nname = \"t\"\nseed = [1]\n", "s.toml:3:1: key `sweep.seed`: unknown setting (did you mean `sweep.seeds`, the runs' seeds, or `sweep.order_seed`, the seed of a shuffled order?)"),
        ("[sweep]\nname = \"t\"\nseeds = [1, 1]\n", "s.toml:3:9: key `sweep.seeds`: seed 1 is listed twice"),
        (&format!("{HEAD}model.init = \"pretrained\"\nmodel.config.hidden_size = 64\n"), "s.toml:7:28: key `model.config.hidden_size`: changes the architecture, which only model.init = \"random\" allows (a pretrained checkpoint fixes it)"),
        (&format!("{HEAD}model.init = \"random\"\nmodel.config.hidden_size = 64\nmodel.config.num_attention_heads = 5\n"), "s.toml:8:36: key `model.config.num_attention_heads`: 5 heads do not divide hidden_size 64"),
        (&format!("{HEAD}model.pooling = \"avg\"\nmodel.mlp_only_train = true\n"), "s.toml:7:24: key `model.mlp_only_train`: applies only to model.pooling = \"cls\", not \"avg\""),
        (&format!("{HEAD}train.hard_negative_weight = 1.0\n"), "s.toml:6:30: key `train.hard_negative_weight`: needs supervised data with hard negatives (nli_csv or snli); data.train is one sentence per line"),
        (&format!("{HEAD}seed = 3\n"), "s.toml:6:1: key `seed`: seeds are set by `seeds = [..]` in [sweep]"),
        (&format!("{HEAD}train = 3\n"), "s.toml:6:9: key `train`: expected a table of settings"),
        (&format!("{HEAD}train.lr = 1979-05-27\n"), "s.toml:6:12: key `train.lr`: a date-time (1979-05-27) is not a valid setting value"),
        (&format!("{HEAD}train.lr = nan\n"), "s.toml:6:12: key `train.lr`: expected a finite number, found nan"),
        (&format!("{HEAD}[[exclude]]\n"), "s.toml:6:1: key `exclude`: an empty [[exclude]] would drop every run: list the keys to match"),
        (&format!("{HEAD}[grid]\ntrain.lr = [1e-5]\n[[exclude]]\ntrain.lr = 1e-5\n"), "s.toml:1:1: every combination is excluded: the sweep has no runs"),
        (&format!("{HEAD}[base.extra]\n"), "s.toml:6:7: key `extra`: unknown setting"),
    ];
    for (text, want) in cases {
        assert_eq!(&err(text), want, "for input:\n{text}");
    }
    assert!(cases.len() >= 30);
}

#[test]
fn a_sweep_far_too_large_is_refused_before_planning_with_its_count() {
    let vals = |n: usize| {
        (0..n)
            .map(|i| format!("{}", i + 2))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "{HEAD}[grid]\ntrain.batch_size = [{}]\ntrain.max_len = [{}]\ntrain.steps = [{}]\n",
        vals(1000),
        vals(1000),
        vals(1000)
    );
    let start = std::time::Instant::now();
    let e = err(&text);
    assert!(
        start.elapsed().as_secs() < 5,
        "refusal must not expand the grid"
    );
    assert!(
        e.contains("the sweep expands to 1000000000 runs (1000 (train.batch_size) × 1000 (train.max_len) × 1000 (train.steps) × 1 seed), more than the limit of 100000"),
        "{e}"
    );
}

#[test]
fn several_errors_are_all_reported() {
    let e = parse(
        Path::new("s.toml"),
        &format!("{HEAD}train.lr = -1\nmodel.poolng = \"cls\"\n"),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 2);
    // In file order.
    assert_eq!(e.0[0].line, 6);
    assert_eq!(e.0[1].key.as_deref(), Some("model.poolng"));
    assert_eq!(
        e.0[1].to_string(),
        "s.toml:7:1: key `model.poolng`: unknown setting (did you mean `model.pooling`?)"
    );
}

#[test]
fn non_utf8_sweep_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, b"[sweep]\nname = \"\xff\"\n").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(
        e.ends_with(":2:9: the sweep file is not valid UTF-8"),
        "{e}"
    );
}

/// A model directory that passes the plan-time check: the tiny model's config.json and vocabulary,
/// and a (well-framed, empty) model.safetensors.
fn stub_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let tiny = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("models/tiny-bert");
    for f in ["config.json", "vocab.txt"] {
        std::fs::copy(tiny.join(f), dir.join(f)).unwrap();
    }
    let mut st = 2u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
}

#[test]
fn paths_are_checked_against_the_data_dir_and_sweep_folder() {
    let dir = tempfile::tempdir().unwrap();
    stub_model(&dir.path().join("models/m"));
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::create_dir_all(dir.path().join("sweeps")).unwrap();
    std::fs::write(dir.path().join("data/wiki.txt"), "a\n").unwrap();
    let file = dir.path().join("sweeps/s.toml");
    let good = "[sweep]\nname = \"t\"\n[base]\nmodel.path = \"../models/m\"\ndata.train = [\"wiki.txt\"]\n";
    let s = parse(&file, good).unwrap();
    check_paths(&s, &dir.path().join("data")).unwrap();
    let bad = good
        .replace("wiki.txt", "missing.txt")
        .replace("../models/m", "../models/none");
    let s = parse(&file, &bad).unwrap();
    let e = check_paths(&s, &dir.path().join("data")).unwrap_err();
    assert_eq!(e.0.len(), 2);
    assert!(
        e.0[0]
            .to_string()
            .contains(":4:14: key `model.path`: model directory "),
        "{}",
        e.0[0]
    );
    assert!(
        e.0[1]
            .to_string()
            .contains(":5:14: key `data.train`: data file "),
        "{}",
        e.0[1]
    );
    assert!(e.0[1]
        .message
        .contains("relative paths resolve against the data directory"));
}

#[test]
fn hub_ids_are_checked_in_the_hf_cache() {
    let _env = config::HF_ENV_LOCK
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let cache = tempfile::tempdir().unwrap();
    let snap = cache.path().join("models--org--tiny/snapshots/abc");
    stub_model(&snap);
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("w.txt"), "x\n").unwrap();
    std::env::set_var("HF_HUB_CACHE", cache.path());
    let s = parse(
        Path::new("s.toml"),
        "[sweep]\nname = \"t\"\n[base]\nmodel.hub = \"org/tiny\"\ndata.train = \"w.txt\"\n",
    )
    .unwrap();
    check_paths(&s, data.path()).unwrap();
    let s = parse(Path::new("s.toml"), "[sweep]\nname = \"t\"\n[base]\nmodel.hub = \"bert-base-uncased\"\ndata.train = \"w.txt\"\n").unwrap();
    let e = check_paths(&s, data.path()).unwrap_err().to_string();
    std::env::remove_var("HF_HUB_CACHE");
    assert!(e.starts_with("s.toml:4:13: key `model.hub`: hub model `bert-base-uncased` is not in the Hugging Face cache"), "{e}");
}

#[test]
fn an_empty_table_in_a_zip_row_leaves_the_key_unset() {
    let s = ok(&format!(
        "{HEAD}[[zip]]\n\"loss.kind\" = [\"infonce\", \"mpt\", \"mhe\"]\n\"loss.margin\" = [{{}}, 0.5, {{}}]\n\"loss.gd\" = [{{}}, {{}}, true]\n"
    ));
    let c = |i: usize| &s.runs[i].config;
    assert!(!c(0).contains_key("loss.margin"));
    assert!(!c(0).contains_key("loss.gd"));
    assert_eq!(c(1)["loss.margin"], json!(0.5));
    assert_eq!(c(2)["loss.gd"], json!(true));
    assert_eq!(c(2)["loss.margin"], json!(0.3));
}

#[test]
fn loss_defaults_are_read_from_the_schema() {
    use super::schema::loss_default;
    assert_eq!(loss_default("mpt", "loss.margin"), Some(0.23));
    assert_eq!(loss_default("met", "loss.margin"), Some(0.45));
    assert_eq!(loss_default("mat", "loss.margin"), Some(0.15));
    assert_eq!(loss_default("vicreg", "loss.margin"), Some(0.30));
    assert_eq!(loss_default("mhe", "loss.temperature"), Some(0.05));
    assert_eq!(loss_default("mhs", "loss.ratio_scale"), Some(1.75));
    assert_eq!(loss_default("barlow_twins", "loss.ratio_scale"), Some(1.5));
    assert_eq!(loss_default("vicreg", "loss.lambda"), Some(1.0));
    let u = loss_default("arccon", "loss.angle").unwrap();
    assert!((u - 10f64.to_radians()).abs() < 1e-15);
    assert_eq!(loss_default("infonce", "loss.margin"), None);
}

const SEARCHED: &str = "[sweep]\nname = \"t\"\n[base]\nmodel.path = \"m\"\ndata.train = [\"wiki.txt\"]\ntrain.steps = 1000\neval.every = 250\n[grid]\ntrain.lr = [1e-5, 3e-5, 5e-5]\n";

#[test]
fn search_tables_resolve_with_defaults() {
    let s = ok(&format!("{SEARCHED}[search]\nmethod = \"asha\"\n"));
    let se = s.search.unwrap();
    assert_eq!(se.method, search::Method::Asha);
    assert_eq!(se.metric, "stsb_dev");
    assert_eq!(se.goal, search::Goal::Max);
    // min_steps defaults to the runs' evaluation interval.
    assert_eq!((se.min_steps, se.reduction_factor), (250, 3));
    assert_eq!(se.rungs(1000), vec![250, 750]);
    let s = ok(&format!(
        "{SEARCHED}[search]\nmethod = \"median\"\nmetric = \"stsb_dev\"\ngoal = \"max\"\nmin_steps = 500\nmin_runs = 2\n"
    ));
    let se = s.search.unwrap();
    assert_eq!(
        (se.method, se.min_steps, se.min_runs),
        (search::Method::Median, 500, 2)
    );
    assert!(ok(SEARCHED).search.is_none());
}

#[test]
fn bad_search_tables_are_errors_at_their_key() {
    let cases: &[(String, &str)] = &[
        (format!("{SEARCHED}[search]\nmethod = \"hyperband\"\n"), "s.toml:11:10: key `search.method`: unknown method `hyperband`: expected \"asha\" or \"median\""),
        (format!("{SEARCHED}[search]\nmin_steps = 250\n"), "s.toml:10:2: key `search.method`: missing: [search] needs method = \"asha\" or \"median\""),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\nmetric = \"loss\"\n"), "s.toml:12:10: key `search.metric`: `loss` is a step metric, not an evaluation metric; a search judges runs by one evaluated during training: stsb_dev"),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\nmetric = \"sts12\"\n"), "s.toml:12:10: key `search.metric`: `sts12` is evaluated only after training, on the best checkpoint; a search judges runs while they train, by stsb_dev"),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\nmetric = \"stsbdev\"\n"), "s.toml:12:10: key `search.metric`: unknown metric `stsbdev`; a search judges runs by an evaluation metric recorded during training: stsb_dev"),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\nmin_steps = 1000\n"), "s.toml:12:13: key `search.min_steps`: min_steps = 1000 is not before the last step of run 035970abf6d3b012 (train.steps = 1000): no decision could be taken; lower it"),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\nreduction_factor = 1\n"), "s.toml:12:20: key `search.reduction_factor`: expected an integer ≥ 2, found integer 1"),
        (format!("{SEARCHED}[search]\nmethod = \"median\"\nreduction_factor = 3\n"), "s.toml:12:20: key `search.reduction_factor`: applies to method = \"asha\" only (the median rule has no rungs)"),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\nmin_runs = 3\n"), "s.toml:12:12: key `search.min_runs`: applies to method = \"median\" only (ASHA decides from the first value at each rung)"),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\nrungs = 3\n"), "s.toml:12:1: key `search.rungs`: unknown setting ([search] takes method, metric, goal, min_steps, reduction_factor, min_runs)"),
        (format!("{SEARCHED}[search]\nmethod = \"asha\"\ngoal = \"up\"\n"), "s.toml:12:8: key `search.goal`: expected \"max\" or \"min\""),
        (format!("{HEAD}eval.every = 10\nseeds_x = 1\n"), "s.toml:7:1: key `seeds_x`: unknown setting"),
        (format!("{HEAD}train.steps = 100\n[search]\nmethod = \"asha\"\n"), "s.toml:7:2: key `search`: the sweep has 1 run of one setting: [search] stops settings that do worse than others, so it needs at least two settings"),
        ("[sweep]\nname = \"t\"\nseeds = [1, 2]\n[base]\nmodel.path = \"m\"\ndata.train = [\"wiki.txt\"]\n[search]\nmethod = \"median\"\n".to_string(), "s.toml:7:2: key `search`: the sweep has 2 runs of one setting: [search] stops settings that do worse than others, so it needs at least two settings"),
        (format!("{}[search]\nmethod = \"asha\"\nmetric = \"stsb_dev\"\n", SEARCHED.replace("eval.every = 250", "eval.every = 0")), "s.toml:12:10: key `search.metric`: stsb_dev is recorded during training only with eval.every > 0, and run 51648238f079540c has eval.every = 0"),
        ("[sweep]\nname = \"t\"\norder = \"random\"\n[base]\nmodel.path = \"m\"\ndata.train = [\"wiki.txt\"]\n".to_string(), "s.toml:3:9: key `sweep.order`: unknown order `random`: expected \"plan\" (the expansion order, the default) or \"shuffle\""),
        ("[sweep]\nname = \"t\"\norder_seed = 3\n[base]\nmodel.path = \"m\"\ndata.train = [\"wiki.txt\"]\n".to_string(), "s.toml:3:14: key `sweep.order_seed`: applies to order = \"shuffle\" only"),
    ];
    for (text, want) in cases {
        assert_eq!(&err(text), want, "for input:\n{text}");
    }
}

#[test]
fn a_shuffled_order_keeps_ids_and_the_seeds_of_a_setting_together() {
    let grid = "[grid]\ntrain.lr = [1e-5, 2e-5, 3e-5, 4e-5, 5e-5, 6e-5]\ntrain.temperature = [0.05, 0.1]\n";
    let plain = ok(&format!("[sweep]\nname = \"t\"\nseeds = [1, 2]\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n{grid}"));
    let shuffled = |seed: u64| {
        ok(&format!("[sweep]\nname = \"t\"\nseeds = [1, 2]\norder = \"shuffle\"\norder_seed = {seed}\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n{grid}"))
    };
    let a = shuffled(7);
    assert_eq!(a.shuffle_seed, Some(7));
    let mut x = ids(&a);
    let mut y = ids(&plain);
    assert_ne!(x, y, "the order changed");
    x.sort();
    y.sort();
    assert_eq!(x, y, "the same runs");
    assert_eq!(ids(&a), ids(&shuffled(7)), "deterministic");
    assert_ne!(ids(&a), ids(&shuffled(8)));
    for (i, r) in a.runs.iter().enumerate() {
        assert_eq!(r.ordinal, i);
    }
    // Seeds of one setting are adjacent, seed 1 first.
    for pair in a.runs.chunks(2) {
        assert_eq!((pair[0].seed, pair[1].seed), (1, 2));
        assert_eq!(
            search::setting_id("t", &pair[0].config),
            search::setting_id("t", &pair[1].config)
        );
    }
}
