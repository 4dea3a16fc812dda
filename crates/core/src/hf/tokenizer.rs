//! The checkpoint's tokenizer, through Hugging Face `tokenizers`.
//!
//! Read from `tokenizer.json` (with any padding/truncation stored in it switched off), else built
//! from the slow-tokenizer files: BERT's `vocab.txt` (BertNormalizer with `do_lower_case` from
//! `tokenizer_config.json`, default true; BertPreTokenizer; WordPiece with `[UNK]`;
//! `[CLS] $A [SEP]`) or RoBERTa's `vocab.json` + `merges.txt` (byte-level BPE, `<s> $A </s>`).
//! Encoding truncates to `max_len` tokens *including* the special tokens, as transformers'
//! `truncation=True, max_length=max_len` does.

use super::config::ModelType;
use super::error::{ModelError, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, PostProcessor, TruncationDirection};

/// The files a tokenizer may come from; [`Tokenizer::save`] copies those the source had.
pub const TOKENIZER_FILES: [&str; 7] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "added_tokens.json",
];

/// Ids of the special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Sentence start (`[CLS]`, `<s>`): position 0 of every encoded sentence.
    pub cls: i64,
    /// Sentence end (`[SEP]`, `</s>`).
    pub sep: i64,
    /// Padding.
    pub pad: i64,
    /// Unknown word piece, when the vocabulary has one.
    pub unk: Option<i64>,
    /// Mask token, when the vocabulary has one.
    pub mask: Option<i64>,
}

/// One encoded sentence (specials included, truncated, not padded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedSentence {
    /// Token ids.
    pub ids: Vec<i64>,
    /// Token strings (WordPiece types such as `##ing`).
    pub tokens: Vec<String>,
    /// True at special tokens ([CLS], [SEP], …).
    pub special: Vec<bool>,
}

impl TokenizedSentence {
    /// Number of tokens, specials included.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if there are no tokens (never the case for a sentence with specials).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A batch ready for the encoder: `[B, T]` int64 ids and mask, row-major, padded to the longest
/// sentence with the pad id (the engine turns it into tensors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedBatch {
    /// Token ids, `B·T` of them.
    pub ids: Vec<i64>,
    /// 1 at tokens, 0 at padding.
    pub mask: Vec<i64>,
    /// `[B, T]`.
    pub shape: [i64; 2],
}

/// A checkpoint's tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    n_special_single: usize,
    source: PathBuf,
    /// `do_lower_case` when built from vocab.txt (written to a tokenizer_config.json on save if
    /// the source had none).
    lowercase: Option<bool>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("special", &self.special)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| ModelError::tokenizer(path, format!("not valid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModelError::io(path, e)),
    }
}

/// A special token's text from tokenizer_config.json / special_tokens_map.json: either a string
/// or an object with `content`.
fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(String::from),
        _ => None,
    }
}

