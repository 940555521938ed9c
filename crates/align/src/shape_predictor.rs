//! dlib's `shape_predictor`: a cascade of forests of regression trees that moves a mean shape
//! onto a face (Kazemi and Sullivan, "One Millisecond Face Alignment with an Ensemble of
//! Regression Trees", CVPR 2014), read from dlib's `.dat` files and evaluated with dlib's
//! arithmetic, so that the landmarks equal dlib's.
//!
//! Evaluation, for a detection rectangle `rect` (corners inclusive, as dlib's `rectangle`):
//!
//! 1. The shape starts as the model's mean shape, in coordinates where `rect`'s top-left corner
//!    is (0, 0) and its bottom-right corner (1, 1).
//! 2. For each cascade level: the similarity transform (least squares, Umeyama) from the mean
//!    shape to the current shape is found and rounded to `f32`; each feature pixel of the level,
//!    stored as an anchor landmark and an offset in mean-shape coordinates, is moved with the
//!    transform's linear part, added to the anchor's current position (`f32` arithmetic), mapped
//!    into the image by the rectangle and rounded to the nearest pixel (`floor(v + 0.5)`).
//!    Its value is the pixel's gray level, `(r + g + b) / 3` in integers, or 0 outside the image.
//!    Every tree of the level then compares pixel differences with its split thresholds, walks
//!    to a leaf and adds the leaf's vector to the shape.
//! 3. The landmarks are the final shape mapped into the image and rounded to whole pixels.

use std::path::Path;

use crate::dlib_format::{FormatError, Reader, Writer};
use crate::error::{memory, Error, Result};
use crate::raster::{GrayImage, Rect};

/// A split of a regression tree: go left when `pixel[idx1] − pixel[idx2] > thresh`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    /// Index of the first feature pixel of the cascade level.
    pub idx1: u32,
    /// Index of the second feature pixel.
    pub idx2: u32,
    /// Threshold on the difference of their intensities.
    pub thresh: f32,
}

/// A complete binary regression tree: `splits` in breadth-first order (node `i` has children
/// `2i + 1` and `2i + 2`), then one shape update per leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionTree {
    /// The split nodes.
    pub splits: Vec<Split>,
    /// One shape update (2 × number of landmarks values) per leaf; `splits.len() + 1` of them.
    pub leaf_values: Vec<Vec<f32>>,
}

impl RegressionTree {
    fn leaf(&self, features: &[f32]) -> &[f32] {
        let mut i = 0usize;
        while i < self.splits.len() {
            let s = &self.splits[i];
            i = if features[s.idx1 as usize] - features[s.idx2 as usize] > s.thresh {
                2 * i + 1
            } else {
                2 * i + 2
            };
        }
        &self.leaf_values[i - self.splits.len()]
    }
}

/// One cascade level: its trees and its feature pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct CascadeLevel {
    /// The trees, evaluated in order on the same feature pixels.
    pub trees: Vec<RegressionTree>,
    /// For each feature pixel: the landmark it is anchored to.
    pub anchors: Vec<u32>,
    /// For each feature pixel: its offset from the anchor in mean-shape coordinates.
    pub deltas: Vec<[f32; 2]>,
}

/// A landmark position in image pixels (dlib's `point`, integer coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Point {
    /// Column.
    pub x: i64,
    /// Row.
    pub y: i64,
}

/// dlib's `shape_predictor`: see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapePredictor {
    initial_shape: Vec<f32>,
    levels: Vec<CascadeLevel>,
}

const WHAT: &str = "shape_predictor";

