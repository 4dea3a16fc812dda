use super::*;
use crate::store::Store;
use std::path::Path;

/// A sweep of 2 temperatures × 2 poolers × 3 seeds (12 runs) with hand-made curves:
///
/// - `stsb_dev` at steps 0, 50, 100: 10, peak, peak − 1, where peak = base(group) + offset(seed);
///   base: (0.05, avg) 70, (0.05, cls) 60, (0.1, avg) 66, (0.1, cls) 50; offsets: seed 1 → 0,
///   seed 2 → 2, seed 3 → 4 except group (0.05, cls): 0, 1, 5;
/// - `loss` at steps 1, 2, 3: 3, 1, 2 (+ offset / 10);
/// - `alignment` at steps 0 and 100 at layer −1 (0.5, 0.4) and layer 0 (0.9, 0.8);
/// - `avg` at step 100: peak − 2.
///
/// Every run is `done` except run ordinal 11 (0.1, cls, seed 3): `failed`, and ordinal 10
/// (0.1, cls, seed 2): `pending` with no values.
pub(crate) fn fixture() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let text = "[sweep]\nname = \"s\"\ndescription = \"test\"\nseeds = [1, 2, 3]\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n[grid]\n\"train.temperature\" = [0.05, 0.1]\n\"model.pooling\" = [\"avg\", \"cls\"]\n";
    let sweep = crate::spec::parse(Path::new("s.toml"), text).unwrap();
    let mut store = Store::open(&path).unwrap();
    store.plan(&sweep).unwrap();
    let c = &store.conn;
    for n in ["stsb_dev", "loss", "alignment", "avg"] {
        c.execute("INSERT INTO metric_names (name) VALUES (?1)", [n])
            .unwrap();
    }
    let id = |n: &str| -> i64 {
        c.query_row(
            "SELECT metric_id FROM metric_names WHERE name = ?1",
            [n],
            |r| r.get(0),
        )
        .unwrap()
    };
    let put = |pk: i64, m: &str, layer: i64, step: i64, v: f64| {
        c.execute(
            "INSERT INTO metrics (run_pk, metric_id, layer, step, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![pk, id(m), layer, step, v],
        )
        .unwrap();
    };
    let runs = store.sweep_runs("s").unwrap();
    for (i, r) in runs.iter().enumerate() {
        let t = r.config["train.temperature"].as_f64().unwrap();
        let p = r.config["model.pooling"].as_str().unwrap();
        let base = match (t == 0.05, p) {
            (true, "avg") => 70.0,
            (true, _) => 60.0,
            (false, "avg") => 66.0,
            (false, _) => 50.0,
        };
        let offset = if t == 0.05 && p == "cls" {
            [0.0, 1.0, 5.0][(r.config["seed"].as_i64().unwrap() - 1) as usize]
        } else {
            2.0 * (r.config["seed"].as_i64().unwrap() - 1) as f64
        };
        let status = match i {
            10 => "pending",
            11 => "failed",
            _ => "done",
        };
        c.execute(
            "UPDATE runs SET status = ?2, step = ?3, error = ?4 WHERE run_pk = ?1",
            params![
                r.run_pk,
                status,
                (status != "pending").then_some(100),
                (status == "failed").then_some("out of memory\nat step 100")
            ],
        )
        .unwrap();
        if status == "pending" {
            continue;
        }
        let peak = base + offset;
        put(r.run_pk, "stsb_dev", -1, 0, 10.0);
        put(r.run_pk, "stsb_dev", -1, 50, peak);
        put(r.run_pk, "stsb_dev", -1, 100, peak - 1.0);
        for (s, l) in [(1, 3.0), (2, 1.0), (3, 2.0)] {
            put(r.run_pk, "loss", -1, s, l + offset / 10.0);
        }
        for (layer, a, b) in [(-1, 0.5, 0.4), (0, 0.9, 0.8)] {
            put(r.run_pk, "alignment", layer, 0, a);
            put(r.run_pk, "alignment", layer, 100, b);
        }
        put(r.run_pk, "avg", -1, 100, peak - 2.0);
    }
    crate::store::summary::rebuild_all(&store.conn).unwrap();
    (dir, store)
}

fn cond(s: &str) -> Condition {
    s.parse().unwrap()
}

