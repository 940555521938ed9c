//! Pillow-compatible bilinear and bicubic resizes of 8-bit RGB images.
//!
//! Upstream resizes inputs with `torchvision.transforms.Resize` on PIL images, i.e. Pillow's
//! `Image.resize(size, BILINEAR)`, and its saved results with `Image.resize(size)` (bicubic, the
//! default). Pillow does not interpolate between the nearest pixels: it convolves with the
//! filter (triangle or bicubic) stretched by the downscale factor (antialiasing), in two
//! separable passes (horizontal, then vertical) with 8-bit fixed-point coefficients and an 8-bit
//! intermediate image. This reproduces that arithmetic step for step, so that a photo resized
//! here feeds the networks exactly the tensor upstream would.

use image::RgbImage;

/// Fixed-point precision of Pillow's 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A resampling filter: its kernel and the support it has at scale 1.
#[derive(Clone, Copy)]
struct Filter {
    kernel: fn(f64) -> f64,
    support: f64,
}

const BILINEAR: Filter = Filter {
    kernel: triangle,
    support: 1.0,
};
const BICUBIC: Filter = Filter {
    kernel: bicubic,
    support: 2.0,
};

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's bicubic kernel (`a = −0.5`).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output position: the first input index and the fixed-point weights of the inputs.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support * filter_scale;
    let inv = 1.0 / filter_scale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C casts truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (xmin..xmax)
            .map(|x| (filter.kernel)((x as f64 - center + 0.5) * inv))
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let v = w * f64::from(1u32 << PRECISION_BITS);
                (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
            })
            .collect();
        bounds.push((xmin, xmax - xmin));
        weights.push(fixed);
    }
    Coefficients { bounds, weights }
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One separable pass along x (`horizontal`) or y over an interleaved RGB buffer.
fn pass(src: &[u8], (w, h): (usize, usize), out_len: usize, horizontal: bool, filter: Filter) -> Vec<u8> {
    let in_len = if horizontal { w } else { h };
    let c = coefficients(in_len, out_len, filter);
    let (ow, oh) = if horizontal { (out_len, h) } else { (w, out_len) };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let o = if horizontal { x } else { y };
            let (start, n) = c.bounds[o];
            for ch in 0..3 {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (k, &weight) in c.weights[o][..n].iter().enumerate() {
                    let (sx, sy) = if horizontal { (start + k, y) } else { (x, start + k) };
                    acc += i64::from(src[(sy * w + sx) * 3 + ch]) * i64::from(weight);
                }
                out[(y * ow + x) * 3 + ch] = clip8(acc);
            }
        }
    }
    out
}

/// `image.resize((width, height), Image.BILINEAR)` as Pillow computes it.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize(image, (width, height), BILINEAR)
}

/// `image.resize((width, height))` as Pillow ≥ 7 computes it (bicubic, its default filter).
pub fn resize_bicubic(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize(image, (width, height), BICUBIC)
}

/// A horizontal then a vertical pass, each skipped when that side keeps its size (so the same
/// size is a copy).
fn resize(image: &RgbImage, (width, height): (u32, u32), filter: Filter) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let mut data = image.as_raw().clone();
    let mut cur_w = w;
    if ow != w {
        data = pass(&data, (w, h), ow, true, filter);
        cur_w = ow;
    }
    if oh != h {
        data = pass(&data, (cur_w, h), oh, false, filter);
    }
    RgbImage::from_raw(width, height, data).expect("buffer of width·height·3 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let image = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 7]));
        assert_eq!(resize_bilinear(&image, 7, 5), image);
    }

    #[test]
    fn constant_image_stays_constant() {
        let image = RgbImage::from_pixel(37, 23, image::Rgb([200, 13, 99]));
        let out = resize_bilinear(&image, 16, 11);
        assert!(out.pixels().all(|p| p.0 == [200, 13, 99]));
        let up = resize_bilinear(&image, 80, 50);
        assert!(up.pixels().all(|p| p.0 == [200, 13, 99]));
    }
}
