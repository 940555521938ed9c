//! The ResNet-34 backbone of HyperStyle's hypernetwork and of ReStyle's
//! `ResNetProgressiveBackboneEncoder` (docs/ARCHITECTURE.md §5.4, §5.3).

use burn::prelude::*;
use hyperstyle_core::Weights;

use crate::basic_block::BasicBlock;
use crate::conv2d::{Activation, Conv2d, ConvShape};
use crate::ir_se50::check_image;
use crate::prelu::PRelu;
use hyperstyle_core::Result;

/// torchvision resnet34 `layer1..layer4`: per stage `(out_channels, blocks)`; the first block of
/// stages 2–4 has stride 2 and a downsample (keys `body.0` … `body.15`, downsamples at 3, 7, 13).
const STAGES: [(usize, usize); 4] = [(64, 3), (128, 4), (256, 6), (512, 3)];

/// `conv1` (7×7, stride 2, pad 3, no bias) → `bn1` → `relu` (a **PReLU(64)**, replacing
/// torchvision's ReLU) → no max-pool → `body` (torchvision's layer1–4 flattened). A 256×256
/// input gives `[batch, 512, 16, 16]` (cars' 192×256: `[batch, 512, 12, 16]`).
///
/// Loading reads `conv1.weight`, `bn1.*`, `relu.weight` and `body.*` only, so the same function
/// serves the hypernetwork (other keys beside them: `refinement_blocks.*`, …) and ReStyle
/// (`styles.*`); the caller checks for unexpected keys.
#[derive(Module, Debug)]
pub struct ResNet34<B: Backend> {
    /// `conv1` with `bn1` folded in.
    conv1: Conv2d<B>,
    /// `relu`.
    prelu: PRelu<B>,
    body: Vec<BasicBlock<B>>,
    in_channels: usize,
}

impl<B: Backend> ResNet34<B> {
    /// Loads the backbone for `in_channels` input channels (6 in HyperStyle and ReStyle:
    /// image and current reconstruction).
    pub fn load(weights: &Weights, in_channels: usize, device: &B::Device) -> Result<Self> {
        let conv1 = Conv2d::load_with_batch_norm(
            &weights.pp("conv1"),
            &weights.pp("bn1"),
            ConvShape::new(in_channels, 64, 7, 2, 3),
            device,
        )?;
        let mut body = Vec::with_capacity(16);
        let mut channels = 64;
        for (stage, &(out_channels, blocks)) in STAGES.iter().enumerate() {
            for block in 0..blocks {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                let index = body.len();
                body.push(BasicBlock::load(
                    &weights.pp("body").pp(index),
                    channels,
                    out_channels,
                    stride,
                    device,
                )?);
                channels = out_channels;
            }
        }
        Ok(Self {
            conv1,
            prelu: PRelu::load(&weights.pp("relu"), 64, device)?,
            body,
            in_channels,
        })
    }

    /// Input channels the network was built for.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// x: `[batch, in, h, w]` → features `[batch, 512, ⌈h/16⌉, ⌈w/16⌉]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        check_image(&x, self.in_channels)?;
        let x = self.conv1.forward_activated(x, Activation::PRelu(&self.prelu));
        Ok(self.body.iter().fold(x, |x, block| block.forward(x)))
    }
}
