//! STS evaluation, SimCSE / SentEval protocol (`shared/docs/metrics.md`, section "STS evaluation").
//!
//! A task's score is Spearman's ρ × 100 between the cosine of the two sentences' embeddings and the
//! gold score, over all of the task's pairs. For STS12–16 that is SimCSE's "all" setting: the
//! year's subsets as SentEval lists them, concatenated (pairs with an empty gold line dropped, a
//! subset whose input file is absent skipped; STS13's SMT is not in SentEval's list), one Spearman.
//! STS-B and SICK-R: the whole file. `avg` is the mean of STS12–16, STS-B test and SICK-R test,
//! present only when all seven were evaluated. (simsweep's own average is of the unrounded
//! scores; SimCSE's printout averages scores rounded to two decimals.)
//!
//! Data are read once ([`StsData::load`]) and kept: each task holds its distinct sentences (in a
//! fixed order, shortest first, so batches pad little) and its pairs as indices into them, so an
//! evaluation embeds every distinct sentence exactly once.
//!
//! ```no_run
//! # fn f(model: &mut dyn FnMut(&[String]) -> anyhow::Result<tch::Tensor>) -> anyhow::Result<()> {
//! use simsweep_engine::eval::{StsData, Task, DEFAULT_BATCH_SIZE};
//! let data = StsData::load(std::path::Path::new("/data"), &[Task::StsbDev])?;
//! let scores = data.evaluate(&[Task::StsbDev], DEFAULT_BATCH_SIZE, model)?;
//! println!("{}", serde_json::to_string(&scores)?); // {"stsb_dev":82.1...}
//! # Ok(()) }
//! ```

mod read;
mod stats;
#[cfg(test)]
mod tests;
pub mod transfer;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::ser::{Serialize, SerializeMap, Serializer};
use tch::{Device, Kind, Tensor};

pub use read::{downstream_dir, normalize_sentence, Subset};
pub use stats::{average_ranks, pearson, spearman};

/// Sentences per call of the embedding function unless the caller says otherwise (SimCSE's
/// evaluation batch size; simsweep's `eval.batch_size` default).
pub const DEFAULT_BATCH_SIZE: usize = 128;

/// The embedding function: distinct sentences in, one row per sentence out (`[N, H]`, any floating
/// dtype, any device). It is called with at most the evaluation batch size of sentences at a time.
pub type Embed<'a> = dyn FnMut(&[String]) -> Result<Tensor> + 'a;

/// An STS evaluation task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    /// SemEval STS 2012, all five subsets.
    Sts12,
    /// SemEval STS 2013: FNWN, headlines, OnWN (SentEval's list; SMT's input is not distributed).
    Sts13,
    /// SemEval STS 2014, six subsets.
    Sts14,
    /// SemEval STS 2015, five subsets.
    Sts15,
    /// SemEval STS 2016, five subsets.
    Sts16,
    /// STS Benchmark dev split (model selection during training).
    StsbDev,
    /// STS Benchmark test split.
    StsbTest,
    /// SICK relatedness, test split.
    SickrTest,
}

impl Task {
    /// Every task, in reporting order.
    pub const ALL: [Task; 8] = [
        Task::Sts12,
        Task::Sts13,
        Task::Sts14,
        Task::Sts15,
        Task::Sts16,
        Task::StsbDev,
        Task::StsbTest,
        Task::SickrTest,
    ];

    /// The seven tasks whose mean is `avg` (SimCSE's STS table).
    pub const AVG: [Task; 7] = [
        Task::Sts12,
        Task::Sts13,
        Task::Sts14,
        Task::Sts15,
        Task::Sts16,
        Task::StsbTest,
        Task::SickrTest,
    ];

