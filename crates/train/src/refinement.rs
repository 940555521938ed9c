//! The refinement blocks and the shared-weights hypernet, trainable, in the original layout
//! (docs/ARCHITECTURE.md §6.3–6.4; upstream `refinement_blocks.py`, `shared_weights_hypernet.py`).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use hyperstyle_core::{Result, Weights};
use hyperstyle_stylegan2::LayerSpec;

use crate::init::Rng;
use crate::layers::{param, Conv, ConvShape, EqualLinear, ParamVisitor};

/// Backbone feature channels.
const FEATURES: usize = 512;
/// Kernel side of the shared hypernet's offsets.
const F_SIZE: usize = 3;

/// `convs.{0,2,4,…}`: 3×3 convs with bias, each followed by `nn.LeakyReLU()` (slope 0.01).
#[derive(Module, Debug)]
pub struct ConvStack<B: Backend> {
    convs: Vec<Conv<B>>,
}

impl<B: Backend> ConvStack<B> {
    fn shapes(layers: &[(usize, usize, usize)]) -> impl Iterator<Item = ConvShape> + '_ {
        layers
            .iter()
            .map(|&(cin, cout, stride)| ConvShape::new(cin, cout, 3, stride, 1, true))
    }

    fn load(weights: &Weights, layers: &[(usize, usize, usize)], device: &B::Device) -> Result<Self> {
        let convs = Self::shapes(layers)
            .enumerate()
            .map(|(i, shape)| Conv::load(&weights.pp(2 * i), shape, device))
            .collect::<Result<_>>()?;
        Ok(Self { convs })
    }

    fn init(layers: &[(usize, usize, usize)], rng: &mut Rng, device: &B::Device) -> Self {
        let convs = Self::shapes(layers)
            .map(|shape| Conv::init_default(shape, rng, device))
            .collect();
        Self { convs }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.convs.iter().fold(x, |x, conv| leaky_relu(conv.forward(x), 0.01))
    }

    fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        for (i, conv) in self.convs.iter().enumerate() {
            conv.visit(&format!("{prefix}convs.{}.", 2 * i), v);
        }
    }
}

/// `SharedWeightsHypernet`: code `z [n, 512]` → full per-tap offset `[n, 512, 512, 3, 3]`,
/// `h = z·w2 + b2` viewed `[n, 512, 512]`, then `h·w1 + b1`.
#[derive(Module, Debug)]
pub struct SharedHypernet<B: Backend> {
    /// `[512, 4608]`
    pub w1: Param<Tensor<B, 2>>,
    /// `[4608]`
    pub b1: Param<Tensor<B, 1>>,
    /// `[512, 262144]`
    pub w2: Param<Tensor<B, 2>>,
    /// `[262144]`
    pub b2: Param<Tensor<B, 1>>,
}

impl<B: Backend> SharedHypernet<B> {
    const K: usize = FEATURES * F_SIZE * F_SIZE;
    const H: usize = FEATURES * FEATURES;

    pub(crate) fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        Ok(Self {
            w1: Param::from_tensor(weights.tensor("w1", [FEATURES, Self::K], device)?),
            b1: Param::from_tensor(weights.tensor("b1", [Self::K], device)?),
            w2: Param::from_tensor(weights.tensor("w2", [FEATURES, Self::H], device)?),
            b2: Param::from_tensor(weights.tensor("b2", [Self::H], device)?),
        })
    }

    /// The original's initialisation: `fmod(randn / 40, 2)` for all four tensors.
    pub(crate) fn init(rng: &mut Rng, device: &B::Device) -> Self {
        let mut values =
            |n: usize| -> Vec<f32> { rng.normal_vec(n, 1.0 / 40.0).into_iter().map(|v| v % 2.0).collect() };
        Self {
            w1: param(values(FEATURES * Self::K), [FEATURES, Self::K], device),
            b1: param(values(Self::K), [Self::K], device),
            w2: param(values(FEATURES * Self::H), [FEATURES, Self::H], device),
            b2: param(values(Self::H), [Self::H], device),
        }
    }

    /// z: `[n, 512]` → `[n, 512, 512, 3, 3]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 5> {
        let n = z.dims()[0];
        let h = (z.matmul(self.w2.val()) + self.b2.val().unsqueeze_dim(0)).reshape([n, FEATURES, FEATURES]);
        let g = h.matmul(self.w1.val().unsqueeze_dim(0)) + self.b1.val().reshape([1, 1, Self::K]);
        g.reshape([n, FEATURES, FEATURES, F_SIZE, F_SIZE])
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        v.param(&format!("{prefix}w1"), &self.w1);
        v.param(&format!("{prefix}b1"), &self.b1);
        v.param(&format!("{prefix}w2"), &self.w2);
        v.param(&format!("{prefix}b2"), &self.b2);
    }
}

/// `HyperRefinementBlock`: features → a code for the shared hypernet (five convs down to 1×1,
/// flatten, equalized linear).
#[derive(Module, Debug)]
pub struct HyperRefinementBlock<B: Backend> {
    convs: ConvStack<B>,
    linear: EqualLinear<B>,
}

