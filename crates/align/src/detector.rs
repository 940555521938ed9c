//! dlib's HOG frontal face detector (`dlib.get_frontal_face_detector()`): Felzenszwalb HOG
//! ("fhog") features on an image pyramid scanned by linear filters, as dlib's
//! `object_detector<scan_fhog_pyramid<pyramid_down<6>>>` computes it.
//!
//! Detection of an RGB photo with `upsample` = 1 (what upstream asks for):
//!
//! 1. The photo is upsampled ×2 with dlib's `pyramid_up` (bilinear; `(2h + 1) × (2w + 2)`
//!    pixels).
//! 2. An image pyramid: each level is the previous one resized to `⌊5/6⌋` of its size
//!    (bilinear), as long as the level's rectangle stays at least the model's minimum size.
//! 3. On each level, 31-plane fhog features in 8×8 cells: per pixel the colour channel with
//!    the strongest gradient, its orientation snapped to 18 directions and its magnitude
//!    spread bilinearly over 4 cells; then block normalisation (18 signed, 9 unsigned and 4
//!    texture features per cell).
//! 4. Each of the model's filters (5 for faces) is correlated with the 31 planes (separably,
//!    through the SVD of each plane's filter, when that is cheaper, as dlib does); every window
//!    whose score reaches the filter's threshold is a candidate, mapped back to the photo.
//! 5. Candidates of all filters sorted by score minus threshold, then greedy non-maximum
//!    suppression with the model's overlap test.
//!
//! Arithmetic follows dlib's (float32 where dlib uses float, including its SIMD paths' order of
//! operations). The SVD that splits filters into separable parts is computed here with a
//! Jacobi method rather than dlib's LAPACK-style routine, so scores can differ from dlib's in
//! their last bits; a detection could only change if a score lay that close to a threshold or
//! to another candidate's score.

use std::path::Path;

use image::RgbImage;

use crate::dlib_format::{FormatError, Reader, Writer};
use crate::error::{memory, Error, Result};
use crate::raster::Rect;

const WHAT: &str = "frontal face detector (object_detector<scan_fhog_pyramid<pyramid_down<6>>>)";
const PLANES: usize = 31;

/// One detection: the rectangle in photo pixels, its score above the filter's threshold and
/// which filter found it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// The face's rectangle (inclusive corners, as dlib's).
    pub rect: Rect,
    /// Filter response minus the filter's threshold (dlib's `detection_confidence`).
    pub confidence: f64,
    /// Index of the filter (0 to 4 for the face model: front, left, right, front rotated
    /// left, front rotated right).
    pub filter: usize,
}

/// One plane of a filter: its full `height × width` weights and its separable parts.
#[derive(Debug, Clone)]
struct PlaneFilter {
    full: Vec<f32>,
    rows: Vec<Vec<f32>>,
    cols: Vec<Vec<f32>>,
}

#[derive(Debug, Clone)]
struct Filter {
    weights: Vec<f64>,
    threshold: f64,
    planes: Vec<PlaneFilter>,
    separable: usize,
}

/// dlib's HOG face detector; see the module documentation.
#[derive(Debug, Clone)]
pub struct FaceDetector {
    cell_size: i64,
    padding: i64,
    window_width: u64,
    window_height: u64,
    max_pyramid_levels: u64,
    min_layer_width: u64,
    min_layer_height: u64,
    nuclear_norm: f64,
    iou_thresh: f64,
    covered_thresh: f64,
    /// Filter size in cells, padding included.
    fw: usize,
    fh: usize,
    filters: Vec<Filter>,
}

