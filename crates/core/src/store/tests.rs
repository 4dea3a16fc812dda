use super::writer::{MetricRow, Write, Writer};
use super::*;
use crate::spec;
use std::sync::Arc;

fn sweep(grid: &str) -> Sweep {
    let text = format!(
        "[sweep]\nname = \"s\"\nseeds = [1, 2]\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n[grid]\n{grid}\n"
    );
    spec::parse(Path::new("s.toml"), &text).unwrap()
}

fn count(store: &Store, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_new_database_is_migrated_to_the_current_version_with_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/r.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    for t in [
        "sweeps",
        "runs",
        "params",
        "param_keys",
        "metrics",
        "metric_names",
        "checkpoints",
        "events",
    ] {
        assert_eq!(
            count(
                &store,
                &format!("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='{t}'")
            ),
            1,
            "{t}"
        );
    }
    for v in ["run_params", "metric_values", "runs_wide"] {
        assert_eq!(
            count(
                &store,
                &format!("SELECT count(*) FROM sqlite_master WHERE type='view' AND name='{v}'")
            ),
            1,
            "{v}"
        );
    }
    // metrics is WITHOUT ROWID with the documented key.
    let sql: String = store
        .conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name='metrics'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        sql.contains("WITHOUT ROWID")
            && sql.contains("PRIMARY KEY (run_pk, metric_id, layer, step)")
    );
    drop(store);
    // Reopening is a no-op.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn a_newer_database_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).err().unwrap().to_string();
    assert_eq!(
        err,
        format!("database {}: schema version 99 is newer than this simsweep understands (3); use a newer simsweep", path.display())
    );
    let c = Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
    drop(c);
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the database file changed"
    );
    assert!(Store::open_readonly(&path)
        .err()
        .unwrap()
        .to_string()
        .contains("newer than this simsweep"));
}

#[test]
fn a_foreign_or_corrupt_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("f.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert!(Store::open(&foreign)
        .err()
        .unwrap()
        .to_string()
        .contains("not a simsweep database"));
    let corrupt = dir.path().join("c.db");
    std::fs::write(&corrupt, vec![0x5a; 8192]).unwrap();
    let e = Store::open(&corrupt).err().unwrap().to_string();
    assert!(
        e.contains("not a SQLite database, or the file is corrupt"),
        "{e}"
    );
    assert!(
        std::fs::read(&corrupt).unwrap() == vec![0x5a; 8192],
        "the corrupt file changed"
    );
}

#[test]
fn planning_is_idempotent_and_keeps_results_of_unchanged_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("r.db")).unwrap();
    let s1 = sweep("train.temperature = [0.05, 0.1]");
    let p = store.plan(&s1).unwrap();
    assert_eq!((p.total, p.new, p.done, p.removed), (4, 4, 0, 0));
    let p = store.plan(&s1).unwrap();
    assert_eq!((p.total, p.new, p.pending), (4, 0, 4));
    assert_eq!(count(&store, "SELECT count(*) FROM runs"), 4);
    // Mark one done; add an axis value; drop another.
    store
        .conn
        .execute("UPDATE runs SET status='done' WHERE ordinal=0", [])
        .unwrap();
    let s2 = sweep("train.temperature = [0.05, 0.2]");
    let p = store.plan(&s2).unwrap();
    assert_eq!(
        (p.total, p.new, p.done, p.pending, p.removed),
        (4, 2, 1, 1, 2)
    );
    assert_eq!(p.statuses, vec!["done", "pending", "new", "new"]);
    assert_eq!(count(&store, "SELECT count(*) FROM runs"), 6);
    assert_eq!(
        count(&store, "SELECT count(*) FROM runs WHERE in_plan = 1"),
        4
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM events WHERE kind='planned'"),
        3
    );
    let rows = store.sweep_runs("s").unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows[..4].iter().all(|r| r.in_plan));
}

