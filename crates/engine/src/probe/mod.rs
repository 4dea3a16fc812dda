//! Learning-dynamics probes: the embedding-geometry metrics of `shared/docs/metrics.md` ("Probe
//! metrics"), in their exact closed forms (all pairs, no sampling).
//!
//! ```text
//! ProbeSet::build(model, sentences, alignment pairs, max_len)   once per run
//!   ├─ tokenisation (specials included), sorted by length into forward chunks on the device
//!   ├─ WordPiece types in ≥ 5 probe sentences (first occurrence per sentence, specials excluded),
//!   │  split into function / content words by `stopwords-en.txt`
//!   └─ STS-B dev pairs with gold > 4 (alignment)
//! probe(model, pooler, set, layers) → Vec<(layer, name, value)>
//!   eval-mode forward under no_grad, chunk by chunk; token statistics accumulated on the device in
//!   f64; sentence metrics on the pooled matrix; one host copy of the scalars at the end.
//! ```
//!
//! Layer convention (see docs/schema.md): `layer = -1` rows are the run's own representation —
//! token metrics of the last layer, sentence metrics of the run's pooler. Rows with `layer = l ≥ 0`
//! (from `probe.layers`) are `hidden_states[l]` (0 = embedding output): token metrics of that layer
//! and sentence metrics of the mask-weighted mean of that layer's token vectors (`avg` pooling).

use crate::model::pooling::masked_mean;
use crate::model::{LoadedModel, Pooler, TokenizedSentence};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Function words for the self-similarity split (a copy of `shared/docs/stopwords-en.txt`).
pub const STOPWORDS: &str = include_str!("stopwords-en.txt");

/// A type enters self-similarity when it occurs in at least this many probe sentences.
pub const MIN_TYPE_SENTENCES: usize = 5;

/// Number of normalised singular values stored (`sv_01` … `sv_64`).
pub const TOP_SINGULAR_VALUES: usize = 64;

/// Sentences per forward pass of the probe.
pub const CHUNK: usize = 512;

/// The name of the `i`-th (0-based) normalised singular value: `sv_01`, …, `sv_64`.
pub fn sv_name(i: usize) -> String {
    format!("sv_{:02}", i + 1)
}

/// Which layers get their own rows, besides the run's own (`layer = -1`) rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layers {
    /// Only the run's own rows.
    Last,
    /// Every hidden state, 0 (embeddings) to L.
    All,
    /// These hidden-state indices.
    List(Vec<usize>),
}

impl Layers {
    /// From the `probe.layers` setting: `"last"`, `"all"`, an index or a list of indices.
    pub fn from_value(v: &serde_json::Value) -> Result<Self> {
        use serde_json::Value;
        match v {
            Value::String(s) if s == "last" => Ok(Layers::Last),
            Value::String(s) if s == "all" => Ok(Layers::All),
            Value::Number(n) => n
                .as_u64()
                .map(|i| Layers::List(vec![i as usize]))
                .ok_or_else(|| anyhow!("probe.layers: {n} is not a layer index")),
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|i| i as usize)
                        .ok_or_else(|| anyhow!("probe.layers: {x} is not a layer index"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Layers::List),
            other => {
                bail!("probe.layers: expected \"last\", \"all\" or a list of indices, got {other}")
            }
        }
    }

    /// Parse the command line form: `last`, `all`, or comma-separated indices.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "last" => Ok(Layers::Last),
            "all" => Ok(Layers::All),
            _ => s
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<usize>()
                        .map_err(|_| anyhow!("--layers: `{p}` is not a layer index (expected last, all, or indices like 0,3,6)"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Layers::List),
        }
    }

    /// The explicit layer indices for a model with `num_layers` transformer layers (hidden states
    /// 0..=num_layers), sorted and distinct; an index beyond the model is an error.
    pub fn resolve(&self, num_layers: usize) -> Result<Vec<usize>> {
        let mut v = match self {
            Layers::Last => vec![],
            Layers::All => (0..=num_layers).collect(),
            Layers::List(l) => l.clone(),
        };
        v.sort_unstable();
        v.dedup();
        if let Some(&bad) = v.iter().find(|&&l| l > num_layers) {
            bail!("probe layer {bad} does not exist: the model has hidden states 0..={num_layers}");
        }
        Ok(v)
    }
}

