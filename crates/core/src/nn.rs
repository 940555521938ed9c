//! Layers every network of the workspace shares: StyleGAN2's equalized-learning-rate linear
//! layer and its fused leaky ReLU (docs/ARCHITECTURE.md §3.1).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

use crate::error::Result;
use crate::weights::{tensor_values, Weights};

/// `lhs.matmul(rhs)` (rank 2 or 3). On Burn's CubeCL GPU backends (feature `cube`) it runs
/// `hyperstyle_kernels::cube::matmul`: `f32` products and sums for `f32` tensors unless TF32 is
/// switched on (`hyperstyle_kernels::cube::TensorCores`), where Burn's matrix product may use
/// TF32 tensor cores on recent NVIDIA GPUs anyway (about 1e-3 relative error), and one kernel for
/// every shape. Elsewhere it is Burn's `matmul`.
pub fn matmul<B: Backend, const D: usize>(lhs: Tensor<B, D>, rhs: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "cube")]
    if let Some(y) = hyperstyle_kernels::cube::matmul(&lhs, &rhs) {
        return y;
    }
    lhs.matmul(rhs)
}

/// `sqrt(2) · lrelu_0.2(x)`: the activation of StyleGAN's `fused_leaky_relu` once its bias is added.
pub fn scaled_leaky_relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    leaky_relu(x, 0.2).mul_scalar(std::f64::consts::SQRT_2)
}

/// Configuration of an [`EqualLinear`] layer: `EqualLinear(in, out, bias, lr_mul, activation)`
/// upstream, e.g. `EqualLinearConfig::new(512, 512).with_lr_mul(0.01).with_activation(true)`.
#[derive(Config, Debug)]
pub struct EqualLinearConfig {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Learning-rate multiplier: the stored weights are scaled by it (0.01 in the mapping network).
    #[config(default = 1.0)]
    pub lr_mul: f32,
    /// Whether the layer has a `bias`.
    #[config(default = true)]
    pub bias: bool,
    /// Whether the fused leaky ReLU follows.
    #[config(default = false)]
    pub activation: bool,
}

impl EqualLinearConfig {
    /// Loads `weight [out, in]` (and `bias [out]`) from `weights`, applying the equalized-LR
    /// scales once, in f32, exactly as upstream multiplies them at run time.
    pub fn load<B: Backend>(&self, weights: &Weights, device: &B::Device) -> Result<EqualLinear<B>> {
        let (n_in, n_out) = (self.in_features, self.out_features);
        // Upstream: `scale = (1 / sqrt(in)) * lr_mul` in Python floats, applied to an f32 tensor.
        // Rounded to the model's float type by `mul_scalar`, as upstream's Python float is.
        let scale = (1.0 / (n_in as f64).sqrt()) * f64::from(self.lr_mul);
        let raw = weights.values("weight", &[n_out, n_in])?;
        let mut transposed = vec![0f32; raw.len()];
        for o in 0..n_out {
            for i in 0..n_in {
                transposed[i * n_out + o] = raw[o * n_in + i];
            }
        }
        let weight = Tensor::from_data(TensorData::new(transposed, [n_in, n_out]), device).mul_scalar(scale);
        let bias = if self.bias {
            let b: Vec<f32> = weights
                .values("bias", &[n_out])?
                .into_iter()
                .map(|v| v * self.lr_mul)
                .collect();
            Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(b, [n_out]),
                device,
            )))
        } else {
            None
        };
        Ok(EqualLinear {
            weight: Param::from_tensor(weight),
            bias,
            activation: self.activation,
            lr_mul: self.lr_mul,
        })
    }
}

/// `y = x·(W·lr_mul/√in)ᵀ + b·lr_mul`, optionally followed by the fused leaky ReLU.
///
/// The checkpoint stores the unscaled `weight [out, in]` and `bias [out]`; [`EqualLinearConfig::load`]
/// folds the scales into them.
#[derive(Module, Debug)]
pub struct EqualLinear<B: Backend> {
    /// Effective weight, transposed: `[in, out]`.
    weight: Param<Tensor<B, 2>>,
    /// Effective bias `[out]` (already multiplied by `lr_mul`).
    bias: Option<Param<Tensor<B, 1>>>,
    activation: bool,
    lr_mul: f32,
}

impl<B: Backend> EqualLinear<B> {
    /// The layer as a checkpoint stores it, the equalized-LR scales taken out again:
    /// `weight [out, in]` and, if the layer has one, `bias [out]`. Loading them back gives the
    /// same layer up to one float32 rounding of each value.
    pub fn checkpoint_tensors(&self) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let [n_in, n_out] = self.weight.dims();
        let scale = ((1.0 / (n_in as f64).sqrt()) * f64::from(self.lr_mul)) as f32;
        let effective = tensor_values(self.weight.val())?;
        let mut raw = vec![0f32; effective.len()];
        for i in 0..n_in {
            for o in 0..n_out {
                raw[o * n_in + i] = effective[i * n_out + o] / scale;
            }
        }
        let bias = match &self.bias {
            Some(bias) => Some(
                tensor_values(bias.val())?
                    .into_iter()
                    .map(|b| b / self.lr_mul)
                    .collect(),
            ),
            None => None,
        };
        Ok((raw, bias))
    }

    /// x: `[batch, in]` → `[batch, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut y = matmul(x, self.weight.val());
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze_dim(0);
        }
        if self.activation {
            y = scaled_leaky_relu(y);
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WeightStore;
    use burn::backend::Flex;

    /// The scales against a hand computation: in = 4 → 1/√4 = 0.5; lr_mul 0.01 on both.
    #[test]
    fn equal_linear_applies_equalized_lr_scales() {
        let store = WeightStore::from_tensors([
            (
                "l.weight".to_string(),
                vec![2, 4],
                vec![1.0, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 0.0],
            ),
            ("l.bias".to_string(), vec![2], vec![10.0, -20.0]),
        ])
        .unwrap();
        let device = Default::default();
        let layer: EqualLinear<Flex> = EqualLinearConfig::new(4, 2)
            .with_lr_mul(0.01)
            .load(&store.root().pp("l"), &device)
            .unwrap();
        let x = Tensor::<Flex, 2>::from_data([[1.0, 1.0, 1.0, 1.0]], &device);
        let y = layer.forward(x).into_data().to_vec::<f32>().unwrap();
        // (1+2+3+4)·0.5·0.01 + 10·0.01 = 0.15; 0·0.005 − 0.2 = −0.2
        assert!((y[0] - 0.15).abs() < 1e-6 && (y[1] + 0.2).abs() < 1e-6, "{y:?}");
        store.root().pp("l").check_all_used().unwrap();

        let activated: EqualLinear<Flex> = EqualLinearConfig::new(4, 2)
            .with_bias(false)
            .with_activation(true)
            .load(&store.root().pp("l"), &device)
            .unwrap();
        let x = Tensor::<Flex, 2>::from_data([[1.0, 0.0, 0.0, 0.0]], &device);
        let y = activated.forward(x).into_data().to_vec::<f32>().unwrap();
        // 0.5 → √2·0.5; −0.5 → √2·0.2·(−0.5)
        let sqrt2 = std::f32::consts::SQRT_2;
        assert!(
            (y[0] - 0.5 * sqrt2).abs() < 1e-6 && (y[1] + 0.1 * sqrt2).abs() < 1e-6,
            "{y:?}"
        );
    }
}
