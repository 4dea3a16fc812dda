use super::*;
use serde_json::Value;
use std::fs;

/// The data directory (env `SIMSWEEP_DATA_DIR`, set by `scripts/test`), or `None` with a skip notice.
pub(crate) fn data_root(test: &str) -> Option<PathBuf> {
    match std::env::var_os("SIMSWEEP_DATA_DIR") {
        Some(d) if downstream_dir(Path::new(&d)).is_ok() => Some(PathBuf::from(d)),
        Some(d) => {
            eprintln!(
                "SKIP {test}: no SentEval data under SIMSWEEP_DATA_DIR={}",
                Path::new(&d).display()
            );
            None
        }
        None => {
            eprintln!("SKIP {test}: SIMSWEEP_DATA_DIR is not set (scripts/test sets it)");
            None
        }
    }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn err_of<T: std::fmt::Debug>(r: Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

/// A row-per-sentence f64 tensor.
fn rows(v: &[Vec<f64>]) -> Tensor {
    let h = v.first().map_or(0, |r| r.len()) as i64;
    let flat: Vec<f64> = v.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).reshape([v.len() as i64, h])
}

fn fixture_path() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/fixtures/eval_stsb_dev_200.json")
}

#[test]
fn task_names_round_trip_and_match_the_config_schema() {
    let mut names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
    names.extend(transfer::TransferTask::ALL.iter().map(|t| t.name()));
    names.extend(["sts", "transfer", "full"]);
    assert_eq!(names, crate::spec::schema::EVAL_TASKS);
    // Every schema name parses as `eval --tasks` parses it.
    for n in crate::spec::schema::EVAL_TASKS {
        parse_tasks(&[n]).unwrap();
    }
    let (s, t) = parse_tasks(&["full", "mr", "sts12"]).unwrap();
    assert_eq!((s.len(), t.len()), (8, 7));
    let e = parse_tasks(&["mrr"]).unwrap_err().to_string();
    assert!(
        e.contains("\"mrr\"") && e.contains("transfer") && e.contains("mrpc"),
        "{e}"
    );
    for t in Task::ALL {
        assert_eq!(t.name().parse::<Task>().unwrap(), t);
        assert_eq!(t.to_string(), t.name());
    }
    let e = err_of("sts17".parse::<Task>());
    assert!(
        e.contains("unknown STS task \"sts17\"") && e.contains("sickr_test"),
        "{e}"
    );
    assert_eq!(
        Task::parse_list(&["stsb_dev", "sts12"]).unwrap(),
        vec![Task::StsbDev, Task::Sts12]
    );
    assert!(Task::AVG.iter().all(|t| *t != Task::StsbDev));
}

#[test]
fn sts_reader_concatenates_subsets_drops_unscored_and_skips_absent_inputs() {
    let d = tempfile::tempdir().unwrap();
    let y = "SentEval/data/downstream/STS/STS12-en-test";
    // SentEval's order is MSRpar, MSRvid, SMTeuroparl, …: MSRvid comes second although written first.
    write(d.path(), &format!("{y}/STS.input.MSRvid.txt"), "v1\tv2\n");
    write(d.path(), &format!("{y}/STS.gs.MSRvid.txt"), "1.5\n");
    write(
        d.path(),
        &format!("{y}/STS.input.MSRpar.txt"),
        "A  man\u{a0}runs .\tA man is running.\r\nunscored\tpair\n x \t y\u{1f}z \n",
    );
    write(d.path(), &format!("{y}/STS.gs.MSRpar.txt"), "4.2\n\n 3 \n");
    // A gold file without its input is ignored, as SentEval never opens it.
    write(d.path(), &format!("{y}/STS.gs.SMTeuroparl.txt"), "1\n");
    let data = StsData::load(d.path(), &[Task::Sts12]).unwrap();
    let t = data.get(Task::Sts12).unwrap();
    let pairs: Vec<(&str, &str, f64)> = t.pairs().map(|p| (p.a, p.b, p.gold)).collect();
    assert_eq!(
        pairs,
        vec![
            ("A man runs .", "A man is running.", 4.2),
            ("x", "y z", 3.0),
            ("v1", "v2", 1.5)
        ]
    );
    assert_eq!(
        t.subsets(),
        &[
            Subset {
                name: "MSRpar".into(),
                pairs: 2,
                unscored: 1
            },
            Subset {
                name: "MSRvid".into(),
                pairs: 1,
                unscored: 0
            }
        ]
    );
    assert_eq!(
        t.skipped_subsets(),
        &["SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"]
    );
    assert_eq!(t.gold(), &[4.2, 3.0, 1.5]);
    // Distinct sentences, shortest first then bytewise.
    assert_eq!(
        t.sentences(),
        &["x", "v1", "v2", "y z", "A man runs .", "A man is running."]
    );
    assert_eq!(t.files().len(), 4);
}

