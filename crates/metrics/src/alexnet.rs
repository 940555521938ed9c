//! The convolutional part of torchvision's AlexNet (`alexnet().features`) as LPIPS uses it: the
//! five ReLU outputs, the last max-pool never applied.

use burn::prelude::*;
use burn::tensor::module::max_pool2d;
use hyperstyle_core::Weights;
use hyperstyle_encoders::conv2d::{Activation, Conv2d, ConvShape};

use crate::{check_images, Result};

/// The five convolutions: `features.{index}` key, geometry (in, out, kernel, stride, padding),
/// and whether a 3×3 stride-2 max-pool precedes it.
const CONVS: [(usize, ConvShape, bool); 5] = [
    (0, ConvShape::new(3, 64, 11, 4, 2), false),
    (3, ConvShape::new(64, 192, 5, 1, 2), true),
    (6, ConvShape::new(192, 384, 3, 1, 1), true),
    (8, ConvShape::new(384, 256, 3, 1, 1), false),
    (10, ConvShape::new(256, 256, 3, 1, 1), false),
];

/// Keys of torchvision's classifier head (`classifier.{1,4,6}`), which a full AlexNet file
/// carries and LPIPS does not use.
const CLASSIFIER: [usize; 3] = [1, 4, 6];

/// Channels of the five feature maps.
pub const CHANNELS: [usize; 5] = [64, 192, 384, 256, 256];

/// Smallest input side that leaves every feature map at least one pixel.
pub const MIN_SIDE: usize = 31;

/// AlexNet's feature extractor: conv11/4 → ReLU → pool → conv5 → ReLU → pool → conv3 → ReLU →
/// conv3 → ReLU → conv3 → ReLU, returning each ReLU output (torchvision's `features` layers 1, 4,
/// 7, 9 and 11).
#[derive(Module, Debug)]
pub struct AlexNetFeatures<B: Backend> {
    convs: Vec<Conv2d<B>>,
}

impl<B: Backend> AlexNetFeatures<B> {
    /// Loads `features.{0,3,6,8,10}.{weight,bias}` (torchvision's key names). A full AlexNet
    /// state dict is accepted: its classifier tensors are marked as used without being read.
    pub fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        let features = weights.pp("features");
        let convs = CONVS
            .iter()
            .map(|&(index, shape, _)| Conv2d::load(&features.pp(index), shape, true, device))
            .collect::<Result<_>>()?;
        for index in CLASSIFIER {
            let layer = weights.pp("classifier").pp(index);
            layer.ignore("weight");
            layer.ignore("bias");
        }
        Ok(Self { convs })
    }

    /// x: `[batch, 3, h, w]` (h, w ≥ [`MIN_SIDE`]) → the five ReLU outputs; for 256×256 inputs
    /// `[batch, c, s, s]` with c = [`CHANNELS`] and s = 63, 31, 15, 15, 15.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Vec<Tensor<B, 4>>> {
        check_images("alexnet", &x, (MIN_SIDE, MIN_SIDE))?;
        let mut x = x;
        let mut out = Vec::with_capacity(CONVS.len());
        for (conv, &(_, _, pool_before)) in self.convs.iter().zip(&CONVS) {
            if pool_before {
                x = max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], false);
            }
            x = conv.forward_activated(x, Activation::Relu);
            out.push(x.clone());
        }
        Ok(out)
    }
}
