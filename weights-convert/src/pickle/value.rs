//! The data model the restricted unpickler builds: plain values plus an arena of containers.
//!
//! Python containers are mutable and shared by reference (a memoised list can be appended to
//! after being referenced elsewhere). Lists, dicts and objects therefore live in an [`Arena`] and
//! values hold an [`ObjId`]; everything else is immutable and reference-counted, so copying a
//! value out of the memo is O(1). This is what keeps hostile pickles from blowing up memory by
//! re-referencing a big value many times: the arena grows by at most one container per opcode.
//!
//! Tuples are the only values that hold other values directly; their nesting depth is bounded
//! when they are built ([`MAX_TUPLE_DEPTH`]), so dropping or formatting a value never recurses
//! deeply. Sharing still lets a small pickle describe an exponentially large tree, so values are
//! only ever shown through [`Value::describe`], which is bounded.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::ops::Deref;
use std::rc::Rc;

use crate::allowlist::Global;
use crate::tensor::{StorageRef, TensorRef};

/// Index of a container in an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjId(usize);

/// Deepest nesting of tuples directly inside tuples (a tuple of non-tuples has depth 1).
///
/// Tuples are the only values that own other values (lists, dicts and objects live in the flat
/// [`Arena`]), so this bounds every recursion over a value: dropping it, formatting it, turning
/// it into a key. Without it a 1 MB pickle of nested one-item tuples (`)` then `\x85` a million
/// times) overflows the stack when the value is dropped. Real checkpoints nest tuples at most
/// 3 deep (a persistent id inside `_rebuild_tensor_v2`'s arguments inside
/// `_rebuild_from_type_v2`'s); 64 is also the depth beyond which walking the object tree
/// refuses a checkpoint anyway.
pub const MAX_TUPLE_DEPTH: u32 = 64;

/// Longest description of an untrusted value in an error message or a `Debug` rendering, in
/// bytes (plus an ellipsis). Values are shared, so a small pickle can describe a value whose full
/// rendering is exponentially long; messages only need enough to recognise the value.
pub const MAX_DESCRIPTION_BYTES: usize = 200;

/// A Python tuple: immutable items, shared by reference, and its tuple nesting depth, computed
/// when it is built so that no tuple deeper than [`MAX_TUPLE_DEPTH`] can exist. Dereferences to
/// its items.
#[derive(Clone)]
pub struct Tuple(Rc<TupleInner>);

struct TupleInner {
    depth: u32,
    items: Box<[Value]>,
}