/// A plain RGB buffer, row-major.
#[derive(Clone)]
struct Rgb {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

impl Rgb {
    fn px(&self, r: usize, c: usize) -> [u8; 3] {
        let i = (r * self.w + c) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

fn lround(v: f64) -> i64 {
    v.round() as i64
}

impl FaceDetector {
    /// Reads a detector saved by dlib (`dlib.get_frontal_face_detector().save(path)` or the C++
    /// `serialize` of a `frontal_face_detector`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_dlib_bytes(&bytes).map_err(|e| e.with_path(path))
    }

    /// Reads a detector from the bytes of a dlib file.
    pub fn from_dlib_bytes(bytes: &[u8]) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidModel {
            path: memory(),
            what: WHAT,
            reason,
        };
        let fail = |e: FormatError| invalid(e.0);
        let mut r = Reader::new(bytes);
        let version = r.signed().map_err(fail)?;
        if version != 2 {
            return Err(invalid(format!("object_detector version {version} (2 expected)")));
        }
        let scanner_version = r.signed().map_err(fail)?;
        if scanner_version != 1 {
            return Err(invalid(format!(
                "scan_fhog_pyramid version {scanner_version} (1 expected)"
            )));
        }
        // The feature extractor has no state; the cached feature pyramid is an empty array.
        let _max_size = r.unsigned().map_err(fail)?;
        let cached = r.unsigned().map_err(fail)?;
        if cached != 0 {
            return Err(invalid("the file holds a cached feature pyramid (unsupported)".into()));
        }
        let cell_size = r.signed().map_err(fail)?;
        let padding = r.unsigned().map_err(fail)?;
        let window_width = r.unsigned().map_err(fail)?;
        let window_height = r.unsigned().map_err(fail)?;
        let max_pyramid_levels = r.unsigned().map_err(fail)?;
        let min_layer_width = r.unsigned().map_err(fail)?;
        let min_layer_height = r.unsigned().map_err(fail)?;
        let nuclear_norm = r.double().map_err(fail)?;
        let dims = r.signed().map_err(fail)?;
        let iou_thresh = r.double().map_err(fail)?;
        let covered_thresh = r.double().map_err(fail)?;
        let n_filters = r.length(2).map_err(fail)?;
        let mut weights = Vec::with_capacity(n_filters);
        for _ in 0..n_filters {
            let (_, cols, w) = r.double_matrix().map_err(fail)?;
            if cols != 1 {
                return Err(invalid(format!("a weight vector has {cols} columns")));
            }
            weights.push(w);
        }
        if !(2..=64).contains(&cell_size)
            || padding > 64
            || !(1..=4096).contains(&window_width)
            || !(1..=4096).contains(&window_height)
        {
            return Err(invalid(format!(
                "implausible configuration: cell size {cell_size}, padding {padding}, window {window_width}×{window_height}"
            )));
        }
        if max_pyramid_levels == 0 || min_layer_width == 0 || min_layer_height == 0 {
            return Err(invalid("zero pyramid limits".into()));
        }
        let (fw, fh) = window_size(cell_size, padding as i64, window_width, window_height);
        if fw == 0 || fh == 0 || dims != (fw * fh * PLANES) as i64 {
            return Err(invalid(format!(
                "{dims} dimensions recorded, {} implied by the window",
                fw * fh * PLANES
            )));
        }
        let filters = weights
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                if w.len() != fw * fh * PLANES + 1 {
                    return Err(invalid(format!(
                        "filter {i} has {} weights, {} expected",
                        w.len(),
                        fw * fh * PLANES + 1
                    )));
                }
                if w.iter().any(|v| !v.is_finite()) {
                    return Err(invalid(format!("filter {i} holds a non-finite weight")));
                }
                Ok(build_filter(w, fw, fh))
            })
            .collect::<Result<Vec<_>>>()?;
        if filters.is_empty() {
            return Err(invalid("no filters".into()));
        }
        Ok(FaceDetector {
            cell_size,
            padding: padding as i64,
            window_width,
            window_height,
            max_pyramid_levels,
            min_layer_width,
            min_layer_height,
            nuclear_norm,
            iou_thresh,
            covered_thresh,
            fw,
            fh,
            filters,
        })
    }

    /// dlib's frontal face detector (`dlib::get_frontal_face_detector()`), bundled with this
    /// crate: its weights as dlib serialises them, under dlib's Boost Software License
    /// (`models/LICENSE-dlib.txt`).
    pub fn dlib_frontal() -> Self {
        Self::from_dlib_bytes(include_bytes!("../models/frontal_face_detector.dat"))
            .expect("the bundled detector is valid")
    }

    /// The detector in dlib's format (what `serialize` of an `object_detector` writes).
    pub fn to_dlib_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.signed(2);
        w.signed(1);
        w.unsigned(0);
        w.unsigned(0);
        w.signed(self.cell_size);
        w.unsigned(self.padding as u64);
        w.unsigned(self.window_width);
        w.unsigned(self.window_height);
        w.unsigned(self.max_pyramid_levels);
        w.unsigned(self.min_layer_width);
        w.unsigned(self.min_layer_height);
        w.double(self.nuclear_norm);
        w.signed((self.fw * self.fh * PLANES) as i64);
        w.double(self.iou_thresh);
        w.double(self.covered_thresh);
        w.unsigned(self.filters.len() as u64);
        for f in &self.filters {
            w.double_matrix(f.weights.len(), 1, &f.weights);
        }
        w.bytes
    }

    /// Number of filters (5 for dlib's face detector).
    pub fn num_filters(&self) -> usize {
        self.filters.len()
    }

    /// The faces in `photo`, in dlib's order (descending confidence), after upsampling the photo
    /// `upsample` times by 2 (upstream uses 1: faces down to about 40 pixels are found).
    pub fn detect(&self, photo: &RgbImage, upsample: u32) -> Vec<Detection> {
        let mut img = Rgb {
            w: photo.width() as usize,
            h: photo.height() as usize,
            data: photo.as_raw().clone(),
        };
        if img.w == 0 || img.h == 0 {
            return Vec::new();
        }
        for _ in 0..upsample {
            img = pyramid_up2(&img);
        }
        let mut dets = self.detect_raw(&img);
        for d in &mut dets {
            for _ in 0..upsample {
                d.rect = rect_down2(d.rect);
            }
        }
        dets
    }

    fn detect_raw(&self, img: &Rgb) -> Vec<Detection> {
        // How many pyramid levels.
        let mut levels = 0u64;
        let mut rect = Rect::new(0, 0, img.w as i64 - 1, img.h as i64 - 1);
        loop {
            rect = rect_down6(rect);
            levels += 1;
            if !(rect.width() as u64 >= self.min_layer_width
                && rect.height() as u64 >= self.min_layer_height
                && levels < self.max_pyramid_levels)
            {
                break;
            }
        }
        let mut level_imgs = Vec::with_capacity(levels as usize);
        level_imgs.push(img.clone());
        for l in 1..levels as usize {
            let next = pyramid_down6(&level_imgs[l - 1]);
            level_imgs.push(next);
        }
        let feats = parallel_map(level_imgs.len(), |l| {
            fhog(&level_imgs[l], self.cell_size as usize, self.fh, self.fw)
        });
        drop(level_imgs);

        let (box_w, box_h) = (self.fw as i64 - 2 * self.padding, self.fh as i64 - 2 * self.padding);
        // Candidates of every (filter, level) pair, computed in parallel and gathered in dlib's
        // order (filter by filter, level by level, row by row).
        let n_levels = feats.len();
        let found = parallel_map(self.filters.len() * n_levels, |task| {
            let (fi, l) = (task / n_levels, task % n_levels);
            let filter = &self.filters[fi];
            let planes = &feats[l];
            let mut dets: Vec<(f32, Rect)> = Vec::new();
            let Some((sal, area)) = apply_filter(filter, planes, self.fw, self.fh) else {
                return dets;
            };
            let nc = planes.nc;
            for r in area.top..=area.bottom {
                for c in area.left..=area.right {
                    let s = sal[r as usize * nc + c as usize];
                    if f64::from(s) >= filter.threshold {
                        let cr = centered_rect(c, r, box_w, box_h);
                        let rect = fhog_to_image_rect(cr, self.cell_size, self.fh as i64, self.fw as i64);
                        dets.push((s, rect_up6(rect, l)));
                    }
                }
            }
            dets
        });
        let mut all = Vec::new();
        for (fi, filter) in self.filters.iter().enumerate() {
            let mut dets: Vec<(f32, Rect)> = found[fi * n_levels..(fi + 1) * n_levels].concat();
            // Descending score (dlib sorts in reverse with an unstable sort).
            dets.sort_by(|a, b| b.0.total_cmp(&a.0));
            all.extend(dets.into_iter().map(|(s, rect)| Detection {
                rect,
                confidence: f64::from(s) - filter.threshold,
                filter: fi,
            }));
        }
        if self.filters.len() > 1 {
            all.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        }
        let mut out: Vec<Detection> = Vec::new();
        for d in all {
            if out.iter().any(|k| self.overlaps(&k.rect, &d.rect)) {
                continue;
            }
            out.push(d);
        }
        out
    }

    /// dlib's `test_box_overlap`.
    fn overlaps(&self, a: &Rect, b: &Rect) -> bool {
        let inner = intersect(a, b).area() as f64;
        if inner == 0.0 {
            return false;
        }
        let outer = bounding(a, b).area() as f64;
        inner / outer > self.iou_thresh
            || inner / a.area() as f64 > self.covered_thresh
            || inner / b.area() as f64 > self.covered_thresh
    }
}

