use super::classifier::*;
use super::*;

/// numpy 2.4: `np.random.RandomState(1111)`, its first raw outputs and permutations.
#[test]
fn mt19937_is_numpys_legacy_generator() {
    let mut g = Mt19937::new(1111);
    let first: Vec<u32> = (0..8).map(|_| g.next_u32()).collect();
    assert_eq!(
        first,
        [
            410380700, 1846919479, 3972860645, 1097182545, 1475636620, 1134109346, 1333488308,
            3153186968
        ]
    );
    assert_eq!(
        Mt19937::new(1111).permutation(10),
        [9, 3, 8, 0, 6, 2, 4, 1, 5, 7]
    );
    assert_eq!(
        Mt19937::new(1111).permutation(20),
        [19, 18, 7, 10, 3, 1, 0, 9, 16, 13, 14, 11, 15, 6, 8, 4, 2, 12, 17, 5]
    );
    let mut g = Mt19937::new(1111);
    assert_eq!(
        g.permutation(3775)[..8],
        [1398, 2424, 913, 2953, 2580, 2026, 3524, 2600]
    );
    assert_eq!(
        g.permutation(3000)[..8],
        [1603, 2897, 1306, 430, 582, 348, 1307, 1024]
    );
}

/// scikit-learn 1.9: `StratifiedKFold(k, shuffle=True, random_state=1111).split(y)`.
#[test]
fn stratified_folds_are_scikit_learns() {
    let fold_of = |y: &[usize], k: usize| -> Vec<usize> {
        let folds = stratified_kfold(y, k, 1111).unwrap();
        let mut f = vec![usize::MAX; y.len()];
        for (i, (train, test)) in folds.iter().enumerate() {
            assert_eq!(train.len() + test.len(), y.len());
            assert!(train.windows(2).all(|w| w[0] < w[1]) && test.windows(2).all(|w| w[0] < w[1]));
            for &j in test {
                f[j] = i;
            }
        }
        f
    };
    let y = [0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 2, 2, 2, 2, 2, 1, 0, 0, 0];
    assert_eq!(
        fold_of(&y, 3),
        [2, 0, 1, 2, 0, 0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 0, 1, 1]
    );
    // Classes coded by first appearance (1 → 0, 0 → 1, 2 → 2).
    let y = [
        1, 1, 0, 0, 2, 1, 0, 2, 2, 2, 1, 0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 1,
    ];
    assert_eq!(
        fold_of(&y, 4),
        [3, 1, 0, 2, 2, 0, 3, 1, 3, 0, 1, 1, 0, 3, 0, 2, 1, 2, 3, 0, 1, 2]
    );
    assert!(stratified_kfold(&[0, 1, 0, 1], 3, 1111).is_err());
}

#[test]
fn python_and_numpy_rounding() {
    assert_eq!(pyround2(2.675), 2.67, "2.675 is 2.67499… in binary");
    assert_eq!(
        nround2(2.675),
        2.68,
        "numpy rounds 267.49999…+ scaled: rint(267.5) = 268"
    );
    assert_eq!(nround2(0.125), 0.12);
    // np.mean of ten values: eight partial sums, then the last two (numpy 2.4).
    let v = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
    assert_eq!(
        mean(&v),
        ((((0.1 + 0.2) + (0.3 + 0.4)) + ((0.5 + 0.6) + (0.7 + 0.8))) + 0.9 + 1.0) / 10.0
    );
    assert_eq!(mean(&[1.0, 2.0]), 1.5);
    assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
}

/// Two separable Gaussian blobs: every protocol scores them near 100, deterministically.
fn blobs(n: usize, dim: usize, seed: u32) -> (Vec<f32>, Vec<usize>) {
    let mut g = Mt19937::new(seed);
    let mut u = || (g.next_u32() as f64 + 0.5) / 4_294_967_296.0;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let l = i % 2;
        for j in 0..dim {
            // Box–Muller.
            let z = (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos();
            let centre = if j == 0 {
                if l == 1 {
                    2.0
                } else {
                    -2.0
                }
            } else {
                0.0
            };
            x.push((centre + z) as f32);
        }
        y.push(l);
    }
    (x, y)
}

