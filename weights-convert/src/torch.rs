//! The two `torch.save` container formats, read into a [`Checkpoint`].
//!
//! * **Zip archive** (PyTorch ≥ 1.6): `<name>/data.pkl` is the pickle; storage `k` is the stored
//!   entry `<name>/data/k`; `<name>/byteorder` (PyTorch ≥ 2.1) says how the data is encoded.
//!   `<name>` is whatever the file was called when saved, so it is taken from the entries.
//! * **Legacy stream** (PyTorch < 1.6 or `_use_new_zipfile_serialization=False`): five pieces
//!   back to back: a pickled magic number, the protocol version, system info, the main pickle,
//!   a pickled list of storage keys, then for each key a little-endian u64 element count and
//!   the raw little-endian elements.
//!
//! * **TorchScript archive** (`torch.jit.save`, e.g. OpenAI's CLIP `ViT-B-32.pt`): the same zip
//!   layout plus `constants.pkl` and `code/`. `data.pkl` pickles the module tree as
//!   `__torch__.*` objects whose attributes are parameters, buffers and submodules; they are read
//!   as plain attribute dicts. `code/` (the modules' TorchScript source) and `constants.pkl`
//!   (constants baked into that code) are never read.
//! * **Plain pickle** (`pickle.dump`, e.g. StyleCLIP's `S_mean_std`): one pickle filling the
//!   whole file, whose arrays are numpy arrays holding their data inline.
//!
//! In the torch formats the main pickle refers to storages through persistent ids; only their
//! location is recorded here, the bytes are read later, one tensor at a time. Numpy arrays'
//! data is copied out of the pickle into [`Checkpoint::inline`], which [`WithInline`] appends to
//! the input for the writer.

use std::collections::HashMap;
use std::rc::Rc;

use crate::allowlist::{Extensions, Global};
use crate::dtype::DType;
use crate::error::{ConvertError, Result};
use crate::pickle::{self, Arena, Obj, Value};
use crate::source::{check_range, ByteRange, ByteSource};
use crate::tensor::StorageRef;
use crate::zip::{looks_like_zip, ZipArchive};

/// The legacy format's magic number, `0x1950a86a20f9469cfc6c`, as `LONG1` stores it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The only legacy protocol version PyTorch ever wrote.
const LEGACY_PROTOCOL_VERSION: i64 = 1001;
/// Longest storage key, in bytes. `torch.save` names storages by a counter (`0`, `1`, ... in zip
/// archives) or by a decimal address (legacy streams, ~15 digits). Keys are hashed and copied
/// for every persistent id (a pickle can repeat one through the memo) and appear in messages, so
/// a memoised megabyte key must not be accepted.
pub const MAX_STORAGE_KEY_BYTES: usize = 256;

/// Which container a checkpoint came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Zip archive (PyTorch ≥ 1.6).
    Zip,
    /// Legacy pickle stream.
    Legacy,
    /// TorchScript zip archive (`torch.jit.save`).
    TorchScript,
    /// A plain pickle (`pickle.dump`), with numpy arrays.
    Pickle,
}

impl Format {
    /// A human-readable description.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Zip => "zip archive (PyTorch >= 1.6)",
            Format::Legacy => "legacy torch.save stream",
            Format::TorchScript => "TorchScript archive (torch.jit.save)",
            Format::Pickle => "plain pickle (pickle.dump, numpy arrays)",
        }
    }
}

/// Where a storage's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageData {
    /// The bytes in the source.
    pub range: ByteRange,
    /// Element type of the storage.
    pub dtype: DType,
}

impl StorageData {
    /// Number of whole elements the record holds.
    pub fn elements(&self) -> u64 {
        self.range.len / self.dtype.size() as u64
    }
}