/// `(0..n).map(f)` on all cores (tasks handed out one at a time), results in order.
fn parallel_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let value = f(i);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(value);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|v| v.expect("every task ran"))
        .collect()
}

fn intersect(a: &Rect, b: &Rect) -> Rect {
    Rect::new(
        a.left.max(b.left),
        a.top.max(b.top),
        a.right.min(b.right),
        a.bottom.min(b.bottom),
    )
}

fn bounding(a: &Rect, b: &Rect) -> Rect {
    if a.is_empty() {
        return *b;
    }
    if b.is_empty() {
        return *a;
    }
    Rect::new(
        a.left.min(b.left),
        a.top.min(b.top),
        a.right.max(b.right),
        a.bottom.max(b.bottom),
    )
}

fn centered_rect(x: i64, y: i64, w: i64, h: i64) -> Rect {
    let left = x - w / 2;
    let top = y - h / 2;
    Rect::new(left, top, left + w - 1, top + h - 1)
}

/// dlib's `image_to_fhog` of a point (integer division truncates toward zero).
fn image_to_fhog(x: i64, y: i64, cell: i64, rows_pad: i64, cols_pad: i64) -> (i64, i64) {
    let (x, y) = (x - 1, y - 1);
    (x / cell - 1 + (cols_pad - 1) / 2, y / cell - 1 + (rows_pad - 1) / 2)
}

fn fhog_to_image(x: i64, y: i64, cell: i64, rows_pad: i64, cols_pad: i64) -> (i64, i64) {
    let px = (x + 1 - (cols_pad - 1) / 2) * cell + 1;
    let py = (y + 1 - (rows_pad - 1) / 2) * cell + 1;
    let ox = if px >= 0 { cell / 2 } else { -cell / 2 };
    let oy = if py >= 0 { cell / 2 } else { -cell / 2 };
    (px + ox, py + oy)
}

fn fhog_to_image_rect(r: Rect, cell: i64, rows_pad: i64, cols_pad: i64) -> Rect {
    let (l, t) = fhog_to_image(r.left, r.top, cell, rows_pad, cols_pad);
    let (rr, b) = fhog_to_image(r.right, r.bottom, cell, rows_pad, cols_pad);
    Rect::new(l, t, rr, b)
}

/// Filter size in cells (width, height), padding included: dlib's `compute_fhog_window_size`.
fn window_size(cell: i64, padding: i64, ww: u64, wh: u64) -> (usize, usize) {
    let r = centered_rect(0, 0, ww as i64, wh as i64);
    let (l, t) = image_to_fhog(r.left, r.top, cell, 1, 1);
    let (rr, b) = image_to_fhog(r.right, r.bottom, cell, 1, 1);
    let g = Rect::new(l - padding, t - padding, rr + padding, b + padding);
    (g.width().max(0) as usize, g.height().max(0) as usize)
}

fn rect_down6(r: Rect) -> Rect {
    let ratio = 5.0 / 6.0;
    let d = |v: i64| lround((v as f64 - 0.3) * ratio);
    Rect::new(d(r.left), d(r.top), d(r.right), d(r.bottom))
}

fn rect_up6(r: Rect, levels: usize) -> Rect {
    let ratio = 6.0 / 5.0;
    let u = |v: i64| {
        let mut x = v as f64;
        for _ in 0..levels {
            x = x * ratio + 0.3;
        }
        lround(x)
    };
    Rect::new(u(r.left), u(r.top), u(r.right), u(r.bottom))
}

