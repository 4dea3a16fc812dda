//! SentEval's transfer tasks with the protocol of SimCSE's evaluation (docs/cli.md, `simsweep eval`;
//! SimCSE's Appendix E): MR, CR, SUBJ, MPQA (nested stratified k-fold), SST-2
//! (train / dev / test), TREC (k-fold on train, then test), MRPC (features `[|u − v|, u ∗ v]`,
//! k-fold on train, accuracy and F1 on test), a logistic regression on frozen embeddings
//! ([`classifier`]), in SimCSE's two modes `test` and `fasttest`.
//!
//! Each task's data are read as SentEval reads them (its encodings, its word split, its sort by
//! length then label, which also fixes the folds) and embedded once, in SentEval's order and
//! batches; the words of a sentence are joined by one space before the model's tokenizer.
//! Scores are accuracy × 100 rounded as SentEval rounds them.

pub mod bench;
pub mod classifier;
mod read;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use classifier::{fit, stratified_kfold, FitConfig, Optim, Rows, Validation};
pub use read::{read_task, Split, TaskFiles};

use super::Embed;

/// A SentEval transfer task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransferTask {
    Mr,
    Cr,
    Subj,
    Mpqa,
    Sst2,
    Trec,
    Mrpc,
}

impl TransferTask {
    /// The seven tasks, in SimCSE's column order.
    pub const ALL: [TransferTask; 7] = [
        TransferTask::Mr,
        TransferTask::Cr,
        TransferTask::Subj,
        TransferTask::Mpqa,
        TransferTask::Sst2,
        TransferTask::Trec,
        TransferTask::Mrpc,
    ];

    /// The name in configs, JSON and the database.
    pub fn name(self) -> &'static str {
        match self {
            TransferTask::Mr => "mr",
            TransferTask::Cr => "cr",
            TransferTask::Subj => "subj",
            TransferTask::Mpqa => "mpqa",
            TransferTask::Sst2 => "sst2",
            TransferTask::Trec => "trec",
            TransferTask::Mrpc => "mrpc",
        }
    }

    /// The folder under SentEval's `downstream/`.
    pub fn folder(self) -> &'static str {
        match self {
            TransferTask::Mr => "MR",
            TransferTask::Cr => "CR",
            TransferTask::Subj => "SUBJ",
            TransferTask::Mpqa => "MPQA",
            TransferTask::Sst2 => "SST/binary",
            TransferTask::Trec => "TREC",
            TransferTask::Mrpc => "MRPC",
        }
    }

    fn classes(self) -> usize {
        if self == TransferTask::Trec {
            6
        } else {
            2
        }
    }
}

impl fmt::Display for TransferTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransferTask {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<TransferTask> {
        TransferTask::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .with_context(|| {
                let known: Vec<_> = TransferTask::ALL.iter().map(|t| t.name()).collect();
                format!("unknown transfer task {s:?} (known: {})", known.join(", "))
            })
    }
}

/// SimCSE's evaluation modes for the transfer tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// k = 10, Adam, batch 64, tenacity 5, epoch size 4: the numbers papers report.
    Test,
    /// k = 5, RMSprop, batch 128, tenacity 3, epoch size 2.
    Fasttest,
}

impl Mode {
    pub const NAMES: [&'static str; 2] = ["test", "fasttest"];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Fasttest => "fasttest",
        }
    }

    /// Folds of the cross-validations.
    pub fn kfold(self) -> usize {
        match self {
            Mode::Test => 10,
            Mode::Fasttest => 5,
        }
    }

    /// The classifier's settings with SentEval's `seed`.
    pub fn fit_config(self, seed: u32) -> FitConfig {
        let (optim, batch_size, tenacity, epoch_size) = match self {
            Mode::Test => (Optim::Adam, 64, 5, 4),
            Mode::Fasttest => (Optim::RmsProp, 128, 3, 2),
        };
        FitConfig {
            optim,
            batch_size,
            tenacity,
            epoch_size,
            max_epoch: 200,
            seed,
        }
    }
}

impl FromStr for Mode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "test" => Ok(Mode::Test),
            "fasttest" => Ok(Mode::Fasttest),
            _ => bail!("unknown evaluation mode {s:?} (known: test, fasttest)"),
        }
    }
}

/// SentEval's default seed.
pub const DEFAULT_SEED: u32 = 1111;

/// The L2 penalties SentEval's PyTorch classifier tries: 1e-5, 1e-4, 1e-3, 1e-2.
pub const PENALTIES: [f32; 4] = [1e-5, 1e-4, 1e-3, 1e-2];

