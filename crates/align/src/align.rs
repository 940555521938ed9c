//! The FFHQ crop of upstream HyperStyle (`scripts/align_faces_parallel.py`, `align_face`), from
//! 68 dlib landmarks to an aligned square image.
//!
//! 1. **Quad.** Eye centres (means of landmarks 36–41 and 42–47) and mouth corners (48 and
//!    54) give an oriented square: `x` points along the eyes, turned by the eye-to-mouth vector,
//!    of half-side `max(2·|eye_to_eye|, 1.8·|eye_to_mouth|)`, centred `0.1·eye_to_mouth` below
//!    the eyes' midpoint; `qsize` is its side.
//! 2. **Shrink.** When `qsize` is at least 4 output sizes, the photo is downscaled by the
//!    integer factor `floor(qsize / output / 2)` with Pillow's Lanczos filter.
//! 3. **Crop** to the quad's bounding box plus a border of `max(rint(0.1·qsize), 3)` pixels.
//! 4. **Pad.** Where the quad plus border leaves the photo by more than `border − 4` pixels,
//!    every side is padded by at least `rint(0.3·qsize)` pixels, mirrored; the padding is
//!    blended towards a Gaussian blur (σ = `0.02·qsize`) and then towards the per-channel
//!    median, with weights growing from the photo's edge outwards. float32 arithmetic as
//!    upstream's pinned NumPy (1.18) computes it; NumPy 2 promotes the blend weights to float64
//!    (`float32 array / int64 scalar`), which moves a rare value by 1/255 after rounding.
//! 5. **Transform.** The quad is mapped onto a `transform_size` square with Pillow's QUAD
//!    transform and bilinear sampling, then resized to `output_size` with Lanczos when smaller.

use image::RgbImage;

use crate::error::{Error, Result};
use crate::ndimage::{gaussian_blur, median_per_channel, reflect_pad};
use crate::pil::{quad_transform, resize_lanczos};

/// Sizes of the aligned image. Upstream uses 1024 for both, with padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlignOptions {
    /// Side of the returned image (at most `transform_size`). It also sets when the photo is
    /// shrunk first: when the face quad is at least 4 output sizes.
    pub output_size: u32,
    /// Side of the QUAD transform's result, resized to `output_size` with Lanczos when larger.
    pub transform_size: u32,
    /// Whether to pad with the blurred mirror border when the face is near the photo's edge
    /// (otherwise the outside is black).
    pub enable_padding: bool,
}

impl Default for AlignOptions {
    fn default() -> Self {
        AlignOptions {
            output_size: 1024,
            transform_size: 1024,
            enable_padding: true,
        }
    }
}

/// The oriented square of the crop, in photo pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceQuad {
    /// Corners: top-left, bottom-left, bottom-right, top-right (of the aligned face).
    pub corners: [[f64; 2]; 4],
    /// Side length.
    pub size: f64,
}

fn mean(points: &[[f64; 2]]) -> [f64; 2] {
    let n = points.len() as f64;
    let (mut x, mut y) = (0.0, 0.0);
    for p in points {
        x += p[0];
        y += p[1];
    }
    [x / n, y / n]
}

/// The crop quad of upstream's `align_face` for 68 landmarks (dlib's iBUG 300-W order).
pub fn face_quad(landmarks: &[[f64; 2]]) -> Result<FaceQuad> {
    if landmarks.len() != 68 {
        return Err(Error::InvalidInput(format!(
            "the FFHQ alignment needs 68 landmarks, got {}",
            landmarks.len()
        )));
    }
    if landmarks.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::InvalidInput("a landmark is not finite".into()));
    }
    let eye_left = mean(&landmarks[36..42]);
    let eye_right = mean(&landmarks[42..48]);
    let eye_avg = [(eye_left[0] + eye_right[0]) * 0.5, (eye_left[1] + eye_right[1]) * 0.5];
    let eye_to_eye = [eye_right[0] - eye_left[0], eye_right[1] - eye_left[1]];
    let (ml, mr) = (landmarks[48], landmarks[54]);
    let mouth_avg = [(ml[0] + mr[0]) * 0.5, (ml[1] + mr[1]) * 0.5];
    let eye_to_mouth = [mouth_avg[0] - eye_avg[0], mouth_avg[1] - eye_avg[1]];

    // x = eye_to_eye − flipud(eye_to_mouth)·[−1, 1]
    let mut x = [eye_to_eye[0] + eye_to_mouth[1], eye_to_eye[1] - eye_to_mouth[0]];
    let norm = x[0].hypot(x[1]);
    if norm == 0.0 {
        return Err(Error::InvalidInput(
            "degenerate landmarks: eyes and mouth coincide".into(),
        ));
    }
    x = [x[0] / norm, x[1] / norm];
    let scale = (eye_to_eye[0].hypot(eye_to_eye[1]) * 2.0).max(eye_to_mouth[0].hypot(eye_to_mouth[1]) * 1.8);
    x = [x[0] * scale, x[1] * scale];
    let y = [-x[1], x[0]];
    let c = [eye_avg[0] + eye_to_mouth[0] * 0.1, eye_avg[1] + eye_to_mouth[1] * 0.1];
    let corners = [
        [c[0] - x[0] - y[0], c[1] - x[1] - y[1]],
        [c[0] - x[0] + y[0], c[1] - x[1] + y[1]],
        [c[0] + x[0] + y[0], c[1] + x[1] + y[1]],
        [c[0] + x[0] - y[0], c[1] + x[1] - y[1]],
    ];
    Ok(FaceQuad {
        corners,
        size: x[0].hypot(x[1]) * 2.0,
    })
}

