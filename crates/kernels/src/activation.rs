//! StyleGAN2's per-layer epilogue in one pass: noise injection, bias, scaled leaky ReLU.

use rayon::prelude::*;

use crate::conv::Dims;

/// In place on `y` (`[n, c, h, w]`):
/// `y = leaky_relu(y + noise_weight · noise + bias[c], slope) · gain`, with `noise` one
/// `[h, w]` image per sample (`noise.len() == n·h·w`) or one for the whole batch (`h·w`).
///
/// The operations run in this order, each rounded to float32, as separate tensor operations
/// would: `noise_weight · noise`, `+` to `y`, `+ bias`, the activation, `· gain`.
///
/// # Panics
/// If a slice's length does not match its shape.
pub fn noise_bias_leaky_relu(
    y: &mut [f32],
    [n, c, h, w]: Dims,
    noise: &[f32],
    noise_weight: f32,
    bias: &[f32],
    slope: f32,
    gain: f32,
) {
    let plane = h * w;
    assert_eq!(y.len(), n * c * plane, "output length does not match its shape");
    assert!(
        noise.len() == plane || noise.len() == n * plane,
        "noise must be one image or one per sample"
    );
    assert_eq!(bias.len(), c, "one bias per channel");
    if plane == 0 {
        return;
    }
    let shared_noise = noise.len() == plane;
    y.par_chunks_mut(plane).enumerate().for_each(|(i, values)| {
        let (sample, channel) = (i / c, i % c);
        let noise = if shared_noise {
            noise
        } else {
            &noise[sample * plane..(sample + 1) * plane]
        };
        let b = bias[channel];
        for (v, &z) in values.iter_mut().zip(noise) {
            let t = *v + noise_weight * z + b;
            *v = if t >= 0.0 { t } else { t * slope } * gain;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        let dims = [2, 3, 2, 2];
        let mut y: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 3.0).collect();
        let want: Vec<f32> = y.clone();
        let noise: Vec<f32> = (0..8).map(|i| (i as f32).sin()).collect();
        let bias = [0.5f32, -1.0, 0.0];
        noise_bias_leaky_relu(&mut y, dims, &noise, 0.3, &bias, 0.2, 2.0);
        for (i, (&got, &before)) in y.iter().zip(&want).enumerate() {
            let (s, ch, p) = (i / 12, (i / 4) % 3, i % 4);
            let t = before + 0.3 * noise[s * 4 + p] + bias[ch];
            let expect = if t >= 0.0 { t } else { 0.2 * t } * 2.0;
            assert_eq!(got, expect, "element {i}");
        }
        // One noise image for the batch.
        let mut z = vec![-1.0f32; 24];
        noise_bias_leaky_relu(&mut z, dims, &noise[..4], 1.0, &bias, 0.2, 1.0);
        for (i, &got) in z.iter().enumerate() {
            let t = -1.0 + noise[i % 4] + bias[(i / 4) % 3];
            assert_eq!(got, if t >= 0.0 { t } else { 0.2 * t }, "element {i}");
        }
    }
}
