//! A reader for state dicts written by `torch.save` (the zip format of PyTorch ≥ 1.6, as in
//! `pytorch_model.bin`): libtorch's C++ loader rejects them (the `OrderedDict` carries a
//! `_metadata` attribute), so this reads them directly.
//!
//! The archive holds `<name>/data.pkl` (a pickle of the dict, whose tensors refer to storages by
//! persistent id) and `<name>/data/<key>` (each storage's raw little-endian bytes, uncompressed).
//! Only what state dicts use is understood: the pickle opcodes of protocols 2–5 that build plain
//! containers, `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` /
//! `_rebuild_parameter` and the typed storage classes. Anything else is an error naming the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use tch::{Kind, Tensor};

type R<T> = std::result::Result<T, String>;

/// One entry of the zip's central directory.
#[derive(Debug, Clone)]
struct ZipEntry {
    method: u16,
    compressed_size: u64,
    size: u64,
    header_offset: u64,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64le(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A minimal reader of uncompressed ("stored") zip archives, zip64 included.
struct Zip {
    file: File,
    len: u64,
    entries: HashMap<String, ZipEntry>,
}

impl Zip {
    fn open(path: &Path) -> R<Self> {
        let mut file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        let tail_len = len.min(65_557);
        let mut tail = vec![0u8; tail_len as usize];
        file.seek(SeekFrom::Start(len - tail_len))
            .map_err(|e| e.to_string())?;
        file.read_exact(&mut tail).map_err(|e| e.to_string())?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| u32le(&tail, i) == 0x0605_4b50)
            .ok_or("not a zip archive (no end-of-central-directory record)")?;
        let mut count = u64::from(u16le(&tail, eocd + 10));
        let mut cd_size = u64::from(u32le(&tail, eocd + 12));
        let mut cd_offset = u64::from(u32le(&tail, eocd + 16));
        // Zip64: a locator 20 bytes before the end record points at the zip64 end record.
        if eocd >= 20 && u32le(&tail, eocd - 20) == 0x0706_4b50 {
            let at = u64le(&tail, eocd - 20 + 8);
            let mut rec = [0u8; 56];
            file.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
            file.read_exact(&mut rec).map_err(|e| e.to_string())?;
            if u32le(&rec, 0) != 0x0606_4b50 {
                return Err("corrupt zip64 end-of-central-directory record".into());
            }
            count = u64le(&rec, 32);
            cd_size = u64le(&rec, 40);
            cd_offset = u64le(&rec, 48);
        }
        if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
            return Err("corrupt zip central directory (beyond the end of the file)".into());
        }
        let mut cd = vec![0u8; cd_size as usize];
        file.seek(SeekFrom::Start(cd_offset))
            .map_err(|e| e.to_string())?;
        file.read_exact(&mut cd).map_err(|e| e.to_string())?;
        let mut entries = HashMap::new();
        let mut p = 0usize;
        for _ in 0..count {
            if p + 46 > cd.len() || u32le(&cd, p) != 0x0201_4b50 {
                return Err("corrupt zip central directory entry".into());
            }
            let method = u16le(&cd, p + 10);
            let mut compressed_size = u64::from(u32le(&cd, p + 20));
            let mut size = u64::from(u32le(&cd, p + 24));
            let name_len = usize::from(u16le(&cd, p + 28));
            let extra_len = usize::from(u16le(&cd, p + 30));
            let comment_len = usize::from(u16le(&cd, p + 32));
            let mut header_offset = u64::from(u32le(&cd, p + 42));
            let name_at = p + 46;
            let extra_at = name_at + name_len;
            let end = extra_at + extra_len + comment_len;
            if end > cd.len() {
                return Err("corrupt zip central directory entry".into());
            }
            let name = String::from_utf8_lossy(&cd[name_at..extra_at]).to_string();
            // Zip64 extended information: the 0xFFFFFFFF fields, in order, as u64.
            let mut q = extra_at;
            while q + 4 <= extra_at + extra_len {
                let id = u16le(&cd, q);
                let sz = usize::from(u16le(&cd, q + 2));
                if id == 0x0001 {
                    let mut r = q + 4;
                    for field in [&mut size, &mut compressed_size, &mut header_offset] {
                        if *field == 0xFFFF_FFFF && r + 8 <= q + 4 + sz {
                            *field = u64le(&cd, r);
                            r += 8;
                        }
                    }
                }
                q += 4 + sz;
            }
            entries.insert(
                name,
                ZipEntry {
                    method,
                    compressed_size,
                    size,
                    header_offset,
                },
            );
            p = end;
        }
        Ok(Self { file, len, entries })
    }