#[test]
fn a_fit_learns_separable_data_and_is_deterministic() {
    let (x, y) = blobs(400, 8, 7);
    let rows = Rows { data: &x, dim: 8 };
    let idx: Vec<usize> = (0..400).collect();
    for mode in [Mode::Test, Mode::Fasttest] {
        let cfg = mode.fit_config(DEFAULT_SEED);
        let a = fit(rows, &idx, &y, Validation::Split(0.05), 2, 1e-4, &cfg);
        let b = fit(rows, &idx, &y, Validation::Split(0.05), 2, 1e-4, &cfg);
        assert_eq!(a, b);
        let other = fit(
            rows,
            &idx,
            &y,
            Validation::Split(0.05),
            2,
            1e-4,
            &mode.fit_config(7),
        );
        assert_ne!(
            a.0, other.0,
            "the seed draws the split, the batches and the initial weights"
        );
        assert!(a.1 > 0.9, "{mode:?}: dev accuracy {}", a.1);
        assert!(a.0.accuracy(rows, &idx, &y) > 0.9);
    }
}

#[test]
fn the_initialisation_is_uniform_within_the_fan_in_bound() {
    let m = Linear::init(384, 2, DEFAULT_SEED);
    let bound = 1.0 / (384f32).sqrt();
    assert!(m.w.iter().chain(&m.b).all(|v| v.abs() <= bound));
    assert_eq!(m.w.len(), 768);
    assert_eq!(Linear::init(384, 2, DEFAULT_SEED), m);
    // torch 2.11: torch.manual_seed(1111); nn.Linear(384, 2): weight[0, :4] and bias.
    let f = |v: f64| v as f32;
    assert_eq!(
        m.w[..4],
        [
            f(-0.004021669737994671),
            f(-0.04235785827040672),
            f(0.030715325847268105),
            f(-0.010494446381926537)
        ]
    );
    assert_eq!(m.b, [f(-0.04539627209305763), f(-0.008107458241283894)]);
    // torch.manual_seed(1111); nn.Linear(768, 2) and nn.Linear(1536, 6): the first weights, the
    // last, the first biases.
    for (d, c, first, last, bias) in [
        (
            768,
            2,
            [
                -0.0028437497094273567,
                -0.02995152585208416,
                0.021719014272093773,
            ],
            -0.01805553026497364,
            [-0.02524728886783123, -0.01843971014022827],
        ),
        (
            1536,
            6,
            [
                -0.0020108348689973354,
                -0.02117892913520336,
                0.015357662923634052,
            ],
            -0.024787895381450653,
            [0.005153000820428133, 0.005125832743942738],
        ),
    ] {
        let m = Linear::init(d, c, DEFAULT_SEED);
        assert_eq!(m.w[..3], first.map(f), "nn.Linear({d}, {c})");
        assert_eq!(*m.w.last().unwrap(), f(last));
        assert_eq!(m.b[..2], bias.map(f));
    }
}

#[test]
fn the_transfer_average_needs_all_seven() {
    let s = TransferScore {
        acc: 80.0,
        devacc: 80.0,
        f1: None,
        penalty: 1e-5,
        ndev: 1,
        ntest: 1,
    };
    let mut v: Vec<_> = TransferTask::ALL[..6].iter().map(|&t| (t, s)).collect();
    assert_eq!(average(&v), None);
    v.push((
        TransferTask::Mrpc,
        TransferScore {
            acc: 73.0,
            f1: Some(81.0),
            ..s
        },
    ));
    assert_eq!(average(&v), Some((6.0 * 80.0 + 73.0) / 7.0));
    let e = entries(&v);
    assert_eq!(
        e.last().unwrap(),
        &("transfer_avg".to_string(), (6.0 * 80.0 + 73.0) / 7.0)
    );
    assert!(e.contains(&("mrpc_f1".to_string(), 81.0)));
}

