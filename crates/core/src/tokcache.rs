//! The tokenized-corpus cache: a run's training corpus as token ids, written once to disk and
//! memory-mapped by every later run and process that trains on the same files with the same
//! tokenizer and `train.max_len`.
//!
//! An entry is one file, `<dir>/<key>.tok`, where the key is a hash of everything that determines
//! the ids: the cache layout's version, each training file's content (a full hash) and format, the
//! tokenizer (a hash of its whole serialized pipeline and special tokens) and `max_len`. Layout
//! (little-endian):
//!
//! ```text
//! 0    magic "SIMSWTOK"
//! 8    u32 layout version        12  u32 texts per example (1 sentences, 3 triplets)
//! 16   u64 texts                 24  u64 tokens
//! 32   u64 info length (bytes)   40  u64 body checksum (xxh3-64 of bytes 64..end)
//! 48   u64 file length           56  u64 header checksum (xxh3-64 of bytes 0..56)
//! 64   ids: u32 × tokens, then zero padding to a multiple of 8
//!      offsets: u64 × (texts + 1); text i is ids[offsets[i]..offsets[i+1]]
//!      info: JSON (what was cached, from which files, skipped lines)
//! ```
//!
//! Writers build under an advisory lock (`<key>.lock`) so concurrent processes wait for one build
//! instead of each tokenizing; they write `<key>.tok.<pid>.<nanos>.tmp` and rename it into place, so a reader never sees a half-written file. A file whose length or checksums do
//! not match is reported and rebuilt.

use crate::data::{self, Corpus};
use crate::hf::tokenizer::Tokenizer;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// Bump when the layout or the tokenization it stores changes: old entries are then never read.
pub const LAYOUT_VERSION: u32 = 1;
/// Moves the cache (e.g. to a node-local disk); `off` disables it (tokens are kept in memory).
pub const ENV: &str = "SIMSWEEP_TOKEN_CACHE";
const MAGIC: &[u8; 8] = b"SIMSWTOK";
const HEADER: usize = 64;
const EXT: &str = "tok";

#[cfg(target_endian = "big")]
compile_error!("the token cache maps little-endian ids; big-endian targets are not supported");

/// The cache folder for results in `results_dir`: `$SIMSWEEP_TOKEN_CACHE` if set (`off`: none),
/// else `<results_dir>/cache/tokens`.
pub fn dir_for(results_dir: &Path) -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => Some(results_dir.join("cache").join("tokens")),
    }
}

/// One training file as the cache identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub path: PathBuf,
    pub format: String,
    pub bytes: u64,
    /// xxh3-128 of the whole content, hex.
    pub hash: String,
}

/// What an entry holds, stored in it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub key: String,
    pub layout: u32,
    pub files: Vec<FileId>,
    pub tokenizer: String,
    /// The tokenizer's folder when the entry was built (for people; not part of the key).
    pub tokenizer_source: PathBuf,
    pub max_len: i64,
    pub supervised: bool,
    pub examples: u64,
    pub tokens: u64,
    pub skipped_empty: u64,
    pub skipped_non_utf8: u64,
    pub skipped_malformed: u64,
    /// Unix seconds.
    pub created: u64,
    pub build_seconds: f64,
    pub built_by: String,
}

impl Info {
    pub fn skipped(&self) -> usize {
        (self.skipped_empty + self.skipped_non_utf8 + self.skipped_malformed) as usize
    }
}

/// What identifies a tokenized corpus.
#[derive(Debug, Clone)]
pub struct Key {
    pub digest: String,
    pub files: Vec<FileId>,
    pub tokenizer: String,
    pub max_len: i64,
}

/// Hash every training file (full content) and combine with the tokenizer and `max_len`.
pub fn key(files: &[PathBuf], format: &str, tokenizer: &Tokenizer, max_len: i64) -> Result<Key> {
    let ids = files
        .iter()
        .map(|f| file_id(f, data::data_format_of(format, &f.to_string_lossy())))
        .collect::<Result<Vec<_>>>()?;
    let tok = format!("{:032x}", tokenizer.fingerprint()?);
    let mut h = Xxh3::new();
    h.update(&LAYOUT_VERSION.to_le_bytes());
    for f in &ids {
        h.update(f.format.as_bytes());
        h.update(&[0]);
        h.update(f.hash.as_bytes());
        h.update(&f.bytes.to_le_bytes());
    }
    h.update(tok.as_bytes());
    h.update(&max_len.to_le_bytes());
    Ok(Key {
        digest: format!("{:032x}", h.digest128()),
        files: ids,
        tokenizer: tok,
        max_len,
    })
}

