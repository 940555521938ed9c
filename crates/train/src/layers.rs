//! The trainable layers of the hypernetwork, in the original parameter layout.
//!
//! The inference crates fold BatchNorms into the convolutions and store some weights
//! transposed; training needs the parameters exactly as the original stores them, because the
//! optimizer's gradient centralization averages over every dimension but the first of each
//! tensor. Every layer here keeps the PyTorch shapes and names, and BatchNorm runs in training
//! mode (batch statistics, running statistics updated) or evaluation mode.

use burn::module::{Param, ParamId};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use hyperstyle_core::{Result, Weights};

use crate::init::Rng;

/// Visits the parameters and buffers of a trainable network under their upstream names.
pub trait ParamVisitor<B: Backend> {
    /// A trained parameter (what the optimizer updates).
    fn param<const D: usize>(&mut self, name: &str, param: &Param<Tensor<B, D>>);
    /// A BatchNorm running statistic (`running_mean`, `running_var`): saved, never optimised.
    fn buffer(&mut self, _name: &str, _buffer: &Param<Tensor<B, 1>>) {}
}

/// Whether BatchNorm normalises with the batch's statistics (and updates its running ones) or
/// with the running statistics: PyTorch's `module.train()` / `module.eval()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `net.train()`: batch statistics; running statistics updated.
    Train,
    /// `net.eval()`: running statistics.
    Eval,
}

/// A parameter from values.
pub(crate) fn param<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

/// A parameter read from `weights`.
fn load_param<B: Backend, const D: usize>(
    weights: &Weights,
    name: &str,
    shape: [usize; D],
    device: &B::Device,
) -> Result<Param<Tensor<B, D>>> {
    Ok(Param::from_tensor(weights.tensor(name, shape, device)?))
}

/// A buffer (no gradient) from values.
fn buffer<B: Backend>(values: Vec<f32>, device: &B::Device) -> Param<Tensor<B, 1>> {
    let n = values.len();
    Param::initialized(ParamId::new(), Tensor::from_data(TensorData::new(values, [n]), device))
}

/// `nn.Conv2d`: weight `[out, in, k, k]`, optional bias `[out]`, square stride and padding.
#[derive(Module, Debug)]
pub struct Conv<B: Backend> {
    /// `[out, in, k, k]`
    pub weight: Param<Tensor<B, 4>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<B, 1>>>,
    stride: usize,
    padding: usize,
}

/// Shape of a [`Conv`]: `(in, out, kernel, stride, padding, bias)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

impl ConvShape {
    pub fn new(cin: usize, cout: usize, kernel: usize, stride: usize, padding: usize, bias: bool) -> Self {
        Self {
            cin,
            cout,
            kernel,
            stride,
            padding,
            bias,
        }
    }

    fn weight_shape(&self) -> [usize; 4] {
        [self.cout, self.cin, self.kernel, self.kernel]
    }

    fn fan_in(&self) -> usize {
        self.cin * self.kernel * self.kernel
    }
}

impl<B: Backend> Conv<B> {
    /// Loads `weight` (and `bias`).
    pub(crate) fn load(weights: &Weights, shape: ConvShape, device: &B::Device) -> Result<Self> {
        let bias = if shape.bias {
            Some(load_param(weights, "bias", [shape.cout], device)?)
        } else {
            None
        };
        Ok(Self {
            weight: load_param(weights, "weight", shape.weight_shape(), device)?,
            bias,
            stride: shape.stride,
            padding: shape.padding,
        })
    }

    /// PyTorch's default initialisation (`kaiming_uniform_(a=√5)`): weight and bias uniform in
    /// `±1/√fan_in`.
    pub(crate) fn init_default(shape: ConvShape, rng: &mut Rng, device: &B::Device) -> Self {
        let bound = 1.0 / (shape.fan_in() as f64).sqrt();
        let n: usize = shape.weight_shape().iter().product();
        let weight = rng.uniform_vec(n, bound);
        let bias = shape
            .bias
            .then(|| param(rng.uniform_vec(shape.cout, bound), [shape.cout], device));
        Self::from_values(shape, weight, bias, device)
    }

