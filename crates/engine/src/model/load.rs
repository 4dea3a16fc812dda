//! Reading checkpoints into a [`LoadedModel`], seeded initialisation, and atomic saving.

use super::config::{architecture_overrides, EncoderConfig};
use super::error::{ModelError, Result, ShapeMismatch};
use super::pooling::MlpLayer;
use super::{torch_pickle, Init, LoadReport, LoadedModel, VarInit};
use crate::hf::{check_safetensors, shards, tokenizer_for};
use crate::spec::config::ModelOverrides;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// Key prefixes of transformers' task-head classes, stripped from the encoder's keys (BERT's,
/// RoBERTa's, DistilBERT's, MPNet's and ModernBERT's `base_model_prefix`).
const PREFIXES: [&str; 5] = ["bert.", "roberta.", "distilbert.", "mpnet.", "model."];

/// Checkpoint tensors that are expected not to match: heads and buffers.
fn is_ignorable(key: &str) -> bool {
    const HEADS: [&str; 11] = [
        "cls.",
        "lm_head.",
        "classifier.",
        "qa_outputs.",
        "pre_classifier.",
        "dropout.",
        // DistilBertForMaskedLM
        "vocab_transform.",
        "vocab_layer_norm.",
        "vocab_projector.",
        // ModernBertForMaskedLM
        "head.",
        "decoder.",
    ];
    HEADS.iter().any(|h| key.starts_with(h)) || key.ends_with("position_ids")
}

/// Variables a checkpoint may lack: initialised from the seed instead.
fn is_optional(name: &str) -> bool {
    name.starts_with("pooler.") || name.starts_with("mlp.")
}

/// A checkpoint key as the VarStore names it: prefix stripped, `LayerNorm.gamma/beta` renamed.
fn normalise_key(key: &str) -> String {
    let k = PREFIXES
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or(key);
    if k.contains("LayerNorm.") {
        if let Some(base) = k.strip_suffix(".gamma") {
            return format!("{base}.weight");
        }
        if let Some(base) = k.strip_suffix(".beta") {
            return format!("{base}.bias");
        }
    }
    k.to_string()
}

fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    check_safetensors(path)?;
    Tensor::read_safetensors(path).map_err(|e| {
        let msg = match e {
            tch::TchError::SafeTensorError { err, .. } => {
                format!("not a valid safetensors file ({err:?})")
            }
            other => other.to_string(),
        };
        ModelError::weights(path, msg)
    })
}

fn read_bin(path: &Path) -> Result<Vec<(String, Tensor)>> {
    torch_pickle::read_state_dict(path).map_err(|m| ModelError::weights(path, m))
}

/// Read the checkpoint's tensors: `model.safetensors`, its sharded index, `pytorch_model.bin`, or
/// its sharded index, in that order of preference. Returns the file read and the tensors.
/// Checkpoints read by this process, newest last: the runs of a sweep that start from the same
/// weights read (and convert) them once. Keyed by the directory and the weight files' sizes and
/// modification times, so a checkpoint rewritten in place is read again.
type CachedWeights = (PathBuf, Vec<(String, Tensor)>);
static WEIGHTS: std::sync::Mutex<Vec<(String, CachedWeights)>> = std::sync::Mutex::new(Vec::new());
/// How many checkpoints the process keeps in memory (CPU copies).
const WEIGHTS_KEPT: usize = 2;

fn weights_key(dir: &Path) -> Option<String> {
    let mut key = std::fs::canonicalize(dir).ok()?.display().to_string();
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".safetensors") || name.ends_with(".bin") || name.ends_with(".json") {
            let m = e.metadata().ok()?;
            let t = m
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            key.push_str(&format!("|{name}:{}:{}", m.len(), t.as_nanos()));
        }
    }
    Some(key)
}