fn rect_down2(r: Rect) -> Rect {
    Rect::new(
        lround(r.left as f64 / 2.0 - 1.25),
        lround(r.top as f64 / 2.0 - 0.75),
        lround(r.right as f64 / 2.0 - 1.25),
        lround(r.bottom as f64 / 2.0 - 0.75),
    )
}

/// dlib's `pyramid_up` with `pyramid_down<2>`: bilinear upsampling to the up-mapped rectangle.
fn pyramid_up2(img: &Rgb) -> Rgb {
    let right = lround((img.w as f64 - 1.0 + 1.25) * 2.0);
    let bottom = lround((img.h as f64 - 1.0 + 0.75) * 2.0);
    resize_bilinear(img, (right + 1) as usize, (bottom + 1) as usize)
}

/// dlib's `pyramid_down<6>`: bilinear resize to 5/6 of the size (integer division).
fn pyramid_down6(img: &Rgb) -> Rgb {
    resize_bilinear(img, (5 * img.w) / 6, (5 * img.h) / 6)
}

/// dlib's `resize_image` for RGB images with bilinear interpolation: float32 arithmetic in
/// blocks of 4 columns (positions accumulated in float32, truncated to bytes), double precision
/// for the columns left over.
fn resize_bilinear(img: &Rgb, ow: usize, oh: usize) -> Rgb {
    let mut out = Rgb {
        w: ow,
        h: oh,
        data: vec![0; ow * oh * 3],
    };
    if ow == 0 || oh == 0 || img.w == 0 || img.h == 0 {
        return out;
    }
    let nc = img.w as i64;
    let nr = img.h as i64;
    let x_scale = (img.w as f64 - 1.0) / (ow as f64 - 1.0).max(1.0);
    let y_scale = (img.h as f64 - 1.0) / (oh as f64 - 1.0).max(1.0);
    let mut y = -y_scale;
    for r in 0..oh {
        y += y_scale;
        let top = y.floor() as i64;
        let bottom = (top + 1).min(nr - 1);
        let tb_frac = y - top as f64;
        let (top, bottom) = (top as usize, bottom as usize);
        let x = -4.0 * x_scale;
        let tbf = tb_frac as f32;
        let inv_tbf = (1.0 - tb_frac) as f32;
        let xs4 = (4.0 * x_scale) as f32;
        let mut lanes = [
            x as f32,
            (x + x_scale) as f32,
            (x + 2.0 * x_scale) as f32,
            (x + 3.0 * x_scale) as f32,
        ];
        let mut c = 0usize;
        loop {
            for l in &mut lanes {
                *l += xs4;
            }
            let left = lanes.map(|v| v as i32); // truncation, as _mm_cvttps_epi32
            let right = left.map(|v| v + 1);
            if i64::from(right[3]) >= nc {
                break;
            }
            for k in 0..4 {
                let lr = lanes[k] - left[k] as f32;
                let inv_lr = 1.0 - lr;
                let tlf = inv_tbf * inv_lr;
                let trf = inv_tbf * lr;
                let blf = tbf * inv_lr;
                let brf = tbf * lr;
                let (lc, rc) = (left[k] as usize, right[k] as usize);
                let (tl, tr, bl, br) = (img.px(top, lc), img.px(top, rc), img.px(bottom, lc), img.px(bottom, rc));
                for ch in 0..3 {
                    let v = tlf * f32::from(tl[ch])
                        + trf * f32::from(tr[ch])
                        + blf * f32::from(bl[ch])
                        + brf * f32::from(br[ch]);
                    out.data[(r * ow + c + k) * 3 + ch] = (v as i32) as u8;
                }
            }
            c += 4;
        }
        let mut x = -x_scale + c as f64 * x_scale;
        while c < ow {
            x += x_scale;
            let left = x.floor() as i64;
            let right = (left + 1).min(nc - 1);
            let lr = x - left as f64;
            let (lc, rc) = (left as usize, right as usize);
            let (tl, tr, bl, br) = (img.px(top, lc), img.px(top, rc), img.px(bottom, lc), img.px(bottom, rc));
            for ch in 0..3 {
                let v = (1.0 - tb_frac) * ((1.0 - lr) * f64::from(tl[ch]) + lr * f64::from(tr[ch]))
                    + tb_frac * ((1.0 - lr) * f64::from(bl[ch]) + lr * f64::from(br[ch]));
                out.data[(r * ow + c) * 3 + ch] = v as u8;
            }
            c += 1;
        }
    }
    out
}

/// 31 fhog planes of one pyramid level, each `nr × nc`, row-major.
struct Planes {
    nr: usize,
    nc: usize,
    data: Vec<Vec<f32>>,
}

const DIRECTIONS: [[f32; 2]; 9] = [
    [1.0000, 0.0000],
    [0.9397, 0.3420],
    [0.7660, 0.6428],
    [0.500, 0.8660],
    [0.1736, 0.9848],
    [-0.1736, 0.9848],
    [-0.5000, 0.8660],
    [-0.7660, 0.6428],
    [-0.9397, 0.3420],
];

