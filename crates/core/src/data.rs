//! Training corpora: SimCSE's one-sentence-per-line files, its NLI triplet CSV, and SentEval's SNLI
//! files; deterministic shuffling; parallel, cached tokenization.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One training example: a sentence (unsupervised: its two views differ by dropout only), or a
/// (premise, entailment, contradiction) triplet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Example {
    Single(String),
    Triplet(String, String, String),
}

impl Example {
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Example::Single(s) => vec![s],
            Example::Triplet(a, b, c) => vec![a, b, c],
        }
    }
}

/// A corpus as read, with what was skipped and why.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub examples: Vec<Example>,
    pub supervised: bool,
    pub skipped_empty: usize,
    pub skipped_non_utf8: usize,
    pub skipped_malformed: usize,
    pub files: Vec<PathBuf>,
}

impl Corpus {
    pub fn skipped(&self) -> usize {
        self.skipped_empty + self.skipped_non_utf8 + self.skipped_malformed
    }
}

/// The format a training file is read as: `data.format`, or for `auto`, by its name.
pub fn data_format_of(format: &str, file: &str) -> &'static str {
    match format {
        "lines" => "lines",
        "nli_csv" => "nli_csv",
        "snli" => "snli",
        _ => {
            let name = std::path::Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.ends_with(".csv") {
                "nli_csv"
            } else if name.starts_with("s1.") {
                "snli"
            } else {
                "lines"
            }
        }
    }
}

/// Read the training files of a run. `format` is `data.format` (`auto` picks per file name).
/// Bad lines (empty, non-UTF-8, malformed rows) are skipped and counted; a missing, empty or binary
/// file is an error naming it.
pub fn read_corpus(files: &[PathBuf], format: &str) -> Result<Corpus> {
    let mut corpus = Corpus::default();
    for (i, f) in files.iter().enumerate() {
        let kind = data_format_of(format, &f.to_string_lossy());
        let supervised = kind != "lines";
        if i == 0 {
            corpus.supervised = supervised;
        } else if supervised != corpus.supervised {
            bail!(
                "{}: one run trains on one format; this file is {kind}",
                f.display()
            );
        }
        let before = corpus.examples.len();
        match kind {
            "lines" => read_lines(f, &mut corpus)?,
            "nli_csv" => read_nli_csv(f, &mut corpus)?,
            "snli" => read_snli(f, &mut corpus)?,
            other => bail!("unknown data format {other}"),
        }
        if corpus.examples.len() == before {
            bail!(
                "{}: no usable examples ({} lines skipped)",
                f.display(),
                corpus.skipped()
            );
        }
        corpus.files.push(f.clone());
    }
    Ok(corpus)
}

/// Check a text data file before planning: readable, not empty, no NUL byte (binary), every line
/// valid UTF-8. Reads the file once, line by line (constant memory). The error names the file and,
/// for a bad line, its number (1-based) and the column of the first bad byte.
pub fn check_text_file(path: &Path) -> std::result::Result<(), String> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read data file {}: {e}", path.display()))?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut n = 0usize;
    let mut bytes = 0u64;
    let mut text = false;
    loop {
        line.clear();
        let got = r
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read data file {}: {e}", path.display()))?;
        if got == 0 {
            break;
        }
        n += 1;
        bytes += got as u64;
        if line.contains(&0) {
            return Err(format!(
                "data file {} looks binary (line {n} contains a NUL byte); expected text",
                path.display()
            ));
        }
        if let Err(e) = std::str::from_utf8(&line) {
            let at = e.valid_up_to();
            let col = String::from_utf8_lossy(&line[..at]).chars().count() + 1;
            return Err(format!(
                "data file {}: line {n} is not valid UTF-8 (byte 0x{:02X} at column {col}); convert the file to UTF-8 or remove the line",
                path.display(),
                line[at]
            ));
        }
        text |= line.iter().any(|b| !b.is_ascii_whitespace());
    }
    if bytes == 0 {
        return Err(format!("data file {} is empty", path.display()));
    }
    if !text {
        return Err(format!(
            "data file {} has no text ({n} empty lines)",
            path.display()
        ));
    }
    Ok(())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read data file {}", path.display()))?;
    if bytes.is_empty() {
        bail!("data file {} is empty", path.display());
    }
    // A NUL byte in the first 8 KiB: a binary file, not text.
    if bytes.iter().take(8192).any(|b| *b == 0) {
        bail!(
            "data file {} looks binary (it contains NUL bytes); expected text",
            path.display()
        );
    }
    Ok(bytes)
}

/// Lines of a file (borrowed, not copied), each decoded on its own: a non-UTF-8 line is counted,
/// not fatal.
fn lines_of<'a>(bytes: &'a [u8], corpus: &mut Corpus) -> Vec<&'a str> {
    let mut out = Vec::new();
    for raw in bytes.split(|b| *b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(s) => out.push(s),
            Err(_) => corpus.skipped_non_utf8 += 1,
        }
    }
    // A final newline leaves one empty piece that is not a line.
    if bytes.ends_with(b"\n") && out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

