//! A restricted unpickler: the subset of the pickle virtual machine (protocols 2–5) that
//! `torch.save` produces, with no way to run Python code.
//!
//! Python's unpickler imports any global a pickle names and calls it; that is the code-execution
//! hole of `.pt` files. Here `GLOBAL`/`STACK_GLOBAL` go through [`crate::allowlist`] (refusing
//! everything else on sight), and `REDUCE`/`NEWOBJ`/`BUILD` on an allowed global have a fixed
//! meaning implemented in Rust: build a tensor view, an ordered dict, a namespace, a set.
//! Persistent ids (`BINPERSID`, torch's references to tensor storages) are handed to a callback
//! supplied by the container reader.
//!
//! Every length read from the stream is checked against the bytes that remain before anything is
//! allocated, and everything the machine creates (stack entries, memo entries, containers,
//! strings, copies) is charged to a budget proportional to the bytes of pickle read so far, so
//! hostile input can neither panic nor create more than [`MEMORY_PER_PICKLE_BYTE`] bytes of
//! values per pickle byte (plus [`MEMORY_FLOOR`]). Tuples cannot nest deeper than
//! [`MAX_TUPLE_DEPTH`], so no value needs deep recursion to be dropped or formatted.

pub mod opcode;
mod value;

use std::collections::HashMap;
use std::mem::size_of;
use std::rc::Rc;

pub(crate) use value::{prefix, Bounded};
pub use value::{Arena, Dict, InlineStorage, Obj, ObjId, Tuple, Value, MAX_DESCRIPTION_BYTES, MAX_TUPLE_DEPTH};

use crate::allowlist::{self, Extensions, Global};
use crate::dtype::DType;
use crate::error::{ConvertError, Result};
use crate::source::ByteSource;
use crate::tensor::{self, StorageRef, TensorRef};

/// Longest `module` or `name` accepted by `GLOBAL` and `STACK_GLOBAL`. The longest allow-listed
/// name is 29 bytes; longer ones are refused before being copied into a message.
const MAX_GLOBAL_LINE: usize = 1024;
/// Most values `REDUCE`/`BUILD` may copy out of existing containers in one pickle (about
/// 100 MB of values at worst).
const MAX_COPIES: u64 = 4_000_000;

/// Bytes of memory the unpickler may create per byte of pickle read so far, on top of
/// [`MEMORY_FLOOR`]. Every memo entry, container, container slot, tuple, string, copied value and
/// tensor description is charged its approximate size when created (hashing a dict key is
/// charged its length, as work), and the live stack is added; the total may never exceed this
/// many bytes per byte read plus the floor. So a hostile pickle of N bytes makes at most
/// 32 N + 16 MiB bytes of values (vectors and hash tables may hold up to about twice that while
/// growing), in time linear in that: without it a megabyte of one-byte `EMPTY_DICT` opcodes took
/// ~150 MB. Pickles written by `torch.save` measure about 16 bytes per byte by this accounting
/// (which never subtracts what is freed), half the limit, and even the largest real checkpoint's
/// pickle (~100 KB) stays far below [`MEMORY_FLOOR`].
pub const MEMORY_PER_PICKLE_BYTE: u64 = 32;
/// Memory every pickle may use regardless of its size (see [`MEMORY_PER_PICKLE_BYTE`]). The
/// largest real checkpoint's pickle (HyperStyle FFHQ: ~600 tensor entries and ~60 options, about
/// 100 KB) needs ~1 MB; 16 MiB leaves a wide margin and is harmless on any machine.
pub const MEMORY_FLOOR: u64 = 16 << 20;
/// Most values the unpickler's stack may hold at once (24 MiB of values). `torch.save`'s pickler
/// writes containers in batches of 1000 items (`SETITEMS`/`APPENDS`), so real stacks stay below a
/// few thousand values; a stream of one-byte `NONE` opcodes is refused here.
pub const MAX_STACK_LEN: usize = 1 << 20;
/// Most `MARK`s open at once. Marks nest only as deep as containers being built inside each
/// other (under 10 in real checkpoints, and the object tree may not be deeper than 64 anyway).
pub const MAX_MARKS: usize = 1024;
/// Most memo entries. `torch.save` memoises a handful of objects per tensor (its key, the
/// persistent id, size and stride tuples, argument tuple, hooks dict, the tensor): under 10 000
/// for the largest real checkpoint (~600 tensor entries), a hundredth of this.
pub const MAX_MEMO_ENTRIES: usize = 1 << 20;
/// Most containers (lists, dicts, sets, objects) in the arena. Real checkpoints have about one
/// per tensor (each tensor's empty backward-hooks dict) plus a few state dicts and options:
/// about 1 000 for the largest.
pub const MAX_CONTAINERS: usize = 1 << 20;

/// Memory charged for a value on the stack or in a container slot.
const VALUE_BYTES: usize = size_of::<Value>();
/// Memory charged for a reference-counted allocation's header.
const RC_BYTES: usize = 2 * size_of::<usize>();
/// Memory charged for a memo entry (the hash table's slot, control byte and growth slack).
const MEMO_ENTRY_BYTES: usize = 64;
/// Memory charged for a dict entry (the pair plus its index entry), on top of hashing the key.
const DICT_ENTRY_BYTES: usize = 2 * VALUE_BYTES + 32;
/// Memory charged for a storage a persistent id resolves to (and its interning table entry).
const STORAGE_BYTES: usize = size_of::<StorageRef>() + RC_BYTES + 64;
/// Bytes fetched from the source at a time.
const READ_CHUNK: u64 = 64 * 1024;

/// Resolves a persistent id (the argument of `BINPERSID`) to a value, usually a storage.
pub type PersistentLoad<'a> = dyn FnMut(&Value) -> Result<Value> + 'a;