/// dlib's `extract_fhog_features` of an RGB image into planes padded for `rows_pad × cols_pad`
/// filters.
fn fhog(img: &Rgb, cell: usize, rows_pad: usize, cols_pad: usize) -> Planes {
    let cells_nr = ((img.h as f32 / cell as f32) as f64 + 0.5) as usize;
    let cells_nc = ((img.w as f32 / cell as f32) as f64 + 0.5) as usize;
    let hog_nr = cells_nr.saturating_sub(2);
    let hog_nc = cells_nc.saturating_sub(2);
    if cells_nr == 0 || cells_nc == 0 || hog_nr == 0 || hog_nc == 0 {
        return Planes {
            nr: 0,
            nc: 0,
            data: Vec::new(),
        };
    }
    let (pnr, pnc) = (hog_nr + rows_pad - 1, hog_nc + cols_pad - 1);
    let mut planes = vec![vec![0f32; pnr * pnc]; PLANES];
    let hw = cells_nc + 2;
    let mut hist = vec![[0f32; 18]; (cells_nr + 2) * hw];
    let visible_nr = (cells_nr * cell).min(img.h) as i64 - 1;
    let visible_nc = (cells_nc * cell).min(img.w) as i64 - 1;
    let cellf = cell as f32;

    let row_len = img.w * 3;
    let simd_end = |visible_nc: i64| {
        // dlib's 8-wide loop covers x = 1, 9, 17, … while x < visible_nc − 7.
        let mut x = 1i64;
        while x < visible_nc - 7 {
            x += 8;
        }
        x
    };
    let x_simd_end = simd_end(visible_nc);
    // Votes of the pixels of one row covered by dlib's 8-wide loop (a pure function of the
    // row, computed for several rows in parallel and added to the histograms in row order).
    let row_votes = |y: usize, votes: &mut Vec<Vote>| {
        votes.clear();
        let up = &img.data[(y - 1) * row_len..y * row_len];
        let mid = &img.data[y * row_len..(y + 1) * row_len];
        let down = &img.data[(y + 1) * row_len..(y + 2) * row_len];
        for x in 1..x_simd_end as usize {
            let g = gradients(up, mid, down, x);
            let (rl, gl, bl) = (len2(g[0]), len2(g[1]), len2(g[2]));
            // The SIMD rule: red only when strictly stronger than green, then blue unless
            // strictly weaker.
            let (tg, tl) = if rl > gl { (g[0], rl) } else { (g[1], gl) };
            let (gr, len) = if tl > bl { (tg, tl) } else { (g[2], bl) };
            let xp = (x as f32 + 0.5) / cellf + 0.5;
            let ixp = xp as i32;
            let vx0 = xp - ixp as f32;
            let vx1 = 1.0f32 - vx0;
            let v = (len as f32).sqrt();
            votes.push(Vote {
                o: best_orientation(gr[0] as f32, gr[1] as f32) as u8,
                ixp: ixp as u32,
                a: vx1 * v,
                b: vx0 * v,
            });
        }
    };
    let rows: Vec<usize> = (1..visible_nr.max(1)).map(|y| y as usize).collect();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk_rows = 16 * threads;
    let mut buffers: Vec<Vec<Vote>> = (0..chunk_rows).map(|_| Vec::new()).collect();
    for chunk in rows.chunks(chunk_rows) {
        let bufs = &mut buffers[..chunk.len()];
        if threads > 1 && chunk.len() > 1 {
            let per = chunk.len().div_ceil(threads);
            std::thread::scope(|scope| {
                for (ys, bs) in chunk.chunks(per).zip(bufs.chunks_mut(per)) {
                    let row_votes = &row_votes;
                    scope.spawn(move || {
                        for (&y, b) in ys.iter().zip(bs.iter_mut()) {
                            row_votes(y, b);
                        }
                    });
                }
            });
        } else {
            for (&y, b) in chunk.iter().zip(bufs.iter_mut()) {
                row_votes(y, b);
            }
        }
        for (&y, votes) in chunk.iter().zip(bufs.iter()) {
            let yp = ((y as f64 + 0.5) / f64::from(cellf) - 0.5) as f32;
            let iyp = yp.floor() as i64;
            let vy0 = yp - iyp as f32;
            let vy1 = (1.0 - f64::from(vy0)) as f32;
            let row0 = (iyp + 1) as usize * hw;
            let row1 = (iyp + 2) as usize * hw;
            for vote in votes {
                let (o, ixp) = (vote.o as usize, vote.ixp as usize);
                hist[row0 + ixp][o] += vy1 * vote.a;
                hist[row1 + ixp][o] += vy0 * vote.a;
                hist[row0 + ixp + 1][o] += vy1 * vote.b;
                hist[row1 + ixp + 1][o] += vy0 * vote.b;
            }
            // The columns left over by the 8-wide loop: dlib's scalar code, whose colour
            // choice keeps red on ties and whose weights multiply in another order.
            let up = &img.data[(y - 1) * row_len..y * row_len];
            let mid = &img.data[y * row_len..(y + 1) * row_len];
            let down = &img.data[(y + 1) * row_len..(y + 2) * row_len];
            for x in x_simd_end..visible_nc {
                let g = gradients(up, mid, down, x as usize);
                let mut gr = g[0];
                let mut len = len2(g[0]);
                if len2(g[1]) > len {
                    len = len2(g[1]);
                    gr = g[1];
                }
                if len2(g[2]) > len {
                    len = len2(g[2]);
                    gr = g[2];
                }
                let o = best_orientation(gr[0] as f32, gr[1] as f32);
                let v = (len as f32).sqrt();
                let xp = ((x as f64 + 0.5) / f64::from(cellf) - 0.5) as f32;
                let ixp = xp.floor() as i64;
                let vx0 = xp - ixp as f32;
                let vx1 = (1.0 - f64::from(vx0)) as f32;
                let c0 = (ixp + 1) as usize;
                hist[row0 + c0][o] += vy1 * vx1 * v;
                hist[row1 + c0][o] += vy0 * vx1 * v;
                hist[row0 + c0 + 1][o] += vy1 * vx0 * v;
                hist[row1 + c0 + 1][o] += vy0 * vx0 * v;
            }
        }
    }

    let mut norm = vec![0f32; cells_nr * cells_nc];
    for r in 0..cells_nr {
        for c in 0..cells_nc {
            let h = &hist[(r + 1) * hw + c + 1];
            let n = &mut norm[r * cells_nc + c];
            for o in 0..9 {
                let s = h[o] + h[o + 9];
                *n += s * s;
            }
        }
    }
    let eps = 0.0001f32;
    let nm = |y: usize, x: usize| norm[y * cells_nc + x];
    let rows_off = (rows_pad - 1) / 2;
    let cols_off = (cols_pad - 1) / 2;
    let hsum = |v: [f32; 4]| (v[0] + v[1]) + (v[2] + v[3]);
    for y in 0..hog_nr {
        let yy = y + rows_off;
        for x in 0..hog_nc {
            let z1 = [nm(y + 1, x + 1), nm(y, x + 1), nm(y + 1, x), nm(y, x)];
            let z2 = [nm(y + 1, x + 2), nm(y, x + 2), nm(y + 1, x + 1), nm(y, x + 1)];
            let z3 = [nm(y + 2, x + 1), nm(y + 1, x + 1), nm(y + 2, x), nm(y + 1, x)];
            let z4 = [nm(y + 2, x + 2), nm(y + 1, x + 2), nm(y + 2, x + 1), nm(y + 1, x + 1)];
            let mut nn = [0f32; 4];
            let mut n = [0f32; 4];
            for k in 0..4 {
                nn[k] = 0.2f32 * (z1[k] + z2[k] + z3[k] + z4[k] + eps).sqrt();
                n[k] = 0.1f32 / nn[k];
            }
            let xx = x + cols_off;
            let at = yy * pnc + xx;
            let h = &hist[(y + 2) * hw + x + 2];
            let mut t = [0f32; 4];
            for o in (0..18).step_by(3) {
                let mut hs = [[0f32; 4]; 3];
                for j in 0..3 {
                    for k in 0..4 {
                        hs[j][k] = h[o + j].min(nn[k]) * n[k];
                    }
                    planes[o + j][at] = hsum(hs[j]);
                }
                for k in 0..4 {
                    t[k] += hs[0][k] + hs[1][k] + hs[2][k];
                }
            }
            let tex = (2.0 * 0.2357) as f32;
            for v in &mut t {
                *v *= tex;
            }
            for o in 0..9 {
                let s = h[o] + h[o + 9];
                let hv = [0, 1, 2, 3].map(|k| s.min(nn[k]) * n[k]);
                planes[18 + o][at] = hsum(hv);
            }
            for k in 0..4 {
                planes[27 + k][at] = t[k];
            }
        }
    }
    Planes {
        nr: pnr,
        nc: pnc,
        data: planes,
    }
}

