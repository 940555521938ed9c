//! Errors of the facade: image I/O and everything the network crates report.

use std::path::PathBuf;

/// Errors of the `hyperstyle` facade.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The generator (or its weights) reported an error.
    #[error(transparent)]
    Generator(#[from] hyperstyle_stylegan2::Error),
    /// An image file could not be read or written.
    #[error("{path}: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What the image codec reported.
        #[source]
        source: image::ImageError,
    },
    /// A tensor that cannot be turned into an image (wrong rank or channel count).
    #[error("invalid image tensor: {0}")]
    InvalidImageTensor(String),
}

/// Result with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
