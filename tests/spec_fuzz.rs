//! Property tests (fuzzing) of the sweep-file parser and expander, `simsweep_core::spec::parse`:
//!
//! - arbitrary text and arbitrary bytes never panic; an error is a non-empty message at a line ≥ 1;
//! - documents built from the real keys, with values of every type (wrong ones too), huge lists,
//!   [[zip]], [[exclude]] and [random] never panic, and every error names a key unless it is about
//!   the file as a whole (TOML syntax, the sweep's size, exclusions, identical runs);
//! - valid grids / zips / seeds / excludes expand to exactly the product of the axes × seeds minus
//!   the excluded combinations, with unique run ids in order; an injected mistake is reported
//!   under its key;
//! - huge sweeps (10 axes × 100 values = 10^20 runs, 10^40 runs, an axis of 200,000 values) are
//!   refused with their count in under a second of CPU time, without expanding them.
//!
//! `PROPTEST_CASES` sets the number of cases per property (default 256: a few seconds).

use proptest::prelude::*;
use serde_json::Value;
use simsweep_core::spec::{self, schema};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn parse(text: &str) -> Result<spec::Sweep, spec::SpecErrors> {
    spec::parse(Path::new("fuzz.toml"), text)
}

/// Messages about the file as a whole, which have no key to name.
const KEYLESS: &[&str] = &[
    "invalid TOML",
    "the sweep expands to",
    "every combination is excluded",
    "two combinations resolve to the same run settings",
    "the sweep file is not valid UTF-8",
];

fn check_errors(errs: &spec::SpecErrors) {
    assert!(!errs.0.is_empty(), "an Err without errors");
    for e in &errs.0 {
        assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
        assert!(e.line >= 1 && e.col >= 1, "no position: {e:?}");
        assert!(
            e.key.is_some() || KEYLESS.iter().any(|k| e.message.starts_with(k)),
            "an error about a setting that names no key: {e}"
        );
        assert!(!e.to_string().is_empty());
    }
}

fn check_ok(sweep: &spec::Sweep) {
    let ids: HashSet<&str> = sweep.runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), sweep.runs.len(), "run ids are unique");
    for (i, r) in sweep.runs.iter().enumerate() {
        assert_eq!(r.ordinal, i);
        assert_eq!(r.id.len(), 16);
        assert_eq!(r.id, spec::run_id(&sweep.name, &r.canonical));
    }
    assert!(!sweep.runs.is_empty() && sweep.runs.len() as u128 <= spec::MAX_RUNS);
}

// ---------------------------------------------------------------- arbitrary input

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        match parse(&text) {
            Ok(s) => check_ok(&s),
            Err(e) => check_errors(&e),
        }
    }

    #[test]
    fn arbitrary_bytes_through_a_file_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, &bytes).unwrap();
        match spec::load(&p) {
            Ok(s) => check_ok(&s),
            Err(e) => check_errors(&e),
        }
    }

    #[test]
    fn toml_shaped_noise_never_panics(lines in proptest::collection::vec(toml_line(), 0..30)) {
        let text = lines.join("\n");
        match parse(&text) {
            Ok(s) => check_ok(&s),
            Err(e) => check_errors(&e),
        }
    }
}

/// Lines that look like TOML: headers, dotted keys (real and not), values of any type.
fn toml_line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "[sweep]",
            "[base]",
            "[grid]",
            "[[zip]]",
            "[[exclude]]",
            "[random]",
            "[grid.train]",
            "[base.model]",
            "[zip]",
            "[[grid]]",
            "[sweep.x]",
            "[]",
            "[[",
            "name = \"s\"",
            "seeds = [1, 2]",
            "n = 3",
            "seed = 7",
        ])
        .prop_map(String::from),
        (key_name(), toml_value(2)).prop_map(|(k, v)| format!("{k} = {v}")),
        (key_name(), toml_value(2)).prop_map(|(k, v)| format!("\"{k}\" = {v}")),
        "[ -~]{0,40}",
    ]
}