/// Python's `round(x, 2)` on a float: the exact binary value correctly rounded.
fn pyround2(x: f64) -> f64 {
    format!("{x:.2}").parse().expect("a formatted float parses")
}

/// numpy's `round(x, 2)`: `rint(x · 100) / 100`.
fn nround2(x: f64) -> f64 {
    (x * 100.0).round_ties_even() / 100.0
}

/// `np.mean`: numpy's pairwise summation (eight partial sums for 8 to 128 values, halves beyond),
/// then the division, so means of fold scores round as SentEval's do.
fn mean(v: &[f64]) -> f64 {
    fn pairwise(a: &[f64]) -> f64 {
        let n = a.len();
        if n < 8 {
            a.iter().fold(0.0, |s, x| s + x)
        } else if n <= 128 {
            let mut r = [0f64; 8];
            r.copy_from_slice(&a[..8]);
            let full = n - n % 8;
            for i in (8..full).step_by(8) {
                for j in 0..8 {
                    r[j] += a[i + j];
                }
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for x in &a[full..] {
                res += x;
            }
            res
        } else {
            let half = (n / 2) - (n / 2) % 8;
            pairwise(&a[..half]) + pairwise(&a[half..])
        }
    }
    pairwise(v) / v.len() as f64
}

/// The first index of the largest value (`np.argmax`).
fn argmax(v: &[f64]) -> usize {
    let mut b = 0;
    for i in 1..v.len() {
        if v[i] > v[b] {
            b = i;
        }
    }
    b
}

/// One task's result, as SentEval reports it (× 100, rounded to two decimals).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TransferScore {
    /// Test accuracy (the task's score).
    pub acc: f64,
    /// Validation accuracy of the chosen penalty.
    pub devacc: f64,
    /// MRPC: F1 of the paraphrase class on test.
    pub f1: Option<f64>,
    /// The chosen L2 penalty (TREC, MRPC, SST-2; MR, CR, SUBJ, MPQA choose one per outer fold:
    /// the most frequent).
    pub penalty: f32,
    pub ndev: usize,
    pub ntest: usize,
}

/// The embedded data of one task: a matrix and labels per split, in SentEval's order.
pub struct Embedded {
    pub dim: usize,
    /// (rows × dim, labels) for each split the task has.
    pub splits: Vec<(Vec<f32>, Vec<usize>)>,
}

/// Embed a task's sentences in SentEval's order and batches; MRPC's rows are `[|u − v|, u ∗ v]`.
pub fn embed_task(
    task: TransferTask,
    files: &TaskFiles,
    batch_size: usize,
    embed: &mut Embed<'_>,
) -> Result<Embedded> {
    let mut splits = Vec::new();
    let mut dim = 0;
    for s in &files.splits {
        let rows = |sentences: &[String], embed: &mut Embed<'_>| -> Result<(Vec<f32>, usize)> {
            let e = super::embed_all(sentences, batch_size, embed)?;
            if let Some(i) = e.bad.iter().position(|&b| b) {
                bail!(
                    "{task}: the model's embeddings contain NaN or infinite values (sentence {} of {}: {:?})",
                    i + 1,
                    s.name,
                    sentences[i]
                );
            }
            Ok((e.data.iter().map(|&v| v as f32).collect(), e.h))
        };
        let (a, h) = rows(&s.a, embed)?;
        let (x, d) = match &s.b {
            None => (a, h),
            Some(b) => {
                let (b, _) = rows(b, embed)?;
                let mut x = Vec::with_capacity(a.len() * 2);
                for (ra, rb) in a.chunks(h).zip(b.chunks(h)) {
                    x.extend(ra.iter().zip(rb).map(|(u, v)| (u - v).abs()));
                    x.extend(ra.iter().zip(rb).map(|(u, v)| u * v));
                }
                (x, 2 * h)
            }
        };
        dim = d;
        splits.push((x, s.labels.clone()));
    }
    Ok(Embedded { dim, splits })
}