fn done() -> Selection {
    Selection::default().with_statuses(&["done"])
}

fn q(metric: &str) -> BestQuery {
    BestQuery {
        metric: metric.into(),
        layer: -1,
        mode: Mode::Best,
        goal: None,
        by: None,
        level: 0.95,
    }
}

fn input_msg<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Input(m)) => m,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn an_unknown_sweep_names_the_known_ones() {
    let (_d, store) = fixture();
    assert_eq!(
        sweep(&store.conn, "s").unwrap().swept_keys,
        ["train.temperature", "model.pooling"]
    );
    assert_eq!(
        input_msg(sweep(&store.conn, "t")),
        "no sweep named `t` (did you mean `s`?); sweeps in the database: s"
    );
}

#[test]
fn sample_statistics() {
    let s = stats(&[1.0, 2.0, 3.0, 4.0], 0.95).unwrap();
    assert_eq!((s.n, s.mean, s.min, s.max), (4, 2.5, 1.0, 4.0));
    assert!((s.std.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    let one = stats(&[7.0], 0.95).unwrap();
    assert_eq!((one.mean, one.std), (7.0, None));
    assert!(stats(&[], 0.95).is_none());
    // Compensated sums: ten values of 0.8 average to 0.8 exactly.
    let s = stats(&[0.8; 10], 0.95).unwrap();
    assert_eq!((s.mean, s.std), (0.8, Some(0.0)));
}

#[test]
fn where_matches_typed_settings() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    let n = |conds: &[&str]| {
        let sel = Selection {
            conditions: conds.iter().map(|s| cond(s)).collect(),
            ..Default::default()
        };
        select_runs(c, &sw, &sel).unwrap().len()
    };
    assert_eq!(n(&[]), 12);
    assert_eq!(n(&["train.temperature=0.05"]), 6);
    assert_eq!(
        n(&["train.temperature=0.050"]),
        6,
        "a number matches as a number"
    );
    assert_eq!(n(&["train.temperature=5e-2"]), 6);
    assert_eq!(n(&["train.temperature=0.5"]), 0);
    assert_eq!(n(&["model.pooling=avg"]), 6);
    assert_eq!(
        n(&["model.pooling=avg", "train.temperature=0.1"]),
        3,
        "ANDed"
    );
    assert_eq!(n(&["seed=2"]), 4);
    assert_eq!(n(&["train.batch_size=64"]), 12, "an integer setting");
    assert_eq!(n(&["train.batch_size=64.0"]), 12);
    assert_eq!(n(&["model.mlp_only_train=false"]), 12, "a boolean");
    assert_eq!(n(&["model.mlp_only_train=true"]), 0);
    assert_eq!(
        n(&["data.train=[\"w.txt\"]"]),
        12,
        "a list as its JSON text"
    );
    // Statuses.
    let sel = Selection::default().with_statuses(&["failed", "pending"]);
    assert_eq!(select_runs(c, &sw, &sel).unwrap().len(), 2);
    let sel = Selection::default().with_statuses(&["finished"]);
    assert!(input_msg(select_runs(c, &sw, &sel)).starts_with("unknown status `finished`"));
}

#[test]
fn hostile_where_values_are_only_values() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    for v in [
        "avg' OR '1'='1",
        "avg\"; DROP TABLE runs; --",
        "'); DROP TABLE metrics; --",
        "%",
        "avg' --",
    ] {
        let sel = Selection {
            conditions: vec![Condition {
                key: "model.pooling".into(),
                value: v.into(),
            }],
            ..Default::default()
        };
        assert_eq!(select_runs(c, &sw, &sel).unwrap().len(), 0, "{v}");
    }
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('runs', 'metrics')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 2);
    // A key is never spliced either: an unknown one is refused with the swept keys.
    let sel = Selection {
        conditions: vec![cond("train.temprature=0.05")],
        ..Default::default()
    };
    assert_eq!(
        input_msg(select_runs(c, &sw, &sel)),
        "unknown key `train.temprature` in --where (did you mean `train.temperature`?): sweep `s` varies train.temperature, model.pooling, seed; any other setting of its runs works too (e.g. `loss.kind`)"
    );
    let sel = Selection {
        conditions: vec![cond("x'); DROP TABLE runs; --=1")],
        ..Default::default()
    };
    assert!(
        input_msg(select_runs(c, &sw, &sel)).starts_with("unknown key `x'); DROP TABLE runs; --`")
    );
}