    fn read(&mut self, name: &str) -> R<Vec<u8>> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| format!("archive entry `{name}` is missing"))?
            .clone();
        if e.method != 0 || e.compressed_size != e.size {
            return Err(format!(
                "archive entry `{name}` is compressed (method {}); torch.save writes stored entries",
                e.method
            ));
        }
        let mut header = [0u8; 30];
        self.file
            .seek(SeekFrom::Start(e.header_offset))
            .map_err(|err| err.to_string())?;
        self.file
            .read_exact(&mut header)
            .map_err(|err| format!("archive entry `{name}`: {err}"))?;
        if u32le(&header, 0) != 0x0403_4b50 {
            return Err(format!("archive entry `{name}`: corrupt local header"));
        }
        let skip = u64::from(u16le(&header, 26)) + u64::from(u16le(&header, 28));
        if e.header_offset + 30 + skip + e.size > self.len {
            return Err(format!(
                "archive entry `{name}` extends beyond the end of the file"
            ));
        }
        self.file
            .seek(SeekFrom::Current(skip as i64))
            .map_err(|err| err.to_string())?;
        let mut data = vec![0u8; e.size as usize];
        self.file
            .read_exact(&mut data)
            .map_err(|err| format!("archive entry `{name}` is truncated: {err}"))?;
        Ok(data)
    }
}

/// What a pickled tensor says about itself; its data is read from the storage afterwards.
#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage_key: String,
    kind: Kind,
    storage_numel: i64,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

/// A pickled value (copy semantics: enough for state dicts, which never mutate shared objects
/// after memoising them).
#[derive(Debug, Clone, PartialEq)]
enum Obj {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Obj>),
    List(Vec<Obj>),
    Dict(Vec<(Obj, Obj)>),
    Global(String),
    Storage {
        kind: Kind,
        key: String,
        numel: i64,
    },
    Tensor(TensorRef),
    /// The result of calling a class or function this reader does not model.
    Opaque(String),
}