/// The probe sentences: `"stsb-dev"` → the first `size` `sentence1` of STS-B dev (file order, as
/// SentEval normalises them); otherwise a file (relative to `data_dir`) of one sentence per line,
/// empty lines skipped, the first `size` taken. Fewer than two sentences is an error.
pub fn load_sentences(data_dir: &Path, spec: &str, size: usize) -> Result<Vec<String>> {
    let mut out: Vec<String> = if spec == "stsb-dev" {
        stsb_dev(data_dir)?
            .pairs()
            .take(size)
            .map(|p| p.a.to_string())
            .collect()
    } else {
        let path = crate::spec::config::resolve_data_path(data_dir, spec);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the probe sentences {}", path.display()))?;
        text.lines()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .take(size)
            .map(String::from)
            .collect()
    };
    out.truncate(size);
    if out.len() < 2 {
        bail!(
            "the probe set `{spec}` has {} sentence(s); at least two are needed",
            out.len()
        );
    }
    Ok(out)
}

fn stsb_dev(data_dir: &Path) -> Result<crate::eval::TaskData> {
    let down = crate::eval::downstream_dir(data_dir)?;
    crate::eval::TaskData::load(&down, crate::eval::Task::StsbDev).context("loading STS-B dev")
}

/// The alignment pairs: STS-B dev pairs with gold score > 4 (SimCSE's protocol), file order.
pub fn alignment_pairs(data_dir: &Path) -> Result<Vec<(String, String)>> {
    Ok(stsb_dev(data_dir)?
        .pairs()
        .filter(|p| p.gold > 4.0)
        .map(|p| (p.a.to_string(), p.b.to_string()))
        .collect())
}

/// One forward chunk of a sentence list, on the device.
#[derive(Debug)]
struct Chunk {
    /// Ids, mask and the real-token index.
    enc: crate::model::EncodedBatch,
    /// Positions of the sentences of the chunk in the list.
    rows: Tensor,
    /// Into the flattened `[B·T]` token grid: the non-padding tokens.
    flat: Tensor,
    /// Per non-padding token: its sentence within the chunk.
    sent: Tensor,
    /// Per sentence of the chunk: its token count (f64).
    n_k: Tensor,
    /// Into the non-padding tokens: the first occurrence of a self-similarity type per sentence.
    sel_pos: Tensor,
    /// The type of each `sel_pos` token.
    sel_type: Tensor,
    batch: i64,
}

fn chunks(
    model: &LoadedModel,
    toks: &[TokenizedSentence],
    type_of: &HashMap<String, i64>,
    device: Device,
) -> Vec<Chunk> {
    let mut order: Vec<usize> = (0..toks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(toks[i].len()));
    order
        .chunks(CHUNK)
        .map(|c| {
            let batch: Vec<TokenizedSentence> = c.iter().map(|&i| toks[i].clone()).collect();
            let t = batch.iter().map(|s| s.len()).max().unwrap_or(0);
            let enc =
                crate::model::EncodedBatch::from_padded(&model.tokenizer.pad_ids(&batch), device);
            let (mut flat, mut sent, mut n_k, mut sel_pos, mut sel_type) =
                (vec![], vec![], vec![], vec![], vec![]);
            for (b, s) in batch.iter().enumerate() {
                n_k.push(s.len() as f64);
                let mut seen = std::collections::HashSet::new();
                for (j, tok) in s.tokens.iter().enumerate() {
                    if !s.special[j] {
                        if let Some(&ty) = type_of.get(tok) {
                            if seen.insert(ty) {
                                sel_pos.push(flat.len() as i64);
                                sel_type.push(ty);
                            }
                        }
                    }
                    flat.push((b * t + j) as i64);
                    sent.push(b as i64);
                }
            }
            let rows: Vec<i64> = c.iter().map(|&i| i as i64).collect();
            let dev = |v: &[i64]| Tensor::from_slice(v).to_device(device);
            Chunk {
                enc,
                rows: dev(&rows),
                flat: dev(&flat),
                sent: dev(&sent),
                n_k: Tensor::from_slice(&n_k).to_device(device),
                sel_pos: dev(&sel_pos),
                sel_type: dev(&sel_type),
                batch: c.len() as i64,
            }
        })
        .collect()
}