/// One pixel's vote: orientation bin, left cell column, and the gradient magnitude times the
/// horizontal interpolation weights of the left and right cells.
#[derive(Clone, Copy)]
struct Vote {
    o: u8,
    ixp: u32,
    a: f32,
    b: f32,
}

fn len2(g: [i32; 2]) -> i32 {
    g[0] * g[0] + g[1] * g[1]
}

/// Central differences (x, y) of the 3 channels at column `x` of the middle row.
#[inline]
fn gradients(up: &[u8], mid: &[u8], down: &[u8], x: usize) -> [[i32; 2]; 3] {
    let (l, r, c) = ((x - 1) * 3, (x + 1) * 3, x * 3);
    let mut g = [[0i32; 2]; 3];
    for (ch, gc) in g.iter_mut().enumerate() {
        *gc = [
            i32::from(mid[r + ch]) - i32::from(mid[l + ch]),
            i32::from(down[c + ch]) - i32::from(up[c + ch]),
        ];
    }
    g
}

/// The orientation bin (0–17) of a gradient: the direction with the largest positive dot
/// product, a bin of 9..18 for the opposite directions, the first one on ties, 0 for none.
fn best_orientation(gx: f32, gy: f32) -> usize {
    let mut best_dot = 0f32;
    let mut best_o = 0usize;
    for (o, d) in DIRECTIONS.iter().enumerate() {
        let dot = d[0] * gx + d[1] * gy;
        // Written as selects (dlib's SIMD form): with `best_dot >= 0`, `-dot` can only win
        // when `dot` did not.
        let take = dot > best_dot;
        best_dot = if take { dot } else { best_dot };
        best_o = if take { o } else { best_o };
        let take = -dot > best_dot;
        best_dot = if take { -dot } else { best_dot };
        best_o = if take { o + 9 } else { best_o };
    }
    best_o
}

/// The saliency image of one filter on one level's planes and the rectangle of valid scores.
fn apply_filter(filter: &Filter, planes: &Planes, fw: usize, fh: usize) -> Option<(Vec<f32>, Rect)> {
    if planes.data.is_empty() {
        return None;
    }
    let (nr, nc) = (planes.nr, planes.nc);
    let first_row = fh / 2;
    let first_col = fw / 2;
    let last_row = nr as i64 - ((fh as i64 - 1) / 2);
    let last_col = nc as i64 - ((fw as i64 - 1) / 2);
    let area = Rect::new(first_col as i64, first_row as i64, last_col - 1, last_row - 1);
    let mut sal = vec![0f32; nr * nc];
    let min_side = fh.min(fw) as f64;
    if filter.separable as f64 > PLANES as f64 * min_side / 3.0 {
        for (i, p) in filter.planes.iter().enumerate() {
            filter_full(&planes.data[i], (nr, nc), &p.full, (fh, fw), &mut sal);
        }
    } else {
        if filter.separable == 0 {
            // dlib scans nothing when no plane has a separable part.
            return None;
        }
        let mut scratch = vec![0f32; nr * nc];
        for (i, p) in filter.planes.iter().enumerate() {
            for (row, col) in p.rows.iter().zip(&p.cols) {
                filter_separable(&planes.data[i], (nr, nc), row, col, &mut scratch, &mut sal);
            }
        }
    }
    if area.is_empty() {
        return None;
    }
    Some((sal, area))
}