#[test]
fn views_expose_params_and_metrics_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut store = Store::open(&path).unwrap();
    store
        .plan(&sweep(
            "train.temperature = [0.05, 0.1]\nmodel.pooling = [\"cls\", \"avg\"]",
        ))
        .unwrap();
    // runs_wide: one column per swept key, typed values.
    let (t, pool): (f64, String) = store
        .conn
        .query_row(
            "SELECT \"train.temperature\", \"model.pooling\" FROM runs_wide WHERE sweep='s' AND seed=2 ORDER BY run_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(t == 0.05 || t == 0.1);
    assert!(pool == "cls" || pool == "avg");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM runs_wide WHERE \"train.temperature\" = 0.1"
        ),
        4
    );
    // run_params: every resolved setting, typed.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM run_params WHERE key='train.batch_size' AND value = 64"
        ),
        8
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM run_params WHERE key='data.shuffle' AND value = 1"
        ),
        8
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM run_params WHERE key='seed'"),
        8
    );
    // metric_values through the writer.
    let pk: i64 = store
        .conn
        .query_row("SELECT min(run_pk) FROM runs", [], |r| r.get(0))
        .unwrap();
    drop(store);
    let w = Writer::spawn(&path).unwrap();
    let loss: Arc<str> = Arc::from("loss");
    w.sender()
        .send(Write::Metrics(vec![
            MetricRow {
                run_pk: pk,
                step: 0,
                layer: -1,
                name: loss.clone(),
                value: 2.5,
            },
            MetricRow {
                run_pk: pk,
                step: 1,
                layer: -1,
                name: loss.clone(),
                value: 2.0,
            },
            MetricRow {
                run_pk: pk,
                step: 1,
                layer: 3,
                name: Arc::from("token_anisotropy"),
                value: 0.4,
            },
        ]))
        .unwrap();
    w.flush().unwrap();
    let store = Store::open_readonly(&path).unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM metric_values WHERE sweep='s' AND metric='loss'"
        ),
        2
    );
    let v: f64 = store
        .conn
        .query_row(
            "SELECT value FROM metric_values WHERE metric='token_anisotropy' AND layer=3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, 0.4);
    drop(w);
}

#[test]
fn the_writer_upserts_so_each_run_metric_step_appears_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut store = Store::open(&path).unwrap();
    store.plan(&sweep("train.temperature = [0.05]")).unwrap();
    drop(store);
    let w = Writer::spawn(&path).unwrap();
    let tx = w.sender();
    let name: Arc<str> = Arc::from("loss");
    // Steps 0..100 twice (a resumed run re-logs), second pass with other values; many small messages.
    for pass in 0..2 {
        for step in 0..100 {
            tx.send(Write::Metrics(vec![MetricRow {
                run_pk: 1,
                step,
                layer: -1,
                name: name.clone(),
                value: (pass * 1000 + step) as f64,
            }]))
            .unwrap();
        }
    }
    tx.send(Write::Metrics(vec![MetricRow {
        run_pk: 1,
        step: 100,
        layer: -1,
        name: name.clone(),
        value: f64::NAN,
    }]))
    .unwrap();
    drop(tx);
    let stats = w.finish().unwrap();
    assert_eq!(stats.rows, 201);
    assert!(stats.transactions >= 1);
    let store = Store::open(&path).unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM metrics"), 101);
    assert_eq!(
        count(
            &store,
            "SELECT CAST(sum(value) AS INTEGER) FROM metrics WHERE step < 100"
        ),
        (1000..1100).sum::<i64>()
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM metrics WHERE value IS NULL"),
        1
    );
    // The summary followed the rewrites (the second pass replaced every value of the first).
    assert_eq!(
        super::summary::get(&store.conn, (1, 1, -1)).unwrap(),
        Some(super::summary::Summary {
            n: 101,
            first: (0, Some(1000.0)),
            last: (100, None),
            min: Some((0, 1000.0)),
            max: Some((99, 1099.0)),
        })
    );
    assert_eq!(super::summary::check(&store.conn).unwrap().mismatches, []);
}

#[test]
fn simultaneous_first_opens_of_a_new_database_all_succeed() {
    // Several processes starting on a database that does not exist yet: each sees either an
    // empty file or a finished schema, never a half-created one it would call foreign.
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(|s| s.user_version().unwrap())
                })
            })
            .collect();
        for h in handles {
            let v = h.join().unwrap();
            assert_eq!(
                v.unwrap_or_else(|e| panic!("round {round}: {e}")),
                SCHEMA_VERSION
            );
        }
    }
}