impl ShapePredictor {
    /// A predictor from its parts, checked: `initial_shape` holds (x, y) pairs, every anchor
    /// names a landmark, every split names a feature pixel of its level, every tree is complete
    /// with one leaf more than splits and leaves of the shape's length.
    pub fn new(initial_shape: Vec<f32>, levels: Vec<CascadeLevel>) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidModel {
            path: memory(),
            what: WHAT,
            reason,
        };
        if initial_shape.is_empty() || initial_shape.len() % 2 != 0 {
            return Err(invalid(format!(
                "the initial shape has {} values (a positive even number is needed)",
                initial_shape.len()
            )));
        }
        let parts = initial_shape.len() / 2;
        for (l, level) in levels.iter().enumerate() {
            if level.anchors.len() != level.deltas.len() {
                return Err(invalid(format!(
                    "cascade level {l} has {} anchors but {} deltas",
                    level.anchors.len(),
                    level.deltas.len()
                )));
            }
            if let Some(a) = level.anchors.iter().find(|&&a| a as usize >= parts) {
                return Err(invalid(format!(
                    "cascade level {l}: anchor {a} but only {parts} landmarks"
                )));
            }
            let n = level.anchors.len();
            for (t, tree) in level.trees.iter().enumerate() {
                if tree.leaf_values.len() != tree.splits.len() + 1 || !tree.leaf_values.len().is_power_of_two() {
                    return Err(invalid(format!(
                        "cascade level {l}, tree {t}: {} splits and {} leaves (a complete tree is needed)",
                        tree.splits.len(),
                        tree.leaf_values.len()
                    )));
                }
                if tree.splits.iter().any(|s| s.idx1 as usize >= n || s.idx2 as usize >= n) {
                    return Err(invalid(format!(
                        "cascade level {l}, tree {t}: a split names a feature pixel beyond the {n} of the level"
                    )));
                }
                if tree.leaf_values.iter().any(|v| v.len() != initial_shape.len()) {
                    return Err(invalid(format!(
                        "cascade level {l}, tree {t}: a leaf is not of the shape's length {}",
                        initial_shape.len()
                    )));
                }
            }
        }
        Ok(ShapePredictor { initial_shape, levels })
    }

    /// Reads a predictor saved by dlib (`shape_predictor_68_face_landmarks.dat`, ...).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_dlib_bytes(&bytes).map_err(|e| e.with_path(path))
    }

    /// Reads a predictor from the bytes of a dlib `.dat` file.
    pub fn from_dlib_bytes(bytes: &[u8]) -> Result<Self> {
        let fail = |e: FormatError| Error::InvalidModel {
            path: memory(),
            what: WHAT,
            reason: e.0,
        };
        let mut r = Reader::new(bytes);
        let version = r.signed().map_err(fail)?;
        if version != 1 {
            return Err(Error::InvalidModel {
                path: memory(),
                what: WHAT,
                reason: format!("serialisation version {version} (1 expected)"),
            });
        }
        let (_, cols, initial_shape) = r.float_matrix().map_err(fail)?;
        if cols != 1 && !initial_shape.is_empty() {
            return Err(Error::InvalidModel {
                path: memory(),
                what: WHAT,
                reason: format!("the initial shape has {cols} columns (1 expected)"),
            });
        }
        let read_forests = |r: &mut Reader| -> std::result::Result<Vec<Vec<RegressionTree>>, FormatError> {
            let n_levels = r.length(1)?;
            let mut forests = Vec::with_capacity(n_levels);
            for _ in 0..n_levels {
                let n_trees = r.length(1)?;
                let mut trees = Vec::with_capacity(n_trees);
                for _ in 0..n_trees {
                    let n_splits = r.length(6)?;
                    let mut splits = Vec::with_capacity(n_splits);
                    for _ in 0..n_splits {
                        let idx1 = r.unsigned()?;
                        let idx2 = r.unsigned()?;
                        let thresh = r.float()?;
                        let idx = |v: u64| u32::try_from(v).map_err(|_| FormatError(format!("split index {v}")));
                        splits.push(Split {
                            idx1: idx(idx1)?,
                            idx2: idx(idx2)?,
                            thresh,
                        });
                    }
                    let n_leaves = r.length(4)?;
                    let mut leaf_values = Vec::with_capacity(n_leaves);
                    for _ in 0..n_leaves {
                        leaf_values.push(r.float_matrix()?.2);
                    }
                    trees.push(RegressionTree { splits, leaf_values });
                }
                forests.push(trees);
            }
            Ok(forests)
        };
        let forests = read_forests(&mut r).map_err(fail)?;
        let read_anchors = |r: &mut Reader| -> std::result::Result<Vec<Vec<u32>>, FormatError> {
            let n = r.length(1)?;
            let mut levels = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.length(2)?;
                let mut anchors = Vec::with_capacity(m);
                for _ in 0..m {
                    let v = r.unsigned()?;
                    anchors.push(u32::try_from(v).map_err(|_| FormatError(format!("anchor index {v}")))?);
                }
                levels.push(anchors);
            }
            Ok(levels)
        };
        let anchors = read_anchors(&mut r).map_err(fail)?;
        let read_deltas = |r: &mut Reader| -> std::result::Result<Vec<Vec<[f32; 2]>>, FormatError> {
            let n = r.length(1)?;
            let mut levels = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.length(4)?;
                let mut deltas = Vec::with_capacity(m);
                for _ in 0..m {
                    deltas.push([r.float()?, r.float()?]);
                }
                levels.push(deltas);
            }
            Ok(levels)
        };
        let deltas = read_deltas(&mut r).map_err(fail)?;
        if forests.len() != anchors.len() || forests.len() != deltas.len() {
            return Err(Error::InvalidModel {
                path: memory(),
                what: WHAT,
                reason: format!(
                    "{} cascade levels of trees, {} of anchors, {} of deltas",
                    forests.len(),
                    anchors.len(),
                    deltas.len()
                ),
            });
        }
        let levels = forests
            .into_iter()
            .zip(anchors)
            .zip(deltas)
            .map(|((trees, anchors), deltas)| CascadeLevel { trees, anchors, deltas })
            .collect();
        Self::new(initial_shape, levels)
    }

    /// The predictor in dlib's `.dat` format (what dlib's `serialize` writes).
    pub fn to_dlib_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.signed(1);
        w.float_column(&self.initial_shape);
        w.unsigned(self.levels.len() as u64);
        for level in &self.levels {
            w.unsigned(level.trees.len() as u64);
            for tree in &level.trees {
                w.unsigned(tree.splits.len() as u64);
                for s in &tree.splits {
                    w.unsigned(u64::from(s.idx1));
                    w.unsigned(u64::from(s.idx2));
                    w.float(s.thresh);
                }
                w.unsigned(tree.leaf_values.len() as u64);
                for leaf in &tree.leaf_values {
                    w.float_column(leaf);
                }
            }
        }
        w.unsigned(self.levels.len() as u64);
        for level in &self.levels {
            w.unsigned(level.anchors.len() as u64);
            for &a in &level.anchors {
                w.unsigned(u64::from(a));
            }
        }
        w.unsigned(self.levels.len() as u64);
        for level in &self.levels {
            w.unsigned(level.deltas.len() as u64);
            for d in &level.deltas {
                w.float(d[0]);
                w.float(d[1]);
            }
        }
        w.bytes
    }

    /// Number of landmarks (68 or 5 for dlib's face models).
    pub fn num_parts(&self) -> usize {
        self.initial_shape.len() / 2
    }

    /// The mean shape, (x, y) pairs in rectangle-normalised coordinates.
    pub fn initial_shape(&self) -> &[f32] {
        &self.initial_shape
    }

    /// The cascade levels.
    pub fn levels(&self) -> &[CascadeLevel] {
        &self.levels
    }

    /// A copy keeping the first `levels` cascade levels and the first `trees` trees of each (a
    /// smaller model for tests; it predicts worse landmarks than the whole model).
    pub fn truncated(&self, levels: usize, trees: usize) -> Self {
        ShapePredictor {
            initial_shape: self.initial_shape.clone(),
            levels: self
                .levels
                .iter()
                .take(levels)
                .map(|l| CascadeLevel {
                    trees: l.trees.iter().take(trees).cloned().collect(),
                    anchors: l.anchors.clone(),
                    deltas: l.deltas.clone(),
                })
                .collect(),
        }
    }

    /// The landmarks of the face in `rect` of `image` (a gray image as dlib derives it from
    /// RGB: [`GrayImage::from_rgb`]), as dlib's `shape_predictor::operator()` returns them.
    pub fn predict(&self, image: &GrayImage, rect: Rect) -> Vec<Point> {
        let mut shape = self.initial_shape.clone();
        let to_image = RectTransform::new(rect);
        let mut features = Vec::new();
        for level in &self.levels {
            let m = similarity_linear_part(&self.initial_shape, &shape);
            features.clear();
            features.extend(level.anchors.iter().zip(&level.deltas).map(|(&a, d)| {
                let a = a as usize;
                // float matrix times float vector, then plus the float anchor position.
                let vx = m[0] * d[0] + m[1] * d[1];
                let vy = m[2] * d[0] + m[3] * d[1];
                let px = vx + shape[2 * a];
                let py = vy + shape[2 * a + 1];
                let p = to_image.apply(px, py);
                image.get(p.x, p.y).map_or(0.0, f32::from)
            }));
            for tree in &level.trees {
                for (s, &v) in shape.iter_mut().zip(tree.leaf(&features)) {
                    *s += v;
                }
            }
        }
        shape.chunks_exact(2).map(|p| to_image.apply(p[0], p[1])).collect()
    }
}

