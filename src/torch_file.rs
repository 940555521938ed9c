//! Writing PyTorch checkpoints in `torch.save`'s format, so that Python code (`torch.load`, with
//! `weights_only=True` too) and any tool reading rosinality StyleGAN2 `.pt` files loads what the
//! exports write ([`crate::export`]).
//!
//! The file is a zip archive of stored (uncompressed) records under one folder, `archive/`:
//!
//! * `data.pkl`: the object, pickled with protocol 2 ([`crate::pickle`]). Tensors are
//!   `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, each
//!   storage a persistent id `('storage', torch.FloatStorage, key, 'cpu', numel)`; a state dict
//!   is a `collections.OrderedDict`. The bytes are those `torch.save` writes for the same object;
//! * `data/<key>`: each storage's float32 values, little-endian;
//! * `.format_version` (`1`), `.storage_alignment` (`64`), `byteorder` (`little`), `version`
//!   (`3`) and `.data/serialization_id`, as current PyTorch writes them.
//!
//! Every record's data starts at a multiple of 64 bytes (PyTorch maps storages in place), padded
//! with an extra field in the local header as PyTorch pads it. Only float32 tensors are written,
//! and the archive stays below 4 GiB (no zip64: a 1024×1024 StyleGAN2 generator is ~120 MB).
//!
//! ```no_run
//! use hyperstyle::torch_file::{write_checkpoint, Entry, Tensor};
//! # fn main() -> hyperstyle::Result<()> {
//! let weight = vec![0.5f32; 6];
//! let state_dict = vec![("conv.weight".to_string(), Tensor::new(&[2, 3], &weight))];
//! write_checkpoint("model.pt", &[("g_ema".into(), Entry::StateDict(state_dict))])?;
//! // Python: torch.load("model.pt", weights_only=True)["g_ema"]["conv.weight"]
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use hyperstyle_core::atomic::write_atomically_with;

use crate::error::{invalid_input, Error, Result};
use crate::pickle::{Object, Pickler, Protocol};

/// A contiguous float32 tensor: its shape and row-major values.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    shape: &'a [usize],
    values: &'a [f32],
}

impl<'a> Tensor<'a> {
    /// A tensor of `shape` holding `values` (row-major).
    pub fn new(shape: &'a [usize], values: &'a [f32]) -> Self {
        Self { shape, values }
    }
}

