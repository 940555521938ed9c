//! `SharedWeightsHypernet`: one two-layer linear generator of full 3×3 kernels, shared by every
//! `HyperRefinementBlock` (docs/ARCHITECTURE.md §6.3).

use burn::module::Param;
use burn::prelude::*;

use hyperstyle_core::nn::matmul;
use hyperstyle_core::Result;
use hyperstyle_core::Weights;

/// Kernel side of the offsets it produces.
const F_SIZE: usize = 3;
/// Width of the codes it consumes and of both kernel axes (in = out = 512).
const Z_DIM: usize = 512;

/// Maps a code `z [n, 512]` to a full per-tap offset `[n, 512, 512, 3, 3]`:
/// `h = z·w2 + b2` viewed `[n, 512, 512]`, then `g = h·w1 + b1` viewed `[n, out, in, ky, kx]`.
/// No nonlinearity. (Upstream calls the middle axis of `h` "in", but after the final reshape it
/// is the kernel's OUTPUT axis; harmless because in = out.)
#[derive(Module, Debug)]
pub struct SharedWeightsHypernet<B: Backend> {
    /// `[512, 4608]`
    w1: Param<Tensor<B, 2>>,
    /// `[4608]`
    b1: Param<Tensor<B, 1>>,
    /// `[512, 262144]`
    w2: Param<Tensor<B, 2>>,
    /// `[262144]`
    b2: Param<Tensor<B, 1>>,
}

impl<B: Backend> SharedWeightsHypernet<B> {
    /// Loads `w1`, `b1`, `w2`, `b2`.
    pub fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        let k = Z_DIM * F_SIZE * F_SIZE;
        Ok(Self {
            w1: Param::from_tensor(weights.tensor("w1", [Z_DIM, k], device)?),
            b1: Param::from_tensor(weights.tensor("b1", [k], device)?),
            w2: Param::from_tensor(weights.tensor("w2", [Z_DIM, Z_DIM * Z_DIM], device)?),
            b2: Param::from_tensor(weights.tensor("b2", [Z_DIM * Z_DIM], device)?),
        })
    }

    /// z: `[n, 512]` → offsets `[n, 512, 512, 3, 3]`. Callers stack the codes of all shared
    /// layers into one call, so the 537 MB `w2` is read once per forward, not once per layer.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 5> {
        let n = z.dims()[0];
        let h = (matmul(z, self.w2.val()) + self.b2.val().unsqueeze_dim(0)).reshape([n, Z_DIM, Z_DIM]);
        let g = matmul(h, self.w1.val().unsqueeze_dim(0)) + self.b1.val().reshape([1, 1, Z_DIM * F_SIZE * F_SIZE]);
        g.reshape([n, Z_DIM, Z_DIM, F_SIZE, F_SIZE])
    }
}
