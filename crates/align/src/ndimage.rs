//! The NumPy / SciPy array operations of the alignment's padding step, on float32 H×W×3 arrays
//! (row-major, channels last), with the same boundary rules and precision:
//!
//! * [`reflect_pad`]: `np.pad(a, ..., 'reflect')`: mirror about the edge pixel, which is not
//!   repeated (`d c b | a b c d | c b a`).
//! * [`gaussian_blur`]: `scipy.ndimage.gaussian_filter(a, [s, s, 0])`: a separable convolution
//!   along rows then columns with the kernel `exp(−x²/2s²)` on `|x| <= int(4s + 0.5)`,
//!   normalised to sum 1; borders mirrored about the edge (`d c b a | a b c d | d c b a`, SciPy's
//!   `reflect`); sums in double precision, each pass stored as float32.
//! * [`median_per_channel`]: `np.median(a, axis=(0, 1))`.

/// A float32 image, `height × width × 3`, row-major with channels last.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height · width · 3` values.
    pub data: Vec<f32>,
}

/// Index into `0..n` of position `i` of NumPy's `reflect` extension (period `2(n − 1)`).
fn numpy_reflect(i: i64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let m = i.rem_euclid(period);
    if m < n as i64 {
        m as usize
    } else {
        (period - m) as usize
    }
}

/// Index into `0..n` of position `i` of SciPy's `reflect` extension (period `2n`).
fn scipy_reflect(i: i64, n: usize) -> usize {
    let period = 2 * n as i64;
    let m = i.rem_euclid(period);
    if m < n as i64 {
        m as usize
    } else {
        (period - 1 - m) as usize
    }
}

/// `np.pad(image, ((top, bottom), (left, right), (0, 0)), 'reflect')` of an 8-bit RGB image
/// converted to float32.
pub fn reflect_pad(src: &[u8], (w, h): (usize, usize), [left, top, right, bottom]: [usize; 4]) -> FloatImage {
    let (ow, oh) = (w + left + right, h + top + bottom);
    let cols: Vec<usize> = (0..ow).map(|x| numpy_reflect(x as i64 - left as i64, w)).collect();
    let mut data = Vec::with_capacity(ow * oh * 3);
    for y in 0..oh {
        let sy = numpy_reflect(y as i64 - top as i64, h);
        let row = &src[sy * w * 3..(sy + 1) * w * 3];
        for &sx in &cols {
            data.extend(row[sx * 3..sx * 3 + 3].iter().map(|&v| f32::from(v)));
        }
    }
    FloatImage {
        width: ow,
        height: oh,
        data,
    }
}

/// NumPy's pairwise summation of a float64 array (`np.sum`), so that normalisations divide by
/// exactly the value NumPy does.
fn numpy_sum(a: &[f64]) -> f64 {
    if a.len() < 8 {
        let mut s = 0.0;
        for &v in a {
            s += v;
        }
        s
    } else if a.len() <= 128 {
        let mut r = [0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i + 8 <= a.len() {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            s += v;
        }
        s
    } else {
        let half = (a.len() / 2) & !7;
        numpy_sum(&a[..half]) + numpy_sum(&a[half..])
    }
}

/// SciPy's `_gaussian_kernel1d(sigma, 0, radius)`: weights for offsets `−radius..=radius`.
fn gaussian_kernel(sigma: f64, radius: usize) -> Vec<f64> {
    let sigma2 = sigma * sigma;
    let c = -0.5 / sigma2;
    let phi: Vec<f64> = (-(radius as i64)..=radius as i64)
        .map(|x| (c * (x * x) as f64).exp())
        .collect();
    let total = numpy_sum(&phi);
    phi.iter().map(|v| v / total).collect()
}

/// Runs `work(first_row, rows_out)` on consecutive blocks of the rows of `out` (each row
/// `row_len` values) on all cores. Each output value is computed by one thread with the same
/// arithmetic, so the result does not depend on the number of threads.
fn parallel_rows(out: &mut [f32], row_len: usize, work: impl Fn(usize, &mut [f32]) + Sync) {
    if out.is_empty() || row_len == 0 {
        return;
    }
    let rows = out.len() / row_len;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.max(1));
    let per = rows.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(per * row_len).enumerate() {
            let work = &work;
            scope.spawn(move || work(i * per, chunk));
        }
    });
}