/// A value of the checkpoint's top-level dict.
#[derive(Clone, Debug)]
pub enum Entry<'a> {
    /// A tensor (e.g. rosinality's `latent_avg`).
    Tensor(Tensor<'a>),
    /// A state dict: an `OrderedDict` of named tensors, in order (e.g. `g_ema`).
    StateDict(Vec<(String, Tensor<'a>)>),
}

/// The name of the archive's folder (PyTorch takes the file's stem; any name loads).
pub const ARCHIVE: &str = "archive";

/// Alignment of every record's data, as PyTorch writes it.
const ALIGN: u64 = 64;

/// Writes `entries` as the `torch.save` of the dict `{name: entry}` to `path`, atomically. An
/// error if a tensor's values do not fill its shape, if the archive would exceed 4 GiB, or on
/// I/O failure.
pub fn write_checkpoint(path: impl AsRef<Path>, entries: &[(String, Entry)]) -> Result<()> {
    let path = path.as_ref();
    let records = prepare(entries)?;
    let io = |e: std::io::Error| Error::Core(hyperstyle_core::Error::io(path, e));
    write_atomically_with(path, |w| write_zip(w, &records).map_err(io), |_, e| io(e))
}

/// [`write_checkpoint`] in memory.
pub fn checkpoint_to_bytes(entries: &[(String, Entry)]) -> Result<Vec<u8>> {
    let records = prepare(entries)?;
    let mut out = Vec::new();
    write_zip(&mut out, &records).map_err(|e| invalid_input(format!("torch checkpoint: {e}")))?;
    Ok(out)
}

/// One record's contents.
enum Data<'a> {
    Bytes(Vec<u8>),
    F32(&'a [f32]),
}

impl Data<'_> {
    fn len(&self) -> u64 {
        match self {
            Data::Bytes(b) => b.len() as u64,
            Data::F32(v) => v.len() as u64 * 4,
        }
    }

    /// Feeds the bytes to `sink` in chunks.
    fn for_each_chunk(&self, mut sink: impl FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
        match self {
            Data::Bytes(b) => sink(b),
            Data::F32(values) => {
                let mut buf = Vec::with_capacity(1 << 16);
                for chunk in values.chunks(1 << 14) {
                    buf.clear();
                    for v in chunk {
                        buf.extend_from_slice(&v.to_le_bytes());
                    }
                    sink(&buf)?;
                }
                Ok(())
            }
        }
    }
}

/// The records of the archive, in PyTorch's order, with their pickle.
fn prepare<'a>(entries: &'a [(String, Entry<'a>)]) -> Result<Vec<(String, Data<'a>)>> {
    let mut storages: Vec<&'a [f32]> = Vec::new();
    let mut tensor = |t: &Tensor<'a>| -> Result<Object<'a>> {
        let count = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count != Some(t.values.len()) {
            return Err(invalid_input(format!(
                "torch checkpoint: a tensor of shape {:?} with {} values",
                t.shape,
                t.values.len()
            )));
        }
        let key = storages.len().to_string();
        storages.push(t.values);
        Ok(tensor_object(t.shape, key, t.values.len()))
    };
    let mut items = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        let value = match entry {
            Entry::Tensor(t) => tensor(t)?,
            Entry::StateDict(tensors) => {
                let mut dict = Vec::with_capacity(tensors.len());
                for (key, t) in tensors {
                    dict.push((Object::str(key.as_str()), tensor(t)?));
                }
                Object::ordered_dict(dict)
            }
        };
        items.push((Object::str(name.as_str()), value));
    }
    let pickle = Pickler::new(Vec::new(), Protocol::V2)
        .dump(&Object::Dict(items))
        .map_err(|e| invalid_input(format!("torch checkpoint: {e}")))?;
    let mut records = vec![
        ("data.pkl".to_string(), Data::Bytes(pickle)),
        (".format_version".into(), Data::Bytes(b"1".to_vec())),
        (".storage_alignment".into(), Data::Bytes(ALIGN.to_string().into_bytes())),
        ("byteorder".into(), Data::Bytes(b"little".to_vec())),
    ];
    for (key, values) in storages.into_iter().enumerate() {
        records.push((format!("data/{key}"), Data::F32(values)));
    }
    records.push(("version".into(), Data::Bytes(b"3\n".to_vec())));
    // PyTorch writes a random identifier here, only ever logged; this one is derived from the
    // contents so that equal checkpoints are equal files.
    let mut id = Fnv::default();
    for (name, data) in &records {
        id.feed(name.as_bytes());
        data.for_each_chunk(|b| {
            id.feed(b);
            Ok(())
        })
        .expect("hashing never fails");
    }
    let id = format!("{:020}{:020}", id.0, id.0.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15);
    records.push((".data/serialization_id".into(), Data::Bytes(id.into_bytes())));
    Ok(records)
}

/// `_rebuild_tensor_v2` of a contiguous float32 tensor of `shape` in storage `key`.
fn tensor_object(shape: &[usize], key: String, numel: usize) -> Object<'static> {
    let ints = |v: &[usize]| Object::Tuple(v.iter().map(|&d| Object::Int(d as i64)).collect());
    let mut stride = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1] * shape[i + 1];
    }
    let storage = Object::PersistentId(Box::new(Object::Tuple(vec![
        Object::interned("storage"),
        Object::global("torch", "FloatStorage"),
        Object::Str(Cow::Owned(key)),
        Object::interned("cpu"),
        Object::Int(numel as i64),
    ])));
    Object::call(
        Object::global("torch._utils", "_rebuild_tensor_v2"),
        vec![
            storage,
            Object::Int(0),
            ints(shape),
            ints(&stride),
            Object::Bool(false),
            Object::call(Object::global("collections", "OrderedDict"), Vec::new()),
        ],
    )
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// CRC-32 (IEEE, reflected), as zip stores it.
struct Crc32 {
    table: [u32; 256],
    value: u32,
}

impl Crc32 {
    fn new() -> Self {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *entry = c;
        }
        Self {
            table,
            value: 0xffff_ffff,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.value = self.table[((self.value ^ u32::from(b)) & 0xff) as usize] ^ (self.value >> 8);
        }
    }

    fn finish(&self) -> u32 {
        !self.value
    }
}