/// [`read_checkpoint`] through the process's cache; also says whether it was a hit. The tensors
/// are shared (shallow) with the cache: callers copy from them and never write into them.
fn read_checkpoint_cached(dir: &Path) -> Result<(CachedWeights, bool)> {
    let key = weights_key(dir);
    let share = |(f, ts): &CachedWeights| {
        (
            f.clone(),
            ts.iter()
                .map(|(k, t)| (k.clone(), t.shallow_clone()))
                .collect::<Vec<_>>(),
        )
    };
    if let Some(key) = &key {
        let cache = WEIGHTS.lock().expect("weights cache");
        if let Some((_, w)) = cache.iter().find(|(k, _)| k == key) {
            return Ok((share(w), true));
        }
    }
    let read = read_checkpoint(dir)?;
    if let Some(key) = key {
        let mut cache = WEIGHTS.lock().expect("weights cache");
        let out = share(&read);
        cache.retain(|(k, _)| *k != key);
        cache.push((key, read));
        let n = cache.len();
        if n > WEIGHTS_KEPT {
            cache.drain(..n - WEIGHTS_KEPT);
        }
        return Ok((out, false));
    }
    Ok((read, false))
}

fn read_checkpoint(dir: &Path) -> Result<(PathBuf, Vec<(String, Tensor)>)> {
    let st = dir.join("model.safetensors");
    if st.is_file() {
        return Ok((st.clone(), read_safetensors(&st)?));
    }
    let st_index = dir.join("model.safetensors.index.json");
    if st_index.is_file() {
        let mut all = Vec::new();
        for f in shards(&st_index)? {
            all.extend(read_safetensors(&f)?);
        }
        return Ok((st_index, all));
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok((bin.clone(), read_bin(&bin)?));
    }
    let bin_index = dir.join("pytorch_model.bin.index.json");
    if bin_index.is_file() {
        let mut all = Vec::new();
        for f in shards(&bin_index)? {
            all.extend(read_bin(&f)?);
        }
        return Ok((bin_index, all));
    }
    Err(ModelError::NoWeights(dir.to_path_buf()))
}

/// Copy checkpoint tensors into the VarStore's variables. Returns the optional variables the
/// checkpoint lacked and the checkpoint keys that matched nothing.
fn assign(
    vs: &nn::VarStore,
    tensors: Vec<(String, Tensor)>,
    file: &Path,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    for (k, t) in tensors {
        let n = normalise_key(&k);
        // A prefixed key wins over a bare one of the same name.
        if k.len() != n.len() || !by_name.contains_key(&n) {
            by_name.insert(n, t);
        }
    }
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut missing = Vec::new();
    let mut absent_optional = Vec::new();
    let mut mismatches = Vec::new();
    let mut matched = Vec::new();
    for (name, var) in &vars {
        match by_name.remove(name) {
            Some(t) => {
                if t.size() != var.size() {
                    mismatches.push(ShapeMismatch {
                        key: name.clone(),
                        expected: var.size(),
                        found: t.size(),
                    });
                } else {
                    matched.push((var.shallow_clone(), t));
                }
            }
            None if is_optional(name) => absent_optional.push(name.clone()),
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(ModelError::MissingKeys {
            path: file.to_path_buf(),
            keys: missing,
        });
    }
    if !mismatches.is_empty() {
        return Err(ModelError::ShapeMismatch {
            path: file.to_path_buf(),
            mismatches,
        });
    }
    tch::no_grad(|| -> Result<()> {
        for (mut var, t) in matched {
            var.f_copy_(&t).map_err(super::torch_err)?;
        }
        Ok(())
    })?;
    let mut unused: Vec<String> = by_name.into_keys().filter(|k| !is_ignorable(k)).collect();
    unused.sort();
    Ok((absent_optional, unused))
}

/// A per-variable seed: the run seed mixed with the variable's name (FNV-1a), so a tensor's
/// initial values depend only on the seed, its name and its shape.
fn var_seed(seed: i64, name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 1) as i64
}