/// The shared data as SentEval reads it: the sizes, labels and sorted order of every task.
#[test]
fn the_shared_data_reads_as_senteval_reads_it() {
    let Some(root) = crate::eval::tests::data_root("the_shared_data_reads_as_senteval_reads_it")
    else {
        return;
    };
    let down = crate::eval::downstream_dir(&root).unwrap();
    let sizes = |t: TransferTask| -> Vec<(usize, usize)> {
        read_task(&down, t)
            .unwrap()
            .splits
            .iter()
            .map(|s| (s.labels.len(), s.labels.iter().filter(|&&l| l == 1).count()))
            .collect()
    };
    assert_eq!(sizes(TransferTask::Mr), [(10662, 5331)]);
    assert_eq!(sizes(TransferTask::Cr), [(3775, 2407)]);
    assert_eq!(sizes(TransferTask::Subj), [(10000, 5000)]);
    assert_eq!(sizes(TransferTask::Mpqa), [(10606, 3312)]);
    assert_eq!(
        sizes(TransferTask::Sst2),
        [(67349, 37569), (872, 444), (1821, 909)]
    );
    assert_eq!(sizes(TransferTask::Trec), [(5452, 1162), (500, 138)]);
    assert_eq!(sizes(TransferTask::Mrpc), [(4076, 2753), (1725, 1147)]);
    let cr = read_task(&down, TransferTask::Cr).unwrap();
    let s = &cr.splits[0];
    assert_eq!(
        &s.a[..8],
        ["", "", "", "", "*", "good looks", "enjoy .", "flawless ."]
    );
    assert_eq!(&s.labels[..8], [0, 0, 1, 1, 0, 1, 1, 1]);
    let trec = read_task(&down, TransferTask::Trec).unwrap();
    assert_eq!(
        &trec.splits[0].a[..5],
        [
            "Define cosmology .",
            "How was Lawrence",
            "Define Spumante .",
            "Who shoplifts ?",
            "What is BPH ?"
        ]
    );
    assert_eq!(&trec.splits[0].labels[..5], [1, 1, 1, 3, 0]);
    let mrpc = read_task(&down, TransferTask::Mrpc).unwrap();
    assert_eq!(
        mrpc.splits[0].a[0],
        "Moore had no immediate comment Tuesday."
    );
    assert_eq!(mrpc.splits[0].labels[0], 1);
    let sst = read_task(&down, TransferTask::Sst2).unwrap();
    assert_eq!(
        &sst.splits[2].a[..3],
        ["ridiculous .", "moot point .", "extremely confusing ."]
    );
    // The folds SentEval's cross-validation draws on the sorted labels.
    let mr = read_task(&down, TransferTask::Mr).unwrap();
    let first_test =
        |y: &[usize], k: usize| stratified_kfold(y, k, 1111).unwrap()[0].1[..5].to_vec();
    assert_eq!(first_test(&mr.splits[0].labels, 10), [4, 11, 12, 13, 15]);
    assert_eq!(first_test(&mr.splits[0].labels, 5), [0, 1, 4, 6, 10]);
    assert_eq!(first_test(&trec.splits[0].labels, 10), [17, 32, 48, 49, 54]);
    assert_eq!(first_test(&mrpc.splits[0].labels, 10), [15, 21, 39, 46, 50]);
    let cr_y = &cr.splits[0].labels;
    assert_eq!(first_test(cr_y, 10), [9, 14, 16, 19, 30]);
    assert_eq!(first_test(cr_y, 5), [9, 14, 16, 19, 30]);
    let subj = read_task(&down, TransferTask::Subj).unwrap();
    assert_eq!(first_test(&subj.splits[0].labels, 10), [6, 19, 21, 23, 36]);
    assert_eq!(first_test(&subj.splits[0].labels, 5), [5, 6, 10, 19, 21]);
    let mpqa = read_task(&down, TransferTask::Mpqa).unwrap();
    assert_eq!(first_test(&mpqa.splits[0].labels, 10), [0, 1, 16, 36, 53]);
    assert_eq!(first_test(&mpqa.splits[0].labels, 5), [0, 1, 4, 7, 16]);
    // Blank lines are empty sentences (3 in MPQA, 4 in CR), sorted first.
    assert_eq!(mpqa.splits[0].a.iter().filter(|s| s.is_empty()).count(), 3);
    assert!(mpqa.splits[0].a[..3].iter().all(|s| s.is_empty()));
    assert_eq!(cr.splits[0].a.iter().filter(|s| s.is_empty()).count(), 4);
    // MRPC's first sorted pair: |A| = 6 words, |B| = 8.
    assert_eq!(mrpc.splits[0].b.as_ref().unwrap()[0].split(' ').count(), 8);
    // The outer folds' sizes (K = 10).
    let sizes: Vec<usize> = stratified_kfold(&mr.splits[0].labels, 10, 1111)
        .unwrap()
        .iter()
        .map(|f| f.1.len())
        .collect();
    assert_eq!(&sizes[..3], [1067, 1067, 1066]);
}