/// A setting's name: mostly real keys, sometimes near misses and nonsense.
fn key_name() -> impl Strategy<Value = String> {
    let real: Vec<String> = schema::KEYS.iter().map(|k| k.key.to_string()).collect();
    prop_oneof![
        6 => prop::sample::select(real),
        1 => prop::sample::select(vec![
            "train.batchsize", "model.pool", "loss", "train", "seed", "n", "name", "x.y.z",
            "random.n", "sweep.name", "train.lr.x", "uniform", "choice",
        ]).prop_map(String::from),
        1 => "[a-z_]{1,12}(\\.[a-z_]{1,12}){0,3}",
    ]
}

/// A TOML value of any type, nested up to `depth`; lists are usually short, sometimes huge.
fn toml_value(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (-5i64..600).prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| {
            if f.is_finite() {
                format!("{f:?}")
            } else if f.is_nan() {
                "nan".into()
            } else if f > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }),
        prop::sample::select(vec![
            "0.0",
            "-0.0",
            "1e-5",
            "0.05",
            "1.0",
            "2",
            "0",
            "true",
            "false",
            "\"cls\"",
            "\"avg\"",
            "\"infonce\"",
            "\"mpt\"",
            "\"random\"",
            "\"pretrained\"",
            "\"all\"",
            "\"last\"",
            "\"train.txt\"",
            "\"\"",
            "1979-05-27",
            "{}",
            "{ uniform = [0.01, 0.1] }",
            "{ log_uniform = [1e-5, 1e-3] }",
            "{ choice = [8, 16] }",
            "{ uniform = [1, 0] }",
        ])
        .prop_map(String::from),
        "\"[ -!#-~]{0,12}\"",
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let inner = toml_value(depth - 1);
    prop_oneof![
        4 => leaf,
        2 => proptest::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => proptest::collection::vec((-1000i64..1000).prop_map(|i| i.to_string()), 100..400)
            .prop_map(|v| format!("[{}]", v.join(", "))),
        1 => proptest::collection::vec((key_name(), inner), 0..3).prop_map(|kv| {
            format!("{{ {} }}", kv.into_iter().map(|(k, v)| format!("\"{k}\" = {v}")).collect::<Vec<_>>().join(", "))
        }),
    ]
    .boxed()
}

// ---------------------------------------------------------------- structured documents

const HEAD: &str = "[sweep]\nname = \"fz\"\n";
const BASE: &str =
    "[base]\nmodel.path = \"m\"\nmodel.init = \"random\"\ndata.train = [\"train.txt\"]\n";

/// A document with the real sections, each holding a few real keys with values of any type.
fn section_soup() -> impl Strategy<Value = String> {
    let section = (
        prop::sample::select(vec![
            "[base]",
            "[grid]",
            "[[zip]]",
            "[[exclude]]",
            "[random]",
        ]),
        proptest::collection::vec((key_name(), toml_value(2)), 0..5),
        proptest::option::of(1u32..200),
    )
        .prop_map(|(h, kvs, n)| {
            let mut s = format!("{h}\n");
            if h == "[random]" {
                if let Some(n) = n {
                    s.push_str(&format!("n = {n}\n"));
                }
            }
            for (k, v) in kvs {
                s.push_str(&format!("\"{k}\" = {v}\n"));
            }
            s
        });
    (
        proptest::option::of(prop::sample::select(vec![
            "seeds = [1, 2, 3]",
            "seeds = []",
            "seeds = [1, 1]",
            "seeds = [-1]",
            "seeds = 3",
        ])),
        proptest::collection::vec(section, 0..6),
    )
        .prop_map(|(seeds, sections)| {
            let mut s = HEAD.to_string();
            if let Some(x) = seeds {
                s.push_str(x);
                s.push('\n');
            }
            s.push_str(BASE);
            for x in sections {
                s.push_str(&x);
            }
            s
        })
}

proptest! {
    #[test]
    fn documents_of_real_keys_never_panic_and_errors_name_keys(text in section_soup()) {
        match parse(&text) {
            Ok(s) => check_ok(&s),
            Err(e) => check_errors(&e),
        }
    }
}

/// Axes that are valid for the micro model: (key, the values they may take, as TOML literals).
const PALETTE: &[(&str, &[&str])] = &[
    (
        "train.temperature",
        &["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1.0"],
    ),
    ("train.lr", &["1e-5", "2e-5", "3e-5", "5e-5", "1e-4"]),
    ("train.batch_size", &["8", "16", "32", "64", "128"]),
    (
        "model.pooling",
        &[
            "\"cls\"",
            "\"cls_before_pooler\"",
            "\"avg\"",
            "\"avg_top2\"",
            "\"avg_first_last\"",
        ],
    ),
    ("train.max_len", &["16", "24", "32", "48", "64"]),
    ("train.weight_decay", &["0.0", "0.01", "0.1"]),
    ("train.warmup_steps", &["0", "10", "100"]),
    ("probe.every", &["0", "50", "125"]),
];