fn file_id(path: &Path, format: &str) -> Result<FileId> {
    let mut f =
        File::open(path).with_context(|| format!("cannot read data file {}", path.display()))?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read data file {}", path.display()))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileId {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        format: format.to_string(),
        bytes,
        hash: format!("{:032x}", h.digest128()),
    })
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned { ids: Vec<u32>, offsets: Vec<u64> },
}

/// A tokenized corpus: every text's ids (specials included, truncated to `max_len`),
/// example-major: example i's texts are texts `i * per_example .. (i + 1) * per_example`.
pub struct Tokens {
    pub per_example: usize,
    pub n_texts: usize,
    pub n_tokens: usize,
    pub info: Info,
    storage: Storage,
    ids_at: usize,
    offsets_at: usize,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("per_example", &self.per_example)
            .field("n_texts", &self.n_texts)
            .field("n_tokens", &self.n_tokens)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl Tokens {
    /// Examples (sentences, or triplets).
    pub fn len(&self) -> usize {
        self.n_texts / self.per_example.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.n_texts == 0
    }
    /// Whether the ids are mapped from a cache file (rather than held in memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }
    fn ids(&self) -> &[u32] {
        match &self.storage {
            Storage::Owned { ids, .. } => ids,
            Storage::Mapped(m) => {
                bytemuck::cast_slice(&m[self.ids_at..self.ids_at + 4 * self.n_tokens])
            }
        }
    }
    fn offsets(&self) -> &[u64] {
        match &self.storage {
            Storage::Owned { offsets, .. } => offsets,
            Storage::Mapped(m) => {
                bytemuck::cast_slice(&m[self.offsets_at..self.offsets_at + 8 * (self.n_texts + 1)])
            }
        }
    }
    /// The ids of text `t`.
    pub fn text(&self, t: usize) -> &[u32] {
        let o = self.offsets();
        &self.ids()[o[t] as usize..o[t + 1] as usize]
    }
    /// The ids of example `i`'s texts.
    pub fn example(&self, i: usize) -> impl Iterator<Item = &[u32]> + '_ {
        (i * self.per_example..(i + 1) * self.per_example).map(move |t| self.text(t))
    }
}

/// How the tokens of a run were obtained, for its event log.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Mapped from an existing entry.
    Hit { path: PathBuf },
    /// Built by another process while this one waited for it.
    Waited { path: PathBuf },
    /// Built now and written to the cache; `damaged` says why an existing entry was replaced.
    Built {
        path: PathBuf,
        damaged: Option<String>,
    },
    /// Tokenized in memory: the cache is off (`None`) or could not be used (the reason).
    Memory { reason: Option<String> },
}

impl Source {
    pub fn cached(&self) -> bool {
        matches!(self, Source::Hit { .. } | Source::Waited { .. })
    }
}

