//! CPU kernels for the operations that dominate StyleGAN2 synthesis, on plain `f32` slices in
//! `[batch, channels, height, width]` order:
//!
//! * [`conv`]: convolutions where every sample has its own kernel (modulated convolutions) —
//!   "same" stride-1 and stride-2 transposed — and ordinary strided convolutions with a bias and
//!   an activation, as tiled im2col + GEMM, with no grouped convolution, no zero insertion and no
//!   full-size unfolded buffer;
//! * [`fir`]: FIR filtering with optional 2× up-sampling (`upfirdn2d` without decimation);
//! * [`activation`]: noise injection + bias + scaled leaky ReLU in one pass, in place;
//! * [`elementwise`]: the encoders' per-channel passes (batch norm, gate + residual, residual +
//!   ReLU), in place and threaded;
//! * [`allocator`]: keeping freed memory for reuse instead of paying page faults for every
//!   large buffer.
//!
//! Work is spread over rayon's thread pool; GEMM uses the `gemm` crate's micro-kernels (AVX-512
//! where the CPU has it, chosen at run time). With the `flex` feature, `flex` runs them on Burn
//! tensors of the burn-flex CPU backend and declines every other backend, so model code can call
//! them first and fall back to its tensor-operation form. With `wgpu` / `cuda`, `cube` does the
//! same on the GPU backends with CubeCL kernels (convolutions with shared or per-sample kernels,
//! matrix products, FIR resampling).

#![warn(missing_docs)]

pub mod activation;
pub mod allocator;
pub mod conv;
#[cfg(feature = "cube")]
pub mod cube;
pub mod elementwise;
pub mod fir;
#[cfg(feature = "flex")]
pub mod flex;

/// Moves `value` into type `U` when `T` and `U` are the same type.
#[cfg(any(feature = "flex", feature = "cube"))]
fn same_type<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    let any: &mut dyn std::any::Any = &mut slot;
    match any.downcast_mut::<Option<U>>().and_then(Option::take) {
        Some(value) => Ok(value),
        None => match slot {
            Some(value) => Err(value),
            None => unreachable!("the value is taken only when the types match"),
        },
    }
}