/// Initialise the named variables as transformers' `_init_weights` does for the architecture
/// ([`super::var_init`]), from `seed`. Values are drawn on the CPU, so they are the same on every
/// device.
fn init_vars(vs: &nn::VarStore, config: &EncoderConfig, seed: i64, names: &[String]) -> Result<()> {
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for name in names {
            let Some(var) = vars.get(name) else { continue };
            let shape = var.size();
            let cpu = (Kind::Float, Device::Cpu);
            let value = match super::var_init(config, name) {
                VarInit::Ones => Tensor::ones(&shape, cpu),
                VarInit::Zeros => Tensor::zeros(&shape, cpu),
                VarInit::Normal { std, zero_row } => {
                    tch::manual_seed(var_seed(seed, name));
                    let w = Tensor::randn(&shape, cpu) * std;
                    if let Some(row) = zero_row.filter(|&r| r >= 0 && r < shape[0]) {
                        let _ = w.get(row).fill_(0.0);
                    }
                    w
                }
                VarInit::TruncNormal { std, cutoff } => {
                    tch::manual_seed(var_seed(seed, name));
                    trunc_normal(&shape, std, cutoff)
                }
                VarInit::Sinusoidal => sinusoidal(shape[0], shape[1]),
            };
            var.shallow_clone()
                .f_copy_(&value)
                .map_err(super::torch_err)?;
        }
        Ok(())
    })
}

/// `N(0, std)` truncated to `[−cutoff·std, cutoff·std]` by inverse-CDF sampling, as PyTorch's
/// `nn.init.trunc_normal_`.
fn trunc_normal(shape: &[i64], std: f64, cutoff: f64) -> Tensor {
    let cdf = |x: f64| {
        (1.0 + Tensor::from(x / std::f64::consts::SQRT_2)
            .erf()
            .double_value(&[]))
            / 2.0
    };
    let (lo, hi) = (cdf(-cutoff), cdf(cutoff));
    let u =
        Tensor::empty(shape, (Kind::Float, Device::Cpu)).uniform_(2.0 * lo - 1.0, 2.0 * hi - 1.0);
    (u.erfinv() * (std * std::f64::consts::SQRT_2)).clamp(-cutoff * std, cutoff * std)
}

