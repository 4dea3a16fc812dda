//! Sweep files: TOML → validated, fully resolved run configurations.
//!
//! `parse` reads a sweep file, checks every key and value against [`schema::KEYS`], expands
//! `[grid]` × `[[zip]]` × `[random]` × seeds, drops `[[exclude]]`d combinations, fills defaults,
//! checks each run's settings together, and gives every run a stable id (a hash of its canonical
//! config). Every error names the file, line, column and key.

pub mod config;
pub mod schema;
pub mod search;
pub mod value;

use schema::{lookup, KeySpec, Kind, KEYS};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The most runs one sweep may expand to; larger sweeps are refused before planning.
pub const MAX_RUNS: u128 = 100_000;

type Span = Range<usize>;

/// One problem in a sweep file.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: a problem with the file as a whole (it cannot be read).
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        }
        if let Some(k) = &self.key {
            write!(f, "key `{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in a sweep file, one per line.
#[derive(Debug, Clone)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl SpecErrors {
    /// In file order (a missing-key error at 1:1 first).
    fn sorted(mut errors: Vec<SpecError>) -> Self {
        errors.sort_by_key(|e| (e.line, e.col));
        SpecErrors(errors)
    }
}

/// A planned run: its identity, the values of the swept keys, and the fully resolved settings.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// 16 hex digits of SHA-256 over the sweep name and the canonical config.
    pub id: String,
    /// Position in expansion order (0-based).
    pub ordinal: usize,
    pub seed: i64,
    /// The swept keys (and `seed`) with this run's values.
    pub params: BTreeMap<String, Value>,
    /// Every setting, defaults filled in, plus `seed`: the flat dotted-key map.
    pub config: BTreeMap<String, Value>,
    /// The JSON that the id hashes: identity settings that differ from their defaults, plus `seed`.
    pub canonical: String,
}

/// A path-valued setting as written in the file, for checks against the file system.
#[derive(Debug, Clone)]
pub struct PathMention {
    pub key: String,
    pub value: String,
    pub line: usize,
    pub col: usize,
}

/// A parsed, validated and expanded sweep file.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    pub text: String,
    pub seeds: Vec<i64>,
    /// Keys varied by `[grid]`, `[[zip]]` or `[random]`, in file order (`seed` not included).
    pub swept_keys: Vec<String>,
    pub runs: Vec<PlannedRun>,
    pub warnings: Vec<String>,
    /// Every path setting (model.path, model.hub, data.train, probe.sentences) given in the file.
    pub paths: Vec<PathMention>,
    /// `[search]`: early stopping of hopeless settings.
    pub search: Option<search::Search>,
    /// `[sweep] order = "shuffle"`: the seed of the shuffle (runs carry the shuffled ordinals).
    pub shuffle_seed: Option<u64>,
}

impl Sweep {
    /// Keys shown in tables: swept keys, then `seed` when more than one seed is used.
    pub fn display_keys(&self) -> Vec<String> {
        let mut k = self.swept_keys.clone();
        if self.seeds.len() > 1 {
            k.push("seed".into());
        }
        k
    }
}

/// Read and parse a sweep file.
pub fn load(path: &Path) -> Result<Sweep, SpecErrors> {
    let text = std::fs::read(path).map_err(|e| {
        SpecErrors(vec![SpecError {
            file: path.into(),
            line: 0,
            col: 0,
            key: None,
            message: format!("cannot read sweep file: {e}"),
        }])
    })?;
    let text = String::from_utf8(text).map_err(|e| {
        let (line, col) = line_col_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
        SpecErrors(vec![SpecError {
            file: path.into(),
            line,
            col,
            key: None,
            message: "the sweep file is not valid UTF-8".into(),
        }])
    })?;
    parse(path, &text)
}

fn line_col_bytes(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<SpecError>,
}

impl Ctx<'_> {
    fn pos(&self, span: &Span) -> (usize, usize) {
        line_col_bytes(self.text.as_bytes(), span.start)
    }
    /// Extend a key's span back over the dotted key it ends (`train.lr`: from `t`, not `l`).
    fn dotted_key_start(&self, span: Span) -> Span {
        let b = self.text.as_bytes();
        let mut i = span.start.min(b.len());
        while i > 0 && (b[i - 1].is_ascii_alphanumeric() || b"_-.\"' \t".contains(&b[i - 1])) {
            i -= 1;
        }
        let line_start = i == 0 || b[i - 1] == b'\n';
        if line_start {
            while i < span.start && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            i..span.end
        } else {
            span
        }
    }
    fn err(&mut self, span: &Span, key: Option<&str>, message: impl Into<String>) {
        let (line, col) = self.pos(span);
        let e = SpecError {
            file: self.file.into(),
            line,
            col,
            key: key.map(str::to_string),
            message: message.into(),
        };
        if !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }
}

/// A value given in the file for a setting, with where it was written.
#[derive(Clone, Debug)]
struct Given {
    value: Value,
    span: Span,
}

/// One axis of the expansion: each choice sets one or more keys.
struct Axis {
    keys: Vec<String>,
    /// choices[i][k] is the value of keys[k] for choice i.
    choices: Vec<Vec<Given>>,
}

struct Exclude {
    span: Span,
    /// key → accepted values (any of them matches)
    conds: Vec<(String, Vec<Value>)>,
    matched: usize,
}

fn unknown_key_msg(path: &str) -> String {
    let hint = schema::suggest(path, KEYS.iter().map(|k| k.key))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    format!("unknown setting{hint}")
}