#[test]
fn stsb_and_sick_readers_take_senteval_columns() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("SentEval/data");
    write(
        &root,
        "downstream/STS/STSBenchmark/sts-dev.csv",
        "g\tf\t2012\t0001\t5.000\tA  dog .\tThe dog .\textra\tcolumns\r\ng\tf\t2012\t0002\t0.5\ta cat\ta  Cat\n",
    );
    write(
        &root,
        "downstream/SICK/SICK_test_annotated.txt",
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n1\tOne  two\tthree\t3.6\tNEUTRAL\r\n2\tfour\tfive\t1\tCONTRADICTION\r\n",
    );
    // `root` is SentEval's own `data` folder here: the `downstream` layout is accepted too.
    let data = StsData::load(&root, &[Task::StsbDev, Task::SickrTest]).unwrap();
    let stsb: Vec<_> = data
        .get(Task::StsbDev)
        .unwrap()
        .pairs()
        .map(|p| (p.a.to_string(), p.b.to_string(), p.gold))
        .collect();
    assert_eq!(
        stsb,
        vec![
            ("A dog .".into(), "The dog .".into(), 5.0),
            ("a cat".into(), "a Cat".into(), 0.5)
        ]
    );
    let sick = data.get(Task::SickrTest).unwrap();
    assert_eq!(sick.len(), 2);
    assert_eq!(sick.pairs().next().unwrap().a, "One two");
    assert_eq!(sick.gold(), &[3.6, 1.0]);
    assert!(data.get(Task::StsbTest).is_none());
}

#[test]
fn reader_errors_name_the_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let down = d.path().join("SentEval/data/downstream");
    let y = "STS/STS12-en-test";
    let load = |t: Task| StsData::load(d.path(), &[t]).map(|_| ());

    write(
        &down,
        &format!("{y}/STS.input.MSRpar.txt"),
        "a\tb\nno tab here\n",
    );
    write(&down, &format!("{y}/STS.gs.MSRpar.txt"), "1\n2\n");
    let e = err_of(load(Task::Sts12));
    assert!(
        e.contains("loading STS task sts12")
            && e.contains("STS.input.MSRpar.txt:2: expected two tab-separated sentences, found 1"),
        "{e}"
    );

    write(
        &down,
        &format!("{y}/STS.input.MSRpar.txt"),
        "a\tb\nc\td\ne\tf\n",
    );
    write(&down, &format!("{y}/STS.gs.MSRpar.txt"), "1\n2\nabc\n");
    let e = err_of(load(Task::Sts12));
    assert!(
        e.contains("STS.gs.MSRpar.txt:3: score \"abc\" is not a finite number"),
        "{e}"
    );

    write(&down, &format!("{y}/STS.gs.MSRpar.txt"), "1\n2\n");
    let e = err_of(load(Task::Sts12));
    assert!(e.contains("has 3 lines but") && e.contains("has 2"), "{e}");

    fs::remove_file(down.join(format!("{y}/STS.gs.MSRpar.txt"))).unwrap();
    let e = err_of(load(Task::Sts12));
    assert!(
        e.contains("STS.gs.MSRpar.txt: gold-score file missing"),
        "{e}"
    );

    let e = err_of(load(Task::Sts13));
    assert!(e.contains("STS13-en-test: sts13 folder not found"), "{e}");

    fs::write(
        down.join(format!("{y}/STS.input.MSRpar.txt")),
        b"a\tb\xff\n",
    )
    .unwrap();
    fs::write(down.join(format!("{y}/STS.gs.MSRpar.txt")), "1\n").unwrap();
    let e = err_of(load(Task::Sts12));
    assert!(e.contains("STS.input.MSRpar.txt:1: not valid UTF-8"), "{e}");

    let e = err_of(load(Task::StsbTest));
    assert!(
        e.contains("STSBenchmark/sts-test.csv: file not found"),
        "{e}"
    );

    write(
        &down,
        "STS/STSBenchmark/sts-dev.csv",
        "g\tf\t2012\t1\t5.0\ta\tb\ng\tf\t2012\t2\t4.0\tonly one sentence\n",
    );
    let e = err_of(load(Task::StsbDev));
    assert!(
        e.contains("sts-dev.csv:2: expected at least 7 tab-separated columns, found 6"),
        "{e}"
    );
    write(
        &down,
        "STS/STSBenchmark/sts-dev.csv",
        "g\tf\t2012\t1\t5.0\ta\tb\ng\tf\t2012\t2\tfive\tc\td\n",
    );
    let e = err_of(load(Task::StsbDev));
    assert!(
        e.contains("sts-dev.csv:2: score \"five\" is not a finite number"),
        "{e}"
    );
    // The header line counts: errors give the physical line number.
    write(
        &down,
        "SICK/SICK_test_annotated.txt",
        "h\ta\tb\tscore\n1\tx\ty\t3\n2\tx\ty\t\n",
    );
    let e = err_of(load(Task::SickrTest));
    assert!(
        e.contains("SICK_test_annotated.txt:3: expected at least 4 tab-separated columns, found 3"),
        "{e}"
    );

    let empty = tempfile::tempdir().unwrap();
    let e = err_of(StsData::load(empty.path(), &[Task::StsbDev]));
    assert!(e.contains("no SentEval data found"), "{e}");
}

