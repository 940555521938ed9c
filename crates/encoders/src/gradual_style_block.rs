//! `GradualStyleBlock(512, 512, 16)`, pSp's "map2style" head as ReStyle-e4e uses it (docs/ARCHITECTURE.md §5.3).

use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use hyperstyle_core::{EqualLinear, EqualLinearConfig, Weights};

use crate::conv2d::{Conv2d, ConvShape};
use hyperstyle_core::{Error, Result};

/// `nn.LeakyReLU()`'s default slope (no gain; not StyleGAN's `√2·lrelu_0.2`).
const LEAKY_SLOPE: f64 = 0.01;

/// `log2(spatial)` × [conv3×3 stride 2 pad 1 with bias → LeakyReLU(0.01)] (Sequential indices
/// 0, 2, 4, …) reducing the `spatial`×`spatial` map to 1×1, then `view(-1, 512)` and `linear`
/// (EqualLinear 512→512).
#[derive(Module, Debug)]
pub struct GradualStyleBlock<B: Backend> {
    convs: Vec<Conv2d<B>>,
    linear: EqualLinear<B>,
    spatial: usize,
}

impl<B: Backend> GradualStyleBlock<B> {
    /// Loads `convs.{0,2,4,…}.{weight,bias}` and `linear.*` for a `spatial`×`spatial` input map
    /// (`spatial` a power of two ≥ 2; 16 in ReStyle).
    pub fn load(weights: &Weights, channels: usize, spatial: usize, device: &B::Device) -> Result<Self> {
        if spatial < 2 || !spatial.is_power_of_two() {
            return Err(Error::InvalidConfig(format!(
                "map2style spatial size must be a power of two >= 2, got {spatial}"
            )));
        }
        let num_pools = spatial.trailing_zeros() as usize;
        let convs = (0..num_pools)
            .map(|i| {
                let shape = ConvShape::new(channels, channels, 3, 2, 1);
                Conv2d::load(&weights.pp("convs").pp(2 * i), shape, true, device)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            convs,
            linear: EqualLinearConfig::new(channels, channels).load(&weights.pp("linear"), device)?,
            spatial,
        })
    }

    /// features: `[batch, channels, h, w]` with `h, w ≤ spatial` → `[batch, channels]`.
    pub fn forward(&self, features: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        self.check_features(&features)?;
        let [batch, channels, _, _] = features.dims();
        let x = self
            .convs
            .iter()
            .fold(features, |x, conv| leaky_relu(conv.forward(x), LEAKY_SLOPE));
        Ok(self.linear.forward(x.reshape([batch, channels])))
    }

    /// Upstream flattens with `view(-1, 512)`, which only keeps samples apart when the strided
    /// convs end on a 1×1 map, i.e. when `h, w ≤ spatial` (each conv maps n to ⌈n/2⌉). Larger maps
    /// would mix samples, so they are refused instead.
    pub(crate) fn check_features(&self, features: &Tensor<B, 4>) -> Result<()> {
        let [_, _, h, w] = features.dims();
        if h > self.spatial || w > self.spatial {
            return Err(Error::InvalidInput(format!(
                "map2style takes feature maps of at most {0}×{0}, got {h}×{w}",
                self.spatial
            )));
        }
        Ok(())
    }
}