/// Unpickles one pickle starting at byte `start` of `src`.
///
/// Containers are allocated in `arena`; persistent ids are resolved by `persistent`. Returns the
/// unpickled value and the position just after its `STOP` opcode, where a following pickle (the
/// legacy format chains several) begins.
pub fn unpickle<S: ByteSource + ?Sized>(
    src: &S,
    start: u64,
    arena: &mut Arena,
    persistent: &mut PersistentLoad<'_>,
) -> Result<(Value, u64)> {
    unpickle_with(src, start, arena, persistent, Extensions::default())
}

/// [`unpickle`], also accepting the globals that `extensions` enables (TorchScript classes).
pub fn unpickle_with<S: ByteSource + ?Sized>(
    src: &S,
    start: u64,
    arena: &mut Arena,
    persistent: &mut PersistentLoad<'_>,
    extensions: Extensions,
) -> Result<(Value, u64)> {
    let end = src.len();
    // Copying budget: generous for real pickles (which copy almost nothing), but bounded so that
    // e.g. rebuilding a big set from a memoised list a million times is refused.
    let budget = end
        .saturating_sub(start)
        .saturating_mul(8)
        .saturating_add(1 << 16)
        .min(MAX_COPIES);
    let mut machine = Machine {
        allocated: 0,
        input: Input {
            src,
            start,
            pos: start,
            end,
            buf: Vec::new(),
            buf_start: start,
        },
        arena,
        persistent,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        op_offset: 0,
        budget,
        extensions,
    };
    let value = machine.run()?;
    Ok((value, machine.input.pos))
}

/// Buffered sequential reads of one pickle stream.
struct Input<'s, S: ?Sized> {
    src: &'s S,
    start: u64,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<S: ByteSource + ?Sized> Input<'_, S> {
    fn offset(&self) -> u64 {
        self.pos - self.start
    }

    fn truncated(&self) -> ConvertError {
        ConvertError::Truncated(format!(
            "pickle data ends at byte {} before its STOP opcode",
            self.end.saturating_sub(self.start)
        ))
    }

    fn byte(&mut self) -> Result<u8> {
        let rel = self.pos.wrapping_sub(self.buf_start);
        let index = usize::try_from(rel).unwrap_or(usize::MAX);
        let b = match self.buf.get(index) {
            Some(&b) if self.pos >= self.buf_start => b,
            _ => {
                if self.pos >= self.end {
                    return Err(self.truncated());
                }
                let n = READ_CHUNK.min(self.end - self.pos);
                self.buf = self.src.read_vec(self.pos, n)?;
                self.buf_start = self.pos;
                *self.buf.first().ok_or_else(|| self.truncated())?
            }
        };
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte()?;
        }
        Ok(out)
    }

    /// Reads `n` bytes; `n` is checked against the remaining input before allocating.
    fn take(&mut self, n: u64) -> Result<Vec<u8>> {
        if n > self.end - self.pos {
            return Err(self.truncated());
        }
        // Small reads go through the buffer; big ones straight to the source.
        if n <= READ_CHUNK {
            let mut out = Vec::with_capacity(n as usize);
            for _ in 0..n {
                out.push(self.byte()?);
            }
            return Ok(out);
        }
        let out = self.src.read_vec(self.pos, n)?;
        self.pos += n;
        Ok(out)
    }

    fn line(&mut self) -> Result<String> {
        let mut bytes = Vec::new();
        loop {
            match self.byte()? {
                b'\n' => break,
                b if bytes.len() < MAX_GLOBAL_LINE => bytes.push(b),
                _ => {
                    return Err(ConvertError::MalformedPickle {
                        offset: self.offset(),
                        reason: format!("GLOBAL line longer than {MAX_GLOBAL_LINE} bytes"),
                    })
                }
            }
        }
        String::from_utf8(bytes).map_err(|_| ConvertError::MalformedPickle {
            offset: self.offset(),
            reason: "GLOBAL line is not UTF-8".into(),
        })
    }
}

/// The pickle virtual machine's state.
struct Machine<'s, 'a, 'p, S: ?Sized> {
    input: Input<'s, S>,
    arena: &'a mut Arena,
    persistent: &'a mut PersistentLoad<'p>,
    stack: Vec<Value>,
    /// Stack heights at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Offset of the opcode being executed, for error messages.
    op_offset: u64,
    /// Remaining copy budget (values copied by set/dict construction and `BUILD`).
    budget: u64,
    /// Memory charged so far (see [`MEMORY_PER_PICKLE_BYTE`]).
    allocated: u64,
    /// Globals allowed besides the fixed list.
    extensions: Extensions,
}