impl Tuple {
    /// The tuple of `items`, or `None` if it would nest tuples deeper than [`MAX_TUPLE_DEPTH`].
    pub fn new(items: Vec<Value>) -> Option<Tuple> {
        let inner = items
            .iter()
            .map(|v| match v {
                Value::Tuple(t) => t.depth(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let depth = inner + 1;
        (depth <= MAX_TUPLE_DEPTH).then(|| {
            Tuple(Rc::new(TupleInner {
                depth,
                items: items.into_boxed_slice(),
            }))
        })
    }

    /// Tuple nesting depth: 1 plus the largest depth of an item that is a tuple.
    pub fn depth(&self) -> u32 {
        self.0.depth
    }
}

impl Deref for Tuple {
    type Target = [Value];

    fn deref(&self) -> &[Value] {
        &self.0.items
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_tuple(self))
    }
}

/// A value on the unpickler's stack or inside a container.
///
/// Its `Debug` rendering is [`Value::describe`]: bounded, whatever the value.
#[derive(Clone)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` that fits in 64 bits.
    Int(i64),
    /// Python `int` too large for `i64`: little-endian two's-complement bytes, as stored by
    /// `LONG1`/`LONG4` (the legacy format's magic number is one of these).
    BigInt(Rc<[u8]>),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(Rc<str>),
    /// Python `bytes` / `bytearray`.
    Bytes(Rc<[u8]>),
    /// Python `tuple` (immutable, so held directly).
    Tuple(Tuple),
    /// Python `list`, `set` or `frozenset`.
    List(ObjId),
    /// Python `dict` or `collections.OrderedDict`.
    Dict(ObjId),
    /// An instance of an allow-listed plain-data class (`argparse.Namespace`).
    Object(ObjId),
    /// An allow-listed global (callable or class) that has not been applied.
    Global(Global),
    /// A storage, produced by a persistent id.
    Storage(Rc<StorageRef>),
    /// A tensor, produced by one of the allow-listed rebuild functions.
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int` that fits in `i64` (or a `bool`, as in Python).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A short description of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Object(_) => "object",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    /// A Python-like rendering for messages, cut after [`MAX_DESCRIPTION_BYTES`] bytes (ending
    /// with `…` then). Lists, dicts and objects are named, not expanded. The work done is bounded
    /// by the length of the description, however large the value.
    pub fn describe(&self) -> String {
        let mut out = Bounded::new(MAX_DESCRIPTION_BYTES);
        // An error only means the description was cut.
        let _ = render(self, &mut out);
        out.finish()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn describe_tuple(t: &Tuple) -> String {
    let mut out = Bounded::new(MAX_DESCRIPTION_BYTES);
    let _ = render_tuple(t, &mut out);
    out.finish()
}

/// A string that refuses to grow past a limit: the write that would exceed it stores what fits
/// and fails, which stops any rendering in progress.
pub(crate) struct Bounded {
    out: String,
    room: usize,
    cut: bool,
}

impl Bounded {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            out: String::new(),
            room: limit,
            cut: false,
        }
    }

    /// Whether a write was refused.
    pub(crate) fn was_cut(&self) -> bool {
        self.cut
    }

    /// The text, with `…` appended if it was cut.
    pub(crate) fn finish(mut self) -> String {
        if self.cut {
            self.out.push('…');
        }
        self.out
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.room {
            self.out.push_str(s);
            self.room -= s.len();
            return Ok(());
        }
        self.out.push_str(prefix(s, self.room));
        self.room = 0;
        self.cut = true;
        Err(fmt::Error)
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes a Python-like rendering of `value`. Every call writes at least one byte before
/// recursing, so a bounded writer stops it after a bounded amount of work; recursion depth is
/// bounded by [`MAX_TUPLE_DEPTH`].
fn render(value: &Value, w: &mut Bounded) -> fmt::Result {
    match value {
        Value::None => w.write_str("None"),
        Value::Bool(b) => w.write_str(if *b { "True" } else { "False" }),
        Value::Int(i) => write!(w, "{i}"),
        Value::BigInt(bytes) => write!(w, "<int of {} bytes>", bytes.len()),
        Value::Float(x) => write!(w, "{x:?}"),
        // Only a prefix is escaped, so a huge string costs no more than a short one.
        Value::Str(s) => {
            let shown = prefix(s, MAX_DESCRIPTION_BYTES + 1);
            write!(w, "{shown:?}")?;
            if shown.len() < s.len() {
                w.write_str("…")?;
            }
            Ok(())
        }
        Value::Bytes(b) => write!(w, "<bytes of length {}>", b.len()),
        Value::Tuple(t) => render_tuple(t, w),
        Value::List(id) => write!(w, "<list #{}>", id.0),
        Value::Dict(id) => write!(w, "<dict #{}>", id.0),
        Value::Object(id) => write!(w, "<object #{}>", id.0),
        Value::Global(g) => write!(w, "<global {}>", g.python_name()),
        Value::Storage(s) => write!(w, "<storage of {} {} elements>", s.numel, s.dtype),
        Value::Tensor(t) => write!(w, "<tensor {} {:?}>", t.dtype(), t.shape),
    }
}

fn render_tuple(t: &Tuple, w: &mut Bounded) -> fmt::Result {
    w.write_str("(")?;
    for (i, item) in t.iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        render(item, w)?;
    }
    if t.len() == 1 {
        w.write_str(",")?;
    }
    w.write_str(")")
}

/// An insertion-ordered dict, as Python's. Keys that are strings or integers are deduplicated
/// (assigning an existing key replaces its value); other keys are kept as given.
#[derive(Clone, Debug, Default)]
pub struct Dict {
    entries: Vec<(Value, Value)>,
    str_index: HashMap<Rc<str>, usize>,
    int_index: HashMap<i64, usize>,
}

impl Dict {
    /// Sets `key` to `value`, replacing an existing entry for the same key.
    pub fn insert(&mut self, key: Value, value: Value) {
        let existing = match &key {
            Value::Str(s) => self.str_index.get(s).copied(),
            Value::Int(_) | Value::Bool(_) => key.as_int().and_then(|i| self.int_index.get(&i).copied()),
            _ => None,
        };
        if let Some(slot) = existing.and_then(|i| self.entries.get_mut(i)) {
            slot.1 = value;
            return;
        }
        let index = self.entries.len();
        match &key {
            Value::Str(s) => {
                self.str_index.insert(s.clone(), index);
            }
            Value::Int(_) | Value::Bool(_) => {
                if let Some(i) = key.as_int() {
                    self.int_index.insert(i, index);
                }
            }
            _ => {}
        }
        self.entries.push((key, value));
    }

    /// The value stored under the string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.str_index
            .get(key)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, v)| v)
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &(Value, Value)> {
        self.entries.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A mutable container.
#[derive(Clone, Debug)]
pub enum Obj {
    /// A list (also used for sets, whose order does not matter here).
    List(Vec<Value>),
    /// A dict.
    Dict(Dict),
    /// An object of an allow-listed class with its attribute dict (an `argparse.Namespace`, or a
    /// TorchScript module: its parameters, buffers and submodules).
    Object {
        /// The object's class.
        class: Global,
        /// Its `__dict__`.
        attrs: Dict,
    },
    /// A numpy array: `None` as `numpy.core.multiarray._reconstruct` creates it, the tensor once
    /// `BUILD` has given it a validated shape, dtype and data (held in [`Arena::inline_data`]).
    Array(Option<Rc<TensorRef>>),
    /// A numpy dtype (`numpy.dtype('f4')`): its element type, and whether `BUILD` has checked
    /// its state (little-endian, no fields).
    NumpyDType {
        /// Element type.
        dtype: crate::dtype::DType,
        /// Whether the state was set and checked.
        built: bool,
    },
}

/// A storage whose bytes the pickle itself holds (a numpy array's data), kept in
/// [`Arena::inline_data`].
#[derive(Clone, Debug)]
pub struct InlineStorage {
    /// The storage's key (`numpy:<n>`).
    pub key: Rc<str>,
    /// Element type.
    pub dtype: crate::dtype::DType,
    /// Byte offset in [`Arena::inline_data`].
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Owner of all mutable containers of one unpickling session, and of the data of the numpy
/// arrays it unpickled.
#[derive(Debug, Default)]
pub struct Arena {
    objs: Vec<Obj>,
    inline: Vec<u8>,
    inline_storages: Vec<InlineStorage>,
}

impl Arena {
    /// Appends an array's data; returns the storage recorded for it.
    pub(crate) fn add_inline(&mut self, dtype: crate::dtype::DType, data: &[u8]) -> StorageRef {
        let key: Rc<str> = format!("numpy:{}", self.inline_storages.len()).into();
        let offset = self.inline.len() as u64;
        self.inline.extend_from_slice(data);
        self.inline_storages.push(InlineStorage {
            key: key.clone(),
            dtype,
            offset,
            len: data.len() as u64,
        });
        StorageRef {
            key,
            dtype,
            numel: (data.len() / dtype.size()) as u64,
            base: 0,
        }
    }

    /// The data of every numpy array unpickled into this arena, back to back.
    pub fn inline_data(&self) -> &[u8] {
        &self.inline
    }

    /// Moves the inline data out (the storages stay recorded).
    pub(crate) fn take_inline_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.inline)
    }

    /// The storages of [`Arena::inline_data`].
    pub fn inline_storages(&self) -> &[InlineStorage] {
        &self.inline_storages
    }

    /// Stores a container and returns its id.
    pub fn alloc(&mut self, obj: Obj) -> ObjId {
        self.objs.push(obj);
        ObjId(self.objs.len() - 1)
    }

    /// The container behind `id`. Ids are only created by [`Arena::alloc`], so they are always
    /// valid for the arena that made them.
    pub fn get(&self, id: ObjId) -> &Obj {
        &self.objs[id.0]
    }

    /// Mutable access to the container behind `id`.
    pub fn get_mut(&mut self, id: ObjId) -> &mut Obj {
        &mut self.objs[id.0]
    }

    /// The dict behind a `dict` value, or the attribute dict of an object.
    pub fn dict_of(&self, value: &Value) -> Option<&Dict> {
        match value {
            Value::Dict(id) | Value::Object(id) => match self.get(*id) {
                Obj::Dict(d) | Obj::Object { attrs: d, .. } => Some(d),
                Obj::List(_) | Obj::Array(_) | Obj::NumpyDType { .. } => None,
            },
            _ => None,
        }
    }

    /// Number of containers allocated.
    pub fn len(&self) -> usize {
        self.objs.len()
    }

    /// Whether no container was allocated.
    pub fn is_empty(&self) -> bool {
        self.objs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doubling(levels: usize) -> Value {
        let mut v = Value::Tuple(Tuple::new(Vec::new()).unwrap());
        for _ in 0..levels {
            v = Value::Tuple(Tuple::new(vec![v.clone(), v]).unwrap());
        }
        v
    }

    #[test]
    fn tuple_depth_is_bounded_when_built() {
        let mut v = Value::Int(1);
        for depth in 1..=MAX_TUPLE_DEPTH {
            let t = Tuple::new(vec![Value::None, v]).unwrap();
            assert_eq!(t.depth(), depth);
            v = Value::Tuple(t);
        }
        assert!(Tuple::new(vec![v]).is_none());
    }

    #[test]
    fn descriptions_are_bounded() {
        let v = doubling(60);
        let text = v.describe();
        assert!(text.len() <= MAX_DESCRIPTION_BYTES + '…'.len_utf8(), "{text}");
        assert!(text.starts_with("((((") && text.ends_with('…'));
        assert_eq!(format!("{v:?}"), text);
        let long = Value::Str("é".repeat(1000).into());
        let text = long.describe();
        assert!(text.len() <= MAX_DESCRIPTION_BYTES + '…'.len_utf8() && text.starts_with("\"éé"));
        let t = Value::Tuple(Tuple::new(vec![Value::Str("a".into()), Value::Int(-2)]).unwrap());
        assert_eq!(t.describe(), "(\"a\", -2)");
        let one = Value::Tuple(Tuple::new(vec![Value::Bool(true)]).unwrap());
        assert_eq!(one.describe(), "(True,)");
        assert_eq!(Value::Bytes(vec![0; 9].into()).describe(), "<bytes of length 9>");
    }

    #[test]
    fn dict_replaces_existing_keys_in_place() {
        let mut d = Dict::default();
        d.insert(Value::Str("a".into()), Value::Int(1));
        d.insert(Value::Int(1), Value::Int(2));
        d.insert(Value::Str("a".into()), Value::Int(3));
        d.insert(Value::Bool(true), Value::Int(4)); // True == 1 in Python
        assert_eq!(d.len(), 2);
        assert_eq!(d.get("a").and_then(Value::as_int), Some(3));
        assert_eq!(d.iter().nth(1).and_then(|(_, v)| v.as_int()), Some(4));
    }
}