/// A parsed checkpoint: its object tree and where its storages are. No tensor data is loaded.
#[derive(Debug)]
pub struct Checkpoint {
    /// The container format.
    pub format: Format,
    /// The unpickled top-level object.
    pub root: Value,
    /// Containers referenced by `root`.
    pub arena: Arena,
    /// Location of every storage, by key.
    pub storages: HashMap<Rc<str>, StorageData>,
    /// Whether storage bytes are big-endian (a zip written on a big-endian machine).
    pub big_endian: bool,
    /// Size of the main pickle in bytes (bounds the work spent walking the object tree).
    pub pickle_len: u64,
    /// Data the pickle itself held (numpy arrays), located by `storages` after the input's end
    /// (offsets from the input's length on); see [`WithInline`].
    pub inline: Vec<u8>,
}

impl Checkpoint {
    /// The input followed by [`Checkpoint::inline`]: where every storage's bytes are.
    pub fn source<'a, S: ByteSource + ?Sized>(&'a self, src: &'a S) -> WithInline<'a, S> {
        WithInline {
            src,
            inline: &self.inline,
        }
    }
}

/// An input followed by the data its pickle held inline, as one [`ByteSource`].
pub struct WithInline<'a, S: ?Sized> {
    src: &'a S,
    inline: &'a [u8],
}

impl<S: ByteSource + ?Sized> ByteSource for WithInline<'_, S> {
    fn len(&self) -> u64 {
        self.src.len().saturating_add(self.inline.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64)?;
        let split = self.src.len();
        // Bytes before the input's end come from it, the rest from the inline data.
        let head = usize::try_from(split.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let (from_src, from_inline) = buf.split_at_mut(head);
        if !from_src.is_empty() {
            self.src.read_at(offset, from_src)?;
        }
        if !from_inline.is_empty() {
            let start = usize::try_from(offset.saturating_add(head as u64) - split)
                .map_err(|_| ConvertError::Truncated("inline data offset".into()))?;
            let bytes = self
                .inline
                .get(start..start + from_inline.len())
                .ok_or_else(|| ConvertError::Truncated("read past the inline data".into()))?;
            from_inline.copy_from_slice(bytes);
        }
        Ok(())
    }
}

/// Records where the arrays the pickle held are: after the input's `input_len` bytes.
fn add_inline_storages(
    arena: &mut Arena,
    input_len: u64,
    storages: &mut HashMap<Rc<str>, StorageData>,
) -> Result<Vec<u8>> {
    for s in arena.inline_storages() {
        let offset = input_len
            .checked_add(s.offset)
            .ok_or_else(|| ConvertError::TooLarge("inline data offset overflows".into()))?;
        let data = StorageData {
            range: ByteRange { offset, len: s.len },
            dtype: s.dtype,
        };
        if storages.insert(s.key.clone(), data).is_some() {
            return Err(ConvertError::MalformedPickle {
                offset: 0,
                reason: format!("storage key `{}` is used by both a tensor and a numpy array", s.key),
            });
        }
    }
    Ok(arena.take_inline_data())
}

/// Reads a checkpoint's structure from `src`, detecting the container format.
pub fn read_checkpoint<S: ByteSource + ?Sized>(src: &S) -> Result<Checkpoint> {
    let mut head = [0u8; 4];
    if src.len() < head.len() as u64 {
        return Err(ConvertError::NotACheckpoint(format!(
            "the file has only {} bytes",
            src.len()
        )));
    }
    src.read_at(0, &mut head)?;
    if looks_like_zip(&head) {
        read_zip(src)
    } else if head[0] == pickle::opcode::PROTO {
        read_legacy(src)
    } else {
        Err(ConvertError::NotACheckpoint(format!(
            "it starts with {:?}, which is neither a zip archive (PyTorch >= 1.6) nor a legacy torch.save pickle",
            String::from_utf8_lossy(&head)
        )))
    }
}

/// Records the storages the main pickle references and checks they agree with each other.
#[derive(Default)]
struct StorageTable {
    /// Interned storages by (key, base, numel).
    seen: HashMap<(Rc<str>, u64, u64), Rc<StorageRef>>,
    /// Element count declared for each root storage key.
    root_numel: HashMap<Rc<str>, (DType, u64)>,
}