/// A valid sweep: each axis is a palette key with distinct values, in [grid] or in a [[zip]] group.
#[derive(Debug, Clone)]
struct Plan {
    /// (palette index, value indices) per grid axis.
    grid: Vec<(usize, Vec<usize>)>,
    /// Zip groups: (palette indices, rows of value indices).
    zips: Vec<(Vec<usize>, Vec<Vec<usize>>)>,
    seeds: Vec<u32>,
    /// Each exclude: (palette index, value index) conditions on grid keys.
    excludes: Vec<Vec<(usize, usize)>>,
}

fn plan_strategy() -> impl Strategy<Value = Plan> {
    // Shuffle the palette, then deal keys to the grid and up to two zip groups.
    (
        Just((0..PALETTE.len()).collect::<Vec<_>>()).prop_shuffle(),
        0usize..=4,
        proptest::collection::vec(1usize..=3, 0..=2),
        proptest::sample::subsequence((0u32..6).collect::<Vec<_>>(), 1..=3),
        any::<u64>(),
    )
        .prop_map(|(keys, n_grid, zip_sizes, seeds, mut rng)| {
            let mut next = move |m: usize| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((rng >> 33) as usize) % m
            };
            let mut keys = keys.into_iter();
            let mut grid = Vec::new();
            for _ in 0..n_grid {
                let k = keys.next().unwrap();
                let n = PALETTE[k].1.len();
                let take = 1 + next(n);
                let mut vals: Vec<usize> = (0..n).collect();
                for i in 0..n {
                    vals.swap(i, i + next(n - i));
                }
                vals.truncate(take);
                grid.push((k, vals));
            }
            let mut zips = Vec::new();
            for size in zip_sizes {
                let group: Vec<usize> = keys.by_ref().take(size).collect();
                if group.is_empty() {
                    break;
                }
                let len = 1 + next(group.iter().map(|k| PALETTE[*k].1.len()).min().unwrap());
                // Distinct rows: the first key's values are distinct.
                let first = PALETTE[group[0]].1.len();
                let mut firsts: Vec<usize> = (0..first).collect();
                for i in 0..first {
                    firsts.swap(i, i + next(first - i));
                }
                let rows = (0..len)
                    .map(|r| {
                        group
                            .iter()
                            .enumerate()
                            .map(|(j, k)| {
                                if j == 0 {
                                    firsts[r]
                                } else {
                                    next(PALETTE[*k].1.len())
                                }
                            })
                            .collect()
                    })
                    .collect();
                zips.push((group, rows));
            }
            let mut excludes = Vec::new();
            if !grid.is_empty() {
                for _ in 0..next(3) {
                    let conds = (0..1 + next(2))
                        .map(|_| {
                            let (k, _) = &grid[next(grid.len())];
                            (*k, next(PALETTE[*k].1.len()))
                        })
                        .collect::<Vec<_>>();
                    excludes.push(conds);
                }
            }
            Plan {
                grid,
                zips,
                seeds,
                excludes,
            }
        })
}

