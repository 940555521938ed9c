//! Multi-scale SSIM exactly as HyperStyle's `criteria/ms_ssim.py` computes it (itself taken from
//! the `pytorch-msssim` package), which differs from the textbook MS-SSIM in several details kept
//! here:
//!
//! * one 2-D Gaussian window (σ = 1.5) of side `min(window_size, h, w)` per scale, applied to each
//!   channel separately **without padding** (valid convolution);
//! * the dynamic range `L` is guessed at every scale from the first image alone: the maximum
//!   above 128 means 255, else 1; the minimum below −0.5 means −1, else 0; `L = max − min`
//!   (2 for images in [−1, 1]); `C1 = (0.01·L)²`, `C2 = (0.03·L)²`;
//! * SSIM and contrast-structure maps are averaged over channels and pixels; between scales both
//!   images are 2×2 average-pooled (odd rows / columns dropped);
//! * the score is `∏_{s<4} cs_s^{w_s} · ssim_4^{w_4}` with weights
//!   (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), without any clamping: a negative contrast term
//!   raised to a fractional weight gives NaN, which upstream's metric script then leaves out of
//!   its mean.

use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, conv2d};
use burn::tensor::ops::ConvOptions;
use hyperstyle_core::weights::tensor_values;

use crate::{check_pair, per_sample_mean, Result};

/// The scale weights of the original MS-SSIM (Wang et al. 2003), as upstream lists them.
pub const SCALE_WEIGHTS: [f32; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// Standard deviation of the Gaussian window.
const SIGMA: f64 = 1.5;

/// Smallest image side: every one of the five scales keeps at least one pixel. (Upstream also
/// pools after the last scale, so it fails below 32 pixels; from 16 to 31 this computes what
/// its formula gives.)
pub const MIN_SIDE: usize = 1 << (SCALE_WEIGHTS.len() - 1);

/// Multi-scale SSIM (`MSSSIM()` of upstream's `criteria/ms_ssim.py`), one score per image pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsSsim {
    window_size: usize,
}

impl Default for MsSsim {
    fn default() -> Self {
        Self::new()
    }
}

impl MsSsim {
    /// The metric with upstream's default 11×11 window.
    pub fn new() -> Self {
        Self { window_size: 11 }
    }

    /// The metric with another window side (`MSSSIM(window_size=…)`); at least 1.
    pub fn with_window_size(window_size: usize) -> Self {
        Self {
            window_size: window_size.max(1),
        }
    }

    /// The window side.
    pub fn window_size(&self) -> usize {
        self.window_size
    }

