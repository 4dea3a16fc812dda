//! The on-disk token cache through the binaries: a run's metrics are the same whether its tokens
//! were built now (cold), mapped from an entry another process wrote (warm) or kept in memory
//! (cache off); each run's events say which; a damaged entry is reported and rebuilt; `cache
//! status` and `cache clear` list and remove entries.

mod common;

use common::{data_dir, micro_model};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const SWEEP: &str = r#"
[sweep]
name = "tok"
[base]
model.path = "micro-bert"
model.init = "random"
data.train = ["wiki1m_for_simcse.head.txt"]
data.max_examples = 40     # 5 steps per epoch: step 6 starts the second epoch's order
train.batch_size = 8
train.max_len = 20
train.steps = 7
eval.every = 0
eval.tasks = ["stsb_test"]
# Chunks of at most 2,048 values through tanh and exp: libtorch then runs MKL's vector math on
# the calling thread only. On some x86 machines MKL's AVX-512 vector math occasionally returns a
# less exact result on an OpenMP worker thread (docs/cli.md, "Determinism"), which would make two
# identical runs differ in the fifth digit of a probe of 1,000 sentences.
eval.batch_size = 16
probe.every = 0
probe.size = 32
[grid]
"train.temperature" = [0.05, 0.1]
"#;

fn simsweep(db: &Path, data: &Path, cache: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simsweep"));
    c.args(["--db", &db.display().to_string()])
        .args(["--data-dir", &data.display().to_string()])
        .args(args);
    match cache {
        Some(v) => c.env("SIMSWEEP_TOKEN_CACHE", v),
        None => c.env_remove("SIMSWEEP_TOKEN_CACHE"),
    };
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(db: &Path, data: &Path, sweep: &Path, cache: Option<&str>) {
    simsweep(
        db,
        data,
        cache,
        &["run", &sweep.display().to_string(), "--device", "cpu"],
    );
}

/// Every recorded value but the timings (tokens_per_s, probe_seconds), by (run, metric, step),
/// as bits.
fn metrics(db: &Path) -> Values {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT run_id, metric, step, value FROM metric_values WHERE metric NOT IN ('tokens_per_s', 'probe_seconds')")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?),
                r.get::<_, Option<f64>>(3)?.map(f64::to_bits),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

type Values = BTreeMap<(String, String, i64), Option<u64>>;

/// Equal, or the first values that differ: every value (steps, evaluations and probes) must be
/// bit-identical.
fn same(a: &Values, b: &Values, what: &str) {
    let diff: Vec<_> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .take(5)
        .map(|(k, v)| {
            (
                k,
                v.map(f64::from_bits),
                b.get(k).copied().flatten().map(f64::from_bits),
            )
        })
        .collect();
    assert!(
        diff.is_empty() && a.len() == b.len(),
        "{what}: {} vs {} values; differing (key, first, second): {diff:?}",
        a.len(),
        b.len()
    );
}

/// The `tokens` event of each run, in run order.
fn token_events(db: &Path) -> Vec<String> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT message FROM events WHERE kind = 'tokens' ORDER BY run_pk, event_id")
        .unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn metrics_are_identical_with_a_cold_a_warm_and_no_cache_and_damage_is_rebuilt() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    micro_model(dir.path());
    let sweep = dir.path().join("tok.toml");
    std::fs::write(&sweep, SWEEP).unwrap();

    // A: the first run builds the entry beside the results, the second maps it.
    let a = dir.path().join("a/results.db");
    run(&a, &data, &sweep, None);
    let cache = dir.path().join("a/cache/tokens");
    let ev = token_events(&a);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev[0].contains("written to the token cache"), "{ev:?}");
    assert!(ev[1].contains("mapped from the token cache"), "{ev:?}");
    assert!(
        ev[0].contains(" examples, ") && ev[0].contains(" tokens "),
        "{ev:?}"
    );
    let cached = cache.display().to_string();

    // B: another database and process, the same cache (as a Slurm task with a shared folder).
    let b = dir.path().join("b/results.db");
    run(&b, &data, &sweep, Some(&cached));
    let ev = token_events(&b);
    assert!(ev.iter().all(|e| e.contains("mapped from")), "{ev:?}");
    assert!(!dir.path().join("b/cache").exists());

    // C: the cache off.
    let c = dir.path().join("c/results.db");
    run(&c, &data, &sweep, Some("off"));
    let ev = token_events(&c);
    assert!(ev.iter().all(|e| e.contains("token cache off")), "{ev:?}");

    let (ma, mb, mc) = (metrics(&a), metrics(&b), metrics(&c));
    assert!(ma.len() > 2 * 7 * 5, "{} values", ma.len());
    assert!(ma.keys().any(|(_, m, s)| m == "loss" && *s == 7));
    same(&ma, &mb, "cold and warm cache");
    same(&ma, &mc, "cache and no cache");

    // Status lists the one entry (and its lock).
    let st = simsweep(&a, &data, None, &["cache", "status", "--verify"]);
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(
        st.contains(&format!("token cache {}: 1 entries", cache.display())),
        "{st}"
    );
    assert!(
        st.contains(" ok ") && st.contains("wiki1m_for_simcse.head.txt (lines)"),
        "{st}"
    );
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "tok"))
        .unwrap();

    // Damage the entry: status says so; the next run reports it in its events and rebuilds it.
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &bytes[..bytes.len() / 2]).unwrap();
    let st = simsweep(&a, &data, None, &["cache", "status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let states: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert!(
        states.iter().any(|s| s.starts_with("damaged: truncated")),
        "{states:?}"
    );
    let d = dir.path().join("d/results.db");
    run(&d, &data, &sweep, Some(&cached));
    let ev = token_events(&d);
    assert!(
        ev[0].contains("the entry there was damaged: truncated") && ev[0].contains("rebuilt"),
        "{ev:?}"
    );
    assert!(ev[1].contains("mapped from"), "{ev:?}");
    same(&metrics(&d), &ma, "after the rebuild");
    assert!(entry.is_file());

    // Clear removes the entry and its lock, nothing else.
    std::fs::write(cache.join("README"), "mine").unwrap();
    let out = simsweep(&a, &data, None, &["cache", "clear"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("removed 2 files"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(cache.join("README").is_file());
    let st = simsweep(&a, &data, None, &["cache", "status"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains(": 0 entries"));
    let off = simsweep(&a, &data, Some("off"), &["cache", "status"]);
    assert!(String::from_utf8_lossy(&off.stdout).contains("the token cache is off"));
}
