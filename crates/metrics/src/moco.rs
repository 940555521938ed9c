//! MoCo v2's ResNet-50 (the self-supervised image encoder HyperStyle's similarity loss uses for
//! non-face domains, `moco_v2_800ep_pretrain.pt`), and the feature similarity measured with it.
//!
//! The network is torchvision's `resnet50` (v1.5: the stride of each downsampling bottleneck
//! sits on its 3×3 convolution) with the classifier removed: conv 7×7/2 → BatchNorm → ReLU →
//! max-pool 3/2 (padding 1) → 3, 4, 6 and 3 bottlenecks of width 64, 128, 256 and 512 (output
//! ×4) → global average pool → 2048 features. Every BatchNorm runs in eval mode and is folded
//! into the convolution before it when the weights are loaded.

use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use hyperstyle_core::Weights;
use hyperstyle_encoders::conv2d::{Activation, Conv2d, ConvShape};

use crate::{check_images, check_pair, Result};

/// Side the images are resampled to before the network (`F.interpolate(x, size=224)`).
pub const INPUT_SIDE: usize = 224;
/// Length of the feature vector.
pub const FEATURES: usize = 2048;
/// Bottleneck stages: `(width, blocks)`; each block outputs `4 · width` channels and the first
/// block of stages 2–4 has stride 2.
const STAGES: [(usize, usize); 4] = [(64, 3), (128, 4), (256, 6), (512, 3)];
/// Output channels of a bottleneck relative to its width.
const EXPANSION: usize = 4;
/// `F.normalize`'s default `eps`: norms are clamped to at least this.
const NORM_EPS: f64 = 1e-12;

/// torchvision's `Bottleneck`: `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) +
/// identity)` with `conv1` 1×1, `conv2` 3×3 carrying the stride, `conv3` 1×1 to `4 · width`
/// channels, and `identity = downsample(x)` (1×1 conv with the stride, then BatchNorm) in the
/// first block of each stage.
#[derive(Module, Debug)]
struct Bottleneck<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    conv3: Conv2d<B>,
    downsample: Option<Conv2d<B>>,
}

impl<B: Backend> Bottleneck<B> {
    /// Loads `conv{1,2,3}.weight`, `bn{1,2,3}.*` and, when `downsample`, `downsample.{0,1}.*`.
    fn load(
        weights: &Weights,
        (in_channels, width, stride): (usize, usize, usize),
        downsample: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let out_channels = width * EXPANSION;
        let conv = |index: usize, shape| {
            Conv2d::load_with_batch_norm(
                &weights.pp(format!("conv{index}")),
                &weights.pp(format!("bn{index}")),
                shape,
                device,
            )
        };
        let downsample = if downsample {
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
            conv1: conv(1, ConvShape::new(in_channels, width, 1, 1, 0))?,
            conv2: conv(2, ConvShape::new(width, width, 3, stride, 1))?,
            conv3: conv(3, ConvShape::new(width, out_channels, 1, 1, 0))?,
            downsample,
        })
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(conv) => conv.forward(x.clone()),
            None => x.clone(),
        };
        let out = self.conv1.forward_activated(x, Activation::Relu);
        let out = self.conv2.forward_activated(out, Activation::Relu);
        relu(self.conv3.forward(out) + identity)
    }
}

/// The ResNet-50 trunk of MoCo v2: `[batch, 3, h, w]` → pooled features `[batch, 2048]` (not
/// normalised). Any input of at least 32×32 pixels is accepted; MoCo's loss feeds 224×224.
#[derive(Module, Debug)]
pub struct MocoFeatures<B: Backend> {
    /// `conv1` with `bn1` folded in.
    stem: Conv2d<B>,
    blocks: Vec<Bottleneck<B>>,
}

impl<B: Backend> MocoFeatures<B> {
    /// Smallest input side: the last stage still has one pixel.
    pub const MIN_SIDE: usize = 32;