fn bounds(q: &[[f64; 2]; 4]) -> [i64; 4] {
    let min = |i: usize| q.iter().map(|p| p[i]).fold(f64::INFINITY, f64::min);
    let max = |i: usize| q.iter().map(|p| p[i]).fold(f64::NEG_INFINITY, f64::max);
    [
        min(0).floor() as i64,
        min(1).floor() as i64,
        max(0).ceil() as i64,
        max(1).ceil() as i64,
    ]
}

fn rint(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// Upstream's `align_face` for a photo and its 68 landmarks.
pub fn align_face(photo: &RgbImage, landmarks: &[[f64; 2]], options: &AlignOptions) -> Result<RgbImage> {
    if options.output_size == 0 || options.transform_size == 0 {
        return Err(Error::InvalidInput(
            "output and transform sizes must be positive".into(),
        ));
    }
    if options.output_size > options.transform_size {
        // Upstream would silently return a transform_size image.
        return Err(Error::InvalidInput(format!(
            "output size {} is larger than the transform size {}",
            options.output_size, options.transform_size
        )));
    }
    if photo.width() == 0 || photo.height() == 0 {
        return Err(Error::InvalidInput("empty photo".into()));
    }
    let FaceQuad {
        corners: mut quad,
        size: mut qsize,
    } = face_quad(landmarks)?;
    if qsize < 8.0 {
        return Err(Error::InvalidInput(format!(
            "face quad of side {qsize:.1} pixels is too small to align"
        )));
    }
    // A quad far larger than any photo would ask for absurd padding.
    let limit = 8.0 * f64::from(photo.width().max(photo.height())) + 1e4;
    if qsize > limit {
        return Err(Error::InvalidInput(format!(
            "face quad of side {qsize:.0} is far larger than the photo"
        )));
    }

    // Shrink. `owned` holds the photo once a step has changed it.
    let mut owned: Option<RgbImage> = None;
    let shrink = (qsize / f64::from(options.output_size) * 0.5).floor() as i64;
    if shrink > 1 {
        let s = shrink as f64;
        let rw = rint(f64::from(photo.width()) / s).max(1) as u32;
        let rh = rint(f64::from(photo.height()) / s).max(1) as u32;
        owned = Some(resize_lanczos(photo, rw, rh));
        for p in &mut quad {
            p[0] /= s;
            p[1] /= s;
        }
        qsize /= s;
    }

    // Crop.
    let border = rint(qsize * 0.1).max(3);
    let current = owned.as_ref().unwrap_or(photo);
    let (w, h) = (i64::from(current.width()), i64::from(current.height()));
    let b = bounds(&quad);
    let crop = [
        (b[0] - border).max(0),
        (b[1] - border).max(0),
        (b[2] + border).min(w),
        (b[3] + border).min(h),
    ];
    if crop[2] <= crop[0] || crop[3] <= crop[1] {
        return Err(Error::InvalidInput("the face quad lies outside the photo".into()));
    }
    if crop[2] - crop[0] < w || crop[3] - crop[1] < h {
        let cropped = image::imageops::crop_imm(
            current,
            crop[0] as u32,
            crop[1] as u32,
            (crop[2] - crop[0]) as u32,
            (crop[3] - crop[1]) as u32,
        )
        .to_image();
        owned = Some(cropped);
        for p in &mut quad {
            p[0] -= crop[0] as f64;
            p[1] -= crop[1] as f64;
        }
    }

    // Pad.
    let current = owned.as_ref().unwrap_or(photo);
    let (w, h) = (i64::from(current.width()), i64::from(current.height()));
    let b = bounds(&quad);
    let mut pad = [
        (-b[0] + border).max(0),
        (-b[1] + border).max(0),
        (b[2] - w + border).max(0),
        (b[3] - h + border).max(0),
    ];
    if options.enable_padding && pad.iter().copied().max().unwrap_or(0) > border - 4 {
        let least = rint(qsize * 0.3);
        for p in &mut pad {
            *p = (*p).max(least);
        }
        let padded = pad_and_blend(current, pad.map(|p| p as usize), qsize);
        owned = Some(padded);
        for p in &mut quad {
            p[0] += pad[0] as f64;
            p[1] += pad[1] as f64;
        }
    }

    // Transform.
    let quad = quad.map(|p| [p[0] + 0.5, p[1] + 0.5]);
    let current = owned.as_ref().unwrap_or(photo);
    let mut out = quad_transform(current, options.transform_size, quad);
    if options.output_size < options.transform_size {
        out = resize_lanczos(&out, options.output_size, options.output_size);
    }
    Ok(out)
}

/// The padding step: mirror-pad by `[left, top, right, bottom]`, blend towards the blur and the
/// median, round to 8 bits.
fn pad_and_blend(img: &RgbImage, pad: [usize; 4], qsize: f64) -> RgbImage {
    let (w0, h0) = (img.width() as usize, img.height() as usize);
    let mut f = reflect_pad(img.as_raw(), (w0, h0), pad);
    let (w, h) = (f.width, f.height);
    let pf = pad.map(|p| p as f32);
    // float32 as NumPy 1.x computes `np.float32(x) / pad[0]` (the int64 scalar does not promote).
    let mx: Vec<f32> = (0..w)
        .map(|x| 1.0 - (x as f32 / pf[0]).min((w - 1 - x) as f32 / pf[2]))
        .collect();
    let my: Vec<f32> = (0..h)
        .map(|y| 1.0 - (y as f32 / pf[1]).min((h - 1 - y) as f32 / pf[3]))
        .collect();
    let mask = |x: usize, y: usize| mx[x].max(my[y]);

    let blurred = gaussian_blur(&f, qsize * 0.02);
    for y in 0..h {
        for x in 0..w {
            let weight = (mask(x, y) * 3.0 + 1.0).clamp(0.0, 1.0);
            for c in 0..3 {
                let i = (y * w + x) * 3 + c;
                f.data[i] += (blurred.data[i] - f.data[i]) * weight;
            }
        }
    }
    let median = median_per_channel(&f);
    for y in 0..h {
        for x in 0..w {
            let weight = mask(x, y).clamp(0.0, 1.0);
            for (c, &m) in median.iter().enumerate() {
                let i = (y * w + x) * 3 + c;
                f.data[i] += (m - f.data[i]) * weight;
            }
        }
    }
    let bytes = f
        .data
        .iter()
        .map(|v| v.round_ties_even().clamp(0.0, 255.0) as u8)
        .collect();
    RgbImage::from_raw(w as u32, h as u32, bytes).expect("buffer of width·height·3 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landmarks() -> Vec<[f64; 2]> {
        let mut lm = vec![[50.0, 50.0]; 68];
        for p in &mut lm[36..42] {
            *p = [40.0, 40.0];
        }
        for p in &mut lm[42..48] {
            *p = [60.0, 40.0];
        }
        lm[48] = [42.0, 70.0];
        lm[54] = [58.0, 70.0];
        lm
    }

    #[test]
    fn upright_face_gives_an_axis_aligned_square() {
        let q = face_quad(&landmarks()).unwrap();
        // eye_to_eye (20, 0), eye_to_mouth (0, 30): x = (50, 0) scaled to max(40, 54) = 54.
        assert!((q.size - 108.0).abs() < 1e-9);
        let c = [50.0, 43.0];
        assert_eq!(q.corners[0], [c[0] - 54.0, c[1] - 54.0]);
        assert_eq!(q.corners[2], [c[0] + 54.0, c[1] + 54.0]);
    }

    #[test]
    fn wrong_landmark_count_is_an_error() {
        let img = RgbImage::new(100, 100);
        assert!(matches!(
            align_face(&img, &landmarks()[..5], &AlignOptions::default()),
            Err(Error::InvalidInput(_))
        ));
        let larger = AlignOptions {
            output_size: 2048,
            ..AlignOptions::default()
        };
        assert!(matches!(
            align_face(&img, &landmarks(), &larger),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn aligns_to_the_requested_size() {
        let img = RgbImage::from_fn(100, 100, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let opts = AlignOptions {
            output_size: 64,
            transform_size: 128,
            enable_padding: true,
        };
        let out = align_face(&img, &landmarks(), &opts).unwrap();
        assert_eq!(out.dimensions(), (64, 64));
    }
}