#[test]
fn evaluate_embeds_each_distinct_sentence_once_in_small_batches() {
    // Sentence "yK" sits at angle θ_K from "x" (always [1, 0]); gold decreases with θ, so the cosine
    // ranks pairs exactly as gold does.
    let angles: [f64; 5] = [0.1, 0.5, 0.9, 1.3, 2.0];
    let mut pairs: Vec<(String, String, f64)> = angles
        .iter()
        .enumerate()
        .map(|(k, _)| ("x".to_string(), format!("y{k}"), 5.0 - k as f64))
        .collect();
    pairs.push(("y0".into(), "x".into(), 5.0)); // repeats, both ways round
    let data = TaskData::from_pairs(Task::StsbDev, pairs).unwrap();
    assert_eq!(data.sentences().len(), 6);

    let calls: std::cell::RefCell<Vec<Vec<String>>> = Default::default();
    let mut embed = |s: &[String]| -> Result<Tensor> {
        calls.borrow_mut().push(s.to_vec());
        Ok(rows(
            &s.iter()
                .map(|t| match t.strip_prefix('y') {
                    Some(k) => {
                        let a = angles[k.parse::<usize>().unwrap()];
                        vec![a.cos(), a.sin()]
                    }
                    None => vec![1.0, 0.0],
                })
                .collect::<Vec<_>>(),
        ))
    };
    let s = data.evaluate(4, &mut embed).unwrap();
    assert!((s.spearman - 100.0).abs() < 1e-9, "{s:?}");
    assert_eq!((s.pairs, s.undefined, s.degenerate_pairs), (6, false, 0));
    let expected_pearson = pearson(
        &[
            0.1f64.cos(),
            0.5f64.cos(),
            0.9f64.cos(),
            1.3f64.cos(),
            2.0f64.cos(),
            0.1f64.cos(),
        ],
        &[5.0, 4.0, 3.0, 2.0, 1.0, 5.0],
    )
    .unwrap();
    assert!((s.pearson - 100.0 * expected_pearson).abs() < 1e-9);
    let first = calls.take();
    assert_eq!(first, [vec!["x", "y0", "y1", "y2"], vec!["y3", "y4"]]);

    // Same data, reversed gold: −100; the call sequence is identical (deterministic order).
    let rev = TaskData::from_pairs(
        Task::StsbDev,
        data.pairs()
            .map(|p| (p.a.to_string(), p.b.to_string(), -p.gold))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let s = rev.evaluate(4, &mut embed).unwrap();
    assert!((s.spearman + 100.0).abs() < 1e-9, "{s:?}");
    assert_eq!(calls.take(), first);
}

#[test]
fn embedding_output_is_validated() {
    let data = TaskData::from_pairs(
        Task::Sts12,
        [("a", "b", 1.0), ("c", "d", 2.0), ("e", "f", 3.0)]
            .map(|(a, b, g)| (a.to_string(), b.to_string(), g)),
    )
    .unwrap();
    let n = |s: &[String]| s.len() as i64;
    let cases: Vec<(Box<Embed<'static>>, &str)> = vec![
        (
            Box::new(move |s: &[String]| {
                Ok(Tensor::zeros([n(s) + 1, 4], (Kind::Float, Device::Cpu)))
            }),
            "expected [4, H]",
        ),
        (
            Box::new(move |s: &[String]| Ok(Tensor::zeros([n(s)], (Kind::Float, Device::Cpu)))),
            "have shape [4]",
        ),
        (
            Box::new(move |s: &[String]| Ok(Tensor::zeros([n(s), 0], (Kind::Float, Device::Cpu)))),
            "expected [4, H]",
        ),
        (
            Box::new(move |s: &[String]| Ok(Tensor::zeros([n(s), 3], (Kind::Int64, Device::Cpu)))),
            "expected a floating dtype",
        ),
        (
            Box::new(move |s: &[String]| {
                let h = if s.len() == 4 { 3 } else { 5 };
                Ok(Tensor::ones([n(s), h], (Kind::Float, Device::Cpu)))
            }),
            "have shape [2, 5]; expected [2, 3]",
        ),
        (
            Box::new(|_: &[String]| Err(anyhow::anyhow!("the model fell over"))),
            "the model fell over",
        ),
    ];
    for (mut embed, want) in cases {
        let e = err_of(data.evaluate(4, &mut *embed));
        assert!(
            e.contains(want) && e.contains("embedding the sentences of sts12"),
            "want {want:?} in: {e}"
        );
    }
    let e = err_of(data.evaluate(0, &mut |_| unreachable!()));
    assert!(e.contains("batch size must be at least 1"), "{e}");

    // Half precision, bfloat16 and a non-contiguous view are all fine.
    for kind in [Kind::Half, Kind::BFloat16, Kind::Double] {
        let s = data
            .evaluate(4, &mut |s: &[String]| {
                let v: Vec<Vec<f64>> = s
                    .iter()
                    .map(|t| {
                        let k = (t.as_bytes()[0] - b'a') as f64;
                        vec![
                            1.0,
                            if t == "b" || t == "d" || t == "f" {
                                k
                            } else {
                                0.0
                            },
                        ]
                    })
                    .collect();
                Ok(rows(&v)
                    .to_kind(kind)
                    .transpose(0, 1)
                    .contiguous()
                    .transpose(0, 1))
            })
            .unwrap();
        // cos(a,b) with b = [1, k]: decreasing in k, gold increasing: −100.
        assert!((s.spearman + 100.0).abs() < 1e-9, "{kind:?}: {s:?}");
    }
}

#[test]
fn degenerate_embeddings_are_scored_like_senteval_and_flagged() {
    let pairs = [
        ("a", "b", 1.0),
        ("c", "d", 2.0),
        ("e", "f", 3.0),
        ("g", "h", 4.0),
    ]
    .map(|(a, b, g)| (a.to_string(), b.to_string(), g));
    let data = TaskData::from_pairs(Task::StsbDev, pairs).unwrap();
    // All NaN: every cosine 0 (nan_to_num), correlation undefined → 0 and flagged.
    let s = data
        .evaluate(8, &mut |s: &[String]| {
            Ok(Tensor::full(
                [s.len() as i64, 3],
                f64::NAN,
                (Kind::Float, Device::Cpu),
            ))
        })
        .unwrap();
    assert_eq!(
        (s.spearman, s.pearson, s.undefined, s.degenerate_pairs),
        (0.0, 0.0, true, 4)
    );
    // One zero vector: that pair's cosine is 0; the rest rank normally.
    let s = data
        .evaluate(8, &mut |s: &[String]| {
            let v: Vec<Vec<f64>> = s
                .iter()
                .map(|t| match t.as_str() {
                    "b" => vec![0.0, 0.0],
                    "d" => vec![1.0, 1.0],
                    "f" => vec![1.0, 0.5],
                    "h" => vec![1.0, 0.1],
                    _ => vec![1.0, 0.0],
                })
                .collect();
            Ok(rows(&v))
        })
        .unwrap();
    assert_eq!((s.undefined, s.degenerate_pairs), (false, 1));
    assert!((s.spearman - 100.0).abs() < 1e-9, "{s:?}");
}

#[test]
fn scores_serialise_in_task_order_with_avg_only_when_complete() {
    let ts = |v: f64| TaskScore {
        spearman: v,
        pearson: 0.0,
        pairs: 10,
        undefined: false,
        degenerate_pairs: 0,
    };
    let mut s = Scores::default();
    s.tasks.insert(Task::SickrTest, ts(70.0));
    s.tasks.insert(Task::StsbDev, ts(80.5));
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        r#"{"stsb_dev":80.5,"sickr_test":70.0}"#
    );
    assert_eq!(s.avg(), None);
    let mut rest = Scores::default();
    for (i, t) in [
        Task::Sts12,
        Task::Sts13,
        Task::Sts14,
        Task::Sts15,
        Task::Sts16,
        Task::StsbTest,
    ]
    .into_iter()
    .enumerate()
    {
        rest.tasks.insert(t, ts(60.0 + i as f64));
    }
    s.merge(rest);
    // (60+61+62+63+64+65+70)/7; stsb_dev is not part of avg.
    let avg = (60.0 + 61.0 + 62.0 + 63.0 + 64.0 + 65.0 + 70.0) / 7.0;
    assert_eq!(s.avg(), Some(avg));
    // The JSON text keeps Task::ALL order, avg last (serde_json's Value would sort the keys).
    let text = serde_json::to_string(&s).unwrap();
    let order = [
        "sts12",
        "sts13",
        "sts14",
        "sts15",
        "sts16",
        "stsb_dev",
        "stsb_test",
        "sickr_test",
        "avg",
    ];
    let pos: Vec<usize> = order
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {text}"))
        })
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 9);
    assert_eq!(v["avg"].as_f64(), Some(avg));
    assert_eq!(s.get(Task::Sts13), Some(61.0));
    assert_eq!(s.entries().last(), Some(&("avg", avg)));
}