impl StorageTable {
    fn declare(&mut self, key: &Rc<str>, dtype: DType, numel: u64) -> Result<()> {
        match self.root_numel.get(key) {
            Some(&(d, _)) if d != dtype => Err(ConvertError::MalformedPickle {
                offset: 0,
                reason: format!("storage `{key}` is referenced as both {d} and {dtype}"),
            }),
            Some(_) => Ok(()),
            None => {
                self.root_numel.insert(key.clone(), (dtype, numel));
                Ok(())
            }
        }
    }

    /// Checks the fields both persistent-id layouts share — `tag` is `'storage'`, a known storage
    /// type, a string key, an element count — and declares the root storage: a whole-storage
    /// reference to it (`base` 0).
    fn declare_pid(&mut self, pid: &Value, [tag, storage_type, key, numel]: [&Value; 4]) -> Result<StorageRef> {
        if tag.as_str() != Some("storage") {
            return Err(malformed_pid(pid, "a storage reference"));
        }
        let dtype = storage_dtype(storage_type, pid)?;
        let key = key.as_str().ok_or_else(|| malformed_pid(pid, "keyed by a string"))?;
        if key.len() > MAX_STORAGE_KEY_BYTES {
            return Err(ConvertError::TooLarge(format!(
                "a storage key is longer than {MAX_STORAGE_KEY_BYTES} bytes"
            )));
        }
        // Reuse the key already recorded, if any, rather than another copy.
        let key: Rc<str> = match self.root_numel.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => key.into(),
        };
        let numel = count(numel, pid)?;
        self.declare(&key, dtype, numel)?;
        Ok(StorageRef {
            key,
            dtype,
            numel,
            base: 0,
        })
    }

    fn intern(&mut self, storage: StorageRef) -> Value {
        let id = (storage.key.clone(), storage.base, storage.numel);
        let rc = self.seen.entry(id).or_insert_with(|| Rc::new(storage)).clone();
        Value::Storage(rc)
    }
}

fn malformed_pid(pid: &Value, expected: &str) -> ConvertError {
    ConvertError::MalformedPickle {
        offset: 0,
        reason: format!("persistent id {} is not {expected}", pid.describe()),
    }
}

fn storage_dtype(value: &Value, pid: &Value) -> Result<DType> {
    match value {
        Value::Global(Global::Storage(dtype)) => Ok(*dtype),
        _ => Err(malformed_pid(pid, "a storage reference (unknown storage type)")),
    }
}

fn count(value: &Value, pid: &Value) -> Result<u64> {
    value
        .as_int()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| malformed_pid(pid, "a storage reference"))
}

