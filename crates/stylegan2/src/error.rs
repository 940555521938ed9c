//! Errors of the generator crate.

use std::path::PathBuf;

/// Everything that can go wrong loading or running the generator. Bad input never panics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A weight file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A weight file is not valid safetensors (corrupt, truncated, bad header).
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// A tensor the network needs is not in the weights.
    #[error("missing weight `{key}`")]
    MissingKey {
        /// Full key, prefix included.
        key: String,
    },
    /// A tensor has another shape than the configuration implies.
    #[error("weight `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Full key, prefix included.
        key: String,
        /// Shape implied by the configuration.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype that cannot hold network weights (integers, booleans, ...).
    #[error("weight `{key}` has dtype {found}, expected a float type (F32, F16, BF16 or F64)")]
    UnsupportedDtype {
        /// Full key, prefix included.
        key: String,
        /// The dtype in the file.
        found: String,
    },
    /// The weights hold tensors the network does not have: a wrong checkpoint or config.
    #[error("unexpected weights under `{prefix}`: {keys:?}")]
    UnexpectedKeys {
        /// The prefix that was loaded.
        prefix: String,
        /// Keys that nothing consumed (at most the first 20).
        keys: Vec<String>,
    },
    /// A configuration that describes no valid generator.
    #[error("invalid generator configuration: {0}")]
    InvalidConfig(String),
    /// Arguments of a forward call that do not fit the network (shapes, list lengths).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
