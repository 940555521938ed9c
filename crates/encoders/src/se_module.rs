//! Squeeze-and-excitation `SEModule(channels, 16)` of the IR-SE units (docs/ARCHITECTURE.md §5.1).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use hyperstyle_core::nn::matmul;
use hyperstyle_core::Weights;

use hyperstyle_core::Result;

/// Channel reduction of the squeeze step.
const REDUCTION: usize = 16;

/// `x · sigmoid(fc2(relu(fc1(mean_hw(x)))))`, with `fc1`, `fc2` bias-free 1×1 convs.
///
/// On a 1×1 map a 1×1 conv is a matrix product, so both are kept as transposed matrices and
/// applied with `matmul` on `[batch, channels]`.
#[derive(Module, Debug)]
pub struct SeModule<B: Backend> {
    /// `fc1.weight` `[channels/16, channels, 1, 1]`, transposed: `[channels, channels/16]`.
    fc1: Param<Tensor<B, 2>>,
    /// `fc2.weight` `[channels, channels/16, 1, 1]`, transposed: `[channels/16, channels]`.
    fc2: Param<Tensor<B, 2>>,
}

impl<B: Backend> SeModule<B> {
    /// Loads `fc1.weight` and `fc2.weight`.
    pub fn load(weights: &Weights, channels: usize, device: &B::Device) -> Result<Self> {
        let squeezed = channels / REDUCTION;
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<Param<Tensor<B, 2>>> {
            let values = weights.pp(name).values("weight", &[rows, cols, 1, 1])?;
            Ok(Param::from_tensor(Tensor::from_data(
                TensorData::new(transpose(&values, rows, cols), [cols, rows]),
                device,
            )))
        };
        Ok(Self {
            fc1: matrix("fc1", squeezed, channels)?,
            fc2: matrix("fc2", channels, squeezed)?,
        })
    }

    /// x: `[batch, channels, height, width]`, same shape out.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, channels, _, _] = x.dims();
        let gate = self.gate(&x);
        x * gate.reshape([batch, channels, 1, 1])
    }

    /// `forward(x) + y` in one pass on the CPU backend (the IR-SE unit's gated residual sum).
    pub fn forward_add(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Tensor<B, 4> {
        let gate = self.gate(&x);
        #[cfg(feature = "flex")]
        let x = match hyperstyle_kernels::flex::gate_add(x, &gate, &y) {
            Ok(out) => return out,
            Err(x) => x,
        };
        let [batch, channels, _, _] = x.dims();
        x * gate.reshape([batch, channels, 1, 1]) + y
    }

    /// The per-channel gate `sigmoid(fc2(relu(fc1(mean(x)))))`: `[batch, channels]`.
    fn gate(&self, x: &Tensor<B, 4>) -> Tensor<B, 2> {
        let squeezed = spatial_mean(x.clone());
        let hidden = relu(matmul(squeezed, self.fc1.val()));
        sigmoid(matmul(hidden, self.fc2.val()))
    }
}

/// Mean over the spatial axes (`AdaptiveAvgPool2d(1)` flattened): `[b, c, h, w]` → `[b, c]`.
pub(crate) fn spatial_mean<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [batch, channels, height, width] = x.dims();
    // One reduction over the contiguous h·w axis rather than two over h and w.
    x.reshape([batch, channels, height * width])
        .mean_dim(2)
        .reshape([batch, channels])
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}