#[test]
fn committed_fixture_matches_the_python_reference() {
    let text = fs::read_to_string(fixture_path()).expect("committed fixture");
    let fx: Value = serde_json::from_str(&text).unwrap();
    let scale = fx["scale"].as_f64().unwrap();
    let pairs: Vec<(String, String, f64)> = fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
                p[2].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pairs.len(), 200);
    // Integers / scale: exactly the f64 values Python computed with.
    let vec_of = |s: &str| -> Vec<f64> {
        fx["embeddings"][s]
            .as_array()
            .unwrap_or_else(|| panic!("no embedding for {s:?}"))
            .iter()
            .map(|x| x.as_i64().unwrap() as f64 / scale)
            .collect()
    };
    let py_cos: Vec<f64> = fx["cosines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let gold: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    // 1. cosine, pair by pair.
    for (p, &c) in pairs.iter().zip(&py_cos) {
        let r = cosine(&vec_of(&p.0), &vec_of(&p.1));
        assert!((r - c).abs() < 1e-12, "{p:?}: {r} vs python {c}");
    }
    // 2. Spearman / Pearson alone, on Python's own cosines.
    let py_s = fx["spearman"].as_f64().unwrap();
    let py_p = fx["pearson"].as_f64().unwrap();
    assert!((spearman(&py_cos, &gold).unwrap() * 100.0 - py_s).abs() < 1e-9);
    assert!((pearson(&py_cos, &gold).unwrap() * 100.0 - py_p).abs() < 1e-9);
    // 3. End to end through `evaluate`.
    let data = TaskData::from_pairs(Task::StsbDev, pairs.clone()).unwrap();
    let mut embed = |s: &[String]| -> Result<Tensor> {
        Ok(rows(&s.iter().map(|t| vec_of(t)).collect::<Vec<_>>()))
    };
    let s = data.evaluate(64, &mut embed).unwrap();
    assert!(
        (s.spearman - py_s).abs() < 1e-6,
        "rust {} vs python {py_s}",
        s.spearman
    );
    assert!((s.pearson - py_p).abs() < 1e-6);
    // 4. With the data at hand, Python's reader and ours agree on these pairs.
    if let Some(root) = data_root("committed_fixture_matches_the_python_reference (reader part)") {
        let ours = StsData::load(&root, &[Task::StsbDev]).unwrap();
        let ours: Vec<(String, String, f64)> = ours
            .get(Task::StsbDev)
            .unwrap()
            .pairs()
            .take(200)
            .map(|p| (p.a.to_string(), p.b.to_string(), p.gold))
            .collect();
        assert_eq!(ours, pairs);
    }
}

