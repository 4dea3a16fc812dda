//! Reading the transfer tasks as SentEval reads them: its encodings (latin-1 for MR, CR, SUBJ,
//! MPQA and TREC; UTF-8 for SST and MRPC), Python's `str.split()` into words (joined again by one
//! space for the model's tokenizer), empty lines kept as empty sentences, and each split sorted
//! stably by (number of words, label) — MRPC by (words of A, words of B, label).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::TransferTask;

/// One split of a task, sorted as SentEval sorts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `train`, `dev`, `test`, or `all` (the cross-validated tasks).
    pub name: &'static str,
    /// Sentences (MRPC: the first of each pair).
    pub a: Vec<String>,
    /// MRPC: the second sentence of each pair.
    pub b: Option<Vec<String>>,
    pub labels: Vec<usize>,
}

/// A task's splits and the files they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFiles {
    pub task: TransferTask,
    pub splits: Vec<Split>,
    pub files: Vec<PathBuf>,
}

use crate::eval::read::{
    is_py_space as py_space, py_splitlines as splitlines, py_strip as strip,
    universal_lines as file_lines,
};

/// Python's `str.split()`.
fn words(s: &str) -> Vec<&str> {
    s.split(py_space).filter(|w| !w.is_empty()).collect()
}

fn read_bytes(path: &Path, task: TransferTask) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "transfer task {task}: cannot read {} (SentEval's data/downstream/{} folder)",
            path.display(),
            task.folder()
        )
    })
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn utf8(bytes: &[u8], path: &Path) -> Result<String> {
    String::from_utf8(bytes.to_vec()).with_context(|| format!("{}: not UTF-8", path.display()))
}

fn join(ws: &[&str]) -> String {
    ws.join(" ")
}

/// Sort (sentence, label) stably by (words, label).
fn sorted(name: &'static str, mut v: Vec<(Vec<&str>, usize)>) -> Split {
    v.sort_by_key(|(w, l)| (w.len(), *l));
    Split {
        name,
        a: v.iter().map(|(w, _)| join(w)).collect(),
        b: None,
        labels: v.iter().map(|&(_, l)| l).collect(),
    }
}

