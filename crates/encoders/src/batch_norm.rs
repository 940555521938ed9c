//! `nn.BatchNorm2d` in eval mode (docs/ARCHITECTURE.md §5.1), reduced at load time to a per-channel affine map.

use burn::module::Param;
use burn::prelude::*;
use hyperstyle_core::Weights;

use crate::per_channel::per_sample;
use hyperstyle_core::Result;

/// PyTorch's default BatchNorm epsilon.
const EPS: f64 = 1e-5;

/// Reads `weight`, `bias`, `running_mean`, `running_var` (`[channels]` each) and returns the
/// equivalent `(scale, shift)`: `y = (x − mean)/√(var + ε)·weight + bias = x·scale + shift`.
/// This is also how PyTorch's CPU kernel evaluates an eval-mode BatchNorm. The integer
/// `num_batches_tracked` buffer of real checkpoints is consumed without being read.
///
/// The values are computed in f64 and stay f64 here: a tensor made from them has the device's
/// float type, so a float32 model rounds each once and a float64 one keeps them exact.
pub(crate) fn scale_shift(weights: &Weights, channels: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let shape = [channels];
    let gamma = weights.values("weight", &shape)?;
    let beta = weights.values("bias", &shape)?;
    let mean = weights.values("running_mean", &shape)?;
    let var = weights.values("running_var", &shape)?;
    weights.ignore("num_batches_tracked");
    let scale: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(&g, &v)| f64::from(g) / (f64::from(v) + EPS).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((&b, &m), &s)| f64::from(b) - f64::from(m) * s)
        .collect();
    Ok((scale, shift))
}

/// An eval-mode BatchNorm that cannot be folded into a neighbouring convolution (the one that
/// opens every IR-SE residual branch: it precedes a zero-padded conv, so its shift must be applied
/// before the padding).
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// `weight / √(running_var + ε)`: `[1, channels, 1, 1]`.
    scale: Param<Tensor<B, 4>>,
    /// `bias − running_mean·scale`: `[1, channels, 1, 1]`.
    shift: Param<Tensor<B, 4>>,
}

impl<B: Backend> BatchNorm<B> {
    /// Loads `weight`, `bias`, `running_mean`, `running_var`.
    pub fn load(weights: &Weights, channels: usize, device: &B::Device) -> Result<Self> {
        let (scale, shift) = scale_shift(weights, channels)?;
        let param = |v| Param::from_tensor(Tensor::from_data(TensorData::new(v, [1, channels, 1, 1]), device));
        Ok(Self {
            scale: param(scale),
            shift: param(shift),
        })
    }

    /// x: `[batch, channels, height, width]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        #[cfg(feature = "flex")]
        let x = {
            // The CPU backend: one threaded pass, in place when `x` is not shared.
            let c = self.scale.dims()[1];
            let (scale, shift) = (self.scale.val().reshape([c]), self.shift.val().reshape([c]));
            match hyperstyle_kernels::flex::channel_affine(x, &scale, &shift) {
                Ok(y) => return y,
                Err(x) => x,
            }
        };
        let batch = x.dims()[0];
        x * per_sample(self.scale.val(), batch) + per_sample(self.shift.val(), batch)
    }
}
