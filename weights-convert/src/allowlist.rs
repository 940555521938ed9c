//! The allow-list of Python globals a checkpoint may reference.
//!
//! A pickle names Python callables (`GLOBAL module name`) and asks the unpickler to call them
//! (`REDUCE`). Python's unpickler imports and calls whatever it is told, which is how a `.pt` file
//! can run `posix.system`. This crate never calls anything: each allowed global maps to a
//! [`Global`] variant with a fixed, data-only meaning implemented in Rust, and any other global is
//! refused the moment the pickle names it, before anything else happens.
//!
//! Besides torch's tensor machinery the list holds the three numpy globals a pickled `float32` or
//! `float64` array needs (StyleCLIP's `S_mean_std`), each accepted only with the exact arguments
//! and state numpy writes, and, inside TorchScript archives only, the `__torch__.*` module
//! classes, whose instances are plain attribute dicts here.

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
    /// `numpy.core.multiarray._reconstruct` (numpy 2: `numpy._core.multiarray`): an empty
    /// array, only as `_reconstruct(numpy.ndarray, (0,), b'b')`, that `BUILD` then fills.
    NumpyReconstruct,
    /// `numpy.ndarray`, only as the first argument of `_reconstruct`.
    NumpyArrayClass,
    /// `numpy.dtype`: only `dtype('f4' | 'f8', False, True)`, then `BUILD` with a little-endian
    /// state.
    NumpyDType,
    /// A TorchScript module class (`__torch__.model.CLIP`, `__torch__.torch.nn.modules.linear
    /// .Linear`, ...), allowed only in TorchScript archives. Its instances are inert attribute
    /// dicts: nothing of the class (its code lives in the archive's `code/`) is ever run.
    ScriptClass,
}

/// Which globals besides the fixed allow-list a pickle may name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// TorchScript module classes ([`Global::ScriptClass`]): the `data.pkl` of a
    /// `torch.jit.save` archive.
    pub script_classes: bool,
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
    ("numpy.core.multiarray", "_reconstruct", Global::NumpyReconstruct),
    ("numpy._core.multiarray", "_reconstruct", Global::NumpyReconstruct),
    ("numpy", "ndarray", Global::NumpyArrayClass),
    ("numpy", "dtype", Global::NumpyDType),
];

/// The module of TorchScript classes, and the namespace of custom C++ classes under it (whose
/// objects are rebuilt by native `__setstate__` code; refused).
const SCRIPT_MODULE: &str = "__torch__";
const SCRIPT_CUSTOM_CLASSES: &str = "__torch__.torch.classes";

/// Whether `module.name` is a TorchScript module class: `__torch__` or a dotted path below it
/// (not the custom C++ classes), and plain identifiers throughout.
fn is_script_class(module: &str, name: &str) -> bool {
    let identifier = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let below = module == SCRIPT_MODULE
        || module
            .strip_prefix(SCRIPT_MODULE)
            .is_some_and(|rest| rest.starts_with('.'));
    below
        && !(module == SCRIPT_CUSTOM_CLASSES || module.starts_with(&format!("{SCRIPT_CUSTOM_CLASSES}.")))
        && module.split('.').all(identifier)
        && identifier(name)
}

/// Resolves `module.name`, refusing anything not on the allow-list with
/// [`ConvertError::ForbiddenGlobal`] (which shows at most the first
/// [`MAX_DESCRIPTION_BYTES`] bytes of each part, then `…`).
pub fn resolve(module: &str, name: &str) -> Result<Global> {
    resolve_with(module, name, Extensions::default())
}

/// [`resolve`], also accepting the globals that `extensions` enables.
pub fn resolve_with(module: &str, name: &str, extensions: Extensions) -> Result<Global> {
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
        .or_else(|| (extensions.script_classes && is_script_class(module, name)).then_some(Global::ScriptClass))
        .ok_or_else(|| ConvertError::ForbiddenGlobal {
            module: shown(module),
            name: shown(name),
        })
}

impl Global {
    /// The dotted Python name (for messages and JSON renderings of option values).
    pub fn python_name(self) -> String {
        if self == Global::ScriptClass {
            return format!("{SCRIPT_MODULE}.<TorchScript class>");
        }
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

    #[test]
    fn script_classes_only_in_torchscript_archives() {
        let script = Extensions { script_classes: true };
        for (m, n) in [
            ("__torch__", "CLIP"),
            ("__torch__.torch.nn.modules.linear", "Linear"),
            ("__torch__.torch.nn.modules.container.___torch_mangle_11", "Sequential"),
        ] {
            assert_eq!(resolve_with(m, n, script).unwrap(), Global::ScriptClass, "{m}.{n}");
            assert!(
                matches!(resolve(m, n), Err(ConvertError::ForbiddenGlobal { .. })),
                "{m}.{n}"
            );
        }
        for (m, n) in [
            ("__torch__.torch.classes.quantized", "LinearPackedParamsBase"),
            ("__torch__.torch.classes", "X"),
            ("__torch__x", "CLIP"),
            ("__torch__.", "CLIP"),
            ("__torch__.a b", "CLIP"),
            ("__torch__", "os.system"),
            ("__torch__", ""),
            ("posix", "system"),
        ] {
            assert!(
                matches!(resolve_with(m, n, script), Err(ConvertError::ForbiddenGlobal { .. })),
                "{m}.{n} was accepted"
            );
        }
        assert_eq!(
            resolve("numpy._core.multiarray", "_reconstruct").unwrap(),
            resolve("numpy.core.multiarray", "_reconstruct").unwrap()
        );
        assert!(matches!(
            resolve("numpy._core.numeric", "_frombuffer"),
            Err(ConvertError::ForbiddenGlobal { .. })
        ));
    }
}
