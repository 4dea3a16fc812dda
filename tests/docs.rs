//! Every fenced example in README.md and docs/*.md runs, or says why not.
//!
//! Each fenced block is preceded in the markdown source by a marker, an HTML comment that a reader
//! of the rendered page does not see:
//!
//! | marker | what the test does |
//! |---|---|
//! | `<!-- example: run -->` | sh: runs every command (a `\` continues a line) in a sandbox clone with the quick start's database; sql: through `sqlite3`; python: with the reference environment's pandas, the last line's value must be non-empty; each must exit 0 |
//! | `<!-- example: run after: CMD -->` | as `run`, after running CMD (e.g. the export a pandas example reads) |
//! | `<!-- example: run-except PATTERN — why -->` | as `run`, but lines containing PATTERN only have their syntax checked |
//! | `<!-- example: args — why -->` | not run (why): `simsweep` lines are parsed by the real argument parser (`SIMSWEEP_CHECK_ARGS=1`), other lines by `bash -n` |
//! | `<!-- example: output [CMD] -->` | runs CMD (or the block's `$ ` line) and checks that every line of the block has the shape of a line of the real output (numbers, run ids and tags abstracted) |
//! | `<!-- example: output-head CMD -->` | the same for the block's lines up to its first blank line |
//! | `<!-- example: output-fresh CMD -->` | `output`, run in a second sandbox whose database is still empty |
//! | `<!-- example: json CMD -->` | runs CMD; every `"key":` the block shows is a key of the real JSON output |
//! | `<!-- example: plan N -->` | toml: a whole sweep file; `simsweep plan` of it must give N runs |
//! | `<!-- example: alternatives N -->` | toml: each paragraph added to a minimal sweep file must plan, with N runs |
//! | `<!-- example: duckdb — why -->` | sql for DuckDB: the DuckDB-only lines are dropped, the rest runs in `sqlite3` |
//! | `<!-- example: checked-by FILE "PHRASE" — why -->` | output not reproduced here (why): the block and FILE (a test that reproduces it) both contain PHRASE |
//! | `<!-- example: illustration — why -->` | a diagram or a synopsis, not a command (why) |
//!
//! A block without a marker fails the test, so a new example is classified when it is written.

mod common;

use common::{data_dir, missing, repo};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
struct Block {
    file: String,
    line: usize,
    lang: String,
    marker: String,
    body: String,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The documents with examples: README.md and docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

fn blocks_of(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path
        .strip_prefix(repo())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(lang) = l.strip_prefix("```") {
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                body.push(lines[i]);
                i += 1;
            }
            let marker = start
                .checked_sub(1)
                .map(|p| lines[p].trim())
                .and_then(|m| m.strip_prefix("<!-- example:"))
                .and_then(|m| m.strip_suffix("-->"))
                .map(|m| m.trim().to_string())
                .unwrap_or_default();
            out.push(Block {
                file: name.clone(),
                line: start + 1,
                lang: lang.trim().to_string(),
                marker,
                body: body.join("\n"),
            });
        }
        i += 1;
    }
    out
}