fn read_zip<S: ByteSource + ?Sized>(src: &S) -> Result<Checkpoint> {
    let archive = ZipArchive::read(src)?;
    // Every entry is `<archive name>/...`; PyTorch itself takes the name from the first entry.
    let first = archive
        .entries()
        .first()
        .ok_or_else(|| ConvertError::NotACheckpoint("empty zip archive".into()))?;
    let prefix = match first.name.split_once('/') {
        Some((name, _)) => format!("{name}/"),
        None => {
            return Err(ConvertError::NotACheckpoint(
                "zip entries are not in a top folder".into(),
            ))
        }
    };
    // A TorchScript archive: its module objects are allowed, its code and constants ignored.
    let script = archive.find(&format!("{prefix}constants.pkl")).is_some();
    let extensions = Extensions { script_classes: script };
    let pkl_entry = archive.find(&format!("{prefix}data.pkl")).ok_or_else(|| {
        ConvertError::NotACheckpoint(format!(
            "zip archive without `{prefix}data.pkl`: not written by torch.save"
        ))
    })?;
    let big_endian = match archive.find(&format!("{prefix}byteorder")) {
        None => false,
        Some(entry) => {
            let range = archive.data_range(src, entry)?;
            if range.len > 16 {
                return Err(ConvertError::MalformedZip("byteorder entry is too long".into()));
            }
            match src.read_vec(range.offset, range.len)?.as_slice() {
                b"little" => false,
                b"big" => true,
                other => {
                    return Err(ConvertError::MalformedZip(format!(
                        "unknown byteorder {:?}",
                        String::from_utf8_lossy(other)
                    )))
                }
            }
        }
    };

    let pkl_range = archive.data_range(src, pkl_entry)?;
    let pkl = src.read_vec(pkl_range.offset, pkl_range.len)?;
    let mut table = StorageTable::default();
    let mut arena = Arena::default();
    // Zip persistent ids: ('storage', storage_type, key, location, numel).
    let mut persistent = |pid: &Value| -> Result<Value> {
        let Value::Tuple(parts) = pid else {
            return Err(malformed_pid(pid, "a tuple"));
        };
        let [tag, storage_type, key, _location, numel] = &parts[..] else {
            return Err(malformed_pid(pid, "('storage', type, key, location, numel)"));
        };
        let storage = table.declare_pid(pid, [tag, storage_type, key, numel])?;
        Ok(table.intern(storage))
    };
    let (root, _) = pickle::unpickle_with(pkl.as_slice(), 0, &mut arena, &mut persistent, extensions)?;

    let mut storages = HashMap::new();
    for (key, &(dtype, numel)) in &table.root_numel {
        let name = format!("{prefix}data/{key}");
        let entry = archive
            .find(&name)
            .ok_or_else(|| ConvertError::MalformedZip(format!("storage `{key}` is missing (no entry `{name}`)")))?;
        let range = archive.data_range(src, entry)?;
        let data = StorageData { range, dtype };
        if data.elements() < numel {
            return Err(ConvertError::MalformedZip(format!(
                "storage `{key}` should hold {numel} {dtype} elements but `{name}` has {} bytes",
                range.len
            )));
        }
        storages.insert(key.clone(), data);
    }
    let inline = add_inline_storages(&mut arena, src.len(), &mut storages)?;
    if big_endian && !inline.is_empty() {
        // The writer would swap the (little-endian) array data with the archive's.
        return Err(ConvertError::Unsupported(
            "numpy arrays inside a big-endian archive".into(),
        ));
    }
    Ok(Checkpoint {
        format: if script { Format::TorchScript } else { Format::Zip },
        root,
        arena,
        storages,
        big_endian,
        pickle_len: pkl_range.len,
        inline,
    })
}