/// A fixed probe set, tokenised and laid out on the model's device once per run.
#[derive(Debug)]
pub struct ProbeSet {
    /// The probe sentences.
    pub sentences: Vec<String>,
    /// Tokens per sentence, after truncation (specials included).
    pub max_len: usize,
    /// The self-similarity types (WordPiece strings) and whether each is a function word.
    pub types: Vec<(String, bool)>,
    /// Number of alignment pairs (0: no alignment).
    pub alignment_pairs: usize,
    n: usize,
    probe_chunks: Vec<Chunk>,
    /// The alignment sentences that are not probe sentences.
    align_chunks: Vec<Chunk>,
    n_align_sentences: usize,
    /// `[P, 2]` indices into the probe sentences followed by `align_chunks`' sentences.
    align_idx: Tensor,
    /// Per type: in how many sentences it occurs (f64).
    type_m: Tensor,
    /// Per type: 1.0 for function words.
    type_function: Tensor,
    n_tokens: f64,
    sum_nk2: f64,
}

impl ProbeSet {
    /// Tokenise `sentences` (and the alignment pairs) with the model's tokenizer, truncated to
    /// `max_len` tokens including specials.
    pub fn build(
        model: &LoadedModel,
        sentences: Vec<String>,
        alignment: &[(String, String)],
        max_len: usize,
    ) -> Result<Self> {
        model.check_max_len(max_len)?;
        if sentences.len() < 2 {
            bail!("the probe set needs at least two sentences");
        }
        let device = model.device();
        let toks = model.tokenizer.tokenize(&sentences, max_len)?;
        // Types: WordPiece strings (specials excluded) by the number of sentences they occur in.
        let mut df: HashMap<&str, usize> = HashMap::new();
        let mut first_seen: Vec<&str> = Vec::new();
        for s in &toks {
            let mut seen = std::collections::HashSet::new();
            for (tok, &sp) in s.tokens.iter().zip(&s.special) {
                if !sp && seen.insert(tok.as_str()) {
                    let c = df.entry(tok.as_str()).or_insert(0);
                    if *c == 0 {
                        first_seen.push(tok.as_str());
                    }
                    *c += 1;
                }
            }
        }
        let stop: std::collections::HashSet<&str> = STOPWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let types: Vec<(String, bool)> = first_seen
            .iter()
            .filter(|t| df[*t] >= MIN_TYPE_SENTENCES)
            .map(|t| (t.to_string(), stop.contains(t.to_lowercase().as_str())))
            .collect();
        let type_of: HashMap<String, i64> = types
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (t.clone(), i as i64))
            .collect();
        let type_m: Vec<f64> = types.iter().map(|(t, _)| df[t.as_str()] as f64).collect();
        let type_function: Vec<f64> = types.iter().map(|(_, f)| f64::from(u8::from(*f))).collect();
        let n_tokens: f64 = toks.iter().map(|s| s.len() as f64).sum();
        let sum_nk2: f64 = toks.iter().map(|s| (s.len() * s.len()) as f64).sum();
        let probe_chunks = chunks(model, &toks, &type_of, device);