/// A zip size or offset, or an error past 4 GiB.
fn u32_field(v: u64) -> std::io::Result<u32> {
    u32::try_from(v).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the checkpoint exceeds 4 GiB (zip64 archives are not written)",
        )
    })
}

/// Writes the stored zip archive of `records` under `ARCHIVE/`.
fn write_zip<W: Write>(out: &mut W, records: &[(String, Data)]) -> std::io::Result<()> {
    // DOS date 1980-01-01, time 00:00: fixed, so that equal checkpoints are equal files.
    const DATE: u16 = (1 << 5) | 1;
    const VERSION: u16 = 20;
    let mut offset = 0u64;
    let mut central = Vec::new();
    for (name, data) in records {
        let name = format!("{ARCHIVE}/{name}");
        let mut crc = Crc32::new();
        data.for_each_chunk(|b| {
            crc.feed(b);
            Ok(())
        })?;
        let crc = crc.finish();
        let size = u32_field(data.len())?;
        // The data starts after the 30-byte header, the name and the padding field ("FB", its
        // length, then 'Z's), at a multiple of ALIGN; the field needs at least its 4 bytes.
        let unpadded = offset + 30 + name.len() as u64 + 4;
        let pad = (ALIGN - unpadded % ALIGN) % ALIGN;
        let mut header = Vec::with_capacity(30 + name.len() + 4 + pad as usize);
        header.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // flags
        header.extend_from_slice(&0u16.to_le_bytes()); // stored
        header.extend_from_slice(&0u16.to_le_bytes()); // time
        header.extend_from_slice(&DATE.to_le_bytes());
        header.extend_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&(4 + pad as u16).to_le_bytes());
        header.extend_from_slice(name.as_bytes());
        header.extend_from_slice(b"FB");
        header.extend_from_slice(&(pad as u16).to_le_bytes());
        header.resize(header.len() + pad as usize, b'Z');
        out.write_all(&header)?;
        data.for_each_chunk(|b| out.write_all(b))?;

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&VERSION.to_le_bytes()); // made by
        central.extend_from_slice(&VERSION.to_le_bytes()); // needed
        central.extend_from_slice(&0u16.to_le_bytes()); // flags
        central.extend_from_slice(&0u16.to_le_bytes()); // stored
        central.extend_from_slice(&0u16.to_le_bytes()); // time
        central.extend_from_slice(&DATE.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 2 + 2 + 2 + 2 + 4]); // extra, comment, disk, attributes
        central.extend_from_slice(&u32_field(offset)?.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        offset += header.len() as u64 + data.len();
    }
    let count = u16::try_from(records.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "more than 65535 records"))?;
    let central_offset = u32_field(offset)?;
    let central_size = u32_field(central.len() as u64)?;
    u32_field(offset + central.len() as u64)?;
    out.write_all(&central)?;
    let mut end = Vec::with_capacity(22);
    end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    end.extend_from_slice(&[0; 4]); // this disk, the central directory's disk
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&central_size.to_le_bytes());
    end.extend_from_slice(&central_offset.to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes()); // comment
    out.write_all(&end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zips() {
        let mut crc = Crc32::new();
        crc.feed(b"123456789");
        assert_eq!(crc.finish(), 0xcbf4_3926);
        assert_eq!(Crc32::new().finish(), 0);
    }

    #[test]
    fn records_are_aligned_and_bad_tensors_rejected() {
        let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let entries = [
            (
                "g_ema".to_string(),
                Entry::StateDict(vec![("conv.weight".into(), Tensor::new(&[2, 3], &w))]),
            ),
            ("latent_avg".to_string(), Entry::Tensor(Tensor::new(&[3], &w[..3]))),
        ];
        let bytes = checkpoint_to_bytes(&entries).unwrap();
        // The first storage's values, at a multiple of 64.
        let data: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = bytes.windows(data.len()).position(|x| x == data).unwrap();
        assert_eq!(at % 64, 0);
        assert!(bytes.windows(18).any(|x| x == b"archive/data.pklFB"));
        let bad = [("x".to_string(), Entry::Tensor(Tensor::new(&[2, 2], &w)))];
        assert!(checkpoint_to_bytes(&bad).unwrap_err().is_invalid_input());
    }
}
