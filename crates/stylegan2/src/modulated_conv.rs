//! The modulated convolution with per-sample multiplicative weight offsets
//! (docs/ARCHITECTURE.md §3.4, §4).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv_transpose2d, unfold4d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode, UnfoldOptions};

use hyperstyle_core::weights::{tensor_values, NamedTensor};
use hyperstyle_core::{parse_name, EqualLinear, EqualLinearConfig, Error, Result, Weights};

use crate::config::{LayerKind, LayerSpec};
use crate::upfirdn::{blur, FirKernel};

/// Epsilon inside the demodulation rsqrt.
const DEMOD_EPS: f32 = 1e-8;

/// How a modulated conv runs when every sample has its own kernel (weight offsets, or batch 1).
///
/// Both give the same function up to float rounding; which is faster depends on the backend and
/// the batch size (BENCHMARKS.md). Grouped convolutions are never used: on GPUs they are an order
/// of magnitude slower than either. Where `hyperstyle_kernels` has kernels for the backend
/// (feature `flex`: the CPU; feature `cube`: wgpu and CUDA) neither is used: the convolutions run
/// as those kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvStrategy {
    /// One dense convolution per sample with that sample's kernel (the default).
    #[default]
    PerSample,
    /// The whole batch in one batched matrix product: the padded input is unfolded into
    /// `[batch, in·k², h·w]` columns and multiplied by the `[batch, out, in·k²]` kernels. Needs
    /// `k²` times the input's memory for the columns. Up-sampling (transposed) convs keep
    /// [`ConvStrategy::PerSample`].
    BatchedGemm,
}

impl ConvStrategy {
    /// Every strategy, in command-line order.
    pub const ALL: [ConvStrategy; 2] = [ConvStrategy::PerSample, ConvStrategy::BatchedGemm];

    /// The command-line name: `per-sample` or `gemm`.
    pub fn name(self) -> &'static str {
        match self {
            ConvStrategy::PerSample => "per-sample",
            ConvStrategy::BatchedGemm => "gemm",
        }
    }
}

impl std::fmt::Display for ConvStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ConvStrategy {
    type Err = Error;

    /// `per-sample` or `gemm`.
    fn from_str(s: &str) -> Result<Self> {
        parse_name("conv strategy", s, &Self::ALL, Self::name)
    }
}

/// What drives a modulated convolution: a W-space code, or its style (StyleSpace).
#[derive(Debug, Clone)]
pub enum Style<B: Backend> {
    /// A code `[batch, style_dim]` (a row of W+); the layer's affine `modulation` maps it to the
    /// style.
    Latent(Tensor<B, 2>),
    /// The style itself, `[batch, in_channels]`: the modulation's output, one factor per input
    /// channel (StyleSpace, as StyleCLIP's global directions edit it).
    Modulated(Tensor<B, 2>),
}

impl<B: Backend> From<Tensor<B, 2>> for Style<B> {
    /// A W-space code.
    fn from(w: Tensor<B, 2>) -> Self {
        Style::Latent(w)
    }
}

/// `ModulatedConv2d(in, out, k, style_dim, demodulate, upsample)` of rosinality's StyleGAN2.
///
/// Per sample `b` with style `s_b = modulation(w_b)` and optional offset `Δ_b`:
/// `W_b = scale·W·(1 + Δ_b)·s_b`, demodulated per output channel, then a stride-1 conv (or, when
/// up-sampling, a stride-2 transposed conv followed by the FIR blur).
///
/// Without offsets all samples share `W`, so the modulation is moved onto the activations (scale
/// the input by `s`, one batched conv, scale the output by the demodulation factors) — the same
/// function with one dense conv for the whole batch. With offsets the kernels of the whole batch
/// are prepared in one pass of tensor ops, then convolved as [`ConvStrategy`] says.
///
/// An offset is either per tap, `[batch or 1, out, in, k, k]`, or per filter pair,
/// `[batch or 1, out, in, 1, 1]` (the same factor on every tap, what HyperStyle's non-shared
/// refinement blocks predict); the latter is broadcast over the taps, never materialised.
#[derive(Module, Debug)]
pub struct ModulatedConv2d<B: Backend> {
    /// `scale · weight` with the leading 1 kept for broadcasting: `[1, out, in, k, k]`.
    weight: Param<Tensor<B, 5>>,
    /// `Σ_taps (scale·weight)²`: `[out, in]`, the demodulation of the shared-weight path.
    weight_sq: Tensor<B, 2>,
    modulation: EqualLinear<B>,
    blur: Option<FirKernel<B>>,
    demodulate: bool,
}