#[test]
fn concurrent_planners_do_not_fail_on_a_locked_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                for _ in 0..5 {
                    store
                        .plan(&sweep(&format!("train.temperature = [0.05, 0.{}]", i + 1)))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    // 2 seeds × (0.05 + one value per thread): 2 + 4×2 distinct runs.
    assert_eq!(count(&store, "SELECT count(*) FROM runs"), 10);
    assert_eq!(
        count(&store, "SELECT count(*) FROM events WHERE kind='planned'"),
        20
    );
}

#[test]
fn orphans_are_reclaimed_by_dead_pid_reused_pid_or_stale_heartbeat_but_not_slurm_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("r.db")).unwrap();
    store
        .plan(&sweep("train.temperature = [0.05, 0.1, 0.2]"))
        .unwrap();
    let host = hostname::get().unwrap().to_string_lossy().into_owned();
    let me = worker_id();
    assert!(worker_alive(&me));
    // pid 1 exists, but not with this start time: a later process that got a dead run's pid.
    let reused = format!("{host}:1:999999999999");
    let set = |ordinal: i64, worker: &str, host: Option<&str>, age_secs: i64| {
        store
            .conn
            .execute(
                "UPDATE runs SET status = 'running', worker = ?2, host = ?3,
                    heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?4) WHERE ordinal = ?1",
                params![ordinal, worker, host, format!("-{age_secs} seconds")],
            )
            .unwrap();
    };
    set(0, &me, Some(&host), 0); // alive: this process
    set(1, &reused, Some(&host), 0); // dead: pid reused
    set(2, "elsewhere:42:7", Some("elsewhere"), 3600); // another machine, silent for an hour
    set(3, "slurm:17_3", None, 3600); // a Slurm task: Slurm's state decides
    set(4, "elsewhere:43:7", Some("elsewhere"), 5); // another machine, recently alive
    let mut got = Vec::new();
    while let Some(c) = store.claim_next("s", &me, "cpu", None).unwrap() {
        got.push(c.ordinal);
    }
    got.sort();
    // Ordinals 1 and 2 reclaimed; 5 was pending (2 seeds × 3 temperatures = ordinals 0..5).
    assert_eq!(got, [1, 2, 5]);
}

#[test]
fn a_claim_resumes_from_a_complete_last_checkpoint_and_drops_later_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut store = Store::open(&path).unwrap();
    store.plan(&sweep("train.temperature = [0.05]")).unwrap();
    let c = store
        .claim_next("s", &worker_id(), "cpu", None)
        .unwrap()
        .unwrap();
    assert!(c.resume.is_none());
    let ckpt = dir.path().join("last-0000020");
    std::fs::create_dir_all(&ckpt).unwrap();
    log_30_steps_and_a_checkpoint_at_20(&path, c.run_pk, &ckpt);
    store
        .finish_run(c.run_pk, "cancelled", Some(30), None)
        .unwrap();
    // No trainer state in the folder: not resumable, start over.
    let only = [c.run_id.clone()];
    let again = store
        .claim_next("s", &worker_id(), "cpu", Some(&only))
        .unwrap()
        .unwrap();
    assert!(again.resume.is_none());
    assert_eq!(count(&store, "SELECT count(*) FROM metrics"), 0);
    // With it: resume from step 20, rows 21..30 gone.
    log_30_steps_and_a_checkpoint_at_20(&path, c.run_pk, &ckpt);
    std::fs::write(ckpt.join(crate::TRAINER_STATE), "{}").unwrap();
    store
        .finish_run(c.run_pk, "failed", Some(30), Some("boom"))
        .unwrap();
    assert!(store
        .claim_next("s", &worker_id(), "cpu", Some(&only))
        .unwrap()
        .is_none());
    assert_eq!(store.requeue("s", &["failed", "diverged"]).unwrap(), 1);
    let r = store
        .claim_next("s", &worker_id(), "cpu", Some(&only))
        .unwrap()
        .unwrap();
    assert_eq!(r.resume, Some((20, ckpt)));
    assert_eq!(count(&store, "SELECT max(step) FROM metrics"), 20);
    assert_eq!(count(&store, "SELECT count(*) FROM metrics"), 20);
    // The claim recomputed the run's summaries with the rows it dropped.
    assert_eq!(
        count(&store, "SELECT last_step * 1000 + n FROM metric_summaries"),
        20_020
    );
    assert_eq!(summary::check(&store.conn).unwrap().mismatches, []);
    // Done: the resumable checkpoint row goes.
    store.finish_run(r.run_pk, "done", Some(30), None).unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM checkpoints"), 0);
}

