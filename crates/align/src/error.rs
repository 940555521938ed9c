//! The error type of face alignment.

use std::path::PathBuf;

/// Everything that can go wrong detecting, landmarking and aligning faces. Bad input never
/// panics; every variant says what was wrong.
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
    /// A model file (shape predictor or face detector) that is not in dlib's serialisation
    /// format, is truncated, or describes an inconsistent model.
    #[error("{path}: not a valid dlib {what}: {reason}")]
    InvalidModel {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What the file should have held (`shape_predictor`, `frontal face detector`).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An image file that cannot be decoded, or an image too small or too large to align.
    #[error("{path}: {reason}")]
    BadImage {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The face detector found no face in the image.
    #[error("{path}: no face found")]
    NoFace {
        /// The image file (or `<memory>`).
        path: PathBuf,
    },
    /// Arguments that do not fit: landmark counts, output sizes, rectangles.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Sets the file name of a [`Error::NoFace`], [`Error::BadImage`] or
    /// [`Error::InvalidModel`] that was raised for an in-memory input.
    pub fn with_path(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        match self {
            Error::NoFace { .. } => Error::NoFace { path },
            Error::BadImage { reason, .. } => Error::BadImage { path, reason },
            Error::InvalidModel { what, reason, .. } => Error::InvalidModel { path, what, reason },
            other => other,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The path used in errors about inputs that came from memory.
pub(crate) fn memory() -> PathBuf {
    PathBuf::from("<memory>")
}
