//! Errors of the hypernetwork crate.

/// Everything that can go wrong loading or running the hypernetwork.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading weights failed (missing / unexpected key, wrong shape or dtype, bad file).
    #[error(transparent)]
    Weights(#[from] hyperstyle_stylegan2::Error),
    /// The ResNet-34 backbone reported an error.
    #[error(transparent)]
    Encoder(#[from] hyperstyle_encoders::Error),
    /// The checkpoint names a hypernetwork variant this crate does not implement.
    #[error("unsupported hypernetwork type `{0}` (supported: SharedWeightsHyperNetResNet)")]
    UnsupportedEncoderType(String),
    /// A configuration that describes no hypernetwork.
    #[error("invalid hypernetwork configuration: {0}")]
    InvalidConfig(String),
    /// An input of the wrong shape.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