/// Steps 1..=30 of `loss` for a run, and a `last` checkpoint row at step 20 pointing at `ckpt`.
fn log_30_steps_and_a_checkpoint_at_20(path: &Path, run_pk: i64, ckpt: &Path) {
    let name: Arc<str> = Arc::from("loss");
    let w = Writer::spawn(path).unwrap();
    w.sender()
        .send(Write::Metrics(
            (1..=30)
                .map(|step| MetricRow {
                    run_pk,
                    step,
                    layer: -1,
                    name: name.clone(),
                    value: step as f64,
                })
                .collect(),
        ))
        .unwrap();
    w.sender()
        .send(Write::Checkpoint {
            run_pk,
            kind: "last".into(),
            step: 20,
            path: ckpt.display().to_string(),
            metric: None,
            value: None,
        })
        .unwrap();
    w.finish().unwrap();
}

/// A small deterministic generator for the summary tests.
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn summaries_follow_every_write_and_agree_with_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut store = Store::open(&path).unwrap();
    store
        .plan(&sweep("train.temperature = [0.05, 0.1]"))
        .unwrap();
    let names: Vec<Arc<str>> = ["loss", "stsb_dev", "alignment"]
        .iter()
        .map(|n| Arc::from(*n))
        .collect();
    let w = Writer::spawn(&path).unwrap();
    let tx = w.sender();
    let mut rng = 7u64;
    // Runs, metrics and layers interleaved; steps mostly increasing, sometimes rewritten (a
    // resumed run), sometimes out of order within a batch; values with ties, NaN and infinities.
    for round in 0..40 {
        let mut rows = Vec::new();
        for _ in 0..(1 + lcg(&mut rng) % 50) {
            let step = match lcg(&mut rng) % 10 {
                0 => (lcg(&mut rng) % (round * 10 + 1)) as i64,
                _ => (round * 10 + lcg(&mut rng) % 10) as i64,
            };
            let value = match lcg(&mut rng) % 12 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2..=4 => 1.0,
                k => k as f64 * 0.25 - (lcg(&mut rng) % 5) as f64,
            };
            rows.push(MetricRow {
                run_pk: 1 + (lcg(&mut rng) % 4) as i64,
                step,
                layer: (lcg(&mut rng) % 3) as i64 - 1,
                name: names[(lcg(&mut rng) % 3) as usize].clone(),
                value,
            });
        }
        tx.send(Write::Metrics(rows)).unwrap();
        if round % 3 == 0 {
            w.flush().unwrap();
            let (nulls, rows): (i64, i64) = store
                .conn
                .query_row(
                    "SELECT (SELECT count(*) FROM metrics WHERE value IS NULL), (SELECT count(*) FROM metrics)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert!(rows > nulls);
            assert_eq!(
                summary::check(&store.conn).unwrap().mismatches,
                [],
                "after round {round}"
            );
        }
    }
    drop(tx);
    w.finish().unwrap();
    assert_eq!(summary::check(&store.conn).unwrap().mismatches, []);
    // A restart drops a run's rows and its summaries with them.
    store.restart_run(2, "test").unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM metric_summaries WHERE run_pk = 2"
        ),
        0
    );
    assert_eq!(summary::check(&store.conn).unwrap().mismatches, []);
    // The check sees a summary that lies, and one that is missing.
    store
        .conn
        .execute_batch(
            "UPDATE metric_summaries SET max_value = 99 WHERE run_pk = 1 AND metric_id = 1 AND layer = -1;
             DELETE FROM metric_summaries WHERE run_pk = 3 AND metric_id = 2 AND layer = 0;",
        )
        .unwrap();
    let bad = summary::check(&store.conn).unwrap().mismatches;
    assert_eq!(
        bad.iter().map(|m| m.key).collect::<Vec<_>>(),
        [(1, 1, -1), (3, 2, 0)]
    );
    assert!(bad[1].stored.is_none() && bad[1].scanned.is_some());
}

