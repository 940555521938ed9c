//! A writer of Python pickles (protocols 2 and 3), for the files that Python tools load with
//! `np.load(…, allow_pickle=True)` or `torch.load`: NumPy object arrays (a dict or a list of
//! arrays saved with `np.save`, see [`crate::npy::write_object`]) and PyTorch checkpoints
//! ([`crate::torch_file`]).
//!
//! Only writing is supported: nothing here reads or runs a pickle. An [`Object`] describes the
//! Python value (`None`, bools, ints, `str`, `bytes`, tuples, lists, dicts, globals, `REDUCE`
//! calls, persistent ids and NumPy arrays); [`to_bytes`] or [`Pickler`] turn it into the opcode
//! stream that CPython's `pickle.dump` writes for the same value, memo included, so that the bytes
//! match Python's own, byte for byte:
//!
//! * every `str`, `bytes`, non-empty tuple, list, dict, global and `REDUCE` result is memoized
//!   (`BINPUT`) when first written, as CPython's pickler does;
//! * a global written a second time (the same class or function) is a memo reference (`BINGET`);
//!   so is an [`Object::Shared`] object (one Python object referenced twice, e.g. a dtype) and a
//!   `str` or `bytes` that CPython keeps as a singleton (empty, or one character up to U+00FF /
//!   one byte): Python hands out the same object for those, and the memo is keyed by identity;
//! * lists and dicts are written in batches of 1000 items (`APPENDS`, `SETITEMS`), with CPython's
//!   rules for a single item (`APPEND`, `SETITEM`).
//!
//! NumPy arrays ([`NdArray`]) are written as `ndarray.__reduce__` gives them:
//! `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`, then a `BUILD` with the state
//! `(1, shape, dtype, is_fortran, data)`, the dtype being `numpy.dtype(name, False, True)` with its
//! own `BUILD` state. The module is `numpy.core.multiarray`, the one NumPy 1.x writes: NumPy 1.x
//! (down to the 1.18 that the original HyperStyle pins) has only that name, and NumPy 2.x keeps it
//! loadable without a warning precisely for old pickles (its own new name, `numpy._core`, does
//! not exist before NumPy 1.26).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

/// Pickle protocol of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Protocol 2: what `torch.save` writes. It has no `bytes` opcodes, so [`Object::Bytes`]
    /// and NumPy arrays of numbers cannot be written with it.
    V2,
    /// Protocol 3: what NumPy 1.x's `np.save` writes for object arrays.
    V3,
}

impl Protocol {
    fn number(self) -> u8 {
        match self {
            Protocol::V2 => 2,
            Protocol::V3 => 3,
        }
    }
}

/// Why a pickle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The output failed.
    #[error("pickle: {0}")]
    Io(#[from] std::io::Error),
    /// A value the chosen protocol cannot express: a string or bytes longer than 4 GiB, bytes
    /// in protocol 2.
    #[error("pickle: {0}")]
    Unsupported(String),
    /// An array whose data does not hold its shape's number of elements.
    #[error("pickle: {0}")]
    BadArray(String),
}

