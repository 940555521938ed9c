//! Errors of the encoders crate.

/// Everything that can go wrong loading or running an encoder. Bad input never panics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the weights failed: a missing key, a wrong shape or dtype, keys the network does
    /// not have, an unreadable file. The inner error names the key (and the shapes).
    #[error(transparent)]
    Weights(#[from] hyperstyle_stylegan2::Error),
    /// A ReStyle checkpoint's `encoder_type` names an encoder class this crate does not have.
    #[error("unknown encoder type `{0}`: expected `ProgressiveBackboneEncoder` or `ResNetProgressiveBackboneEncoder`")]
    UnknownEncoderType(String),
    /// A configuration that describes no valid encoder (e.g. zero style rows).
    #[error("invalid encoder configuration: {0}")]
    InvalidConfig(String),
    /// An input the network cannot take (wrong channel count, empty or too large image).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
