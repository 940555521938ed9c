//! Concrete Burn backends behind the crate's cargo features, and the float precision a device
//! computes in. Every network is generic over `B: Backend`; these aliases are what examples,
//! tests and benches pick.

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{get_device_settings, set_default_dtypes, DType, Element, FloatDType};

use crate::error::{Error, Result};

pub use hyperstyle_kernels::allocator::reuse_freed_memory;
pub use runtime::{
    counting_runtime_events, default_cache_dir, runtime_events, AutotuneLevel, GpuRuntime, RuntimeEvents,
};

mod runtime;

/// The CPU backend (burn-flex, SIMD and threads): the default feature `cpu`.
#[cfg(feature = "cpu")]
pub type Cpu = burn::backend::Flex;

/// wgpu (Vulkan, Metal, DX12): feature `wgpu`.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;

/// CUDA: feature `cuda`.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// The fastest enabled backend: CUDA, else wgpu, else the CPU.
#[cfg(feature = "cuda")]
pub type DefaultBackend = Cuda;
/// The fastest enabled backend: CUDA, else wgpu, else the CPU.
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type DefaultBackend = Wgpu;
/// The fastest enabled backend: CUDA, else wgpu, else the CPU.
#[cfg(all(feature = "cpu", not(any(feature = "wgpu", feature = "cuda"))))]
pub type DefaultBackend = Cpu;

/// The float type a device's tensors are created in (weights, activations, offsets).
///
/// Choose it with [`set_precision`] before loading a model on the device. Float32 reproduces
/// upstream to its own rounding noise; the half types halve memory and, on GPUs with tensor
/// cores, run faster, at the error stated in BENCHMARKS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// IEEE float32 (the default).
    #[default]
    F32,
    /// IEEE float16: 11-bit significand, largest value 65504.
    F16,
    /// bfloat16: float32's range with an 8-bit significand.
    BF16,
    /// float32 tensors, with the convolutions' and matrix products' operands cut to TF32 (10
    /// fraction bits) on GPUs whose tensor cores take it (NVIDIA Ampere and later, CUDA
    /// backend); sums stay float32. Several times faster there than [`Precision::F32`], at
    /// about 2⁻¹⁰ relative error per operand. Elsewhere the same as [`Precision::F32`]. This
    /// switch is process-wide (`hyperstyle::kernels::cube::set_tensor_cores`).
    Tf32,
}

impl Precision {
    fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 | Precision::Tf32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::BF16 => FloatDType::BF16,
        }
    }

    /// Unit roundoff (half the distance from 1 to the next value): 2⁻²⁴, 2⁻¹¹, 2⁻⁸; for TF32,
    /// whose operands are cut rather than rounded, the whole distance, 2⁻¹⁰.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Precision::F32 => 2f64.powi(-24),
            Precision::F16 => 2f64.powi(-11),
            Precision::BF16 => 2f64.powi(-8),
            Precision::Tf32 => 2f64.powi(-10),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::BF16 => "bf16",
            Precision::Tf32 => "tf32",
        })
    }
}

impl FromStr for Precision {
    type Err = hyperstyle_core::Error;

    /// `f32`, `f16`, `bf16` or `tf32` (also `float32`, `float16`, `half`, `bfloat16`; any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Precision::F32),
            "f16" | "float16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::BF16),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(hyperstyle_core::Error::unknown(
                "precision",
                s,
                &["f32", "f16", "bf16", "tf32"],
            )),
        }
    }
}

/// Makes every float tensor later created on `device` use `precision`. Call it before loading a
/// model there: a device's precision is fixed by its first tensor (Burn's device settings), so a
/// later call that asks for another precision is an error. Asking for the precision the device
/// already has is not.
pub fn set_precision<B: Backend>(device: &B::Device, precision: Precision) -> Result<()> {
    GpuRuntime::install_default_once();
    let int = <<B as BackendTypes>::IntElem as Element>::dtype();
    let set = match set_default_dtypes::<B>(device, precision.dtype(), int) {
        Ok(()) => Ok(()),
        Err(err) => {
            if DType::from(get_device_settings::<B>(device).float_dtype) == DType::from(precision.dtype()) {
                Ok(())
            } else {
                Err(Error::Precision {
                    precision,
                    reason: err.to_string(),
                })
            }
        }
    };
    if set.is_ok() {
        tf32(precision == Precision::Tf32);
    }
    set
}

