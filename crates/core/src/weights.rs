//! Named weights: safetensors files (memory-mapped) or in-memory tensors, read under a key prefix.
//!
//! Every network of the workspace builds itself from a [`Weights`] view (candle's VarBuilder
//! idea): `weights.pp("conv1").tensor("weight", [..], device)` reads `<prefix>conv1.weight`,
//! checks its shape, converts it to f32 and remembers that it was used, so that after loading a
//! network [`Weights::check_all_used`] can reject checkpoints carrying tensors it does not know.
//!
//! Files written by `weights-convert` keep the checkpoint's nesting in the key
//! (`state_dict/decoder.conv1.conv.weight`, `g_ema/conv1.conv.weight`) and record tensors that
//! the checkpoint stored once under several names in the `aliases` metadata entry
//! (`{"alias": "canonical"}`); both are handled here.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

#[cfg(feature = "burn")]
use burn::prelude::*;
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use crate::checkpoint::ALIASES;
use crate::error::{Error, Result};

enum Buffer {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Mmap(m) => m,
            Buffer::Owned(v) => v,
        }
    }
}

enum Entry {
    /// Bytes `start..end` of the file's data section.
    Stored {
        dtype: Dtype,
        shape: Vec<usize>,
        start: usize,
        end: usize,
    },
    /// Values held in memory (pattern weights, tensors built by a program).
    Values { shape: Vec<usize>, values: Vec<f32> },
}

impl Entry {
    fn shape(&self) -> &[usize] {
        match self {
            Entry::Stored { shape, .. } | Entry::Values { shape, .. } => shape,
        }
    }
}

/// A set of named tensors: the contents of one checkpoint.
pub struct WeightStore {
    path: PathBuf,
    buffer: Option<Buffer>,
    data_start: usize,
    entries: HashMap<String, Entry>,
    aliases: HashMap<String, String>,
    metadata: HashMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

impl WeightStore {
    /// Memory-maps a safetensors file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| Error::io(path, source);
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; a file truncated by another process while mapped is the
        // usual caveat of memory-mapped weights (as in the safetensors crate's own docs).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_buffer(Buffer::Mmap(mmap), path.to_path_buf())
    }