fn render(p: &Plan) -> String {
    let mut s = HEAD.to_string();
    s.push_str(&format!(
        "seeds = [{}]\n",
        p.seeds
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s.push_str(BASE);
    s.push_str("[grid]\n");
    for (k, vals) in &p.grid {
        let (key, pal) = PALETTE[*k];
        let v: Vec<&str> = vals.iter().map(|i| pal[*i]).collect();
        s.push_str(&format!("\"{key}\" = [{}]\n", v.join(", ")));
    }
    for (group, rows) in &p.zips {
        s.push_str("[[zip]]\n");
        for (j, k) in group.iter().enumerate() {
            let (key, pal) = PALETTE[*k];
            let v: Vec<&str> = rows.iter().map(|r| pal[r[j]]).collect();
            s.push_str(&format!("\"{key}\" = [{}]\n", v.join(", ")));
        }
    }
    for conds in &p.excludes {
        s.push_str("[[exclude]]\n");
        // Two conditions on one key: the TOML would repeat the key; keep the first.
        let mut seen = HashSet::new();
        for (k, v) in conds {
            if seen.insert(*k) {
                let (key, pal) = PALETTE[*k];
                s.push_str(&format!("\"{key}\" = {}\n", pal[*v]));
            }
        }
    }
    s
}

/// The runs the plan should expand to — the grid product minus excluded grid combinations, × zip
/// lengths × seeds — and how many excludes warn (an exclude that drops no run that an earlier one
/// did not already drop matches nothing).
fn expected_runs(p: &Plan) -> (usize, usize) {
    let radices: Vec<usize> = p.grid.iter().map(|(_, v)| v.len()).collect();
    let combos: usize = radices.iter().product();
    let mut kept = 0;
    let mut matched = vec![false; p.excludes.len()];
    for c in 0..combos {
        let mut rem = c;
        let mut pick = vec![0; radices.len()];
        for (i, r) in radices.iter().enumerate().rev() {
            pick[i] = rem % r;
            rem /= r;
        }
        let value_of = |k: usize| -> usize {
            let i = p.grid.iter().position(|(g, _)| *g == k).unwrap();
            p.grid[i].1[pick[i]]
        };
        let first = p.excludes.iter().position(|conds| {
            let mut seen = HashSet::new();
            conds
                .iter()
                .filter(|(k, _)| seen.insert(*k))
                .all(|(k, v)| value_of(*k) == *v)
        });
        match first {
            Some(i) => matched[i] = true,
            None => kept += 1,
        }
    }
    let runs = kept * p.zips.iter().map(|(_, r)| r.len()).product::<usize>() * p.seeds.len();
    (runs, matched.iter().filter(|m| !**m).count())
}

fn literal(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

proptest! {
    #[test]
    fn valid_sweeps_expand_to_the_product_minus_exclusions(p in plan_strategy()) {
        let text = render(&p);
        let (want, warnings) = expected_runs(&p);
        match parse(&text) {
            Ok(s) => {
                check_ok(&s);
                prop_assert_eq!(s.runs.len(), want, "{}", text);
                // Every run carries its axis values, and the seeds are innermost.
                for r in &s.runs {
                    for (k, _) in &p.grid {
                        prop_assert!(r.params.contains_key(PALETTE[*k].0));
                    }
                    prop_assert!(p.seeds.contains(&(r.seed as u32)));
                }
                prop_assert_eq!(s.runs[0].seed, p.seeds[0] as i64);
                prop_assert_eq!(s.warnings.len(), warnings, "{:?}", s.warnings);
                for r in &s.runs {
                    for conds in &p.excludes {
                        let mut seen = HashSet::new();
                        let hit = conds.iter().filter(|(k, _)| seen.insert(*k)).all(|(k, v)| {
                            r.config.get(PALETTE[*k].0) == Some(&literal(PALETTE[*k].1[*v]))
                        });
                        prop_assert!(!hit, "an excluded run was kept: {:?}", r.params);
                    }
                }
            }
            Err(e) => {
                prop_assert_eq!(want, 0, "{}\n{}", text, e);
                prop_assert_eq!(e.to_string(), "fuzz.toml:1:1: every combination is excluded: the sweep has no runs");
            }
        }
    }

    #[test]
    fn an_injected_mistake_is_reported_under_its_key(p in plan_strategy(), which in 0usize..6) {
        let text = render(&p);
        let (text, key) = match which {
            0 => (text.replacen("[base]\n", "[base]\ntrain.bogus_setting = 1\n", 1), "train.bogus_setting"),
            1 => (text.replacen("[base]\n", "[base]\ntrain.steps = \"many\"\n", 1), "train.steps"),
            2 => (text.replacen("[base]\n", "[base]\ntrain.max_grad_norm = -1.0\n", 1), "train.max_grad_norm"),
            3 => (text.replacen("[base]\n", "[base]\nloss.margin = 0.3\n", 1), "loss.margin"),
            4 => (text.replacen("[base]\n", "[base]\nmodel.hub = \"bert-base-uncased\"\n", 1), "model.hub"),
            _ => (text.replacen("data.train = [\"train.txt\"]\n", "data.train = [\"train.txt\"]\ndata.train = [\"b.txt\"]\n", 1), "data.train"),
        };
        let e = parse(&text).expect_err("the mistake is refused");
        check_errors(&e);
        prop_assert!(e.0.iter().any(|x| x.key.as_deref() == Some(key)), "{} not named in {}", key, e);
    }
}

// ---------------------------------------------------------------- huge sweeps

/// CPU time of the calling thread (Linux: /proc/thread-self/stat, utime + stime, in clock ticks of
/// 10 ms): the bound holds on a loaded machine too, where wall time also measures the others.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields after the command: state is [0], utime [11], stime [12].
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Time a parse: (CPU time of this thread, wall time).
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (c, w) = (thread_cpu(), Instant::now());
    let out = f();
    (out, thread_cpu() - c, w.elapsed())
}

/// Under a second of CPU (and, as a guard against a hang, under ten of wall time).
fn assert_quick(cpu: Duration, wall: Duration) {
    assert!(
        cpu < Duration::from_secs(1) && wall < Duration::from_secs(10),
        "took {cpu:?} of CPU, {wall:?} of wall time"
    );
}

fn refused_quickly(text: &str, count: &str) {
    let (e, cpu, wall) = timed(|| parse(text).expect_err("refused"));
    assert_quick(cpu, wall);
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(
        e.0[0]
            .message
            .starts_with(&format!("the sweep expands to {count} runs (")),
        "{e}"
    );
}

fn huge_grid(axes: usize, values: usize) -> String {
    let keys = [
        "train.lr",
        "train.temperature",
        "train.weight_decay",
        "train.max_grad_norm",
        "train.warmup_steps",
        "train.batch_size",
        "train.max_len",
        "probe.every",
        "eval.every",
        "probe.size",
        "model.config.hidden_size",
        "model.config.num_hidden_layers",
        "model.config.intermediate_size",
        "model.config.max_position_embeddings",
        "model.config.hidden_dropout_prob",
        "model.config.attention_probs_dropout_prob",
        "data.max_examples",
        "eval.batch_size",
        "train.epochs",
        "probe.max_len",
    ];
    let mut s = format!("{HEAD}{BASE}[grid]\n");
    for k in keys.iter().take(axes) {
        let v: Vec<String> = (0..values)
            .map(|i| {
                if k.ends_with("dropout_prob") {
                    format!("{}", i as f64 / (values as f64 * 2.0))
                } else {
                    format!("{}", i + 2)
                }
            })
            .collect();
        s.push_str(&format!("\"{k}\" = [{}]\n", v.join(", ")));
    }
    s
}

#[test]
fn ten_axes_of_a_hundred_values_are_refused_with_the_count() {
    refused_quickly(&huge_grid(10, 100), "100000000000000000000");
}

#[test]
fn a_sweep_beyond_u128_says_more_than_ten_to_the_38() {
    refused_quickly(&huge_grid(20, 100), "more than 10^38");
}

#[test]
fn one_axis_of_two_hundred_thousand_values_is_refused_quickly() {
    refused_quickly(&huge_grid(1, 200_000), "200000");
    // … and a duplicate among them is found as quickly (the axis check is linear).
    let text = huge_grid(1, 200_000).replacen("[2, ", "[200001, ", 1);
    let (e, cpu, wall) = timed(|| parse(&text).expect_err("a duplicate"));
    assert_quick(cpu, wall);
    assert!(
        e.to_string().ends_with("[grid] lists 200001.0 twice"),
        "{e}"
    );
}

#[test]
fn two_hundred_thousand_seeds_are_refused_quickly() {
    let seeds: Vec<String> = (0..200_000).map(|i| i.to_string()).collect();
    let text = format!(
        "[sweep]\nname = \"fz\"\nseeds = [{}]\n{BASE}",
        seeds.join(", ")
    );
    refused_quickly(&text, "200000");
}

proptest! {
    #[test]
    fn any_oversized_grid_is_refused_in_under_a_second(axes in 3usize..=20, values in 47usize..200) {
        // 47^3 > 100,000: every case is over the limit.
        let text = huge_grid(axes, values);
        let (e, cpu, wall) = timed(|| parse(&text).expect_err("refused"));
        assert_quick(cpu, wall);
        prop_assert!(e.to_string().contains("more than the limit of 100000"));
    }
}
