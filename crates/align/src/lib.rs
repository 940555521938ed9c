//! Face alignment as upstream HyperStyle prepares its inputs, in pure Rust.
//!
//! Upstream (`scripts/align_faces_parallel.py`) finds faces with dlib's HOG frontal face
//! detector, places 68 landmarks with dlib's shape predictor and crops the FFHQ way. This crate
//! reproduces each step with the same arithmetic:
//!
//! * [`ShapePredictor`]: dlib's ensemble of regression trees, read from its `.dat` files
//!   (`shape_predictor_68_face_landmarks.dat`).
//! * [`align_face`]: the FFHQ crop from 68 landmarks, with Pillow's Lanczos resize and QUAD
//!   transform and SciPy's Gaussian blur of the padding reproduced exactly.
//! * [`FaceDetector`]: dlib's HOG frontal face detector, read from a serialised
//!   `frontal_face_detector`.
//! * [`FaceAligner`]: all three for whole photos, with a choice of faces ([`FaceSelection`]).
//! * [`dlib_format`]: dlib's serialisation format.
//!
//! Errors are [`Error`]: unreadable or malformed model files, bad images, a photo without a
//! face ([`Error::NoFace`]).

#![warn(missing_docs)]

mod align;
mod aligner;
mod detector;
pub mod dlib_format;
mod error;
pub mod ndimage;
pub mod pil;
mod raster;
mod shape_predictor;

pub use align::{align_face, face_quad, AlignOptions, FaceQuad};
pub use aligner::{AlignedFace, FaceAligner, FaceSelection};
pub use detector::{Detection, FaceDetector};
pub use error::{Error, Result};
pub use raster::{decode_rgb, load_rgb, GrayImage, Rect, MAX_SIDE};
pub use shape_predictor::{CascadeLevel, Point, RegressionTree, ShapePredictor, Split};
