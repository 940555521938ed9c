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
//! allocated, and the work spent copying values is bounded by the pickle's size, so hostile input
//! can neither panic nor exhaust memory.

pub mod opcode;
mod value;

use std::collections::HashMap;
use std::rc::Rc;

pub use value::{Arena, Dict, Obj, ObjId, Value};

use crate::allowlist::{self, Global};
use crate::error::{ConvertError, Result};
use crate::source::ByteSource;
use crate::tensor;

/// Longest `module` or `name` line accepted by `GLOBAL`.
const MAX_GLOBAL_LINE: usize = 1024;
/// Most values `REDUCE`/`BUILD` may copy out of existing containers in one pickle (about
/// 100 MB of values at worst).
const MAX_COPIES: u64 = 4_000_000;
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
    let end = src.len();
    // Copying budget: generous for real pickles (which copy almost nothing), but bounded so that
    // e.g. rebuilding a big set from a memoised list a million times is refused.
    let budget = end
        .saturating_sub(start)
        .saturating_mul(8)
        .saturating_add(1 << 16)
        .min(MAX_COPIES);
    let mut machine = Machine {
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
        Ok(())
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

    fn push_obj(&mut self, obj: Obj) {
        let id = self.arena.alloc(obj);
        self.stack.push(match self.arena.get(id) {
            Obj::List(_) => Value::List(id),
            Obj::Dict(_) => Value::Dict(id),
            Obj::Object { .. } => Value::Object(id),
        });
    }

    fn memo_put(&mut self, index: u32) -> Result<()> {
        let value = self.last()?.clone();
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<()> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| self.malformed(format!("memo entry {index} is not set")))?;
        self.stack.push(value);
        Ok(())
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
                MARK => self.marks.push(self.stack.len()),
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
                    self.stack.push(top);
                }
                NONE => self.stack.push(Value::None),
                NEWTRUE => self.stack.push(Value::Bool(true)),
                NEWFALSE => self.stack.push(Value::Bool(false)),
                BININT => self
                    .stack
                    .push(Value::Int(i64::from(i32::from_le_bytes(self.input.array()?)))),
                BININT1 => self.stack.push(Value::Int(i64::from(self.input.byte()?))),
                BININT2 => self
                    .stack
                    .push(Value::Int(i64::from(u16::from_le_bytes(self.input.array()?)))),
                LONG1 => {
                    let n = self.input.byte()?;
                    let bytes = self.input.take(u64::from(n))?;
                    self.stack.push(decode_long(bytes));
                }
                LONG4 => {
                    let n = i32::from_le_bytes(self.input.array()?);
                    let n = u64::try_from(n).map_err(|_| self.malformed("negative LONG4 length"))?;
                    let bytes = self.input.take(n)?;
                    self.stack.push(decode_long(bytes));
                }
                BINFLOAT => self.stack.push(Value::Float(f64::from_be_bytes(self.input.array()?))),
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
                EMPTY_DICT => self.push_obj(Obj::Dict(Dict::default())),
                EMPTY_LIST | EMPTY_SET => self.push_obj(Obj::List(Vec::new())),
                EMPTY_TUPLE => self.stack.push(Value::Tuple(Rc::from(Vec::new()))),
                DICT => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.malformed("DICT with an odd number of items"));
                    }
                    let mut dict = Dict::default();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        dict.insert(k, v);
                    }
                    self.push_obj(Obj::Dict(dict));
                }
                LIST => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::List(items));
                }
                FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push_obj(Obj::List(items));
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::from(items)));
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.stack.push(Value::Tuple(Rc::from(items)));
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
                    self.stack.push(Value::Global(allowlist::resolve(&module, &name)?));
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (module.as_str(), name.as_str()) else {
                        return Err(self.malformed("STACK_GLOBAL needs two strings"));
                    };
                    self.stack.push(Value::Global(allowlist::resolve(module, name)?));
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.reduce(&callable, &args)?;
                    self.stack.push(value);
                }
                NEWOBJ => {
                    let _args = self.pop()?;
                    let class = self.pop()?;
                    self.new_object(&class)?;
                }
                NEWOBJ_EX => {
                    let _kwargs = self.pop()?;
                    let _args = self.pop()?;
                    let class = self.pop()?;
                    self.new_object(&class)?;
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
                    self.stack.push(value);
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

    fn push_unicode(&mut self, n: u64) -> Result<()> {
        let bytes = self.input.take(n)?;
        let s = String::from_utf8(bytes).map_err(|_| self.malformed("string is not valid UTF-8"))?;
        self.stack.push(Value::Str(Rc::from(s)));
        Ok(())
    }

    /// Python 2 `str`: torch loads these as UTF-8 text; anything else stays bytes.
    fn push_binstring(&mut self, n: u64) -> Result<()> {
        let bytes = self.input.take(n)?;
        self.stack.push(match String::from_utf8(bytes) {
            Ok(s) => Value::Str(Rc::from(s)),
            Err(e) => Value::Bytes(Rc::from(e.into_bytes())),
        });
        Ok(())
    }

    fn push_bytes(&mut self, n: u64) -> Result<()> {
        let bytes = self.input.take(n)?;
        self.stack.push(Value::Bytes(Rc::from(bytes)));
        Ok(())
    }

    /// `SETITEM(S)`: `items` are alternating keys and values for the dict on top of the stack.
    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        let Value::Dict(id) = *self.last()? else {
            return Err(self.malformed(format!("SETITEM on a {}", self.last()?.type_name())));
        };
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
        let Obj::List(list) = self.arena.get_mut(id) else {
            return Err(self.malformed("APPEND target is not a list"));
        };
        list.extend(items);
        Ok(())
    }

    /// The items of a list/set value or a tuple, copied (and charged to the budget).
    fn sequence_items(&mut self, value: &Value) -> Result<Vec<Value>> {
        let items = match value {
            Value::Tuple(items) => items.to_vec(),
            Value::List(id) => match self.arena.get(*id) {
                Obj::List(items) => items.clone(),
                _ => return Err(self.malformed("expected a list")),
            },
            other => return Err(self.malformed(format!("expected a sequence, got {}", other.type_name()))),
        };
        self.charge(items.len())?;
        Ok(items)
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
                        match self.sequence_items(&pair)?.as_slice() {
                            [k, v] => dict.insert(k.clone(), v.clone()),
                            _ => return Err(self.malformed("OrderedDict items must be pairs")),
                        }
                    }
                }
                Ok(Value::Dict(self.arena.alloc(Obj::Dict(dict))))
            }
            Global::Set | Global::FrozenSet => {
                let items = match args.first() {
                    Some(seq) => self.sequence_items(seq)?,
                    None => Vec::new(),
                };
                Ok(Value::List(self.arena.alloc(Obj::List(items))))
            }
            Global::CodecsEncode => match &args[..] {
                [Value::Str(text), Value::Str(encoding)] => encode_text(text, encoding)
                    .map(|b| Value::Bytes(Rc::from(b)))
                    .ok_or_else(|| self.malformed(format!("cannot encode text as {encoding}"))),
                _ => Err(self.malformed("_codecs.encode expects (str, str)")),
            },
            Global::Device => match &args[..] {
                [Value::Str(kind)] => Ok(Value::Str(kind.clone())),
                [Value::Str(kind), Value::Int(index)] => Ok(Value::Str(Rc::from(format!("{kind}:{index}")))),
                _ => Err(self.malformed("torch.device expects (str[, int])")),
            },
            Global::Namespace if args.is_empty() => Ok(self.new_namespace()),
            other => Err(self.malformed(format!("{} cannot be called here", other.python_name()))),
        }
    }

    fn new_namespace(&mut self) -> Value {
        Value::Object(self.arena.alloc(Obj::Object {
            class: Global::Namespace,
            attrs: Dict::default(),
        }))
    }

    /// `NEWOBJ`: `cls.__new__(cls, *args)` for the few plain-data classes allowed.
    fn new_object(&mut self, class: &Value) -> Result<()> {
        let value = match class {
            Value::Global(Global::Namespace) => self.new_namespace(),
            Value::Global(Global::OrderedDict) => Value::Dict(self.arena.alloc(Obj::Dict(Dict::default()))),
            Value::Global(Global::Set | Global::FrozenSet) => Value::List(self.arena.alloc(Obj::List(Vec::new()))),
            other => return Err(self.malformed(format!("NEWOBJ cannot instantiate a {}", other.type_name()))),
        };
        self.stack.push(value);
        Ok(())
    }

    /// `BUILD`: sets an object's state.
    fn build(&mut self, state: Value) -> Result<()> {
        match *self.last()? {
            Value::Object(id) => {
                // State is the `__dict__`, or `(__dict__, slots)` for classes with slots.
                let parts = match &state {
                    Value::Tuple(parts) => parts.to_vec(),
                    other => vec![other.clone()],
                };
                let mut entries = Vec::new();
                for part in &parts {
                    match part {
                        Value::None => {}
                        dict => {
                            let d = self
                                .arena
                                .dict_of(dict)
                                .ok_or_else(|| self.malformed("object state must be a dict"))?;
                            entries.extend(d.iter().cloned());
                        }
                    }
                }
                self.charge(entries.len())?;
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