/// dlib's `unnormalizing_tform(rect)`: (0, 0) → top-left corner, (1, 1) → bottom-right
/// corner, in double precision, rounded to the nearest pixel as dlib converts to `point`.
struct RectTransform {
    sx: f64,
    sy: f64,
    left: f64,
    top: f64,
}

impl RectTransform {
    fn new(rect: Rect) -> Self {
        RectTransform {
            sx: (rect.right - rect.left) as f64,
            sy: (rect.bottom - rect.top) as f64,
            left: rect.left as f64,
            top: rect.top as f64,
        }
    }

    fn apply(&self, x: f32, y: f32) -> Point {
        let fx = self.sx * f64::from(x) + self.left;
        let fy = self.sy * f64::from(y) + self.top;
        Point {
            x: (fx + 0.5).floor() as i64,
            y: (fy + 0.5).floor() as i64,
        }
    }
}

/// The linear part (row-major 2×2, rounded to `f32`) of the least-squares similarity transform
/// taking the points of `from` to those of `to`, both (x, y) pairs: dlib's
/// `find_similarity_transform` (Umeyama's method). For two dimensions the SVD of the
/// cross-covariance has the closed form used here: the optimal rotation and scale are
/// `[[a, −b], [b, a]] / σ²_from` with `a = c00 + c11`, `b = c10 − c01`.
fn similarity_linear_part(from: &[f32], to: &[f32]) -> [f32; 4] {
    let n = from.len() / 2;
    if n == 1 {
        return [1.0, 0.0, 0.0, 1.0];
    }
    let (mut mfx, mut mfy, mut mtx, mut mty) = (0f64, 0f64, 0f64, 0f64);
    for i in 0..n {
        mfx += f64::from(from[2 * i]);
        mfy += f64::from(from[2 * i + 1]);
        mtx += f64::from(to[2 * i]);
        mty += f64::from(to[2 * i + 1]);
    }
    let nf = n as f64;
    mfx /= nf;
    mfy /= nf;
    mtx /= nf;
    mty /= nf;
    let mut sigma_from = 0f64;
    let mut cov = [0f64; 4];
    for i in 0..n {
        let fx = f64::from(from[2 * i]) - mfx;
        let fy = f64::from(from[2 * i + 1]) - mfy;
        let tx = f64::from(to[2 * i]) - mtx;
        let ty = f64::from(to[2 * i + 1]) - mty;
        sigma_from += fx * fx + fy * fy;
        cov[0] += tx * fx;
        cov[1] += tx * fy;
        cov[2] += ty * fx;
        cov[3] += ty * fy;
    }
    sigma_from /= nf;
    for c in &mut cov {
        *c /= nf;
    }
    let a = cov[0] + cov[3];
    let b = cov[2] - cov[1];
    let norm = a.hypot(b);
    // Rotation (a, b) / norm and scale norm / σ²; with no spread dlib keeps scale 1.
    let (cos, sin) = if norm == 0.0 { (1.0, 0.0) } else { (a / norm, b / norm) };
    let scale = if sigma_from != 0.0 { norm / sigma_from } else { 1.0 };
    [
        (scale * cos) as f32,
        (-scale * sin) as f32,
        (scale * sin) as f32,
        (scale * cos) as f32,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ShapePredictor {
        let leaf = |v: f32| vec![v, -v, 0.5 * v, v];
        ShapePredictor::new(
            vec![0.25, 0.25, 0.75, 0.75],
            vec![CascadeLevel {
                trees: vec![RegressionTree {
                    splits: vec![Split {
                        idx1: 0,
                        idx2: 1,
                        thresh: 10.0,
                    }],
                    leaf_values: vec![leaf(0.1), leaf(-0.1)],
                }],
                anchors: vec![0, 1],
                deltas: vec![[0.0, 0.0], [0.0, 0.0]],
            }],
        )
        .unwrap()
    }

    #[test]
    fn round_trips_through_dlib_bytes() {
        let p = tiny();
        let q = ShapePredictor::from_dlib_bytes(&p.to_dlib_bytes()).unwrap();
        assert_eq!(p, q);
    }

    #[test]
    fn walks_the_tree_on_pixel_differences() {
        let p = tiny();
        // Landmark 0 sits at (25, 25), landmark 1 at (75, 75) for rect (0,0)-(100,100).
        let rect = Rect::new(0, 0, 100, 100);
        let mut img = GrayImage::new(101, 101);
        img.set(25, 25, 200);
        let pts = p.predict(&img, rect);
        // Left leaf: +0.1 on x0, -0.1 on y0, +0.05 on x1, +0.1 on y1.
        assert_eq!(pts, vec![Point { x: 35, y: 15 }, Point { x: 80, y: 85 }]);
        let pts = p.predict(&GrayImage::new(101, 101), rect);
        assert_eq!(pts, vec![Point { x: 15, y: 35 }, Point { x: 70, y: 65 }]);
    }

    #[test]
    fn similarity_of_a_rotated_scaled_shape() {
        let from = [0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0];
        // Rotate by 90° and scale by 2: (x, y) → (−2y, 2x), plus a shift.
        let to: Vec<f32> = from
            .chunks(2)
            .flat_map(|p| [-2.0 * p[1] + 5.0, 2.0 * p[0] - 1.0])
            .collect();
        let m = similarity_linear_part(&from, &to);
        for (a, b) in m.iter().zip([0.0, -2.0, 2.0, 0.0]) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        let bytes = tiny().to_dlib_bytes();
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(matches!(
                ShapePredictor::from_dlib_bytes(&bytes[..cut]),
                Err(Error::InvalidModel { .. })
            ));
        }
        let mut bad = bytes.clone();
        bad[1] = 2; // version 2
        assert!(matches!(
            ShapePredictor::from_dlib_bytes(&bad),
            Err(Error::InvalidModel { .. })
        ));
    }
}
