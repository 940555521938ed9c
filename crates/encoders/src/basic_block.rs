//! torchvision's ResNet `BasicBlock`, as used by the ResNet-34 backbone (docs/ARCHITECTURE.md §5.4).

use burn::prelude::*;
use burn::tensor::activation::relu;
use hyperstyle_core::Weights;

use crate::conv2d::{Activation, Conv2d, ConvShape};
use hyperstyle_core::Result;

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + identity)`, where `conv1` (3×3) carries the stride,
/// `conv2` is 3×3 stride 1, and `identity` is `x` or `downsample(x)` (conv1×1 with the stride
/// (`downsample.0`) → BN (`downsample.1`)). Every BN is folded into the conv before it.
/// The activations are plain ReLUs (only the stem's is a PReLU).
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    downsample: Option<Conv2d<B>>,
}

impl<B: Backend> BasicBlock<B> {
    /// Loads `conv1`, `bn1`, `conv2`, `bn2` and, if `in_channels != out_channels` or
    /// `stride != 1` (torchvision's rule), `downsample.{0,1}`.
    pub fn load(
        weights: &Weights,
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let downsample = if in_channels != out_channels || stride != 1 {
            Some(Conv2d::load_downsample(
                weights,
                in_channels,
                out_channels,
                stride,
                device,
            )?)
        } else {
            None
        };
        Ok(Self {
            conv1: Conv2d::load_with_batch_norm(
                &weights.pp("conv1"),
                &weights.pp("bn1"),
                ConvShape::new(in_channels, out_channels, 3, stride, 1),
                device,
            )?,
            conv2: Conv2d::load_with_batch_norm(
                &weights.pp("conv2"),
                &weights.pp("bn2"),
                ConvShape::new(out_channels, out_channels, 3, 1, 1),
                device,
            )?,
            downsample,
        })
    }

    /// x: `[batch, in, h, w]` → `[batch, out, ⌈h/stride⌉, ⌈w/stride⌉]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(conv) => conv.forward(x.clone()),
            None => x.clone(),
        };
        let out = self.conv2.forward(self.conv1.forward_activated(x, Activation::Relu));
        #[cfg(feature = "flex")]
        let out = match hyperstyle_kernels::flex::add_relu(out, &identity) {
            Ok(y) => return y,
            Err(out) => out,
        };
        relu(out + identity)
    }
}
