//! The kernels on Burn tensors of the CubeCL GPU backends (wgpu, CUDA), with or without Burn's
//! fusion.
//!
//! Like `crate::flex`, every function is generic over `B: Backend` and returns `None` unless `B`
//! is a CubeCL backend of a runtime this build knows (feature `wgpu`: `WgpuRuntime`, feature
//! `cuda`: `CudaRuntime`) and the inputs share one float dtype; the caller then runs its
//! tensor-operation form. Under fusion each call is registered as one custom operation, so it
//! takes its place in the lazy stream like any other.
//!
//! The kernels (`kernels.rs`) need no autotuning: one compiled kernel per storage type, variant and
//! engine serves every shape, which keeps a cold start to a handful of compilations. Where the
//! GPU has matrix units the convolution kernel can multiply on them ([`TensorCores`]).

// `cube` without `wgpu` or `cuda` compiles the kernels but recognises no backend, which leaves
// the dispatch unused.
#![cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code, unused_imports))]

mod engine;
mod kernels;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{CubeBackend, CubeRuntime};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{FusionRuntime, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

use crate::fir::upfirdn_size;
use crate::same_type;

#[cfg(feature = "wgpu")]
use burn::backend::wgpu::WgpuRuntime;
#[cfg(feature = "cuda")]
use cubecl::cuda::CudaRuntime;
use kernels::ConvKind;

/// An operation with one output that a kernel runs on CubeCL tensors.
trait CubeOp: fmt::Debug + Send + Sync + 'static {
    /// The name fusion streams record.
    const NAME: &'static str;
    /// Runs the kernel on `inputs` (in the order they were given).
    fn run<R: CubeRuntime>(&self, inputs: Vec<CubeTensor<R>>) -> CubeTensor<R>;
}

/// When the convolution kernel (and the matrix products, which run on it) may multiply on the
/// GPU's matrix units: tensor cores, through CubeCL's `cmma` (WMMA on CUDA). A process-wide
/// setting: [`set_tensor_cores`], or at start-up the variable [`TENSOR_CORES_VAR`]
/// (`HYPERSTYLE_TENSOR_CORES=half|tf32|never`). Each call takes the value current when it is
/// made.
///
/// Without matrix units for the case at hand (a device without them, wgpu, a dtype they do not
/// take) the kernel multiplies on the plain units, whatever the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TensorCores {
    /// For f16 and bf16 tensors: their products are exact in f32 and the sums stay f32, so the
    /// results equal the plain kernel's up to summation order. f32 tensors stay full f32. The
    /// default.
    #[default]
    HalfPrecision,
    /// As [`TensorCores::HalfPrecision`], and f32 tensors as TF32 too: each operand keeps 10 of
    /// its 23 fraction bits (cut, not rounded: a relative error below 2⁻¹⁰ per operand, so
    /// below 2⁻⁹ per product), with f32 sums. Several times faster on GPUs with TF32 units.
    Tf32,
    /// Never: every product on the plain units, in f32.
    Never,
    /// A testing aid: the tensor-core kernel's fragment layout and data movement with plain code
    /// in place of each matrix instruction (f32 products), on any device and dtype.
    #[doc(hidden)]
    Emulated,
}

/// The setting as `TensorCores as u8`, or [`UNSET`] before the first read or write.
static TENSOR_CORES: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// The variable whose value, if set, is the setting a process starts with: `half` (the
/// default), `tf32` or `never`.
pub const TENSOR_CORES_VAR: &str = "HYPERSTYLE_TENSOR_CORES";

impl TensorCores {
    const ALL: [TensorCores; 4] = [
        TensorCores::HalfPrecision,
        TensorCores::Tf32,
        TensorCores::Never,
        TensorCores::Emulated,
    ];

    /// The setting named `name` (`half`, `tf32`, `never`; any case), as [`TENSOR_CORES_VAR`]
    /// takes it.
    pub fn from_name(name: &str) -> Option<TensorCores> {
        match name.trim().to_ascii_lowercase().as_str() {
            "half" => Some(TensorCores::HalfPrecision),
            "tf32" => Some(TensorCores::Tf32),
            "never" => Some(TensorCores::Never),
            "emulated" => Some(TensorCores::Emulated),
            _ => None,
        }
    }
}

/// Sets when later kernel calls may use the matrix units (see [`TensorCores`]).
pub fn set_tensor_cores(cores: TensorCores) {
    TENSOR_CORES.store(cores as u8, Ordering::Relaxed);
}

