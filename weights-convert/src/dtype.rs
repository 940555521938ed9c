//! Element types of PyTorch storages and their safetensors names, plus float casting.

use std::fmt;

use half::{bf16, f16};

/// The element types a checkpoint's storages can hold (the ones with a safetensors equivalent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// `torch.bool`.
    Bool,
    /// `torch.uint8`.
    U8,
    /// `torch.int8`.
    I8,
    /// `torch.int16`.
    I16,
    /// `torch.int32`.
    I32,
    /// `torch.int64`.
    I64,
    /// `torch.float16`.
    F16,
    /// `torch.bfloat16`.
    BF16,
    /// `torch.float32`.
    F32,
    /// `torch.float64`.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// The dtype name used in safetensors headers (`F32`, `BF16`, `I64`, ...).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::I16 => "I16",
            DType::I32 => "I32",
            DType::I64 => "I64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
        }
    }

    /// The PyTorch name (`torch.float32`), as `expected.json` and `--list` spell it.
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::Bool => "torch.bool",
            DType::U8 => "torch.uint8",
            DType::I8 => "torch.int8",
            DType::I16 => "torch.int16",
            DType::I32 => "torch.int32",
            DType::I64 => "torch.int64",
            DType::F16 => "torch.float16",
            DType::BF16 => "torch.bfloat16",
            DType::F32 => "torch.float32",
            DType::F64 => "torch.float64",
        }
    }

    /// The dtype of a legacy typed-storage class (`FloatStorage` → F32), by its name in `torch`.
    pub fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "BoolStorage" => DType::Bool,
            "ByteStorage" => DType::U8,
            "CharStorage" => DType::I8,
            "ShortStorage" => DType::I16,
            "IntStorage" => DType::I32,
            "LongStorage" => DType::I64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            _ => return None,
        })
    }

    /// Whether this is a floating-point type (the only ones `--dtype` casts).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.safetensors_name())
    }
}

/// Appends one element, given as little-endian bytes of type `from`, to `out` as type `to`.
///
/// Same-type copies are byte-exact (NaN payloads included). Float conversions go through f64,
/// which represents every f16/bf16/f32 value exactly, so each conversion rounds only once
/// (round-to-nearest-even). Only float-to-float conversions are requested by the converter;
/// anything else is copied unchanged.
pub(crate) fn convert_element(from: DType, bytes: &[u8], to: DType, out: &mut Vec<u8>) {
    if from == to || !from.is_float() || !to.is_float() {
        out.extend_from_slice(bytes);
        return;
    }
    let value = match decode_float(from, bytes) {
        Some(v) => v,
        None => {
            // Cannot happen (callers pass `from.size()` bytes); keep the output well-formed.
            out.extend(std::iter::repeat_n(0, to.size()));
            return;
        }
    };
    match to {
        DType::F16 => out.extend_from_slice(&f16::from_f64(value).to_le_bytes()),
        DType::BF16 => out.extend_from_slice(&bf16::from_f64(value).to_le_bytes()),
        DType::F32 => out.extend_from_slice(&(value as f32).to_le_bytes()),
        _ => out.extend_from_slice(&value.to_le_bytes()),
    }
}

fn decode_float(dtype: DType, bytes: &[u8]) -> Option<f64> {
    Some(match dtype {
        DType::F16 => f16::from_le_bytes(bytes.try_into().ok()?).to_f64(),
        DType::BF16 => bf16::from_le_bytes(bytes.try_into().ok()?).to_f64(),
        DType::F32 => f64::from(f32::from_le_bytes(bytes.try_into().ok()?)),
        DType::F64 => f64::from_le_bytes(bytes.try_into().ok()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_round_once() {
        let mut out = Vec::new();
        convert_element(DType::F32, &1.5f32.to_le_bytes(), DType::F16, &mut out);
        assert_eq!(out, f16::from_f32(1.5).to_le_bytes());

        // 1 + 2^-11 + 2^-30 must round up in a single rounding to f16 (through f32 it would
        // still be exact here, but f64 → f16 directly is the reference).
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-30);
        out.clear();
        convert_element(DType::F64, &x.to_le_bytes(), DType::F16, &mut out);
        assert_eq!(out, f16::from_f64(x).to_le_bytes());

        out.clear();
        convert_element(DType::I64, &7i64.to_le_bytes(), DType::F16, &mut out);
        assert_eq!(out, 7i64.to_le_bytes(), "integers are never cast");
    }

    #[test]
    fn storage_classes() {
        assert_eq!(DType::from_storage_class("BFloat16Storage"), Some(DType::BF16));
        assert_eq!(DType::from_storage_class("QInt8Storage"), None);
    }
}