    /// Loads torchvision's ResNet-50 key names: `conv1.weight`, `bn1.*`,
    /// `layer{1..4}.{i}.conv{1,2,3}.weight`, `layer{1..4}.{i}.bn{1,2,3}.*` and
    /// `layer{1..4}.0.downsample.{0,1}.*` (`weights-convert`'s `moco` kind writes them from
    /// `moco_v2_800ep_pretrain.pt`'s `module.encoder_q.*`). BatchNorms' `num_batches_tracked`
    /// are accepted and unused. Fails on missing keys, wrong shapes and any other tensor under
    /// `weights` (a classifier `fc.*` included: the loss never uses it).
    pub fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        let stem = Conv2d::load_with_batch_norm(
            &weights.pp("conv1"),
            &weights.pp("bn1"),
            ConvShape::new(3, 64, 7, 2, 3),
            device,
        )?;
        let mut blocks = Vec::with_capacity(16);
        let mut channels = 64;
        for (stage, &(width, count)) in STAGES.iter().enumerate() {
            let layer = weights.pp(format!("layer{}", stage + 1));
            for index in 0..count {
                let stride = if stage > 0 && index == 0 { 2 } else { 1 };
                let geometry = (channels, width, stride);
                blocks.push(Bottleneck::load(&layer.pp(index), geometry, index == 0, device)?);
                channels = width * EXPANSION;
            }
        }
        weights.check_all_used()?;
        Ok(Self { stem, blocks })
    }

    /// x: `[batch, 3, h, w]` (h, w ≥ [`Self::MIN_SIDE`]) → `[batch, 2048]`, the adaptive
    /// average pool of the last stage.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        check_images("moco resnet-50", &x, (Self::MIN_SIDE, Self::MIN_SIDE))?;
        let batch = x.dims()[0];
        let x = self.stem.forward_activated(x, Activation::Relu);
        let x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        Ok(adaptive_avg_pool2d(x, [1, 1]).reshape([batch, FEATURES]))
    }
}

/// Feature similarity as HyperStyle's `MocoLoss` measures it: resample each image to 224×224
/// with nearest-neighbour sampling (`F.interpolate(x, size=224)`, PyTorch's default mode),
/// embed it with [`MocoFeatures`], divide by the L2 norm (`F.normalize`) and take the dot
/// product of the two unit vectors.
///
/// Generic over the backend, so it also runs under `Autodiff`: gradients flow through the
/// resampling and the network into the images (the network's own parameters are meant to stay
/// frozen, as upstream's are).
#[derive(Module, Debug)]
pub struct MocoSimilarity<B: Backend> {
    network: MocoFeatures<B>,
}

impl<B: Backend> MocoSimilarity<B> {
    /// Wraps a loaded [`MocoFeatures`].
    pub fn new(network: MocoFeatures<B>) -> Self {
        Self { network }
    }

    /// Loads the network (see [`MocoFeatures::load`]).
    pub fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        Ok(Self::new(MocoFeatures::load(weights, device)?))
    }

    /// The network.
    pub fn network(&self) -> &MocoFeatures<B> {
        &self.network
    }

    /// Upstream's `extract_feats`: `[batch, 3, h, w]` in [−1, 1] (256×256, or 192×256 for
    /// cars) → unit-length features `[batch, 2048]`.
    pub fn features(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        check_images("moco similarity", &x, (1, 1))?;
        let features = self.network.forward(resize_nearest(x, INPUT_SIDE, INPUT_SIDE))?;
        let norm = features.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(NORM_EPS);
        Ok(features / norm)
    }

    /// The similarity of each pair, `[batch]`: 1 for identical images.
    pub fn forward(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        check_pair("moco similarity", &x, &y, (1, 1))?;
        let batch = x.dims()[0];
        let both = self.features(Tensor::cat(vec![x, y], 0))?;
        let (fx, fy) = (both.clone().narrow(0, 0, batch), both.narrow(0, batch, batch));
        Ok((fx * fy).sum_dim(1).reshape([batch]))
    }

    /// The similarity loss of a reconstruction `y_hat` of `y` (`MocoLoss.forward`'s first
    /// output): `mean(1 − similarity)`, `[1]`. As upstream, no gradient flows into `y`'s
    /// features.
    pub fn loss(&self, y_hat: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        check_pair("moco similarity", &y_hat, &y, (1, 1))?;
        let fy = self.features(y)?.detach();
        let fy_hat = self.features(y_hat)?;
        Ok((fy_hat * fy).sum_dim(1).neg().add_scalar(1.0).mean())
    }
}

/// `F.interpolate(x, size=(height, width))` in its default `nearest` mode: output pixel `i`
/// takes input pixel `min(⌊i · (in/out)⌋, in − 1)`, with the scale and the product in float32
/// as PyTorch computes them (same size: a copy; twice the size: `i / 2`).
pub fn resize_nearest<B: Backend>(x: Tensor<B, 4>, height: usize, width: usize) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let device = x.device();
    let x = if h == height {
        x
    } else {
        x.select(2, nearest_indices::<B>(h, height, &device))
    };
    if w == width {
        x
    } else {
        x.select(3, nearest_indices::<B>(w, width, &device))
    }
}

/// The input index of each output index of a nearest-neighbour resize from `input` to `output`.
fn nearest_indices<B: Backend>(input: usize, output: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    let scale = input as f32 / output as f32;
    let indices: Vec<i64> = (0..output)
        .map(|i| {
            let source = if output == 2 * input {
                i / 2
            } else {
                (i as f32 * scale).floor() as usize
            };
            source.min(input - 1) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(indices, [output]), device)
}