/// Read one task from SentEval's `downstream` folder.
pub fn read_task(downstream: &Path, task: TransferTask) -> Result<TaskFiles> {
    let dir = downstream.join(task.folder());
    if !dir.is_dir() {
        bail!(
            "transfer task {task}: folder {} not found (SentEval's data/downstream/{})",
            dir.display(),
            task.folder()
        );
    }
    let mut files = Vec::new();
    let mut read = |name: &str| -> Result<(PathBuf, Vec<u8>)> {
        let p = dir.join(name);
        let b = read_bytes(&p, task)?;
        files.push(p.clone());
        Ok((p, b))
    };
    let splits = match task {
        TransferTask::Mr | TransferTask::Cr | TransferTask::Subj | TransferTask::Mpqa => {
            let (pos, neg) = match task {
                TransferTask::Mr => ("rt-polarity.pos", "rt-polarity.neg"),
                TransferTask::Cr => ("custrev.pos", "custrev.neg"),
                TransferTask::Subj => ("subj.objective", "subj.subjective"),
                _ => ("mpqa.pos", "mpqa.neg"),
            };
            let (_, p) = read(pos)?;
            let (_, n) = read(neg)?;
            let (p, n) = (latin1(&p), latin1(&n));
            let mut v: Vec<(Vec<&str>, usize)> =
                splitlines(&p).into_iter().map(|l| (words(l), 1)).collect();
            v.extend(splitlines(&n).into_iter().map(|l| (words(l), 0)));
            vec![sorted("all", v)]
        }
        TransferTask::Sst2 => {
            let mut out = Vec::new();
            for (name, file) in [
                ("train", "sentiment-train"),
                ("dev", "sentiment-dev"),
                ("test", "sentiment-test"),
            ] {
                let (path, bytes) = read(file)?;
                let text = utf8(&bytes, &path)?;
                let mut v = Vec::new();
                for (i, line) in file_lines(&text).into_iter().enumerate() {
                    let f: Vec<&str> = strip(line).split('\t').collect();
                    let label = f
                        .get(1)
                        .and_then(|l| l.trim_matches(py_space).parse::<usize>().ok())
                        .filter(|&l| l <= 1)
                        .with_context(|| {
                            format!(
                                "{}:{}: expected a sentence, a tab and the label 0 or 1",
                                path.display(),
                                i + 1
                            )
                        })?;
                    v.push((words(f[0]), label));
                }
                out.push(sorted(name, v));
            }
            out
        }
        TransferTask::Trec => {
            let mut out = Vec::new();
            for (name, file) in [("train", "train_5500.label"), ("test", "TREC_10.label")] {
                let (path, bytes) = read(file)?;
                let text = latin1(&bytes);
                let mut v = Vec::new();
                for (i, line) in file_lines(&text).into_iter().enumerate() {
                    let bad = || {
                        format!(
                            "{}:{}: expected COARSE:fine and the question",
                            path.display(),
                            i + 1
                        )
                    };
                    let (target, rest) = strip(line).split_once(':').with_context(bad)?;
                    let label = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
                        .iter()
                        .position(|c| *c == target)
                        .with_context(|| {
                            format!(
                                "{}:{}: unknown TREC class {target:?} (known: ABBR, DESC, ENTY, HUM, LOC, NUM)",
                                path.display(),
                                i + 1
                            )
                        })?;
                    let (_, question) = rest.split_once(' ').with_context(bad)?;
                    v.push((words(question), label));
                }
                out.push(sorted(name, v));
            }
            out
        }
        TransferTask::Mrpc => {
            let mut out = Vec::new();
            for (name, file) in [
                ("train", "msr_paraphrase_train.txt"),
                ("test", "msr_paraphrase_test.txt"),
            ] {
                let (path, bytes) = read(file)?;
                let text = utf8(&bytes, &path)?;
                let mut v: Vec<(Vec<&str>, Vec<&str>, usize)> = Vec::new();
                // The first line is the header.
                for (i, line) in file_lines(&text).into_iter().enumerate().skip(1) {
                    let f: Vec<&str> = strip(line).split('\t').collect();
                    let y = (f.len() == 5)
                        .then(|| f[0].trim_matches(py_space).parse::<usize>().ok())
                        .flatten()
                        .filter(|&y| y <= 1)
                        .with_context(|| {
                            format!(
                                "{}:{}: expected 5 tab-separated fields: the label 0 or 1, two ids, two sentences",
                                path.display(),
                                i + 1
                            )
                        })?;
                    v.push((words(f[3]), words(f[4]), y));
                }
                v.sort_by_key(|(a, b, y)| (a.len(), b.len(), *y));
                out.push(Split {
                    name,
                    a: v.iter().map(|(a, _, _)| join(a)).collect(),
                    b: Some(v.iter().map(|(_, b, _)| join(b)).collect()),
                    labels: v.iter().map(|&(_, _, y)| y).collect(),
                });
            }
            out
        }
    };
    Ok(TaskFiles {
        task,
        splits,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_line_and_word_splitting() {
        assert_eq!(splitlines("a\nb\r\nc\rd\n"), vec!["a", "b", "c", "d"]);
        assert_eq!(splitlines("a\n\nb\n\n"), vec!["a", "", "b", ""]);
        assert_eq!(file_lines("a\r\nb\n"), vec!["a", "b"]);
        assert_eq!(words("  x\u{a0}y\tz \u{1f}w "), vec!["x", "y", "z", "w"]);
        assert_eq!(words(""), Vec::<&str>::new());
        assert_eq!(strip("\u{feff}x "), "\u{feff}x", "a BOM is not whitespace");
    }
}