/// Switches TF32 products on or off for the GPU kernels (a user's other tensor-core setting
/// stays as it is when TF32 is switched off).
fn tf32(on: bool) {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        use hyperstyle_kernels::cube::{set_tensor_cores, tensor_cores, TensorCores};
        if on {
            set_tensor_cores(TensorCores::Tf32);
        } else if tensor_cores() == TensorCores::Tf32 {
            set_tensor_cores(TensorCores::default());
        }
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    let _ = on;
}

/// Whether TF32 products are switched on.
fn tf32_on() -> bool {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        use hyperstyle_kernels::cube::{tensor_cores, TensorCores};
        tensor_cores() == TensorCores::Tf32
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    false
}

/// The precision float tensors on `device` are created in (fixes it to float32 if nothing did
/// before).
pub fn precision<B: Backend>(device: &B::Device) -> Option<Precision> {
    match DType::from(get_device_settings::<B>(device).float_dtype) {
        DType::F32 if tf32_on() => Some(Precision::Tf32),
        DType::F32 => Some(Precision::F32),
        DType::F16 => Some(Precision::F16),
        DType::BF16 => Some(Precision::BF16),
        _ => None,
    }
}

/// Checks that `device` can run: one tiny computation, read back.
///
/// GPU backends start their driver on first use and panic when it is missing (no CUDA driver or
/// `libnvrtc`, no Vulkan / Metal / DX12 adapter); this turns that panic into
/// [`Error::Device`] naming what is missing. [`crate::HyperStyleBuilder::load`] calls it before
/// loading anything. Like any first tensor, it fixes the device's precision: call
/// [`set_precision`] first.
pub fn check_device<B: Backend>(device: &B::Device) -> Result<()> {
    GpuRuntime::install_default_once();
    use burn::tensor::{ElementConversion, Tensor};
    let run = || -> f32 {
        let x = Tensor::<B, 1>::from_floats([1.0], device);
        x.add_scalar(1.0).into_scalar().elem()
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(2.0) => Ok(()),
        Ok(value) => Err(Error::Device(format!(
            "the device computed 1 + 1 = {value}; its driver or backend is broken"
        ))),
        Err(payload) => Err(Error::Device(device_failure(payload.as_ref()))),
    }
}

/// The message of a device start-up panic, with what usually causes it.
fn device_failure(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    format!(
        "the device could not start ({what}). CUDA needs an NVIDIA driver (libcuda) and libnvrtc on the \
         library path; wgpu needs a Vulkan, Metal or DX12 adapter. Without one, build with the default \
         `cpu` feature"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_device_passes_the_check_and_a_panic_becomes_a_device_error() {
        check_device::<burn::backend::Flex>(&Default::default()).unwrap();
        let payload = std::panic::catch_unwind(|| panic!("no CUDA driver found")).unwrap_err();
        let message = device_failure(payload.as_ref());
        assert!(
            message.contains("no CUDA driver found") && message.contains("libnvrtc"),
            "{message}"
        );
    }

    #[test]
    fn precision_names() {
        for p in [Precision::F32, Precision::F16, Precision::BF16, Precision::Tf32] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        assert_eq!("BFloat16".parse::<Precision>().unwrap(), Precision::BF16);
        assert!("f8"
            .parse::<Precision>()
            .unwrap_err()
            .to_string()
            .contains("f32, f16, bf16, tf32"));
        assert_eq!(Precision::F16.unit_roundoff(), 1.0 / 2048.0);
    }
}