    /// The task's name in configs, JSON and the database (`sts12` … `sickr_test`).
    pub fn name(self) -> &'static str {
        match self {
            Task::Sts12 => "sts12",
            Task::Sts13 => "sts13",
            Task::Sts14 => "sts14",
            Task::Sts15 => "sts15",
            Task::Sts16 => "sts16",
            Task::StsbDev => "stsb_dev",
            Task::StsbTest => "stsb_test",
            Task::SickrTest => "sickr_test",
        }
    }

    /// For STS12–16: the folder under `STS/` and the subsets, exactly as SentEval lists them.
    fn sts_year(self) -> Option<(&'static str, &'static [&'static str])> {
        Some(match self {
            Task::Sts12 => (
                "STS12-en-test",
                &[
                    "MSRpar",
                    "MSRvid",
                    "SMTeuroparl",
                    "surprise.OnWN",
                    "surprise.SMTnews",
                ],
            ),
            // SentEval's STS13 has no SMT subset (licence): never read, even where a copy has its
            // input, so that scores stay comparable with published tables.
            Task::Sts13 => ("STS13-en-test", &["FNWN", "headlines", "OnWN"]),
            Task::Sts14 => (
                "STS14-en-test",
                &[
                    "deft-forum",
                    "deft-news",
                    "headlines",
                    "images",
                    "OnWN",
                    "tweet-news",
                ],
            ),
            Task::Sts15 => (
                "STS15-en-test",
                &[
                    "answers-forums",
                    "answers-students",
                    "belief",
                    "headlines",
                    "images",
                ],
            ),
            Task::Sts16 => (
                "STS16-en-test",
                &[
                    "answer-answer",
                    "headlines",
                    "plagiarism",
                    "postediting",
                    "question-question",
                ],
            ),
            _ => return None,
        })
    }

    /// Parse a list of task names; an unknown name is an error listing the known ones.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Task>> {
        names.iter().map(|n| n.as_ref().parse()).collect()
    }
}

/// Task names as `eval --tasks` and `eval.tasks` take them: `sts` (the eight STS tasks),
/// `transfer` (the seven transfer tasks), `full` (both) and single names; each task once, in
/// reporting order.
pub fn parse_tasks<S: AsRef<str>>(names: &[S]) -> Result<(Vec<Task>, Vec<transfer::TransferTask>)> {
    let mut sts = Vec::new();
    let mut tr = Vec::new();
    for n in names {
        let n = n.as_ref().trim();
        match n {
            "sts" => sts.extend(Task::ALL),
            "transfer" => tr.extend(transfer::TransferTask::ALL),
            "full" => {
                sts.extend(Task::ALL);
                tr.extend(transfer::TransferTask::ALL);
            }
            _ => {
                if let Ok(t) = n.parse::<Task>() {
                    sts.push(t);
                } else if let Ok(t) = n.parse::<transfer::TransferTask>() {
                    tr.push(t);
                } else {
                    let mut known: Vec<&str> = vec!["sts", "transfer", "full"];
                    known.extend(Task::ALL.iter().map(|t| t.name()));
                    known.extend(transfer::TransferTask::ALL.iter().map(|t| t.name()));
                    bail!("unknown task {n:?} (known: {})", known.join(", "));
                }
            }
        }
    }
    sts.sort();
    sts.dedup();
    tr.sort();
    tr.dedup();
    Ok((sts, tr))
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Task> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .with_context(|| {
                let known: Vec<_> = Task::ALL.iter().map(|t| t.name()).collect();
                format!("unknown STS task {s:?} (known: {})", known.join(", "))
            })
    }
}

/// One pair of a task, as read (sentences normalised as SentEval hands them to the model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair<'a> {
    /// First sentence.
    pub a: &'a str,
    /// Second sentence.
    pub b: &'a str,
    /// Gold similarity (STS 0–5, SICK 1–5).
    pub gold: f64,
}

/// One task's data: its distinct sentences and its pairs, in file order (STS12–16: subsets in
/// SentEval's order, each in file order).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    task: Task,
    /// Distinct sentences in embedding order: by length in characters, then bytewise.
    sentences: Vec<String>,
    /// Per pair: indices of its two sentences in `sentences`.
    pairs: Vec<(u32, u32)>,
    gold: Vec<f64>,
    subsets: Vec<Subset>,
    skipped: Vec<String>,
    files: Vec<PathBuf>,
}

impl TaskData {
    /// Read `task` from a SentEval `downstream` folder (see [`downstream_dir`]).
    pub fn load(downstream: &Path, task: Task) -> Result<TaskData> {
        let sts = downstream.join("STS");
        let mut subsets = Vec::new();
        let mut skipped = Vec::new();
        let mut files = Vec::new();
        let raw = if let Some((year, names)) = task.sts_year() {
            let dir = sts.join(year);
            if !dir.is_dir() {
                bail!("{}: {task} folder not found", dir.display());
            }
            let mut raw = Vec::new();
            for name in names {
                match read::read_sts_subset(&dir, name)? {
                    None => skipped.push(name.to_string()),
                    Some((pairs, unscored)) => {
                        files.push(dir.join(format!("STS.input.{name}.txt")));
                        files.push(dir.join(format!("STS.gs.{name}.txt")));
                        subsets.push(Subset {
                            name: name.to_string(),
                            pairs: pairs.len(),
                            unscored,
                        });
                        raw.extend(pairs);
                    }
                }
            }
            if subsets.is_empty() {
                bail!("{}: no STS.input.*.txt for {task}", dir.display());
            }
            raw
        } else {
            let (path, header, cols) = match task {
                Task::StsbDev => (sts.join("STSBenchmark/sts-dev.csv"), false, (4, 5, 6)),
                Task::StsbTest => (sts.join("STSBenchmark/sts-test.csv"), false, (4, 5, 6)),
                _ => (
                    downstream.join("SICK/SICK_test_annotated.txt"),
                    true,
                    (3, 1, 2),
                ),
            };
            let raw = read::read_columns(&path, header, cols.0, cols.1, cols.2)?;
            files.push(path);
            raw
        };
        let mut data = TaskData::from_pairs(task, raw.into_iter().map(|p| (p.a, p.b, p.gold)))?;
        data.subsets = subsets;
        data.skipped = skipped;
        data.files = files;
        Ok(data)
    }

