//! `bottleneck_IR_SE(in_channel, depth, stride)`: the residual unit of IR-SE-50 (docs/ARCHITECTURE.md §5.1).

use burn::prelude::*;
use hyperstyle_core::Weights;

use crate::batch_norm::BatchNorm;
use crate::conv2d::{Activation, Conv2d, ConvShape};
use crate::prelu::PRelu;
use crate::se_module::SeModule;
use hyperstyle_core::Result;

/// `res_layer(x) + shortcut_layer(x)`, no activation after the sum.
///
/// * `res_layer` (Sequential indices): BN(in) (0) → conv3×3 in→depth, stride 1 (1) → PReLU (2)
///   → conv3×3 depth→depth with the unit's stride (3) → BN (4) → SE (5). BN 4 is folded into
///   conv 3.
/// * `shortcut_layer`: when `in == depth`, `MaxPool2d(1, stride)`, i.e. taking every
///   `stride`-th row and column; otherwise conv1×1 with the stride (0) → BN (1), folded.
#[derive(Module, Debug)]
pub struct BottleneckIrSe<B: Backend> {
    bn_in: BatchNorm<B>,
    conv1: Conv2d<B>,
    prelu: PRelu<B>,
    conv2: Conv2d<B>,
    se: SeModule<B>,
    /// `None`: the parameter-free subsampling shortcut.
    shortcut: Option<Conv2d<B>>,
    stride: usize,
}

impl<B: Backend> BottleneckIrSe<B> {
    /// Loads `res_layer.{0..5}.*` and, when `in_channels != depth`, `shortcut_layer.{0,1}.*`.
    pub fn load(
        weights: &Weights,
        in_channels: usize,
        depth: usize,
        stride: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let res = weights.pp("res_layer");
        let shortcut = if in_channels == depth {
            None
        } else {
            let sc = weights.pp("shortcut_layer");
            Some(Conv2d::load_with_batch_norm(
                &sc.pp(0),
                &sc.pp(1),
                ConvShape::new(in_channels, depth, 1, stride, 0),
                device,
            )?)
        };
        Ok(Self {
            bn_in: BatchNorm::load(&res.pp(0), in_channels, device)?,
            conv1: Conv2d::load(&res.pp(1), ConvShape::new(in_channels, depth, 3, 1, 1), false, device)?,
            prelu: PRelu::load(&res.pp(2), depth, device)?,
            conv2: Conv2d::load_with_batch_norm(
                &res.pp(3),
                &res.pp(4),
                ConvShape::new(depth, depth, 3, stride, 1),
                device,
            )?,
            se: SeModule::load(&res.pp(5), depth, device)?,
            shortcut,
            stride,
        })
    }

    /// x: `[batch, in, h, w]` → `[batch, depth, ⌈h/stride⌉, ⌈w/stride⌉]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &self.shortcut {
            Some(conv) => conv.forward(x.clone()),
            None => subsample(x.clone(), self.stride),
        };
        let res = self.bn_in.forward(x);
        let res = self.conv1.forward_activated(res, Activation::PRelu(&self.prelu));
        self.se.forward_add(self.conv2.forward(res), shortcut)
    }
}

/// `MaxPool2d(kernel_size=1, stride)`: a 1×1 max is the sample itself, so this is
/// `x[:, :, ::stride, ::stride]` (⌈h/stride⌉ rows, like the strided convs beside it).
fn subsample<B: Backend>(x: Tensor<B, 4>, stride: usize) -> Tensor<B, 4> {
    if stride == 1 {
        return x;
    }
    let step = stride as isize;
    x.slice(s![.., .., ..;step, ..;step])
}
