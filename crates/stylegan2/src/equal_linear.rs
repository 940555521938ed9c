//! Equalized-learning-rate linear layer (REFERENCE §2.1) and StyleGAN's fused leaky ReLU (§2.2).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

use crate::error::Result;
use crate::weights::Weights;

/// `sqrt(2) · lrelu_0.2(x)`: the activation of StyleGAN's `fused_leaky_relu` once its bias is added.
pub fn scaled_leaky_relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    leaky_relu(x, 0.2).mul_scalar(std::f32::consts::SQRT_2)
}

/// `y = x·(W·lr_mul/√in)ᵀ + b·lr_mul`, optionally followed by the fused leaky ReLU.
///
/// The checkpoint stores the unscaled `weight [out, in]` and `bias [out]`; the equalized-LR
/// scales are applied once at load time, in f32, exactly as upstream multiplies them at run time.
#[derive(Module, Debug)]
pub struct EqualLinear<B: Backend> {
    /// Effective weight, transposed: `[in, out]`.
    weight: Param<Tensor<B, 2>>,
    /// Effective bias `[out]` (already multiplied by `lr_mul`).
    bias: Option<Param<Tensor<B, 1>>>,
    activation: bool,
}

impl<B: Backend> EqualLinear<B> {
    /// Loads `weight` (and `bias` if `with_bias`) from `weights`.
    pub fn load(
        weights: &Weights,
        in_features: usize,
        out_features: usize,
        lr_mul: f32,
        with_bias: bool,
        activation: bool,
        device: &B::Device,
    ) -> Result<Self> {
        // Upstream: `scale = (1 / sqrt(in)) * lr_mul` in Python floats, applied to an f32 tensor.
        let scale = ((1.0 / (in_features as f64).sqrt()) * f64::from(lr_mul)) as f32;
        let raw = weights.values("weight", &[out_features, in_features])?;
        let mut transposed = vec![0f32; raw.len()];
        for o in 0..out_features {
            for i in 0..in_features {
                transposed[i * out_features + o] = raw[o * in_features + i] * scale;
            }
        }
        let weight = Tensor::from_data(TensorData::new(transposed, [in_features, out_features]), device);
        let bias = if with_bias {
            let b: Vec<f32> = weights
                .values("bias", &[out_features])?
                .into_iter()
                .map(|v| v * lr_mul)
                .collect();
            Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(b, [out_features]),
                device,
            )))
        } else {
            None
        };
        Ok(Self {
            weight: Param::from_tensor(weight),
            bias,
            activation,
        })
    }

    /// x: `[batch, in]` → `[batch, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut y = x.matmul(self.weight.val());
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze_dim(0);
        }
        if self.activation {
            y = scaled_leaky_relu(y);
        }
        y
    }
}