fn storage_kind(class: &str) -> Option<Kind> {
    Some(match class {
        "torch.FloatStorage" => Kind::Float,
        "torch.DoubleStorage" => Kind::Double,
        "torch.HalfStorage" => Kind::Half,
        "torch.BFloat16Storage" => Kind::BFloat16,
        "torch.LongStorage" => Kind::Int64,
        "torch.IntStorage" => Kind::Int,
        "torch.ShortStorage" => Kind::Int16,
        "torch.CharStorage" => Kind::Int8,
        "torch.ByteStorage" => Kind::Uint8,
        "torch.BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

fn as_ints(o: &Obj) -> R<Vec<i64>> {
    match o {
        Obj::Tuple(v) | Obj::List(v) => v
            .iter()
            .map(|x| match x {
                Obj::Int(i) => Ok(*i),
                other => Err(format!(
                    "expected an integer in a tensor's shape, found {other:?}"
                )),
            })
            .collect(),
        other => Err(format!("expected a tuple of integers, found {other:?}")),
    }
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Obj>,
    memo: HashMap<u32, Obj>,
}

impl<'a> Unpickler<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("pickle ends early")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16le(self.take(2)?, 0))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32le(self.take(4)?, 0))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64le(self.take(8)?, 0))
    }
    fn line(&mut self) -> R<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("pickle ends inside a GLOBAL")?;
        let s = String::from_utf8_lossy(&rest[..n]).to_string();
        self.pos += n + 1;
        Ok(s)
    }
    fn pop(&mut self) -> R<Obj> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".into())
    }
    fn top(&mut self) -> R<&mut Obj> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".into())
    }
    fn pop_mark(&mut self) -> R<Vec<Obj>> {
        let at = self
            .stack
            .iter()
            .rposition(|o| matches!(o, Obj::Mark))
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn memo_put(&mut self, idx: u32) -> R<()> {
        let v = self.stack.last().ok_or("pickle stack underflow")?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }
    fn memo_get(&mut self, idx: u32) -> R<()> {
        let v = self
            .memo
            .get(&idx)
            .ok_or_else(|| format!("pickle memo {idx} undefined"))?
            .clone();
        self.stack.push(v);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Obj>) -> R<()> {
        if !items.len().is_multiple_of(2) {
            return Err("pickle SETITEMS with an odd number of items".into());
        }
        let Obj::Dict(d) = self.top()? else {
            return Err("pickle SETITEM(S) on something that is not a dict".into());
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Obj>) -> R<()> {
        match self.top()? {
            Obj::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => Err("pickle APPEND(S) on something that is not a list".into()),
        }
    }

    fn reduce(&mut self, callable: Obj, args: Obj) -> R<Obj> {
        let Obj::Global(name) = callable else {
            return Ok(Obj::Opaque(format!("{callable:?}")));
        };
        let args = match args {
            Obj::Tuple(a) => a,
            other => {
                return Err(format!(
                    "pickle REDUCE of `{name}` with arguments {other:?}"
                ))
            }
        };
        Ok(match name.as_str() {
            "collections.OrderedDict" if args.is_empty() => Obj::Dict(Vec::new()),
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                if args.len() < 4 {
                    return Err(format!("`{name}` with {} arguments", args.len()));
                }
                let Obj::Storage { kind, key, numel } = &args[0] else {
                    return Err(format!("`{name}` without a storage: {:?}", args[0]));
                };
                let Obj::Int(offset) = args[1] else {
                    return Err(format!("`{name}` with a non-integer offset"));
                };
                Obj::Tensor(TensorRef {
                    storage_key: key.clone(),
                    kind: *kind,
                    storage_numel: *numel,
                    offset,
                    size: as_ints(&args[2])?,
                    stride: as_ints(&args[3])?,
                })
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
                match args.into_iter().next() {
                    Some(t @ Obj::Tensor(_)) => t,
                    other => return Err(format!("`{name}` of {other:?}")),
                }
            }
            _ => Obj::Opaque(name),
        })
    }

    fn persistent_load(&mut self, pid: Obj) -> R<Obj> {
        let Obj::Tuple(t) = pid else {
            return Err(format!("unexpected persistent id {pid:?}"));
        };
        match t.as_slice() {
            [Obj::Str(tag), Obj::Global(class), Obj::Str(key), _location, Obj::Int(numel)]
                if tag == "storage" =>
            {
                let kind = storage_kind(class)
                    .ok_or_else(|| format!("unsupported storage type `{class}`"))?;
                Ok(Obj::Storage {
                    kind,
                    key: key.clone(),
                    numel: *numel,
                })
            }
            other => Err(format!("unexpected persistent id {other:?}")),
        }
    }

    fn run(mut self) -> R<Obj> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Obj::Mark),
                b'}' => self.stack.push(Obj::Dict(Vec::new())),
                b']' => self.stack.push(Obj::List(Vec::new())),
                b')' => self.stack.push(Obj::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Obj::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(u32::from(i))?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(u32::from(i))?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Obj::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Obj::Str(m), Obj::Str(n)) => self.stack.push(Obj::Global(format!("{m}.{n}"))),
                        _ => return Err("pickle STACK_GLOBAL of non-strings".into()),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let v = self.reduce(class, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    self.pop()?; // BUILD: the state (e.g. OrderedDict._metadata) is not needed
                    self.top()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v);
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Obj::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Obj::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Obj::Int(i64::from(v)));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err("pickle LONG1 wider than 64 bits".into());
                    }
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= i64::from(byte) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Obj::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(Obj::Float(f64::from_be_bytes(a)));
                }
                b'N' => self.stack.push(Obj::None),
                0x88 => self.stack.push(Obj::Bool(true)),
                0x89 => self.stack.push(Obj::Bool(false)),
                b'X' | 0x8c | 0x8d | b'U' | b'T' => {
                    let n = match op {
                        b'X' | b'T' => self.u32()? as usize,
                        0x8d => self.u64()? as usize,
                        _ => usize::from(self.u8()?),
                    };
                    let b = self.take(n)?;
                    self.stack
                        .push(Obj::Str(String::from_utf8_lossy(b).to_string()));
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => usize::from(self.u8()?),
                        b'B' => self.u32()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Obj::Bytes(b));
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {at} (not a plain state dict?)"
                    ))
                }
            }
        }
    }
}