/// dlib's `float_spatially_filter_image` with `add_to` (the saliency starts at zero, so the
/// first plane's "assign" and later planes' "add" give the same sums).
fn filter_full(img: &[f32], (nr, nc): (usize, usize), f: &[f32], (fh, fw): (usize, usize), out: &mut [f32]) {
    let first_row = fh / 2;
    let first_col = fw / 2;
    let last_row = nr as i64 - ((fh as i64 - 1) / 2);
    let last_col = nc as i64 - ((fw as i64 - 1) / 2);
    for r in first_row as i64..last_row {
        let r = r as usize;
        let mut c = first_col as i64;
        while c < last_col - 7 {
            for k in 0..8 {
                let cc = c as usize + k;
                let (mut a, mut b, mut cacc) = (0f32, 0f32, 0f32);
                for m in 0..fh {
                    let row = &img[(r - first_row + m) * nc..];
                    let mut n = 0;
                    while n + 2 < fw {
                        a += row[cc - first_col + n] * f[m * fw + n];
                        b += row[cc - first_col + n + 1] * f[m * fw + n + 1];
                        cacc += row[cc - first_col + n + 2] * f[m * fw + n + 2];
                        n += 3;
                    }
                    while n < fw {
                        a += row[cc - first_col + n] * f[m * fw + n];
                        n += 1;
                    }
                }
                let v = a + (b + cacc);
                out[r * nc + cc] += v;
            }
            c += 8;
        }
        while c < last_col {
            let cc = c as usize;
            let mut t = 0f32;
            for m in 0..fh {
                for n in 0..fw {
                    t += img[(r - first_row + m) * nc + cc - first_col + n] * f[m * fw + n];
                }
            }
            out[r * nc + cc] += t;
            c += 1;
        }
    }
}

/// Eight outputs of a dot product with `taps`, as dlib's 8-wide SIMD loop computes them:
/// `lane(n)` holds the 8 inputs of tap `n`; three interleaved accumulators over taps
/// `0, 3, 6, …`, `1, 4, 7, …`, `2, 5, 8, …` (while 3 taps remain), the rest into the first, then
/// `a + (b + c)`.
#[allow(clippy::needless_range_loop)]
#[inline]
fn dot8<'a>(taps: &[f32], lane: impl Fn(usize) -> &'a [f32]) -> [f32; 8] {
    let (mut a, mut b, mut c) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    let n = taps.len();
    let mut k = 0;
    while k + 2 < n {
        let (s0, s1, s2) = (&lane(k)[..8], &lane(k + 1)[..8], &lane(k + 2)[..8]);
        let (w0, w1, w2) = (taps[k], taps[k + 1], taps[k + 2]);
        for i in 0..8 {
            a[i] += s0[i] * w0;
            b[i] += s1[i] * w1;
            c[i] += s2[i] * w2;
        }
        k += 3;
    }
    while k < n {
        let s = &lane(k)[..8];
        let w = taps[k];
        for i in 0..8 {
            a[i] += s[i] * w;
        }
        k += 1;
    }
    let mut out = [0f32; 8];
    for i in 0..8 {
        out[i] = a[i] + (b[i] + c[i]);
    }
    out
}

/// dlib's `float_spatially_filter_image_separable` adding into `out`.
fn filter_separable(
    img: &[f32],
    (nr, nc): (usize, usize),
    row: &[f32],
    col: &[f32],
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let first_row = col.len() / 2;
    let first_col = row.len() / 2;
    let last_row = nr as i64 - ((col.len() as i64 - 1) / 2);
    let last_col = nc as i64 - ((row.len() as i64 - 1) / 2);
    for r in 0..nr {
        let line = &img[r * nc..(r + 1) * nc];
        let mut c = first_col as i64;
        while c < last_col - 7 {
            let cu = c as usize;
            let v = dot8(row, |n| &line[cu - first_col + n..]);
            scratch[r * nc + cu..r * nc + cu + 8].copy_from_slice(&v);
            c += 8;
        }
        while c < last_col {
            let cc = c as usize;
            let mut t = 0f32;
            for (n, &w) in row.iter().enumerate() {
                t += line[cc - first_col + n] * w;
            }
            scratch[r * nc + cc] = t;
            c += 1;
        }
    }
    let scratch = &*scratch;
    for r in first_row as i64..last_row {
        let r = r as usize;
        let mut c = first_col as i64;
        while c < last_col - 7 {
            let cu = c as usize;
            let v = dot8(col, |m| &scratch[(r - first_row + m) * nc + cu..]);
            for (o, x) in out[r * nc + cu..r * nc + cu + 8].iter_mut().zip(v) {
                *o += x;
            }
            c += 8;
        }
        while c < last_col {
            let cc = c as usize;
            let mut t = 0f32;
            for (m, &w) in col.iter().enumerate() {
                t += scratch[(r - first_row + m) * nc + cc] * w;
            }
            out[r * nc + cc] += t;
            c += 1;
        }
    }
}