        // Alignment: the pairs' sentences index the probe sentences followed by the distinct pair
        // sentences that are not probe sentences (only those need a forward of their own).
        let mut index: HashMap<&str, i64> = HashMap::new();
        for (i, s) in sentences.iter().enumerate() {
            index.entry(s.as_str()).or_insert(i as i64);
        }
        let mut align_sent: Vec<&str> = Vec::new();
        let mut idx: Vec<i64> = Vec::new();
        for (a, b) in alignment {
            for s in [a, b] {
                let i = *index.entry(s.as_str()).or_insert_with(|| {
                    align_sent.push(s.as_str());
                    (sentences.len() + align_sent.len()) as i64 - 1
                });
                idx.push(i);
            }
        }
        let align_toks = model.tokenizer.tokenize(&align_sent, max_len)?;
        let align_chunks = chunks(model, &align_toks, &HashMap::new(), device);
        Ok(ProbeSet {
            n: sentences.len(),
            sentences,
            max_len,
            types,
            alignment_pairs: alignment.len(),
            probe_chunks,
            align_chunks,
            n_align_sentences: align_sent.len(),
            align_idx: Tensor::from_slice(&idx).view([-1, 2]).to_device(device),
            type_m: Tensor::from_slice(&type_m).to_device(device),
            type_function: Tensor::from_slice(&type_function).to_device(device),
            n_tokens,
            sum_nk2,
        })
    }

    /// The run's probe set from its settings: `probe.sentences`, `probe.size`, `probe.max_len`;
    /// alignment pairs from STS-B dev under `data_dir` (none when STS-B dev is absent and the probe
    /// sentences come from another file).
    pub fn from_settings(
        model: &LoadedModel,
        data_dir: &Path,
        sentences: &str,
        size: usize,
        max_len: usize,
    ) -> Result<Self> {
        let s = load_sentences(data_dir, sentences, size)?;
        let pairs = match alignment_pairs(data_dir) {
            Ok(p) => p,
            Err(e) if sentences != "stsb-dev" => {
                eprintln!("probe: no alignment ({e:#})");
                vec![]
            }
            Err(e) => return Err(e),
        };
        Self::build(model, s, &pairs, max_len)
    }

    /// Number of probe sentences.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Never true (a probe set has at least two sentences).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// Token statistics of one layer, accumulated over chunks on the device (f64).
struct TokenAcc {
    total: Tensor,
    sum_sk2: Tensor,
    intra: Tensor,
    norm_sum: Tensor,
    type_sum: Tensor,
}

impl TokenAcc {
    fn new(h: i64, n_types: i64, device: Device) -> Self {
        let z = |s: &[i64]| Tensor::zeros(s, (Kind::Double, device));
        TokenAcc {
            total: z(&[h]),
            sum_sk2: z(&[]),
            intra: z(&[]),
            norm_sum: z(&[]),
            type_sum: z(&[n_types, h]),
        }
    }