/// Read every tensor of a state dict saved with `torch.save` (zip format), on the CPU, contiguous,
/// in their stored dtypes. Non-tensor entries are skipped. Errors are messages (without the path).
pub fn read_state_dict(path: &Path) -> R<Vec<(String, Tensor)>> {
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| e.to_string())?;
    if head != [b'P', b'K', 3, 4] {
        return Err(
            "not a zip archive: only the zip format of torch.save (PyTorch ≥ 1.6) is supported; re-save it with a recent PyTorch, or convert it to model.safetensors"
                .into(),
        );
    }
    let mut zip = Zip::open(path)?;
    let pkl = zip
        .entries
        .keys()
        .filter(|k| k.ends_with("/data.pkl") && k.matches('/').count() == 1)
        .min()
        .cloned()
        .ok_or("no `*/data.pkl` in the archive")?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    if let Ok(order) = zip.read(&format!("{prefix}byteorder")) {
        if order != b"little" {
            return Err(format!(
                "byte order `{}` is not supported",
                String::from_utf8_lossy(&order)
            ));
        }
    }
    let data = zip.read(&pkl)?;
    let root = Unpickler {
        data: &data,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    }
    .run()?;
    let Obj::Dict(items) = root else {
        return Err("the pickle is not a dict of tensors (a whole pickled model?)".into());
    };
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let (Obj::Str(name), Obj::Tensor(t)) = (k, v) else {
            continue;
        };
        if !storages.contains_key(&t.storage_key) {
            let bytes = zip.read(&format!("{prefix}data/{}", t.storage_key))?;
            let elt = t.kind.elt_size_in_bytes();
            if t.storage_numel < 0
                || (bytes.len() as u128) != (t.storage_numel as u128) * (elt as u128)
            {
                return Err(format!(
                    "storage {} of `{name}` has {} bytes, expected {} elements of {elt} bytes",
                    t.storage_key,
                    bytes.len(),
                    t.storage_numel
                ));
            }
            let s = Tensor::f_from_data_size(&bytes, &[t.storage_numel], t.kind)
                .map_err(|e| e.to_string())?;
            storages.insert(t.storage_key.clone(), s);
        }
        let storage = &storages[&t.storage_key];
        // The last element's position, in i128 so that hostile shapes cannot overflow.
        let last: i128 = t
            .size
            .iter()
            .zip(&t.stride)
            .map(|(&n, &s)| i128::from(n.max(1) - 1) * i128::from(s))
            .sum();
        let empty = t.size.contains(&0);
        if t.size.len() != t.stride.len()
            || t.offset < 0
            || t.size.iter().any(|&n| n < 0)
            || t.stride.iter().any(|&s| s < 0)
            || (!empty && i128::from(t.offset) + last >= i128::from(t.storage_numel))
        {
            return Err(format!("tensor `{name}` lies outside its storage"));
        }
        let tensor = storage
            .f_as_strided(t.size.as_slice(), t.stride.as_slice(), t.offset)
            .and_then(|x| x.f_contiguous())
            .map_err(|e| e.to_string())?;
        out.push((name, tensor));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpickle(data: &[u8]) -> Obj {
        Unpickler {
            data,
            pos: 0,
            stack: vec![],
            memo: HashMap::new(),
        }
        .run()
        .unwrap()
    }

    #[test]
    fn pickle_ints_and_containers() {
        // pickle.dumps({"a": (1, -2, 300, 70000, 2**40, -2**40), "b": [None, True, 1.5]}, protocol=p)
        let p2: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x06\x00\x00\x00\x00\x00\xfftq\x02X\x01\x00\x00\x00bq\x03]q\x04(N\x88G?\xf8\x00\x00\x00\x00\x00\x00eu.";
        let p4: &[u8] = b"\x80\x04\x95>\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94(K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x06\x00\x00\x00\x00\x00\xfft\x94\x8c\x01b\x94]\x94(N\x88G?\xf8\x00\x00\x00\x00\x00\x00eu.";
        let expect = Obj::Dict(vec![
            (
                Obj::Str("a".into()),
                Obj::Tuple(vec![
                    Obj::Int(1),
                    Obj::Int(-2),
                    Obj::Int(300),
                    Obj::Int(70000),
                    Obj::Int(1 << 40),
                    Obj::Int(-(1 << 40)),
                ]),
            ),
            (
                Obj::Str("b".into()),
                Obj::List(vec![Obj::None, Obj::Bool(true), Obj::Float(1.5)]),
            ),
        ]);
        assert_eq!(unpickle(p2), expect);
        assert_eq!(unpickle(p4), expect);
    }

    #[test]
    fn reads_a_torch_save_state_dict() {
        let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("tests/fixtures/tiny-bert-bin/pytorch_model.bin");
        let sd: HashMap<String, Tensor> = read_state_dict(&p).unwrap().into_iter().collect();
        let words = &sd["bert.embeddings.word_embeddings.weight"];
        assert_eq!(words.size(), [41, 16]);
        assert_eq!(words.kind(), Kind::Float);
        assert_eq!(sd.len(), 44);
        assert!(sd.contains_key("bert.embeddings.LayerNorm.gamma"));
        assert!(sd.contains_key("bert.embeddings.LayerNorm.beta"));
        // The tied decoder weight shares the embeddings' storage.
        assert!(sd["cls.predictions.decoder.weight"].equal(words));
        // A truncated copy fails with a message, not a panic.
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 30] {
            let q = dir.path().join("cut.bin");
            std::fs::write(&q, &bytes[..cut]).unwrap();
            assert!(read_state_dict(&q).is_err());
        }
    }

    #[test]
    fn rejects_non_zip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        std::fs::write(&p, b"\x80\x02\x8a\x0alegacy torch file").unwrap();
        assert!(read_state_dict(&p)
            .unwrap_err()
            .contains("not a zip archive"));
        std::fs::write(&p, b"PK\x03\x04 truncated").unwrap();
        assert!(read_state_dict(&p).is_err());
    }
}
