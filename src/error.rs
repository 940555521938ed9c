//! Errors of the facade: everything the network crates report, plus images, face alignment and
//! devices.

use std::path::PathBuf;

/// Errors of the `hyperstyle` facade.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Files, weights, configurations and inputs, as every crate of the workspace reports them
    /// (a missing key, a wrong shape, a file of the wrong kind, an input of the wrong size, ...).
    #[error(transparent)]
    Core(#[from] hyperstyle_core::Error),
    /// An image file could not be encoded or written by the image codec.
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
    /// The device cannot compute at the requested precision, or its precision was fixed
    /// already (by an earlier call or by a tensor created on it).
    #[error("cannot use {precision} on this device: {reason}")]
    Precision {
        /// The requested precision.
        precision: crate::backend::Precision,
        /// What the backend reported.
        reason: String,
    },
    /// The device reported a failure while running (e.g. when synchronising a GPU).
    #[error("device error: {0}")]
    Device(String),
    /// An external program the call needs (e.g. `ffmpeg` for MP4) is missing or failed.
    #[error("{program}: {reason}")]
    External {
        /// The program.
        program: String,
        /// What went wrong (not found, exit status, its error output).
        reason: String,
    },
    /// A tensor that cannot be turned into an image (wrong rank or channel count).
    #[error("invalid image tensor: {0}")]
    InvalidImageTensor(String),
    /// Face alignment ([`crate::align`]): a photo without a face
    /// ([`hyperstyle_align::Error::NoFace`], see [`Error::is_no_face`]), an unreadable or wrong
    /// model file (e.g. a 5-point shape predictor where the 68-point one is needed), a photo that
    /// cannot be decoded.
    #[error(transparent)]
    Align(#[from] hyperstyle_align::Error),
    /// Training data ([`crate::training::data`]): a folder without images, an image that does
    /// not decode, a missing latent code, mismatched source and target folders.
    #[error(transparent)]
    Data(#[from] crate::training::data::DataError),
}

/// Result with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`hyperstyle_core::Error::InvalidInput`] as a facade error.
pub(crate) fn invalid_input(reason: impl Into<String>) -> Error {
    Error::Core(hyperstyle_core::Error::InvalidInput(reason.into()))
}

/// [`hyperstyle_core::Error::InvalidFile`] as a facade error.
pub(crate) fn invalid_file(path: &std::path::Path, reason: impl Into<String>) -> Error {
    Error::Core(hyperstyle_core::Error::InvalidFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    })
}

impl Error {
    /// Whether this is [`hyperstyle_core::Error::InvalidInput`]: arguments that do not fit the
    /// model.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::Core(hyperstyle_core::Error::InvalidInput(_)))
    }

    /// Whether this is [`hyperstyle_align::Error::NoFace`]: face alignment found no face in a
    /// photo (a property of that photo, not of the models or the settings).
    pub fn is_no_face(&self) -> bool {
        matches!(self, Error::Align(hyperstyle_align::Error::NoFace { .. }))
    }
}
