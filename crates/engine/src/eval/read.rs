//! Readers for the STS data in SentEval's on-disk layout, reproducing SentEval's own text handling.
//!
//! SentEval (and SimCSE's copy of it) reads every file as UTF-8 text in Python's universal-newline
//! mode and keeps each sentence as `s.split()`; SimCSE's batcher hands the model `' '.join(words)`.
//! The net effect, reproduced here by [`normalize_sentence`]: runs of (Python) whitespace collapse to
//! one space, leading and trailing whitespace go, and nothing else changes: no lowercasing, no Unicode
//! normalisation, a byte-order mark (if any) stays part of the first sentence.
//!
//! * STS12–16 (`STS.input.<subset>.txt` + `STS.gs.<subset>.txt`): both files are split with Python's
//!   `str.splitlines` (which also breaks at `\x0b`, `\x0c`, `\x1c`–`\x1e`, `\x85`, U+2028, U+2029); an
//!   input line is two tab-separated sentences; a pair whose gold line is exactly empty is dropped.
//! * STS-B (`sts-{dev,test}.csv`) and SICK (`SICK_test_annotated.txt`): read line by line (`\n`, `\r\n`
//!   and `\r` end a line), each line `strip()`ped and split at tabs; STS-B: score in column 5,
//!   sentences in columns 6–7; SICK: a header line, then sentences in columns 2–3, relatedness in 4.
//!
//! Deliberate differences, all of which turn silent mis-reads into errors naming file and line:
//! an STS input line must have exactly two tab-separated fields (SentEval ignores a third when every
//! line has at least two), input and gold files must have the same number of lines, and a score must
//! be a finite number (Python's `float` would also accept `nan`, `inf` and digit-group underscores).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Python's `str.isspace()`: Rust's `char::is_whitespace` plus the information separators
/// U+001C–U+001F, which Python counts as whitespace (bidirectional class B/S) and Rust does not.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A sentence as SentEval + SimCSE's batcher hand it to the tokenizer: `' '.join(s.split())`.
pub fn normalize_sentence(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(is_py_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Python's `str.strip()` with no argument.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `str.splitlines()` (without keepends): the line boundaries are `\n`, `\r`, `\r\n`, `\x0b`,
/// `\x0c`, `\x1c`, `\x1d`, `\x1e`, `\x85`, U+2028 and U+2029; a final boundary adds no empty line.
pub(crate) fn py_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&text[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                chars.next();
                end = j + 1;
            }
        }
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The lines of a file read in Python's universal-newline text mode and iterated with `for line in f`:
/// `\r\n` and `\r` count as `\n`; line terminators are removed; a final terminator adds no empty line.
pub(crate) fn universal_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Read a whole file as UTF-8 text (strict, as Python's `utf8` codec is), naming the file on error.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        anyhow::anyhow!(
            "{}:{line}: not valid UTF-8 (byte offset {at})",
            path.display()
        )
    })
}

/// A gold score as Python's `float()` reads it (surrounding whitespace allowed); must be finite.
fn parse_score(field: &str, path: &Path, line: usize) -> Result<f64> {
    let t = py_strip(field);
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => bail!(
            "{}:{line}: score {field:?} is not a finite number",
            path.display()
        ),
    }
}

/// One sentence pair with its gold score, sentences already normalised by [`normalize_sentence`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawPair {
    pub a: String,
    pub b: String,
    pub gold: f64,
}

/// What one STS subset contributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    /// SentEval's subset name, e.g. `MSRpar`.
    pub name: String,
    /// Pairs kept (those with a gold score).
    pub pairs: usize,
    /// Input lines dropped because their gold line is empty.
    pub unscored: usize,
}

/// Read one STS12–16 subset: `(pairs, unscored)`, or `None` when its input file is absent.
pub(crate) fn read_sts_subset(dir: &Path, subset: &str) -> Result<Option<(Vec<RawPair>, usize)>> {
    let input = dir.join(format!("STS.input.{subset}.txt"));
    let gold = dir.join(format!("STS.gs.{subset}.txt"));
    if !input.is_file() {
        return Ok(None);
    }
    if !gold.is_file() {
        bail!(
            "{}: gold-score file missing (its input {} exists)",
            gold.display(),
            input.display()
        );
    }
    let input_text = read_text(&input)?;
    let gold_text = read_text(&gold)?;
    let input_lines = py_splitlines(&input_text);
    let gold_lines = py_splitlines(&gold_text);
    if input_lines.is_empty() {
        bail!("{}: no sentence pairs", input.display());
    }
    if input_lines.len() != gold_lines.len() {
        bail!(
            "{} has {} lines but {} has {}: they must pair up line by line",
            input.display(),
            input_lines.len(),
            gold.display(),
            gold_lines.len()
        );
    }
    let mut pairs = Vec::with_capacity(input_lines.len());
    let mut unscored = 0;
    for (i, (line, g)) in input_lines.iter().zip(&gold_lines).enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 2 {
            bail!(
                "{}:{}: expected two tab-separated sentences, found {} field(s)",
                input.display(),
                i + 1,
                fields.len()
            );
        }
        if g.is_empty() {
            unscored += 1;
            continue;
        }
        pairs.push(RawPair {
            a: normalize_sentence(fields[0]),
            b: normalize_sentence(fields[1]),
            gold: parse_score(g, &gold, i + 1)?,
        });
    }
    Ok(Some((pairs, unscored)))
}