/// `(in, out, stride)` of a `HyperRefinementBlock`'s convs (`inner_c` 128, spatial 16).
const HYPER_CONVS: [(usize, usize, usize); 5] = [
    (FEATURES, 128, 1),
    (128, 128, 2),
    (128, 128, 2),
    (128, 128, 2),
    (128, FEATURES, 2),
];

impl<B: Backend> HyperRefinementBlock<B> {
    pub(crate) fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        for name in ["w1", "b1", "w2", "b2"] {
            weights.pp("hypernet").ignore(name);
        }
        Ok(Self {
            convs: ConvStack::load(&weights.pp("convs"), &HYPER_CONVS, device)?,
            linear: EqualLinear::load(&weights.pp("linear"), FEATURES, FEATURES, device)?,
        })
    }

    pub(crate) fn init(rng: &mut Rng, device: &B::Device) -> Self {
        Self {
            convs: ConvStack::init(&HYPER_CONVS, rng, device),
            linear: EqualLinear::init(FEATURES, FEATURES, rng, device),
        }
    }

    /// features `[batch, 512, 16, 16]` → code `[batch, 512]`.
    pub fn forward(&self, features: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.convs.forward(features);
        let batch = x.dims()[0];
        self.linear.forward(x.reshape([batch, FEATURES]))
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        self.convs.visit(prefix, v);
        self.linear.visit(&format!("{prefix}linear."), v);
    }
}

/// `RefinementBlock`: one generator layer's offset from the features, one factor per
/// (out, in) filter pair.
#[derive(Module, Debug)]
pub struct RefinementBlock<B: Backend> {
    convs: ConvStack<B>,
    /// The output 1×1 conv: weight `[in·out, 512, 1, 1]`, bias `[in·out]` (`output.1`; ToRGB
    /// layers, which have no pool before it: `output.0`).
    output: Conv<B>,
    /// `(in, out)` channels of the generator layer.
    channels: [usize; 2],
    to_rgb: bool,
}

/// `(in, out, stride)` of a `RefinementBlock`'s convs (`inner_c` 256, spatial 16): three for
/// 3×3 layers, four for ToRGB layers.
fn own_convs(to_rgb: bool) -> Vec<(usize, usize, usize)> {
    let mut layers = vec![(FEATURES, 256, 2), (256, 256, 2)];
    if to_rgb {
        layers.push((256, 256, 2));
    }
    layers.push((256, FEATURES, 2));
    layers
}

impl<B: Backend> RefinementBlock<B> {
    fn output_shape(layer: &LayerSpec) -> ConvShape {
        ConvShape::new(FEATURES, layer.in_channels * layer.out_channels, 1, 1, 0, true)
    }

    fn output_index(layer: &LayerSpec) -> usize {
        if layer.is_to_rgb() {
            0
        } else {
            1
        }
    }

    pub(crate) fn load(weights: &Weights, layer: &LayerSpec, device: &B::Device) -> Result<Self> {
        let to_rgb = layer.is_to_rgb();
        Ok(Self {
            convs: ConvStack::load(&weights.pp("convs"), &own_convs(to_rgb), device)?,
            output: Conv::load(
                &weights.pp("output").pp(Self::output_index(layer)),
                Self::output_shape(layer),
                device,
            )?,
            channels: [layer.in_channels, layer.out_channels],
            to_rgb,
        })
    }

    pub(crate) fn init(layer: &LayerSpec, rng: &mut Rng, device: &B::Device) -> Self {
        let to_rgb = layer.is_to_rgb();
        Self {
            convs: ConvStack::init(&own_convs(to_rgb), rng, device),
            output: Conv::init_default(Self::output_shape(layer), rng, device),
            channels: [layer.in_channels, layer.out_channels],
            to_rgb,
        }
    }

    /// features → offset `[batch, out, in, 1, 1]` (upstream repeats it over the k×k taps; the
    /// generator broadcasts it, and the gradient of a broadcast is the same sum over taps).
    pub fn forward(&self, features: Tensor<B, 4>) -> Tensor<B, 5> {
        let x = self.convs.forward(features);
        let [batch, c, h, w] = x.dims();
        // 3×3 layers: `AdaptiveAvgPool2d((1, 1))`; ToRGB maps are already 1×1.
        let pooled = if h * w == 1 {
            x.reshape([batch, c])
        } else {
            x.mean_dim(3).mean_dim(2).reshape([batch, c])
        };
        let [cin, cout] = self.channels;
        let weight = self.output.weight.val().reshape([cin * cout, FEATURES]);
        let bias = self.output.bias.as_ref().expect("the output conv has a bias").val();
        let y = pooled.matmul(weight.transpose()) + bias.unsqueeze_dim(0);
        // Channel c = o·in + i.
        y.reshape([batch, cout, cin, 1, 1])
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        self.convs.visit(prefix, v);
        let index = if self.to_rgb { 0 } else { 1 };
        self.output.visit(&format!("{prefix}output.{index}."), v);
    }
}
