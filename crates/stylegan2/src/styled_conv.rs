//! StyledConv (modulated conv + noise + fused leaky ReLU, REFERENCE §3.5) and ToRGB (§3.6).

use burn::module::Param;
use burn::prelude::*;

use crate::equal_linear::scaled_leaky_relu;
use crate::error::Result;
use crate::modulated_conv::{load_fir, ConvStrategy, ModulatedConv2d};
use crate::upfirdn::{upsample_2x, FirKernel};
use crate::weights::Weights;

/// `FusedLeakyReLU(NoiseInjection(ModulatedConv2d(x, w, Δ)))`, demodulated.
#[derive(Module, Debug)]
pub struct StyledConv<B: Backend> {
    conv: ModulatedConv2d<B>,
    /// `noise.weight`: one scalar gain for the noise image, shape `[1]`.
    noise_weight: Param<Tensor<B, 1>>,
    /// `activate.bias`: `[out]`, added before the activation.
    activate_bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> StyledConv<B> {
    /// Loads `conv.*`, `noise.weight` and `activate.bias`.
    pub fn load(
        weights: &Weights,
        in_channels: usize,
        out_channels: usize,
        style_dim: usize,
        upsample: Option<&[f32]>,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            conv: ModulatedConv2d::load(
                &weights.pp("conv"),
                in_channels,
                out_channels,
                3,
                style_dim,
                true,
                upsample,
                device,
            )?,
            noise_weight: Param::from_tensor(weights.pp("noise").tensor("weight", [1], device)?),
            activate_bias: Param::from_tensor(weights.pp("activate").tensor("bias", [out_channels], device)?),
        })
    }

    /// x: `[batch, in, h, w]`, style: `[batch, style_dim]`, noise: `[batch or 1, 1, h', w']`,
    /// offset as in [`ModulatedConv2d::forward`].
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        style: Tensor<B, 2>,
        noise: Tensor<B, 4>,
        offset: Option<Tensor<B, 5>>,
        strategy: ConvStrategy,
    ) -> Result<Tensor<B, 4>> {
        let y = self.conv.forward(x, style, offset, strategy)?;
        let y = y + noise * self.noise_weight.val().reshape([1, 1, 1, 1]);
        let c = self.activate_bias.dims()[0];
        Ok(scaled_leaky_relu(y + self.activate_bias.val().reshape([1, c, 1, 1])))
    }
}

/// 1×1 modulated conv to RGB (no demodulation) plus bias, plus the up-sampled previous RGB.
#[derive(Module, Debug)]
pub struct ToRgb<B: Backend> {
    conv: ModulatedConv2d<B>,
    /// `bias`: `[1, 3, 1, 1]`.
    bias: Param<Tensor<B, 4>>,
    /// `upsample.kernel` for the skip path (all but `to_rgb1`).
    upsample: Option<FirKernel<B>>,
}

impl<B: Backend> ToRgb<B> {
    /// Loads `conv.*`, `bias` and, when `upsample` is given, `upsample.kernel`.
    pub fn load(
        weights: &Weights,
        in_channels: usize,
        style_dim: usize,
        upsample: Option<&[f32]>,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            conv: ModulatedConv2d::load(&weights.pp("conv"), in_channels, 3, 1, style_dim, false, None, device)?,
            bias: Param::from_tensor(weights.tensor("bias", [1, 3, 1, 1], device)?),
            upsample: match upsample {
                Some(taps) => Some(load_fir(weights, "upsample.kernel", taps, device)?),
                None => None,
            },
        })
    }

    /// x: `[batch, in, h, w]`, skip: the previous RGB `[batch, 3, h/2, w/2]` → `[batch, 3, h, w]`.
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        style: Tensor<B, 2>,
        skip: Option<Tensor<B, 4>>,
        offset: Option<Tensor<B, 5>>,
        strategy: ConvStrategy,
    ) -> Result<Tensor<B, 4>> {
        let out = self.conv.forward(x, style, offset, strategy)? + self.bias.val();
        Ok(match (skip, &self.upsample) {
            (Some(skip), Some(kernel)) => out + upsample_2x(skip, kernel),
            _ => out,
        })
    }
}