impl Tokenizer {
    /// Load the tokenizer of the checkpoint in `dir`.
    pub fn from_dir(dir: &Path, model_type: ModelType) -> Result<Self> {
        let tok_config = read_json(&dir.join("tokenizer_config.json"))?;
        let special_map = read_json(&dir.join("special_tokens_map.json"))?;
        let json = dir.join("tokenizer.json");
        let mut lowercase = None;
        let names = SpecialNames::resolve(model_type, tok_config.as_ref(), special_map.as_ref());
        let mut inner = if json.is_file() {
            let mut t = tokenizers::Tokenizer::from_file(&json).map_err(|e| {
                ModelError::tokenizer(&json, format!("not a valid tokenizer.json ({e})"))
            })?;
            t.with_truncation(None)
                .map_err(|e| ModelError::tokenizer(&json, e))?;
            t.with_padding(None);
            t
        } else if dir.join("vocab.txt").is_file() {
            let flag = |k: &str| {
                tok_config
                    .as_ref()
                    .and_then(|c| c.get(k))
                    .and_then(Value::as_bool)
            };
            let lc = flag("do_lower_case").unwrap_or(true);
            lowercase = Some(lc);
            build_wordpiece(
                &dir.join("vocab.txt"),
                &names,
                lc,
                flag("tokenize_chinese_chars").unwrap_or(true),
                flag("strip_accents"),
            )?
        } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
            build_bpe(dir, &names)?
        } else {
            return Err(ModelError::MissingFile {
                path: json,
                what: "the tokenizer needs tokenizer.json, vocab.txt (BERT) or vocab.json + merges.txt (RoBERTa)".into(),
            });
        };
        let source = if json.is_file() {
            json
        } else {
            dir.to_path_buf()
        };
        let id = |name: &str| inner.token_to_id(name).map(i64::from);
        let need = |what: &str, name: &str| {
            id(name).ok_or_else(|| {
                ModelError::tokenizer(
                    &source,
                    format!("the {what} token `{name}` is not in the vocabulary"),
                )
            })
        };
        let special = SpecialTokens {
            cls: need("cls", &names.cls)?,
            sep: need("sep", &names.sep)?,
            pad: need("pad", &names.pad)?,
            unk: id(&names.unk),
            mask: id(&names.mask),
        };
        let n_special_single = inner
            .get_post_processor()
            .map(|p| p.added_tokens(false))
            .unwrap_or(0);
        // Nothing here depends on it, but make the stored tokenizer's state explicit.
        inner.with_padding(None);
        Ok(Self {
            inner,
            special,
            n_special_single,
            source,
            lowercase,
        })
    }

    /// The special tokens' ids.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id the tokenizer can produce.
    pub fn max_id(&self) -> i64 {
        self.inner
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .map(i64::from)
            .unwrap_or(0)
    }

    /// Tokens the post-processor adds to one sentence (2 for `[CLS] … [SEP]`).
    pub fn num_special_tokens(&self) -> usize {
        self.n_special_single
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// The token string of an id.
    pub fn id_to_token(&self, id: i64) -> Option<String> {
        u32::try_from(id)
            .ok()
            .and_then(|i| self.inner.id_to_token(i))
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn check_max_len(&self, max_len: usize) -> Result<()> {
        if max_len <= self.n_special_single {
            return Err(ModelError::Invalid(format!(
                "max_len {max_len} leaves no room for text: each sentence has {} special tokens",
                self.n_special_single
            )));
        }
        Ok(())
    }

    /// Where the tokenizer was read from: its `tokenizer.json`, or the folder of its vocabulary.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// A hash of everything that decides the ids this tokenizer gives: its whole serialized
    /// pipeline (normalizer, pre-tokenizer, model with its vocabulary, post-processor, added
    /// tokens) and the special tokens. Two tokenizers with equal fingerprints tokenize alike,
    /// wherever their files live.
    pub fn fingerprint(&self) -> Result<u128> {
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| ModelError::tokenizer(&self.source, e))?;
        let s = &self.special;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(json.as_bytes());
        for v in [
            s.cls,
            s.sep,
            s.pad,
            s.unk.unwrap_or(-1),
            s.mask.unwrap_or(-1),
        ] {
            h.update(&v.to_le_bytes());
        }
        h.update(&(self.n_special_single as u64).to_le_bytes());
        Ok(h.digest128())
    }

    /// Encode, truncate to `max_len` tokens including specials, add the specials.
    fn encodings<S: AsRef<str>>(
        &self,
        sentences: &[S],
        max_len: usize,
    ) -> Result<Vec<tokenizers::Encoding>> {
        self.check_max_len(max_len)?;
        let inputs: Vec<&str> = sentences.iter().map(|s| s.as_ref()).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, false)
            .map_err(|e| ModelError::tokenizer(&self.source, e))?;
        encodings
            .into_iter()
            .map(|mut enc| {
                enc.truncate(
                    max_len - self.n_special_single,
                    0,
                    TruncationDirection::Right,
                );
                let _ = enc.take_overflowing();
                self.inner
                    .post_process(enc, None, true)
                    .map_err(|e| ModelError::tokenizer(&self.source, e))
            })
            .collect()
    }

    /// The ids of each sentence (as [`Tokenizer::tokenize`], without the token strings).
    pub fn ids<S: AsRef<str>>(&self, sentences: &[S], max_len: usize) -> Result<Vec<Vec<u32>>> {
        Ok(self
            .encodings(sentences, max_len)?
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Encode sentences: specials added, each truncated to `max_len` tokens including specials.
    pub fn tokenize<S: AsRef<str>>(
        &self,
        sentences: &[S],
        max_len: usize,
    ) -> Result<Vec<TokenizedSentence>> {
        self.encodings(sentences, max_len)?
            .into_iter()
            .map(|enc| {
                Ok(TokenizedSentence {
                    ids: enc.get_ids().iter().map(|&i| i64::from(i)).collect(),
                    tokens: enc.get_tokens().to_vec(),
                    special: enc
                        .get_special_tokens_mask()
                        .iter()
                        .map(|&m| m != 0)
                        .collect(),
                })
            })
            .collect()
    }

    /// Pad tokenised sentences to the longest into `[B, T]` ids and mask.
    pub fn pad_ids(&self, sentences: &[TokenizedSentence]) -> PaddedBatch {
        let b = sentences.len();
        let t = sentences.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = vec![self.special.pad; b * t];
        let mut mask = vec![0i64; b * t];
        for (i, s) in sentences.iter().enumerate() {
            ids[i * t..i * t + s.len()].copy_from_slice(&s.ids);
            mask[i * t..i * t + s.len()].fill(1);
        }
        let shape = [b as i64, t as i64];
        PaddedBatch { ids, mask, shape }
    }

    /// Tokenise and pad: `[B, T]` input ids and attention mask, `T` the longest sentence after
    /// truncation to `max_len` tokens (specials included).
    pub fn encode_ids<S: AsRef<str>>(
        &self,
        sentences: &[S],
        max_len: usize,
    ) -> Result<PaddedBatch> {
        Ok(self.pad_ids(&self.tokenize(sentences, max_len)?))
    }

    /// Write `tokenizer.json` into `dir`, copy the other tokenizer files the source directory had
    /// (`from` is the directory the model was loaded from), and write a `tokenizer_config.json`
    /// when the source had none, so transformers' `AutoTokenizer` reproduces this tokenizer.
    pub fn save(&self, from: &Path, dir: &Path, model_max_length: i64) -> Result<()> {
        let json = dir.join("tokenizer.json");
        self.inner
            .save(&json, true)
            .map_err(|e| ModelError::tokenizer(&json, e))?;
        for name in TOKENIZER_FILES {
            let src = from.join(name);
            if src.is_file() {
                let dst = dir.join(name);
                std::fs::copy(&src, &dst).map_err(|e| ModelError::io(&dst, e))?;
            }
        }
        let cfg = dir.join("tokenizer_config.json");
        if !cfg.exists() {
            let tok = |id: i64| self.id_to_token(id).unwrap_or_default();
            let mut m = serde_json::Map::new();
            if let Some(lc) = self.lowercase {
                m.insert("do_lower_case".into(), Value::Bool(lc));
            }
            m.insert("model_max_length".into(), Value::from(model_max_length));
            m.insert("cls_token".into(), Value::from(tok(self.special.cls)));
            m.insert("sep_token".into(), Value::from(tok(self.special.sep)));
            m.insert("pad_token".into(), Value::from(tok(self.special.pad)));
            if let Some(u) = self.special.unk {
                m.insert("unk_token".into(), Value::from(tok(u)));
            }
            if let Some(u) = self.special.mask {
                m.insert("mask_token".into(), Value::from(tok(u)));
            }
            let text = serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default();
            std::fs::write(&cfg, text).map_err(|e| ModelError::io(&cfg, e))?;
        }
        Ok(())
    }
}

/// The special tokens' strings, from the tokenizer's JSON files or the architecture's defaults.
struct SpecialNames {
    cls: String,
    sep: String,
    pad: String,
    unk: String,
    mask: String,
}

impl SpecialNames {
    fn resolve(model_type: ModelType, config: Option<&Value>, map: Option<&Value>) -> Self {
        let (cls, sep, pad, unk, mask) = if model_type == ModelType::Mpnet {
            // MPNet's WordPiece vocabulary is BERT's with <s> <pad> </s> <unk> before it and
            // <mask> after; its word-piece unknown is BERT's [UNK] (transformers' MPNetTokenizer).
            ("<s>", "</s>", "<pad>", "[UNK]", "<mask>")
        } else if model_type.roberta_specials() {
            ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
        } else {
            ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")
        };
        let get = |key: &str, default: &str| {
            [map, config]
                .into_iter()
                .flatten()
                .find_map(|v| v.get(key).and_then(token_text))
                .unwrap_or_else(|| default.to_string())
        };
        Self {
            cls: get("cls_token", cls),
            sep: get("sep_token", sep),
            pad: get("pad_token", pad),
            unk: get("unk_token", unk),
            mask: get("mask_token", mask),
        }
    }

    fn all(&self) -> [&str; 5] {
        [&self.pad, &self.unk, &self.cls, &self.sep, &self.mask]
    }
}

fn add_specials(t: &mut tokenizers::Tokenizer, names: &SpecialNames) {
    let present: Vec<AddedToken> = names
        .all()
        .into_iter()
        .filter(|n| t.token_to_id(n).is_some())
        .map(|n| AddedToken::from(n.to_string(), true))
        .collect();
    t.add_special_tokens(&present);
}

fn build_wordpiece(
    vocab: &Path,
    names: &SpecialNames,
    lowercase: bool,
    chinese_chars: bool,
    strip_accents: Option<bool>,
) -> Result<tokenizers::Tokenizer> {
    let path = vocab.to_string_lossy().to_string();
    let wp = WordPiece::from_file(&path)
        .unk_token(names.unk.clone())
        .build()
        .map_err(|e| ModelError::tokenizer(vocab, e))?;
    let mut t = tokenizers::Tokenizer::new(wp);
    let id = |n: &str| {
        t.token_to_id(n)
            .ok_or_else(|| ModelError::tokenizer(vocab, format!("`{n}` is not in the vocabulary")))
    };
    let cls = (names.cls.clone(), id(&names.cls)?);
    let sep = (names.sep.clone(), id(&names.sep)?);
    t.with_normalizer(Some(BertNormalizer::new(
        true,
        chinese_chars,
        strip_accents,
        lowercase,
    )));
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_post_processor(Some(BertProcessing::new(sep, cls)));
    t.with_decoder(Some(WordPieceDecoder::default()));
    add_specials(&mut t, names);
    Ok(t)
}

fn build_bpe(dir: &Path, names: &SpecialNames) -> Result<tokenizers::Tokenizer> {
    let vocab = dir.join("vocab.json");
    let merges = dir.join("merges.txt");
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| ModelError::tokenizer(&vocab, e))?;
    let mut t = tokenizers::Tokenizer::new(bpe);
    let id = |n: &str| {
        t.token_to_id(n)
            .ok_or_else(|| ModelError::tokenizer(&vocab, format!("`{n}` is not in the vocabulary")))
    };
    let cls = (names.cls.clone(), id(&names.cls)?);
    let sep = (names.sep.clone(), id(&names.sep)?);
    t.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    t.with_post_processor(Some(RobertaProcessing::new(sep, cls)));
    t.with_decoder(Some(ByteLevelDecoder::default()));
    add_specials(&mut t, names);
    Ok(t)
}