/// Called for each setting found: (context, the setting, its value, the span of its key).
type LeafFn<'f, 'i> = dyn FnMut(&mut Ctx<'_>, &'static KeySpec, &Spanned<DeValue<'i>>, Span) + 'f;

/// Walk a table of settings written either as dotted keys or nested tables, calling `leaf` for
/// every setting with the span of its key. A dotted key (`train.lr = ..`) is located at its first
/// segment, a key inside a nested table (`[grid.train]` then `lr = ..`) at its own line.
fn walk_settings<'i>(
    cx: &mut Ctx<'_>,
    prefix: &str,
    table: &DeTable<'i>,
    leaf: &mut LeafFn<'_, 'i>,
) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        let kspan = cx.dotted_key_start(k.span());
        if let Some(spec) = lookup(&path) {
            leaf(cx, spec, v, kspan);
        } else if schema::is_section(&path) {
            match v.get_ref() {
                DeValue::Table(t) => walk_settings(cx, &path, t, leaf),
                _ => cx.err(&v.span(), Some(&path), "expected a table of settings"),
            }
        } else if path == "seed" {
            cx.err(
                &kspan,
                Some(&path),
                "seeds are set by `seeds = [..]` in [sweep]",
            );
        } else {
            cx.err(&kspan, Some(&path), unknown_key_msg(&path));
        }
    }
}

fn as_table<'a, 'i>(
    cx: &mut Ctx<'_>,
    name: &str,
    v: &'a Spanned<DeValue<'i>>,
) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            cx.err(
                &v.span(),
                Some(name),
                format!("expected a table ([{name}]), found {}", other.type_str()),
            );
            None
        }
    }
}

/// `[[zip]]`/`[[exclude]]`: an array of tables (a single `[zip]` table is accepted as one).
fn as_tables<'a, 'i>(
    cx: &mut Ctx<'_>,
    name: &str,
    v: &'a Spanned<DeValue<'i>>,
) -> Vec<(Span, &'a DeTable<'i>)> {
    match v.get_ref() {
        DeValue::Table(t) => vec![(v.span(), t)],
        DeValue::Array(a) => {
            let mut out = Vec::new();
            for item in a.iter() {
                match item.get_ref() {
                    DeValue::Table(t) => out.push((item.span(), t)),
                    other => cx.err(
                        &item.span(),
                        Some(name),
                        format!("expected tables ([[{name}]]), found {}", other.type_str()),
                    ),
                }
            }
            out
        }
        other => {
            cx.err(
                &v.span(),
                Some(name),
                format!("expected [[{name}]] tables, found {}", other.type_str()),
            );
            Vec::new()
        }
    }
}

fn check_given(cx: &mut Ctx<'_>, spec: &KeySpec, v: &Spanned<DeValue<'_>>) -> Option<Given> {
    let json = match value::to_json(v.get_ref()) {
        Ok(j) => j,
        Err(e) => {
            cx.err(&v.span(), Some(spec.key), e);
            return None;
        }
    };
    match value::check_json(spec, &json) {
        Ok(value) => Some(Given {
            value,
            span: v.span(),
        }),
        Err(e) => {
            cx.err(&v.span(), Some(spec.key), e);
            None
        }
    }
}