    /// Build a task from pairs `(a, b, gold)` taken verbatim (no sentence normalisation), e.g. a
    /// subset of a task or a test fixture. At least two pairs; gold scores must be finite.
    pub fn from_pairs(
        task: Task,
        pairs: impl IntoIterator<Item = (String, String, f64)>,
    ) -> Result<TaskData> {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut sentences: Vec<String> = Vec::new();
        let mut idx = Vec::new();
        let mut gold = Vec::new();
        let mut intern = |s: String, sentences: &mut Vec<String>| -> u32 {
            if let Some(&i) = index.get(&s) {
                return i;
            }
            let i = sentences.len() as u32;
            index.insert(s.clone(), i);
            sentences.push(s);
            i
        };
        for (a, b, g) in pairs {
            if !g.is_finite() {
                bail!("{task}: gold score {g} is not finite");
            }
            let ia = intern(a, &mut sentences);
            let ib = intern(b, &mut sentences);
            idx.push((ia, ib));
            gold.push(g);
        }
        if gold.len() < 2 {
            bail!(
                "{task}: {} pair(s); a correlation needs at least two",
                gold.len()
            );
        }
        // Fixed embedding order: shortest first (less padding per batch), ties bytewise.
        let mut order: Vec<u32> = (0..sentences.len() as u32).collect();
        order.sort_by(|&i, &j| {
            let (a, b) = (&sentences[i as usize], &sentences[j as usize]);
            a.chars().count().cmp(&b.chars().count()).then(a.cmp(b))
        });
        let mut new_pos = vec![0u32; sentences.len()];
        for (pos, &old) in order.iter().enumerate() {
            new_pos[old as usize] = pos as u32;
        }
        let mut slots: Vec<Option<String>> = sentences.into_iter().map(Some).collect();
        let sentences: Vec<String> = order
            .iter()
            .map(|&old| slots[old as usize].take().unwrap_or_default())
            .collect();
        let pairs = idx
            .into_iter()
            .map(|(a, b)| (new_pos[a as usize], new_pos[b as usize]))
            .collect();
        Ok(TaskData {
            task,
            sentences,
            pairs,
            gold,
            subsets: Vec::new(),
            skipped: Vec::new(),
            files: Vec::new(),
        })
    }

    /// The task.
    pub fn task(&self) -> Task {
        self.task
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.gold.len()
    }

    /// Whether there are no pairs (never true for loaded data).
    pub fn is_empty(&self) -> bool {
        self.gold.is_empty()
    }

    /// The pairs in file order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = Pair<'_>> + '_ {
        self.pairs
            .iter()
            .zip(&self.gold)
            .map(|(&(a, b), &gold)| Pair {
                a: &self.sentences[a as usize],
                b: &self.sentences[b as usize],
                gold,
            })
    }

    /// Gold scores in pair order.
    pub fn gold(&self) -> &[f64] {
        &self.gold
    }

    /// The distinct sentences, in the order they are embedded.
    pub fn sentences(&self) -> &[String] {
        &self.sentences
    }

    /// STS12–16: the subsets read, in SentEval's order (empty for STS-B and SICK).
    pub fn subsets(&self) -> &[Subset] {
        &self.subsets
    }

    /// STS12–16: subsets of SentEval's list skipped because their input file is absent.
    pub fn skipped_subsets(&self) -> &[String] {
        &self.skipped
    }

    /// The files read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Embed every distinct sentence once (`batch_size` at a time) and score the task.
    pub fn evaluate(&self, batch_size: usize, embed: &mut Embed<'_>) -> Result<TaskScore> {
        let emb = embed_all(&self.sentences, batch_size, embed)
            .with_context(|| format!("embedding the sentences of {}", self.task))?;
        let mut degenerate = 0;
        let cos: Vec<f64> = self
            .pairs
            .iter()
            .map(|&(a, b)| {
                let (c, ok) = emb.cosine(a as usize, b as usize);
                degenerate += usize::from(!ok);
                c
            })
            .collect();
        let mut score = TaskScore::from_similarities(&cos, &self.gold);
        score.degenerate_pairs = degenerate;
        Ok(score)
    }
}