/// A Python value to pickle. Borrowed data (`Cow`, array slices) is written without copies.
#[derive(Clone, Debug)]
pub enum Object<'a> {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int`.
    Int(i64),
    /// A `str`.
    Str(Cow<'a, str>),
    /// A `bytes` object (protocol 3).
    Bytes(Cow<'a, [u8]>),
    /// A `tuple`.
    Tuple(Vec<Object<'a>>),
    /// A `list`.
    List(Vec<Object<'a>>),
    /// A `dict`, in insertion order.
    Dict(Vec<(Object<'a>, Object<'a>)>),
    /// A module-level class or function, `module.name` (e.g. `collections.OrderedDict`).
    Global {
        /// Its module, e.g. `collections`.
        module: Cow<'a, str>,
        /// Its name in the module, e.g. `OrderedDict`.
        name: Cow<'a, str>,
    },
    /// The object `callable(*args)`, then filled as `__reduce__` describes it: `items` set with
    /// `obj[key] = value` (a dict subclass's items), then `state` applied with `BUILD`.
    Reduce {
        /// What is called: usually an [`Object::Global`].
        callable: Box<Object<'a>>,
        /// The arguments: a tuple.
        args: Box<Object<'a>>,
        /// Dict items set on the result (CPython's `dictitems`), if any.
        items: Option<Vec<(Object<'a>, Object<'a>)>>,
        /// The state given to `__setstate__` (`BUILD`), if any.
        state: Option<Box<Object<'a>>>,
    },
    /// A persistent id (`BINPERSID`): the loader's `persistent_load` turns it into an object (a
    /// PyTorch storage).
    PersistentId(Box<Object<'a>>),
    /// One Python object that the value references several times: written in full the first
    /// time an object of this `key` is met, as a memo reference after that.
    Shared {
        /// What identifies the object within one pickle.
        key: Cow<'a, str>,
        /// The object.
        object: Box<Object<'a>>,
    },
    /// A NumPy array.
    Array(NdArray<'a>),
}

impl<'a> Object<'a> {
    /// A `str`.
    pub fn str(s: impl Into<Cow<'a, str>>) -> Self {
        Object::Str(s.into())
    }

    /// A `str` that is one object wherever it appears (an interned string such as a constant of
    /// the program that wrote the pickle).
    pub fn interned(s: &'a str) -> Self {
        Object::Shared {
            key: Cow::Owned(format!("str:{s}")),
            object: Box::new(Object::str(s)),
        }
    }

    /// The global `module.name`.
    pub fn global(module: &'a str, name: &'a str) -> Self {
        Object::Global {
            module: Cow::Borrowed(module),
            name: Cow::Borrowed(name),
        }
    }

    /// `callable(*args)` with no items and no state.
    pub fn call(callable: Object<'a>, args: Vec<Object<'a>>) -> Self {
        Object::Reduce {
            callable: Box::new(callable),
            args: Box::new(Object::Tuple(args)),
            items: None,
            state: None,
        }
    }

    /// A `collections.OrderedDict` of `items`, as `OrderedDict.__reduce__` gives it.
    pub fn ordered_dict(items: Vec<(Object<'a>, Object<'a>)>) -> Self {
        Object::Reduce {
            callable: Box::new(Object::global("collections", "OrderedDict")),
            args: Box::new(Object::Tuple(Vec::new())),
            items: if items.is_empty() { None } else { Some(items) },
            state: None,
        }
    }
}

/// The elements of a NumPy array.
#[derive(Clone, Debug)]
pub enum ArrayData<'a> {
    /// float32 values (`<f4`), row-major.
    F32(&'a [f32]),
    /// Python objects (`|O`, an object array), row-major.
    Objects(Vec<Object<'a>>),
}

/// A C-ordered NumPy array: `shape` and the elements.
#[derive(Clone, Debug)]
pub struct NdArray<'a> {
    /// The dimensions; empty for a 0-d array (a scalar, or `np.save`'s wrapping of a dict).
    pub shape: Vec<usize>,
    /// The elements, as many as the shape holds.
    pub data: ArrayData<'a>,
}

impl<'a> NdArray<'a> {
    /// A float32 array.
    pub fn f32(shape: &[usize], data: &'a [f32]) -> Self {
        Self {
            shape: shape.to_vec(),
            data: ArrayData::F32(data),
        }
    }

    /// An object array.
    pub fn objects(shape: &[usize], items: Vec<Object<'a>>) -> Self {
        Self {
            shape: shape.to_vec(),
            data: ArrayData::Objects(items),
        }
    }

    /// NumPy's type string of the elements with byte order (`<f4`, `|O`), as in a `.npy`
    /// header.
    pub fn descr(&self) -> &'static str {
        match self.data {
            ArrayData::F32(_) => "<f4",
            ArrayData::Objects(_) => "|O",
        }
    }

    fn len(&self) -> usize {
        match &self.data {
            ArrayData::F32(v) => v.len(),
            ArrayData::Objects(v) => v.len(),
        }
    }

    /// An error unless the data holds the shape's number of elements.
    pub fn check(&self) -> Result<(), PickleError> {
        let expected = self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if expected != Some(self.len()) {
            return Err(PickleError::BadArray(format!(
                "an array of shape {:?} with {} elements",
                self.shape,
                self.len()
            )));
        }
        Ok(())
    }
}

// Opcodes (the names of CPython's pickletools).
const PROTO: u8 = 0x80;
const STOP: u8 = b'.';
const NONE: u8 = b'N';
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const LONG1: u8 = 0x8a;
const BINUNICODE: u8 = b'X';
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES: u8 = b'B';
const EMPTY_TUPLE: u8 = b')';
const TUPLE: u8 = b't';
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const MARK: u8 = b'(';
const EMPTY_LIST: u8 = b']';
const APPEND: u8 = b'a';
const APPENDS: u8 = b'e';
const EMPTY_DICT: u8 = b'}';
const SETITEM: u8 = b's';
const SETITEMS: u8 = b'u';
const GLOBAL: u8 = b'c';
const REDUCE: u8 = b'R';
const BUILD: u8 = b'b';
const BINPERSID: u8 = b'Q';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';

/// Items per `APPENDS` / `SETITEMS` batch, as CPython writes them.
const BATCH: usize = 1000;

/// The numpy module whose `_reconstruct` rebuilds arrays (module docs).
pub const NUMPY_MULTIARRAY: &str = "numpy.core.multiarray";

/// What identifies a memoized object that may be written again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MemoKey {
    Global(String, String),
    Str(String),
    Bytes(Vec<u8>),
    Shared(String),
}

/// Writes one pickle to `out`: [`Pickler::dump`] writes the protocol header, the object and
/// `STOP`.
pub struct Pickler<W: Write> {
    out: W,
    protocol: Protocol,
    memo: HashMap<MemoKey, u32>,
    next_memo: u32,
}

impl<W: Write> Pickler<W> {
    /// A pickler of `protocol` writing to `out`.
    pub fn new(out: W, protocol: Protocol) -> Self {
        Self {
            out,
            protocol,
            memo: HashMap::new(),
            next_memo: 0,
        }
    }

    /// Writes `object` as a complete pickle and returns the output.
    pub fn dump(mut self, object: &Object) -> Result<W, PickleError> {
        self.out.write_all(&[PROTO, self.protocol.number()])?;
        self.save(object)?;
        self.out.write_all(&[STOP])?;
        Ok(self.out)
    }

    fn op(&mut self, op: u8) -> Result<(), PickleError> {
        Ok(self.out.write_all(&[op])?)
    }

    /// Memoizes the object just written; returns its memo index.
    fn put(&mut self) -> Result<u32, PickleError> {
        let index = self.next_memo;
        self.next_memo += 1;
        self.memo_op(BINPUT, LONG_BINPUT, index)
    }

    /// A reference to memo entry `index`.
    fn get(&mut self, index: u32) -> Result<u32, PickleError> {
        self.memo_op(BINGET, LONG_BINGET, index)
    }

    /// A memo opcode with `index`: the one-byte form below 256, else the four-byte one.
    fn memo_op(&mut self, short: u8, long: u8, index: u32) -> Result<u32, PickleError> {
        match u8::try_from(index) {
            Ok(i) => self.out.write_all(&[short, i])?,
            Err(_) => {
                self.out.write_all(&[long])?;
                self.out.write_all(&index.to_le_bytes())?;
            }
        }
        Ok(index)
    }

    /// Writes `object`; returns its memo index if it is memoized.
    fn save(&mut self, object: &Object) -> Result<Option<u32>, PickleError> {
        match object {
            Object::None => self.op(NONE).map(|()| None),
            Object::Bool(b) => self.op(if *b { NEWTRUE } else { NEWFALSE }).map(|()| None),
            Object::Int(i) => self.int(*i).map(|()| None),
            Object::Str(s) => self.str(s).map(Some),
            Object::Bytes(b) => self.bytes(b.len(), |w| Ok(w.write_all(b)?), Some(b)).map(Some),
            Object::Tuple(items) => self.tuple(items),
            Object::List(items) => self.list(items).map(Some),
            Object::Dict(items) => {
                self.op(EMPTY_DICT)?;
                let index = self.put()?;
                self.dict_items_exact(items)?;
                Ok(Some(index))
            }
            Object::Global { module, name } => self.global(module, name).map(Some),
            Object::Reduce {
                callable,
                args,
                items,
                state,
            } => {
                self.save(callable)?;
                self.save(args)?;
                self.op(REDUCE)?;
                let index = self.put()?;
                if let Some(items) = items {
                    self.dict_items_generic(items)?;
                }
                if let Some(state) = state {
                    self.save(state)?;
                    self.op(BUILD)?;
                }
                Ok(Some(index))
            }
            Object::PersistentId(id) => {
                self.save(id)?;
                self.op(BINPERSID).map(|()| None)
            }
            Object::Shared { key, object } => {
                let key = MemoKey::Shared(key.to_string());
                if let Some(&index) = self.memo.get(&key) {
                    return self.get(index).map(Some);
                }
                let index = self.save(object)?;
                if let Some(index) = index {
                    self.memo.insert(key, index);
                }
                Ok(index)
            }
            Object::Array(array) => self.array(array).map(Some),
        }
    }

    fn int(&mut self, i: i64) -> Result<(), PickleError> {
        if let Ok(v) = u8::try_from(i) {
            return Ok(self.out.write_all(&[BININT1, v])?);
        }
        if let Ok(v) = u16::try_from(i) {
            self.op(BININT2)?;
            return Ok(self.out.write_all(&v.to_le_bytes())?);
        }
        if let Ok(v) = i32::try_from(i) {
            self.op(BININT)?;
            return Ok(self.out.write_all(&v.to_le_bytes())?);
        }
        // Python's `encode_long`: the shortest little-endian two's complement.
        let bytes = i.to_le_bytes();
        let mut n = 8;
        while n > 1 {
            let (top, next) = (bytes[n - 1], bytes[n - 2]);
            let redundant = (top == 0 && next & 0x80 == 0) || (top == 0xff && next & 0x80 != 0);
            if !redundant {
                break;
            }
            n -= 1;
        }
        self.out.write_all(&[LONG1, n as u8])?;
        Ok(self.out.write_all(&bytes[..n])?)
    }

    fn str(&mut self, s: &str) -> Result<u32, PickleError> {
        let mut chars = s.chars();
        let singleton = match (chars.next(), chars.next()) {
            (None, _) => true,
            (Some(c), None) => u32::from(c) <= 0xff,
            _ => false,
        };
        let key = singleton.then(|| MemoKey::Str(s.to_string()));
        if let Some(&index) = key.as_ref().and_then(|k| self.memo.get(k)) {
            return self.get(index);
        }
        let len =
            u32::try_from(s.len()).map_err(|_| PickleError::Unsupported(format!("a str of {} bytes", s.len())))?;
        self.op(BINUNICODE)?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(s.as_bytes())?;
        let index = self.put()?;
        if let Some(key) = key {
            self.memo.insert(key, index);
        }
        Ok(index)
    }

    /// A `bytes` object of `len` bytes that `write` writes; `value` is the bytes themselves when
    /// at hand (for the singleton check of empty and one-byte objects).
    fn bytes(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut W) -> Result<(), PickleError>,
        value: Option<&[u8]>,
    ) -> Result<u32, PickleError> {
        if self.protocol == Protocol::V2 {
            return Err(PickleError::Unsupported("bytes in protocol 2".into()));
        }
        let key = match value {
            Some(v) if v.len() <= 1 => Some(MemoKey::Bytes(v.to_vec())),
            _ => None,
        };
        if let Some(&index) = key.as_ref().and_then(|k| self.memo.get(k)) {
            return self.get(index);
        }
        match u8::try_from(len) {
            Ok(n) => self.out.write_all(&[SHORT_BINBYTES, n])?,
            Err(_) => {
                let n = u32::try_from(len).map_err(|_| {
                    PickleError::Unsupported(format!(
                        "bytes of {len} bytes (protocol 3 holds at most 4 GiB in one object)"
                    ))
                })?;
                self.op(BINBYTES)?;
                self.out.write_all(&n.to_le_bytes())?;
            }
        }
        write(&mut self.out)?;
        let index = self.put()?;
        if let Some(key) = key {
            self.memo.insert(key, index);
        }
        Ok(index)
    }

    fn tuple(&mut self, items: &[Object]) -> Result<Option<u32>, PickleError> {
        if items.is_empty() {
            return self.op(EMPTY_TUPLE).map(|()| None);
        }
        let short = [TUPLE1, TUPLE2, TUPLE3].get(items.len() - 1).copied();
        if short.is_none() {
            self.op(MARK)?;
        }
        for item in items {
            self.save(item)?;
        }
        self.op(short.unwrap_or(TUPLE))?;
        self.put().map(Some)
    }

    fn list(&mut self, items: &[Object]) -> Result<u32, PickleError> {
        self.op(EMPTY_LIST)?;
        let index = self.put()?;
        if let [item] = items {
            self.save(item)?;
            self.op(APPEND)?;
        } else if !items.is_empty() {
            for batch in items.chunks(BATCH) {
                self.op(MARK)?;
                for item in batch {
                    self.save(item)?;
                }
                self.op(APPENDS)?;
            }
        }
        Ok(index)
    }

    /// The items of a plain `dict` (CPython's `batch_dict_exact`): `SETITEM` for a dict of one
    /// item, else `MARK … SETITEMS` batches, the last one possibly empty.
    fn dict_items_exact(&mut self, items: &[(Object, Object)]) -> Result<(), PickleError> {
        if items.is_empty() {
            return Ok(());
        }
        if let [(key, value)] = items {
            self.save(key)?;
            self.save(value)?;
            return self.op(SETITEM);
        }
        let mut rest = items;
        loop {
            let batch = &rest[..rest.len().min(BATCH)];
            rest = &rest[batch.len()..];
            self.op(MARK)?;
            for (key, value) in batch {
                self.save(key)?;
                self.save(value)?;
            }
            self.op(SETITEMS)?;
            if batch.len() < BATCH {
                return Ok(());
            }
        }
    }

    /// The items of a dict subclass from its `__reduce__` (CPython's `batch_dict`): batches of
    /// `MARK … SETITEMS`, a batch of one item as `SETITEM`.
    fn dict_items_generic(&mut self, items: &[(Object, Object)]) -> Result<(), PickleError> {
        for batch in items.chunks(BATCH) {
            if let [(key, value)] = batch {
                self.save(key)?;
                self.save(value)?;
                self.op(SETITEM)?;
                continue;
            }
            self.op(MARK)?;
            for (key, value) in batch {
                self.save(key)?;
                self.save(value)?;
            }
            self.op(SETITEMS)?;
        }
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<u32, PickleError> {
        let key = MemoKey::Global(module.to_string(), name.to_string());
        if let Some(&index) = self.memo.get(&key) {
            return self.get(index);
        }
        self.op(GLOBAL)?;
        for part in [module, name] {
            if part.contains('\n') {
                return Err(PickleError::Unsupported(format!("a global named {part:?}")));
            }
            self.out.write_all(part.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        let index = self.put()?;
        self.memo.insert(key, index);
        Ok(index)
    }

    /// `ndarray.__reduce__` of `array` (module docs).
    fn array(&mut self, array: &NdArray) -> Result<u32, PickleError> {
        array.check()?;
        self.global(NUMPY_MULTIARRAY, "_reconstruct")?;
        let args = Object::Tuple(vec![
            Object::global("numpy", "ndarray"),
            Object::Tuple(vec![Object::Int(0)]),
            Object::Bytes(Cow::Borrowed(b"b")),
        ]);
        self.save(&args)?;
        self.op(REDUCE)?;
        let index = self.put()?;
        // The state: (1, shape, dtype, is_fortran, data).
        self.op(MARK)?;
        self.int(1)?;
        let shape: Vec<Object> = array.shape.iter().map(|&d| dim(d)).collect::<Result<_, _>>()?;
        self.tuple(&shape)?;
        self.save(&dtype(array.descr()))?;
        self.op(NEWFALSE)?;
        match &array.data {
            ArrayData::F32(values) => {
                let len = values.len() * 4;
                let small: Option<Vec<u8>> = (len <= 1).then(Vec::new);
                self.bytes(
                    len,
                    |w| {
                        let mut buf = Vec::with_capacity(1 << 16);
                        for chunk in values.chunks(1 << 14) {
                            buf.clear();
                            for v in chunk {
                                buf.extend_from_slice(&v.to_le_bytes());
                            }
                            w.write_all(&buf)?;
                        }
                        Ok(())
                    },
                    small.as_deref(),
                )?;
            }
            ArrayData::Objects(items) => {
                self.list(items)?;
            }
        }
        self.op(TUPLE)?;
        self.put()?;
        self.op(BUILD)?;
        Ok(index)
    }
}

fn dim(d: usize) -> Result<Object<'static>, PickleError> {
    i64::try_from(d)
        .map(Object::Int)
        .map_err(|_| PickleError::BadArray(format!("dimension {d}")))
}

/// The `numpy.dtype` object of type string `descr` (`<f4`, `|O`), as `dtype.__reduce__` gives
/// it; one object per type within a pickle (NumPy's built-in dtypes are singletons).
fn dtype(descr: &'static str) -> Object<'static> {
    let (order, name) = descr.split_at(1);
    // NumPy's pickled type name carries the item size: an object is a pointer (8 bytes on every
    // 64-bit platform NumPy writes from).
    let (name, flags) = match name {
        "O" => ("O8", 63),
        other => (other, 0),
    };
    let state = Object::Tuple(vec![
        Object::Int(3),
        Object::str(order),
        Object::None,
        Object::None,
        Object::None,
        Object::Int(-1),
        Object::Int(-1),
        Object::Int(flags),
    ]);
    Object::Shared {
        key: Cow::Owned(format!("numpy.dtype:{descr}")),
        object: Box::new(Object::Reduce {
            callable: Box::new(Object::global("numpy", "dtype")),
            args: Box::new(Object::Tuple(vec![
                Object::str(name),
                Object::Bool(false),
                Object::Bool(true),
            ])),
            items: None,
            state: Some(Box::new(state)),
        }),
    }
}

/// `object` pickled with `protocol`, in memory.
pub fn to_bytes(object: &Object, protocol: Protocol) -> Result<Vec<u8>, PickleError> {
    Pickler::new(Vec::new(), protocol).dump(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(object: &Object) -> Vec<u8> {
        let bytes = to_bytes(object, Protocol::V3).unwrap();
        assert_eq!(&bytes[..2], &[PROTO, 3]);
        assert_eq!(bytes.last(), Some(&STOP));
        bytes[2..bytes.len() - 1].to_vec()
    }

    #[test]
    fn ints_take_pythons_shortest_form() {
        // Python: pickle.dumps(i, 3)[2:-1].
        let cases: [(i64, &[u8]); 10] = [
            (0, b"K\x00"),
            (255, b"K\xff"),
            (256, b"M\x00\x01"),
            (65535, b"M\xff\xff"),
            (65536, b"J\x00\x00\x01\x00"),
            (-1, b"J\xff\xff\xff\xff"),
            (2147483648, b"\x8a\x05\x00\x00\x00\x80\x00"),
            (-2147483649, b"\x8a\x05\xff\xff\xff\x7f\xff"),
            (i64::MAX, b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"),
            (i64::MIN, b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"),
        ];
        for (i, expected) in cases {
            assert_eq!(body(&Object::Int(i)), expected, "{i}");
        }
    }

    #[test]
    fn memo_follows_cpython() {
        // Python: pickle.dumps((ab(), ab(), 'a', 'a', b'', b''), 3) with ab() building 'ab' anew
        // each call: equal strings of several characters are two objects, one-character strings
        // and empty bytes are singletons.
        let object = Object::Tuple(vec![
            Object::str("ab"),
            Object::str("ab"),
            Object::str("a"),
            Object::str("a"),
            Object::Bytes(Cow::Borrowed(b"")),
            Object::Bytes(Cow::Borrowed(b"")),
        ]);
        assert_eq!(
            body(&object),
            b"(X\x02\x00\x00\x00abq\x00X\x02\x00\x00\x00abq\x01X\x01\x00\x00\x00aq\x02h\x02C\x00q\x03h\x03tq\x04"
        );
        // A list of one item, an empty dict, a one-item dict.
        let object = Object::List(vec![
            Object::Dict(vec![]),
            Object::Dict(vec![(Object::Int(1), Object::None)]),
        ]);
        assert_eq!(body(&object), b"]q\x00(}q\x01}q\x02K\x01Nse");
        assert_eq!(body(&Object::List(vec![Object::None])), b"]q\x00Na");
    }

    #[test]
    fn protocol_2_has_no_bytes_and_arrays_must_fit_their_shape() {
        let bytes = Object::Bytes(Cow::Borrowed(b"abc"));
        assert!(matches!(
            to_bytes(&bytes, Protocol::V2),
            Err(PickleError::Unsupported(_))
        ));
        let array = Object::Array(NdArray::f32(&[2, 2], &[1.0, 2.0, 3.0]));
        assert!(matches!(to_bytes(&array, Protocol::V3), Err(PickleError::BadArray(_))));
        let global = Object::global("a\nb", "c");
        assert!(to_bytes(&global, Protocol::V3).is_err());
    }
}