/// Score an embedded task with SentEval's protocol for it.
pub fn score(task: TransferTask, data: &Embedded, mode: Mode, seed: u32) -> Result<TransferScore> {
    let cfg = mode.fit_config(seed);
    let k = mode.kfold();
    let classes = task.classes();
    let d = data.dim;
    let rows = |i: usize| Rows {
        data: &data.splits[i].0,
        dim: d,
    };
    match task {
        TransferTask::Mr | TransferTask::Cr | TransferTask::Subj | TransferTask::Mpqa => {
            let (x, y) = (rows(0), &data.splits[0].1);
            inner_kfold(x, y, classes, k, &cfg).with_context(|| format!("{task}"))
        }
        TransferTask::Sst2 => {
            let (xtr, ytr) = (rows(0), &data.splits[0].1);
            let (xdev, ydev) = (rows(1), &data.splits[1].1);
            let (xte, yte) = (rows(2), &data.splits[2].1);
            let tr: Vec<usize> = (0..xtr.len()).collect();
            let dv: Vec<usize> = (0..xdev.len()).collect();
            let fits: Vec<_> = PENALTIES
                .par_iter()
                .map(|&reg| {
                    fit(
                        xtr,
                        &tr,
                        ytr,
                        Validation::Data(xdev, &dv, ydev),
                        classes,
                        reg,
                        &cfg,
                    )
                })
                .collect();
            let scores: Vec<f64> = fits.iter().map(|(_, acc)| pyround2(100.0 * acc)).collect();
            let b = argmax(&scores);
            // SentEval refits with the chosen penalty from scratch: the same fit, the same model.
            let model = &fits[b].0;
            let te: Vec<usize> = (0..xte.len()).collect();
            Ok(TransferScore {
                acc: pyround2(100.0 * model.accuracy(xte, &te, yte)),
                devacc: scores[b],
                f1: None,
                penalty: PENALTIES[b],
                ndev: ydev.len(),
                ntest: yte.len(),
            })
        }
        TransferTask::Trec | TransferTask::Mrpc => {
            let (xtr, ytr) = (rows(0), &data.splits[0].1);
            let (xte, yte) = (rows(1), &data.splits[1].1);
            let folds =
                stratified_kfold(ytr, k, seed).map_err(|e| anyhow::anyhow!("{task}: {e}"))?;
            let jobs: Vec<(usize, usize)> = (0..PENALTIES.len())
                .flat_map(|r| (0..folds.len()).map(move |f| (r, f)))
                .collect();
            let accs: Vec<f64> = jobs
                .par_iter()
                .map(|&(r, f)| {
                    let (tr, te) = &folds[f];
                    let ytrf: Vec<usize> = tr.iter().map(|&i| ytr[i]).collect();
                    let ytef: Vec<usize> = te.iter().map(|&i| ytr[i]).collect();
                    let (m, _) = fit(
                        xtr,
                        tr,
                        &ytrf,
                        Validation::Data(xtr, te, &ytef),
                        classes,
                        PENALTIES[r],
                        &cfg,
                    );
                    m.accuracy(xtr, te, &ytef)
                })
                .collect();
            let scores: Vec<f64> = accs
                .chunks(folds.len())
                .map(|a| nround2(100.0 * mean(a)))
                .collect();
            let b = argmax(&scores);
            let all: Vec<usize> = (0..xtr.len()).collect();
            let (model, _) = fit(
                xtr,
                &all,
                ytr,
                Validation::Split(0.05),
                classes,
                PENALTIES[b],
                &cfg,
            );
            let te: Vec<usize> = (0..xte.len()).collect();
            let pred: Vec<usize> = te.iter().map(|&i| model.predict(xte.row(i))).collect();
            let right = pred.iter().zip(yte).filter(|(p, l)| p == l).count();
            let f1 = (task == TransferTask::Mrpc).then(|| {
                let tp = pred
                    .iter()
                    .zip(yte)
                    .filter(|(&p, &l)| p == 1 && l == 1)
                    .count();
                let fp = pred
                    .iter()
                    .zip(yte)
                    .filter(|(&p, &l)| p == 1 && l != 1)
                    .count();
                let fneg = pred
                    .iter()
                    .zip(yte)
                    .filter(|(&p, &l)| p != 1 && l == 1)
                    .count();
                let den = 2 * tp + fp + fneg;
                let f = if den == 0 {
                    0.0
                } else {
                    2.0 * tp as f64 / den as f64
                };
                pyround2(100.0 * f)
            });
            Ok(TransferScore {
                acc: pyround2(100.0 * right as f64 / yte.len().max(1) as f64),
                devacc: scores[b],
                f1,
                penalty: PENALTIES[b],
                ndev: ytr.len(),
                ntest: yte.len(),
            })
        }
    }
}