impl<B: Backend> ModulatedConv2d<B> {
    /// Loads generator layer `layer` from `weights` (the view of its `conv`): `weight
    /// [1, out, in, k, k]`, `modulation.*` and, for up-sampling layers, `blur.kernel` (the FIR
    /// filter of `blur_taps` is used where the checkpoint has none). ToRGB layers are not
    /// demodulated.
    pub fn load(
        weights: &Weights,
        layer: &LayerSpec,
        style_dim: usize,
        blur_taps: &[f32],
        device: &B::Device,
    ) -> Result<Self> {
        let (in_channels, out_channels, kernel) = (layer.in_channels, layer.out_channels, layer.kernel);
        // Upstream multiplies the f32 weight by a Python float: the scale rounded to the model's
        // float type, one product per value.
        let scale = 1.0 / ((in_channels * kernel * kernel) as f64).sqrt();
        let weight = weights
            .tensor::<B, 5>("weight", [1, out_channels, in_channels, kernel, kernel], device)?
            .mul_scalar(scale);
        let weight_sq = weight
            .clone()
            .powi_scalar(2)
            .sum_dim(4)
            .sum_dim(3)
            .reshape([out_channels, in_channels]);
        let modulation = EqualLinearConfig::new(style_dim, in_channels).load(&weights.pp("modulation"), device)?;
        let blur = match layer.kind {
            LayerKind::ConvUp => Some(load_fir(weights, "blur.kernel", blur_taps, device)?),
            LayerKind::Conv | LayerKind::ToRgb => None,
        };
        Ok(Self {
            weight: Param::from_tensor(weight),
            weight_sq,
            modulation,
            blur,
            demodulate: !layer.is_to_rgb(),
        })
    }

    /// The layer as a checkpoint stores it, under `prefix` (e.g. `convs.3.conv.`): `weight`
    /// with `offset` (one sample's, `[1, out, in, k|1, k|1]`) folded in as `W·(1 + Δ)`,
    /// `modulation.*` and `blur.kernel`.
    pub fn checkpoint_tensors(
        &self,
        prefix: &str,
        offset: Option<Tensor<B, 5>>,
        out: &mut Vec<NamedTensor>,
    ) -> Result<()> {
        let [cout, cin, k, _] = self.weight_dims();
        // The inverse of `load`'s scaling, in the model's float type.
        let scale = 1.0 / ((cin * k * k) as f64).sqrt();
        let mut weight = self.weight.val().div_scalar(scale);
        if let Some(offset) = offset {
            let dims = offset.dims();
            let taps_ok = dims[3..] == [k, k] || dims[3..] == [1, 1];
            if dims[..3] != [1, cout, cin] || !taps_ok {
                return Err(Error::InvalidInput(format!(
                    "one sample's offset for a layer of weight [{cout}, {cin}, {k}, {k}] must be [1, {cout}, {cin}, {k} or 1, {k} or 1], got {dims:?}"
                )));
            }
            weight = weight * offset.add_scalar(1.0);
        }
        out.push((
            format!("{prefix}weight"),
            vec![1, cout, cin, k, k],
            tensor_values(weight)?,
        ));
        let (modulation, bias) = self.modulation.checkpoint_tensors()?;
        let style_dim = modulation.len() / cin;
        out.push((format!("{prefix}modulation.weight"), vec![cin, style_dim], modulation));
        if let Some(bias) = bias {
            out.push((format!("{prefix}modulation.bias"), vec![cin], bias));
        }
        if let Some(blur) = &self.blur {
            let (shape, values) = blur.checkpoint_tensor()?;
            out.push((format!("{prefix}blur.kernel"), shape, values));
        }
        Ok(())
    }

