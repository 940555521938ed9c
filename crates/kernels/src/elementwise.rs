//! Per-channel element-wise passes of the encoders, in place and spread over threads: one pass
//! where a chain of tensor operations would make several, each on one thread.
//!
//! Each computes exactly what the named chain of float32 operations computes, in the same order.

use rayon::prelude::*;

use crate::conv::Dims;

/// `x = x · scale[c] + shift[c]` (an eval-mode batch norm) on `x` `[n, c, h, w]`.
///
/// # Panics
/// If a slice's length does not match its shape.
pub fn channel_affine(x: &mut [f32], [n, c, h, w]: Dims, scale: &[f32], shift: &[f32]) {
    assert_eq!(x.len(), n * c * h * w, "length does not match the shape");
    assert!(scale.len() == c && shift.len() == c, "one scale and shift per channel");
    if h * w == 0 {
        return;
    }
    x.par_chunks_mut(h * w).enumerate().for_each(|(i, plane)| {
        let (a, b) = (scale[i % c], shift[i % c]);
        plane.iter_mut().for_each(|v| *v = *v * a + b);
    });
}

/// `x = x · gate[n, c] + y` (a squeeze-and-excitation gate and a residual sum) on `x` and `y`
/// `[n, c, h, w]`, `gate` `[n, c]`.
///
/// # Panics
/// If a slice's length does not match its shape.
pub fn gate_add(x: &mut [f32], [n, c, h, w]: Dims, gate: &[f32], y: &[f32]) {
    assert_eq!(x.len(), n * c * h * w, "length does not match the shape");
    assert_eq!(y.len(), x.len(), "both maps have the same shape");
    assert_eq!(gate.len(), n * c, "one gate per sample and channel");
    if h * w == 0 {
        return;
    }
    x.par_chunks_mut(h * w)
        .zip(y.par_chunks(h * w))
        .enumerate()
        .for_each(|(i, (plane, other))| {
            let g = gate[i];
            plane.iter_mut().zip(other).for_each(|(v, &o)| *v = *v * g + o);
        });
}

/// `x = max(x + y, 0)` (a residual sum and a ReLU).
///
/// # Panics
/// If the lengths differ.
pub fn add_relu(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "both maps have the same length");
    const CHUNK: usize = 1 << 14;
    x.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK)).for_each(|(a, b)| {
        a.iter_mut().zip(b).for_each(|(v, &o)| *v = (*v + o).max(0.0));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_match_their_definitions() {
        let dims = [2, 3, 2, 1];
        let base: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.5).collect();
        let other: Vec<f32> = (0..12).map(|i| (i as f32).cos()).collect();
        let (scale, shift) = ([0.5f32, -1.0, 2.0], [0.25f32, 0.0, -1.0]);
        let mut x = base.clone();
        channel_affine(&mut x, dims, &scale, &shift);
        for i in 0..12 {
            let c = (i / 2) % 3;
            assert_eq!(x[i], base[i] * scale[c] + shift[c]);
        }
        let gate: Vec<f32> = (0..6).map(|i| i as f32 * 0.3).collect();
        let mut x = base.clone();
        gate_add(&mut x, dims, &gate, &other);
        for i in 0..12 {
            assert_eq!(x[i], base[i] * gate[i / 2] + other[i]);
        }
        let mut x = base.clone();
        add_relu(&mut x, &other);
        for i in 0..12 {
            assert_eq!(x[i], (base[i] + other[i]).max(0.0));
        }
    }
}