/// Row-major `f64` embeddings after numpy's `nan_to_num` (NaN → 0, ±∞ → ±max), as SentEval applies
/// it before its cosine.
struct Embeddings {
    h: usize,
    data: Vec<f64>,
    /// Rows that had a non-finite entry.
    bad: Vec<bool>,
}

impl Embeddings {
    fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.h..(i + 1) * self.h]
    }

    /// SentEval's cosine with `nan_to_num` on the result (a zero vector gives 0/0 → 0), and whether
    /// it was well defined (finite rows, non-zero norms, finite result).
    fn cosine(&self, a: usize, b: usize) -> (f64, bool) {
        let c = cosine(self.row(a), self.row(b));
        let ok = c.is_finite() && !self.bad[a] && !self.bad[b];
        let c = if c.is_nan() {
            0.0
        } else {
            c.clamp(f64::MIN, f64::MAX)
        };
        (c, ok)
    }
}

/// Cosine similarity `u·v / (‖u‖ ‖v‖)` in `f64`, as SentEval computes it (NaN when a norm is 0).
pub fn cosine(u: &[f64], v: &[f64]) -> f64 {
    let dot: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
    let nu = u.iter().map(|a| a * a).sum::<f64>().sqrt();
    let nv = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    dot / (nu * nv)
}

fn embed_all(sentences: &[String], batch_size: usize, embed: &mut Embed<'_>) -> Result<Embeddings> {
    if batch_size == 0 {
        bail!("evaluation batch size must be at least 1");
    }
    let mut data: Vec<f64> = Vec::new();
    let mut h = 0usize;
    for (k, chunk) in sentences.chunks(batch_size).enumerate() {
        let t = embed(chunk)?;
        let what = || {
            format!(
                "embedding batch {k} ({} sentences, starting with {:?})",
                chunk.len(),
                chunk[0]
            )
        };
        if !t.defined() {
            bail!(
                "{}: the embedding function returned an undefined tensor",
                what()
            );
        }
        let kind = t.f_kind().with_context(what)?;
        if !matches!(
            kind,
            Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double
        ) {
            bail!(
                "{}: embeddings have dtype {kind:?}; expected a floating dtype",
                what()
            );
        }
        let size = t.size();
        let rows = chunk.len() as i64;
        if size.len() != 2 || size[0] != rows || size[1] < 1 || (h != 0 && size[1] != h as i64) {
            let want = if h == 0 {
                "H".to_string()
            } else {
                h.to_string()
            };
            bail!(
                "{}: embeddings have shape {size:?}; expected [{rows}, {want}]",
                what()
            );
        }
        h = size[1] as usize;
        let flat = t
            .f_detach()
            .and_then(|t| t.f_to_device(Device::Cpu))
            .and_then(|t| t.f_to_kind(Kind::Double))
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_reshape([-1]))
            .and_then(|t| Vec::<f64>::try_from(&t))
            .with_context(what)?;
        data.extend_from_slice(&flat);
    }
    let n = sentences.len();
    let mut bad = vec![false; n];
    for (i, row) in data.chunks_mut(h.max(1)).enumerate() {
        for v in row.iter_mut() {
            if !v.is_finite() {
                bad[i] = true;
                *v = if v.is_nan() {
                    0.0
                } else {
                    v.clamp(f64::MIN, f64::MAX)
                };
            }
        }
    }
    Ok(Embeddings { h, data, bad })
}

/// One task's result.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TaskScore {
    /// Spearman's ρ × 100 (the task's score). 0 when undefined.
    pub spearman: f64,
    /// Pearson's r × 100. 0 when undefined.
    pub pearson: f64,
    /// Number of pairs scored.
    pub pairs: usize,
    /// The correlation was undefined (all similarities equal, e.g. a collapsed or NaN model):
    /// scipy would give NaN; simsweep records 0, as SentEval does for SICK-R (`0 if sr != sr`).
    pub undefined: bool,
    /// Pairs whose cosine was not well defined (a zero or non-finite embedding); each scored as
    /// SentEval does after `nan_to_num`.
    pub degenerate_pairs: usize,
}