/// A line's shape: run ids and numbers abstracted, whitespace collapsed.
fn skeleton(line: &str) -> String {
    line.split_whitespace()
        .map(|tok| {
            if tok.len() == 16 && tok.bytes().all(|b| b.is_ascii_hexdigit()) {
                return "ID".to_string();
            }
            let mut s = String::new();
            let b = tok.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if !b[i].is_ascii() {
                    // A multi-byte character (±, →, …): copied whole.
                    let c = tok[i..].chars().next().unwrap();
                    s.push(c);
                    i += c.len_utf8();
                    continue;
                }
                let signed = (b[i] == b'-' || b[i] == b'+')
                    && i + 1 < b.len()
                    && b[i + 1].is_ascii_digit()
                    && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
                if b[i].is_ascii_digit() || signed {
                    i += 1;
                    loop {
                        let next = |k: usize| b.get(i + k).copied().unwrap_or(0);
                        if next(0).is_ascii_digit() {
                            i += 1;
                        } else if (next(0) == b'.' || next(0) == b'e' || next(0) == b'E')
                            && next(1).is_ascii_digit()
                        {
                            i += 2;
                        } else if (next(0) == b'e' || next(0) == b'E')
                            && next(1) == b'-'
                            && next(2).is_ascii_digit()
                        {
                            i += 3;
                        } else {
                            break;
                        }
                    }
                    s.push('N');
                } else {
                    s.push(b[i] as char);
                    i += 1;
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The commands of an sh block: comments dropped, `\` continuations joined.
fn commands(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in body.lines() {
        let l = l.trim_end();
        let piece = if cur.is_empty() { l } else { l.trim_start() };
        if let Some(head) = piece.strip_suffix('\\') {
            cur.push_str(head.trim_end());
            cur.push(' ');
            continue;
        }
        cur.push_str(piece);
        let c = cur.trim().to_string();
        cur.clear();
        if !c.is_empty() && !c.starts_with('#') {
            out.push(c);
        }
    }
    out
}

/// The `$ ` command of an output block (it may go on over lines until its quotes close) and the
/// output lines after it.
fn dollar_command(body: &str) -> (Option<String>, Vec<String>) {
    let mut lines = body.lines();
    let mut rest = Vec::new();
    let mut cmd: Option<String> = None;
    let quotes = |s: &str| {
        let b = s.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'"' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    };
    while let Some(l) = lines.next() {
        if let Some(c) = l.strip_prefix("$ ") {
            let mut c = c.to_string();
            while quotes(&c) % 2 == 1 {
                let Some(more) = lines.next() else { break };
                c.push(' ');
                c.push_str(more.trim());
            }
            cmd = Some(c);
        } else {
            rest.push(l.to_string());
        }
    }
    (cmd, rest)
}

/// A clone-like sandbox: the repository's sweeps (copied), models and scripts (linked), a
/// `scripts/simsweep` and a `simsweep` on PATH that run the binaries under test, and `../shared`.
struct Sandbox {
    root: tempfile::TempDir,
    clone: PathBuf,
    path: String,
}

impl Sandbox {
    fn new(shared_data: &Path) -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        let clone = root.path().join("clone");
        let shared = root.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        std::os::unix::fs::symlink(shared_data, shared.join("data")).unwrap();
        std::fs::create_dir_all(clone.join("sweeps")).unwrap();
        for e in std::fs::read_dir(repo().join("sweeps")).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, clone.join("sweeps").join(p.file_name().unwrap())).unwrap();
        }
        std::os::unix::fs::symlink(repo().join("models"), clone.join("models")).unwrap();
        // The tiny checkpoints of every architecture (sweeps/encoders.toml, docs/models.md).
        std::fs::create_dir_all(clone.join("tests")).unwrap();
        std::os::unix::fs::symlink(repo().join("tests/fixtures"), clone.join("tests/fixtures"))
            .unwrap();
        std::fs::create_dir_all(clone.join("scripts")).unwrap();
        for e in std::fs::read_dir(repo().join("scripts")).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_owned();
            if name != "simsweep" {
                std::os::unix::fs::symlink(&p, clone.join("scripts").join(name)).unwrap();
            }
        }
        let bin = env!("CARGO_BIN_EXE_simsweep");
        let wrapper = format!("#!/bin/sh\nexec {bin} \"$@\"\n");
        let bindir = root.path().join("bin");
        std::fs::create_dir_all(&bindir).unwrap();
        for w in [clone.join("scripts/simsweep"), bindir.join("simsweep")] {
            std::fs::write(&w, &wrapper).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!(
            "{}:{}",
            bindir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Sandbox { root, clone, path }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.clone)
            .env("PATH", &self.path)
            .env_remove("SIMSWEEP_DB")
            .env_remove("SIMSWEEP_DATA_DIR")
            .env_remove("SIMSWEEP_TOKEN_CACHE")
            .env_remove("SIMSWEEP_CHECK_ARGS");
        c
    }

    /// Run one shell command line; (exit status, stdout + stderr).
    fn sh(&self, line: &str, env: &[(&str, &str)]) -> (i32, String) {
        let mut c = self.command("bash");
        c.args(["-c", line]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }
}

/// Where each example ended up, for the summary.
#[derive(Default)]
struct Tally {
    ran: Vec<String>,
    checked_only: Vec<String>,
    skipped: Vec<String>,
    failures: Vec<String>,
}

struct Ctx<'a> {
    sb: &'a Sandbox,
    fresh: &'a Sandbox,
    outputs: HashMap<String, String>,
    pyref: Option<String>,
    sqlite3: bool,
}

impl Ctx<'_> {
    fn substitute(&self, cmd: &str) -> String {
        if !cmd.contains("{best}") {
            return cmd.to_string();
        }
        let (code, out) = self.sb.sh(
            "sqlite3 results/simsweep.db \"SELECT path FROM checkpoints WHERE kind = 'best' ORDER BY run_pk LIMIT 1\"",
            &[],
        );
        assert_eq!(code, 0, "{out}");
        cmd.replace("{best}", out.trim())
    }

    /// The output of `cmd` in the sandbox (`fresh`: the one with an empty database), run once.
    fn output(&mut self, cmd: &str, fresh: bool) -> Result<String, String> {
        let key = format!("{fresh}:{cmd}");
        if let Some(o) = self.outputs.get(&key) {
            return Ok(o.clone());
        }
        let sb = if fresh { self.fresh } else { self.sb };
        let cmd = self.substitute(cmd);
        let (code, out) = sb.sh(&cmd, &[]);
        if code != 0 {
            return Err(format!("`{cmd}` exited {code}:\n{out}"));
        }
        self.outputs.insert(key, out.clone());
        Ok(out)
    }
}

fn compare_shapes(doc: &[String], actual: &str) -> Result<(), String> {
    let have: BTreeSet<String> = actual.lines().map(skeleton).collect();
    let missing: Vec<&String> = doc
        .iter()
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && t != "…" && !have.contains(&skeleton(l))
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "lines without a line of that shape in the real output:\n{}\nreal output:\n{actual}",
            missing
                .iter()
                .map(|l| format!("  {l}\n    shape: {}", skeleton(l)))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

fn json_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                j += 1;
            }
            let mut k = j + 1;
            while k < b.len() && b[k] == b' ' {
                k += 1;
            }
            if k < b.len() && b[k] == b':' {
                keys.insert(text[start..j].to_string());
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    keys
}

/// Split `why` off a marker's argument: `ARG — why`.
fn reason(arg: &str) -> (&str, &str) {
    match arg.split_once('—') {
        Some((a, w)) => (a.trim(), w.trim()),
        None => (arg.trim(), ""),
    }
}

fn run_block(ctx: &mut Ctx<'_>, b: &Block, tally: &mut Tally) -> Result<(), String> {
    let (kind, arg) = b
        .marker
        .split_once(' ')
        .map_or((b.marker.as_str(), ""), |(k, a)| (k, a.trim()));
    let at = b.at();
    match kind {
        "run" => {
            let after = arg.strip_prefix("after:").map(str::trim);
            if let Some(cmd) = after {
                ctx.output(cmd, false)?;
            }
            match b.lang.as_str() {
                "sh" => {
                    for c in commands(&b.body) {
                        ctx.output(&c, false)?;
                    }
                }
                "sql" => {
                    if !ctx.sqlite3 {
                        tally.skipped.push(format!("{at} (sqlite3 not installed)"));
                        return Ok(());
                    }
                    run_sql(ctx, &b.body)?;
                }
                "python" => {
                    let Some(py) = ctx.pyref.clone() else {
                        tally
                            .skipped
                            .push(format!("{at} (no reference Python with pandas)"));
                        return Ok(());
                    };
                    run_python(ctx.sb, &py, &b.body)?;
                }
                other => return Err(format!("`run` of a {other:?} block")),
            }
            tally.ran.push(at);
        }
        "run-except" => {
            let (pat, why) = reason(arg);
            let pat = pat.trim_matches('"');
            if why.is_empty() {
                return Err("run-except needs a reason".into());
            }
            for c in commands(&b.body) {
                if c.contains(pat) {
                    syntax(ctx.sb, &c)?;
                } else {
                    ctx.output(&c, false)?;
                }
            }
            tally.ran.push(format!("{at} (except {pat}: {why})"));
        }
        "args" => {
            let (_, why) = reason(arg);
            if why.is_empty() {
                return Err("args needs a reason".into());
            }
            for c in commands(&b.body) {
                syntax(ctx.sb, &c)?;
            }
            tally.checked_only.push(format!("{at}: {why}"));
        }
        "output" | "output-head" | "output-fresh" => {
            let (cmd, lines) = dollar_command(&b.body);
            let cmd = if arg.is_empty() {
                cmd.ok_or("an output block without a command")?
            } else {
                arg.trim_matches('`').to_string()
            };
            let lines: Vec<String> = if kind == "output-head" {
                lines
                    .into_iter()
                    .take_while(|l| !l.trim().is_empty())
                    .collect()
            } else {
                lines
            };
            let actual = ctx.output(&cmd, kind == "output-fresh")?;
            compare_shapes(&lines, &actual)?;
            tally.ran.push(at);
        }
        "json" => {
            let cmd = arg.trim_matches('`');
            let actual = ctx.output(cmd, false)?;
            let have = json_keys(&actual);
            let want = json_keys(&b.body);
            let absent: Vec<&String> = want.difference(&have).filter(|k| *k != "...").collect();
            if !absent.is_empty() {
                return Err(format!(
                    "keys the block shows that the real output lacks: {absent:?}\nreal output:\n{actual}"
                ));
            }
            tally.ran.push(at);
        }
        "plan" | "alternatives" => {
            let n: usize = arg
                .parse()
                .map_err(|_| format!("`{kind} N`: {arg:?} is not a count"))?;
            let files: Vec<String> = if kind == "plan" {
                vec![b.body.clone()]
            } else {
                b.body
                    .split("\n\n")
                    .map(|p| {
                        format!(
                            "[sweep]\nname = \"doc-{}\"\n[base]\nmodel.path = \"../models/tiny-bert\"\nmodel.init = \"random\"\ndata.train = [\"wiki1m_for_simcse.head.txt\"]\n{p}\n",
                            b.line
                        )
                    })
                    .collect()
            };
            for (i, text) in files.iter().enumerate() {
                let f = format!("sweeps/doc-{}-{i}.toml", b.line);
                std::fs::write(ctx.fresh.clone.join(&f), text).unwrap();
                let db = format!("results/doc-{}-{i}.db", b.line);
                let out = ctx.output(
                    &format!("simsweep --db {db} --data-dir ../shared/data plan {f}"),
                    true,
                )?;
                let want = format!("{n} runs: {n} new");
                if !out.contains(&want) {
                    return Err(format!("expected `{want}`:\n{text}\n{out}"));
                }
            }
            tally.ran.push(at);
        }
        "duckdb" => {
            let (_, why) = reason(arg);
            if !ctx.sqlite3 {
                tally.skipped.push(format!("{at} (sqlite3 not installed)"));
                return Ok(());
            }
            let sql: Vec<String> = b
                .body
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    !t.starts_with("--") && !t.starts_with("INSTALL") && !t.starts_with("ATTACH")
                })
                .map(|l| l.replace("s.", ""))
                .collect();
            run_sql(ctx, &sql.join("\n"))?;
            tally
                .checked_only
                .push(format!("{at}: {why} (its query ran in sqlite3)"));
        }
        "checked-by" => {
            let (rest, why) = reason(arg);
            let (file, phrase) = rest.split_once(' ').ok_or("checked-by FILE \"PHRASE\"")?;
            let phrase = phrase.trim().trim_matches('"');
            let src =
                std::fs::read_to_string(repo().join(file)).map_err(|e| format!("{file}: {e}"))?;
            if !src.contains(phrase) || !b.body.contains(phrase) {
                return Err(format!(
                    "`{phrase}` must be in the block and in {file} (which checks that output)"
                ));
            }
            tally
                .checked_only
                .push(format!("{at}: {why} ({file} checks \"{phrase}\")"));
        }
        "illustration" => {
            let (_, why) = reason(arg);
            if why.is_empty() {
                return Err("illustration needs a reason".into());
            }
            tally
                .checked_only
                .push(format!("{at}: {why} (not a command)"));
        }
        "" => return Err("no `<!-- example: … -->` marker before this block".into()),
        other => return Err(format!("unknown marker {other:?}")),
    }
    Ok(())
}