    /// torchvision's ResNet initialisation: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
    /// no bias.
    pub(crate) fn init_resnet(shape: ConvShape, rng: &mut Rng, device: &B::Device) -> Self {
        let fan_out = shape.cout * shape.kernel * shape.kernel;
        let std = (2.0 / fan_out as f64).sqrt();
        let n: usize = shape.weight_shape().iter().product();
        Self::from_values(shape, rng.normal_vec(n, std), None, device)
    }

    pub(crate) fn from_values(
        shape: ConvShape,
        weight: Vec<f32>,
        bias: Option<Param<Tensor<B, 1>>>,
        device: &B::Device,
    ) -> Self {
        Self {
            weight: param(weight, shape.weight_shape(), device),
            bias,
            stride: shape.stride,
            padding: shape.padding,
        }
    }

    /// x: `[batch, in, h, w]` → `[batch, out, h', w']`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (s, p) = (self.stride, self.padding);
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([s, s], [p, p], [1, 1], 1),
        )
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        v.param(&format!("{prefix}weight"), &self.weight);
        if let Some(bias) = &self.bias {
            v.param(&format!("{prefix}bias"), bias);
        }
    }
}

/// PyTorch's `BatchNorm2d` (eps 1e-5, momentum 0.1, affine, tracking running statistics).
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// `[channels]`
    pub weight: Param<Tensor<B, 1>>,
    /// `[channels]`
    pub bias: Param<Tensor<B, 1>>,
    /// `[channels]`, no gradient.
    pub running_mean: Param<Tensor<B, 1>>,
    /// `[channels]`, no gradient.
    pub running_var: Param<Tensor<B, 1>>,
}

/// BatchNorm's `eps`.
const BN_EPS: f64 = 1e-5;
/// BatchNorm's running-statistics momentum.
const BN_MOMENTUM: f64 = 0.1;

impl<B: Backend> BatchNorm<B> {
    /// Loads `weight`, `bias`, `running_mean`, `running_var` (`num_batches_tracked` is counted by
    /// the network, see [`crate::TrainableHypernetwork::batches_tracked`]).
    pub(crate) fn load(weights: &Weights, channels: usize, device: &B::Device) -> Result<Self> {
        weights.ignore("num_batches_tracked");
        Ok(Self {
            weight: load_param(weights, "weight", [channels], device)?,
            bias: load_param(weights, "bias", [channels], device)?,
            running_mean: buffer(weights.values("running_mean", &[channels])?, device),
            running_var: buffer(weights.values("running_var", &[channels])?, device),
        })
    }

    /// PyTorch's initialisation: weight 1, bias 0, running mean 0, running variance 1.
    pub(crate) fn init(channels: usize, device: &B::Device) -> Self {
        Self {
            weight: param(vec![1.0; channels], [channels], device),
            bias: param(vec![0.0; channels], [channels], device),
            running_mean: buffer(vec![0.0; channels], device),
            running_var: buffer(vec![1.0; channels], device),
        }
    }

