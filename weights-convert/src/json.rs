//! Rendering unpickled Python values as JSON (for `opts` and `scalars`) and as key components.
//!
//! Values can be shared (a memoised tuple or container referenced twice), so a small pickle can
//! describe an exponentially large tree. Every walk over an object tree is therefore charged to a
//! [`Budget`] proportional to the pickle's size, both for the values it visits and for the text
//! it builds, and keys have a bounded length.

use serde_json::{Map, Number, Value as Json};

use crate::error::{ConvertError, Result};
use crate::pickle::{prefix, Arena, Bounded, Obj, Value, MAX_DESCRIPTION_BYTES};

/// Deepest nesting followed when walking an object tree. Real checkpoints nest a handful of
/// levels (under 10); anything deeper is hostile or cyclic (a list that contains itself). Tuples,
/// lists, dicts and objects all count as a level.
pub(crate) const MAX_DEPTH: usize = 64;

/// Values a walk may visit per byte of pickle, on top of [`VISIT_FLOOR`]. A real checkpoint's
/// walk visits each value once (twice for options, which are also rendered as JSON), and every
/// value takes at least one byte of pickle; 16 leaves room for legitimately shared values while
/// stopping exponentially shared trees (a tuple of two references to the previous tuple, 60
/// times) after a bounded amount of work.
pub(crate) const VISITS_PER_PICKLE_BYTE: u64 = 16;
/// Values any walk may visit regardless of the pickle's size.
pub(crate) const VISIT_FLOOR: u64 = 1 << 16;
/// Bytes of text (keys, flattened paths, JSON strings and nodes) a walk may build per byte of
/// pickle, on top of [`TEXT_FLOOR`]. Real checkpoints build less text than their pickle holds
/// (each key is stored in the pickle; a path adds a short prefix such as `state_dict/`); this
/// stops a memoised megabyte string referenced a million times in the options, or paths
/// multiplied by sharing, from taking gigabytes.
pub(crate) const TEXT_PER_PICKLE_BYTE: u64 = 16;
/// Text any walk may build regardless of the pickle's size (real checkpoints: ~50 KB of keys
/// and options).
pub(crate) const TEXT_FLOOR: u64 = 16 << 20;
/// Bytes charged per JSON node built (its `serde_json::Value` in an array or map slot).
const JSON_NODE_BYTES: usize = std::mem::size_of::<Json>();
/// Longest flattened tensor key or dict key, in bytes. The longest real key is about 60 bytes
/// (`state_dict/hypernet.refinement_blocks.24.output.1.weight`) and option names are short; the
/// limit keeps keys (which are copied into every longer path, the header and error messages)
/// from being used to multiply memory, and bounds rendering a shared tuple used as a key.
pub const MAX_KEY_BYTES: usize = 1024;

/// Bounds the number of values visited and the text built while walking an object tree.
#[derive(Debug)]
pub(crate) struct Budget {
    visits: u64,
    text: u64,
}

impl Budget {
    /// A budget for walking the tree of a pickle of `pickle_len` bytes.
    pub(crate) fn for_pickle(pickle_len: u64) -> Self {
        Self {
            visits: pickle_len
                .saturating_mul(VISITS_PER_PICKLE_BYTE)
                .saturating_add(VISIT_FLOOR),
            text: pickle_len
                .saturating_mul(TEXT_PER_PICKLE_BYTE)
                .saturating_add(TEXT_FLOOR),
        }
    }

    /// Accounts for one visited value at `depth`.
    pub(crate) fn visit(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(ConvertError::TooLarge(format!(
                "object tree nested deeper than {MAX_DEPTH} levels (cyclic?)"
            )));
        }
        self.visits = self
            .visits
            .checked_sub(1)
            .ok_or_else(|| ConvertError::TooLarge("object tree references shared values too many times".into()))?;
        Ok(())
    }

    /// Accounts for `bytes` of text (or JSON) built.
    pub(crate) fn text(&mut self, bytes: usize) -> Result<()> {
        self.text = self.text.checked_sub(bytes as u64).ok_or_else(|| {
            ConvertError::TooLarge("keys and options take far more text than the pickle holds (shared values?)".into())
        })?;
        Ok(())
    }
}

fn key_too_long(key: &Value) -> ConvertError {
    ConvertError::TooLarge(format!(
        "a key is longer than {MAX_KEY_BYTES} bytes: {}",
        key.describe()
    ))
}

/// The string used for a dict key in a flattened tensor key or a JSON object key; refused if
/// longer than [`MAX_KEY_BYTES`]. The work done is bounded by that length, whatever the key.
pub(crate) fn key_string(key: &Value) -> Result<String> {
    if let Value::Str(s) = key {
        if s.len() > MAX_KEY_BYTES {
            return Err(key_too_long(key));
        }
        return Ok(s.to_string());
    }
    let mut out = Bounded::new(MAX_KEY_BYTES);
    if write_key(key, &mut out).is_err() || out.was_cut() {
        return Err(key_too_long(key));
    }
    Ok(out.finish())
}