fn read_lines(path: &Path, corpus: &mut Corpus) -> Result<()> {
    let bytes = read_bytes(path)?;
    for line in lines_of(&bytes, corpus) {
        let t = line.trim();
        if t.is_empty() {
            corpus.skipped_empty += 1;
        } else {
            corpus.examples.push(Example::Single(t.to_string()));
        }
    }
    Ok(())
}

/// SimCSE's `nli_for_simcse.csv`: header `sent0,sent1,hard_neg`, RFC 4180 quoting.
fn read_nli_csv(path: &Path, corpus: &mut Corpus) -> Result<()> {
    let bytes = read_bytes(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut records = parse_csv(&text);
    let Some(header) = records.next() else {
        bail!("{}: empty CSV", path.display());
    };
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(a), Some(b), Some(c)) = (col("sent0"), col("sent1"), col("hard_neg")) else {
        bail!(
            "{}:1: expected the header sent0,sent1,hard_neg (SimCSE's nli_for_simcse.csv), found {}",
            path.display(),
            header.join(",")
        );
    };
    for rec in records {
        let get = |i: usize| rec.get(i).map(|s| s.trim().to_string()).unwrap_or_default();
        let (x, y, z) = (get(a), get(b), get(c));
        if rec.len() <= a.max(b).max(c) {
            corpus.skipped_malformed += 1;
        } else if x.is_empty()
            || y.is_empty()
            || z.is_empty()
            || x.contains('\u{FFFD}')
            || y.contains('\u{FFFD}')
            || z.contains('\u{FFFD}')
        {
            if [&x, &y, &z].iter().any(|s| s.contains('\u{FFFD}')) {
                corpus.skipped_non_utf8 += 1;
            } else {
                corpus.skipped_empty += 1;
            }
        } else {
            corpus.examples.push(Example::Triplet(x, y, z));
        }
    }
    Ok(())
}

/// Minimal RFC 4180 reader: quoted fields with doubled quotes, newlines inside quotes.
fn parse_csv(text: &str) -> impl Iterator<Item = Vec<String>> + '_ {
    let mut chars = text.chars().peekable();
    std::iter::from_fn(move || {
        chars.peek()?;
        let mut rec = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => rec.push(std::mem::take(&mut field)),
                (false, '\n') => break,
                (false, '\r') => {}
                (false, c) => field.push(c),
            }
        }
        rec.push(field);
        Some(rec)
    })
}

/// SentEval's SNLI: `s1.X`, `s2.X`, `labels.X` side by side (name the `s1` file). Each premise with
/// an entailed and a contradicting hypothesis becomes one (premise, entailment, contradiction) triplet,
/// as SimCSE builds its supervised data.
fn read_snli(s1: &Path, corpus: &mut Corpus) -> Result<()> {
    let name = s1
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let Some(split) = name.strip_prefix("s1.") else {
        bail!("{}: for SNLI data name the s1.<split> file", s1.display());
    };
    let dir = s1.parent().unwrap_or(Path::new("."));
    let s2 = dir.join(format!("s2.{split}"));
    let labels = dir.join(format!("labels.{split}"));
    let mut skip = Corpus::default();
    let (b1, b2, b3) = (read_bytes(s1)?, read_bytes(&s2)?, read_bytes(&labels)?);
    let p = lines_of(&b1, &mut skip);
    let h = lines_of(&b2, &mut skip);
    let l = lines_of(&b3, &mut skip);
    if p.len() != h.len() || p.len() != l.len() {
        bail!(
            "{}: s1/s2/labels have {}/{}/{} lines; they must align",
            dir.display(),
            p.len(),
            h.len(),
            l.len()
        );
    }
    corpus.skipped_non_utf8 += skip.skipped_non_utf8;
    // premise → (first entailment, first contradiction), in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut pairs: std::collections::HashMap<String, (Option<String>, Option<String>)> =
        Default::default();
    for ((prem, hyp), lab) in p.iter().zip(&h).zip(&l) {
        let (prem, hyp) = (prem.trim(), hyp.trim());
        if prem.is_empty() || hyp.is_empty() {
            corpus.skipped_empty += 1;
            continue;
        }
        let e = pairs.entry(prem.to_string()).or_insert_with(|| {
            order.push(prem.to_string());
            (None, None)
        });
        match lab.trim() {
            "entailment" => {
                e.0.get_or_insert_with(|| hyp.to_string());
            }
            "contradiction" => {
                e.1.get_or_insert_with(|| hyp.to_string());
            }
            "neutral" => {}
            _ => corpus.skipped_malformed += 1,
        }
    }
    for prem in order {
        if let Some((Some(ent), Some(con))) = pairs.remove(&prem) {
            corpus.examples.push(Example::Triplet(prem, ent, con));
        }
    }
    Ok(())
}