#[test]
fn a_version_1_database_gains_its_summaries_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    {
        // A version-1 database as the previous release wrote it.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO sweeps (name, file_path, file_text, created_at, updated_at) VALUES ('s', 's.toml', '', 'now', 'now');
             INSERT INTO runs (run_id, sweep_id, ordinal, seed, config_json, canonical, created_at) VALUES ('a', 1, 0, 1, '{}', '', 'now');
             INSERT INTO metric_names (name) VALUES ('loss'), ('stsb_dev');
             INSERT INTO metrics VALUES (1, 1, -1, 1, 3.0), (1, 1, -1, 2, 1.0), (1, 1, -1, 3, 2.0),
                                        (1, 2, -1, 0, 10.0), (1, 2, -1, 50, NULL), (1, 2, 0, 0, 0.5);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(count(&store, "SELECT count(*) FROM metric_summaries"), 3);
    assert_eq!(
        summary::get(&store.conn, (1, 1, -1)).unwrap().unwrap(),
        summary::Summary {
            n: 3,
            first: (1, Some(3.0)),
            last: (3, Some(2.0)),
            min: Some((2, 1.0)),
            max: Some((1, 3.0)),
        }
    );
    assert_eq!(
        summary::get(&store.conn, (1, 2, -1)).unwrap().unwrap().last,
        (50, None)
    );
    assert_eq!(summary::check(&store.conn).unwrap().mismatches, []);
    let ok: String = store
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn a_version_2_database_gains_the_pruned_status_and_keeps_its_rows_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    {
        // A version-2 database as the previous release wrote it, with a run, its params,
        // checkpoint, event and metrics.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(MIGRATIONS[1]).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO sweeps (name, file_path, file_text, swept_keys, created_at, updated_at) VALUES ('s', 's.toml', '', '[\"train.lr\"]', 'now', 'now');
             INSERT INTO runs (run_id, sweep_id, ordinal, seed, config_json, canonical, status, step, created_at, error)
                 VALUES ('a', 1, 0, 1, '{\"train.lr\":0.1}', 'x', 'done', 7, 'now', NULL),
                        ('b', 1, 1, 1, '{\"train.lr\":0.2}', 'y', 'failed', 3, 'now', 'boom');
             INSERT INTO param_keys (key) VALUES ('train.lr');
             INSERT INTO params VALUES (1, 1, 0.1), (2, 1, 0.2);
             INSERT INTO checkpoints VALUES (1, 'best', 5, '/x/best', 'stsb_dev', 1.5, 'now');
             INSERT INTO events (at, sweep_id, run_pk, kind, message) VALUES ('now', 1, 2, 'failed', 'boom');
             INSERT INTO metric_names (name) VALUES ('loss');
             INSERT INTO metrics VALUES (1, 1, -1, 1, 3.0), (2, 1, -1, 1, 4.0);
             -- a user's own view and trigger on runs
             CREATE VIEW my_failures AS SELECT run_id, error FROM runs WHERE status = 'failed';
             CREATE TABLE my_log (run_id TEXT, status TEXT);
             CREATE TRIGGER my_status AFTER UPDATE OF status ON runs
                 BEGIN INSERT INTO my_log VALUES (new.run_id, new.status); END;",
        )
        .unwrap();
        crate::store::summary::rebuild_all(&c).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
    let c = &store.conn;
    let rows: Vec<(String, String, i64, Option<String>)> = c
        .prepare("SELECT run_id, status, step, error FROM runs ORDER BY run_pk")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            ("a".to_string(), "done".to_string(), 7, None),
            (
                "b".to_string(),
                "failed".to_string(),
                3,
                Some("boom".to_string())
            )
        ]
    );
    // The views read the new table; foreign keys still hold and are enforced.
    assert_eq!(count(&store, "SELECT count(*) FROM run_params"), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM metric_values"), 2);
    assert_eq!(
        count(&store, "SELECT count(*) FROM metric_summary_values"),
        2
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM runs_wide WHERE \"train.lr\" = 0.2"
        ),
        1
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
    assert!(c
        .execute("INSERT INTO params VALUES (99, 1, 1.0)", [])
        .is_err());
    // The user's view reads the new table; their trigger is on it.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM my_failures WHERE error = 'boom'"
        ),
        1
    );
    // `pruned` is a status now, and the board's tables are there.
    c.execute(
        "UPDATE runs SET status = 'pruned', total_steps = 40 WHERE run_id = 'a'",
        [],
    )
    .unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM my_log WHERE run_id = 'a' AND status = 'pruned'"
        ),
        1
    );
    assert!(c.execute("UPDATE runs SET status = 'stopped'", []).is_err());
    assert_eq!(count(&store, "SELECT count(*) FROM search_decisions"), 0);
    assert_eq!(count(&store, "SELECT count(*) FROM search_reports"), 0);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM pragma_foreign_keys WHERE foreign_keys = 1"
        ),
        1
    );
}