    /// Add the non-padding token vectors `x` `[n, H]` (f64) of `batch` sentences; `sent` gives
    /// each token's sentence, `n_k` each sentence's token count.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        x: &Tensor,
        sent: &Tensor,
        n_k: &Tensor,
        batch: i64,
        sel_pos: &Tensor,
        sel_type: &Tensor,
    ) {
        let hsz = x.size()[1];
        let opts = (Kind::Double, x.device());
        let norms = x.square().sum_dim_intlist(-1, false, Kind::Double).sqrt();
        let u = x / norms.unsqueeze(-1);
        self.norm_sum += norms.sum(Kind::Double);
        self.total += u.sum_dim_intlist(0, false, Kind::Double);
        let s = Tensor::zeros([batch, hsz], opts).index_add(0, sent, &u);
        self.sum_sk2 += s.square().sum(Kind::Double);
        let m = Tensor::zeros([batch, hsz], opts).index_add(0, sent, x) / n_k.unsqueeze(-1);
        let m_hat = &m / m.square().sum_dim_intlist(-1, true, Kind::Double).sqrt();
        let cos = (&u * m_hat.index_select(0, sent)).sum_dim_intlist(-1, false, Kind::Double);
        let per_sent = Tensor::zeros([batch], opts).index_add(0, sent, &cos) / n_k;
        self.intra += per_sent.sum(Kind::Double);
        if sel_pos.numel() > 0 {
            self.type_sum = self
                .type_sum
                .index_add(0, sel_type, &u.index_select(0, sel_pos));
        }
    }

    /// The token metrics (scalar tensors): anisotropy, intra-sentence and self-similarity (all,
    /// function, content), with the adjusted forms, and the mean token norm.
    fn finish(
        &self,
        sentences: usize,
        n: f64,
        s2: f64,
        m: &Tensor,
        function: &Tensor,
    ) -> Vec<(&'static str, Tensor)> {
        let ta = (self.total.square().sum(Kind::Double) - &self.sum_sk2) / (n * n - s2);
        let intra = &self.intra / sentences as f64;
        let per_type = (self
            .type_sum
            .square()
            .sum_dim_intlist(-1, false, Kind::Double)
            - m)
            / (m * (m - 1.0));
        let masked_mean = |w: &Tensor| (&per_type * w).sum(Kind::Double) / w.sum(Kind::Double);
        let all = per_type.mean(Kind::Double);
        let func = masked_mean(function);
        let content = masked_mean(&(1.0 - function));
        vec![
            ("token_anisotropy", ta.shallow_clone()),
            ("intra_sentence_similarity", intra.shallow_clone()),
            ("intra_sentence_similarity_adjusted", &intra - &ta),
            ("self_similarity", all.shallow_clone()),
            ("self_similarity_adjusted", &all - &ta),
            ("self_similarity_function", func.shallow_clone()),
            ("self_similarity_function_adjusted", &func - &ta),
            ("self_similarity_content", content.shallow_clone()),
            ("self_similarity_content_adjusted", &content - &ta),
            ("mean_token_norm", &self.norm_sum / n),
        ]
    }
}

/// Rows of `z` scaled to unit length.
fn unit_rows(z: &Tensor) -> Tensor {
    z / z.square().sum_dim_intlist(-1, true, Kind::Double).sqrt()
}

/// Singular values of `x` `[N, H]` (f64), descending, from the eigenvalues of the smaller Gram
/// matrix.
pub fn singular_values(x: &Tensor) -> Tensor {
    let (n, h) = (x.size()[0], x.size()[1]);
    let g = if n < h {
        x.matmul(&x.tr())
    } else {
        x.tr().matmul(x)
    };
    let (ev, _) = g.linalg_eigh("L");
    ev.clamp_min(0.0).sqrt().flip([0])
}