/// MR, CR, SUBJ, MPQA: stratified k-fold; in each outer fold the penalty is chosen by an inner
/// stratified k-fold of its training part, then refit on that part (5 % held out for early
/// stopping) and scored on the outer test fold.
fn inner_kfold(
    x: Rows<'_>,
    y: &[usize],
    classes: usize,
    k: usize,
    cfg: &FitConfig,
) -> Result<TransferScore> {
    // SentEval's InnerKFoldClassifier draws its folds with a fixed 1111, whatever the seed.
    let outer = stratified_kfold(y, k, DEFAULT_SEED).map_err(anyhow::Error::msg)?;
    // The inner folds of each outer training part, as indices into x.
    let inner: Vec<classifier::Folds> = outer
        .iter()
        .map(|(tr, _)| {
            let ytr: Vec<usize> = tr.iter().map(|&i| y[i]).collect();
            stratified_kfold(&ytr, k, DEFAULT_SEED).map(|folds| {
                folds
                    .into_iter()
                    .map(|(a, b)| {
                        (
                            a.into_iter().map(|i| tr[i]).collect(),
                            b.into_iter().map(|i| tr[i]).collect(),
                        )
                    })
                    .collect()
            })
        })
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    let labels = |r: &[usize]| -> Vec<usize> { r.iter().map(|&i| y[i]).collect() };
    let jobs: Vec<(usize, usize, usize)> = (0..outer.len())
        .flat_map(|o| (0..PENALTIES.len()).flat_map(move |r| (0..k).map(move |f| (o, r, f))))
        .collect();
    let accs: Vec<f64> = jobs
        .par_iter()
        .map(|&(o, r, f)| {
            let (itr, ite) = &inner[o][f];
            let (ytr, yte) = (labels(itr), labels(ite));
            let (m, _) = fit(
                x,
                itr,
                &ytr,
                Validation::Data(x, ite, &yte),
                classes,
                PENALTIES[r],
                cfg,
            );
            m.accuracy(x, ite, &yte)
        })
        .collect();
    let per_outer: Vec<(usize, f64)> = accs
        .chunks(PENALTIES.len() * k)
        .map(|block| {
            let scores: Vec<f64> = block.chunks(k).map(|a| nround2(100.0 * mean(a))).collect();
            let b = argmax(&scores);
            (b, scores[b])
        })
        .collect();
    let tests: Vec<f64> = outer
        .par_iter()
        .zip(&per_outer)
        .map(|((tr, te), &(b, _))| {
            let (m, _) = fit(
                x,
                tr,
                &labels(tr),
                Validation::Split(0.05),
                classes,
                PENALTIES[b],
                cfg,
            );
            pyround2(100.0 * m.accuracy(x, te, &labels(te)))
        })
        .collect();
    let mut votes = [0usize; PENALTIES.len()];
    for &(b, _) in &per_outer {
        votes[b] += 1;
    }
    let common = (0..votes.len())
        .max_by_key(|&i| (votes[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    let dev: Vec<f64> = per_outer.iter().map(|&(_, s)| s).collect();
    Ok(TransferScore {
        acc: nround2(mean(&tests)),
        devacc: nround2(mean(&dev)),
        f1: None,
        penalty: PENALTIES[common],
        ndev: y.len(),
        ntest: y.len(),
    })
}

/// Read (and check) the given tasks' files under the data root, before anything is computed;
/// no tasks, nothing read (the SentEval folder need not exist).
pub fn read_tasks(data_root: &Path, tasks: &[TransferTask]) -> Result<Vec<TaskFiles>> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let downstream = super::downstream_dir(data_root)?;
    tasks.iter().map(|&t| read_task(&downstream, t)).collect()
}

/// Embed and score read tasks, in order.
pub fn evaluate(
    files: &[TaskFiles],
    mode: Mode,
    seed: u32,
    batch_size: usize,
    embed: &mut Embed<'_>,
) -> Result<Vec<(TransferTask, TransferScore)>> {
    files
        .iter()
        .map(|f| {
            let e = embed_task(f.task, f, batch_size, embed)?;
            Ok((f.task, score(f.task, &e, mode, seed)?))
        })
        .collect()
}

/// `transfer_avg`: the mean of the seven test accuracies (MRPC's accuracy, not its F1), when
/// all seven were evaluated.
pub fn average(scores: &[(TransferTask, TransferScore)]) -> Option<f64> {
    let accs: Vec<f64> = TransferTask::ALL
        .iter()
        .map(|t| scores.iter().find(|(s, _)| s == t).map(|(_, v)| v.acc))
        .collect::<Option<_>>()?;
    Some(mean(&accs))
}

/// The score rows of a transfer evaluation: each task's accuracy, `mrpc_f1`, `transfer_avg`.
pub fn entries(scores: &[(TransferTask, TransferScore)]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (t, s) in scores {
        out.push((t.name().to_string(), s.acc));
        if let Some(f1) = s.f1 {
            out.push(("mrpc_f1".to_string(), f1));
        }
    }
    if let Some(avg) = average(scores) {
        out.push(("transfer_avg".to_string(), avg));
    }
    out
}
