//! The conv stacks of the refinement blocks: 3×3 convs with bias, each followed by
//! `nn.LeakyReLU()` (slope 0.01, no gain), at `Sequential` indices 0, 2, 4, … (the activations
//! sit at the odd indices).

use burn::prelude::*;
use hyperstyle_core::Weights;
use hyperstyle_encoders::conv2d::{Activation, Conv2d, ConvShape};

use hyperstyle_core::Result;

/// Loads `convs.{0,2,4,…}` from `(in, out, stride)` triples (3×3, padding 1, with bias).
pub fn load<B: Backend>(
    weights: &Weights,
    layers: &[(usize, usize, usize)],
    device: &B::Device,
) -> Result<Vec<Conv2d<B>>> {
    layers
        .iter()
        .enumerate()
        .map(|(i, &(cin, cout, stride))| {
            Conv2d::load(
                &weights.pp(2 * i),
                ConvShape::new(cin, cout, 3, stride, 1),
                true,
                device,
            )
        })
        .collect()
}

/// Runs the stack: `x ← lrelu_0.01(conv(x))` per layer.
pub fn forward<B: Backend>(layers: &[Conv2d<B>], x: Tensor<B, 4>) -> Tensor<B, 4> {
    layers
        .iter()
        .fold(x, |x, conv| conv.forward_activated(x, Activation::LeakyRelu(0.01)))
}