impl<S: ByteSource + ?Sized> Machine<'_, '_, '_, S> {
    fn malformed(&self, reason: impl Into<String>) -> ConvertError {
        ConvertError::MalformedPickle {
            offset: self.op_offset,
            reason: reason.into(),
        }
    }

    fn charge(&mut self, copies: usize) -> Result<()> {
        self.budget = self
            .budget
            .checked_sub(copies as u64)
            .ok_or_else(|| ConvertError::TooLarge("pickle copies more values than its size justifies".into()))?;
        self.charge_memory(copies.saturating_mul(VALUE_BYTES))
    }

    /// Accounts for `bytes` of memory created (or of key hashed); fails once that total plus
    /// the stack exceeds [`MEMORY_PER_PICKLE_BYTE`] per byte read plus [`MEMORY_FLOOR`].
    fn charge_memory(&mut self, bytes: usize) -> Result<()> {
        self.allocated = self.allocated.saturating_add(bytes as u64);
        self.check_memory()
    }

    fn check_memory(&self) -> Result<()> {
        let read = self.input.offset();
        let limit = read.saturating_mul(MEMORY_PER_PICKLE_BYTE).saturating_add(MEMORY_FLOOR);
        let stack = (self.stack.len() as u64).saturating_mul(VALUE_BYTES as u64);
        if self.allocated.saturating_add(stack) > limit {
            return Err(ConvertError::TooLarge(format!(
                "the pickle builds more than {limit} bytes of values from its first {read} bytes \
                 (at most {MEMORY_PER_PICKLE_BYTE} bytes per pickle byte plus {} MiB)",
                MEMORY_FLOOR >> 20
            )));
        }
        Ok(())
    }

    fn push(&mut self, value: Value) -> Result<()> {
        if self.stack.len() >= MAX_STACK_LEN {
            return Err(ConvertError::TooLarge(format!(
                "the pickle stack holds more than {MAX_STACK_LEN} values"
            )));
        }
        self.stack.push(value);
        self.check_memory()
    }

    fn push_mark(&mut self) -> Result<()> {
        if self.marks.len() >= MAX_MARKS {
            return Err(ConvertError::TooLarge(format!(
                "the pickle nests more than {MAX_MARKS} MARKs"
            )));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// Stores a container in the arena, charging it (and its `slots` values) to the budgets.
    fn alloc(&mut self, obj: Obj, slots: usize) -> Result<ObjId> {
        if self.arena.len() >= MAX_CONTAINERS {
            return Err(ConvertError::TooLarge(format!(
                "the pickle creates more than {MAX_CONTAINERS} lists, dicts and objects"
            )));
        }
        self.charge_memory(size_of::<Obj>().saturating_add(slots.saturating_mul(VALUE_BYTES)))?;
        Ok(self.arena.alloc(obj))
    }

    /// Builds a tuple, refusing one nested deeper than [`MAX_TUPLE_DEPTH`].
    fn tuple(&mut self, items: Vec<Value>) -> Result<Value> {
        self.charge_memory(RC_BYTES + 32 + items.len().saturating_mul(VALUE_BYTES))?;
        Tuple::new(items).map(Value::Tuple).ok_or_else(|| {
            ConvertError::TooLarge(format!(
                "tuples nested more than {MAX_TUPLE_DEPTH} deep (at byte {} of the pickle)",
                self.op_offset
            ))
        })
    }

    /// Charges inserting entries with these keys into a dict: the entries, and hashing the keys.
    fn charge_dict_keys<'v>(&mut self, keys: impl Iterator<Item = &'v Value>) -> Result<()> {
        let cost = keys.fold(0usize, |cost, k| {
            cost.saturating_add(DICT_ENTRY_BYTES)
                .saturating_add(k.as_str().map_or(0, str::len))
        });
        self.charge_memory(cost)
    }

    /// Stack height below which the current mark forbids popping.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.malformed("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.malformed("stack underflow"))
    }

    fn last(&self) -> Result<&Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.malformed("stack underflow"));
        }
        self.stack.last().ok_or_else(|| self.malformed("stack underflow"))
    }

    /// Pops everything above the most recent mark, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self.marks.pop().ok_or_else(|| self.malformed("no MARK on the stack"))?;
        if mark > self.stack.len() {
            return Err(self.malformed("MARK above the stack top"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn push_obj(&mut self, obj: Obj, slots: usize) -> Result<()> {
        let id = self.alloc(obj, slots)?;
        let value = match self.arena.get(id) {
            Obj::List(_) => Value::List(id),
            Obj::Dict(_) => Value::Dict(id),
            Obj::Object { .. } | Obj::Array(_) | Obj::NumpyDType { .. } => Value::Object(id),
        };
        self.push(value)
    }

    fn memo_put(&mut self, index: u32) -> Result<()> {
        let value = self.last()?.clone();
        if !self.memo.contains_key(&index) {
            if self.memo.len() >= MAX_MEMO_ENTRIES {
                return Err(ConvertError::TooLarge(format!(
                    "the pickle memoises more than {MAX_MEMO_ENTRIES} values"
                )));
            }
            self.charge_memory(MEMO_ENTRY_BYTES)?;
        }
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<()> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| self.malformed(format!("memo entry {index} is not set")))?;
        self.push(value)
    }

    fn run(&mut self) -> Result<Value> {
        use opcode::*;
        loop {
            self.op_offset = self.input.offset();
            let op = self.input.byte()?;
            match op {
                PROTO => {
                    let version = self.input.byte()?;
                    if version > 5 {
                        return Err(ConvertError::Unsupported(format!("pickle protocol {version}")));
                    }
                }
                FRAME => {
                    // Protocol 4 framing only groups opcodes for buffered I/O; the length can
                    // be ignored.
                    self.input.array::<8>()?;
                }
                STOP => return self.pop(),
                MARK => self.push_mark()?,
                POP => {
                    if self.stack.len() > self.fence() {
                        self.pop()?;
                    } else {
                        self.pop_mark()?;
                    }
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let top = self.last()?.clone();
                    self.push(top)?;
                }
                NONE => self.push(Value::None)?,
                NEWTRUE => self.push(Value::Bool(true))?,
                NEWFALSE => self.push(Value::Bool(false))?,
                BININT => {
                    let i = i32::from_le_bytes(self.input.array()?);
                    self.push(Value::Int(i64::from(i)))?;
                }
                BININT1 => {
                    let i = self.input.byte()?;
                    self.push(Value::Int(i64::from(i)))?;
                }
                BININT2 => {
                    let i = u16::from_le_bytes(self.input.array()?);
                    self.push(Value::Int(i64::from(i)))?;
                }
                LONG1 => {
                    let n = self.input.byte()?;
                    let bytes = self.input.take(u64::from(n))?;
                    self.charge_memory(RC_BYTES + bytes.len())?;
                    self.push(decode_long(bytes))?;
                }
                LONG4 => {
                    let n = i32::from_le_bytes(self.input.array()?);
                    let n = u64::try_from(n).map_err(|_| self.malformed("negative LONG4 length"))?;
                    let bytes = self.input.take(n)?;
                    self.charge_memory(RC_BYTES + bytes.len())?;
                    self.push(decode_long(bytes))?;
                }
                BINFLOAT => {
                    let x = f64::from_be_bytes(self.input.array()?);
                    self.push(Value::Float(x))?;
                }
                SHORT_BINUNICODE => {
                    let n = self.input.byte()?;
                    self.push_unicode(u64::from(n))?;
                }
                BINUNICODE => {
                    let n = u32::from_le_bytes(self.input.array()?);
                    self.push_unicode(u64::from(n))?;
                }
                BINUNICODE8 => {
                    let n = u64::from_le_bytes(self.input.array()?);
                    self.push_unicode(n)?;
                }
                SHORT_BINSTRING => {
                    let n = self.input.byte()?;
                    self.push_binstring(u64::from(n))?;
                }
                BINSTRING => {
                    let n = i32::from_le_bytes(self.input.array()?);
                    let n = u64::try_from(n).map_err(|_| self.malformed("negative BINSTRING length"))?;
                    self.push_binstring(n)?;
                }
                SHORT_BINBYTES => {
                    let n = self.input.byte()?;
                    self.push_bytes(u64::from(n))?;
                }
                BINBYTES => {
                    let n = u32::from_le_bytes(self.input.array()?);
                    self.push_bytes(u64::from(n))?;
                }
                BINBYTES8 | BYTEARRAY8 => {
                    let n = u64::from_le_bytes(self.input.array()?);
                    self.push_bytes(n)?;
                }
                EMPTY_DICT => self.push_obj(Obj::Dict(Dict::default()), 0)?,
                EMPTY_LIST | EMPTY_SET => self.push_obj(Obj::List(Vec::new()), 0)?,
                EMPTY_TUPLE => {
                    let t = self.tuple(Vec::new())?;
                    self.push(t)?;
                }
                DICT => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.malformed("DICT with an odd number of items"));
                    }
                    self.charge_dict_keys(items.iter().step_by(2))?;
                    let mut dict = Dict::default();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        dict.insert(k, v);
                    }
                    self.push_obj(Obj::Dict(dict), 0)?;
                }
                LIST | FROZENSET => {
                    let items = self.pop_mark()?;
                    let slots = items.len();
                    self.push_obj(Obj::List(items), slots)?;
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.malformed("SETITEMS with an odd number of items"));
                    }
                    self.set_items(items)?;
                }
                APPEND => {
                    let value = self.pop()?;
                    self.append(vec![value])?;
                }
                APPENDS | ADDITEMS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                BINPUT => {
                    let i = self.input.byte()?;
                    self.memo_put(u32::from(i))?;
                }
                LONG_BINPUT => {
                    let i = u32::from_le_bytes(self.input.array()?);
                    self.memo_put(i)?;
                }
                MEMOIZE => {
                    let i = u32::try_from(self.memo.len()).map_err(|_| self.malformed("memo overflow"))?;
                    self.memo_put(i)?;
                }
                BINGET => {
                    let i = self.input.byte()?;
                    self.memo_get(u32::from(i))?;
                }
                LONG_BINGET => {
                    let i = u32::from_le_bytes(self.input.array()?);
                    self.memo_get(i)?;
                }
                GLOBAL => {
                    let module = self.input.line()?;
                    let name = self.input.line()?;
                    let global = allowlist::resolve_with(&module, &name, self.extensions)?;
                    self.push(Value::Global(global))?;
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (module.as_str(), name.as_str()) else {
                        return Err(self.malformed("STACK_GLOBAL needs two strings"));
                    };
                    if module.len() > MAX_GLOBAL_LINE || name.len() > MAX_GLOBAL_LINE {
                        return Err(self.malformed(format!("STACK_GLOBAL name longer than {MAX_GLOBAL_LINE} bytes")));
                    }
                    let global = allowlist::resolve_with(module, name, self.extensions)?;
                    self.push(Value::Global(global))?;
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.reduce(&callable, &args)?;
                    self.push(value)?;
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.new_object(&class, &args)?;
                }
                NEWOBJ_EX => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.new_object(&class, &args)?;
                }
                BUILD => {
                    let state = self.pop()?;
                    self.build(state)?;
                }
                BINPERSID => {
                    let pid = self.pop()?;
                    // The callback cannot know where it was called from: locate its errors.
                    let value = (self.persistent)(&pid).map_err(|e| match e {
                        ConvertError::MalformedPickle { reason, .. } => self.malformed(reason),
                        other => other,
                    })?;
                    self.charge_memory(STORAGE_BYTES)?;
                    self.push(value)?;
                }
                _ => {
                    return Err(ConvertError::UnsupportedOpcode {
                        opcode: op,
                        name: opcode::name(op),
                        offset: self.op_offset,
                    })
                }
            }
        }
    }

    /// Reads a string's `n` bytes (which are already counted as read) and charges their copy.
    fn take_string(&mut self, n: u64) -> Result<Vec<u8>> {
        let bytes = self.input.take(n)?;
        self.charge_memory(RC_BYTES.saturating_add(bytes.len()))?;
        Ok(bytes)
    }

    fn push_unicode(&mut self, n: u64) -> Result<()> {
        let bytes = self.take_string(n)?;
        let s = String::from_utf8(bytes).map_err(|_| self.malformed("string is not valid UTF-8"))?;
        self.push(Value::Str(Rc::from(s)))
    }

    /// Python 2 `str`: torch loads these as UTF-8 text; anything else stays bytes.
    fn push_binstring(&mut self, n: u64) -> Result<()> {
        let bytes = self.take_string(n)?;
        self.push(match String::from_utf8(bytes) {
            Ok(s) => Value::Str(Rc::from(s)),
            Err(e) => Value::Bytes(Rc::from(e.into_bytes())),
        })
    }

    fn push_bytes(&mut self, n: u64) -> Result<()> {
        let bytes = self.take_string(n)?;
        self.push(Value::Bytes(Rc::from(bytes)))
    }

    /// `SETITEM(S)`: `items` are alternating keys and values for the dict on top of the stack.
    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        let Value::Dict(id) = *self.last()? else {
            return Err(self.malformed(format!("SETITEM on a {}", self.last()?.type_name())));
        };
        if !matches!(self.arena.get(id), Obj::Dict(_)) {
            return Err(self.malformed("SETITEM target is not a dict"));
        }
        self.charge_dict_keys(items.iter().step_by(2))?;
        let Obj::Dict(dict) = self.arena.get_mut(id) else {
            return Err(self.malformed("SETITEM target is not a dict"));
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.insert(k, v);
        }
        Ok(())
    }

    /// `APPEND(S)`/`ADDITEMS`: extends the list or set on top of the stack.
    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        let Value::List(id) = *self.last()? else {
            return Err(self.malformed(format!("APPEND on a {}", self.last()?.type_name())));
        };
        if !matches!(self.arena.get(id), Obj::List(_)) {
            return Err(self.malformed("APPEND target is not a list"));
        }
        self.charge_memory(items.len().saturating_mul(VALUE_BYTES))?;
        let Obj::List(list) = self.arena.get_mut(id) else {
            return Err(self.malformed("APPEND target is not a list"));
        };
        list.extend(items);
        Ok(())
    }

    /// The items of a list/set value or a tuple, copied (and charged to the budget).
    fn sequence_items(&mut self, value: &Value) -> Result<Vec<Value>> {
        let len = match value {
            Value::Tuple(items) => items.len(),
            Value::List(id) => match self.arena.get(*id) {
                Obj::List(items) => items.len(),
                _ => return Err(self.malformed("expected a list")),
            },
            other => return Err(self.malformed(format!("expected a sequence, got {}", other.type_name()))),
        };
        // Charged before anything is copied.
        self.charge(len)?;
        Ok(match value {
            Value::Tuple(items) => items.to_vec(),
            Value::List(id) => match self.arena.get(*id) {
                Obj::List(items) => items.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        })
    }

    /// `REDUCE`: calls an allow-listed global, i.e. runs its fixed Rust meaning.
    fn reduce(&mut self, callable: &Value, args: &Value) -> Result<Value> {
        let Value::Global(global) = callable else {
            return Err(self.malformed(format!(
                "REDUCE on a {} (only allow-listed globals can be called)",
                callable.type_name()
            )));
        };
        let Value::Tuple(args) = args else {
            return Err(self.malformed(format!("REDUCE arguments must be a tuple, got {}", args.type_name())));
        };
        match global {
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                let tensor = tensor::rebuild(args).map_err(|e| self.malformed(e))?;
                let dims = tensor.shape.len() + tensor.stride.len();
                self.charge_memory(size_of::<TensorRef>() + RC_BYTES + dims * size_of::<u64>())?;
                Ok(Value::Tensor(Rc::new(tensor)))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(self.malformed("_rebuild_parameter expects a tensor")),
            },
            Global::RebuildFromTypeV2 => {
                // `_rebuild_from_type_v2(func, new_type, args, state)`: the subclass and its
                // state carry no data; the tensor is `func(*args)`.
                let [Value::Global(func), Value::Global(Global::TensorClass | Global::ParameterClass), inner @ Value::Tuple(_), ..] =
                    &args[..]
                else {
                    return Err(
                        self.malformed("_rebuild_from_type_v2 expects (rebuild function, tensor type, args, state)")
                    );
                };
                if !func.rebuilds_tensor() || *func == Global::RebuildFromTypeV2 {
                    return Err(self.malformed(format!("_rebuild_from_type_v2 cannot apply {}", func.python_name())));
                }
                self.reduce(&Value::Global(*func), inner)
            }
            Global::OrderedDict => {
                let mut dict = Dict::default();
                if let Some(pairs) = args.first() {
                    for pair in self.sequence_items(pairs)? {
                        let pair = self.sequence_items(&pair)?;
                        self.charge_dict_keys(pair.iter().take(1))?;
                        match pair.as_slice() {
                            [k, v] => dict.insert(k.clone(), v.clone()),
                            _ => return Err(self.malformed("OrderedDict items must be pairs")),
                        }
                    }
                }
                Ok(Value::Dict(self.alloc(Obj::Dict(dict), 0)?))
            }
            Global::Set | Global::FrozenSet => {
                let items = match args.first() {
                    Some(seq) => self.sequence_items(seq)?,
                    None => Vec::new(),
                };
                Ok(Value::List(self.alloc(Obj::List(items), 0)?))
            }
            Global::CodecsEncode => match &args[..] {
                [Value::Str(text), Value::Str(encoding)] => {
                    self.charge_memory(RC_BYTES.saturating_add(text.len()))?;
                    encode_text(text, encoding)
                        .map(|b| Value::Bytes(Rc::from(b)))
                        .ok_or_else(|| {
                            self.malformed(format!(
                                "cannot encode text as {}",
                                Value::Str(encoding.clone()).describe()
                            ))
                        })
                }
                _ => Err(self.malformed("_codecs.encode expects (str, str)")),
            },
            Global::Device => match &args[..] {
                [Value::Str(kind)] => Ok(Value::Str(kind.clone())),
                [Value::Str(kind), Value::Int(index)] => {
                    self.charge_memory(RC_BYTES.saturating_add(kind.len()).saturating_add(21))?;
                    Ok(Value::Str(Rc::from(format!("{kind}:{index}"))))
                }
                _ => Err(self.malformed("torch.device expects (str[, int])")),
            },
            Global::Namespace if args.is_empty() => self.new_namespace(),
            Global::NumpyReconstruct => {
                // `_reconstruct(numpy.ndarray, (0,), b'b')`: an empty array that BUILD fills.
                let [Value::Global(Global::NumpyArrayClass), Value::Tuple(shape), Value::Bytes(code)] = &args[..]
                else {
                    return Err(self.invalid_array("_reconstruct expects (numpy.ndarray, (0,), b'b')"));
                };
                if !matches!(&shape[..], [Value::Int(0)]) || code[..] != *b"b" {
                    return Err(self.invalid_array("_reconstruct expects (numpy.ndarray, (0,), b'b')"));
                }
                Ok(Value::Object(self.alloc(Obj::Array(None), 0)?))
            }
            Global::NumpyDType => {
                // `numpy.dtype(code, align=False, copy=True)`.
                let [Value::Str(code), Value::Bool(false), Value::Bool(true)] = &args[..] else {
                    return Err(self.invalid_array("numpy.dtype expects (code, False, True)"));
                };
                let dtype = match &**code {
                    "f4" => DType::F32,
                    "f8" => DType::F64,
                    other => {
                        return Err(self.invalid_array(format!(
                            "dtype {} is not supported (only float32 `f4` and float64 `f8`)",
                            Value::Str(other.into()).describe()
                        )))
                    }
                };
                Ok(Value::Object(self.alloc(Obj::NumpyDType { dtype, built: false }, 0)?))
            }
            other => Err(self.malformed(format!("{} cannot be called here", other.python_name()))),
        }
    }

    fn new_namespace(&mut self) -> Result<Value> {
        let attrs = Dict::default();
        Ok(Value::Object(self.alloc(
            Obj::Object {
                class: Global::Namespace,
                attrs,
            },
            0,
        )?))
    }

    fn invalid_array(&self, reason: impl Into<String>) -> ConvertError {
        ConvertError::InvalidArray {
            offset: self.op_offset,
            reason: reason.into(),
        }
    }

    /// `NEWOBJ`: `cls.__new__(cls, *args)` for the few plain-data classes allowed.
    fn new_object(&mut self, class: &Value, args: &Value) -> Result<()> {
        let value = match class {
            // A TorchScript module: `__new__` with no arguments, attributes set by BUILD.
            Value::Global(Global::ScriptClass) => {
                if !matches!(args, Value::Tuple(t) if t.is_empty()) {
                    return Err(self.malformed("a TorchScript object is created without arguments"));
                }
                Value::Object(self.alloc(
                    Obj::Object {
                        class: Global::ScriptClass,
                        attrs: Dict::default(),
                    },
                    0,
                )?)
            }
            Value::Global(Global::Namespace) => self.new_namespace()?,
            Value::Global(Global::OrderedDict) => Value::Dict(self.alloc(Obj::Dict(Dict::default()), 0)?),
            Value::Global(Global::Set | Global::FrozenSet) => Value::List(self.alloc(Obj::List(Vec::new()), 0)?),
            other => return Err(self.malformed(format!("NEWOBJ cannot instantiate a {}", other.type_name()))),
        };
        self.push(value)
    }

    /// `BUILD`: sets an object's state.
    fn build(&mut self, state: Value) -> Result<()> {
        match *self.last()? {
            Value::Object(id) if matches!(self.arena.get(id), Obj::Array(_)) => self.build_array(id, &state),
            Value::Object(id) if matches!(self.arena.get(id), Obj::NumpyDType { .. }) => self.build_dtype(id, &state),
            Value::Object(id) => {
                // State is the `__dict__`, or `(__dict__, slots)` for classes with slots.
                let parts: &[Value] = match &state {
                    Value::Tuple(parts) => parts,
                    other => std::slice::from_ref(other),
                };
                if parts.len() > 2 {
                    return Err(self.malformed("object state must be a dict or a (dict, slots) pair"));
                }
                let mut copies = 0;
                for part in parts {
                    match part {
                        Value::None => {}
                        dict => {
                            copies += self
                                .arena
                                .dict_of(dict)
                                .ok_or_else(|| self.malformed("object state must be a dict"))?
                                .len();
                        }
                    }
                }
                // Charged before anything is copied.
                self.charge(copies)?;
                let entries: Vec<(Value, Value)> = parts
                    .iter()
                    .filter_map(|part| self.arena.dict_of(part))
                    .flat_map(|d| d.iter().cloned())
                    .collect();
                self.charge_dict_keys(entries.iter().map(|(k, _)| k))?;
                if let Obj::Object { attrs, .. } = self.arena.get_mut(id) {
                    for (k, v) in entries {
                        attrs.insert(k, v);
                    }
                }
                Ok(())
            }
            // A state dict's Python attributes (`_metadata`: per-module version numbers) and a
            // parameter's attributes carry no tensor data; they are dropped.
            Value::Dict(_) | Value::Tensor(_) => Ok(()),
            ref other => Err(self.malformed(format!("BUILD on a {}", other.type_name()))),
        }
    }
}