    /// Parses safetensors bytes held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_buffer(Buffer::Owned(bytes), PathBuf::from("<memory>"))
    }

    fn from_buffer(buffer: Buffer, path: PathBuf) -> Result<Self> {
        let (header_len, meta) = SafeTensors::read_metadata(buffer.bytes()).map_err(|e| Error::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let entries = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (start, end) = info.data_offsets;
                let entry = Entry::Stored {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start,
                    end,
                };
                (name, entry)
            })
            .collect();
        let metadata = meta.metadata().clone().unwrap_or_default();
        let aliases = match metadata.get(ALIASES) {
            Some(json) => serde_json::from_str(json).map_err(|e| Error::Format {
                path: path.clone(),
                reason: format!("metadata `{ALIASES}` is not a JSON object of strings: {e}"),
            })?,
            None => HashMap::new(),
        };
        Ok(Self {
            path,
            buffer: Some(buffer),
            data_start: 8 + header_len,
            entries,
            aliases,
            metadata,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    /// A store of in-memory f32 tensors `(key, shape, row-major values)`.
    pub fn from_tensors(tensors: impl IntoIterator<Item = NamedTensor>) -> Result<Self> {
        let mut entries = HashMap::new();
        for (key, shape, values) in tensors {
            let n: usize = shape.iter().product();
            if n != values.len() {
                return Err(Error::InvalidInput(format!(
                    "tensor `{key}`: shape {shape:?} holds {n} values, got {}",
                    values.len()
                )));
            }
            entries.insert(key, Entry::Values { shape, values });
        }
        Ok(Self {
            path: PathBuf::from("<memory>"),
            buffer: None,
            data_start: 0,
            entries,
            aliases: HashMap::new(),
            metadata: HashMap::new(),
            used: RefCell::new(BTreeSet::new()),
        })
    }

    /// Records that `alias` names the same tensor as `canonical`.
    pub fn add_alias(&mut self, alias: impl Into<String>, canonical: impl Into<String>) {
        self.aliases.insert(alias.into(), canonical.into());
    }

    /// The file this store was read from (`<memory>` for stores built in memory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's `__metadata__` (string to string).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// A view of every key (no prefix).
    pub fn root(&self) -> Weights<'_> {
        Weights {
            store: self,
            prefix: String::new(),
        }
    }

    /// A view of the keys below `prefix` (e.g. `"state_dict/decoder."`).
    pub fn scope(&self, prefix: &str) -> Weights<'_> {
        Weights {
            store: self,
            prefix: prefix.to_string(),
        }
    }

    /// Whether `key` (or an alias of that name) exists.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key) || self.aliases.contains_key(key)
    }

    /// All keys, aliases included, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entries.keys().chain(self.aliases.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn resolve<'s>(&'s self, key: &'s str) -> Option<(&'s str, &'s Entry)> {
        let canonical = self.aliases.get(key).map(String::as_str).unwrap_or(key);
        self.entries.get(canonical).map(|e| (canonical, e))
    }

    /// Shape of `key`, if present.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.resolve(key).map(|(_, e)| e.shape().to_vec())
    }

    /// The values of `key` as f32 after checking its shape and that every value is finite (f64
    /// values beyond the f32 range count as infinite); marks it as used.
    pub fn values(&self, key: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let (_, entry) = self
            .resolve(key)
            .ok_or_else(|| Error::MissingKey { key: key.to_string() })?;
        if entry.shape() != expected {
            return Err(Error::ShapeMismatch {
                key: key.to_string(),
                expected: expected.to_vec(),
                found: entry.shape().to_vec(),
            });
        }
        let values = match entry {
            Entry::Values { values, .. } => values.clone(),
            Entry::Stored { dtype, start, end, .. } => {
                let data = self.buffer.as_ref().map(Buffer::bytes).unwrap_or_default();
                let bytes = &data[self.data_start + start..self.data_start + end];
                decode_float(key, *dtype, bytes)?
            }
        };
        // NaN or infinity in weights, directions or saved offsets would render black images
        // without any error: refuse them here, once, naming the tensor.
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                key: key.to_string(),
                index,
                value,
            });
        }
        self.used.borrow_mut().insert(key.to_string());
        Ok(values)
    }

    /// The shape and f32 values of `key`, whatever its shape; marks it as used.
    pub fn any_values(&self, key: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let shape = self
            .shape(key)
            .ok_or_else(|| Error::MissingKey { key: key.to_string() })?;
        let values = self.values(key, &shape)?;
        Ok((shape, values))
    }

    fn unused_under(&self, prefix: &str) -> Vec<String> {
        let used = self.used.borrow();
        // An alias counts as used when its canonical tensor was read under any name.
        let used_canonical: BTreeSet<&str> = used
            .iter()
            .map(|k| self.aliases.get(k).map(String::as_str).unwrap_or(k))
            .collect();
        self.keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .filter(|k| {
                let canonical = self.aliases.get(k).map(String::as_str).unwrap_or(k);
                !used.contains(k) && !used_canonical.contains(canonical)
            })
            .collect()
    }
}

fn decode_float(key: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
            .collect(),
        other => {
            return Err(Error::UnsupportedDtype {
                key: key.to_string(),
                found: format!("{other:?}"),
            })
        }
    })
}

/// A named f32 tensor: key, shape, row-major values (what [`WeightStore::from_tensors`] takes).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// The values of a tensor as f32, row-major (any float dtype the device computes in).
#[cfg(feature = "burn")]
pub fn tensor_values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>> {
    values_as(tensor)
}

/// The values of a tensor as f64, row-major: exact for a float32 or float64 model.
#[cfg(feature = "burn")]
pub fn tensor_values_f64<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f64>> {
    values_as(tensor)
}