#[test]
fn best_is_the_mean_and_sample_std_over_seeds_best_group_first() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    let b = best(c, &sw, &done(), &q("stsb_dev")).unwrap();
    assert_eq!(b.by, ["train.temperature", "model.pooling"]);
    assert_eq!(b.goal, Goal::Max);
    let keys: Vec<Value> = b.groups.iter().map(|g| json!(g.key)).collect();
    assert_eq!(
        keys,
        [
            json!([0.05, "avg"]),
            json!([0.1, "avg"]),
            json!([0.05, "cls"]),
            json!([0.1, "cls"])
        ]
    );
    let s0 = b.groups[0].stats.unwrap();
    assert_eq!(
        (s0.n, s0.mean, s0.std, s0.min, s0.max),
        (3, 72.0, Some(2.0), 70.0, 74.0)
    );
    // (0.05, cls): 60, 61, 65 → mean 62, sample std √7.
    let s2 = b.groups[2].stats.unwrap();
    assert_eq!(s2.mean, 62.0);
    assert!((s2.std.unwrap() - 7f64.sqrt()).abs() < 1e-12);
    // (0.1, cls): seed 1 done; seed 2 pending and seed 3 failed are not selected.
    let s3 = b.groups[3].stats.unwrap();
    assert_eq!((s3.n, s3.mean, s3.std), (1, 50.0, None));
    assert_eq!(b.groups[3].runs.len(), 1);
    // Per run: the step of the best value, seeds in order.
    let r = &b.groups[0].runs;
    assert_eq!(r.iter().map(|r| r.seed).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(r[1].step, Some(50));
    assert_eq!(r[1].value, Some(72.0));
    // Every status: the failed run joins its group.
    let all = Selection::default();
    let b = best(c, &sw, &all, &q("stsb_dev")).unwrap();
    let g = b
        .groups
        .iter()
        .find(|g| g.key == [json!(0.1), json!("cls")])
        .unwrap();
    assert_eq!(
        g.runs.len(),
        3,
        "the pending run is listed, without a value"
    );
    assert_eq!(g.stats.unwrap().n, 2);
    assert_eq!(g.stats.unwrap().mean, 52.0);
    let j = b.to_json();
    assert_eq!(j["groups"][3]["runs_total"], 3);
    assert_eq!(j["groups"][3]["n"], 2);
    assert_eq!(j["groups"][3]["runs"][1]["value"], Value::Null);
}

#[test]
fn final_mode_takes_the_last_recorded_step() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    let b = best(
        c,
        &sw,
        &done(),
        &BestQuery {
            mode: Mode::Final,
            ..q("stsb_dev")
        },
    )
    .unwrap();
    let s = b.groups[0].stats.unwrap();
    assert_eq!((s.mean, s.std), (71.0, Some(2.0)));
    assert!(b.groups[0].runs.iter().all(|r| r.step == Some(100)));
}

#[test]
fn loss_like_metrics_are_minimised_and_the_goal_can_be_forced() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    assert_eq!(Goal::infer("loss"), Some(Goal::Min));
    assert_eq!(Goal::infer("uniformity"), Some(Goal::Min));
    assert_eq!(Goal::infer("token_anisotropy"), Some(Goal::Min));
    assert_eq!(Goal::infer("stsb_dev"), Some(Goal::Max));
    assert_eq!(Goal::infer("mean_token_norm"), None);
    let b = best(c, &sw, &done(), &q("loss")).unwrap();
    assert_eq!(b.goal, Goal::Min);
    // Group (0.05, avg): min over steps 1.0 + offset/10 for offsets 0, 2, 4 → mean 1.2, at step 2.
    let g = b
        .groups
        .iter()
        .find(|g| g.key == [json!(0.05), json!("avg")])
        .unwrap();
    assert!((g.stats.unwrap().mean - 1.2).abs() < 1e-12);
    assert!(g.runs.iter().all(|r| r.step == Some(2)));
    // Lowest mean first: (0.05, cls) has offsets 0, 1, 5 → 1.2 too, (0.1, cls) only seed 1 → 1.0.
    assert_eq!(b.groups[0].key, [json!(0.1), json!("cls")]);
    let b = best(
        c,
        &sw,
        &done(),
        &BestQuery {
            goal: Some(Goal::Max),
            ..q("loss")
        },
    )
    .unwrap();
    let g = b
        .groups
        .iter()
        .find(|g| g.key == [json!(0.05), json!("avg")])
        .unwrap();
    assert!((g.stats.unwrap().mean - 3.2).abs() < 1e-12);
    assert!(g.runs.iter().all(|r| r.step == Some(1)));
}