/// With env `SIMSWEEP_EVAL_FIXTURE` pointing at a dump of `scripts/parity_eval.py
/// --dump-embeddings`, the Rust score of the dumped task from the dumped vectors equals Python's.
#[test]
fn python_dump_parity() {
    let Some(path) = std::env::var_os("SIMSWEEP_EVAL_FIXTURE") else {
        eprintln!(
            "SKIP python_dump_parity: set SIMSWEEP_EVAL_FIXTURE to a file written by \
             `scripts/parity_eval.py --dump-embeddings FILE`"
        );
        return;
    };
    let Some(root) = data_root("python_dump_parity") else {
        return;
    };
    let dump: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let task: Task = dump["task"].as_str().unwrap().parse().unwrap();
    let emb = dump["embeddings"].as_object().unwrap();
    let data = StsData::load(&root, &[task]).unwrap();
    let td = data.get(task).unwrap();
    assert_eq!(td.len() as u64, dump["pairs"].as_u64().unwrap());
    assert_eq!(td.sentences().len(), emb.len(), "distinct sentences differ");
    let mut embed = |s: &[String]| -> Result<Tensor> {
        let mut flat: Vec<f32> = Vec::new();
        for t in s {
            let v = emb
                .get(t)
                .with_context(|| format!("sentence not in the Python dump: {t:?}"))?;
            // Python wrote float32 values; f64 → f32 recovers them exactly.
            flat.extend(
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32),
            );
        }
        let h = flat.len() as i64 / s.len() as i64;
        Ok(Tensor::from_slice(&flat).reshape([s.len() as i64, h]))
    };
    let s = data.evaluate(&[task], 128, &mut embed).unwrap();
    let ts = s.tasks[&task];
    let (py_s, py_p) = (
        dump["spearman"].as_f64().unwrap(),
        dump["pearson"].as_f64().unwrap(),
    );
    eprintln!("{task}: rust {} python {py_s}", ts.spearman);
    assert!(
        (ts.spearman - py_s).abs() < 1e-6,
        "rust {} vs python {py_s}",
        ts.spearman
    );
    assert!(
        (ts.pearson - py_p).abs() < 1e-6,
        "rust {} vs python {py_p}",
        ts.pearson
    );
}