#[test]
fn a_run_of_a_pruned_setting_is_marked_pruned_at_the_claim_with_its_rows_kept() {
    // An interrupted run whose setting was pruned (its front killed between the decision and
    // recording it): the claim marks it pruned before clearing anything, and takes the next run.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let mut store = Store::open(&path).unwrap();
    store.plan(&sweep("train.temperature = [0.05]")).unwrap();
    let first = store
        .claim_next("s", &worker_id(), "cpu", None)
        .unwrap()
        .unwrap();
    store
        .conn
        .execute_batch(&format!(
            "INSERT INTO metric_names (name) VALUES ('stsb_dev');
             INSERT INTO metrics VALUES ({pk}, 1, -1, 10, 40.0), ({pk}, 1, -1, 20, 41.0);
             INSERT INTO checkpoints VALUES ({pk}, 'best', 20, '/x/best-0000020', 'stsb_dev', 41.0, 'now');
             INSERT INTO checkpoints VALUES ({pk}, 'last', 20, '/x/last-0000020', NULL, NULL, 'now');
             UPDATE runs SET status = 'cancelled', step = 20 WHERE run_pk = {pk};",
            pk = first.run_pk
        ))
        .unwrap();
    let mut asked = Vec::new();
    let (claim, skipped) = store
        .claim_next_with("s", &worker_id(), "cpu", None, &mut |id, cfg| {
            asked.push((id.to_string(), cfg.get("seed").cloned()));
            (id == first.run_id).then(|| ("its setting was pruned".to_string(), Some(25)))
        })
        .unwrap();
    assert_eq!(asked.len(), 2, "the pruned run, then the next one");
    assert_eq!(
        skipped,
        [(
            first.run_pk,
            first.run_id.clone(),
            "its setting was pruned".to_string()
        )]
    );
    let claim = claim.unwrap();
    assert_ne!(claim.run_id, first.run_id);
    let (status, step, error): (String, i64, String) = store
        .conn
        .query_row(
            "SELECT status, step, error FROM runs WHERE run_pk = ?1",
            [first.run_pk],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // Judged at 25 (its own decision), past its rows (20).
    assert_eq!(
        (status.as_str(), step, error.as_str()),
        ("pruned", 25, "its setting was pruned")
    );
    let pk = first.run_pk;
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM metrics WHERE run_pk = {pk}")
        ),
        2
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM checkpoints WHERE run_pk = {pk} AND kind = 'best'")
        ),
        1
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM checkpoints WHERE run_pk = {pk} AND kind = 'last'")
        ),
        0
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM events WHERE run_pk = {pk} AND kind = 'pruned'")
        ),
        1
    );
    // Nothing left to claim once the other run is taken too.
    let (none, skipped) = store
        .claim_next_with("s", &worker_id(), "cpu", None, &mut |_, _| None)
        .unwrap();
    assert!(none.is_none() && skipped.is_empty());
}