/// Read a tab-separated file SentEval-style: optional header line skipped, each line stripped and
/// split at tabs; `score`, `a`, `b` are 0-based column indices.
pub(crate) fn read_columns(
    path: &Path,
    header: bool,
    score: usize,
    a: usize,
    b: usize,
) -> Result<Vec<RawPair>> {
    if !path.is_file() {
        bail!("{}: file not found", path.display());
    }
    let text = read_text(path)?;
    let need = score.max(a).max(b) + 1;
    let mut pairs = Vec::new();
    for (i, line) in universal_lines(&text).into_iter().enumerate() {
        if header && i == 0 {
            continue;
        }
        let fields: Vec<&str> = py_strip(line).split('\t').collect();
        if fields.len() < need {
            bail!(
                "{}:{}: expected at least {need} tab-separated columns, found {}",
                path.display(),
                i + 1,
                fields.len()
            );
        }
        pairs.push(RawPair {
            a: normalize_sentence(fields[a]),
            b: normalize_sentence(fields[b]),
            gold: parse_score(fields[score], path, i + 1)?,
        });
    }
    if pairs.is_empty() {
        bail!("{}: no sentence pairs", path.display());
    }
    Ok(pairs)
}

/// The `downstream` folder of a SentEval data tree under `root`. Accepted, in this order:
/// `root/SentEval/data/downstream` (the simsweep data directory), `root/data/downstream` (a SentEval
/// checkout), `root/downstream` (SimCSE's `PATH_TO_DATA`), or `root` itself if it holds `STS` or `SICK`.
pub fn downstream_dir(root: &Path) -> Result<PathBuf> {
    let candidates = [
        root.join("SentEval").join("data").join("downstream"),
        root.join("data").join("downstream"),
        root.join("downstream"),
    ];
    for c in &candidates {
        if c.is_dir() {
            return Ok(c.clone());
        }
    }
    if root.join("STS").is_dir() || root.join("SICK").is_dir() {
        return Ok(root.to_path_buf());
    }
    bail!(
        "{}: no SentEval data found (expected {})",
        root.display(),
        candidates[0].display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_python_split_join() {
        assert_eq!(
            normalize_sentence("  A  man\tis\u{a0}here . "),
            "A man is here ."
        );
        // U+001F is whitespace to Python, not to Rust's char::is_whitespace.
        assert_eq!(normalize_sentence("a\u{1f}b"), "a b");
        // Zero-width space and BOM are not whitespace to Python; casing is kept.
        assert_eq!(
            normalize_sentence("\u{feff}A\u{200b}B"),
            "\u{feff}A\u{200b}B"
        );
        assert_eq!(normalize_sentence(" \t "), "");
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
        assert_eq!(py_splitlines("\n"), vec![""]);
        assert_eq!(py_splitlines("a\nb\n"), vec!["a", "b"]);
        assert_eq!(py_splitlines("a\r\nb\rc"), vec!["a", "b", "c"]);
        assert_eq!(py_splitlines("a\n\nb"), vec!["a", "", "b"]);
        assert_eq!(
            py_splitlines("a\u{0c}b\u{2028}c\u{85}d\u{1e}e"),
            vec!["a", "b", "c", "d", "e"]
        );
        assert_eq!(universal_lines("a\r\nb\rc\n"), vec!["a", "b", "c"]);
        assert_eq!(universal_lines("a\u{0c}b\n\nc"), vec!["a\u{0c}b", "", "c"]);
    }

    #[test]
    fn scores_parse_like_python_float_but_only_finite() {
        let p = Path::new("f");
        assert_eq!(parse_score(" 4.5 ", p, 1).unwrap(), 4.5);
        assert_eq!(parse_score("5", p, 1).unwrap(), 5.0);
        for bad in ["", " ", "x", "nan", "inf", "4,5"] {
            let e = parse_score(bad, p, 7).unwrap_err().to_string();
            assert!(e.starts_with("f:7: score"), "{e}");
        }
    }
}
