//! The hypernetwork's ResNet-34 backbone with trainable BatchNorms: `conv1` (6 input channels)
//! → `bn1` → `relu` (a PReLU) → torchvision's `layer1..layer4` flattened into `body`, no max-pool
//! (docs/ARCHITECTURE.md §5.4; upstream `SharedWeightsHyperNetResNet`).

use burn::prelude::*;
use burn::tensor::activation::relu;
use hyperstyle_core::{Error, Result, Weights};

use crate::init::Rng;
use crate::layers::{BatchNorm, Conv, ConvShape, Mode, ParamVisitor, Prelu};

/// torchvision resnet34's stages: `(out_channels, blocks)`.
const STAGES: [(usize, usize); 4] = [(64, 3), (128, 4), (256, 6), (512, 3)];
/// Input channels: the image and the current reconstruction.
const INPUT_CHANNELS: usize = 6;

/// How a fresh backbone is initialised.
#[derive(Clone, Copy)]
pub enum BackboneInit<'a> {
    /// As the original training starts: `body` and `bn1` from torchvision's ImageNet ResNet-34
    /// (its state dict, keys `conv1.weight`, `bn1.*`, `layer{1-4}.{i}.*`), `conv1`'s first three
    /// input channels from its `conv1`, the other three standard normal
    /// (`HyperStyle.__get_hypernet_checkpoint`).
    ImageNet(&'a Weights<'a>),
    /// Without the ImageNet weights: torchvision's initialisation of the body, PyTorch's default
    /// of `conv1`.
    Random,
}

/// torchvision's `BasicBlock` with its BatchNorms.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    conv1: Conv<B>,
    bn1: BatchNorm<B>,
    conv2: Conv<B>,
    bn2: BatchNorm<B>,
    downsample: Option<(Conv<B>, BatchNorm<B>)>,
}

/// The three convolution shapes of a block: conv1, conv2, downsample (if any).
fn block_shapes(cin: usize, cout: usize, stride: usize) -> (ConvShape, ConvShape, Option<ConvShape>) {
    let down = (cin != cout || stride != 1).then(|| ConvShape::new(cin, cout, 1, stride, 0, false));
    (
        ConvShape::new(cin, cout, 3, stride, 1, false),
        ConvShape::new(cout, cout, 3, 1, 1, false),
        down,
    )
}

impl<B: Backend> BasicBlock<B> {
    fn load(weights: &Weights, cin: usize, cout: usize, stride: usize, device: &B::Device) -> Result<Self> {
        let (s1, s2, sd) = block_shapes(cin, cout, stride);
        let downsample = match sd {
            Some(sd) => {
                let ds = weights.pp("downsample");
                Some((
                    Conv::load(&ds.pp(0), sd, device)?,
                    BatchNorm::load(&ds.pp(1), cout, device)?,
                ))
            }
            None => None,
        };
        Ok(Self {
            conv1: Conv::load(&weights.pp("conv1"), s1, device)?,
            bn1: BatchNorm::load(&weights.pp("bn1"), cout, device)?,
            conv2: Conv::load(&weights.pp("conv2"), s2, device)?,
            bn2: BatchNorm::load(&weights.pp("bn2"), cout, device)?,
            downsample,
        })
    }

    fn init(cin: usize, cout: usize, stride: usize, rng: &mut Rng, device: &B::Device) -> Self {
        let (s1, s2, sd) = block_shapes(cin, cout, stride);
        Self {
            conv1: Conv::init_resnet(s1, rng, device),
            bn1: BatchNorm::init(cout, device),
            conv2: Conv::init_resnet(s2, rng, device),
            bn2: BatchNorm::init(cout, device),
            downsample: sd.map(|sd| (Conv::init_resnet(sd, rng, device), BatchNorm::init(cout, device))),
        }
    }

    /// `relu(bn2(conv2(relu(bn1(conv1(x))))) + identity)`.
    fn forward(&mut self, x: Tensor<B, 4>, mode: Mode) -> Tensor<B, 4> {
        let identity = match &mut self.downsample {
            Some((conv, bn)) => bn.forward(conv.forward(x.clone()), mode),
            None => x.clone(),
        };
        let y = relu(self.bn1.forward(self.conv1.forward(x), mode));
        relu(self.bn2.forward(self.conv2.forward(y), mode) + identity)
    }

    fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        self.conv1.visit(&format!("{prefix}conv1."), v);
        self.bn1.visit(&format!("{prefix}bn1."), v);
        self.conv2.visit(&format!("{prefix}conv2."), v);
        self.bn2.visit(&format!("{prefix}bn2."), v);
        if let Some((conv, bn)) = &self.downsample {
            conv.visit(&format!("{prefix}downsample.0."), v);
            bn.visit(&format!("{prefix}downsample.1."), v);
        }
    }
}

/// `(in, out, stride)` of body block `i`, and its torchvision name `layer{s}.{b}`.
fn body_blocks() -> Vec<(usize, usize, usize, String)> {
    let mut blocks = Vec::with_capacity(16);
    let mut cin = 64;
    for (s, &(cout, n)) in STAGES.iter().enumerate() {
        for b in 0..n {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            blocks.push((cin, cout, stride, format!("layer{}.{b}", s + 1)));
            cin = cout;
        }
    }
    blocks
}

/// The backbone: `[batch, 6, h, w]` → `[batch, 512, h/16, w/16]`.
#[derive(Module, Debug)]
pub struct Backbone<B: Backend> {
    conv1: Conv<B>,
    bn1: BatchNorm<B>,
    relu: Prelu<B>,
    body: Vec<BasicBlock<B>>,
}

impl<B: Backend> Backbone<B> {
    /// Loads `conv1.weight`, `bn1.*`, `relu.weight`, `body.{0..15}.*`.
    pub(crate) fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        let body = body_blocks()
            .into_iter()
            .enumerate()
            .map(|(i, (cin, cout, stride, _))| BasicBlock::load(&weights.pp("body").pp(i), cin, cout, stride, device))
            .collect::<Result<_>>()?;
        Ok(Self {
            conv1: Conv::load(&weights.pp("conv1"), stem_shape(), device)?,
            bn1: BatchNorm::load(&weights.pp("bn1"), 64, device)?,
            relu: Prelu::load(&weights.pp("relu"), 64, device)?,
            body,
        })
    }

    /// A fresh backbone (see [`BackboneInit`]).
    pub(crate) fn init(init: BackboneInit, rng: &mut Rng, device: &B::Device) -> Result<Self> {
        let shape = stem_shape();
        Ok(match init {
            BackboneInit::Random => Self {
                conv1: Conv::init_default(shape, rng, device),
                bn1: BatchNorm::init(64, device),
                relu: Prelu::init(64, device),
                body: body_blocks()
                    .into_iter()
                    .map(|(cin, cout, stride, _)| BasicBlock::init(cin, cout, stride, rng, device))
                    .collect(),
            },
            BackboneInit::ImageNet(resnet) => {
                let rgb = resnet.values("conv1.weight", &[64, 3, 7, 7])?;
                let extra = rng.normal_vec(64 * 3 * 49, 1.0);
                let mut weight = Vec::with_capacity(64 * INPUT_CHANNELS * 49);
                for o in 0..64 {
                    weight.extend_from_slice(&rgb[o * 147..(o + 1) * 147]);
                    weight.extend_from_slice(&extra[o * 147..(o + 1) * 147]);
                }
                let body = body_blocks()
                    .into_iter()
                    .map(|(cin, cout, stride, name)| BasicBlock::load(&resnet.pp(name), cin, cout, stride, device))
                    .collect::<Result<_>>()
                    .map_err(|e| Error::InvalidInput(format!("ImageNet ResNet-34 weights: {e}")))?;
                Self {
                    conv1: Conv::from_values(shape, weight, None, device),
                    bn1: BatchNorm::load(&resnet.pp("bn1"), 64, device)?,
                    relu: Prelu::init(64, device),
                    body,
                }
            }
        })
    }

    /// x: `[batch, 6, h, w]` → features `[batch, 512, h/16, w/16]`.
    pub fn forward(&mut self, x: Tensor<B, 4>, mode: Mode) -> Tensor<B, 4> {
        let x = self.relu.forward(self.bn1.forward(self.conv1.forward(x), mode));
        self.body.iter_mut().fold(x, |x, block| block.forward(x, mode))
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, v: &mut V) {
        self.conv1.visit("conv1.", v);
        self.bn1.visit("bn1.", v);
        self.relu.visit("relu.", v);
        for (i, block) in self.body.iter().enumerate() {
            block.visit(&format!("body.{i}."), v);
        }
    }
}

/// `conv1`: 7×7, stride 2, padding 3, no bias, 6 → 64.
fn stem_shape() -> ConvShape {
    ConvShape::new(INPUT_CHANNELS, 64, 7, 2, 3, false)
}