/// Tokenize `files` (read as `format`) with `tokenizer` truncated to `max_len` tokens, through the
/// cache in `dir` (`None`: in memory only). Returns the tokens and how they were obtained.
pub fn load_or_build(
    dir: Option<&Path>,
    files: &[PathBuf],
    format: &str,
    tokenizer: &Tokenizer,
    max_len: i64,
) -> Result<(Tokens, Source)> {
    let Some(dir) = dir else {
        return Ok((
            build(files, format, tokenizer, max_len, None)?,
            Source::Memory { reason: None },
        ));
    };
    let key = key(files, format, tokenizer, max_len)?;
    let in_memory = |why: String| -> Result<(Tokens, Source)> {
        Ok((
            build(files, format, tokenizer, max_len, Some(&key))?,
            Source::Memory { reason: Some(why) },
        ))
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return in_memory(format!("cannot create {}: {e}", dir.display()));
    }
    let path = dir.join(format!("{}.{EXT}", key.digest));
    let damaged = match open(&path) {
        Ok(Some(t)) => return Ok((t, Source::Hit { path })),
        Ok(None) => None,
        Err(e) => Some(format!("{e:#}")),
    };
    // One builder at a time per entry; the others wait and map what it wrote.
    let lock_path = dir.join(format!("{}.lock", key.digest));
    let lock = match File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
    {
        Ok(f) => f,
        Err(e) => return in_memory(format!("cannot create {}: {e}", lock_path.display())),
    };
    let waited = match lock.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => {
            lock.lock()
                .with_context(|| format!("waiting for the lock {}", lock_path.display()))?;
            true
        }
        // A filesystem without locks: build our own copy; the rename keeps readers safe.
        Err(std::fs::TryLockError::Error(_)) => false,
    };
    if waited || damaged.is_none() {
        if let Ok(Some(t)) = open(&path) {
            return Ok((
                t,
                if waited {
                    Source::Waited { path }
                } else {
                    Source::Hit { path }
                },
            ));
        }
    }
    let tokens = build(files, format, tokenizer, max_len, Some(&key))?;
    if let Err(e) = write(&path, &tokens) {
        return Ok((
            tokens,
            Source::Memory {
                reason: Some(format!("cannot write {}: {e:#}", path.display())),
            },
        ));
    }
    drop(lock);
    // Map what was written, so a cold run computes on exactly what a warm one reads (and holds
    // the ids once: the built copy goes first).
    drop(tokens);
    match open(&path) {
        Ok(Some(t)) => Ok((t, Source::Built { path, damaged })),
        Ok(None) => in_memory(format!(
            "{} was removed right after it was written",
            path.display()
        )),
        Err(e) => bail!(
            "{} is damaged right after writing it: {e:#}",
            path.display()
        ),
    }
}

/// Read and tokenize the corpus in memory.
pub fn build(
    files: &[PathBuf],
    format: &str,
    tokenizer: &Tokenizer,
    max_len: i64,
    key: Option<&Key>,
) -> Result<Tokens> {
    let t0 = Instant::now();
    let corpus = data::read_corpus(files, format)?;
    let (examples, supervised) = (corpus.examples.len(), corpus.supervised);
    let skipped = [
        corpus.skipped_empty,
        corpus.skipped_non_utf8,
        corpus.skipped_malformed,
    ];
    let per_example = if supervised { 3 } else { 1 };
    let (ids, offsets) = tokenize_corpus(corpus, tokenizer, max_len as usize)?;
    let info = Info {
        key: key.map(|k| k.digest.clone()).unwrap_or_default(),
        layout: LAYOUT_VERSION,
        files: match key {
            Some(k) => k.files.clone(),
            None => files
                .iter()
                .map(|f| FileId {
                    path: f.clone(),
                    format: data::data_format_of(format, &f.to_string_lossy()).into(),
                    bytes: 0,
                    hash: String::new(),
                })
                .collect(),
        },
        tokenizer: key.map(|k| k.tokenizer.clone()).unwrap_or_default(),
        tokenizer_source: tokenizer.source().to_path_buf(),
        max_len,
        supervised,
        examples: examples as u64,
        tokens: ids.len() as u64,
        skipped_empty: skipped[0] as u64,
        skipped_non_utf8: skipped[1] as u64,
        skipped_malformed: skipped[2] as u64,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        build_seconds: t0.elapsed().as_secs_f64(),
        built_by: format!(
            "{}:{}",
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ),
    };
    Ok(Tokens {
        per_example,
        n_texts: offsets.len() - 1,
        n_tokens: ids.len(),
        info,
        storage: Storage::Owned { ids, offsets },
        ids_at: 0,
        offsets_at: 0,
    })
}