impl TaskScore {
    /// Score system similarities against gold scores (same length, pair by pair).
    pub fn from_similarities(sys: &[f64], gold: &[f64]) -> TaskScore {
        let s = spearman(sys, gold);
        let p = pearson(sys, gold);
        TaskScore {
            spearman: s.map_or(0.0, |v| v * 100.0),
            pearson: p.map_or(0.0, |v| v * 100.0),
            pairs: sys.len().min(gold.len()),
            undefined: s.is_none() || p.is_none(),
            degenerate_pairs: 0,
        }
    }
}

/// Scores of the evaluated tasks. Serialises to `{"sts12": 74.2, …, "avg": 76.3}`: the evaluated
/// tasks' Spearman × 100 in [`Task::ALL`] order, then `avg` when all of [`Task::AVG`] are present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Per-task details, keyed (and ordered) by task.
    pub tasks: BTreeMap<Task, TaskScore>,
}

impl Scores {
    /// A task's score (Spearman × 100), if evaluated.
    pub fn get(&self, task: Task) -> Option<f64> {
        self.tasks.get(&task).map(|s| s.spearman)
    }

    /// Mean score of STS12–16, STS-B test and SICK-R test; `None` unless all seven were evaluated.
    pub fn avg(&self) -> Option<f64> {
        let v: Option<Vec<f64>> = Task::AVG.iter().map(|&t| self.get(t)).collect();
        v.map(|v| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// `(name, score)` in the JSON's order, `avg` last when defined.
    pub fn entries(&self) -> Vec<(&'static str, f64)> {
        let mut out: Vec<_> = self
            .tasks
            .iter()
            .map(|(t, s)| (t.name(), s.spearman))
            .collect();
        if let Some(a) = self.avg() {
            out.push(("avg", a));
        }
        out
    }

    /// Add (or replace) the scores of `other`.
    pub fn merge(&mut self, other: Scores) {
        self.tasks.extend(other.tasks);
    }
}

impl Serialize for Scores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.entries();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

/// Parsed STS data for a set of tasks, read once and reused for every evaluation.
#[derive(Debug, Clone, Default)]
pub struct StsData {
    tasks: BTreeMap<Task, TaskData>,
}

impl StsData {
    /// Read `tasks` from the SentEval tree under `data_root` (see [`downstream_dir`] for the
    /// accepted layouts).
    pub fn load(data_root: &Path, tasks: &[Task]) -> Result<StsData> {
        let mut data = StsData::default();
        data.ensure(data_root, tasks)?;
        Ok(data)
    }

    /// Read those of `tasks` not loaded yet.
    pub fn ensure(&mut self, data_root: &Path, tasks: &[Task]) -> Result<()> {
        let missing: Vec<Task> = tasks
            .iter()
            .copied()
            .filter(|t| !self.tasks.contains_key(t))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let down = downstream_dir(data_root)?;
        for t in missing {
            let d = TaskData::load(&down, t).with_context(|| format!("loading STS task {t}"))?;
            self.tasks.insert(t, d);
        }
        Ok(())
    }

    /// Add (or replace) one task's data.
    pub fn insert(&mut self, data: TaskData) {
        self.tasks.insert(data.task(), data);
    }

    /// A loaded task's data.
    pub fn get(&self, task: Task) -> Option<&TaskData> {
        self.tasks.get(&task)
    }

    /// The loaded tasks, in [`Task::ALL`] order.
    pub fn tasks(&self) -> impl Iterator<Item = Task> + '_ {
        self.tasks.keys().copied()
    }

    /// Score `tasks` (each once, in [`Task::ALL`] order); every one must be loaded.
    pub fn evaluate(
        &self,
        tasks: &[Task],
        batch_size: usize,
        embed: &mut Embed<'_>,
    ) -> Result<Scores> {
        let mut wanted: Vec<Task> = tasks.to_vec();
        wanted.sort();
        wanted.dedup();
        let mut scores = Scores::default();
        for t in wanted {
            let d = self
                .tasks
                .get(&t)
                .with_context(|| format!("STS task {t} was not loaded"))?;
            scores.tasks.insert(t, d.evaluate(batch_size, embed)?);
        }
        Ok(scores)
    }
}

/// Load `tasks` from `data_root` and score them with `embed` (batches of [`DEFAULT_BATCH_SIZE`]).
/// For repeated evaluations keep an [`StsData`] instead.
pub fn evaluate(data_root: &Path, tasks: &[Task], embed: &mut Embed<'_>) -> Result<Scores> {
    StsData::load(data_root, tasks)?.evaluate(tasks, DEFAULT_BATCH_SIZE, embed)
}