/// A deterministic permutation of `0..n` from a seed (Fisher–Yates with SplitMix64), identical on
/// every platform and version.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed ^ 0x6a09_e667_f3bc_c908;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn lines_skip_and_count_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "w.txt",
            b"first sentence\n\n  \nsecond\xff bad\r\nthird one\r\n",
        );
        let c = read_corpus(&[f], "auto").unwrap();
        assert_eq!(
            c.examples,
            vec![
                Example::Single("first sentence".into()),
                Example::Single("third one".into())
            ]
        );
        assert_eq!((c.skipped_empty, c.skipped_non_utf8), (2, 1));
        assert!(!c.supervised);
    }

    #[test]
    fn the_plan_check_accepts_text_and_names_the_first_bad_line() {
        let d = tempfile::tempdir().unwrap();
        // CRLF endings, no final newline, multi-byte characters, blank lines: all fine.
        let ok = write(
            d.path(),
            "ok.txt",
            "naïve café\r\n\r\nlast — line".as_bytes(),
        );
        assert_eq!(check_text_file(&ok), Ok(()));
        let bad = write(
            d.path(),
            "bad.txt",
            b"one\r\nt\xc3\xa9\xe2\x82 cut\r\n\xff\n",
        );
        let msg = check_text_file(&bad).unwrap_err();
        assert!(
            msg.ends_with("bad.txt: line 2 is not valid UTF-8 (byte 0xE2 at column 3); convert the file to UTF-8 or remove the line"),
            "{msg}"
        );
        let nul = write(d.path(), "nul.txt", b"text\nmore\n\x00\n");
        assert!(check_text_file(&nul)
            .unwrap_err()
            .ends_with("nul.txt looks binary (line 3 contains a NUL byte); expected text"));
        assert!(check_text_file(&d.path().join("none.txt"))
            .unwrap_err()
            .starts_with("cannot read data file "));
    }

    #[test]
    fn bad_files_are_errors_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let e = write(d.path(), "e.txt", b"");
        assert!(read_corpus(&[e], "auto")
            .unwrap_err()
            .to_string()
            .contains("e.txt is empty"));
        let b = write(d.path(), "b.txt", b"abc\0def\n");
        assert!(read_corpus(&[b], "auto")
            .unwrap_err()
            .to_string()
            .contains("looks binary"));
        let m = d.path().join("missing.txt");
        assert!(read_corpus(&[m], "auto")
            .unwrap_err()
            .to_string()
            .contains("cannot read data file"));
        let blank = write(d.path(), "blank.txt", b"\n\n");
        assert!(read_corpus(&[blank], "auto")
            .unwrap_err()
            .to_string()
            .contains("no usable examples"));
    }

    #[test]
    fn nli_csv_with_quotes() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "nli.csv",
            b"sent0,sent1,hard_neg\n\"A man, walking.\",A person walks.,Nobody walks.\n\"She said \"\"hi\"\"\",x,y\nonly,two\n,a,b\n",
        );
        let c = read_corpus(&[f], "auto").unwrap();
        assert!(c.supervised);
        assert_eq!(
            c.examples,
            vec![
                Example::Triplet(
                    "A man, walking.".into(),
                    "A person walks.".into(),
                    "Nobody walks.".into()
                ),
                Example::Triplet("She said \"hi\"".into(), "x".into(), "y".into()),
            ]
        );
        assert_eq!((c.skipped_malformed, c.skipped_empty), (1, 1));
        let bad = write(d.path(), "bad.csv", b"a,b\n1,2\n");
        assert!(read_corpus(&[bad], "auto")
            .unwrap_err()
            .to_string()
            .contains("expected the header sent0,sent1,hard_neg"));
    }

    #[test]
    fn snli_triplets_pair_entailment_with_contradiction() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "s1.dev", b"P1\nP1\nP1\nP2\nP2\nP3\n");
        write(d.path(), "s2.dev", b"e1\nn1\nc1\ne2\nn2\nc3\n");
        write(
            d.path(),
            "labels.dev",
            b"entailment\nneutral\ncontradiction\nentailment\nneutral\ncontradiction\n",
        );
        let c = read_corpus(&[d.path().join("s1.dev")], "auto").unwrap();
        assert_eq!(
            c.examples,
            vec![Example::Triplet("P1".into(), "e1".into(), "c1".into())]
        );
    }

    #[test]
    fn the_shared_snli_dev_gives_triplets() {
        let Some(root) = std::env::var_os("SIMSWEEP_DATA_DIR").map(PathBuf::from) else {
            eprintln!("skipped: SIMSWEEP_DATA_DIR not set");
            return;
        };
        let f = root.join("SentEval/data/downstream/SNLI/s1.dev");
        if !f.is_file() {
            eprintln!("skipped: {} not found", f.display());
            return;
        }
        let c = read_corpus(&[f], "auto").unwrap();
        // 9842 pairs; 2943 premises have both an entailed and a contradicting hypothesis.
        assert_eq!(c.examples.len(), 2943);
        assert!(c.examples.iter().all(
            |e| matches!(e, Example::Triplet(a, b, c) if !a.is_empty() && !b.is_empty() && !c.is_empty())
        ));
    }

    #[test]
    fn permutation_is_deterministic_and_complete() {
        let p = permutation(1000, 7);
        assert_eq!(p, permutation(1000, 7));
        assert_ne!(p, permutation(1000, 8));
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(&permutation(5, 42), &permutation(5, 42));
    }
}
