//! The allow-list of Python globals a checkpoint may reference.
//!
//! A pickle names Python callables (`GLOBAL module name`) and asks the unpickler to call them
//! (`REDUCE`). Python's unpickler imports and calls whatever it is told, which is how a `.pt` file
//! can run `posix.system`. This crate never calls anything: each allowed global maps to a
//! [`Global`] variant with a fixed, data-only meaning implemented in Rust, and any other global is
//! refused the moment the pickle names it, before anything else happens.

use crate::dtype::DType;
use crate::error::{ConvertError, Result};
use crate::pickle::{prefix, MAX_DESCRIPTION_BYTES};

/// An allow-listed global, with the meaning the unpickler gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    /// `torch._utils._rebuild_tensor_v2`: a tensor view of a storage.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor`: the pre-1.0 form of the same.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter`: an `nn.Parameter` wrapping a tensor.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`: the same, with Python attributes.
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2`: a tensor subclass (e.g. `Parameter`) wrapping a
    /// rebuilt tensor.
    RebuildFromTypeV2,
    /// A typed storage class (`torch.FloatStorage`, ...), used in persistent ids.
    Storage(DType),
    /// `torch.Tensor`, only as the type argument of `_rebuild_from_type_v2`.
    TensorClass,
    /// `torch.nn.parameter.Parameter`, only as the type argument of `_rebuild_from_type_v2`.
    ParameterClass,
    /// `collections.OrderedDict`: a state dict.
    OrderedDict,
    /// `argparse.Namespace`: training options of some checkpoints.
    Namespace,
    /// `builtins.set` (protocol 2 pickles sets by calling it on a list).
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// `_codecs.encode`: protocol 2's way of pickling `bytes` (`encode(text, "latin1")`).
    CodecsEncode,
    /// `torch.device`: becomes its string form (`cuda:0`).
    Device,
}

/// `(module, name, meaning)` for every allowed global. `__builtin__` is the Python 2 spelling
/// that protocol-2 pickles use for `builtins`.
const ALLOWED: &[(&str, &str, Global)] = &[
    ("torch._utils", "_rebuild_tensor_v2", Global::RebuildTensorV2),
    ("torch._utils", "_rebuild_tensor", Global::RebuildTensor),
    ("torch._utils", "_rebuild_parameter", Global::RebuildParameter),
    (
        "torch._utils",
        "_rebuild_parameter_with_state",
        Global::RebuildParameterWithState,
    ),
    ("torch._tensor", "_rebuild_from_type_v2", Global::RebuildFromTypeV2),
    ("torch", "Tensor", Global::TensorClass),
    ("torch.nn.parameter", "Parameter", Global::ParameterClass),
    ("torch", "BoolStorage", Global::Storage(DType::Bool)),
    ("torch", "ByteStorage", Global::Storage(DType::U8)),
    ("torch", "CharStorage", Global::Storage(DType::I8)),
    ("torch", "ShortStorage", Global::Storage(DType::I16)),
    ("torch", "IntStorage", Global::Storage(DType::I32)),
    ("torch", "LongStorage", Global::Storage(DType::I64)),
    ("torch", "HalfStorage", Global::Storage(DType::F16)),
    ("torch", "BFloat16Storage", Global::Storage(DType::BF16)),
    ("torch", "FloatStorage", Global::Storage(DType::F32)),
    ("torch", "DoubleStorage", Global::Storage(DType::F64)),
    ("torch", "device", Global::Device),
    ("collections", "OrderedDict", Global::OrderedDict),
    ("argparse", "Namespace", Global::Namespace),
    ("builtins", "set", Global::Set),
    ("builtins", "frozenset", Global::FrozenSet),
    ("__builtin__", "set", Global::Set),
    ("__builtin__", "frozenset", Global::FrozenSet),
    ("_codecs", "encode", Global::CodecsEncode),
];

/// Resolves `module.name`, refusing anything not on the allow-list with
/// [`ConvertError::ForbiddenGlobal`] (which shows at most the first
/// [`MAX_DESCRIPTION_BYTES`] bytes of each part, then `…`).
pub fn resolve(module: &str, name: &str) -> Result<Global> {
    let shown = |s: &str| {
        if s.len() <= MAX_DESCRIPTION_BYTES {
            s.to_string()
        } else {
            format!("{}…", prefix(s, MAX_DESCRIPTION_BYTES))
        }
    };
    ALLOWED
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
        .map(|(_, _, g)| *g)
        .ok_or_else(|| ConvertError::ForbiddenGlobal {
            module: shown(module),
            name: shown(name),
        })
}

impl Global {
    /// The dotted Python name (for messages and JSON renderings of option values).
    pub fn python_name(self) -> String {
        ALLOWED
            .iter()
            .find(|(_, _, g)| *g == self)
            .map(|(m, n, _)| format!("{m}.{n}"))
            .unwrap_or_else(|| format!("{self:?}"))
    }

    /// Whether this global turns its arguments into a tensor.
    pub fn rebuilds_tensor(self) -> bool {
        matches!(
            self,
            Global::RebuildTensorV2
                | Global::RebuildTensor
                | Global::RebuildParameter
                | Global::RebuildParameterWithState
                | Global::RebuildFromTypeV2
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_code_execution_globals() {
        for (m, n) in [
            ("posix", "system"),
            ("os", "system"),
            ("builtins", "eval"),
            ("torch.storage", "_load_from_bytes"),
        ] {
            match resolve(m, n) {
                Err(ConvertError::ForbiddenGlobal { module, name }) => {
                    assert_eq!((module.as_str(), name.as_str()), (m, n))
                }
                other => panic!("{m}.{n} was not refused: {other:?}"),
            }
        }
        assert_eq!(resolve("torch", "HalfStorage").unwrap(), Global::Storage(DType::F16));
        let long = "m".repeat(1000);
        match resolve(&long, "x") {
            Err(ConvertError::ForbiddenGlobal { module, .. }) => {
                assert_eq!(module, format!("{}…", &long[..MAX_DESCRIPTION_BYTES]))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Global::OrderedDict.python_name(), "collections.OrderedDict");
    }
}