/// The values of an axis: a non-empty array, each element checked against the key.
fn axis_values(
    cx: &mut Ctx<'_>,
    spec: &KeySpec,
    v: &Spanned<DeValue<'_>>,
    table: &str,
) -> Option<Vec<Given>> {
    let DeValue::Array(items) = v.get_ref() else {
        cx.err(
            &v.span(),
            Some(spec.key),
            format!(
                "[{table}] values must be an array of values to try, found {}",
                v.get_ref().type_str()
            ),
        );
        return None;
    };
    if items.is_empty() {
        cx.err(
            &v.span(),
            Some(spec.key),
            format!("[{table}] lists no values: give at least one"),
        );
        return None;
    }
    let mut out: Vec<Given> = Vec::new();
    let mut ok = true;
    for item in items.iter() {
        // In a [[zip]] row, `{}` leaves the key unset (so that, e.g., each loss of a zip group gets
        // only the parameters it takes).
        if table == "zip" && matches!(item.get_ref(), DeValue::Table(t) if t.is_empty()) {
            out.push(Given {
                value: Value::Null,
                span: item.span(),
            });
            continue;
        }
        match check_given(cx, spec, item) {
            Some(g) => out.push(g),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn type_str(v: &DeValue<'_>) -> &'static str {
    v.type_str()
}

/// Parse a sweep file's text. `file` is used in messages and to resolve relative model paths.
pub fn parse(file: &Path, text: &str) -> Result<Sweep, SpecErrors> {
    let mut cx = Ctx {
        file,
        text,
        errors: Vec::new(),
    };
    let doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().replace('\n', "; ");
            // The parser points at the last segment of a duplicate dotted key: name all of it.
            let key = msg.starts_with("duplicate key").then(|| {
                let full = cx.dotted_key_start(span.clone());
                let k: String = text
                    .get(full.clone())
                    .unwrap_or("")
                    .chars()
                    .filter(|c| !matches!(c, '"' | '\'' | ' ' | '\t' | '[' | ']'))
                    .collect();
                (full, k)
            });
            match key {
                Some((full, k)) if !k.is_empty() => cx.err(
                    &full,
                    Some(&k),
                    format!("invalid TOML: {msg}: it is set twice"),
                ),
                _ => cx.err(&span, None, format!("invalid TOML: {msg}")),
            }
            return Err(SpecErrors::sorted(cx.errors));
        }
    };
    let doc = doc.get_ref();

    let mut name = None;
    let mut description = String::new();
    let mut seeds: Vec<i64> = vec![42];
    let mut base: Vec<(String, Given)> = Vec::new();
    let mut axes: Vec<Axis> = Vec::new();
    let mut axis_origin: HashMap<String, (&'static str, Span)> = HashMap::new();
    let mut excludes: Vec<Exclude> = Vec::new();
    let mut random_dups = false;
    let mut paths: Vec<(String, Given)> = Vec::new();
    let mut sweep_span = 0..0;
    let mut search: Option<(search::Search, search::SearchSpans)> = None;
    let mut order_shuffle = false;
    let mut order_seed: Option<(u64, Span)> = None;

    for (top, v) in doc.iter() {
        let topk = top.get_ref().as_ref();
        match topk {
            "sweep" => {
                sweep_span = top.span();
                let Some(t) = as_table(&mut cx, "sweep", v) else {
                    continue;
                };
                for (k, sv) in t.iter() {
                    let key = format!("sweep.{}", k.get_ref());
                    match k.get_ref().as_ref() {
                        "name" => match sv.get_ref().as_str() {
                            Some(n) if valid_name(n) => name = Some(n.to_string()),
                            Some(_) => cx.err(&sv.span(), Some(&key), "a sweep name is 1–100 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"),
                            None => cx.err(&sv.span(), Some(&key), format!("expected a string, found {}", type_str(sv.get_ref()))),
                        },
                        "description" => match sv.get_ref().as_str() {
                            Some(d) => description = d.to_string(),
                            None => cx.err(&sv.span(), Some(&key), format!("expected a string, found {}", type_str(sv.get_ref()))),
                        },
                        "seeds" => match value::to_json(sv.get_ref()) {
                            Ok(Value::Array(a)) if !a.is_empty() => {
                                let mut s = Vec::new();
                                let mut listed = std::collections::HashSet::new();
                                for x in &a {
                                    match x.as_i64().filter(|i| *i >= 0) {
                                        Some(i) if !listed.insert(i) => cx.err(&sv.span(), Some(&key), format!("seed {i} is listed twice")),
                                        Some(i) => s.push(i),
                                        None => cx.err(&sv.span(), Some(&key), format!("expected integers ≥ 0, found {}", value::describe(x))),
                                    }
                                }
                                seeds = s;
                            }
                            Ok(Value::Array(_)) => cx.err(&sv.span(), Some(&key), "lists no seeds: give at least one"),
                            _ => cx.err(&sv.span(), Some(&key), "expected an array of integer seeds, e.g. seeds = [1, 2, 3]"),
                        },
                        "order" => match sv.get_ref().as_str() {
                            Some("plan") => order_shuffle = false,
                            Some("shuffle") => order_shuffle = true,
                            Some(o) => cx.err(&sv.span(), Some(&key), format!("unknown order `{o}`: expected \"plan\" (the expansion order, the default) or \"shuffle\"")),
                            None => cx.err(&sv.span(), Some(&key), format!("expected \"plan\" or \"shuffle\", found {}", type_str(sv.get_ref()))),
                        },
                        "order_seed" => match value::to_json(sv.get_ref()).ok().and_then(|j| j.as_i64()) {
                            Some(i) if i >= 0 => order_seed = Some((i as u64, sv.span())),
                            _ => cx.err(&sv.span(), Some(&key), "expected an integer ≥ 0 (the seed of the shuffled order)"),
                        },
                        other => {
                            let hint = (other == "seed")
                                .then(|| " (did you mean `sweep.seeds`, the runs' seeds, or `sweep.order_seed`, the seed of a shuffled order?)".to_string())
                                .or_else(|| schema::suggest(other, schema::SWEEP_KEYS.iter().copied())
                                .map(|s| format!(" (did you mean `sweep.{s}`?)")))
                                .unwrap_or_else(|| " ([sweep] takes name, description, seeds, order, order_seed)".into());
                            cx.err(&k.span(), Some(&key), format!("unknown setting{hint}"));
                        }
                    }
                }
            }
            "base" => {
                let Some(t) = as_table(&mut cx, "base", v) else {
                    continue;
                };
                walk_settings(&mut cx, "", t, &mut |cx, spec, v, _kspan| {
                    if let Some(g) = check_given(cx, spec, v) {
                        base.push((spec.key.to_string(), g));
                    }
                });
            }
            "grid" => {
                let Some(t) = as_table(&mut cx, "grid", v) else {
                    continue;
                };
                let mut found = Vec::new();
                walk_settings(&mut cx, "", t, &mut |cx, spec, v, kspan| {
                    if let Some(vals) = axis_values(cx, spec, v, "grid") {
                        found.push((spec.key.to_string(), kspan, vals));
                    }
                });
                for (key, kspan, vals) in found {
                    if let Some(d) = first_duplicate(&vals) {
                        cx.err(
                            &vals[d].span,
                            Some(&key),
                            format!("[grid] lists {} twice", value::display(&vals[d].value)),
                        );
                        continue;
                    }
                    if let Some((t, s)) = axis_origin.get(&key) {
                        let line = cx.pos(s).0;
                        cx.err(
                            &kspan,
                            Some(&key),
                            format!("is already varied in {t} (line {line})"),
                        );
                        continue;
                    }
                    axis_origin.insert(key.clone(), ("[grid]", kspan));
                    axes.push(Axis {
                        keys: vec![key],
                        choices: vals.into_iter().map(|g| vec![g]).collect(),
                    });
                }
            }
            "zip" => {
                for (gspan, t) in as_tables(&mut cx, "zip", v) {
                    let mut found: Vec<(String, Span, Vec<Given>)> = Vec::new();
                    walk_settings(&mut cx, "", t, &mut |cx, spec, v, kspan| {
                        if let Some(vals) = axis_values(cx, spec, v, "zip") {
                            found.push((spec.key.to_string(), kspan, vals));
                        }
                    });
                    if found.is_empty() {
                        if t.is_empty() {
                            cx.err(
                                &gspan,
                                Some("zip"),
                                "an empty [[zip]] group: list at least one key",
                            );
                        }
                        continue;
                    }
                    let n = found[0].2.len();
                    let mut bad = false;
                    for (key, kspan, vals) in &found[1..] {
                        if vals.len() != n {
                            cx.err(kspan, Some(key), format!(
                                "[[zip]] lists must have equal lengths: `{}` has {n} values, `{key}` has {}",
                                found[0].0,
                                vals.len()
                            ));
                            bad = true;
                        }
                    }
                    for (key, kspan, _) in &found {
                        if let Some((t, s)) = axis_origin.get(key) {
                            let line = cx.pos(s).0;
                            cx.err(kspan, Some(key), format!("is already varied in {t} (line {line}); a key may be in [grid] or one [[zip]], not both"));
                            bad = true;
                        }
                    }
                    if bad {
                        continue;
                    }
                    let rows: Vec<Vec<Given>> = (0..n)
                        .map(|i| found.iter().map(|(_, _, v)| v[i].clone()).collect())
                        .collect();
                    if let Some(d) = first_duplicate_rows(&rows) {
                        cx.err(
                            &rows[d][0].span,
                            Some(&found[0].0),
                            format!("[[zip]] row {} repeats an earlier row", d + 1),
                        );
                        continue;
                    }
                    for (key, kspan, _) in &found {
                        axis_origin.insert(key.clone(), ("[[zip]]", kspan.clone()));
                    }
                    axes.push(Axis {
                        keys: found.iter().map(|f| f.0.clone()).collect(),
                        choices: rows,
                    });
                }
            }
            "random" => {
                let Some(t) = as_table(&mut cx, "random", v) else {
                    continue;
                };
                if let Some((axis, dups)) = parse_random(&mut cx, t, &v.span(), &mut axis_origin) {
                    random_dups = dups;
                    axes.push(axis);
                }
            }
            "search" => {
                let Some(t) = as_table(&mut cx, "search", v) else {
                    continue;
                };
                search = search::parse(&mut cx, t, top.span());
            }
            "exclude" => {
                for (espan, t) in as_tables(&mut cx, "exclude", v) {
                    let mut conds = Vec::new();
                    walk_settings(&mut cx, "", t, &mut |cx, spec, v, _| {
                        // A list of alternatives is allowed for settings whose value is not itself a list.
                        let alts: Vec<Given> = match v.get_ref() {
                            DeValue::Array(items) if !value::is_list_kind(&spec.kind) => items
                                .iter()
                                .filter_map(|x| check_given(cx, spec, x))
                                .collect(),
                            _ => check_given(cx, spec, v).into_iter().collect(),
                        };
                        if !alts.is_empty() {
                            conds.push((
                                spec.key.to_string(),
                                alts.into_iter().map(|g| g.value).collect(),
                            ));
                        }
                    });
                    if t.is_empty() {
                        cx.err(
                            &espan,
                            Some("exclude"),
                            "an empty [[exclude]] would drop every run: list the keys to match",
                        );
                    } else if !conds.is_empty() {
                        excludes.push(Exclude {
                            span: espan,
                            conds,
                            matched: 0,
                        });
                    }
                }
            }
            other => {
                let hint = schema::suggest(other, schema::TOP_LEVEL.iter().copied())
                    .map(|s| format!(" (did you mean [{s}]?)"))
                    .unwrap_or_else(|| " (a sweep file has [sweep], [base], [grid], [[zip]], [[exclude]], [random] and [search])".into());
                cx.err(&top.span(), Some(other), format!("unknown table{hint}"));
            }
        }
    }
    let Some(name) = name else {
        if !doc.contains_key("sweep") {
            cx.err(
                &(0..0),
                Some("sweep.name"),
                "missing [sweep] table with a name, e.g. [sweep] name = \"my-sweep\"",
            );
        } else if !cx
            .errors
            .iter()
            .any(|e| e.key.as_deref() == Some("sweep.name"))
        {
            cx.err(
                &sweep_span,
                Some("sweep.name"),
                "missing: every sweep needs a name",
            );
        }
        return Err(SpecErrors::sorted(cx.errors));
    };
    if !cx.errors.is_empty() {
        return Err(SpecErrors::sorted(cx.errors));
    }

    // Path settings, collected once for file-system checks.
    for (k, g) in &base {
        paths.push((k.clone(), g.clone()));
    }
    for a in &axes {
        for c in &a.choices {
            for (k, g) in a.keys.iter().zip(c) {
                paths.push((k.clone(), g.clone()));
            }
        }
    }
    let mut path_mentions = Vec::new();
    for (k, g) in paths {
        if !matches!(
            k.as_str(),
            "model.path" | "model.hub" | "data.train" | "probe.sentences"
        ) {
            continue;
        }
        let (line, col) = cx.pos(&g.span);
        let values: Vec<String> = match &g.value {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        };
        for value in values {
            if k == "probe.sentences" && value == "stsb-dev" {
                continue;
            }
            path_mentions.push(PathMention {
                key: k.clone(),
                value,
                line,
                col,
            });
        }
    }

    // Refuse an oversized sweep before building anything.
    let mut total: u128 = seeds.len() as u128;
    let mut factors = Vec::new();
    for a in &axes {
        total = total.saturating_mul(a.choices.len() as u128);
        factors.push(format!("{} ({})", a.choices.len(), a.keys.join(", ")));
    }
    factors.push(format!(
        "{} seed{}",
        seeds.len(),
        if seeds.len() == 1 { "" } else { "s" }
    ));
    if total > MAX_RUNS {
        let at = axes
            .first()
            .and_then(|a| a.choices.first())
            .and_then(|c| c.first())
            .map(|g| g.span.clone())
            .unwrap_or(0..0);
        // u128 saturates past 3.4 × 10^38 runs: say so rather than print its maximum as a count.
        let count = if total == u128::MAX {
            "more than 10^38".to_string()
        } else {
            total.to_string()
        };
        cx.err(&at, None, format!(
            "the sweep expands to {count} runs ({}), more than the limit of {MAX_RUNS}; split it into smaller sweeps",
            factors.join(" × ")
        ));
        return Err(SpecErrors::sorted(cx.errors));
    }

    let swept_keys: Vec<String> = axes.iter().flat_map(|a| a.keys.clone()).collect();
    let base_map: BTreeMap<String, Given> = base.into_iter().collect();
    let mut runs: Vec<PlannedRun> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut warnings = Vec::new();
    let mut dup_random = 0usize;
    let radices: Vec<usize> = axes.iter().map(|a| a.choices.len()).collect();
    let combos: usize = radices.iter().product();
    for combo in 0..combos {
        // Mixed-radix digits, last axis fastest.
        let mut rem = combo;
        let mut picks = vec![0usize; axes.len()];
        for (i, r) in radices.iter().enumerate().rev() {
            picks[i] = rem % r;
            rem /= r;
        }
        let mut given = base_map.clone();
        for (a, &p) in axes.iter().zip(&picks) {
            for (k, g) in a.keys.iter().zip(&a.choices[p]) {
                if !g.value.is_null() {
                    given.insert(k.clone(), g.clone());
                }
            }
        }
        for &seed in &seeds {
            let config = match resolve(&mut cx, &given, seed) {
                Some(c) => c,
                None => continue,
            };
            if let Some(ex) = excludes.iter_mut().find(|ex| matches_exclude(ex, &config)) {
                ex.matched += 1;
                continue;
            }
            let canonical = canonical_json(&config);
            let id = run_id(&name, &canonical);
            if let Some(&prev) = seen.get(&id) {
                if random_dups {
                    dup_random += 1;
                    continue;
                }
                let show = |r: &BTreeMap<String, Value>| {
                    swept_keys
                        .iter()
                        .map(|k| {
                            format!("{k}={}", value::display(r.get(k).unwrap_or(&Value::Null)))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                cx.err(&(0..0), None, format!(
                    "two combinations resolve to the same run settings ({}) and ({}); remove one of them",
                    show(&runs[prev].config),
                    show(&config)
                ));
                continue;
            }
            seen.insert(id.clone(), runs.len());
            let mut params: BTreeMap<String, Value> = swept_keys
                .iter()
                .map(|k| (k.clone(), config.get(k).cloned().unwrap_or(Value::Null)))
                .collect();
            params.insert("seed".into(), seed.into());
            runs.push(PlannedRun {
                id,
                ordinal: runs.len(),
                seed,
                params,
                config,
                canonical,
            });
        }
    }
    if !cx.errors.is_empty() {
        return Err(SpecErrors::sorted(cx.errors));
    }
    for ex in &excludes {
        if ex.matched == 0 {
            let (line, col) = cx.pos(&ex.span);
            warnings.push(format!(
                "{}:{line}:{col}: [[exclude]] matches no run ({}); check its keys and values",
                file.display(),
                ex.conds
                    .iter()
                    .map(|(k, v)| format!(
                        "{k} = {}",
                        v.iter().map(value::display).collect::<Vec<_>>().join(" | ")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if dup_random > 0 {
        warnings.push(format!(
            "[random] drew {dup_random} duplicate settings; kept each once"
        ));
    }
    if runs.is_empty() {
        cx.err(
            &(0..0),
            None,
            "every combination is excluded: the sweep has no runs",
        );
        return Err(SpecErrors::sorted(cx.errors));
    }
    if let Some((_, s)) = &order_seed {
        if !order_shuffle {
            cx.err(
                s,
                Some("sweep.order_seed"),
                "applies to order = \"shuffle\" only",
            );
        }
    }
    let search = match search {
        Some((se, spans)) => check_search(&mut cx, se, &spans, &runs, &name),
        None => None,
    };
    if !cx.errors.is_empty() {
        return Err(SpecErrors::sorted(cx.errors));
    }
    let shuffle_seed = order_shuffle.then(|| order_seed.map_or(0, |s| s.0));
    if let Some(seed) = shuffle_seed {
        // Settings in a shuffled order, the seeds of each together (so a setting is judged on all
        // its seeds early, and a sweep stopped half way has covered the space evenly).
        let mut groups: Vec<Vec<PlannedRun>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for r in runs.drain(..) {
            let s = search::setting_id(&name, &r.config);
            let i = *index.entry(s).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[i].push(r);
        }
        search::shuffle(&mut groups, seed);
        runs = groups.into_iter().flatten().collect();
        for (i, r) in runs.iter_mut().enumerate() {
            r.ordinal = i;
        }
    }
    Ok(Sweep {
        name,
        description,
        file: file.into(),
        text: text.into(),
        seeds,
        swept_keys,
        runs,
        warnings,
        paths: path_mentions,
        search,
        shuffle_seed,
    })
}

/// Checks of `[search]` that need the runs: more than one setting, evaluations during training,
/// a first rung within training. `min_steps` left out defaults to the runs' `eval.every`.
fn check_search(
    cx: &mut Ctx<'_>,
    mut se: search::Search,
    spans: &search::SearchSpans,
    runs: &[PlannedRun],
    name: &str,
) -> Option<search::Search> {
    let settings: std::collections::HashSet<String> = runs
        .iter()
        .map(|r| search::setting_id(name, &r.config))
        .collect();
    if settings.len() < 2 {
        cx.err(
            &spans.table,
            Some("search"),
            format!(
                "the sweep has {} run{} of one setting: [search] stops settings that do worse than others, so it needs at least two settings",
                runs.len(),
                if runs.len() == 1 { "" } else { "s" }
            ),
        );
        return None;
    }
    let at = spans.metric.clone().unwrap_or(spans.table.clone());
    let every = |r: &PlannedRun| {
        r.config
            .get("eval.every")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    if let Some(r) = runs.iter().find(|r| every(r) == 0) {
        cx.err(
            &at,
            Some("search.metric"),
            format!(
                "{} is recorded during training only with eval.every > 0, and run {} has eval.every = 0",
                se.metric, r.id
            ),
        );
        return None;
    }
    if se.min_steps == 0 {
        let e: std::collections::BTreeSet<i64> = runs.iter().map(every).collect();
        if e.len() > 1 {
            cx.err(
                &spans.table,
                Some("search.min_steps"),
                format!(
                    "missing: the runs evaluate at different intervals (eval.every = {}), so there is no one default first rung; set min_steps",
                    e.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                ),
            );
            return None;
        }
        se.min_steps = *e.iter().next().expect("runs");
    }
    let at = spans.min_steps.clone().unwrap_or(spans.table.clone());
    for r in runs {
        let Some(steps) = r.config.get("train.steps").and_then(Value::as_i64) else {
            continue;
        };
        if se.min_steps >= steps {
            cx.err(
                &at,
                Some("search.min_steps"),
                format!(
                    "min_steps = {} is not before the last step of run {} (train.steps = {steps}): no decision could be taken; lower it",
                    se.min_steps, r.id
                ),
            );
            return None;
        }
    }
    Some(se)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 100
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A text that is equal for two values exactly when `serde_json::Value`'s `==` says they are equal
/// (floats by value, so `0.0` and `-0.0` are one; an integer never equals a float), for finding
/// duplicates in linear time: an axis of 100,000 values is checked in milliseconds, not minutes.
fn value_key(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            let f = if f == 0.0 { 0.0 } else { f };
            out.push_str(&format!("f{:x}", f.to_bits()));
        }
        Value::Number(n) => out.push_str(&format!("i{n}")),
        Value::String(t) => {
            out.push('s');
            out.push_str(&Value::String(t.clone()).to_string());
        }
        Value::Array(a) => {
            out.push('[');
            for x in a {
                value_key(x, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            for k in keys {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                value_key(&o[k], out);
                out.push(',');
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The first row (index) that repeats an earlier one, comparing rows of values.
fn first_duplicate_by<'a, I>(rows: impl Iterator<Item = I>) -> Option<usize>
where
    I: Iterator<Item = &'a Value>,
{
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.enumerate() {
        let mut k = String::new();
        for v in row {
            value_key(v, &mut k);
            k.push(';');
        }
        if !seen.insert(k) {
            return Some(i);
        }
    }
    None
}

fn first_duplicate(vals: &[Given]) -> Option<usize> {
    first_duplicate_by(vals.iter().map(|g| std::iter::once(&g.value)))
}

fn first_duplicate_rows(rows: &[Vec<Given>]) -> Option<usize> {
    first_duplicate_by(rows.iter().map(|r| r.iter().map(|g| &g.value)))
}

fn matches_exclude(ex: &Exclude, config: &BTreeMap<String, Value>) -> bool {
    ex.conds
        .iter()
        .all(|(k, alts)| alts.iter().any(|a| config.get(k) == Some(a)))
}

/// `[random]`: `n` samples (and a `seed`), each key with `{ uniform = [lo, hi] }`,
/// `{ log_uniform = [lo, hi] }` or `{ choice = [..] }`.
fn parse_random(
    cx: &mut Ctx<'_>,
    t: &DeTable<'_>,
    span: &Span,
    axis_origin: &mut HashMap<String, (&'static str, Span)>,
) -> Option<(Axis, bool)> {
    let mut n: Option<usize> = None;
    let mut seed: u64 = 0;
    let mut dists: Vec<(String, Span, Dist)> = Vec::new();
    let mut settings = DeTable::new();
    for (k, v) in t.iter() {
        match k.get_ref().as_ref() {
            "n" => match v
                .get_ref()
                .as_integer()
                .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok())
            {
                Some(i) if (1..=MAX_RUNS as i64).contains(&i) => n = Some(i as usize),
                _ => cx.err(
                    &v.span(),
                    Some("random.n"),
                    format!("expected an integer from 1 to {MAX_RUNS}"),
                ),
            },
            "seed" => match v
                .get_ref()
                .as_integer()
                .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok())
            {
                Some(i) if i >= 0 => seed = i as u64,
                _ => cx.err(&v.span(), Some("random.seed"), "expected an integer ≥ 0"),
            },
            _ => {
                settings.insert(k.clone(), v.clone());
            }
        }
    }
    walk_settings(
        cx,
        "",
        &settings,
        &mut |cx, spec, v, kspan| match parse_dist(spec, v.get_ref()) {
            Ok(d) => dists.push((spec.key.to_string(), kspan, d)),
            Err(e) => cx.err(&v.span(), Some(spec.key), e),
        },
    );
    let Some(n) = n else {
        cx.err(
            span,
            Some("random.n"),
            "missing: [random] needs n, the number of samples",
        );
        return None;
    };
    if settings.is_empty() {
        cx.err(span, Some("random"), "[random] names no setting to sample");
        return None;
    }
    if dists.is_empty() {
        return None;
    }
    let mut bad = false;
    for (key, kspan, _) in &dists {
        if let Some((t, s)) = axis_origin.get(key) {
            let line = cx.pos(s).0;
            cx.err(
                kspan,
                Some(key),
                format!("is already varied in {t} (line {line})"),
            );
            bad = true;
        }
    }
    if bad {
        return None;
    }
    let mut rng = SplitMix64(seed ^ 0x5153_5745_4550_0001);
    let mut choices = Vec::with_capacity(n);
    for _ in 0..n {
        let row = dists
            .iter()
            .map(|(_, kspan, d)| Given {
                value: d.sample(&mut rng),
                span: kspan.clone(),
            })
            .collect();
        choices.push(row);
    }
    for (key, kspan, _) in &dists {
        axis_origin.insert(key.clone(), ("[random]", kspan.clone()));
    }
    Some((
        Axis {
            keys: dists.into_iter().map(|d| d.0).collect(),
            choices,
        },
        true,
    ))
}

enum Dist {
    Uniform { lo: f64, hi: f64, int: bool },
    LogUniform { lo: f64, hi: f64, int: bool },
    Choice(Vec<Value>),
}

fn parse_dist(spec: &KeySpec, v: &DeValue<'_>) -> Result<Dist, String> {
    let DeValue::Table(t) = v else {
        return Err(
            "expected { uniform = [lo, hi] }, { log_uniform = [lo, hi] } or { choice = [..] }"
                .into(),
        );
    };
    if t.len() != 1 {
        return Err("give exactly one of uniform, log_uniform, choice".into());
    }
    let (k, dv) = t.iter().next().expect("len is 1");
    let json = value::to_json(dv.get_ref())?;
    let int = matches!(spec.kind, Kind::Int { .. });
    let numeric = int || matches!(spec.kind, Kind::Float { .. });
    let bounds = |json: &Value| -> Result<(f64, f64), String> {
        if !numeric {
            return Err(format!(
                "`{}` is not numeric: use {{ choice = [..] }}",
                spec.key
            ));
        }
        let a = json
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or("expected [lo, hi]")?;
        let lo = value::check_json(spec, &a[0])?;
        let hi = value::check_json(spec, &a[1])?;
        let (lo, hi) = (lo.as_f64().unwrap_or(0.0), hi.as_f64().unwrap_or(0.0));
        if lo >= hi {
            return Err(format!("expected lo < hi, found [{lo}, {hi}]"));
        }
        Ok((lo, hi))
    };
    match k.get_ref().as_ref() {
        "uniform" => {
            let (lo, hi) = bounds(&json)?;
            Ok(Dist::Uniform { lo, hi, int })
        }
        "log_uniform" => {
            let (lo, hi) = bounds(&json)?;
            if lo <= 0.0 {
                return Err("log_uniform needs lo > 0".into());
            }
            Ok(Dist::LogUniform { lo, hi, int })
        }
        "choice" => {
            let a = json
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or("expected a non-empty array of values")?;
            let vals = a
                .iter()
                .map(|x| value::check_json(spec, x))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Dist::Choice(vals))
        }
        other => Err(format!(
            "unknown distribution `{other}`: expected uniform, log_uniform or choice"
        )),
    }
}

impl Dist {
    fn sample(&self, rng: &mut SplitMix64) -> Value {
        let num = |x: f64, int: bool| -> Value {
            if int {
                Value::from(x.round() as i64)
            } else {
                // 6 significant digits: readable values that survive a round trip through the file.
                let x: f64 = format!("{x:.5e}").parse().unwrap_or(x);
                Value::from(x)
            }
        };
        match self {
            Dist::Uniform { lo, hi, int } => num(lo + (hi - lo) * rng.next_f64(), *int),
            Dist::LogUniform { lo, hi, int } => {
                num((lo.ln() + (hi.ln() - lo.ln()) * rng.next_f64()).exp(), *int)
            }
            Dist::Choice(v) => v[(rng.next_u64() % v.len() as u64) as usize].clone(),
        }
    }
}

/// A small, fixed, portable generator so `[random]` samples never change between versions.
pub(crate) struct SplitMix64(pub u64);
impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Fill defaults, apply the loss's parameter rules and check settings that depend on each other.
/// Errors point at the value that caused them.
fn resolve(
    cx: &mut Ctx<'_>,
    given: &BTreeMap<String, Given>,
    seed: i64,
) -> Option<BTreeMap<String, Value>> {
    let n_errors = cx.errors.len();
    let mut c: BTreeMap<String, Value> = KEYS
        .iter()
        .filter_map(|k| k.default_value().map(|v| (k.key.to_string(), v)))
        .collect();
    for (k, g) in given {
        c.insert(k.clone(), g.value.clone());
    }
    c.insert("seed".into(), seed.into());
    let at = |k: &str| given.get(k).map(|g| g.span.clone()).unwrap_or(0..0);
    let is_set = |k: &str| given.contains_key(k);
    let get_str = |c: &BTreeMap<String, Value>, k: &str| {
        c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
    };

    // Loss parameters.
    let kind = get_str(&c, "loss.kind");
    let takes = loss_takes(&kind, &c);
    for k in given.keys() {
        if k.starts_with("loss.") && k != "loss.kind" && !takes.iter().any(|(t, _)| t == k) {
            let switch = schema::MODIFIER_PARAMS
                .iter()
                .map(|(p, sw, _)| (*p, *sw))
                .chain([("loss.ratio_scale", "loss.ratio")])
                .find(|(p, _)| p == k)
                .map(|(_, sw)| sw);
            let msg = match switch {
                Some(sw) if schema::is_non_contrastive(&kind) => {
                    format!("loss `{kind}` takes `{k}` only with `{sw} = true`")
                }
                _ => format!(
                    "is not a parameter of loss `{kind}` (it takes {})",
                    if takes.is_empty() {
                        "none".to_string()
                    } else {
                        takes
                            .iter()
                            .map(|(t, _)| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            };
            let span = at(k);
            cx.err(&span, Some(k), msg);
        }
    }
    for (k, d) in &takes {
        c.entry(k.to_string())
            .or_insert_with(|| serde_json::from_str(d).expect("loss default is JSON"));
    }

    // Model.
    match (is_set("model.path"), is_set("model.hub")) {
        (true, true) => cx.err(&at("model.hub"), Some("model.hub"), "give model.path or model.hub, not both"),
        (false, false) => cx.err(&(0..0), Some("model.path"), "missing: set model.path (an HF model directory) or model.hub (a hub id in the HF cache) in [base]"),
        _ => {}
    }
    if get_str(&c, "model.init") == "pretrained" {
        for k in schema::ARCHITECTURE_KEYS {
            if is_set(k) {
                cx.err(&at(k), Some(k), "changes the architecture, which only model.init = \"random\" allows (a pretrained checkpoint fixes it)");
            }
        }
    }
    if let (Some(h), Some(a)) = (
        c.get("model.config.hidden_size").and_then(Value::as_i64),
        c.get("model.config.num_attention_heads")
            .and_then(Value::as_i64),
    ) {
        if h % a != 0 {
            cx.err(
                &at("model.config.num_attention_heads"),
                Some("model.config.num_attention_heads"),
                format!("{a} heads do not divide hidden_size {h}"),
            );
        }
    }
    if c.get("model.mlp_only_train") == Some(&Value::Bool(true))
        && get_str(&c, "model.pooling") != "cls"
    {
        cx.err(
            &at("model.mlp_only_train"),
            Some("model.mlp_only_train"),
            format!(
                "applies only to model.pooling = \"cls\", not \"{}\"",
                get_str(&c, "model.pooling")
            ),
        );
    }

    // Training length.
    if is_set("train.steps") && is_set("train.epochs") {
        cx.err(
            &at("train.epochs"),
            Some("train.epochs"),
            "give train.steps or train.epochs, not both",
        );
    }

    // Data.
    match c.get("data.train") {
        None => cx.err(&(0..0), Some("data.train"), "missing: list the training files in [base], e.g. data.train = [\"wiki1m_for_simcse.txt\"]"),
        Some(files) => {
            let fmt = get_str(&c, "data.format");
            let kinds: Vec<&str> = files
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|f| config::data_format_of(&fmt, f))
                .collect();
            if kinds.windows(2).any(|w| w[0] != w[1]) {
                cx.err(&at("data.train"), Some("data.train"), format!("mixes data formats ({}); one run trains on one format", kinds.join(", ")));
            }
            let supervised = kinds.first().is_some_and(|k| *k != "lines");
            let hnw = c.get("train.hard_negative_weight").and_then(Value::as_f64).unwrap_or(0.0);
            if hnw != 0.0 && !supervised {
                cx.err(&at("train.hard_negative_weight"), Some("train.hard_negative_weight"), "needs supervised data with hard negatives (nli_csv or snli); data.train is one sentence per line");
            }
        }
    }
    (cx.errors.len() == n_errors).then_some(c)
}

/// The `loss.*` parameters the loss takes in this configuration, with their defaults.
fn loss_takes(kind: &str, c: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let mut takes: Vec<(String, String)> = schema::loss_params(kind)
        .iter()
        .map(|(k, d)| (k.to_string(), d.to_string()))
        .collect();
    if schema::is_non_contrastive(kind) {
        let on = |k: &str| c.get(k) == Some(&Value::Bool(true));
        for (p, switch, d) in schema::MODIFIER_PARAMS {
            if on(switch) {
                takes.push((p.to_string(), d.to_string()));
            }
        }
        if on("loss.ratio") {
            takes.push((
                "loss.ratio_scale".into(),
                schema::ratio_scale_default(kind).into(),
            ));
        }
    }
    takes
}

/// The defaults a run's settings are compared with for identity: the schema's, and the loss's.
fn default_of(key: &str, c: &BTreeMap<String, Value>) -> Option<Value> {
    if let Some(d) = lookup(key).and_then(KeySpec::default_value) {
        return Some(d);
    }
    let kind = c.get("loss.kind").and_then(Value::as_str).unwrap_or("");
    loss_takes(kind, c)
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, d)| serde_json::from_str(&d).ok())
}

/// The canonical JSON of a run: identity settings that differ from their defaults, plus `seed`,
/// keys sorted. Equal settings give equal text whatever the file's layout.
pub fn canonical_json(config: &BTreeMap<String, Value>) -> String {
    let map: serde_json::Map<String, Value> = config
        .iter()
        .filter(|(k, v)| {
            *k == "seed"
                || (lookup(k).is_some_and(|s| s.identity)
                    && default_of(k, config).as_ref() != Some(*v))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::to_string(&map).expect("JSON")
}

/// The id of a run: 16 hex digits of SHA-256 over a version tag, the sweep name and the canonical config.
pub fn run_id(sweep: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"simsweep-run-v1\n");
    h.update(sweep.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Check the paths the sweep names: model directories (relative to the sweep file's folder: config.json,
/// tokenizer and, for pretrained runs, the weights' framing) and data files (relative to the data
/// directory: readable, not empty, not binary, every line UTF-8).
pub fn check_paths(sweep: &Sweep, data_dir: &Path) -> Result<(), SpecErrors> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in &sweep.paths {
        if !seen.insert((m.key.clone(), m.value.clone())) {
            continue;
        }
        // Weights are read only by runs that load a pretrained checkpoint from this directory.
        let needs_weights = || {
            sweep.runs.iter().any(|r| {
                r.config.get(&m.key).and_then(Value::as_str) == Some(m.value.as_str())
                    && r.config.get("model.init").and_then(Value::as_str) == Some("pretrained")
            })
        };
        let check_model = |dir: &Path| {
            crate::hf::check_dir(dir, needs_weights())
                .err()
                .map(|e| e.to_string())
        };
        let problem = match m.key.as_str() {
            "model.hub" => match config::resolve_hub(&m.value) {
                Err(e) => Some(e),
                Ok(dir) if !dir.join("config.json").is_file() => {
                    Some(format!("{} has no config.json", dir.display()))
                }
                Ok(dir) => check_model(&dir),
            },
            "model.path" => {
                let dir = config::resolve_model_path(&sweep.file, &m.value);
                if !dir.is_dir() {
                    Some(format!("model directory {} does not exist", dir.display()))
                } else if !dir.join("config.json").is_file() {
                    Some(format!(
                        "{} has no config.json (expected a Hugging Face model directory)",
                        dir.display()
                    ))
                } else {
                    check_model(&dir)
                }
            }
            _ => {
                let p = config::resolve_data_path(data_dir, &m.value);
                if !p.is_file() {
                    Some(format!(
                        "data file {} not found{}",
                        p.display(),
                        if Path::new(&m.value).is_absolute() {
                            String::new()
                        } else {
                            format!(" (relative paths resolve against the data directory {}; set --data-dir or SIMSWEEP_DATA_DIR)", data_dir.display())
                        }
                    ))
                } else {
                    crate::data::check_text_file(&p).err()
                }
            }
        };
        if let Some(message) = problem {
            errors.push(SpecError {
                file: sweep.file.clone(),
                line: m.line,
                col: m.col,
                key: Some(m.key.clone()),
                message,
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(errors))
    }
}

#[cfg(test)]
mod tests;
