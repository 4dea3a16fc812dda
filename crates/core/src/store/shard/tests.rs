use super::*;
use crate::spec;
use crate::store::writer::{MetricRow, Write, Writer};
use std::sync::Arc;

fn sweep() -> crate::spec::Sweep {
    let text = "[sweep]\nname = \"s\"\n[base]\nmodel.path = \"m\"\ndata.train = [\"w.txt\"]\n[grid]\n\"train.temperature\" = [0.05, 0.1, 0.5]\n";
    spec::parse(Path::new("s.toml"), text).unwrap()
}

fn count(store: &Store, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A shard for run `run` of the sweep, as a worker makes it, for task `task`.
fn make_shard(dir: &Path, run: usize, task: &str, status: &str) -> (Store, i64) {
    let sw = sweep();
    let mut one = sw.clone();
    one.runs.retain(|r| r.id == sw.runs[run].id);
    one.runs[0].ordinal = 0;
    let path = dir.join(format!("shards/s/{}.db", sw.runs[run].id));
    let mut shard = Store::open(&path).unwrap();
    let mode: String = shard
        .conn
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    shard.plan(&one).unwrap();
    assert_eq!(
        shard
            .prepare_shard_run(&sw.runs[run].id, task, status, 0, &serde_json::json!({}))
            .unwrap(),
        ShardStart::Ready
    );
    let pk = count(&shard, "SELECT run_pk FROM runs");
    (shard, pk)
}

fn write_metrics(path: &Path, run_pk: i64, steps: std::ops::RangeInclusive<i64>, scale: f64) {
    let w = Writer::spawn(path).unwrap();
    let tx = w.sender();
    for step in steps {
        let rows = ["loss", "lr", "zeta"]
            .iter()
            .map(|n| MetricRow {
                run_pk,
                step,
                layer: -1,
                name: Arc::from(*n),
                value: scale * step as f64,
            })
            .chain(std::iter::once(MetricRow {
                run_pk,
                step,
                layer: 0,
                name: Arc::from("token_anisotropy"),
                value: 0.5,
            }))
            .collect();
        tx.send(Write::Metrics(rows)).unwrap();
    }
    tx.send(Write::Checkpoint {
        run_pk,
        kind: "best".into(),
        step: 2,
        path: "/r/s/x/best".into(),
        metric: Some("stsb_dev".into()),
        value: Some(50.0),
    })
    .unwrap();
    drop(tx);
    w.finish().unwrap();
}

/// (metric name, layer, step, value) of a run, sorted.
fn metrics_of(store: &Store, run_id: &str) -> Vec<(String, i64, i64, Option<f64>)> {
    let mut st = store
        .conn
        .prepare("SELECT n.name, m.layer, m.step, m.value FROM metrics m JOIN metric_names n USING (metric_id) JOIN runs r USING (run_pk) WHERE r.run_id = ?1 ORDER BY 1, 2, 3")
        .unwrap();
    st.query_map([run_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

fn status_of(store: &Store, run_id: &str) -> (String, Option<String>, Option<i64>) {
    store
        .conn
        .query_row(
            "SELECT status, worker, step FROM runs WHERE run_id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

#[test]
fn submission_claims_confirms_and_releases_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut main = Store::open(&dir.path().join("r.db")).unwrap();
    let sw = sweep();
    main.plan(&sw).unwrap();
    main.conn
        .execute(
            "UPDATE runs SET status = 'done' WHERE run_id = ?1",
            [&sw.runs[1].id],
        )
        .unwrap();
    let claimer = Store::submitting_worker();
    let claimed = main.claim_for_submission("s", &claimer).unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|r| r.run_id.as_str())
            .collect::<Vec<_>>(),
        [sw.runs[0].id.as_str(), sw.runs[2].id.as_str()]
    );
    assert_eq!(main.slurm_runs(Some("s")).unwrap().len(), 2);
    assert!(main.slurm_runs(Some("s")).unwrap()[0].task().is_none());
    // Nothing else can take them meanwhile, neither a second submission nor a local runner.
    assert!(main.claim_for_submission("s", "other").unwrap().is_empty());
    assert!(main.claim_next("s", "h:1", "cpu", None).unwrap().is_none());
    // sbatch failed: back as they were.
    main.release_submission(&claimed, &claimer).unwrap();
    assert_eq!(status_of(&main, &sw.runs[0].id).0, "pending");
    // Again, and sbatch answers job 7.
    let claimed = main.claim_for_submission("s", &claimer).unwrap();
    assert_eq!(
        main.confirm_submission(&claimed, &claimer, "7", Path::new("/x"))
            .unwrap(),
        2
    );
    assert_eq!(
        status_of(&main, &sw.runs[2].id),
        ("running".into(), Some("slurm:7_1".into()), None)
    );
    assert_eq!(
        count(&main, "SELECT count(*) FROM events WHERE kind = 'submitted' AND json_extract(data, '$.job') = '7'"),
        2
    );
    let held = main.slurm_runs(None).unwrap();
    assert_eq!(
        held.iter().map(|r| r.task().unwrap()).collect::<Vec<_>>(),
        ["7_0", "7_1"]
    );
    // A local runner on this host never takes back a run held by a Slurm task (no host, no pid).
    main.conn
        .execute("UPDATE runs SET host = ?1", [host()])
        .unwrap();
    assert!(main.claim_next("s", "h:1", "cpu", None).unwrap().is_none());
    assert_eq!(status_of(&main, &sw.runs[0].id).0, "running");
    // A task that ended without a final status: settled once, only while the task holds it.
    assert!(main
        .settle_slurm_run(
            held[0].run_pk,
            "slurm:7_0",
            "failed",
            "slurm job 7_0 TIMEOUT"
        )
        .unwrap());
    assert!(!main
        .settle_slurm_run(held[0].run_pk, "slurm:7_0", "failed", "again")
        .unwrap());
    assert_eq!(status_of(&main, &sw.runs[0].id).0, "failed");
    // --retry-failed puts it back.
    assert_eq!(main.requeue("s", &["failed", "diverged"]).unwrap(), 1);
    assert_eq!(status_of(&main, &sw.runs[0].id).0, "pending");
}

#[test]
fn a_submission_whose_process_died_gives_its_runs_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut main = Store::open(&dir.path().join("r.db")).unwrap();
    main.plan(&sweep()).unwrap();
    // A pid that does not exist on this host.
    let claimer = format!("{SUBMITTING_WORKER}{}:{}:1", host(), u32::MAX - 1);
    assert_eq!(main.claim_for_submission("s", &claimer).unwrap().len(), 3);
    let mine = Store::submitting_worker();
    main.conn
        .execute("UPDATE runs SET worker = ?1 WHERE ordinal = 2", [&mine])
        .unwrap();
    assert_eq!(main.release_stale_submissions().unwrap(), 2);
    assert_eq!(
        count(
            &main,
            "SELECT count(*) FROM runs WHERE status = 'pending' AND worker IS NULL"
        ),
        2
    );
    // This process's own submission is alive.
    assert_eq!(
        count(&main, "SELECT count(*) FROM runs WHERE status = 'running'"),
        1
    );
}

#[test]
fn merging_a_shard_copies_its_run_exactly_once_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let mut main = Store::open(&db).unwrap();
    let sw = sweep();
    main.plan(&sw).unwrap();
    // Different metric ids in the main database than in the shard.
    main.conn
        .execute_batch("INSERT INTO metric_names (name) VALUES ('other'), ('zeta')")
        .unwrap();
    let claimer = Store::submitting_worker();
    let claimed = main.claim_for_submission("s", &claimer).unwrap();
    main.confirm_submission(&claimed, &claimer, "7", dir.path())
        .unwrap();
    let id = sw.runs[0].id.clone();

    // A shard file the worker has only just created: nothing to merge, no error.
    let early = dir.path().join("early.db");
    std::fs::write(&early, b"").unwrap();
    assert!(main.merge_shard(&early).unwrap().is_empty());

    // The task started and made its shard; the run is not claimed yet: only the event is copied.
    let (mut shard, spk) = make_shard(dir.path(), 0, "7_0", "pending");
    let spath = shard.path.clone();
    let m = main.merge_shard(&spath).unwrap();
    assert_eq!(m.len(), 1);
    assert!(m[0].applied && !m[0].row_updated, "{m:?}");
    assert_eq!(m[0].events_added, 1);
    assert_eq!(status_of(&main, &id).0, "running");

    // Training: the shard's run is running with metrics; main follows (worker kept).
    let c = shard
        .claim_next("s", "node1:42", "cpu", Some(std::slice::from_ref(&id)))
        .unwrap()
        .unwrap();
    assert_eq!(c.run_pk, spk);
    write_metrics(&spath, spk, 1..=3, 1.0);
    shard.heartbeat(spk, 3).unwrap();
    let m = main.merge_shard(&spath).unwrap();
    assert!(m[0].row_updated && m[0].metrics_written == 12, "{m:?}");
    assert_eq!(
        status_of(&main, &id),
        ("running".into(), Some("slurm:7_0".into()), Some(3))
    );
    assert_eq!(metrics_of(&main, &id), metrics_of(&shard, &id));

    // Finished; a value rewritten (a resumed step) and a row gone from the shard.
    write_metrics(&spath, spk, 3..=5, 2.0);
    shard
        .conn
        .execute("DELETE FROM metrics WHERE step = 1 AND layer = 0", [])
        .unwrap();
    shard.finish_run(spk, "done", Some(5), None).unwrap();
    let m = main.merge_shard(&spath).unwrap();
    assert_eq!(m[0].metrics_written, 4 * 3 - 1, "{m:?}");
    assert_eq!(m[0].metrics_deleted, 1, "{m:?}");
    assert_eq!(
        status_of(&main, &id),
        ("done".into(), Some("slurm:7_0".into()), Some(5))
    );
    let mine = metrics_of(&main, &id);
    assert_eq!(mine, metrics_of(&shard, &id));
    assert_eq!(mine.len(), 5 * 4 - 1);
    assert_eq!(
        main.conn
            .query_row(
                "SELECT value FROM metric_values WHERE run_id = ?1 AND metric = 'zeta' AND step = 3",
                [&id],
                |r| r.get::<_, f64>(0)
            )
            .unwrap(),
        6.0
    );
    assert_eq!(
        count(
            &main,
            "SELECT count(*) FROM checkpoints WHERE kind = 'best' AND step = 2"
        ),
        1
    );
    let (attempts, started, host): (i64, Option<String>, Option<String>) = main
        .conn
        .query_row(
            "SELECT attempts, started_at, host FROM runs WHERE run_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(attempts, 1);
    assert!(started.is_some());
    assert_eq!(host.as_deref(), Some(super::host().as_str()));
    let events = count(&main, "SELECT count(*) FROM events");

    // Again: nothing changes.
    for _ in 0..2 {
        let m = main.merge_shard(&spath).unwrap();
        assert!(m[0].applied && !m[0].changed(), "{m:?}");
    }
    assert_eq!(count(&main, "SELECT count(*) FROM events"), events);
    assert_eq!(metrics_of(&main, &id), mine);
    assert_eq!(
        count(&main, "SELECT count(*) FROM (SELECT run_pk, kind FROM events WHERE kind = 'done' GROUP BY run_pk HAVING count(*) > 1)"),
        0
    );
    let ok: String = main
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(
        crate::store::summary::check(&main.conn).unwrap().mismatches,
        []
    );

    // Incremental: a shard left alone for a while, once merged, is not read again while it and
    // its run's worker stay as they were. A shard written seconds ago is always read.
    let m = main.merge_shard(&spath).unwrap();
    assert!(!m[0].unread, "a shard just written is read: {m:?}");
    let age = |secs: u64| {
        std::fs::File::options()
            .write(true)
            .open(&spath)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
            .unwrap()
    };
    age(60);
    let m = main.merge_shard(&spath).unwrap();
    assert!(!m[0].unread && m[0].applied, "{m:?}");
    let m = main.merge_shard(&spath).unwrap();
    assert_eq!(m.len(), 1);
    assert!(m[0].unread && m[0].applied && !m[0].changed(), "{m:?}");
    assert_eq!(m[0].run_id, id);
    // The shard changes (a later write): read again.
    shard.heartbeat(spk, 5).unwrap();
    age(30);
    let m = main.merge_shard(&spath).unwrap();
    assert!(!m[0].unread, "{m:?}");
    assert!(main.merge_shard(&spath).unwrap()[0].unread);
    // The main database's run changes hands (requeued): read again, and now skipped.
    main.conn
        .execute(
            "UPDATE runs SET worker = NULL, status = 'pending' WHERE run_id = ?1",
            [&id],
        )
        .unwrap();
    let m = main.merge_shard(&spath).unwrap();
    assert!(!m[0].unread && !m[0].applied, "{m:?}");
    let m = main.merge_shard(&spath).unwrap();
    assert!(
        m[0].unread && !m[0].applied && m[0].skipped.is_some(),
        "{m:?}"
    );
}

#[test]
fn a_shard_of_another_submission_is_skipped_and_a_settled_run_is_not_revived() {
    let dir = tempfile::tempdir().unwrap();
    let mut main = Store::open(&dir.path().join("r.db")).unwrap();
    let sw = sweep();
    main.plan(&sw).unwrap();
    let claimer = Store::submitting_worker();
    let claimed = main.claim_for_submission("s", &claimer).unwrap();
    main.confirm_submission(&claimed, &claimer, "8", dir.path())
        .unwrap();
    // A shard left by job 6 (an earlier submission of the same run) is not merged.
    let (shard, spk) = make_shard(dir.path(), 1, "6_1", "pending");
    let mut shard = shard;
    shard.finish_run(spk, "failed", None, Some("old")).unwrap();
    let m = main.merge_shard(&shard.path).unwrap();
    assert!(!m[0].applied && !m[0].changed(), "{m:?}");
    assert!(
        m[0].skipped.as_deref().unwrap().contains("slurm:8_1"),
        "{m:?}"
    );
    assert_eq!(status_of(&main, &sw.runs[1].id).0, "running");

    // Task 8_2 started running, then Slurm killed it (no final status in its shard): main settles
    // it failed; a later merge of the still-`running` shard keeps that status, copies the rows.
    let (mut s2, pk2) = make_shard(dir.path(), 2, "8_2", "pending");
    s2.claim_next("s", "node1:42", "cpu", None)
        .unwrap()
        .unwrap();
    write_metrics(&s2.path, pk2, 1..=2, 1.0);
    let held = main.slurm_runs(None).unwrap();
    let r2 = held.iter().find(|r| r.run_id == sw.runs[2].id).unwrap();
    main.settle_slurm_run(r2.run_pk, &r2.worker, "failed", "slurm job 8_2 TIMEOUT")
        .unwrap();
    let m = main.merge_shard(&s2.path).unwrap();
    assert!(
        m[0].applied && !m[0].row_updated && m[0].metrics_written == 8,
        "{m:?}"
    );
    assert_eq!(status_of(&main, &sw.runs[2].id).0, "failed");
    assert!(!main.merge_shard(&s2.path).unwrap()[0].changed());
}

#[test]
fn a_shard_with_a_hot_journal_is_recovered_then_merged() {
    let dir = tempfile::tempdir().unwrap();
    let mut main = Store::open(&dir.path().join("r.db")).unwrap();
    let sw = sweep();
    main.plan(&sw).unwrap();
    let claimer = Store::submitting_worker();
    let claimed = main.claim_for_submission("s", &claimer).unwrap();
    main.confirm_submission(&claimed, &claimer, "9", dir.path())
        .unwrap();
    let (mut shard, spk) = make_shard(dir.path(), 0, "9_0", "pending");
    shard.claim_next("s", "n:1", "cpu", None).unwrap().unwrap();
    write_metrics(&shard.path, spk, 1..=2, 1.0);
    let path = shard.path.clone();
    // Kill a writer mid-transaction: copy db + journal while a transaction is open.
    let snap = dir.path().join("snap");
    std::fs::create_dir_all(&snap).unwrap();
    shard.conn.execute_batch("PRAGMA cache_size = 1; BEGIN IMMEDIATE; DELETE FROM metrics; UPDATE runs SET status = 'done';").unwrap();
    // Force pages out to the database file so the journal is needed.
    shard
        .conn
        .execute_batch("CREATE TABLE filler AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x, randomblob(100) AS b FROM c;")
        .unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::copy(&path, snap.join(&name)).unwrap();
    let journal = path.with_file_name(format!("{name}-journal"));
    assert!(journal.is_file());
    std::fs::copy(&journal, snap.join(format!("{name}-journal"))).unwrap();
    shard.conn.execute_batch("ROLLBACK").unwrap();
    drop(shard);
    std::fs::create_dir_all(dir.path().join("s2")).unwrap();
    let hot = dir.path().join("s2").join(&name);
    std::fs::copy(snap.join(&name), &hot).unwrap();
    std::fs::copy(
        snap.join(format!("{name}-journal")),
        dir.path().join("s2").join(format!("{name}-journal")),
    )
    .unwrap();
    // Read-only, a hot journal cannot be rolled back: the merge fails, then recovery (read-write,
    // once the task has ended) restores the last committed state, which merges.
    let err = main.merge_shard(&hot).unwrap_err().to_string();
    assert!(err.contains("readonly"), "{err}");
    recover_shard(&hot).unwrap();
    let m = main.merge_shard(&hot).unwrap();
    assert!(m[0].applied, "{m:?}");
    assert_eq!(status_of(&main, &sw.runs[0].id).0, "running");
    assert_eq!(metrics_of(&main, &sw.runs[0].id).len(), 8);
}