#[test]
fn grouping_by_chosen_keys_and_layers() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    let b = best(
        c,
        &sw,
        &done(),
        &BestQuery {
            by: Some(vec!["model.pooling".into()]),
            ..q("stsb_dev")
        },
    )
    .unwrap();
    assert_eq!(b.groups.len(), 2);
    assert_eq!(b.groups[0].key, [json!("avg")]);
    // avg: 70, 72, 74, 66, 68, 70 → mean 70.
    assert_eq!(b.groups[0].stats.unwrap().n, 6);
    assert_eq!(b.groups[0].stats.unwrap().mean, 70.0);
    // No grouping key at all: one group.
    let b = best(
        c,
        &sw,
        &done(),
        &BestQuery {
            by: Some(vec![]),
            ..q("stsb_dev")
        },
    )
    .unwrap();
    assert_eq!(b.groups.len(), 1);
    assert_eq!(b.groups[0].stats.unwrap().n, 10);
    // Layers: alignment at layer 0 is minimised to 0.8, at layer −1 to 0.4.
    let at = |layer| {
        best(
            c,
            &sw,
            &done(),
            &BestQuery {
                layer,
                ..q("alignment")
            },
        )
        .unwrap()
        .groups[0]
            .stats
            .unwrap()
            .mean
    };
    assert_eq!(at(-1), 0.4);
    assert_eq!(at(0), 0.8);
    assert_eq!(
        input_msg(best(c, &sw, &done(), &BestQuery { layer: 3, ..q("alignment") })),
        "no values of `alignment` at layer 3 in the selected runs; it is recorded at layer -1, 0 (--layer)"
    );
    assert_eq!(
        input_msg(best(c, &sw, &done(), &BestQuery { by: Some(vec!["model.poling".into()]), ..q("stsb_dev") })),
        "unknown key `model.poling` in --by (did you mean `model.pooling`?): sweep `s` varies train.temperature, model.pooling, seed; any other setting of its runs works too (e.g. `loss.kind`)"
    );
}

#[test]
fn unknown_metrics_and_empty_selections_are_explained() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    assert_eq!(
        input_msg(best(c, &sw, &done(), &q("stsb_dve"))),
        "unknown metric `stsb_dve` (did you mean `stsb_dev`?); recorded metrics: stsb_dev, loss, alignment, avg"
    );
    let sel = Selection {
        conditions: vec![cond("train.temperature=0.7")],
        ..done()
    };
    assert_eq!(
        input_msg(best(c, &sw, &sel, &q("stsb_dev"))),
        "no runs of sweep `s` with status done, train.temperature=0.7 (the sweep has 12 runs: 10 done, 1 failed, 1 pending); --status chooses others"
    );
    assert_eq!(
        summarize_names(["loss", "sv_02", "sv_01", "sv_64"]),
        "loss, sv_01…sv_64"
    );
}