/// With env `SIMSWEEP_EVAL_PAIRS` pointing at a dump of `scripts/parity_eval.py --dump-pairs`, our
/// reader yields exactly the pairs (sentences, gold, order) that the Python reader does.
#[test]
fn python_reader_parity() {
    let Some(path) = std::env::var_os("SIMSWEEP_EVAL_PAIRS") else {
        eprintln!(
            "SKIP python_reader_parity: set SIMSWEEP_EVAL_PAIRS to a file written by \
             `scripts/parity_eval.py --dump-pairs FILE`"
        );
        return;
    };
    let Some(root) = data_root("python_reader_parity") else {
        return;
    };
    let dump: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let dump = dump.as_object().unwrap();
    assert!(!dump.is_empty());
    for (name, pairs) in dump {
        let task: Task = name.parse().unwrap();
        let data = StsData::load(&root, &[task]).unwrap();
        let ours: Vec<(&str, &str, f64)> = data
            .get(task)
            .unwrap()
            .pairs()
            .map(|p| (p.a, p.b, p.gold))
            .collect();
        let theirs: Vec<(&str, &str, f64)> = pairs
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap(),
                    p[1].as_str().unwrap(),
                    p[2].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{task}");
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(o, t, "{task} pair {i}");
        }
        eprintln!("{task}: {} pairs identical", ours.len());
    }
}