/// A filter's planes from its weight vector: full weights (rounded to float) and the rank-one
/// parts of each plane's SVD whose singular value exceeds `max(1e-4, 0.001·σ_max)`.
fn build_filter(weights: Vec<f64>, fw: usize, fh: usize) -> Filter {
    let size = fw * fh;
    let threshold = weights[PLANES * size];
    let mut planes = Vec::with_capacity(PLANES);
    let mut separable = 0;
    for i in 0..PLANES {
        let f = &weights[i * size..(i + 1) * size];
        let (u, s, v) = svd(f, fh, fw);
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        let max = s.iter().copied().fold(0.0, f64::max);
        let thresh = (max * 0.001).max(1e-4);
        let mut rows = Vec::new();
        let mut cols = Vec::new();
        for &j in &order {
            if s[j].abs() < thresh {
                continue;
            }
            let k = s[j].sqrt();
            cols.push((0..fh).map(|m| (u[m * s.len() + j] * k) as f32).collect());
            rows.push((0..fw).map(|n| (v[n * s.len() + j] * k) as f32).collect());
        }
        separable += rows.len();
        planes.push(PlaneFilter {
            full: f.iter().map(|&x| x as f32).collect(),
            rows,
            cols,
        });
    }
    Filter {
        weights,
        threshold,
        planes,
        separable,
    }
}

/// Thin SVD of a row-major `m × n` matrix by one-sided Jacobi rotations: `a = u·diag(s)·vᵀ`
/// with `u` (`m × k`) and `v` (`n × k`) row-major and `k = min(m, n)`; the columns of `a` (of
/// `aᵀ` when `m < n`) are rotated until orthogonal.
fn svd(a: &[f64], m: usize, n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    if m < n {
        // Work on the transpose and swap the factors.
        let mut t = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                t[j * m + i] = a[i * n + j];
            }
        }
        let (u, s, v) = svd(&t, n, m);
        return (v, s, u);
    }
    // m >= n: orthogonalise the n columns of w = a (m × n), accumulating v (n × n).
    let mut w = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..60 {
        let mut off = 0.0f64;
        for p in 0..n {
            for q in p + 1..n {
                let (mut alpha, mut beta, mut gamma) = (0.0, 0.0, 0.0);
                for i in 0..m {
                    let (x, y) = (w[i * n + p], w[i * n + q]);
                    alpha += x * x;
                    beta += y * y;
                    gamma += x * y;
                }
                if gamma == 0.0 || gamma.abs() <= 1e-300 {
                    continue;
                }
                off = off.max(gamma.abs() / (alpha * beta).sqrt());
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for i in 0..m {
                    let (x, y) = (w[i * n + p], w[i * n + q]);
                    w[i * n + p] = c * x - s * y;
                    w[i * n + q] = s * x + c * y;
                }
                for i in 0..n {
                    let (x, y) = (v[i * n + p], v[i * n + q]);
                    v[i * n + p] = c * x - s * y;
                    v[i * n + q] = s * x + c * y;
                }
            }
        }
        if off < 1e-15 {
            break;
        }
    }
    let mut s = vec![0.0; n];
    let mut u = vec![0.0; m * n];
    for j in 0..n {
        let norm = (0..m).map(|i| w[i * n + j] * w[i * n + j]).sum::<f64>().sqrt();
        s[j] = norm;
        if norm > 0.0 {
            for i in 0..m {
                u[i * n + j] = w[i * n + j] / norm;
            }
        }
    }
    (u, s, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svd_reconstructs() {
        let a: Vec<f64> = (0..30).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.3).collect();
        for (m, n) in [(5, 6), (6, 5)] {
            let a = &a[..m * n];
            let (u, s, v) = svd(a, m, n);
            let k = s.len();
            for i in 0..m {
                for j in 0..n {
                    let x: f64 = (0..k).map(|l| u[i * k + l] * s[l] * v[j * k + l]).sum();
                    assert!((x - a[i * n + j]).abs() < 1e-10, "{m}x{n}");
                }
            }
        }
    }

    fn fixture(name: &str) -> Rgb {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let img = crate::raster::load_rgb(path).unwrap();
        Rgb {
            w: img.width() as usize,
            h: img.height() as usize,
            data: img.into_raw(),
        }
    }

    #[test]
    fn bilinear_resizes_match_dlib() {
        let photo = fixture("astronaut_tilted.png");
        let up = pyramid_up2(&photo);
        let expected = fixture("dlib_up.png");
        assert_eq!((up.w, up.h), (expected.w, expected.h));
        let diff = up.data.iter().zip(&expected.data).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{diff} bytes differ from dlib's upsampling");
        let down = pyramid_down6(&expected);
        let expected = fixture("dlib_down6.png");
        assert_eq!((down.w, down.h), (expected.w, expected.h));
        let diff = down.data.iter().zip(&expected.data).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{diff} bytes differ from dlib's pyramid_down<6>");
    }

    #[test]
    fn window_of_the_face_model() {
        // 80×80 windows in 8-pixel cells, no padding: 10×10 filters.
        assert_eq!(window_size(8, 0, 80, 80), (10, 10));
    }

    #[test]
    fn rectangle_mappings() {
        assert_eq!(rect_down2(Rect::new(100, 60, 259, 219)), Rect::new(49, 29, 128, 109));
        let r = Rect::new(10, 10, 89, 89);
        assert_eq!(rect_up6(r, 0), r);
    }
}