/// DistilBERT's fixed position table: `pos / 10000^(2⌊j/2⌋/dim)`, sine at even `j`, cosine at odd.
fn sinusoidal(rows: i64, dim: i64) -> Tensor {
    let mut v = Vec::with_capacity((rows * dim) as usize);
    for pos in 0..rows {
        for j in 0..dim {
            let angle = pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
            v.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    Tensor::from_slice(&v).view([rows, dim])
}

pub(super) fn load(
    dir: &Path,
    init: Init,
    overrides: &ModelOverrides,
    device: Device,
    cache: bool,
) -> Result<LoadedModel> {
    if !dir.is_dir() {
        return Err(ModelError::MissingDir(dir.to_path_buf()));
    }
    let config_path = dir.join("config.json");
    let mut config = EncoderConfig::from_file(&config_path)?;
    if let Init::Pretrained { .. } = init {
        let arch = architecture_overrides(&config, overrides);
        if !arch.is_empty() {
            return Err(ModelError::config(
                &config_path,
                format!(
                    "{} change the architecture of a pretrained checkpoint; they need model.init = \"random\"",
                    arch.join(", ")
                ),
            ));
        }
    }
    config
        .apply(overrides)
        .map_err(|m| ModelError::config(&config_path, m))?;
    let tokenizer = tokenizer_for(dir, &config)?;

    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let encoder = super::build_encoder(&root, &config);
    let mlp = MlpLayer::new(&(&root / "mlp"), config.hidden_size);
    let seed = init.seed();
    let mut report = LoadReport::default();
    match init {
        Init::Random { .. } => {
            let mut names: Vec<String> = vs.variables().into_keys().collect();
            names.sort();
            init_vars(&vs, &config, seed, &names)?;
            report.initialised = names;
        }
        Init::Pretrained { .. } => {
            let ((file, tensors), hit) = if cache {
                read_checkpoint_cached(dir)?
            } else {
                (read_checkpoint(dir)?, false)
            };
            report.weights_cached = hit;
            let (absent, unused) = assign(&vs, tensors, &file)?;
            init_vars(&vs, &config, seed, &absent)?;
            report.weights = Some(file);
            report.initialised = absent;
            report.unused = unused;
        }
    }
    tch::manual_seed(seed);
    Ok(LoadedModel {
        vs,
        config,
        tokenizer,
        encoder,
        mlp,
        source: dir.to_path_buf(),
        report,
    })
}

/// A tensor's bytes for safetensors: f32, contiguous, on the CPU.
struct F32View {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for F32View {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn f32_view(t: &Tensor) -> Result<F32View> {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let numel = t.numel();
    let mut data = vec![0u8; numel * 4];
    t.f_copy_data_u8(&mut data, numel)
        .map_err(super::torch_err)?;
    Ok(F32View {
        shape: t.size().iter().map(|&d| d as usize).collect(),
        data,
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| ModelError::io(path, e))?;
    f.write_all(bytes).map_err(|e| ModelError::io(path, e))?;
    f.sync_all().map_err(|e| ModelError::io(path, e))
}

fn write_checkpoint(m: &LoadedModel, tmp: &Path) -> Result<()> {
    write_synced(
        &tmp.join("config.json"),
        m.config.to_json_pretty().as_bytes(),
    )?;
    let vars: BTreeMap<String, Tensor> = m.vs.variables().into_iter().collect();
    let views = vars
        .iter()
        .map(|(k, t)| Ok((k.clone(), f32_view(t)?)))
        .collect::<Result<Vec<_>>>()?;
    let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let st = tmp.join("model.safetensors");
    let bytes = safetensors::tensor::serialize(views, &meta)
        .map_err(|e| ModelError::weights(&st, format!("cannot serialise: {e:?}")))?;
    write_synced(&st, &bytes)?;
    m.tokenizer.save(&m.source, tmp, m.config.max_tokens())?;
    Ok(())
}

pub(super) fn save_pretrained(
    m: &LoadedModel,
    dir: &Path,
    extra: &dyn Fn(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let name = dir
        .file_name()
        .ok_or_else(|| {
            ModelError::Invalid(format!(
                "cannot save to {}: no directory name",
                dir.display()
            ))
        })?
        .to_string_lossy()
        .to_string();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| ModelError::io(&parent, e))?;
    let stamp = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!(".{name}.tmp-{stamp}"));
    std::fs::create_dir(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    if let Err(e) =
        write_checkpoint(m, &tmp).and_then(|()| extra(&tmp).map_err(|e| ModelError::io(&tmp, e)))
    {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old-{stamp}"));
    let had_old = dir.exists();
    if had_old {
        if let Err(e) = std::fs::rename(dir, &old) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(ModelError::io(dir, e));
        }
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(ModelError::io(dir, e));
    }
    if had_old {
        let _ = if old.is_dir() {
            std::fs::remove_dir_all(&old)
        } else {
            std::fs::remove_file(&old)
        };
    }
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise() {
        assert_eq!(
            normalise_key("bert.embeddings.LayerNorm.gamma"),
            "embeddings.LayerNorm.weight"
        );
        assert_eq!(
            normalise_key("roberta.encoder.layer.0.output.LayerNorm.beta"),
            "encoder.layer.0.output.LayerNorm.bias"
        );
        assert_eq!(normalise_key("mlp.dense.weight"), "mlp.dense.weight");
        assert_eq!(
            normalise_key("cls.predictions.bias"),
            "cls.predictions.bias"
        );
        assert!(is_ignorable("cls.predictions.bias"));
        assert!(is_ignorable("embeddings.position_ids"));
        assert!(!is_ignorable("encoder.layer.0.output.dense.weight"));
    }

    #[test]
    fn var_seeds_differ() {
        assert_ne!(var_seed(1, "a"), var_seed(1, "b"));
        assert_ne!(var_seed(1, "a"), var_seed(2, "a"));
        assert_eq!(var_seed(7, "x"), var_seed(7, "x"));
        assert!(var_seed(-5, "x") >= 0);
    }
}
