//! Rendering unpickled Python values as JSON (for `opts` and `scalars`) and as key components.

use serde_json::{Map, Number, Value as Json};

use crate::error::{ConvertError, Result};
use crate::pickle::{Arena, Obj, Value};

/// Deepest nesting followed when walking an object tree. Real checkpoints nest a handful of
/// levels; anything deeper is hostile or cyclic (a list that contains itself).
pub(crate) const MAX_DEPTH: usize = 64;

/// Bounds the number of values visited while walking an object tree. Containers can be shared
/// (a memoised list referenced twice), so a small pickle can describe an exponentially large
/// tree; the budget, proportional to the pickle's size, refuses those.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: u64,
}

impl Budget {
    /// A budget for walking the tree of a pickle of `pickle_len` bytes.
    pub(crate) fn for_pickle(pickle_len: u64) -> Self {
        Self {
            remaining: pickle_len.saturating_mul(16).saturating_add(1 << 16),
        }
    }

    /// Accounts for one visited value at `depth`.
    pub(crate) fn visit(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(ConvertError::TooLarge(format!(
                "object tree nested deeper than {MAX_DEPTH} levels (cyclic?)"
            )));
        }
        self.remaining = self
            .remaining
            .checked_sub(1)
            .ok_or_else(|| ConvertError::TooLarge("object tree references shared containers too many times".into()))?;
        Ok(())
    }
}

/// The string used for a dict key in a flattened tensor key or a JSON object key.
pub(crate) fn key_string(key: &Value) -> String {
    match key {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::None => "None".to_string(),
        Value::Float(f) => f.to_string(),
        Value::BigInt(bytes) => big_int_string(bytes),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Tuple(items) => {
            let parts: Vec<String> = items.iter().take(16).map(key_string).collect();
            format!("({})", parts.join(", "))
        }
        other => other.type_name().to_string(),
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
    Ok(match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::BigInt(bytes) => Json::String(big_int_string(bytes)),
        Value::Float(f) => match Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => Json::String(python_float_repr(*f)),
        },
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
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
                    map.insert(key_string(k), to_json(v, arena, budget, depth + 1)?);
                }
            }
            Json::Object(map)
        }
        Value::Global(g) => Json::String(g.python_name()),
        Value::Storage(s) => Json::String(format!("storage({}, {})", s.dtype, s.numel)),
        Value::Tensor(t) => Json::String(format!("tensor({}, {:?})", t.dtype(), t.shape)),
    })
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
    fn keys_and_big_ints() {
        assert_eq!(key_string(&Value::Int(-3)), "-3");
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