fn syntax(sb: &Sandbox, line: &str) -> Result<(), String> {
    let words = line.split_whitespace().collect::<Vec<_>>();
    let simsweep = words
        .first()
        .is_some_and(|w| *w == "simsweep" || *w == "scripts/simsweep");
    if simsweep {
        let (code, out) = sb.sh(line, &[("SIMSWEEP_CHECK_ARGS", "1")]);
        if code != 0 || !out.contains("the arguments parse") {
            return Err(format!("`{line}` does not parse (exit {code}):\n{out}"));
        }
    } else {
        let (code, out) = sb.sh(&format!("bash -n -c {}", shell_quote(line)), &[]);
        if code != 0 {
            return Err(format!("`{line}`: bash -n: {out}"));
        }
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn run_sql(ctx: &Ctx<'_>, sql: &str) -> Result<(), String> {
    let mut c = ctx.sb.command("sqlite3");
    c.args(["-bail", "results/simsweep.db"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.trim().is_empty() {
        return Err(format!(
            "sqlite3 {}:\n{sql}\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn run_python(sb: &Sandbox, py: &str, body: &str) -> Result<(), String> {
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    let (last, head) = lines.split_last().ok_or("an empty block")?;
    let code = format!(
        "{}\n_r = ({})\nprint(_r)\nassert _r is not None and not getattr(_r, 'empty', False), 'the example gives nothing'\n",
        head.join("\n"),
        last.split('#').next().unwrap().trim()
    );
    let out = sb.command(py).args(["-c", &code]).output().unwrap();
    if !out.status.success() {
        return Err(format!(
            "python:\n{code}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The reference Python (SIMSWEEP_PYREF) when it has pandas.
fn pyref() -> Option<String> {
    let py = std::env::var("SIMSWEEP_PYREF").ok()?;
    let ok = Command::new(&py)
        .args(["-c", "import pandas"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

#[test]
fn every_fenced_example_in_the_readme_and_docs_runs_or_says_why_not() {
    let all: Vec<Block> = documents().iter().flat_map(|d| blocks_of(d)).collect();
    // Classification first: it needs no data.
    let unmarked: Vec<String> = all
        .iter()
        .filter(|b| b.marker.is_empty())
        .map(Block::at)
        .collect();
    assert!(
        unmarked.is_empty(),
        "blocks without a `<!-- example: … -->` marker: {unmarked:?}"
    );
    let Some(data) = data_dir() else { return };
    let pyref = pyref();
    if pyref.is_none() {
        missing("no reference Python with pandas (SIMSWEEP_PYREF, scripts/pyref.sh): the pandas examples did not run");
    }
    let sqlite3 = Command::new("sqlite3").arg("-version").output().is_ok();
    if !sqlite3 {
        missing(
            "sqlite3 is not installed (scripts/test installs it): the SQL examples did not run",
        );
    }
    let sb = Sandbox::new(&data);
    let fresh = Sandbox::new(&data);
    let mut ctx = Ctx {
        sb: &sb,
        fresh: &fresh,
        outputs: HashMap::new(),
        pyref,
        sqlite3,
    };
    // The quick start first: the database every other example reads.
    let quick = "scripts/simsweep run sweeps/quickstart.toml --data-dir ../shared/data";
    let t0 = std::time::Instant::now();
    ctx.output(quick, false).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "docs: the quick start ran in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Output examples of an empty database before anything writes to the fresh sandbox.
    let mut order: Vec<&Block> = all.iter().collect();
    order.sort_by_key(|b| !b.marker.starts_with("output-fresh"));
    let mut tally = Tally::default();
    for b in order {
        if let Err(e) = run_block(&mut ctx, b, &mut tally) {
            tally.failures.push(format!("{}: {e}", b.at()));
        }
    }
    eprintln!(
        "docs: {} blocks: {} ran, {} checked without running, {} skipped",
        all.len(),
        tally.ran.len(),
        tally.checked_only.len(),
        tally.skipped.len()
    );
    for c in &tally.checked_only {
        eprintln!("  checked only: {c}");
    }
    for s in &tally.skipped {
        eprintln!("  SKIPPED: {s}");
    }
    assert!(
        tally.failures.is_empty(),
        "{} examples failed:\n\n{}",
        tally.failures.len(),
        tally.failures.join("\n\n")
    );
    drop(sb.root);
}

#[test]
fn the_skeleton_of_a_line_abstracts_numbers_and_run_ids() {
    assert_eq!(
        skeleton("[1/4] 961f0502b00242bd step 25/200 loss 2.7819 pos_cos 0.9770 3647 tok/s"),
        "[N/N] ID step N/N loss N pos_cos N N tok/s"
    );
    assert_eq!(
        skeleton("avg             -1.195 ± 0.035  2  -1.220  -1.171"),
        "avg N ± N N N N"
    );
    assert_eq!(skeleton("sv_01 3e-5 x-1"), "sv_N N x-N");
    let (cmd, rest) =
        dollar_command("$ simsweep query \"SELECT a,\n   b FROM t\"\npooling  step\n…");
    assert_eq!(cmd.unwrap(), "simsweep query \"SELECT a, b FROM t\"");
    assert_eq!(rest, vec!["pooling  step", "…"]);
    assert_eq!(
        commands("a \\\n  b   # c\n# only a comment\n\nd"),
        vec!["a b   # c", "d"]
    );
    assert_eq!(
        json_keys(r#"{"a": 1, "b": {"c": "x:y"}, "d" : [1]}"#),
        ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect()
    );
}

/// Every sweep file under sweeps/ plans, with the run count its header states (`# plan: N runs`).
#[test]
fn every_sweep_file_plans_with_the_run_count_it_states() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The GPU sweep names bert-base-uncased on the hub and SimCSE's full corpus: a stand-in
    // checkpoint in a Hugging Face cache layout and the excerpt under the full corpus's name.
    let hub = dir.path().join("hub");
    let snap =
        hub.join("models--bert-base-uncased/snapshots/0000000000000000000000000000000000000000");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(hub.join("models--bert-base-uncased/refs")).unwrap();
    std::fs::write(
        hub.join("models--bert-base-uncased/refs/main"),
        "0000000000000000000000000000000000000000",
    )
    .unwrap();
    let stand_in = common::micro_model(dir.path());
    write_micro_weights(&stand_in, &snap);
    let data2 = dir.path().join("data");
    std::fs::create_dir_all(&data2).unwrap();
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        std::os::unix::fs::symlink(&p, data2.join(p.file_name().unwrap())).unwrap();
    }
    if !data2.join("wiki1m_for_simcse.txt").exists() {
        std::os::unix::fs::symlink(
            data.join("wiki1m_for_simcse.head.txt"),
            data2.join("wiki1m_for_simcse.txt"),
        )
        .unwrap();
    }
    let mut n = 0;
    for e in std::fs::read_dir(repo().join("sweeps")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let want: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("# plan: "))
            .and_then(|l| l.strip_suffix(" runs").or(l.strip_suffix(" run")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no `# plan: N runs` line", p.display()));
        let db = dir
            .path()
            .join(format!("{}.db", p.file_stem().unwrap().to_string_lossy()));
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .arg("--db")
            .arg(&db)
            .arg("--data-dir")
            .arg(&data2)
            .arg("plan")
            .arg(&p)
            .env("HF_HUB_CACHE", &hub)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: {text}", p.display());
        assert!(
            text.contains(&format!("{want} runs: {want} new")),
            "{}: expected {want} runs\n{text}",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 4, "{n} sweep files");
}

/// A pretrained-looking checkpoint for `plan`: the micro model's config and vocabulary and a
/// model.safetensors with every weight a BERT of that shape has (zeros).
fn write_micro_weights(model: &Path, into: &Path) {
    for f in ["config.json", "vocab.txt"] {
        std::fs::copy(model.join(f), into.join(f)).unwrap();
    }
    let (h, i, v, p) = (32usize, 64usize, 30522usize, 512usize);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![v, h]),
        ("embeddings.position_embeddings.weight".into(), vec![p, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("pooler.dense.weight".into(), vec![h, h]),
        ("pooler.dense.bias".into(), vec![h]),
    ];
    let l = "encoder.layer.0";
    for (name, shape) in [
        ("attention.self.query.weight", vec![h, h]),
        ("attention.self.query.bias", vec![h]),
        ("attention.self.key.weight", vec![h, h]),
        ("attention.self.key.bias", vec![h]),
        ("attention.self.value.weight", vec![h, h]),
        ("attention.self.value.bias", vec![h]),
        ("attention.output.dense.weight", vec![h, h]),
        ("attention.output.dense.bias", vec![h]),
        ("attention.output.LayerNorm.weight", vec![h]),
        ("attention.output.LayerNorm.bias", vec![h]),
        ("intermediate.dense.weight", vec![i, h]),
        ("intermediate.dense.bias", vec![i]),
        ("output.dense.weight", vec![h, i]),
        ("output.dense.bias", vec![h]),
        ("output.LayerNorm.weight", vec![h]),
        ("output.LayerNorm.bias", vec![h]),
    ] {
        shapes.push((format!("{l}.{name}"), shape));
    }
    let bytes: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()])
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = shapes
        .iter()
        .zip(&bytes)
        .map(|((n, s), b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize_to_file(views, &None, &into.join("model.safetensors")).unwrap();
}

/// `simsweep COMMAND --help` and docs/cli.md list the same options for each command.
#[test]
fn the_help_of_every_command_and_docs_cli_md_list_the_same_options() {
    let doc = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    // The sections: `## `simsweep CMD …`` (and `###`), up to the next heading. Sections of one
    // command are joined (`run` has one for the local and one for the Slurm executor); a section
    // headed without `simsweep` but naming commands in backticks, as "Selecting runs (`runs`,
    // `best`, `export`)", is shared by them.
    let mut sections: Vec<(String, String, String)> = Vec::new(); // (command, heading, body)
    let mut shared: Vec<(Vec<String>, String)> = Vec::new();
    let mut cur: Option<(String, String, String)> = None;
    let mut cur_shared: Option<(Vec<String>, String)> = None;
    for line in doc.lines() {
        let heading = line.starts_with("## ") || line.starts_with("### ");
        if heading {
            sections.extend(cur.take());
            shared.extend(cur_shared.take());
            if let Some(rest) = line.split_once("`simsweep ").map(|(_, r)| r) {
                let words: Vec<&str> = rest
                    .split(['`', ' '])
                    .take_while(|w| {
                        !w.is_empty()
                            && !w.starts_with('-')
                            && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    })
                    .collect();
                cur = Some((words.join(" "), line.to_string(), String::new()));
            } else {
                let named: Vec<String> = line
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
                    .map(String::from)
                    .collect();
                if !named.is_empty() {
                    cur_shared = Some((named, String::new()));
                }
            }
        } else if let Some(c) = cur.as_mut() {
            c.2.push_str(line);
            c.2.push('\n');
        } else if let Some(c) = cur_shared.as_mut() {
            c.1.push_str(line);
            c.1.push('\n');
        }
    }
    sections.extend(cur.take());
    shared.extend(cur_shared.take());
    let mut by_command: std::collections::BTreeMap<String, (Vec<String>, String)> =
        Default::default();
    for (cmd, heading, body) in sections {
        if cmd.is_empty() {
            continue;
        }
        let e = by_command.entry(cmd.clone()).or_default();
        e.0.push(heading.clone());
        e.1.push_str(&format!("{heading}\n{body}"));
        for (named, text) in &shared {
            if named.contains(&cmd) {
                e.1.push_str(text);
            }
        }
    }
    let options = |text: &str| -> BTreeSet<String> {
        let b = text.as_bytes();
        let mut out = BTreeSet::new();
        let mut i = 0;
        while i + 2 < b.len() {
            if b[i] == b'-'
                && b[i + 1] == b'-'
                && b[i + 2].is_ascii_lowercase()
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-'))
            {
                let s = i;
                i += 2;
                while i < b.len()
                    && (b[i].is_ascii_lowercase() || b[i].is_ascii_digit() || b[i] == b'-')
                {
                    i += 1;
                }
                out.insert(text[s..i].trim_end_matches('-').to_string());
            } else {
                i += 1;
            }
        }
        out
    };
    let global: BTreeSet<String> = ["--db", "--data-dir", "--help", "--version"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (cmd, (headings, doc_text)) in &by_command {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_simsweep"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "simsweep {cmd} --help: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        // Each option line of --help: its long name, and its short one (`-o, --out <OUT>`).
        let mut help_opts: BTreeSet<String> = BTreeSet::new();
        for l in help
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
        {
            let spec = l.split("  ").next().unwrap_or("");
            let long = options(spec).into_iter().next();
            let Some(long) = long.filter(|o| !global.contains(o)) else {
                continue;
            };
            let short = spec
                .strip_prefix('-')
                .filter(|r| r.len() >= 2 && r.as_bytes()[1] == b',')
                .map(|r| format!("-{}", &r[..1]));
            let documented = options(doc_text).contains(&long)
                || short.as_ref().is_some_and(|s| {
                    ["`", " ", "["]
                        .iter()
                        .any(|p| doc_text.contains(&format!("{p}{s} ")))
                });
            if !documented {
                failures.push(format!(
                    "`simsweep {cmd}`: --help lists {long}, docs/cli.md's section of it does not"
                ));
            }
            help_opts.insert(long);
        }
        // What the headings' synopses name must exist.
        for h in headings {
            for o in options(h).into_iter().filter(|o| !global.contains(o)) {
                if !help_opts.contains(&o) {
                    failures.push(format!(
                        "`simsweep {cmd}`: docs/cli.md's heading names {o}, --help does not"
                    ));
                }
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 15,
        "{checked} command sections found in docs/cli.md"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