/// The sentence metrics of a pooled matrix `z` `[N, H]` (f64, N ≥ 2) as scalar tensors:
/// anisotropy, uniformity, norms, centroid norm, effective rank, partition isotropy, rogue share,
/// and the top-64 singular values of the centred matrix normalised by the largest.
pub fn sentence_metrics(z: &Tensor) -> Vec<(String, Tensor)> {
    let n = z.size()[0];
    let nf = n as f64;
    let device = z.device();
    let norms = z.square().sum_dim_intlist(-1, false, Kind::Double).sqrt();
    let zh = unit_rows(z);
    let sum_hat = zh.sum_dim_intlist(0, false, Kind::Double);
    let anis = (sum_hat.square().sum(Kind::Double) - nf) / (nf * (nf - 1.0));
    // Uniformity: log mean over i ≠ j (the same as i < j, by symmetry) of exp(−2‖ẑ_i − ẑ_j‖²).
    let sq = zh.square().sum_dim_intlist(-1, false, Kind::Double);
    let d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - zh.matmul(&zh.tr()) * 2.0).clamp_min(0.0);
    let eye = Tensor::eye(n, (Kind::Bool, device));
    let e = (d2 * -2.0).masked_fill(&eye, f64::NEG_INFINITY);
    let unif = e.logsumexp([0, 1], false) - (nf * (nf - 1.0)).ln();
    let mean_norm = norms.mean(Kind::Double);
    let centroid = z.mean_dim(0, false, Kind::Double);
    let centroid_norm = centroid.square().sum(Kind::Double).sqrt();
    // Effective rank of the centred matrix.
    let sv = singular_values(&(z - centroid.unsqueeze(0)));
    let p = &sv / sv.sum(Kind::Double);
    let entropy = -(&p * p.clamp_min(1e-300).log()).sum(Kind::Double);
    let erank = entropy.exp();
    // Partition isotropy: c over ± the eigenvectors of ZᵀZ (an eigenvector's sign is arbitrary).
    let (_, vecs) = z.tr().matmul(z).linalg_eigh("L");
    let proj = z.matmul(&vecs);
    let lse = Tensor::cat(
        &[proj.logsumexp([0], false), (-&proj).logsumexp([0], false)],
        0,
    );
    let iso = (lse.min() - lse.max()).exp();
    // Rogue dimensions: share_d = Σ_{i≠j} ẑ_id ẑ_jd / Σ_{i≠j} ẑ_iᵀẑ_j.
    let num = sum_hat.square() - zh.square().sum_dim_intlist(0, false, Kind::Double);
    let rogue = (&num / num.sum(Kind::Double)).max();
    let mut out: Vec<(String, Tensor)> = vec![
        ("sentence_anisotropy".into(), anis),
        ("uniformity".into(), unif),
        ("mean_sentence_norm".into(), mean_norm),
        ("centroid_norm".into(), centroid_norm),
        ("effective_rank".into(), erank),
        ("isotropy_partition".into(), iso),
        ("rogue_top1_share".into(), rogue),
    ];
    let k = (TOP_SINGULAR_VALUES as i64).min(sv.size()[0]);
    let top = sv.narrow(0, 0, k) / sv.get(0);
    for i in 0..k {
        out.push((sv_name(i as usize), top.get(i)));
    }
    out
}

/// Wang & Isola's alignment (α = 2): mean ‖ẑ_a − ẑ_b‖² over the pairs.
pub fn alignment(za: &Tensor, zb: &Tensor) -> Tensor {
    (unit_rows(za) - unit_rows(zb))
        .square()
        .sum_dim_intlist(-1, false, Kind::Double)
        .mean(Kind::Double)
}

/// Pooled vectors of a sentence list, in list order: the run's pooler, and the mean of each layer
/// asked for.
struct Pass {
    pooled: Tensor,
    layers: Vec<Tensor>,
}

/// Forward `chunks` (`n` sentences); accumulate token statistics of the layers in `acc`.
fn forward_pass(
    model: &LoadedModel,
    pooler: &Pooler,
    chunks: &[Chunk],
    n: usize,
    layers: &[usize],
    mut acc: Option<(&[usize], &mut [TokenAcc])>,
) -> Pass {
    let device = model.device();
    let h = model.hidden_size();
    let mut pooled = Tensor::zeros([n as i64, h], (Kind::Double, device));
    let mut per_layer: Vec<Tensor> = layers
        .iter()
        .map(|_| Tensor::zeros([n as i64, h], (Kind::Double, device)))
        .collect();
    for c in chunks {
        let hidden = model.forward_t(&c.enc, false);
        let z = pooler
            .forward_t(&hidden, &c.enc.attention_mask, &model.mlp, false)
            .to_kind(Kind::Double);
        pooled = pooled.index_copy(0, &c.rows, &z);
        for (slot, &l) in per_layer.iter_mut().zip(layers) {
            let m = masked_mean(&hidden[l].to_kind(Kind::Double), &c.enc.attention_mask);
            *slot = slot.index_copy(0, &c.rows, &m);
        }
        if let Some((tl, accs)) = acc.as_mut() {
            for (a, &l) in accs.iter_mut().zip(tl.iter()) {
                let x = hidden[l]
                    .to_kind(Kind::Double)
                    .flatten(0, 1)
                    .index_select(0, &c.flat);
                a.add(&x, &c.sent, &c.n_k, c.batch, &c.sel_pos, &c.sel_type);
            }
        }
    }
    Pass {
        pooled,
        layers: per_layer,
    }
}

