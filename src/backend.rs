//! Concrete Burn backends behind the crate's cargo features. Every network is generic over
//! `B: Backend`; these aliases are what examples, tests and benches pick.

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
pub type Default = Cuda;
/// The fastest enabled backend: CUDA, else wgpu, else the CPU.
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type Default = Wgpu;
/// The fastest enabled backend: CUDA, else wgpu, else the CPU.
#[cfg(all(feature = "cpu", not(any(feature = "wgpu", feature = "cuda"))))]
pub type Default = Cpu;
