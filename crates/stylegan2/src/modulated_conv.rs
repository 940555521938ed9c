//! The modulated convolution with per-sample multiplicative weight offsets (REFERENCE §3.4, §4).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use crate::equal_linear::EqualLinear;
use crate::error::{Error, Result};
use crate::upfirdn::{blur, FirKernel};
use crate::weights::Weights;

/// Epsilon inside the demodulation rsqrt.
const DEMOD_EPS: f32 = 1e-8;

/// `ModulatedConv2d(in, out, k, style_dim, demodulate, upsample)` of rosinality's StyleGAN2.
///
/// Per sample `b` with style `s_b = modulation(w_b)` and optional offset `Δ_b`:
/// `W_b = scale·W·(1 + Δ_b)·s_b`, demodulated per output channel, then a stride-1 conv (or, when
/// up-sampling, a stride-2 transposed conv followed by the FIR blur).
///
/// Without offsets all samples share `W`, so the modulation is moved onto the activations (scale
/// the input by `s`, one batched conv, scale the output by the demodulation factors) — the same
/// function with one dense conv for the whole batch. With offsets each sample gets its own
/// kernel and its own dense conv; grouped convs are avoided (they are far slower on GPUs).
#[derive(Module, Debug)]
pub struct ModulatedConv2d<B: Backend> {
    /// `scale · weight` with the leading 1 dropped: `[out, in, k, k]`.
    weight: Param<Tensor<B, 4>>,
    /// `Σ_taps (scale·weight)²`: `[out, in]`, the demodulation of the shared-weight path.
    weight_sq: Tensor<B, 2>,
    modulation: EqualLinear<B>,
    blur: Option<FirKernel<B>>,
    demodulate: bool,
}

