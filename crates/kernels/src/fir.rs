//! FIR filtering of every image plane: `upfirdn2d` with up-sampling 1 or 2, no decimation and
//! non-negative padding — StyleGAN2's blur and its up-sampling of the RGB skip path.
//!
//! `upfirdn2d(x, K, up, pad = (p0, p1))`: insert `up − 1` zeros after every sample, pad `p0`
//! zeros before and `p1` after on both axes, then a *true* 2-D convolution with `K` (the kernel
//! flipped, unlike a cross-correlation). Here the zeros are never stored: each output sums only
//! the taps that land on input samples.

use rayon::prelude::*;

use crate::conv::Dims;

/// The output side of [`upfirdn2d`] for input side `n`.
pub fn upfirdn_size(n: usize, up: usize, taps: usize, [p0, p1]: [usize; 2]) -> usize {
    (n * up + p0 + p1 + 1).saturating_sub(taps)
}

/// For every output index along one axis, the `(input index, tap)` pairs that contribute:
/// output `o` reads padded up-sampled position `o + t` against flipped tap `t`, i.e. the kernel's
/// tap `taps − 1 − t`; position `a = o + t − p0` is an input sample when `a = up · i`.
fn axis_pairs(len_in: usize, len_out: usize, up: usize, taps: usize, p0: usize) -> Vec<Vec<(usize, usize)>> {
    (0..len_out)
        .map(|o| {
            (0..taps)
                .filter_map(|t| {
                    let a = (o + t).checked_sub(p0)?;
                    (a % up == 0 && a / up < len_in).then_some((a / up, taps - 1 - t))
                })
                .collect()
        })
        .collect()
}

/// `upfirdn2d(x, kernel, up, pad)` on every `[h, w]` plane of `x` (`[n, c, h, w]`), `up` 1 or 2,
/// `kernel` row-major `kh × kw` → `[n, c, h', w']` with `h' = up·h + p0 + p1 − kh + 1` (same for w).
///
/// # Panics
/// If a slice's length does not match its shape.
pub fn upfirdn2d(
    x: &[f32],
    [n, c, h, w]: Dims,
    kernel: &[f32],
    [kh, kw]: [usize; 2],
    up: usize,
    pad: [usize; 2],
) -> (Vec<f32>, Dims) {
    assert_eq!(x.len(), n * c * h * w, "input length does not match its shape");
    assert_eq!(kernel.len(), kh * kw, "kernel length does not match its shape");
    let (oh, ow) = (upfirdn_size(h, up, kh, pad), upfirdn_size(w, up, kw, pad));
    let mut out = vec![0.0f32; n * c * oh * ow];
    if out.is_empty() {
        return (out, [n, c, oh, ow]);
    }
    let rows = axis_pairs(h, oh, up, kh, pad[0]);
    let cols = axis_pairs(w, ow, up, kw, pad[0]);
    if up == 1 {
        // Each (row tap, column tap) pair reads a contiguous run of the input row: accumulate
        // whole runs so the inner loop vectorises.
        out.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .for_each(|(dst, src)| {
                for (orow, pairs) in dst.chunks_exact_mut(ow).zip(&rows) {
                    for &(iy, ty) in pairs {
                        let src_row = &src[iy * w..(iy + 1) * w];
                        for tx in 0..kw {
                            let weight = kernel[ty * kw + tx];
                            // Output column o reads input o + (kw − 1 − tx) − p0.
                            let shift = (kw - 1 - tx) as isize - pad[0] as isize;
                            let lo = (-shift).clamp(0, ow as isize) as usize;
                            let hi = (w as isize - shift).clamp(lo as isize, ow as isize) as usize;
                            let start = (lo as isize + shift) as usize;
                            for (o, &s) in orow[lo..hi].iter_mut().zip(&src_row[start..]) {
                                *o += weight * s;
                            }
                        }
                    }
                }
            });
    } else {
        out.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .for_each(|(dst, src)| {
                for (orow, row_pairs) in dst.chunks_exact_mut(ow).zip(&rows) {
                    for &(iy, ty) in row_pairs {
                        let src_row = &src[iy * w..(iy + 1) * w];
                        for (o, col_pairs) in orow.iter_mut().zip(&cols) {
                            for &(ix, tx) in col_pairs {
                                *o += kernel[ty * kw + tx] * src_row[ix];
                            }
                        }
                    }
                }
            });
    }
    (out, [n, c, oh, ow])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: zero insertion, padding, then a true convolution, in f64.
    fn reference(
        x: &[f32],
        [n, c, h, w]: Dims,
        k: &[f32],
        [kh, kw]: [usize; 2],
        up: usize,
        [p0, p1]: [usize; 2],
    ) -> Vec<f64> {
        let (uh, uw) = (h * up + p0 + p1, w * up + p0 + p1);
        let (oh, ow) = (uh + 1 - kh, uw + 1 - kw);
        let mut out = Vec::new();
        for plane in x.chunks_exact(h * w).take(n * c) {
            let mut padded = vec![0.0f64; uh * uw];
            for y in 0..h {
                for xx in 0..w {
                    padded[(y * up + p0) * uw + xx * up + p0] = plane[y * w + xx] as f64;
                }
            }
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = 0.0;
                    for i in 0..kh {
                        for j in 0..kw {
                            acc += padded[(y + i) * uw + xx + j] * k[(kh - 1 - i) * kw + (kw - 1 - j)] as f64;
                        }
                    }
                    out.push(acc);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition() {
        // An asymmetric kernel, so that a missing flip shows.
        let k4: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin() + 0.1 * i as f32).collect();
        let k3: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).cos()).collect();
        let x: Vec<f32> = (0..2 * 3 * 7 * 5)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let dims = [2, 3, 7, 5];
        for (k, ks) in [(&k4, [4, 4]), (&k3, [3, 4])] {
            for up in [1, 2] {
                for pad in [[1, 1], [2, 1], [0, 0], [3, 2]] {
                    let (got, out_dims) = upfirdn2d(&x, dims, k, ks, up, pad);
                    let want = reference(&x, dims, k, ks, up, pad);
                    assert_eq!(got.len(), want.len(), "up {up} pad {pad:?}");
                    assert_eq!(out_dims[2], upfirdn_size(7, up, ks[0], pad));
                    let max = got
                        .iter()
                        .zip(&want)
                        .map(|(&g, &w)| (g as f64 - w).abs())
                        .fold(0.0, f64::max);
                    // At most 16 products of values ≤ 2.5: float32 rounding stays below 1e-5.
                    assert!(max < 1e-5, "up {up} pad {pad:?} kernel {ks:?}: max-abs {max:e}");
                }
            }
        }
    }
}
