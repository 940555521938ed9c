//! StyledConv (modulated conv + noise + fused leaky ReLU) and ToRGB (docs/ARCHITECTURE.md §3.5).

use burn::module::Param;
use burn::prelude::*;

use hyperstyle_core::nn::scaled_leaky_relu;
use hyperstyle_core::weights::{tensor_values, NamedTensor};
use hyperstyle_core::{Result, Weights};

use crate::config::{GeneratorConfig, LayerSpec};
use crate::modulated_conv::{load_fir, ConvStrategy, ModulatedConv2d, Style};
use crate::upfirdn::{upsample_2x, FirKernel};

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
    /// Loads generator layer `layer` (a Conv or ConvUp of the layer table) from `weights`:
    /// `conv.*`, `noise.weight` and `activate.bias`.
    pub fn load(weights: &Weights, layer: &LayerSpec, config: &GeneratorConfig, device: &B::Device) -> Result<Self> {
        Ok(Self {
            conv: ModulatedConv2d::load(
                &weights.pp("conv"),
                layer,
                config.style_dim,
                &config.blur_kernel,
                device,
            )?,
            noise_weight: Param::from_tensor(weights.pp("noise").tensor("weight", [1], device)?),
            activate_bias: Param::from_tensor(weights.pp("activate").tensor("bias", [layer.out_channels], device)?),
        })
    }

    /// The layer as a checkpoint stores it, under `prefix` (e.g. `convs.3.`), with one sample's
    /// `offset` folded into its weight.
    pub fn checkpoint_tensors(
        &self,
        prefix: &str,
        offset: Option<Tensor<B, 5>>,
        out: &mut Vec<NamedTensor>,
    ) -> Result<()> {
        self.conv.checkpoint_tensors(&format!("{prefix}conv."), offset, out)?;
        out.push((
            format!("{prefix}noise.weight"),
            vec![1],
            tensor_values(self.noise_weight.val())?,
        ));
        let bias = tensor_values(self.activate_bias.val())?;
        out.push((format!("{prefix}activate.bias"), vec![bias.len()], bias));
        Ok(())
    }

    /// The style of W-space codes `w` (see [`ModulatedConv2d::style`]).
    pub fn style(&self, w: Tensor<B, 2>) -> Tensor<B, 2> {
        self.conv.style(w)
    }

    /// x: `[batch, in, h, w]`, style as in [`ModulatedConv2d::forward`], noise: `[batch or 1, 1,
    /// h', w']`, offset as in [`ModulatedConv2d::forward`].
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        style: impl Into<Style<B>>,
        noise: Tensor<B, 4>,
        offset: Option<Tensor<B, 5>>,
        strategy: ConvStrategy,
    ) -> Result<Tensor<B, 4>> {
        let y = self.conv.forward(x, style, offset, strategy)?;
        #[cfg(feature = "flex")]
        let y = {
            use hyperstyle_kernels::flex;
            if flex::accelerates(&y) {
                let noise_weight: f32 = self.noise_weight.val().into_scalar().elem();
                let bias = self.activate_bias.val();
                match flex::noise_bias_leaky_relu(y, &noise, noise_weight, &bias, 0.2, std::f32::consts::SQRT_2) {
                    Ok(y) => return Ok(y),
                    Err(y) => y,
                }
            } else {
                y
            }
        };
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
    /// Loads ToRGB layer `layer` of the layer table from `weights`: `conv.*`, `bias` and, above
    /// 4×4 (where the previous RGB is up-sampled into it), `upsample.kernel`.
    pub fn load(weights: &Weights, layer: &LayerSpec, config: &GeneratorConfig, device: &B::Device) -> Result<Self> {
        let taps = &config.blur_kernel;
        Ok(Self {
            conv: ModulatedConv2d::load(&weights.pp("conv"), layer, config.style_dim, taps, device)?,
            bias: Param::from_tensor(weights.tensor("bias", [1, 3, 1, 1], device)?),
            upsample: if layer.resolution > 4 {
                Some(load_fir(weights, "upsample.kernel", taps, device)?)
            } else {
                None
            },
        })
    }

    /// The layer as a checkpoint stores it, under `prefix` (e.g. `to_rgbs.2.`), with one sample's
    /// `offset` folded into its weight.
    pub fn checkpoint_tensors(
        &self,
        prefix: &str,
        offset: Option<Tensor<B, 5>>,
        out: &mut Vec<NamedTensor>,
    ) -> Result<()> {
        self.conv.checkpoint_tensors(&format!("{prefix}conv."), offset, out)?;
        out.push((
            format!("{prefix}bias"),
            vec![1, 3, 1, 1],
            tensor_values(self.bias.val())?,
        ));
        if let Some(kernel) = &self.upsample {
            let (shape, values) = kernel.checkpoint_tensor()?;
            out.push((format!("{prefix}upsample.kernel"), shape, values));
        }
        Ok(())
    }

    /// The style of W-space codes `w` (see [`ModulatedConv2d::style`]).
    pub fn style(&self, w: Tensor<B, 2>) -> Tensor<B, 2> {
        self.conv.style(w)
    }

    /// x: `[batch, in, h, w]`, style as in [`ModulatedConv2d::forward`], skip: the previous RGB
    /// `[batch, 3, h/2, w/2]` → `[batch, 3, h, w]`.
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        style: impl Into<Style<B>>,
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
