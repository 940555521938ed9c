//! Errors of the facade: image I/O and everything the network crates report.

use std::path::PathBuf;

/// Errors of the `hyperstyle` facade.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The generator (or its weights) reported an error.
    #[error(transparent)]
    Generator(#[from] hyperstyle_stylegan2::Error),
    /// The W encoder reported an error.
    #[error(transparent)]
    Encoder(#[from] hyperstyle_encoders::Error),
    /// The hypernetwork reported an error.
    #[error(transparent)]
    Hypernet(#[from] hyperstyle_hypernet::Error),
    /// Arguments that do not fit the model (image sizes, batch shapes).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An image file could not be read or written.
    #[error("{path}: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What the image codec reported.
        #[source]
        source: image::ImageError,
    },
    /// An image file that cannot be used as an input.
    #[error("{path}: {reason}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// Why (empty file, too small, unsupported format, ...).
        reason: String,
    },
    /// A file that is not what it should be (e.g. not a saved inversion).
    #[error("{path}: {reason}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The device cannot compute at the requested precision, or its precision was fixed
    /// already (by an earlier call or by a tensor created on it).
    #[error("cannot use {precision} on this device: {reason}")]
    Precision {
        /// The requested precision.
        precision: crate::backend::Precision,
        /// What the backend reported.
        reason: String,
    },
    /// A tensor that cannot be turned into an image (wrong rank or channel count).
    #[error("invalid image tensor: {0}")]
    InvalidImageTensor(String),
}

/// Result with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