/// The current [`TensorCores`] setting: the last one set, else the one named by
/// [`TENSOR_CORES_VAR`] (an unknown name is reported on stderr once and ignored), else
/// [`TensorCores::HalfPrecision`].
pub fn tensor_cores() -> TensorCores {
    let current = TENSOR_CORES.load(Ordering::Relaxed);
    if let Some(&cores) = TensorCores::ALL.get(usize::from(current)) {
        return cores;
    }
    let from_env = std::env::var(TENSOR_CORES_VAR).ok().and_then(|name| {
        let cores = TensorCores::from_name(&name);
        if cores.is_none() {
            eprintln!("{TENSOR_CORES_VAR}={name:?} is not one of half, tf32, never: ignored");
        }
        cores
    });
    let cores = from_env.unwrap_or_default();
    // A concurrent `set_tensor_cores` wins over the environment.
    match TENSOR_CORES.compare_exchange(UNSET, cores as u8, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => cores,
        Err(_) => tensor_cores(),
    }
}

#[derive(Debug)]
struct Conv {
    kind: ConvKind,
    cores: TensorCores,
}

impl CubeOp for Conv {
    const NAME: &'static str = "hyperstyle_conv";
    fn run<R: CubeRuntime>(&self, mut inputs: Vec<CubeTensor<R>>) -> CubeTensor<R> {
        let weight = inputs.pop().expect("conv takes x and weight");
        let x = inputs.pop().expect("conv takes x and weight");
        kernels::conv(x, weight, self.kind, self.cores)
    }
}

/// `[batch or 1, m, k] × [batch or 1, k, n]` as the convolution kernel sees it: output
/// channels `m` (weights: `lhs`), input channels `k`, pixels `n` (input: `rhs`), so both are read
/// along their contiguous rows and the output comes out in place, with no copies.
#[derive(Debug)]
struct Matmul {
    /// The output's own shape (rank 2 or 3).
    shape: Vec<usize>,
    cores: TensorCores,
}

impl CubeOp for Matmul {
    const NAME: &'static str = "hyperstyle_matmul";
    fn run<R: CubeRuntime>(&self, mut inputs: Vec<CubeTensor<R>>) -> CubeTensor<R> {
        use burn_cubecl::ops::reshape;
        let rhs = inputs.pop().expect("matmul takes lhs and rhs");
        let lhs = inputs.pop().expect("matmul takes lhs and rhs");
        let as_conv = |t: CubeTensor<R>, trailing: &[usize]| {
            let dims = t.meta.shape().to_vec();
            let (rows, cols) = (dims[dims.len() - 2], dims[dims.len() - 1]);
            let batch = dims.len().checked_sub(3).map_or(1, |i| dims[i]);
            let mut shape = vec![batch, rows, cols];
            shape.extend_from_slice(trailing);
            reshape(t, Shape::from(shape))
        };
        let weight = as_conv(lhs, &[1, 1]);
        let x = as_conv(rhs, &[1]);
        let out = kernels::conv(x, weight, ConvKind::Direct { stride: 1, pad: 0 }, self.cores);
        reshape(out, Shape::from(self.shape.clone()))
    }
}

#[derive(Debug)]
struct Upfirdn {
    up: usize,
    pad: [usize; 2],
}

impl CubeOp for Upfirdn {
    const NAME: &'static str = "hyperstyle_upfirdn2d";
    fn run<R: CubeRuntime>(&self, mut inputs: Vec<CubeTensor<R>>) -> CubeTensor<R> {
        let fir = inputs.pop().expect("upfirdn2d takes x and the FIR kernel");
        let x = inputs.pop().expect("upfirdn2d takes x and the FIR kernel");
        kernels::upfirdn2d(x, fir, self.up, self.pad)
    }
}

/// A [`CubeOp`] registered in a fusion stream.
struct Fused<R, O> {
    desc: CustomOpIr,
    op: O,
    runtime: PhantomData<fn() -> R>,
}

impl<R, O: fmt::Debug> fmt::Debug for Fused<R, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fused")
            .field("desc", &self.desc)
            .field("op", &self.op)
            .finish()
    }
}

/// Any CubeCL backend of runtime `R`: their float tensors are all `CubeTensor<R>`.
type AnyCube<R> = CubeBackend<R, f32, i32, u32>;

impl<R: CubeRuntime, O: CubeOp> Operation<FusionCubeRuntime<R>> for Fused<R, O> {
    fn execute(&self, handles: &mut HandleContainer<<FusionCubeRuntime<R> as FusionRuntime>::FusionHandle>) {
        let inputs = self
            .desc
            .inputs
            .iter()
            .map(|input| handles.get_float_tensor::<AnyCube<R>>(input))
            .collect();
        let out = self.op.run(inputs);
        handles.register_float_tensor::<AnyCube<R>>(&self.desc.outputs[0].id, out);
    }
}