#[test]
fn a_missing_task_folder_names_the_path_and_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let e = read_task(dir.path(), TransferTask::Sst2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("transfer task sst2") && e.contains("SST/binary"),
        "{e}"
    );
    std::fs::create_dir_all(dir.path().join("MR")).unwrap();
    let e = format!("{:#}", read_task(dir.path(), TransferTask::Mr).unwrap_err());
    assert!(
        e.contains("rt-polarity.pos") && e.contains("transfer task mr"),
        "{e}"
    );
}

/// scripts/transfer_fixture.py: synthetic embeddings for each protocol and the scores the Python
/// reference (scripts/parity_transfer.py: numpy, scikit-learn's folds, torch's initialisation) gives
/// them in both modes. simsweep's must be the same.
#[test]
fn every_protocol_scores_the_fixture_as_the_python_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/transfer_reference.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dim = v["dim"].as_u64().unwrap() as usize;
    for (case, task) in [
        ("inner_kfold", TransferTask::Mr),
        ("split", TransferTask::Sst2),
        ("kfold_test", TransferTask::Trec),
        ("kfold_test_f1", TransferTask::Mrpc),
    ] {
        let c = &v["cases"][case];
        let splits = c["splits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let x: Vec<f32> = s["x"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                let y: Vec<usize> = s["y"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                (x, y)
            })
            .collect();
        let e = Embedded { dim, splits };
        for mode in [Mode::Test, Mode::Fasttest] {
            let want = &c["scores"][mode.name()];
            let got = score(task, &e, mode, DEFAULT_SEED).unwrap();
            let at = format!("{case} ({task}), {}", mode.name());
            assert_eq!(got.acc, want["acc"].as_f64().unwrap(), "{at}: accuracy");
            assert_eq!(
                got.devacc,
                want["devacc"].as_f64().unwrap(),
                "{at}: validation accuracy"
            );
            assert_eq!(got.f1, want.get("f1").and_then(|f| f.as_f64()), "{at}: F1");
        }
    }
}

#[test]
fn embeddings_with_nan_fail_the_task_naming_the_sentence() {
    let files = TaskFiles {
        task: TransferTask::Trec,
        splits: vec![Split {
            name: "train",
            a: vec!["What is BPH ?".into(), "Who shoplifts ?".into()],
            b: None,
            labels: vec![0, 3],
        }],
        files: Vec::new(),
    };
    let mut embed = |s: &[String]| -> anyhow::Result<tch::Tensor> {
        let t = tch::Tensor::ones([s.len() as i64, 4], (tch::Kind::Float, tch::Device::Cpu));
        Ok(if s.len() == 2 {
            t.index_fill(0, &tch::Tensor::from_slice(&[1i64]), f64::NAN)
        } else {
            t
        })
    };
    let e = embed_task(TransferTask::Trec, &files, 128, &mut embed)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("trec") && e.contains("NaN") && e.contains("Who shoplifts ?"),
        "{e}"
    );
}