impl<S: ByteSource + ?Sized> Machine<'_, '_, '_, S> {
    /// `BUILD` of a numpy dtype: the state `(3, '<', None, None, None, -1, -1, 0)` that numpy
    /// writes for a little-endian float type, checked field by field.
    fn build_dtype(&mut self, id: ObjId, state: &Value) -> Result<()> {
        let Obj::NumpyDType { dtype, built } = *self.arena.get(id) else {
            return Err(self.malformed("BUILD target is not a dtype"));
        };
        if built {
            return Err(self.invalid_array("the dtype's state is set twice"));
        }
        let Value::Tuple(fields) = state else {
            return Err(self.invalid_array(format!("dtype state must be a tuple, got {}", state.type_name())));
        };
        let [version, order, subarray, names, fields_, elsize, alignment, flags] = &fields[..] else {
            return Err(self.invalid_array(format!(
                "dtype state {} is not (3, byteorder, None, None, None, -1, -1, 0)",
                state.describe()
            )));
        };
        match order.as_str() {
            Some("<") => {}
            Some(">") => {
                return Err(self.invalid_array(format!(
                    "big-endian {dtype} data is not supported (save the arrays little-endian)"
                )))
            }
            _ => {
                return Err(self.invalid_array(format!(
                    "dtype byte order {} (only little-endian `<`)",
                    order.describe()
                )))
            }
        }
        let plain = version.as_int() == Some(3)
            && [subarray, names, fields_].iter().all(|v| matches!(v, Value::None))
            && elsize.as_int() == Some(-1)
            && alignment.as_int() == Some(-1)
            && flags.as_int() == Some(0);
        if !plain {
            return Err(self.invalid_array(format!(
                "dtype state {} is not that of a plain float type",
                state.describe()
            )));
        }
        if let Obj::NumpyDType { built, .. } = self.arena.get_mut(id) {
            *built = true;
        }
        Ok(())
    }

    /// `BUILD` of a numpy array: the state `(1, shape, dtype, is_fortran, data)`. The shape,
    /// dtype, order and byte count are checked; the data is kept in the arena's inline pool and
    /// the array becomes a tensor viewing it.
    fn build_array(&mut self, id: ObjId, state: &Value) -> Result<()> {
        if matches!(self.arena.get(id), Obj::Array(Some(_))) {
            return Err(self.invalid_array("the array's state is set twice"));
        }
        let Value::Tuple(fields) = state else {
            return Err(self.invalid_array(format!("array state must be a tuple, got {}", state.type_name())));
        };
        let [version, shape, dtype, fortran, data] = &fields[..] else {
            return Err(self.invalid_array(format!(
                "array state {} is not (1, shape, dtype, is_fortran, data)",
                state.describe()
            )));
        };
        if version.as_int() != Some(1) {
            return Err(self.invalid_array(format!("array state version {}", version.describe())));
        }
        let Value::Tuple(dims) = shape else {
            return Err(self.invalid_array(format!("array shape must be a tuple, got {}", shape.type_name())));
        };
        if dims.len() > tensor::MAX_DIMS {
            return Err(self.invalid_array(format!("array has {} dimensions", dims.len())));
        }
        let shape: Vec<u64> = dims
            .iter()
            .map(|d| d.as_int().and_then(|i| u64::try_from(i).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| self.invalid_array(format!("array shape {} is not non-negative ints", shape.describe())))?;
        let dtype = match dtype {
            Value::Object(d) => match *self.arena.get(*d) {
                Obj::NumpyDType { dtype, built: true } => dtype,
                Obj::NumpyDType { built: false, .. } => {
                    return Err(self.invalid_array("the array's dtype has no state (byte order unknown)"))
                }
                _ => return Err(self.invalid_array("the array's dtype is not a numpy.dtype")),
            },
            other => {
                return Err(self.invalid_array(format!("the array's dtype is a {}", other.type_name())));
            }
        };
        match fortran {
            Value::Bool(false) => {}
            Value::Bool(true) => {
                return Err(self.invalid_array(format!(
                    "Fortran-ordered array of shape {shape:?} (only C order is supported)"
                )))
            }
            other => return Err(self.invalid_array(format!("is_fortran must be a bool, got {}", other.describe()))),
        }
        let Value::Bytes(data) = data else {
            return Err(self.invalid_array(format!(
                "array data must be bytes, got {} (object arrays are not supported)",
                data.type_name()
            )));
        };
        let expected = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size() as u64));
        if expected != Some(data.len() as u64) {
            return Err(self.invalid_array(format!(
                "array of shape {shape:?} and dtype {dtype} needs {} bytes but its data has {}",
                expected.map_or("too many".to_string(), |n| n.to_string()),
                data.len()
            )));
        }
        // The pool copy and the tensor description.
        self.charge_memory(
            data.len()
                .saturating_add(size_of::<TensorRef>() + STORAGE_BYTES)
                .saturating_add(2 * shape.len() * size_of::<u64>()),
        )?;
        let mut stride = vec![0u64; shape.len()];
        let mut step = 1u64;
        for (s, &d) in stride.iter_mut().zip(&shape).rev() {
            *s = step;
            // Cannot overflow: the product of the dimensions was checked above.
            step = step.saturating_mul(d);
        }
        let storage = self.arena.add_inline(dtype, data);
        let tensor = TensorRef {
            storage: Rc::new(storage),
            offset: 0,
            shape,
            stride,
        };
        *self.arena.get_mut(id) = Obj::Array(Some(Rc::new(tensor)));
        Ok(())
    }
}