/// Every text of a corpus as ids, in parallel, in example order: the ids end to end and each
/// text's start (plus the end). The corpus's texts are dropped before the chunks are joined, and
/// each chunk as soon as it is joined (peak memory).
fn tokenize_corpus(
    corpus: Corpus,
    tokenizer: &Tokenizer,
    max_len: usize,
) -> Result<(Vec<u32>, Vec<u64>)> {
    // Each chunk of 1,024 texts as its ids end to end and their lengths.
    let chunks: Vec<(Vec<u32>, Vec<u32>)> = {
        let texts: Vec<&str> = corpus.examples.iter().flat_map(|e| e.texts()).collect();
        texts
            .par_chunks(1024)
            .map(|c| -> Result<_> {
                let each = tokenizer.ids(c, max_len)?;
                let mut flat = Vec::with_capacity(each.iter().map(Vec::len).sum());
                let mut lens = Vec::with_capacity(each.len());
                for t in each {
                    lens.push(t.len() as u32);
                    flat.extend_from_slice(&t);
                }
                Ok((flat, lens))
            })
            .collect::<Result<_>>()?
    };
    drop(corpus);
    let n_tokens: usize = chunks.iter().map(|c| c.0.len()).sum();
    let n_texts: usize = chunks.iter().map(|c| c.1.len()).sum();
    let mut ids = Vec::with_capacity(n_tokens);
    let mut offsets = Vec::with_capacity(n_texts + 1);
    offsets.push(0u64);
    for (flat, lens) in chunks {
        let mut at = ids.len() as u64;
        ids.extend_from_slice(&flat);
        for l in lens {
            at += u64::from(l);
            offsets.push(at);
        }
    }
    Ok((ids, offsets))
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Where each part starts: (offsets, info, file length).
fn layout(n_texts: usize, n_tokens: usize, info_len: usize) -> (usize, usize, usize) {
    let offsets_at = align8(HEADER + 4 * n_tokens);
    let info_at = offsets_at + 8 * (n_texts + 1);
    (offsets_at, info_at, info_at + info_len)
}

/// Write `tokens` to a temporary file beside `path` and rename it to `path`.
fn write(path: &Path, tokens: &Tokens) -> Result<()> {
    let info = serde_json::to_vec(&tokens.info)?;
    let (offsets_at, _, total) = layout(tokens.n_texts, tokens.n_tokens, info.len());
    let ids: &[u8] = bytemuck::cast_slice(tokens.ids());
    let pad = vec![0u8; offsets_at - HEADER - ids.len()];
    let offsets: &[u8] = bytemuck::cast_slice(tokens.offsets());
    let mut body = Xxh3::new();
    for part in [ids, &pad, offsets, &info] {
        body.update(part);
    }
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
    header.extend_from_slice(&(tokens.per_example as u32).to_le_bytes());
    for v in [
        tokens.n_texts as u64,
        tokens.n_tokens as u64,
        info.len() as u64,
        body.digest(),
        total as u64,
    ] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    let hc = xxh3_64(&header);
    header.extend_from_slice(&hc.to_le_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_extension(format!("{EXT}.{}.{nanos}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = std::io::BufWriter::with_capacity(
            1 << 20,
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        for part in [&header[..], ids, &pad, offsets, &info] {
            f.write_all(part)
                .with_context(|| format!("writing {}", tmp.display()))?;
        }
        // No fsync: a machine crash that leaves the renamed file short or stale is caught by the
        // length and checksums on the next load, which rebuilds it; durability is not needed
        // for a cache, only that no reader trusts a bad file.
        f.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The header's fields, checked for magic, version, its own checksum and the file's length.
struct Header {
    per_example: usize,
    n_texts: usize,
    n_tokens: usize,
    info_len: usize,
    body_sum: u64,
}

fn parse_header(h: &[u8], file_len: u64) -> Result<Header> {
    if h.len() < HEADER {
        bail!("truncated: {file_len} bytes, shorter than the {HEADER}-byte header");
    }
    if &h[..8] != MAGIC {
        bail!("not a token cache file (bad magic)");
    }
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != LAYOUT_VERSION {
        bail!("layout version {version}, this simsweep reads {LAYOUT_VERSION}");
    }
    if xxh3_64(&h[..56]) != u64_at(56) {
        bail!("header checksum mismatch");
    }
    let hd = Header {
        per_example: u32_at(12) as usize,
        n_texts: u64_at(16) as usize,
        n_tokens: u64_at(24) as usize,
        info_len: u64_at(32) as usize,
        body_sum: u64_at(40),
    };
    let total = u64_at(48);
    let (_, _, expect) = layout(hd.n_texts, hd.n_tokens, hd.info_len);
    if total != expect as u64 || !(1..=3).contains(&hd.per_example) {
        bail!("inconsistent header");
    }
    if file_len != total {
        bail!("truncated or extended: {file_len} bytes, the header says {total}");
    }
    Ok(hd)
}

/// Map and check an entry: `Ok(None)` if there is none, `Err` (the reason) if it is damaged.
pub fn open(path: &Path) -> Result<Option<Tokens>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let len = f.metadata()?.len();
    // SAFETY: entries are never written in place (a new one is renamed over the old), so the
    // mapped bytes do not change under us; a truncation by another program is caught by the
    // length and checksum checks below before any id is read.
    let map =
        unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("mapping {}", path.display()))?;
    let hd = parse_header(&map[..map.len().min(HEADER)], len)?;
    if xxh3_64(&map[HEADER..]) != hd.body_sum {
        bail!("checksum mismatch: the file is damaged");
    }
    let (offsets_at, info_at, _) = layout(hd.n_texts, hd.n_tokens, hd.info_len);
    let info: Info =
        serde_json::from_slice(&map[info_at..]).context("its description is not valid JSON")?;
    let t = Tokens {
        per_example: hd.per_example,
        n_texts: hd.n_texts,
        n_tokens: hd.n_tokens,
        info,
        storage: Storage::Mapped(map),
        ids_at: HEADER,
        offsets_at,
    };
    let o = t.offsets();
    if o[0] != 0 || o[hd.n_texts] as usize != hd.n_tokens || o.windows(2).any(|w| w[0] > w[1]) {
        bail!("its offsets are inconsistent");
    }
    if !t.n_texts.is_multiple_of(t.per_example) {
        bail!(
            "{} texts are not whole examples of {}",
            t.n_texts,
            t.per_example
        );
    }
    Ok(Some(t))
}

/// One file in the cache folder, as `cache status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub file: PathBuf,
    pub bytes: u64,
    /// `ok`, `damaged: …`, `partial` (a build in progress or interrupted), `lock`.
    pub state: String,
    pub info: Option<Info>,
}

/// The files of the cache folder `dir`: entries, temporary files and locks. `verify` checks each
/// entry's body checksum too (reads it whole); otherwise the header and length only.
pub fn entries(dir: &Path, verify: bool) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in rd {
        let e = e?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kind) = file_kind(&name) else {
            continue;
        };
        let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
        let (state, info) = match kind {
            FileKind::Lock => ("lock".to_string(), None),
            FileKind::Partial => ("partial".to_string(), None),
            FileKind::Entry if verify => match open(&path) {
                Ok(Some(t)) => ("ok".to_string(), Some(t.info)),
                Ok(None) => continue,
                Err(e) => (format!("damaged: {e:#}"), None),
            },
            FileKind::Entry => match read_info(&path) {
                Ok(info) => ("ok".to_string(), Some(info)),
                Err(e) => (format!("damaged: {e:#}"), None),
            },
        };
        out.push(Entry {
            file: path,
            bytes,
            state,
            info,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// Header and description of an entry, without reading its ids.
fn read_info(path: &Path) -> Result<Info> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut h = vec![0u8; HEADER.min(len as usize)];
    f.read_exact(&mut h)?;
    let hd = parse_header(&h, len)?;
    let (_, info_at, _) = layout(hd.n_texts, hd.n_tokens, hd.info_len);
    f.seek(SeekFrom::Start(info_at as u64))?;
    let mut info = vec![0u8; hd.info_len];
    f.read_exact(&mut info)?;
    serde_json::from_slice(&info).context("its description is not valid JSON")
}

enum FileKind {
    Entry,
    Partial,
    Lock,
}

/// Which of the cache's own files `name` is (None: not one of ours, left alone).
fn file_kind(name: &str) -> Option<FileKind> {
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let (stem, rest) = name.split_once('.')?;
    if !hex(stem) {
        return None;
    }
    match rest {
        "tok" => Some(FileKind::Entry),
        "lock" => Some(FileKind::Lock),
        r if r.starts_with("tok.") && r.ends_with(".tmp") => Some(FileKind::Partial),
        _ => None,
    }
}

/// Remove the cache's own files from `dir` (entries, temporary files, locks; nothing else).
/// Returns how many files and bytes were removed. A run that has an entry mapped keeps reading it.
pub fn clear(dir: &Path) -> Result<(usize, u64)> {
    let (mut n, mut bytes) = (0, 0);
    for e in entries(dir, false)? {
        std::fs::remove_file(&e.file).with_context(|| format!("removing {}", e.file.display()))?;
        n += 1;
        bytes += e.bytes;
    }
    Ok((n, bytes))
}

#[cfg(test)]
mod tests;
