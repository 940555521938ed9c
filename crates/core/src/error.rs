//! The error type of every network crate of the workspace.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a network: files, weights, configurations
/// and inputs. Bad input never panics; every variant names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
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
    /// A readable file that is not what it should be: a converted checkpoint of another kind,
    /// missing or malformed metadata, a saved inversion of another format.
    #[error("{path}: {reason}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
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
    /// A tensor holds NaN or an infinity (a corrupt or badly exported file).
    #[error("weight `{key}` holds a non-finite value ({value}) at index {index}")]
    NonFinite {
        /// Full key, prefix included.
        key: String,
        /// Position of the first non-finite value, row-major.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The weights hold tensors the network does not have: a wrong checkpoint or config.
    #[error("unexpected weights under `{prefix}`: {keys:?}")]
    UnexpectedKeys {
        /// The prefix that was loaded.
        prefix: String,
        /// Keys that nothing consumed (at most the first 20).
        keys: Vec<String>,
    },
    /// A name this project does not know: an encoder or hypernetwork class of a checkpoint, a
    /// domain, a precision, a conv strategy, a checkpoint kind.
    #[error("unknown {what} `{name}` (expected {expected})")]
    Unknown {
        /// What was named (`encoder type`, `domain`, ...).
        what: &'static str,
        /// The name given.
        name: String,
        /// The names that are known.
        expected: String,
    },
    /// A configuration that describes no valid network.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Arguments of a call that do not fit the network (shapes, list lengths, counts).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// [`Error::Unknown`] for `name`, listing the `expected` names.
    pub fn unknown(what: &'static str, name: &str, expected: &[&str]) -> Self {
        Error::Unknown {
            what,
            name: name.to_string(),
            expected: expected.join(", "),
        }
    }

    /// [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The item of `all` whose `name` is `name`, or [`Error::Unknown`] listing every name: how the
/// workspace parses the names of its enums (`FromStr`).
pub fn parse_name<T: Copy>(
    what: &'static str,
    name: &str,
    all: &[T],
    name_of: impl Fn(T) -> &'static str,
) -> Result<T> {
    all.iter().copied().find(|t| name_of(*t) == name).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|t| name_of(*t)).collect();
        Error::unknown(what, name, &names)
    })
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