/// Row counts as `shared/data/README.md` lists them.
#[test]
fn real_data_row_counts_match_the_readme() {
    let Some(root) = data_root("real_data_row_counts_match_the_readme") else {
        return;
    };
    let data = StsData::load(&root, &Task::ALL).unwrap();
    let counts: Vec<(Task, usize)> = Task::ALL
        .iter()
        .map(|&t| (t, data.get(t).unwrap().len()))
        .collect();
    assert_eq!(
        counts,
        vec![
            (Task::Sts12, 3108),
            (Task::Sts13, 1500),
            (Task::Sts14, 3750),
            (Task::Sts15, 3000),
            (Task::Sts16, 1186),
            (Task::StsbDev, 1500),
            (Task::StsbTest, 1379),
            (Task::SickrTest, 4927),
        ]
    );
    for t in &Task::ALL[..5] {
        let d = data.get(*t).unwrap();
        let (_, names) = t.sts_year().unwrap();
        let read: Vec<&str> = d.subsets().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(read, *names, "{t}");
        assert!(d.skipped_subsets().is_empty(), "{t}");
        assert_eq!(d.subsets().iter().map(|s| s.pairs).sum::<usize>(), d.len());
    }
    // STS15 and STS16 ship unscored lines; STS12–14 do not.
    let unscored = |t: Task| -> usize {
        data.get(t)
            .unwrap()
            .subsets()
            .iter()
            .map(|s| s.unscored)
            .sum()
    };
    assert_eq!(unscored(Task::Sts15), 8500 - 3000);
    assert_eq!(unscored(Task::Sts12), 0);
    let first = data.get(Task::SickrTest).unwrap().pairs().next().unwrap();
    assert_eq!(
        (first.a, first.gold),
        (
            "There is no boy playing outdoors and there is no man smiling",
            3.3
        )
    );
}

/// The whole path on the real files with a cheap bag-of-words embedder: every task scores, word
/// overlap correlates with gold, `avg` appears, and repeated evaluation is identical.
#[test]
fn real_data_bag_of_words_end_to_end() {
    let Some(root) = data_root("real_data_bag_of_words_end_to_end") else {
        return;
    };
    let data = StsData::load(&root, &Task::ALL).unwrap();
    const H: usize = 512;
    let embedded = std::cell::Cell::new(0usize);
    let mut embed = |s: &[String]| -> Result<Tensor> {
        embedded.set(embedded.get() + s.len());
        let mut flat = vec![0f32; s.len() * H];
        for (i, t) in s.iter().enumerate() {
            for w in t.split(' ') {
                let mut h: u64 = 0xcbf29ce484222325;
                for b in w.to_lowercase().bytes() {
                    h = (h ^ b as u64).wrapping_mul(0x100000001b3);
                }
                flat[i * H + (h % H as u64) as usize] += 1.0;
            }
        }
        Ok(Tensor::from_slice(&flat).reshape([s.len() as i64, H as i64]))
    };
    let a = data.evaluate(&Task::ALL, 256, &mut embed).unwrap();
    let distinct: usize = Task::ALL
        .iter()
        .map(|&t| data.get(t).unwrap().sentences().len())
        .sum();
    assert_eq!(embedded.get(), distinct);
    for (t, s) in &a.tasks {
        eprintln!("{t}: {:.2}", s.spearman);
        assert!(
            !s.undefined && s.spearman > 20.0 && s.spearman < 90.0,
            "{t}: {s:?}"
        );
    }
    assert!(a.avg().is_some());
    let b = data
        .evaluate(&[Task::StsbDev, Task::StsbDev], 7, &mut embed)
        .unwrap();
    assert_eq!(b.tasks.len(), 1);
    assert!((b.get(Task::StsbDev).unwrap() - a.get(Task::StsbDev).unwrap()).abs() < 1e-9);
    let e = err_of(StsData::default().evaluate(&[Task::Sts12], 8, &mut embed));
    assert!(e.contains("STS task sts12 was not loaded"), "{e}");
}
