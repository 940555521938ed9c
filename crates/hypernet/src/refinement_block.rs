//! `HyperRefinementBlock` (shared layers, docs/ARCHITECTURE.md §6.3) and `RefinementBlock` (the others, §6.4).

use burn::module::Param;
use burn::prelude::*;

use hyperstyle_core::Result;
use hyperstyle_encoders::conv2d::Conv2d;
use hyperstyle_stylegan2::LayerSpec;

use crate::refinement_convs;
use hyperstyle_core::nn::matmul;
use hyperstyle_core::{EqualLinear, EqualLinearConfig, Weights};

/// Feature channels of the backbone output.
const FEATURES: usize = 512;

/// Reduces the backbone features to one code `z [batch, 512]` for the shared hypernet:
/// five 3×3 convs (512→128 stride 1, then 128→128 ×3 and 128→512 with stride 2; each with
/// LeakyReLU 0.01) down to 1×1, flatten, equalized linear.
#[derive(Module, Debug)]
pub struct HyperRefinementBlock<B: Backend> {
    convs: Vec<Conv2d<B>>,
    linear: EqualLinear<B>,
}

impl<B: Backend> HyperRefinementBlock<B> {
    /// Loads `convs.{0,2,4,6,8}.*` and `linear.*` (the block's `hypernet.*` aliases are the
    /// shared hypernet, loaded once elsewhere).
    pub fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        let layers = [
            (FEATURES, 128, 1),
            (128, 128, 2),
            (128, 128, 2),
            (128, 128, 2),
            (128, FEATURES, 2),
        ];
        Ok(Self {
            convs: refinement_convs::load(&weights.pp("convs"), &layers, device)?,
            linear: EqualLinearConfig::new(FEATURES, FEATURES).load(&weights.pp("linear"), device)?,
        })
    }

    /// features: `[batch, 512, 16, 16]` (cars `12×16`) → code `[batch, 512]`.
    pub fn forward(&self, features: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = refinement_convs::forward(&self.convs, features);
        let batch = x.dims()[0];
        // 1×1 after four stride-2 convs (16→8→4→2→1; cars' 12 → 6 → 3 → 2 → 1).
        self.linear.forward(x.reshape([batch, FEATURES]))
    }
}

/// Predicts one generator layer's offset directly from the backbone features.
///
/// 3×3 layers: three stride-2 convs (512→256, 256→256, 256→512) to 2×2, average pool, a 1×1
/// conv to `in·out` channels: one factor per (out, in) filter pair, the same on every 3×3 tap.
/// ToRGB layers: four stride-2 convs to 1×1 and a 1×1 conv to `3·in` channels.
#[derive(Module, Debug)]
pub struct RefinementBlock<B: Backend> {
    convs: Vec<Conv2d<B>>,
    /// The output 1×1 conv as a matrix: `[512, in·out]`.
    output_weight: Param<Tensor<B, 2>>,
    output_bias: Param<Tensor<B, 1>>,
    /// `(in, out)` channels of the generator layer.
    channels: [usize; 2],
}

impl<B: Backend> RefinementBlock<B> {
    /// Loads the block for generator layer `layer`: `convs.*` and `output.{1|0}.*`.
    pub fn load(weights: &Weights, layer: &LayerSpec, device: &B::Device) -> Result<Self> {
        let (cin, cout) = (layer.in_channels, layer.out_channels);
        let to_rgb = layer.is_to_rgb();
        let mut layers = vec![(FEATURES, 256, 2), (256, 256, 2)];
        if to_rgb {
            layers.push((256, 256, 2));
        }
        layers.push((256, FEATURES, 2));
        let n = cin * cout;
        // output.0 is the parameter-free average pool for 3×3 layers; ToRGB has no pool.
        let output = weights.pp("output").pp(if to_rgb { 0 } else { 1 });
        let weight: Tensor<B, 4> = output.tensor("weight", [n, FEATURES, 1, 1], device)?;
        Ok(Self {
            convs: refinement_convs::load(&weights.pp("convs"), &layers, device)?,
            output_weight: Param::from_tensor(weight.reshape([n, FEATURES]).transpose()),
            output_bias: Param::from_tensor(output.tensor("bias", [n], device)?),
            channels: [cin, cout],
        })
    }

    /// features: `[batch, 512, h, w]` → offset `[batch, out, in, 1, 1]`: one factor per filter
    /// pair, which the generator applies to every tap (upstream repeats it over the `k×k` taps;
    /// keeping it compact saves `k²` times the memory and traffic).
    pub fn forward(&self, features: Tensor<B, 4>) -> Tensor<B, 5> {
        let x = refinement_convs::forward(&self.convs, features);
        let [batch, c, h, w] = x.dims();
        // The average pool of 3×3 layers (2×2 → 1); ToRGB maps are already 1×1.
        let pooled = if h * w == 1 {
            x.reshape([batch, c])
        } else {
            x.mean_dim(3).mean_dim(2).reshape([batch, c])
        };
        let y = matmul(pooled, self.output_weight.val()) + self.output_bias.val().unsqueeze_dim(0);
        let [cin, cout] = self.channels;
        // Channel c = o·in + i.
        y.reshape([batch, cout, cin, 1, 1])
    }
}