/// Registers `op` on fusion tensors of runtime `R`; its output has `shape` and the inputs' dtype.
fn fused<R: CubeRuntime, O: CubeOp>(
    op: O,
    inputs: Vec<FusionTensor<FusionCubeRuntime<R>>>,
    shape: Shape,
) -> FusionTensor<FusionCubeRuntime<R>> {
    let client = inputs[0].client.clone();
    let streams = OperationStreams::with_inputs(inputs.iter());
    let out = TensorIr::uninit(client.create_empty_handle(), shape, inputs[0].dtype);
    let inputs: Vec<TensorIr> = inputs.into_iter().map(FusionTensor::into_ir).collect();
    let desc = CustomOpIr::new(O::NAME, &inputs, &[out]);
    let op = Fused {
        desc: desc.clone(),
        op,
        runtime: PhantomData::<fn() -> R>,
    };
    client
        .register(streams, OperationIr::Custom(desc), op)
        .pop()
        .expect("the operation has one output")
}

/// Runs `op` on `inputs` when `B`'s float tensors are those of runtime `R`'s CubeCL backend,
/// plain or fused; hands the inputs back otherwise.
fn on_runtime<B: Backend, R: CubeRuntime, O: CubeOp>(
    op: O,
    inputs: Vec<FloatTensor<B>>,
    shape: &Shape,
) -> Result<FloatTensor<B>, (O, Vec<FloatTensor<B>>)> {
    let inputs = match same_type::<_, Vec<CubeTensor<R>>>(inputs) {
        Ok(cube) => return same_type(op.run(cube)).map_err(|_| unreachable!("the types matched")),
        Err(inputs) => inputs,
    };
    match same_type::<_, Vec<FusionTensor<FusionCubeRuntime<R>>>>(inputs) {
        Ok(fusion) => same_type(fused(op, fusion, shape.clone())).map_err(|_| unreachable!("the types matched")),
        Err(inputs) => Err((op, inputs)),
    }
}

/// Runs `op` on `inputs` on whichever known CubeCL runtime `B` uses; `None` for other backends
/// or when the inputs' dtypes differ.
fn apply<B: Backend, O: CubeOp, const D: usize>(
    op: O,
    inputs: Vec<FloatTensor<B>>,
    shape: [usize; D],
) -> Option<Tensor<B, D>> {
    if !accelerates::<B>() {
        return None;
    }
    let shape = Shape::new(shape);
    #[allow(unused_mut)]
    let mut pending = Some((op, inputs));
    #[cfg(feature = "wgpu")]
    if let Some((op, inputs)) = pending.take() {
        match on_runtime::<B, WgpuRuntime, O>(op, inputs, &shape) {
            Ok(out) => return Some(Tensor::from_primitive(TensorPrimitive::Float(out))),
            Err(back) => pending = Some(back),
        }
    }
    #[cfg(feature = "cuda")]
    if let Some((op, inputs)) = pending.take() {
        match on_runtime::<B, CudaRuntime, O>(op, inputs, &shape) {
            Ok(out) => return Some(Tensor::from_primitive(TensorPrimitive::Float(out))),
            Err(back) => pending = Some(back),
        }
    }
    let _ = (pending, shape);
    None
}

/// Whether `B` is a CubeCL backend (plain or fused) of a runtime this build knows.
pub fn accelerates<B: Backend>() -> bool {
    #[cfg(feature = "wgpu")]
    if on::<B, WgpuRuntime>() {
        return true;
    }
    #[cfg(feature = "cuda")]
    if on::<B, CudaRuntime>() {
        return true;
    }
    false
}

/// Whether `B`'s float tensors are those of runtime `R`'s CubeCL backend, plain or fused.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn on<B: Backend, R: CubeRuntime>() -> bool {
    use std::any::TypeId;
    let float = TypeId::of::<FloatTensor<B>>();
    float == TypeId::of::<CubeTensor<R>>() || float == TypeId::of::<FusionTensor<FusionCubeRuntime<R>>>()
}

/// The primitives of `x` and `other` when they share a float dtype.
fn primitives<B: Backend, const D1: usize, const D2: usize>(
    x: &Tensor<B, D1>,
    other: &Tensor<B, D2>,
) -> Option<Vec<FloatTensor<B>>> {
    let dtype = x.dtype();
    if dtype != other.dtype() || !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return None;
    }
    Some(vec![
        x.clone().into_primitive().tensor(),
        other.clone().into_primitive().tensor(),
    ])
}

/// A "same" stride-1 convolution of each sample with its own kernel: x `[n, in, h, w]`, weights
/// `[n or 1, out, in, k, k]` (odd `k`) → `[n, out, h, w]`.
pub fn conv2d_same<B: Backend>(x: &Tensor<B, 4>, weights: &Tensor<B, 5>) -> Option<Tensor<B, 4>> {
    let k = weights.dims()[3];
    conv2d(x, weights, 1, k / 2)
}