    /// `[out, in, k, k]` of the stored weight.
    pub fn weight_dims(&self) -> [usize; 4] {
        let [_, cout, cin, k, _] = self.weight.dims();
        [cout, cin, k, k]
    }

    /// The style of W-space codes `w` `[batch, style_dim]`: `modulation(w)`, `[batch, in]`.
    pub fn style(&self, w: Tensor<B, 2>) -> Tensor<B, 2> {
        self.modulation.forward(w)
    }

    /// x: `[batch, in, h, w]`, style: a code `[batch, style_dim]` (a tensor converts to
    /// [`Style::Latent`]) or a [`Style::Modulated`] style `[batch, in]`, offset: `[batch or 1,
    /// out, in, k, k]` or `[batch or 1, out, in, 1, 1]` → `[batch, out, h', w']` (`h' = 2h` when
    /// up-sampling).
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        style: impl Into<Style<B>>,
        offset: Option<Tensor<B, 5>>,
        strategy: ConvStrategy,
    ) -> Result<Tensor<B, 4>> {
        let [batch, cin, _, _] = x.dims();
        let [cout, win, k, _] = self.weight_dims();
        if cin != win {
            return Err(Error::InvalidInput(format!(
                "modulated conv expects {win} input channels, got {cin}"
            )));
        }
        let s = match style.into() {
            Style::Latent(w) => self.modulation.forward(w),
            Style::Modulated(s) => {
                if s.dims() != [batch, cin] {
                    return Err(Error::InvalidInput(format!(
                        "a style for this layer must be [{batch}, {cin}], got {:?}",
                        s.dims()
                    )));
                }
                s
            }
        };
        if let Some(offset) = &offset {
            let dims = offset.dims();
            let taps_ok = dims[3..] == [k, k] || dims[3..] == [1, 1];
            if dims[1..3] != [cout, cin] || !taps_ok || (dims[0] != batch && dims[0] != 1) {
                return Err(Error::InvalidInput(format!(
                    "weight offset of shape {dims:?} does not fit a layer of weight [{cout}, {cin}, {k}, {k}] at batch {batch}"
                )));
            }
        }
        if let Some(y) = self.forward_native(&x, s.clone(), offset.clone()) {
            return Ok(y);
        }
        let y = match offset {
            // A batch shares W: modulate the activations and run one batched conv. A single
            // sample modulates the (much smaller) kernel instead, saving two passes over the
            // activations (at 1024² they are 32 M values, the kernel 9 K).
            None if batch > 1 => self.forward_shared(x, s),
            offset => self.forward_per_sample(x, self.modulated_weights(s, offset), strategy),
        };
        Ok(match &self.blur {
            Some(kernel) => blur(y, kernel),
            None => y,
        })
    }

    /// The path of backends with native kernels, the CPU (`flex`) and the CubeCL GPU backends
    /// (`cube`): every sample's kernel prepared as with offsets (even when the batch shares `W`:
    /// kernels are small next to activations), convolved by `hyperstyle_kernels`, then blurred.
    /// [`ConvStrategy`] does not apply. `None` where no kernel runs (another backend or dtype, or
    /// built without either feature).
    fn forward_native(&self, x: &Tensor<B, 4>, s: Tensor<B, 2>, offset: Option<Tensor<B, 5>>) -> Option<Tensor<B, 4>> {
        // (stride-2 transposed conv, "same" conv) of the backend's kernels, if it has any.
        type PerSampleConv<B> = fn(&Tensor<B, 4>, &Tensor<B, 5>) -> Option<Tensor<B, 4>>;
        #[allow(unused_mut)]
        let mut convs: Option<(PerSampleConv<B>, PerSampleConv<B>)> = None;
        #[cfg(feature = "flex")]
        if hyperstyle_kernels::flex::accelerates(x) {
            use hyperstyle_kernels::flex;
            convs = Some((flex::conv_transpose2d_stride2, flex::conv2d_same));
        }
        #[cfg(feature = "cube")]
        if convs.is_none() && hyperstyle_kernels::cube::accelerates::<B>() {
            use hyperstyle_kernels::cube;
            convs = Some((cube::conv_transpose2d_stride2, cube::conv2d_same));
        }
        let (transposed, same) = convs?;
        let weights = self.modulated_weights(s, offset);
        Some(match &self.blur {
            Some(kernel) => blur(transposed(x, &weights)?, kernel),
            None => same(x, &weights)?,
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
        let [cout, _, k, _] = self.weight_dims();
        let weight = self.weight.val().reshape([cout, cin, k, k]);
        let y = self.conv(x * s.clone().reshape([batch, cin, 1, 1]), weight);
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
        y * demod.reshape([batch, cout, 1, 1])
    }

    /// Convolves each sample with its own kernel. weights: `[batch, out, in, k, k]`.
    fn forward_per_sample(&self, x: Tensor<B, 4>, weights: Tensor<B, 5>, strategy: ConvStrategy) -> Tensor<B, 4> {
        let [batch, cout, cin, k, _] = weights.dims();
        if strategy == ConvStrategy::BatchedGemm && self.blur.is_none() {
            return batched_gemm_conv(x, weights);
        }
        let outputs = (0..batch)
            .map(|b| {
                let weight = weights.clone().narrow(0, b, 1).reshape([cout, cin, k, k]);
                self.conv(x.clone().narrow(0, b, 1), weight)
            })
            .collect();
        Tensor::cat(outputs, 0)
    }

    /// The kernels the samples convolve with: `scale·W·(1 + Δ)·s`, demodulated (upstream's order
    /// of operations), for the whole batch at once. s: `[batch, in]`, offset as in
    /// [`Self::forward`] → `[batch, out, in, k, k]`.
    pub fn modulated_weights(&self, s: Tensor<B, 2>, offset: Option<Tensor<B, 5>>) -> Tensor<B, 5> {
        let [batch, cin] = s.dims();
        let mut weight = self.weight.val();
        if let Some(offset) = offset {
            weight = weight * offset.add_scalar(1.0);
        }
        let weight = weight * s.reshape([batch, 1, cin, 1, 1]);
        if !self.demodulate {
            return weight;
        }
        let demod = weight
            .clone()
            .powi_scalar(2)
            .sum_dim(4)
            .sum_dim(3)
            .sum_dim(2)
            .add_scalar(DEMOD_EPS)
            .sqrt()
            .recip();
        weight * demod
    }
}

/// A stride-1, "same"-padded convolution of each sample with its own kernel as one batched
/// matrix product. x: `[batch, in, h, w]`, weights: `[batch, out, in, k, k]` → `[batch, out, h, w]`.
fn batched_gemm_conv<B: Backend>(x: Tensor<B, 4>, weights: Tensor<B, 5>) -> Tensor<B, 4> {
    let [batch, cout, cin, k, _] = weights.dims();
    let [_, _, h, w] = x.dims();
    let kernels = weights.reshape([batch, cout, cin * k * k]);
    let columns = if k == 1 {
        x.reshape([batch, cin, h * w])
    } else {
        // Padding first keeps `unfold4d` on its copy-only path (with padding it runs a conv).
        let pad = k / 2;
        let padded = x.pad([(0, 0), (0, 0), (pad, pad), (pad, pad)], PadMode::Constant(0.0));
        unfold4d(padded, [k, k], UnfoldOptions::new([1, 1], [0, 0], [1, 1]))
    };
    kernels.matmul(columns).reshape([batch, cout, h, w])
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
