//! The IR-SE-50 backbone (ArcFace's `Backbone(50, 'ir_se')` without its output layer), shared
//! by the W encoder and ReStyle-e4e (docs/ARCHITECTURE.md §5.1, §5.2, §10.2).

use burn::prelude::*;
use hyperstyle_core::Weights;

use crate::bottleneck_ir_se::BottleneckIrSe;
use crate::conv2d::{Activation, Conv2d, ConvShape};
use crate::prelu::PRelu;
use hyperstyle_core::{Error, Result};

/// `get_blocks(50)`: per stage `(in_channel, depth, units)`; the first unit of each stage has
/// stride 2, the others stride 1 (24 units, keys `body.0` … `body.23`).
const STAGES: [(usize, usize, usize); 4] = [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)];

/// Channels of the final feature map.
pub const FEATURE_CHANNELS: usize = 512;

/// `input_layer` (conv3×3 in→64 without bias (0), BN (1), PReLU (2)) followed by the 24-unit
/// `body`. Four stride-2 stages: a 256×256 input gives a `[batch, 512, 16, 16]` map.
#[derive(Module, Debug)]
pub struct IrSe50<B: Backend> {
    /// `input_layer.0` with `input_layer.1` folded in.
    input_conv: Conv2d<B>,
    /// `input_layer.2`.
    input_prelu: PRelu<B>,
    body: Vec<BottleneckIrSe<B>>,
    in_channels: usize,
}

impl<B: Backend> IrSe50<B> {
    /// Loads `input_layer.*` and `body.*` for `in_channels` input channels (3 for the W encoder,
    /// `input_nc` = 6 for ReStyle). Other keys under `weights` are left to the caller.
    pub fn load(weights: &Weights, in_channels: usize, device: &B::Device) -> Result<Self> {
        let input = weights.pp("input_layer");
        let input_conv = Conv2d::load_with_batch_norm(
            &input.pp(0),
            &input.pp(1),
            ConvShape::new(in_channels, 64, 3, 1, 1),
            device,
        )?;
        let units = STAGES.iter().flat_map(|&(in_channel, depth, units)| {
            (0..units).map(move |u| {
                if u == 0 {
                    (in_channel, depth, 2)
                } else {
                    (depth, depth, 1)
                }
            })
        });
        let body = units
            .enumerate()
            .map(|(i, (in_channel, depth, stride))| {
                BottleneckIrSe::load(&weights.pp("body").pp(i), in_channel, depth, stride, device)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            input_conv,
            input_prelu: PRelu::load(&input.pp(2), 64, device)?,
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
        let x = self
            .input_conv
            .forward_activated(x, Activation::PRelu(&self.input_prelu));
        Ok(self.body.iter().fold(x, |x, unit| unit.forward(x)))
    }
}

/// Checks that `x` is a non-empty `[batch, channels, h, w]` batch.
pub(crate) fn check_image<B: Backend>(x: &Tensor<B, 4>, channels: usize) -> Result<()> {
    let [batch, c, h, w] = x.dims();
    if c != channels || batch == 0 || h == 0 || w == 0 {
        return Err(Error::InvalidInput(format!(
            "expected images [batch, {channels}, height, width] with nothing empty, got {:?}",
            x.dims()
        )));
    }
    Ok(())
}
