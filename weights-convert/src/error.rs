//! The error type of the crate.
//!
//! Every failure on untrusted input is reported through [`ConvertError`]; nothing in the reader
//! panics on bad bytes. The variants are coarse on purpose: callers (and the tests) match on
//! *what kind* of problem a file has, while the message carries the details.

use std::io;

/// Shorthand for results of this crate.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading a checkpoint or writing the safetensors file.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Reading the input or writing the output failed at the operating-system level.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done (`reading model.pt`, `writing out.safetensors`, ...).
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The input is neither a PyTorch zip archive nor a legacy `torch.save` stream.
    #[error("not a PyTorch checkpoint: {0}")]
    NotACheckpoint(String),

    /// The input ends before its own structure says it should (typically a cut download).
    #[error("truncated checkpoint: {0}")]
    Truncated(String),

    /// The zip container is inconsistent (bad signatures, entries outside the file, ...).
    #[error("malformed zip archive: {0}")]
    MalformedZip(String),

    /// The pickle uses an opcode this restricted unpickler does not implement.
    #[error("unsupported pickle opcode {name} (0x{opcode:02x}) at byte {offset} of the pickle")]
    UnsupportedOpcode {
        /// The opcode byte.
        opcode: u8,
        /// The opcode's name in Python's `pickletools` (or `unknown`).
        name: &'static str,
        /// Position of the opcode within its pickle stream.
        offset: u64,
    },

    /// The pickle references a global that is not on the allow-list. Loading it with Python's
    /// unpickler could run arbitrary code, so the whole file is refused.
    #[error(
        "refused global `{module}.{name}`: it is not on the allow-list of globals that \
         checkpoints legitimately use (loading it with Python could execute code)"
    )]
    ForbiddenGlobal {
        /// Module part of the global (`posix`).
        module: String,
        /// Name part of the global (`system`).
        name: String,
    },

    /// The pickle is structurally invalid (stack underflow, wrong argument types, ...).
    #[error("malformed pickle at byte {offset}: {reason}")]
    MalformedPickle {
        /// Position of the offending opcode within its pickle stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A pickled numpy array (or its dtype) is malformed or of a form this converter does not
    /// take: only C-ordered little-endian `float32`/`float64` arrays whose data has exactly
    /// `product(shape) × itemsize` bytes are read.
    #[error("refused numpy array at byte {offset} of the pickle: {reason}")]
    InvalidArray {
        /// Position of the opcode that built (or set the state of) the array.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A tensor's view does not fit its storage, or its storage is missing.
    #[error("invalid tensor `{key}`: {reason}")]
    InvalidTensor {
        /// Flattened key of the tensor.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// A well-formed checkpoint uses a feature this converter does not handle.
    #[error("unsupported checkpoint feature: {0}")]
    Unsupported(String),

    /// The kind of checkpoint could not be detected and none was given.
    #[error(
        "cannot tell what kind of checkpoint this is ({0}); pass --kind \
         (hyperstyle, w-encoder, restyle, stylegan2, direction, ganspace, alexnet, lpips, \
         arcface, styleclip-stats, clip, moco, resnet34)"
    )]
    UnknownKind(String),

    /// Two different tensors flatten to the same key, or a key is reserved.
    #[error("duplicate or reserved tensor key `{0}`")]
    DuplicateKey(String),

    /// The output names the input file (the same path, or a link to it): writing would destroy it.
    #[error("the output {0} is the input file; choose another output path")]
    OutputIsInput(std::path::PathBuf),

    /// A resource limit protecting against hostile files was hit.
    #[error("checkpoint exceeds a safety limit: {0}")]
    TooLarge(String),
}

impl ConvertError {
    /// Builds an [`ConvertError::Io`] with a short description of the operation.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        ConvertError::Io {
            context: context.into(),
            source,
        }
    }
}
