//! Tokenized corpora (cached across the runs of a sweep) and batch collation.

use crate::data::Corpus;
use anyhow::Result;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tch::{Device, Kind, Tensor};

/// Every text of a corpus as token ids (specials included, truncated to max_len), example-major:
/// example i's texts are `ids[i * per_example .. (i + 1) * per_example]`.
#[derive(Debug)]
pub struct Tokenized {
    pub per_example: usize,
    pub ids: Vec<Vec<i64>>,
    pub n_tokens: usize,
}

impl Tokenized {
    pub fn len(&self) -> usize {
        self.ids.len() / self.per_example.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The token ids of example `i`'s texts.
    pub fn example(&self, i: usize) -> &[Vec<i64>] {
        &self.ids[i * self.per_example..(i + 1) * self.per_example]
    }
}

/// Tokenize a corpus in parallel. `encode` maps one text to its ids (truncated to the run's max_len).
pub fn tokenize(
    corpus: &Corpus,
    encode: &(dyn Fn(&str) -> Result<Vec<i64>> + Sync),
) -> Result<Tokenized> {
    let per_example = if corpus.supervised { 3 } else { 1 };
    let texts: Vec<&str> = corpus.examples.iter().flat_map(|e| e.texts()).collect();
    let ids: Vec<Vec<i64>> = texts
        .par_chunks(1024)
        .map(|chunk| chunk.iter().map(|t| encode(t)).collect::<Result<Vec<_>>>())
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let n_tokens = ids.iter().map(Vec::len).sum();
    Ok(Tokenized {
        per_example,
        ids,
        n_tokens,
    })
}

/// What identifies a tokenized corpus: the tokenizer, the files and format, and max_len.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub tokenizer: String,
    pub files: Vec<String>,
    pub format: String,
    pub max_len: i64,
}

type Cache = Mutex<HashMap<CacheKey, Arc<(Corpus, Tokenized)>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The corpus and its tokens for `key`, read and tokenized once per process: the runs of a sweep
/// that train on the same files with the same tokenizer share them.
pub fn cached(
    key: CacheKey,
    build: impl FnOnce() -> Result<(Corpus, Tokenized)>,
) -> Result<(Arc<(Corpus, Tokenized)>, bool)> {
    if let Some(hit) = cache().lock().expect("token cache").get(&key) {
        return Ok((hit.clone(), true));
    }
    let built = Arc::new(build()?);
    let mut c = cache().lock().expect("token cache");
    // Bound memory: keep the few most recent corpora only.
    if c.len() >= 4 {
        c.clear();
    }
    c.insert(key, built.clone());
    Ok((built, false))
}

/// Pad a list of token-id sequences to the longest into `[n, T]` input ids and a 0/1 attention mask.
pub fn collate(seqs: &[&[i64]], pad_id: i64, device: Device) -> (Tensor, Tensor) {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let mut ids = vec![pad_id; seqs.len() * t];
    let mut mask = vec![0i64; seqs.len() * t];
    for (i, s) in seqs.iter().enumerate() {
        ids[i * t..i * t + s.len()].copy_from_slice(s);
        mask[i * t..i * t + s.len()].iter_mut().for_each(|m| *m = 1);
    }
    let shape = [seqs.len() as i64, t as i64];
    ids.extend_from_slice(&mask);
    let both = Tensor::from_slice(&ids).view([2, shape[0], shape[1]]);
    let both = match device {
        Device::Cpu => both,
        // One copy from page-locked memory, queued behind the device's work: the host goes on
        // preparing the step instead of waiting for the device to drain (a copy from pageable
        // memory synchronises).
        _ => both
            .pin_memory(device)
            .to_device_(device, Kind::Int64, true, false),
    };
    (both.get(0), both.get(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Example;

    #[test]
    fn collate_pads_to_the_longest() {
        let a = [101i64, 7, 102];
        let b = [101i64, 102];
        let (ids, mask) = collate(&[&a, &b], 0, Device::Cpu);
        assert_eq!(ids.size(), vec![2, 3]);
        assert_eq!(
            Vec::<i64>::try_from(ids.flatten(0, -1)).unwrap(),
            vec![101, 7, 102, 101, 102, 0]
        );
        assert_eq!(
            Vec::<i64>::try_from(mask.flatten(0, -1)).unwrap(),
            vec![1, 1, 1, 1, 1, 0]
        );
    }

    #[test]
    fn tokenize_keeps_example_order_and_cache_reuses() {
        let corpus = Corpus {
            examples: (0..3000)
                .map(|i| Example::Triplet(format!("a{i}"), format!("b{i}"), format!("c{i}")))
                .collect(),
            supervised: true,
            ..Default::default()
        };
        let enc = |t: &str| -> Result<Vec<i64>> { Ok(t.bytes().map(i64::from).collect()) };
        let tok = tokenize(&corpus, &enc).unwrap();
        assert_eq!(tok.len(), 3000);
        assert_eq!(
            tok.example(2999)[2],
            "c2999".bytes().map(i64::from).collect::<Vec<_>>()
        );
        let key = CacheKey {
            tokenizer: "t".into(),
            files: vec!["f".into()],
            format: "auto".into(),
            max_len: 32,
        };
        let (_, hit) = cached(key.clone(), || {
            Ok((corpus.clone(), tokenize(&corpus, &enc)?))
        })
        .unwrap();
        assert!(!hit);
        let (again, hit) = cached(key, || panic!("must not rebuild")).unwrap();
        assert!(hit);
        assert_eq!(again.1.len(), 3000);
    }
}