fn read_legacy<S: ByteSource + ?Sized>(src: &S) -> Result<Checkpoint> {
    let mut arena = Arena::default();
    let mut no_persistent = |pid: &Value| -> Result<Value> { Err(malformed_pid(pid, "expected here")) };

    // 1. Magic number. Any other pickle is read as a plain pickle (`pickle.dump`) if it is the
    //    whole file.
    let (magic, pos) = pickle::unpickle(src, 0, &mut arena, &mut no_persistent)?;
    if !matches!(&magic, Value::BigInt(bytes) if bytes[..] == LEGACY_MAGIC) {
        if pos != src.len() {
            return Err(ConvertError::NotACheckpoint(format!(
                "a pickle that is neither a torch.save stream (no legacy magic number) nor the \
                 whole file ({} bytes follow it)",
                src.len() - pos
            )));
        }
        let mut storages = HashMap::new();
        let inline = add_inline_storages(&mut arena, src.len(), &mut storages)?;
        return Ok(Checkpoint {
            format: Format::Pickle,
            root: magic,
            arena,
            storages,
            big_endian: false,
            pickle_len: pos,
            inline,
        });
    }
    // 2. Protocol version.
    let (version, pos) = pickle::unpickle(src, pos, &mut arena, &mut no_persistent)?;
    if version.as_int() != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(ConvertError::Unsupported(format!(
            "legacy protocol version {}",
            version.describe()
        )));
    }
    // 3. System info. Legacy storage data is always written little-endian (PyTorch swaps on
    //    big-endian machines), so nothing in it changes how the data is read.
    let (_sys_info, pos) = pickle::unpickle(src, pos, &mut arena, &mut no_persistent)?;

    // 4. Main pickle. Legacy persistent ids:
    //    ('storage', storage_type, root_key, location, numel, view_metadata)
    //    where view_metadata is None or (view_key, element offset, view numel).
    let mut table = StorageTable::default();
    let main_start = pos;
    let mut persistent = |pid: &Value| -> Result<Value> {
        let Value::Tuple(parts) = pid else {
            return Err(malformed_pid(pid, "a tuple"));
        };
        if parts.first().and_then(Value::as_str) == Some("module") {
            return Err(ConvertError::Unsupported(
                "the checkpoint pickles a whole nn.Module (torch.save(model)); save its state_dict() instead".into(),
            ));
        }
        let [tag, storage_type, key, _location, numel, view] = &parts[..] else {
            return Err(malformed_pid(pid, "('storage', type, key, location, numel, view)"));
        };
        let root = table.declare_pid(pid, [tag, storage_type, key, numel])?;
        let storage = match view {
            Value::None => root,
            Value::Tuple(v) => match &v[..] {
                [_view_key, offset, size] => {
                    let base = count(offset, pid)?;
                    let size = count(size, pid)?;
                    if base.checked_add(size).is_none_or(|end| end > root.numel) {
                        return Err(malformed_pid(pid, "a storage view inside its storage"));
                    }
                    StorageRef {
                        numel: size,
                        base,
                        ..root
                    }
                }
                _ => return Err(malformed_pid(pid, "a storage view (key, offset, size)")),
            },
            _ => return Err(malformed_pid(pid, "a storage reference")),
        };
        Ok(table.intern(storage))
    };
    let (root, pos) = pickle::unpickle(src, pos, &mut arena, &mut persistent)?;
    let pickle_len = pos - main_start;

    // 5. Storage keys, in the order their records follow.
    let mut keys_arena = Arena::default();
    let (keys, mut pos) = pickle::unpickle(src, pos, &mut keys_arena, &mut no_persistent)?;
    let keys: Vec<Value> = match &keys {
        Value::List(id) => match keys_arena.get(*id) {
            Obj::List(items) => items.clone(),
            _ => Vec::new(),
        },
        Value::Tuple(items) => items.to_vec(),
        other => {
            return Err(ConvertError::MalformedPickle {
                offset: 0,
                reason: format!("legacy storage key list is a {}", other.type_name()),
            })
        }
    };

    // 6. Storage records: u64 element count, then the elements.
    let mut storages = HashMap::new();
    for key in keys {
        let key_str = key.as_str().ok_or_else(|| ConvertError::MalformedPickle {
            offset: 0,
            reason: "legacy storage key is not a string".into(),
        })?;
        let (key, &(dtype, numel)) =
            table
                .root_numel
                .get_key_value(key_str)
                .ok_or_else(|| ConvertError::MalformedPickle {
                    offset: 0,
                    reason: format!("storage {} has data but is never referenced", key.describe()),
                })?;
        let key = key.clone();
        let mut count_bytes = [0u8; 8];
        src.read_at(pos, &mut count_bytes)?;
        let elements = u64::from_le_bytes(count_bytes);
        let len = elements
            .checked_mul(dtype.size() as u64)
            .ok_or_else(|| ConvertError::Truncated(format!("storage `{key}` claims {elements} elements")))?;
        let offset = pos + 8;
        check_range(src.len(), offset, len)?;
        if elements < numel {
            return Err(ConvertError::Truncated(format!(
                "storage `{key}` should hold {numel} elements but its record has {elements}"
            )));
        }
        storages.insert(
            key,
            StorageData {
                range: ByteRange { offset, len },
                dtype,
            },
        );
        pos = offset + len;
    }
    let inline = add_inline_storages(&mut arena, src.len(), &mut storages)?;
    Ok(Checkpoint {
        format: Format::Legacy,
        root,
        arena,
        storages,
        big_endian: false,
        pickle_len,
        inline,
    })
}