/// Decodes a `LONG1`/`LONG4` payload: little-endian two's complement.
fn decode_long(bytes: Vec<u8>) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt(Rc::from(bytes));
    }
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xff; 8] } else { [0; 8] };
    buf[..bytes.len()].copy_from_slice(&bytes);
    Value::Int(i64::from_le_bytes(buf))
}

/// `_codecs.encode(text, encoding)` for the encodings protocol 2 uses for `bytes`.
fn encode_text(text: &str, encoding: &str) -> Option<Vec<u8>> {
    match encoding.to_ascii_lowercase().as_str() {
        "latin1" | "latin-1" | "iso-8859-1" => text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect(),
        "utf-8" | "utf8" => Some(text.as_bytes().to_vec()),
        "ascii" => text.is_ascii().then(|| text.as_bytes().to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(bytes: &[u8]) -> Result<(Value, Arena)> {
        let mut arena = Arena::default();
        let mut no_persistent = |_: &Value| -> Result<Value> { Err(ConvertError::Unsupported("persistent id".into())) };
        let (v, _) = unpickle(bytes, 0, &mut arena, &mut no_persistent)?;
        Ok((v, arena))
    }

    #[test]
    fn scalars_and_containers() {
        // {'a': [1, -2, 3.5, None, True], 'b': (b'xy', 'é', 2**70)} as protocol 4 would write it,
        // built by hand.
        let mut p = vec![0x80, 4, b'}', 0x94, b'('];
        p.extend([0x8c, 1, b'a', b']', 0x94, b'(', b'K', 1, b'J']);
        p.extend((-2i32).to_le_bytes());
        p.push(b'G');
        p.extend(3.5f64.to_be_bytes());
        p.extend([b'N', 0x88, b'e']);
        p.extend([0x8c, 1, b'b', b'C', 2, b'x', b'y', 0x8c, 2, 0xc3, 0xa9, 0x8a, 9]);
        p.extend([0, 0, 0, 0, 0, 0, 0, 0, 0x40]);
        p.extend([0x87, b'u', b'.']);
        let (v, arena) = load(&p).unwrap();
        let d = arena.dict_of(&v).unwrap();
        let Some(Value::List(id)) = d.get("a") else {
            panic!("a is not a list")
        };
        let Obj::List(items) = arena.get(*id) else { panic!() };
        assert_eq!(items.len(), 5);
        assert_eq!(items[1].as_int(), Some(-2));
        assert!(matches!(items[2], Value::Float(x) if x == 3.5));
        let Some(Value::Tuple(t)) = d.get("b") else {
            panic!("b is not a tuple")
        };
        assert!(matches!(&t[0], Value::Bytes(b) if &b[..] == b"xy"));
        assert_eq!(t[1].as_str(), Some("é"));
        assert!(matches!(&t[2], Value::BigInt(b) if b.len() == 9));
    }

    #[test]
    fn long1_sign_extension() {
        assert_eq!(decode_long(vec![0xff]).as_int(), Some(-1));
        assert_eq!(decode_long(vec![0x80, 0x00]).as_int(), Some(128));
        assert_eq!(decode_long(vec![]).as_int(), Some(0));
    }

    #[test]
    fn forbidden_global_is_refused() {
        let p = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        match load(p) {
            Err(ConvertError::ForbiddenGlobal { module, name }) => {
                assert_eq!((module.as_str(), name.as_str()), ("posix", "system"))
            }
            other => panic!("{other:?}"),
        }
        // Same through STACK_GLOBAL.
        let p = b"\x80\x04\x8c\x02os\x8c\x06system\x93.";
        assert!(matches!(load(p), Err(ConvertError::ForbiddenGlobal { .. })));
    }

    #[test]
    fn unsupported_and_truncated() {
        match load(b"\x80\x02I1\n.") {
            Err(ConvertError::UnsupportedOpcode { name, offset, .. }) => assert_eq!((name, offset), ("INT", 2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            load(b"\x80\x02X\xff\xff\xff\x7f"),
            Err(ConvertError::Truncated(_))
        ));
        assert!(matches!(load(b"\x80\x02}"), Err(ConvertError::Truncated(_))));
        assert!(matches!(load(b"\x80\x02."), Err(ConvertError::MalformedPickle { .. })));
        assert!(matches!(
            load(b"\x80\x02h\x05."),
            Err(ConvertError::MalformedPickle { .. })
        ));
    }

    #[test]
    fn namespace_and_ordered_dict() {
        // argparse.Namespace(lr=0.5) via NEWOBJ + BUILD; OrderedDict via REDUCE + SETITEMS + BUILD.
        let mut p = b"\x80\x02cargparse\nNamespace\n)\x81}X\x02\x00\x00\x00lrG".to_vec();
        p.extend(0.5f64.to_be_bytes());
        p.extend(b"sb.");
        let (v, arena) = load(&p).unwrap();
        assert!(matches!(arena.dict_of(&v).and_then(|d| d.get("lr")), Some(Value::Float(x)) if *x == 0.5));

        let p = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00kK\x07u}X\t\x00\x00\x00_metadataK\x01sb.";
        let (v, arena) = load(p).unwrap();
        let d = arena.dict_of(&v).unwrap();
        assert_eq!(d.len(), 1, "BUILD state of a dict is dropped");
        assert_eq!(d.get("k").and_then(Value::as_int), Some(7));
    }

    #[test]
    fn protocol2_bytes_and_sets() {
        let p = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00\xc3\xbfAX\x06\x00\x00\x00latin1\x86R.";
        let (v, _) = load(p).unwrap();
        assert!(matches!(v, Value::Bytes(b) if b[..] == [0xff, b'A']));
        let p = b"\x80\x02c__builtin__\nset\n]q\x00(K\x01K\x02e\x85Rh\x00.";
        let (v, arena) = load(p).unwrap();
        assert!(matches!(v, Value::List(id) if matches!(arena.get(id), Obj::List(l) if l.len() == 2)));
    }

    #[test]
    fn copy_budget_stops_quadratic_blowup() {
        // A list of 1000 ints turned into a set 100000 times (through the memo).
        let mut p = b"\x80\x02]q\x00(".to_vec();
        for _ in 0..1000 {
            p.extend([b'K', 1]);
        }
        p.extend(b"e0");
        for _ in 0..100_000 {
            p.extend(b"c__builtin__\nset\nh\x00\x85R0");
        }
        p.extend(b"N.");
        assert!(matches!(load(&p), Err(ConvertError::TooLarge(_))));
    }
}
