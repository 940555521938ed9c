//! The two Pillow operations of the alignment, reproduced arithmetic step for arithmetic step on
//! 8-bit RGB images.
//!
//! * [`resize_lanczos`]: `Image.resize(size, Image.LANCZOS)` (`ANTIALIAS` is the old name of the
//!   same filter). A separable convolution, horizontal pass then vertical pass, with the filter
//!   `sinc(x)·sinc(x/3)` on `|x| < 3` stretched by the downscale factor, weights normalised to
//!   sum 1 in double precision and then rounded to 22-bit fixed point; each pass rounds and
//!   clamps to 8 bits.
//! * [`quad_transform`]: `Image.transform(size, Image.QUAD, quad, Image.BILINEAR)`. Output pixel
//!   (x, y) samples the input at the bilinear map of the unit square onto the quadrilateral,
//!   evaluated at the pixel's centre; bilinear interpolation between the 4 nearest input
//!   pixels (edges clamped), in double precision, truncated to 8 bits; points outside the
//!   input give black.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Per output position: first input index and fixed-point weights.
struct Coefficients {
    starts: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    // Pillow passes the box as floats: (in1 - in0) is computed in single precision.
    let scale = f64::from(in_size as f32) / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 3.0 * filter_scale;
    let inv = 1.0 / filter_scale;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C casts truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(xmin as i64) as usize;
        let mut k: Vec<f64> = (xmin..xmax).map(|x| lanczos((x as f64 - center + 0.5) * inv)).collect();
        let total: f64 = k.iter().sum();
        if total != 0.0 {
            for w in &mut k {
                *w /= total;
            }
        }
        let fixed = k
            .iter()
            .map(|&w| {
                let v = w * f64::from(1u32 << PRECISION_BITS);
                (if w < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
            })
            .collect();
        starts.push(xmin);
        weights.push(fixed);
    }
    Coefficients { starts, weights }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

fn pass(src: &[u8], (w, h): (usize, usize), out_len: usize, horizontal: bool) -> Vec<u8> {
    let in_len = if horizontal { w } else { h };
    let c = coefficients(in_len, out_len);
    let (ow, oh) = if horizontal { (out_len, h) } else { (w, out_len) };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let o = if horizontal { x } else { y };
            let start = c.starts[o];
            for ch in 0..3 {
                let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                for (k, &weight) in c.weights[o].iter().enumerate() {
                    let (sx, sy) = if horizontal { (start + k, y) } else { (x, start + k) };
                    acc = acc.wrapping_add(i32::from(src[(sy * w + sx) * 3 + ch]).wrapping_mul(weight));
                }
                out[(y * ow + x) * 3 + ch] = clip8(acc);
            }
        }
    }
    out
}

/// `image.resize((width, height), Image.LANCZOS)` as Pillow computes it for RGB images.
/// Sizes must be positive.
pub fn resize_lanczos(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    if (ow, oh) == (w, h) {
        return image.clone();
    }
    let mut data = image.as_raw().clone();
    let mut cur_w = w;
    if ow != w {
        data = pass(&data, (w, h), ow, true);
        cur_w = ow;
    }
    if oh != h {
        data = pass(&data, (cur_w, h), oh, false);
    }
    RgbImage::from_raw(width, height, data).expect("buffer of width·height·3 bytes")
}

/// `image.transform((size, size), Image.QUAD, quad, Image.BILINEAR)` with `quad` the
/// input-image corners `[nw, sw, se, ne]` that the output's corners map to.
pub fn quad_transform(image: &RgbImage, size: u32, quad: [[f64; 2]; 4]) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let [nw, sw, se, ne] = quad;
    let (x0, y0) = (nw[0], nw[1]);
    let a_s = 1.0 / f64::from(size);
    let a_t = 1.0 / f64::from(size);
    let a = [
        x0,
        (ne[0] - x0) * a_s,
        (sw[0] - x0) * a_t,
        (se[0] - sw[0] - ne[0] + x0) * a_s * a_t,
        y0,
        (ne[1] - y0) * a_s,
        (sw[1] - y0) * a_t,
        (se[1] - sw[1] - ne[1] + y0) * a_s * a_t,
    ];
    let src = image.as_raw();
    let mut out = RgbImage::new(size, size);
    for (y, row) in out.as_mut().chunks_exact_mut(size as usize * 3).enumerate() {
        let yin = y as f64 + 0.5;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let xin = x as f64 + 0.5;
            let sx = a[0] + a[1] * xin + a[2] * yin + a[3] * xin * yin;
            let sy = a[4] + a[5] * xin + a[6] * yin + a[7] * xin * yin;
            if let Some(v) = bilinear(src, (w, h), sx, sy) {
                px.copy_from_slice(&v);
            }
        }
    }
    out
}

/// Pillow's `bilinear_filter32RGB`: `None` outside `[0, w) × [0, h)`.
fn bilinear(src: &[u8], (w, h): (usize, usize), xin: f64, yin: f64) -> Option<[u8; 3]> {
    if xin < 0.0 || xin >= w as f64 || yin < 0.0 || yin >= h as f64 {
        return None;
    }
    let xin = xin - 0.5;
    let yin = yin - 0.5;
    let x = xin.floor() as i64;
    let y = yin.floor() as i64;
    let dx = xin - x as f64;
    let dy = yin - y as f64;
    let clip = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    let x0 = clip(x, w);
    let x1 = clip(x + 1, w);
    let row0 = clip(y, h);
    let has_row1 = y + 1 >= 0 && ((y + 1) as usize) < h;
    let mut out = [0u8; 3];
    for (b, o) in out.iter_mut().enumerate() {
        let at = |r: usize, c: usize| f64::from(src[(r * w + c) * 3 + b]);
        let lerp = |a: f64, b: f64, d: f64| a + (b - a) * d;
        let v1 = lerp(at(row0, x0), at(row0, x1), dx);
        let v2 = if has_row1 {
            let r1 = (y + 1) as usize;
            lerp(at(r1, x0), at(r1, x1), dx)
        } else {
            v1
        };
        *o = lerp(v1, v2, dy) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_stay_constant() {
        let image = RgbImage::from_pixel(37, 23, image::Rgb([200, 13, 99]));
        let out = resize_lanczos(&image, 16, 11);
        assert!(out.pixels().all(|p| p.0 == [200, 13, 99]));
    }

    #[test]
    fn identity_quad_copies_the_image() {
        let image = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 7]));
        let out = quad_transform(&image, 8, [[0.0, 0.0], [0.0, 8.0], [8.0, 8.0], [8.0, 0.0]]);
        assert_eq!(out, image);
    }
}
