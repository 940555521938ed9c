//! `nn.Conv2d` with PyTorch's weight layout, optionally with the eval-mode BatchNorm that follows
//! it folded into its weight and bias.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use hyperstyle_core::Weights;

use burn::tensor::activation::{leaky_relu, relu};

use crate::batch_norm;
use crate::prelu::PRelu;
use hyperstyle_core::Result;

/// Geometry of a square convolution: channels, kernel size, stride and zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (every side).
    pub padding: usize,
}

impl ConvShape {
    /// A `kernel`×`kernel` conv, stride `stride`, padding `padding`.
    pub const fn new(in_channels: usize, out_channels: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        }
    }

    fn weight_shape(&self) -> [usize; 4] {
        [self.out_channels, self.in_channels, self.kernel, self.kernel]
    }
}

/// A 2-D convolution with a square kernel, symmetric stride and zero padding.
#[derive(Module, Debug)]
pub struct Conv2d<B: Backend> {
    /// `[out, in, k, k]` (PyTorch layout).
    weight: Param<Tensor<B, 4>>,
    /// `[out]`.
    bias: Option<Param<Tensor<B, 1>>>,
    stride: usize,
    padding: usize,
}

impl<B: Backend> Conv2d<B> {
    /// Loads `weight` and, if `with_bias`, `bias`.
    pub fn load(weights: &Weights, shape: ConvShape, with_bias: bool, device: &B::Device) -> Result<Self> {
        let bias = if with_bias {
            Some(Param::from_tensor(weights.tensor(
                "bias",
                [shape.out_channels],
                device,
            )?))
        } else {
            None
        };
        Ok(Self {
            weight: Param::from_tensor(weights.tensor("weight", shape.weight_shape(), device)?),
            bias,
            stride: shape.stride,
            padding: shape.padding,
        })
    }

    /// Loads a torchvision residual block's shortcut, `downsample.0` (a bias-free 1×1 conv with
    /// `stride`) followed by `downsample.1` (its BatchNorm), folded into one conv.
    pub fn load_downsample(
        block: &Weights,
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let ds = block.pp("downsample");
        Self::load_with_batch_norm(
            &ds.pp(0),
            &ds.pp(1),
            ConvShape::new(in_channels, out_channels, 1, stride, 0),
            device,
        )
    }

    /// Loads a bias-free conv (`conv.weight`) followed by an eval-mode BatchNorm (`bn.*`) as one
    /// conv: `BN(conv(x, W)) = conv(x, W·scale) + shift` per output channel. This saves a pass
    /// over the activations; the result differs from the two-step form by float32 rounding only.
    pub fn load_with_batch_norm(conv: &Weights, bn: &Weights, shape: ConvShape, device: &B::Device) -> Result<Self> {
        let weight_shape = shape.weight_shape();
        let cout = shape.out_channels;
        let weight: Tensor<B, 4> = conv.tensor("weight", weight_shape, device)?;
        let (scale, shift) = batch_norm::scale_shift(bn, cout)?;
        // In the model's float type: float32 multiplies by the rounded scale, float64 is exact.
        let scale = Tensor::<B, 1>::from_data(TensorData::new(scale, [cout]), device).reshape([cout, 1, 1, 1]);
        Ok(Self {
            weight: Param::from_tensor(weight * scale),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(shift, [shape.out_channels]),
                device,
            ))),
            stride: shape.stride,
            padding: shape.padding,
        })
    }

    /// x: `[batch, in, h, w]` → `[batch, out, ⌊(h + 2p − k)/s⌋ + 1, …]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_activated(x, Activation::Identity)
    }

    /// [`Self::forward`] followed by `activation`, fused into the convolution on the CPU backend.
    pub fn forward_activated(&self, x: Tensor<B, 4>, activation: Activation<'_, B>) -> Tensor<B, 4> {
        #[cfg(feature = "flex")]
        {
            use hyperstyle_kernels::flex::{self, ConvActivation};
            // The CPU backend: tiled im2col + GEMM, the bias as GEMM's starting value and the
            // activation applied while the output is in cache.
            let slopes = match activation {
                Activation::PRelu(prelu) => Some(prelu.slopes()),
                _ => None,
            };
            let fused = match (activation, &slopes) {
                (Activation::Relu, _) => ConvActivation::Relu,
                (Activation::PRelu(_), Some(slopes)) => ConvActivation::PRelu(slopes),
                (Activation::LeakyRelu(slope), _) => ConvActivation::LeakyRelu(slope),
                _ => ConvActivation::Identity,
            };
            let bias = self.bias.as_ref().map(Param::val);
            let geometry = (self.stride, self.padding);
            if let Some(y) = flex::conv2d(&x, &self.weight.val(), bias.as_ref(), geometry, fused) {
                return y;
            }
        }
        let y = match self.forward_cube(&x) {
            Some(y) => y,
            None => {
                let options = ConvOptions::new([self.stride, self.stride], [self.padding, self.padding], [1, 1], 1);
                conv2d(x, self.weight.val(), self.bias.as_ref().map(Param::val), options)
            }
        };
        match activation {
            Activation::Identity => y,
            Activation::Relu => relu(y),
            Activation::PRelu(prelu) => prelu.forward(y),
            Activation::LeakyRelu(slope) => leaky_relu(y, slope as f64),
        }
    }
}

impl<B: Backend> Conv2d<B> {
    /// The convolution and its bias by `hyperstyle_kernels`' GPU kernel on the CubeCL backends
    /// (feature `cube`): one fixed kernel for every shape, where Burn's convolutions either run a
    /// direct loop or tune each new shape. `None` on other backends.
    fn forward_cube(&self, x: &Tensor<B, 4>) -> Option<Tensor<B, 4>> {
        #[cfg(feature = "cube")]
        {
            let weight = self.weight.val().unsqueeze_dim(0);
            let y = hyperstyle_kernels::cube::conv2d(x, &weight, self.stride, self.padding)?;
            Some(match &self.bias {
                Some(bias) => {
                    let channels = bias.dims()[0];
                    y + bias.val().reshape([1, channels, 1, 1])
                }
                None => y,
            })
        }
        #[cfg(not(feature = "cube"))]
        {
            let _ = x;
            None
        }
    }
}

/// What follows a convolution in the encoders (see [`Conv2d::forward_activated`]).
#[derive(Debug)]
pub enum Activation<'a, B: Backend> {
    /// Nothing.
    Identity,
    /// ReLU.
    Relu,
    /// A PReLU layer.
    PRelu(&'a PRelu<B>),
    /// Leaky ReLU with this slope.
    LeakyRelu(f32),
}

// Manual impls: a derive would require `B: Copy`.
impl<B: Backend> Clone for Activation<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Activation<'_, B> {}