    /// x: `[batch, c, h, w]`. In [`Mode::Train`] the batch's mean and biased variance over
    /// (batch, h, w) normalise (and are differentiated through), and the running statistics
    /// move by the momentum towards the mean and the **unbiased** variance, as PyTorch does.
    pub fn forward(&mut self, x: Tensor<B, 4>, mode: Mode) -> Tensor<B, 4> {
        let [batch, c, h, w] = x.dims();
        let per_channel = |t: Tensor<B, 1>| t.reshape([1, c, 1, 1]);
        let (mean, var) = match mode {
            Mode::Eval => (
                per_channel(self.running_mean.val()),
                per_channel(self.running_var.val()),
            ),
            Mode::Train => {
                let n = batch * h * w;
                let mean = x.clone().mean_dim(0).mean_dim(2).mean_dim(3);
                let centered = x.clone() - mean.clone();
                let var = centered.powi_scalar(2).mean_dim(0).mean_dim(2).mean_dim(3);
                let unbiased = n as f64 / (n.max(2) - 1) as f64;
                let update = |running: Param<Tensor<B, 1>>, batch_value: Tensor<B, 4>, scale: f64| {
                    running.map(|r| {
                        let r = r.detach();
                        r.mul_scalar(1.0 - BN_MOMENTUM)
                            + batch_value.detach().reshape([c]).mul_scalar(BN_MOMENTUM * scale)
                    })
                };
                self.running_mean = update(self.running_mean.clone(), mean.clone(), 1.0);
                self.running_var = update(self.running_var.clone(), var.clone(), unbiased);
                (mean, var)
            }
        };
        let inv_std = var.add_scalar(BN_EPS).sqrt().recip();
        (x - mean) * inv_std * per_channel(self.weight.val()) + per_channel(self.bias.val())
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        v.param(&format!("{prefix}weight"), &self.weight);
        v.param(&format!("{prefix}bias"), &self.bias);
        v.buffer(&format!("{prefix}running_mean"), &self.running_mean);
        v.buffer(&format!("{prefix}running_var"), &self.running_var);
    }
}

/// `nn.PReLU(channels)`: `max(0, x) + a·min(0, x)` per channel.
#[derive(Module, Debug)]
pub struct Prelu<B: Backend> {
    /// `[channels]`
    pub weight: Param<Tensor<B, 1>>,
}

impl<B: Backend> Prelu<B> {
    pub(crate) fn load(weights: &Weights, channels: usize, device: &B::Device) -> Result<Self> {
        Ok(Self {
            weight: load_param(weights, "weight", [channels], device)?,
        })
    }

    /// PyTorch's initialisation: 0.25.
    pub(crate) fn init(channels: usize, device: &B::Device) -> Self {
        Self {
            weight: param(vec![0.25; channels], [channels], device),
        }
    }

    /// x: `[batch, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = x.dims()[1];
        let a = self.weight.val().reshape([1, c, 1, 1]);
        x.clone().clamp_min(0.0) + x.clamp_max(0.0) * a
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        v.param(&format!("{prefix}weight"), &self.weight);
    }
}

/// StyleGAN2's `EqualLinear` without activation, `lr_mul` 1: `y = x·(W/√in)ᵀ + b`, the scale
/// applied at every forward (the stored weight is the unscaled `[out, in]` one).
#[derive(Module, Debug)]
pub struct EqualLinear<B: Backend> {
    /// `[out, in]`
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> EqualLinear<B> {
    pub(crate) fn load(weights: &Weights, cin: usize, cout: usize, device: &B::Device) -> Result<Self> {
        Ok(Self {
            weight: load_param(weights, "weight", [cout, cin], device)?,
            bias: load_param(weights, "bias", [cout], device)?,
        })
    }

    /// The original's initialisation: weight standard normal, bias zero.
    pub(crate) fn init(cin: usize, cout: usize, rng: &mut Rng, device: &B::Device) -> Self {
        Self {
            weight: param(rng.normal_vec(cout * cin, 1.0), [cout, cin], device),
            bias: param(vec![0.0; cout], [cout], device),
        }
    }

    /// x: `[batch, in]` → `[batch, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let cin = self.weight.dims()[1];
        // Upstream: `scale = 1/sqrt(in) * lr_mul` in Python floats, multiplied into the f32 weight.
        let scale = 1.0 / (cin as f64).sqrt();
        x.matmul(self.weight.val().mul_scalar(scale).transpose()) + self.bias.val().unsqueeze_dim(0)
    }

    pub(crate) fn visit<V: ParamVisitor<B>>(&self, prefix: &str, v: &mut V) {
        v.param(&format!("{prefix}weight"), &self.weight);
        v.param(&format!("{prefix}bias"), &self.bias);
    }
}