#[test]
fn run_values_read_the_summaries_and_agree_with_a_scan_of_the_rows() {
    let (_d, store) = fixture();
    let c = &store.conn;
    // A NULL last value, ties of the best value, and a metric recorded at a probe layer only.
    c.execute_batch(
        "INSERT INTO metrics (run_pk, metric_id, layer, step, value) VALUES (1, 2, -1, 4, NULL);
         INSERT INTO metrics (run_pk, metric_id, layer, step, value)
             SELECT 2, 1, -1, 150, value FROM metrics WHERE run_pk = 2 AND metric_id = 1 AND layer = -1 AND step = 50;
         INSERT INTO metrics (run_pk, metric_id, layer, step, value) VALUES (2, 1, -1, 160, 10.0);",
    )
    .unwrap();
    crate::store::summary::rebuild_all(c).unwrap();
    let pks: Vec<i64> = (1..=13).collect();
    for m in metric_names(c).unwrap() {
        for layer in [-1, 0] {
            for (mode, goal) in [
                (Mode::Best, Goal::Max),
                (Mode::Best, Goal::Min),
                (Mode::Final, Goal::Max),
            ] {
                // What the rows say, read the way best read them before the summaries.
                let sql = match (mode, goal) {
                    (Mode::Final, _) => "SELECT step, value FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3 ORDER BY step DESC LIMIT 1",
                    (Mode::Best, Goal::Max) => "SELECT step, value FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3 AND value IS NOT NULL ORDER BY value DESC, step LIMIT 1",
                    (Mode::Best, Goal::Min) => "SELECT step, value FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3 AND value IS NOT NULL ORDER BY value ASC, step LIMIT 1",
                };
                let scanned: Vec<Option<RunValue>> = pks
                    .iter()
                    .map(|pk| {
                        c.query_row(sql, params![pk, m.id, layer], |r| {
                            Ok(RunValue {
                                step: r.get(0)?,
                                value: r.get(1)?,
                            })
                        })
                        .optional()
                        .unwrap()
                    })
                    .collect();
                assert_eq!(
                    run_values(c, &pks, &m, layer, mode, goal).unwrap(),
                    scanned,
                    "{} layer {layer} {mode:?} {goal:?}",
                    m.name
                );
            }
        }
    }
    let v = run_values(
        c,
        &[1, 2],
        &metric(c, "loss").unwrap(),
        -1,
        Mode::Final,
        Goal::Max,
    );
    assert_eq!(
        v.unwrap()[0],
        Some(RunValue {
            step: 4,
            value: None
        })
    );
    let v = run_values(
        c,
        &[2],
        &metric(c, "stsb_dev").unwrap(),
        -1,
        Mode::Best,
        Goal::Max,
    );
    assert_eq!(
        v.unwrap()[0].unwrap().step,
        50,
        "the earliest of tied best values"
    );
    // One primary-key lookup per run.
    assert_eq!(
        query_plan(c, "SELECT last_step, last_value, min_step, min_value, max_step, max_value FROM metric_summaries WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3"),
        ["SEARCH metric_summaries USING PRIMARY KEY (run_pk=? AND metric_id=? AND layer=?)"]
    );
    assert_eq!(crate::store::summary::check(c).unwrap().mismatches, []);
}