/// Writes a key component; a tuple as `(a, b)` with at most its first 16 items. Each call writes
/// at least one byte before recursing into a tuple, so a bounded writer stops it early.
fn write_key(key: &Value, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    match key {
        Value::Str(s) => out.write_str(s),
        Value::Int(i) => write!(out, "{i}"),
        Value::Bool(b) => out.write_str(if *b { "True" } else { "False" }),
        Value::None => out.write_str("None"),
        Value::Float(f) => write!(out, "{f}"),
        Value::BigInt(bytes) if bytes.len() <= MAX_KEY_BYTES => out.write_str(&big_int_string(bytes)),
        Value::Bytes(b) if b.len() <= MAX_KEY_BYTES => out.write_str(&String::from_utf8_lossy(b)),
        Value::BigInt(_) | Value::Bytes(_) => Err(std::fmt::Error),
        Value::Tuple(items) => {
            out.write_str("(")?;
            for (i, item) in items.iter().take(16).enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_key(item, out)?;
            }
            out.write_str(")")
        }
        other => out.write_str(other.type_name()),
    }
}

/// A key for a message: the key's string if it is short, else its bounded description.
pub(crate) fn key_label(key: &Value) -> String {
    match key_string(key) {
        Ok(s) if s.len() <= MAX_DESCRIPTION_BYTES => s,
        Ok(s) => format!("{}…", prefix(&s, MAX_DESCRIPTION_BYTES)),
        Err(_) => key.describe(),
    }
}

/// Decimal for integers that fit in 128 bits, hexadecimal two's complement beyond.
fn big_int_string(le_bytes: &[u8]) -> String {
    if le_bytes.len() <= 16 {
        let negative = le_bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut buf = if negative { [0xff; 16] } else { [0; 16] };
        buf[..le_bytes.len()].copy_from_slice(le_bytes);
        return i128::from_le_bytes(buf).to_string();
    }
    let hex: String = le_bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
    format!("0x{hex}")
}

/// Renders `value` as JSON. Python containers become arrays/objects; values with no JSON
/// equivalent (tensors, non-finite floats, huge ints, bytes) become descriptive strings.
pub(crate) fn to_json(value: &Value, arena: &Arena, budget: &mut Budget, depth: usize) -> Result<Json> {
    budget.visit(depth)?;
    budget.text(JSON_NODE_BYTES)?;
    Ok(match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::BigInt(bytes) => {
            budget.text(bytes.len().saturating_mul(2).saturating_add(2))?;
            Json::String(big_int_string(bytes))
        }
        Value::Float(f) => match Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => Json::String(python_float_repr(*f)),
        },
        Value::Str(s) => {
            budget.text(s.len())?;
            Json::String(s.to_string())
        }
        Value::Bytes(b) => {
            // Invalid UTF-8 bytes become 3-byte replacement characters.
            budget.text(b.len().saturating_mul(3))?;
            Json::String(String::from_utf8_lossy(b).into_owned())
        }
        Value::Tuple(items) => Json::Array(
            items
                .iter()
                .map(|v| to_json(v, arena, budget, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Value::List(id) => match arena.get(*id) {
            Obj::List(items) => Json::Array(
                items
                    .iter()
                    .map(|v| to_json(v, arena, budget, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            _ => Json::Null,
        },
        Value::Dict(_) | Value::Object(_) => {
            let mut map = Map::new();
            if let Some(dict) = arena.dict_of(value) {
                for (k, v) in dict.iter() {
                    let key = key_string(k)?;
                    budget.text(key.len())?;
                    map.insert(key, to_json(v, arena, budget, depth + 1)?);
                }
            }
            Json::Object(map)
        }
        Value::Global(g) => charged(g.python_name(), budget)?,
        Value::Storage(s) => charged(format!("storage({}, {})", s.dtype, s.numel), budget)?,
        Value::Tensor(t) => charged(format!("tensor({}, {:?})", t.dtype(), t.shape), budget)?,
    })
}

/// A JSON string of a short description (at most a few hundred bytes), charged to `budget`.
fn charged(text: String, budget: &mut Budget) -> Result<Json> {
    budget.text(text.len())?;
    Ok(Json::String(text))
}

fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded() {
        let long = Value::Str("k".repeat(MAX_KEY_BYTES + 1).into());
        assert!(matches!(key_string(&long), Err(ConvertError::TooLarge(_))));
        assert!(key_label(&long).len() < 2 * MAX_DESCRIPTION_BYTES);
        let mut key = Value::Int(7);
        for _ in 0..40 {
            let t = crate::pickle::Tuple::new(vec![key.clone(), key]).unwrap();
            key = Value::Tuple(t);
        }
        assert!(matches!(key_string(&key), Err(ConvertError::TooLarge(_))));
        let mut budget = Budget::for_pickle(0);
        budget.text(TEXT_FLOOR as usize).unwrap();
        assert!(matches!(budget.text(1), Err(ConvertError::TooLarge(_))));
    }

    #[test]
    fn keys_and_big_ints() {
        assert_eq!(key_string(&Value::Int(-3)).unwrap(), "-3");
        assert_eq!(big_int_string(&[0xff; 10]), "-1");
        assert_eq!(
            big_int_string(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]),
            "119547037146038801333356"
        );
        let arena = Arena::default();
        let mut budget = Budget::for_pickle(0);
        assert_eq!(
            to_json(&Value::Float(f64::NAN), &arena, &mut budget, 0).unwrap(),
            Json::String("nan".into())
        );
    }
}