/// `scipy.ndimage.correlate1d` along axis 0 (down the columns) with a symmetric kernel, mode
/// `reflect`: each output value is `x[k]·w[0] + Σ_{j=r..1} (x[k+j] + x[k−j])·w[j]` in double
/// precision (SciPy adds the symmetric pairs from the outermost tap inwards), stored as float32.
fn correlate_vertical(img: &FloatImage, weights: &[f64]) -> Vec<f32> {
    let (w, h) = (img.width, img.height);
    let row_len = w * 3;
    let r = weights.len() / 2;
    let center = weights[r];
    let mut out = vec![0f32; img.data.len()];
    let row = |y: i64| {
        let y = scipy_reflect(y, h);
        &img.data[y * row_len..(y + 1) * row_len]
    };
    parallel_rows(&mut out, row_len, |first, chunk| {
        let mut acc = vec![0f64; row_len];
        for (i, out_row) in chunk.chunks_mut(row_len).enumerate() {
            let k = (first + i) as i64;
            for (a, &v) in acc.iter_mut().zip(row(k)) {
                *a = f64::from(v) * center;
            }
            for j in (1..=r).rev() {
                let wj = weights[r - j];
                let (below, above) = (row(k + j as i64), row(k - j as i64));
                for ((a, &b), &c) in acc.iter_mut().zip(below).zip(above) {
                    *a += (f64::from(b) + f64::from(c)) * wj;
                }
            }
            for (o, &a) in out_row.iter_mut().zip(&acc) {
                *o = a as f32;
            }
        }
    });
    out
}

/// `scipy.ndimage.correlate1d` along axis 1 (along the rows), as [`correlate_vertical`].
fn correlate_horizontal(img: &FloatImage, weights: &[f64]) -> Vec<f32> {
    let w = img.width;
    let row_len = w * 3;
    let r = weights.len() / 2;
    let center = weights[r];
    let mut out = vec![0f32; img.data.len()];
    parallel_rows(&mut out, row_len, |first, chunk| {
        let mut line = vec![0f64; w + 2 * r];
        for (i, out_row) in chunk.chunks_mut(row_len).enumerate() {
            let y = first + i;
            let src = &img.data[y * row_len..(y + 1) * row_len];
            for c in 0..3 {
                for (t, v) in line.iter_mut().enumerate() {
                    let x = scipy_reflect(t as i64 - r as i64, w);
                    *v = f64::from(src[x * 3 + c]);
                }
                for k in 0..w {
                    let m = k + r;
                    let mut acc = line[m] * center;
                    for j in (1..=r).rev() {
                        acc += (line[m + j] + line[m - j]) * weights[r - j];
                    }
                    out_row[k * 3 + c] = acc as f32;
                }
            }
        }
    });
    out
}

/// `scipy.ndimage.gaussian_filter(image, [sigma, sigma, 0])` (mode `reflect`, truncate 4).
pub fn gaussian_blur(img: &FloatImage, sigma: f64) -> FloatImage {
    if sigma <= 1e-15 {
        return img.clone();
    }
    let radius = (4.0 * sigma + 0.5) as usize;
    let weights = gaussian_kernel(sigma, radius);
    let rows = FloatImage {
        width: img.width,
        height: img.height,
        data: correlate_vertical(img, &weights),
    };
    FloatImage {
        width: img.width,
        height: img.height,
        data: correlate_horizontal(&rows, &weights),
    }
}

/// `np.median(image, axis=(0, 1))` of a float32 image: the middle value of each channel, or
/// the float32 mean of the two middle values.
pub fn median_per_channel(img: &FloatImage) -> [f32; 3] {
    let mut out = [0f32; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let mut v: Vec<f32> = img.data.iter().skip(c).step_by(3).copied().collect();
        let n = v.len();
        if n == 0 {
            *o = f32::NAN;
            continue;
        }
        v.sort_unstable_by(|a, b| a.total_cmp(b));
        *o = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_modes() {
        // NumPy: [1 2 3] padded by 4 → 2 3 2 | 1 2 3 | 2 1 2 ... (period 4).
        let np: Vec<usize> = (-4..7).map(|i| numpy_reflect(i, 3)).collect();
        assert_eq!(np, [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2]);
        // SciPy: 3 3 2 1 | 1 2 3 | 3 2 1 1 (period 6).
        let sp: Vec<usize> = (-4..7).map(|i| scipy_reflect(i, 3)).collect();
        assert_eq!(sp, [2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0]);
    }

    #[test]
    fn blur_keeps_constants_and_sums() {
        let img = FloatImage {
            width: 9,
            height: 7,
            data: vec![3.5; 9 * 7 * 3],
        };
        let out = gaussian_blur(&img, 1.3);
        assert!(out.data.iter().all(|&v| (v - 3.5).abs() < 1e-5));
        let k = gaussian_kernel(2.0, 8);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let img = FloatImage {
            width: 2,
            height: 1,
            data: vec![1.0, 5.0, 0.0, 2.0, 6.0, 0.5],
        };
        assert_eq!(median_per_channel(&img), [1.5, 5.5, 0.25]);
    }
}