/// Probe the model on `set`: eval mode, no gradients, in f32 (no autocast). Returns
/// `(layer, metric, value)`: the run's own rows (`layer = -1`: last layer's tokens, the pooler's
/// sentence vectors) and, for each index in `layers`, that hidden state's rows (sentence metrics
/// of its mean-pooled vectors). Values are brought to the host in one copy.
pub fn probe(
    model: &LoadedModel,
    pooler: &Pooler,
    set: &ProbeSet,
    layers: &[usize],
) -> Result<Vec<(i64, String, f64)>> {
    let last = model.num_layers();
    if let Some(&bad) = layers.iter().find(|&&l| l > last) {
        bail!("probe layer {bad} does not exist: the model has hidden states 0..={last}");
    }
    let device = model.device();
    let h = model.hidden_size();
    let n_types = set.types.len() as i64;
    // Token statistics for the last layer (own rows) and every requested layer.
    let mut token_layers: Vec<usize> = layers.to_vec();
    if !token_layers.contains(&last) {
        token_layers.push(last);
    }
    let (labels, values): (Vec<(i64, String)>, Vec<Tensor>) = tch::no_grad(|| {
        let mut accs: Vec<TokenAcc> = token_layers
            .iter()
            .map(|_| TokenAcc::new(h, n_types, device))
            .collect();
        let probe_pass = forward_pass(
            model,
            pooler,
            &set.probe_chunks,
            set.n,
            layers,
            Some((&token_layers, &mut accs)),
        );
        let align_pass = (set.alignment_pairs > 0).then(|| {
            forward_pass(
                model,
                pooler,
                &set.align_chunks,
                set.n_align_sentences,
                layers,
                None,
            )
        });
        let mut labels = Vec::new();
        let mut values = Vec::new();
        let mut emit = |layer: i64, acc: &TokenAcc, z: &Tensor, za: Option<&Tensor>| {
            let tok = acc.finish(
                set.n,
                set.n_tokens,
                set.sum_nk2,
                &set.type_m,
                &set.type_function,
            );
            let sent = sentence_metrics(z);
            let mut all: Vec<(String, Tensor)> =
                tok.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if let Some(extra) = za {
                let za = Tensor::cat(&[z, extra], 0);
                let a = za.index_select(0, &set.align_idx.select(1, 0));
                let b = za.index_select(0, &set.align_idx.select(1, 1));
                all.push(("alignment".into(), alignment(&a, &b)));
            }
            all.extend(sent);
            for (k, v) in all {
                labels.push((layer, k));
                values.push(v.to_kind(Kind::Double).reshape([1]));
            }
        };
        let own = token_layers.iter().position(|&l| l == last).unwrap_or(0);
        emit(
            -1,
            &accs[own],
            &probe_pass.pooled,
            align_pass.as_ref().map(|p| &p.pooled),
        );
        for (i, &l) in layers.iter().enumerate() {
            let ai = token_layers.iter().position(|&t| t == l).unwrap_or(0);
            emit(
                l as i64,
                &accs[ai],
                &probe_pass.layers[i],
                align_pass.as_ref().map(|p| &p.layers[i]),
            );
        }
        (labels, values)
    });
    let host = Vec::<f64>::try_from(Tensor::cat(&values, 0).to_device(Device::Cpu))?;
    Ok(labels
        .into_iter()
        .zip(host)
        .map(|((l, k), v)| (l, k, v))
        .collect())
}

#[cfg(test)]
mod tests;