impl<B: Backend> ModulatedConv2d<B> {
    /// Loads `weight [1, out, in, k, k]`, `modulation.*` and, for up-sampling layers,
    /// `blur.kernel` (the filter `default_blur` is used if the checkpoint has none).
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        weights: &Weights,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        style_dim: usize,
        demodulate: bool,
        upsample: Option<&[f32]>,
        device: &B::Device,
    ) -> Result<Self> {
        let scale = (1.0 / ((in_channels * kernel * kernel) as f64).sqrt()) as f32;
        let raw = weights.values("weight", &[1, out_channels, in_channels, kernel, kernel])?;
        let scaled: Vec<f32> = raw.into_iter().map(|v| v * scale).collect();
        let weight = Tensor::<B, 4>::from_data(
            TensorData::new(scaled, [out_channels, in_channels, kernel, kernel]),
            device,
        );
        let weight_sq = weight
            .clone()
            .powi_scalar(2)
            .sum_dim(3)
            .sum_dim(2)
            .reshape([out_channels, in_channels]);
        let modulation = EqualLinear::load(
            &weights.pp("modulation"),
            style_dim,
            in_channels,
            1.0,
            true,
            false,
            device,
        )?;
        let blur = match upsample {
            Some(taps) => Some(load_fir(weights, "blur.kernel", taps, device)?),
            None => None,
        };
        Ok(Self {
            weight: Param::from_tensor(weight),
            weight_sq,
            modulation,
            blur,
            demodulate,
        })
    }

    /// `[out, in, k, k]` of the stored weight.
    pub fn weight_dims(&self) -> [usize; 4] {
        self.weight.dims()
    }

    /// x: `[batch, in, h, w]`, style: `[batch, style_dim]`, offset: `[batch or 1, out, in, k, k]`
    /// → `[batch, out, h', w']` (`h' = 2h` when up-sampling).
    pub fn forward(&self, x: Tensor<B, 4>, style: Tensor<B, 2>, offset: Option<Tensor<B, 5>>) -> Result<Tensor<B, 4>> {
        let [batch, cin, _, _] = x.dims();
        let [cout, win, k, _] = self.weight.dims();
        if cin != win {
            return Err(Error::InvalidInput(format!(
                "modulated conv expects {win} input channels, got {cin}"
            )));
        }
        let s = self.modulation.forward(style);
        let y = match offset {
            // A batch shares W: modulate the activations and run one batched conv. A single
            // sample modulates the (much smaller) kernel instead, saving two passes over the
            // activations (at 1024² they are 32 M values, the kernel 9 K).
            None if batch > 1 => self.forward_shared(x, s),
            None => self.forward_per_sample(x, s, None),
            Some(offset) => {
                let dims = offset.dims();
                if dims[1..] != [cout, cin, k, k] || (dims[0] != batch && dims[0] != 1) {
                    return Err(Error::InvalidInput(format!(
                        "weight offset of shape {dims:?} does not fit a layer of weight [{cout}, {cin}, {k}, {k}] at batch {batch}"
                    )));
                }
                self.forward_per_sample(x, s, Some(offset))
            }
        };
        Ok(match &self.blur {
            Some(kernel) => blur(y, kernel),
            None => y,
        })
    }

    fn conv(&self, x: Tensor<B, 4>, weight: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.blur.is_some() {
            // Transposed conv takes `[in, out, k, k]`: the (out, in) axes are swapped, not flipped.
            conv_transpose2d(
                x,
                weight.swap_dims(0, 1),
                None,
                ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1),
            )
        } else {
            let pad = weight.dims()[2] / 2;
            conv2d(x, weight, None, ConvOptions::new([1, 1], [pad, pad], [1, 1], 1))
        }
    }

    fn forward_shared(&self, x: Tensor<B, 4>, s: Tensor<B, 2>) -> Tensor<B, 4> {
        let [batch, cin] = s.dims();
        let y = self.conv(x * s.clone().reshape([batch, cin, 1, 1]), self.weight.val());
        if !self.demodulate {
            return y;
        }
        // Σ_{i,taps} (W[o,i]·s[b,i])² = Σ_i s[b,i]²·Σ_taps W[o,i]²
        let demod = s
            .powi_scalar(2)
            .matmul(self.weight_sq.clone().transpose())
            .add_scalar(DEMOD_EPS)
            .sqrt()
            .recip();
        let cout = demod.dims()[1];
        y * demod.reshape([batch, cout, 1, 1])
    }

    fn forward_per_sample(&self, x: Tensor<B, 4>, s: Tensor<B, 2>, offset: Option<Tensor<B, 5>>) -> Tensor<B, 4> {
        let batch = x.dims()[0];
        let outputs = (0..batch)
            .map(|b| {
                let delta = offset.as_ref().map(|o| {
                    // An offset with batch 1 applies to every sample.
                    let index = if o.dims()[0] == 1 { 0 } else { b };
                    o.clone().narrow(0, index, 1).squeeze_dim::<4>(0)
                });
                let weight = self.modulated_weight(s.clone().narrow(0, b, 1), delta);
                self.conv(x.clone().narrow(0, b, 1), weight)
            })
            .collect();
        Tensor::cat(outputs, 0)
    }

    /// The kernel one sample convolves with: `scale·W·(1 + Δ)·s`, demodulated (upstream's
    /// order of operations). s: `[1, in]`, delta: `[out, in, k, k]` → `[out, in, k, k]`.
    pub fn modulated_weight(&self, s: Tensor<B, 2>, delta: Option<Tensor<B, 4>>) -> Tensor<B, 4> {
        let cin = s.dims()[1];
        let mut weight = self.weight.val();
        if let Some(delta) = delta {
            weight = weight * delta.add_scalar(1.0);
        }
        let weight = weight * s.reshape([1, cin, 1, 1]);
        if !self.demodulate {
            return weight;
        }
        let cout = weight.dims()[0];
        let demod = weight
            .clone()
            .powi_scalar(2)
            .sum_dim(3)
            .sum_dim(2)
            .sum_dim(1)
            .add_scalar(DEMOD_EPS)
            .sqrt()
            .recip();
        weight * demod.reshape([cout, 1, 1, 1])
    }
}

/// A 4×4 FIR buffer from the checkpoint, or `make_kernel(taps)·4` where the file has none.
pub(crate) fn load_fir<B: Backend>(
    weights: &Weights,
    name: &str,
    taps: &[f32],
    device: &B::Device,
) -> Result<FirKernel<B>> {
    let n = taps.len();
    if weights.contains(name) {
        Ok(FirKernel::from_values(&weights.values(name, &[n, n])?, n, n, device))
    } else {
        Ok(FirKernel::from_taps(taps, 4.0, device))
    }
}
