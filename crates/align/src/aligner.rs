//! Detection, landmarks and alignment in one call: upstream's `align_face` for whole photos.

use std::path::Path;

use image::RgbImage;

use crate::align::{align_face, AlignOptions};
use crate::detector::{Detection, FaceDetector};
use crate::error::{memory, Error, Result};
use crate::raster::{load_rgb, GrayImage, Rect};
use crate::shape_predictor::{Point, ShapePredictor};

/// Which detected faces to align when a photo holds several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaceSelection {
    /// The last face in dlib's order (dlib sorts by descending confidence, so usually the
    /// least confident one): what upstream's `get_landmark` ends up with, since it loops over
    /// the detections and keeps the last shape. The default, so that outputs equal upstream's.
    #[default]
    Last,
    /// The face with the largest rectangle (ties: the earlier one in dlib's order).
    Largest,
    /// Every face, in dlib's order.
    All,
}

impl FaceSelection {
    /// Every selection, for parsing.
    pub const ALL: [FaceSelection; 3] = [FaceSelection::Last, FaceSelection::Largest, FaceSelection::All];

    /// The name used on command lines: `last`, `largest`, `all`.
    pub fn name(self) -> &'static str {
        match self {
            FaceSelection::Last => "last",
            FaceSelection::Largest => "largest",
            FaceSelection::All => "all",
        }
    }
}

impl std::str::FromStr for FaceSelection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        FaceSelection::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::InvalidInput(format!("unknown face selection `{s}` (expected last, largest or all)")))
    }
}

/// One aligned face.
#[derive(Debug, Clone)]
pub struct AlignedFace {
    /// The aligned image, `output_size` square.
    pub image: RgbImage,
    /// The detector's rectangle in the photo.
    pub rect: Rect,
    /// The detection's confidence (score above the filter's threshold).
    pub confidence: f64,
    /// The 68 landmarks in the photo.
    pub landmarks: Vec<Point>,
}

/// dlib's HOG face detector, the 68-point shape predictor and upstream's FFHQ crop.
#[derive(Debug, Clone)]
pub struct FaceAligner {
    detector: FaceDetector,
    predictor: ShapePredictor,
    /// Output sizes and padding of the crop (upstream: 1024, padded).
    pub options: AlignOptions,
    /// Which faces to align (default [`FaceSelection::Last`], upstream's behaviour).
    pub selection: FaceSelection,
    /// How many times the photo is upsampled ×2 before detection (upstream: 1).
    pub upsample: u32,
}

impl FaceAligner {
    /// An aligner from a detector and a 68-landmark predictor, with upstream's settings.
    pub fn new(detector: FaceDetector, predictor: ShapePredictor) -> Result<Self> {
        if predictor.num_parts() != 68 {
            return Err(Error::InvalidInput(format!(
                "the FFHQ alignment needs a 68-landmark predictor, this one has {} landmarks",
                predictor.num_parts()
            )));
        }
        Ok(FaceAligner {
            detector,
            predictor,
            options: AlignOptions::default(),
            selection: FaceSelection::default(),
            upsample: 1,
        })
    }

    /// Loads the detector (dlib's serialised `frontal_face_detector`) and the predictor
    /// (`shape_predictor_68_face_landmarks.dat`).
    pub fn load(detector: impl AsRef<Path>, predictor: impl AsRef<Path>) -> Result<Self> {
        Self::new(FaceDetector::load(detector)?, ShapePredictor::load(predictor)?)
    }

    /// The detector.
    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    /// The predictor.
    pub fn predictor(&self) -> &ShapePredictor {
        &self.predictor
    }

    /// The selected detections of `photo` with their landmarks, without aligning.
    pub fn landmarks(&self, photo: &RgbImage) -> Vec<(Detection, Vec<Point>)> {
        let dets = self.detector.detect(photo, self.upsample);
        let chosen: Vec<Detection> = match self.selection {
            FaceSelection::All => dets,
            FaceSelection::Last => dets.last().copied().into_iter().collect(),
            FaceSelection::Largest => dets
                .iter()
                .copied()
                .reduce(|best, d| if d.rect.area() > best.rect.area() { d } else { best })
                .into_iter()
                .collect(),
        };
        if chosen.is_empty() {
            return Vec::new();
        }
        let gray = GrayImage::from_rgb(photo);
        chosen
            .into_iter()
            .map(|d| (d, self.predictor.predict(&gray, d.rect)))
            .collect()
    }

    /// Aligns the selected faces of `photo`; [`Error::NoFace`] when there is none.
    pub fn align(&self, photo: &RgbImage) -> Result<Vec<AlignedFace>> {
        let found = self.landmarks(photo);
        if found.is_empty() {
            return Err(Error::NoFace { path: memory() });
        }
        found
            .into_iter()
            .map(|(d, landmarks)| {
                let lm: Vec<[f64; 2]> = landmarks.iter().map(|p| [p.x as f64, p.y as f64]).collect();
                Ok(AlignedFace {
                    image: align_face(photo, &lm, &self.options)?,
                    rect: d.rect,
                    confidence: d.confidence,
                    landmarks,
                })
            })
            .collect()
    }

    /// Reads a PNG or JPEG photo and aligns its faces; errors name the file.
    pub fn align_file(&self, path: impl AsRef<Path>) -> Result<Vec<AlignedFace>> {
        let path = path.as_ref();
        let photo = load_rgb(path)?;
        self.align(&photo).map_err(|e| e.with_path(path))
    }
}