/// The values of a tensor converted to `E`, row-major.
#[cfg(feature = "burn")]
fn values_as<E: burn::tensor::Element, B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<E>> {
    tensor
        .into_data()
        .convert::<E>()
        .to_vec::<E>()
        .map_err(|e| Error::InvalidInput(format!("cannot read tensor values: {e:?}")))
}

/// A view of a [`WeightStore`] under a key prefix.
#[derive(Clone)]
pub struct Weights<'a> {
    store: &'a WeightStore,
    prefix: String,
}

impl<'a> Weights<'a> {
    /// The view one level down: `pp("conv1")` reads `<prefix>conv1.*`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Weights<'a> {
        Weights {
            store: self.store,
            prefix: format!("{}{name}.", self.prefix),
        }
    }

    /// The full key of `name` in this view.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The prefix of this view.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store behind this view.
    pub fn store(&self) -> &'a WeightStore {
        self.store
    }

    /// Whether `name` exists in this view.
    pub fn contains(&self, name: &str) -> bool {
        self.store.contains(&self.key(name))
    }

    /// Reads `name` as f32 values, checking the shape.
    pub fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.store.values(&self.key(name), shape)
    }

    /// Reads `name` as a tensor of the given shape on `device`.
    #[cfg(feature = "burn")]
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let values = self.values(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Marks `name` as consumed without reading it, if present: buffers a checkpoint carries but
    /// inference does not use (BatchNorm's integer `num_batches_tracked`).
    pub fn ignore(&self, name: &str) {
        let key = self.key(name);
        if self.store.contains(&key) {
            self.store.used.borrow_mut().insert(key);
        }
    }

    /// Fails if any key below this view's prefix was never read: the file holds tensors that the
    /// network does not have (a wrong checkpoint or a wrong configuration).
    pub fn check_all_used(&self) -> Result<()> {
        let unused = self.store.unused_under(&self.prefix);
        if unused.is_empty() {
            Ok(())
        } else {
            Err(Error::UnexpectedKeys {
                prefix: self.prefix.clone(),
                keys: unused.into_iter().take(20).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_refused_by_name() {
        for (bad, name) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
            let store = WeightStore::from_tensors([("w".to_string(), vec![4], vec![0.0, 1.0, bad, 2.0])]).unwrap();
            match store.values("w", &[4]) {
                Err(Error::NonFinite { key, index, .. }) => assert_eq!((key.as_str(), index), ("w", 2), "{name}"),
                other => panic!("{name}: expected a non-finite error, got {other:?}"),
            }
        }
        // f64 beyond the f32 range becomes infinite: refused too.
        let bytes: Vec<u8> = [1.0f64, 1e300].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F64, vec![2], &bytes).unwrap();
        let file = safetensors::serialize([("big", view)], None).unwrap();
        let store = WeightStore::from_bytes(file).unwrap();
        assert!(matches!(
            store.values("big", &[2]),
            Err(Error::NonFinite { index: 1, .. })
        ));
    }

    #[test]
    fn corrupt_files_and_metadata_are_typed_errors() {
        assert!(matches!(
            WeightStore::from_bytes(b"\x10\0\0\0\0\0\0\0{}".to_vec()),
            Err(Error::Format { .. })
        ));
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![1], &[0u8; 4]).unwrap();
        let metadata = [("opts".to_string(), "{not json".to_string())].into_iter().collect();
        let file = safetensors::serialize([("x", view)], Some(metadata)).unwrap();
        let store = WeightStore::from_bytes(file).unwrap();
        assert!(matches!(store.opts(), Err(Error::InvalidFile { .. })));
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![1], &[0u8; 4]).unwrap();
        let metadata = [("kind".to_string(), "pickle".to_string())].into_iter().collect();
        let file = safetensors::serialize([("x", view)], Some(metadata)).unwrap();
        let store = WeightStore::from_bytes(file).unwrap();
        assert!(matches!(store.kind(), Err(Error::InvalidFile { .. })));
    }
}
