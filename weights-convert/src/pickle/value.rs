//! The data model the restricted unpickler builds: plain values plus an arena of containers.
//!
//! Python containers are mutable and shared by reference (a memoised list can be appended to
//! after being referenced elsewhere). Lists, dicts and objects therefore live in an [`Arena`] and
//! values hold an [`ObjId`]; everything else is immutable and reference-counted, so copying a
//! value out of the memo is O(1). This is what keeps hostile pickles from blowing up memory by
//! re-referencing a big value many times: the arena grows by at most one container per opcode.

use std::collections::HashMap;
use std::rc::Rc;

use crate::allowlist::Global;
use crate::tensor::{StorageRef, TensorRef};

/// Index of a container in an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjId(usize);

/// A value on the unpickler's stack or inside a container.
#[derive(Clone, Debug)]
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
    Tuple(Rc<[Value]>),
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
    /// An object of an allow-listed class with its attribute dict.
    Object {
        /// The object's class.
        class: Global,
        /// Its `__dict__`.
        attrs: Dict,
    },
}

/// Owner of all mutable containers of one unpickling session.
#[derive(Debug, Default)]
pub struct Arena {
    objs: Vec<Obj>,
}

impl Arena {
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
                Obj::List(_) => None,
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