/// A convolution with stride `stride` and `pad` zeros on every side: x `[n, in, h, w]`, weights
/// `[n or 1, out, in, k, k]` → `[n, out, (h + 2·pad − k) / stride + 1, …]`.
pub fn conv2d<B: Backend>(x: &Tensor<B, 4>, weights: &Tensor<B, 5>, stride: usize, pad: usize) -> Option<Tensor<B, 4>> {
    let kind = ConvKind::Direct { stride, pad };
    conv_with(x, weights, kind)
}

/// The stride-2 transposed convolution (no padding) of each sample with its own kernel, the
/// up-sampling step of a modulated conv: x `[n, in, h, w]`, weights `[n or 1, out, in, k, k]`
/// (indexed `[out, in]`, not swapped) → `[n, out, 2h + k − 2, 2w + k − 2]`.
pub fn conv_transpose2d_stride2<B: Backend>(x: &Tensor<B, 4>, weights: &Tensor<B, 5>) -> Option<Tensor<B, 4>> {
    conv_with(x, weights, ConvKind::TransposedStride2)
}

fn conv_with<B: Backend>(x: &Tensor<B, 4>, weights: &Tensor<B, 5>, kind: ConvKind) -> Option<Tensor<B, 4>> {
    let [n, cin, h, w] = x.dims();
    let [wb, cout, win, k, k2] = weights.dims();
    if win != cin || k != k2 || (wb != n && wb != 1) || h == 0 || w == 0 || k == 0 {
        return None;
    }
    if let ConvKind::Direct { stride, pad } = kind {
        if stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
            return None;
        }
    }
    let shape = [n, cout, kind.out_size(h, k), kind.out_size(w, k)];
    let op = Conv {
        kind,
        cores: tensor_cores(),
    };
    apply(op, primitives(x, weights)?, shape)
}

/// `lhs.matmul(rhs)` with `f32` sums, and `f32` products unless [`TensorCores::Tf32`] is set:
/// `[m, k] × [k, n]`, or batched `[batch or 1, m, k] × [batch or 1, k, n]`.
pub fn matmul<B: Backend, const D: usize>(lhs: &Tensor<B, D>, rhs: &Tensor<B, D>) -> Option<Tensor<B, D>> {
    if D != 2 && D != 3 {
        return None;
    }
    let (mut shape, rdims) = (lhs.dims(), rhs.dims());
    if rdims[D - 2] != shape[D - 1] || shape.contains(&0) || rdims.contains(&0) {
        return None;
    }
    if D == 3 {
        if shape[0] != rdims[0] && shape[0] != 1 && rdims[0] != 1 {
            return None;
        }
        shape[0] = shape[0].max(rdims[0]);
    }
    shape[D - 1] = rdims[D - 1];
    let op = Matmul {
        shape: shape.to_vec(),
        cores: tensor_cores(),
    };
    apply(op, primitives(lhs, rhs)?, shape)
}

/// `upfirdn2d(x, fir, up, pad)` without decimation on every plane: x `[n, c, h, w]`, fir
/// `[1, 1, kh, kw]` (the kernel as stored, not flipped), `up` 1 or 2 → `[n, c, up·h + p0 + p1 −
/// kh + 1, …]`.
pub fn upfirdn2d<B: Backend>(x: &Tensor<B, 4>, fir: &Tensor<B, 4>, up: usize, pad: [usize; 2]) -> Option<Tensor<B, 4>> {
    let [n, c, h, w] = x.dims();
    let [one, one2, kh, kw] = fir.dims();
    if one != 1 || one2 != 1 || !(1..=2).contains(&up) {
        return None;
    }
    let (oh, ow) = (upfirdn_size(h, up, kh, pad), upfirdn_size(w, up, kw, pad));
    if oh == 0 || ow == 0 {
        return None;
    }
    apply(Upfirdn { up, pad }, primitives(x, fir)?, [n, c, oh, ow])
}

#[cfg(test)]
mod tests {
    use super::TensorCores;

    #[test]
    fn setting_names() {
        for (name, cores) in [
            ("half", TensorCores::HalfPrecision),
            ("TF32", TensorCores::Tf32),
            (" never\n", TensorCores::Never),
        ] {
            assert_eq!(TensorCores::from_name(name), Some(cores), "{name:?}");
        }
        assert_eq!(TensorCores::from_name("always"), None);
        for (i, cores) in TensorCores::ALL.into_iter().enumerate() {
            assert_eq!(cores as usize, i, "ALL is in discriminant order");
        }
    }
}