/// SQLite's plan of `sql` for run 1, metric 1, layer −1.
fn query_plan(c: &Connection, sql: &str) -> Vec<String> {
    c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params![1, 1, -1], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_series_is_one_key_range_in_step_order() {
    let (_d, store) = fixture();
    let m = metric(&store.conn, "stsb_dev").unwrap();
    assert_eq!(
        run_series(&store.conn, 1, &m, -1).unwrap(),
        [(0, Some(10.0)), (50, Some(70.0)), (100, Some(69.0))]
    );
    assert_eq!(
        query_plan(&store.conn, "SELECT step, value FROM metrics WHERE run_pk = ?1 AND metric_id = ?2 AND layer = ?3 ORDER BY step"),
        ["SEARCH metrics USING PRIMARY KEY (run_pk=? AND metric_id=? AND layer=?)"],
        "no sort: the key is already in step order"
    );
}

#[test]
fn runs_table_shows_swept_keys_and_headlines() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    let t = runs_table(c, &sw, &Selection::default()).unwrap();
    assert_eq!(
        t.headers(false),
        [
            "run_id",
            "train.temperature",
            "model.pooling",
            "seed",
            "status",
            "step",
            "stsb_dev_best",
            "stsb_dev_best_step",
            "avg",
            "error"
        ]
    );
    let row = t.row(1, false);
    assert_eq!(
        row[1..],
        [
            json!(0.05),
            json!("avg"),
            json!(2),
            json!("done"),
            json!(100),
            json!(72.0),
            json!(50),
            json!(70.0),
            Value::Null
        ]
    );
    let pending = t.row(10, false);
    assert_eq!(
        pending[4..],
        [
            json!("pending"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(t.row(11, false)[9], json!("out of memory\nat step 100"));
}

#[test]
fn export_writes_wide_csv_and_one_json_line_per_run() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let sw = sweep(c, "s").unwrap();
    let sel = Selection {
        conditions: vec![
            cond("train.temperature=0.05"),
            cond("model.pooling=avg"),
            cond("seed=1"),
        ],
        ..Default::default()
    };
    let mut out = Vec::new();
    let eq = ExportQuery {
        format: ExportFormat::Csv,
        metrics: vec!["stsb_dev".into(), "loss".into()],
        layer: -1,
        all_params: false,
    };
    let st = export(c, &sw, &sel, &eq, &mut out).unwrap();
    assert_eq!((st.runs, st.lines), (1, 6));
    let id = &select_runs(c, &sw, &sel).unwrap()[0].run_id;
    let p = format!("s,{id},done,0.05,avg,1,-1");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("sweep,run_id,status,train.temperature,model.pooling,seed,layer,step,stsb_dev,loss\n{p},0,10.0,\n{p},1,,3.0\n{p},2,,1.0\n{p},3,,2.0\n{p},50,70.0,\n{p},100,69.0,\n")
    );
    // Every metric at layer 0; all settings as columns.
    let mut out = Vec::new();
    let st = export(
        c,
        &sw,
        &sel,
        &ExportQuery {
            metrics: vec![],
            layer: 0,
            all_params: true,
            ..eq.clone()
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(st.metrics, ["alignment"]);
    let text = String::from_utf8(out).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains(",loss.kind,") && header.ends_with(",layer,step,alignment"),
        "{header}"
    );
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().nth(1).unwrap().ends_with(",0,0,0.9"));
    // JSONL: one object per run.
    let mut out = Vec::new();
    let st = export(
        c,
        &sw,
        &Selection::default(),
        &ExportQuery {
            format: ExportFormat::Jsonl,
            ..eq.clone()
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(st.lines, 12);
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[1]["params"],
        json!({"train.temperature": 0.05, "model.pooling": "avg", "seed": 2})
    );
    assert_eq!(
        lines[1]["metrics"]["stsb_dev"],
        json!({"family": "evaluation", "better": "higher", "unit": "Spearman × 100",
               "steps": [0, 50, 100], "values": [10.0, 72.0, 71.0]})
    );
    assert_eq!(lines[1]["layer"], -1);
    assert_eq!(lines[10]["status"], "pending");
    assert_eq!(lines[10]["metrics"], json!({}));
}

#[test]
fn sql_must_be_one_reading_statement() {
    let (_d, store) = fixture();
    let c = &store.conn;
    let mut st = prepare_readonly(c, "SELECT sweep, count(*) AS n, NULL AS x, 0.5 AS r, x'01ff' AS b FROM runs_wide GROUP BY sweep").unwrap();
    let mut rows = Vec::new();
    for_each_row(&mut st, |r| {
        rows.push(r.to_vec());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        rows,
        [vec![
            json!("s"),
            json!(12),
            Value::Null,
            json!(0.5),
            json!("01ff")
        ]]
    );
    for (sql, start) in [
        ("DELETE FROM runs", "only reading statements"),
        ("UPDATE runs SET status = 'done'", "only reading statements"),
        (
            "INSERT INTO sweeps (name) VALUES ('x') RETURNING *",
            "only reading statements",
        ),
        ("DROP TABLE metrics", "only reading statements"),
        ("PRAGMA user_version = 9", "only reading statements"),
        ("SELECT 1; DELETE FROM runs", "one statement at a time"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        (
            "ATTACH 'x.db' AS x",
            "ATTACH, DETACH and transaction statements are refused",
        ),
        (
            "BEGIN",
            "ATTACH, DETACH and transaction statements are refused",
        ),
        ("  -- nothing\n", "empty query"),
        ("SELEC 1", "near \"SELEC\": syntax error"),
        ("SELECT * FROM nope", "no such table: nope"),
    ] {
        let m = input_msg(prepare_readonly(c, sql));
        assert!(m.starts_with(start), "{sql}: {m}");
    }
    assert_eq!(
        c.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        12
    );
    // A trailing semicolon and comments are fine.
    assert!(prepare_readonly(c, "SELECT 1; -- done\n").is_ok());
}