    /// MS-SSIM of each pair: `[batch, 3, h, w]` twice (h, w ≥ [`MIN_SIDE`]) → `[batch]`, 1 for
    /// identical images. Each sample is scored alone, as upstream's script calls the metric one
    /// pair at a time (a batched upstream call would average each scale over the whole batch and
    /// guess one value range for all of it). Reads one small tensor per scale back from the device
    /// (the value-range guess is data-dependent).
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        check_pair("ms-ssim", &x, &y, (MIN_SIDE, MIN_SIDE))?;
        let (mut x, mut y) = (x, y);
        let mut score: Option<Tensor<B, 1>> = None;
        let last = SCALE_WEIGHTS.len() - 1;
        for (scale, &weight) in SCALE_WEIGHTS.iter().enumerate() {
            let (ssim, cs) = self.ssim(x.clone(), y.clone())?;
            let term = if scale == last { ssim } else { cs };
            let term = term.powf_scalar(weight);
            score = Some(match score {
                None => term,
                Some(product) => product * term,
            });
            if scale < last {
                x = avg_pool2d(x, [2, 2], [2, 2], [0, 0], true, false);
                y = avg_pool2d(y, [2, 2], [2, 2], [0, 0], true, false);
            }
        }
        Ok(score.expect("five scales"))
    }

    /// Single-scale SSIM and mean contrast-structure term of each pair (upstream's
    /// `ssim(…, full=True)` on one pair): `([batch], [batch])`.
    pub fn ssim<B: Backend>(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<(Tensor<B, 1>, Tensor<B, 1>)> {
        check_pair("ssim", &x, &y, (1, 1))?;
        let [batch, channels, height, width] = x.dims();
        let device = x.device();
        let (c1, c2) = stability_constants(&x)?;
        let c1 = Tensor::<B, 1>::from_data(TensorData::new(c1, [batch]), &device).reshape([batch, 1, 1, 1]);
        let c2 = Tensor::<B, 1>::from_data(TensorData::new(c2, [batch]), &device).reshape([batch, 1, 1, 1]);

        // The five window means (x, y, x², y², xy) in one depthwise convolution.
        let side = self.window_size.min(height).min(width);
        let window = Tensor::<B, 1>::from_data(TensorData::new(gaussian_window(side), [side * side]), &device)
            .reshape([1, 1, side, side]);
        let stack = Tensor::cat(
            vec![
                x.clone(),
                y.clone(),
                x.clone() * x.clone(),
                y.clone() * y.clone(),
                x * y,
            ],
            0,
        );
        let stack = stack.reshape([5 * batch * channels, 1, height, width]);
        let means = conv2d(stack, window, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        let [_, _, oh, ow] = means.dims();
        let means = means.reshape([5, batch, channels, oh, ow]);
        let part = |k: usize| means.clone().narrow(0, k, 1).reshape([batch, channels, oh, ow]);
        let (mu1, mu2) = (part(0), part(1));

        let mu1_sq = mu1.clone().powi_scalar(2);
        let mu2_sq = mu2.clone().powi_scalar(2);
        let mu1_mu2 = mu1 * mu2;
        let sigma1_sq = part(2) - mu1_sq.clone();
        let sigma2_sq = part(3) - mu2_sq.clone();
        let sigma12 = part(4) - mu1_mu2.clone();

        let v1 = sigma12.mul_scalar(2.0) + c2.clone();
        let v2 = sigma1_sq + sigma2_sq + c2;
        let cs = v1.clone() / v2.clone();
        let ssim_map = ((mu1_mu2.mul_scalar(2.0) + c1.clone()) * v1) / ((mu1_sq + mu2_sq + c1) * v2);
        Ok((per_sample_mean(ssim_map), per_sample_mean(cs)))
    }
}

/// `(C1, C2)` per sample from the value range guessed from the first image (see the module docs),
/// computed in f64 as Python does and rounded to f32 as torch does when adding them.
fn stability_constants<B: Backend>(x: &Tensor<B, 4>) -> Result<(Vec<f32>, Vec<f32>)> {
    let batch = x.dims()[0];
    let flat = x.clone().reshape([batch as i32, -1]);
    let extremes = Tensor::cat(vec![flat.clone().max_dim(1), flat.min_dim(1)], 1);
    let extremes = tensor_values(extremes)?;
    Ok(extremes
        .chunks_exact(2)
        .map(|m| {
            let max_val = if m[0] > 128.0 { 255.0 } else { 1.0 };
            let min_val = if m[1] < -0.5 { -1.0 } else { 0.0 };
            let range: f64 = max_val - min_val;
            ((0.01 * range).powi(2) as f32, (0.03 * range).powi(2) as f32)
        })
        .unzip())
}

/// Upstream's `create_window(side)`: the 1-D Gaussian `exp(−(i − side/2)²/(2σ²))` (Python floats,
/// then float32), normalised by its float32 sum, and its outer product with itself, row-major.
pub fn gaussian_window(side: usize) -> Vec<f32> {
    let center = (side / 2) as f64;
    let g: Vec<f32> = (0..side)
        .map(|i| (-(i as f64 - center).powi(2) / (2.0 * SIGMA * SIGMA)).exp() as f32)
        .collect();
    let sum: f32 = g.iter().sum();
    let g: Vec<f32> = g.iter().map(|v| v / sum).collect();
    g.iter().flat_map(|a| g.iter().map(move |b| a * b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window sums to 1, is symmetric, and peaks at the centre pixel (`side / 2`, also for
    /// even sides, as upstream centres it).
    #[test]
    fn gaussian_window_is_normalised() {
        for side in [1, 4, 8, 11] {
            let w = gaussian_window(side);
            let sum: f32 = w.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "side {side}: sum {sum}");
            let c = side / 2;
            let peak = w[c * side + c];
            assert!(w.iter().all(|&v| v <= peak), "side {side}");
            if side % 2 == 1 {
                assert_eq!(w[0], w[side * side - 1]);
            }
        }
    }
}
