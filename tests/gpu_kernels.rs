//! The GPU kernels (`hyperstyle::kernels::cube`) against Burn's own convolutions and matrix
//! products on the CPU, plain and under fusion, at shapes that leave partial tiles on every
//! axis: on wgpu (software Vulkan suffices; `--features wgpu`) with both engines of the
//! convolution kernel, and on CUDA (`--features cuda`, needs an NVIDIA GPU) with the tensor
//! cores too, in f32, TF32 and f16.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::FloatDType;
use hyperstyle::kernels::cube::{self, TensorCores};
use hyperstyle_testing::{error_stats, to_vec};

/// Deterministic multiples of 2⁻¹⁰ in [-1, 1): exact in f16, and their products exact in f32.
fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| {
            let v = i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8;
            (v % 2048) as f32 / 1024.0 - 1.0
        })
        .collect()
}

fn cpu<const D: usize>(shape: [usize; D], seed: u32) -> Tensor<Flex, D> {
    let len = shape.iter().product();
    Tensor::from_data(TensorData::new(values(len, seed), shape), &Default::default())
}

/// How a case runs on the GPU: the tensors' dtype there, and the error its arithmetic allows.
#[derive(Debug, Clone, Copy)]
struct Arithmetic {
    dtype: FloatDType,
    /// Allowed error per unit of Σ|products| (the operation on |x| and |w|).
    per_abs_sum: f32,
    /// Allowed error per unit of |result|.
    per_value: f32,
}

/// f32 products and sums: only summation order differs from the CPU ([`TOLERANCE`]).
const F32: Arithmetic = Arithmetic {
    dtype: FloatDType::F32,
    per_abs_sum: 0.0,
    per_value: 0.0,
};

fn to_gpu<B: Backend, const D: usize>(x: &Tensor<Flex, D>, device: &B::Device, arithmetic: Arithmetic) -> Tensor<B, D> {
    Tensor::<B, D>::from_data(x.to_data(), device).cast(arithmetic.dtype)
}

/// Asserts every value of `gpu` within `TOLERANCE + per_abs_sum · abs_sum + per_value ·
/// |reference|` of `reference` (f32 on the CPU), printing max-abs and mean-abs error and the
/// largest share of the allowance used.
fn assert_matches<B: Backend, const D: usize>(
    what: &str,
    gpu: Tensor<B, D>,
    (reference, abs_sum): (Tensor<Flex, D>, Tensor<Flex, D>),
    arithmetic: Arithmetic,
) {
    let (shape, actual) = to_vec(gpu.cast(FloatDType::F32));
    let (expected_shape, expected) = to_vec(reference);
    let (_, abs_sum) = to_vec(abs_sum);
    assert_eq!(shape, expected_shape, "{what}: shape");
    let stats = error_stats(&actual, &expected);
    let used = actual
        .iter()
        .zip(&expected)
        .zip(&abs_sum)
        .map(|((a, e), s)| (a - e).abs() / (TOLERANCE + arithmetic.per_abs_sum * s + arithmetic.per_value * e.abs()))
        .fold(0.0f32, f32::max);
    println!("{what}: {stats}, {:.0}% of the allowed error at worst", used * 100.0);
    assert!(
        used <= 1.0,
        "{what}: {stats} exceeds the allowed error ({:.0}% of it)",
        used * 100.0
    );
}

/// `f(x, w)` and `f(|x|, |w|)` (the magnitudes' sum, which bounds operand rounding) on the CPU.
fn reference<const D: usize>(
    x: &Tensor<Flex, 4>,
    w: &Tensor<Flex, D>,
    f: impl Fn(&Tensor<Flex, 4>, &Tensor<Flex, D>) -> Tensor<Flex, 4>,
) -> (Tensor<Flex, 4>, Tensor<Flex, 4>) {
    (f(x, w), f(&x.clone().abs(), &w.clone().abs()))
}

/// Per-sample convolutions on the CPU by Burn's own ops: `f(x_b, w_b)` for every sample.
fn per_sample(
    x: &Tensor<Flex, 4>,
    w: &Tensor<Flex, 5>,
    f: impl Fn(Tensor<Flex, 4>, Tensor<Flex, 4>) -> Tensor<Flex, 4>,
) -> Tensor<Flex, 4> {
    let [n, ..] = x.dims();
    let [wb, cout, cin, k, _] = w.dims();
    let outputs = (0..n)
        .map(|b| {
            let wi = w
                .clone()
                .narrow(0, if wb == 1 { 0 } else { b }, 1)
                .reshape([cout, cin, k, k]);
            f(x.clone().narrow(0, b, 1), wi)
        })
        .collect();
    Tensor::cat(outputs, 0)
}

// Every output is a sum of at most in·k² = 20·25 products of multiples of 2⁻¹⁰ in [-1, 1): each
// product is exact in f32 (a multiple of 2⁻²⁰ below 1), and so is every partial sum below 16
// (24 bits), whatever the order; the few above 16 round by 2⁻¹⁹ ≈ 2e-6 at most. So f32 engines
// match to ~1e-5 even in a bad case (measured: 0), while a wrong or missing tap moves an output
// by the size of one product, ~0.3 typically.
const TOLERANCE: f32 = 5e-5;

fn check<B: Backend>(device: &B::Device, label: &str, arithmetic: Arithmetic) {
    assert!(cube::accelerates::<B>(), "{label}: the kernels must claim this backend");
    let gpu = |t: &Tensor<Flex, 4>| to_gpu::<B, 4>(t, device, arithmetic);
    // 70 output channels (two channel tiles), 20 input channels (a partial second slab of 16,
    // and in it a partial second matrix step of 8), 9×11 pixels (a partial pixel tile), batch 2.
    let x = cpu([2, 20, 9, 11], 1);
    for (wb, k) in [(2, 3), (1, 3), (2, 1), (1, 5)] {
        let w = cpu([wb, 70, 20, k, k], 2 + k as u32);
        let (gx, gw) = (gpu(&x), to_gpu::<B, 5>(&w, device, arithmetic));

        let pad = k / 2;
        let same = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        assert_matches(
            &format!("{label} same conv wb={wb} k={k}"),
            cube::conv2d_same(&gx, &gw).expect("runs"),
            reference(&x, &w, |x, w| per_sample(x, w, |x, w| conv2d(x, w, None, same.clone()))),
            arithmetic,
        );

        let strided = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        assert_matches(
            &format!("{label} stride-2 conv wb={wb} k={k}"),
            cube::conv2d(&gx, &gw, 2, 1).expect("runs"),
            reference(&x, &w, |x, w| {
                per_sample(x, w, |x, w| conv2d(x, w, None, strided.clone()))
            }),
            arithmetic,
        );

        let transposed = ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1);
        assert_matches(
            &format!("{label} transposed conv wb={wb} k={k}"),
            cube::conv_transpose2d_stride2(&gx, &gw).expect("runs"),
            reference(&x, &w, |x, w| {
                per_sample(x, w, |x, w| {
                    conv_transpose2d(x, w.swap_dims(0, 1), None, transposed.clone())
                })
            }),
            arithmetic,
        );
    }

    // FIR: an asymmetric 4×4 kernel, so a missing flip shows; up 1 pad (1, 1) and up 2 pad (2, 1).
    let fir = cpu([1, 1, 4, 4], 9);
    let x = cpu([2, 3, 7, 5], 4);
    let (gx, gf) = (gpu(&x), gpu(&fir));
    assert_matches(
        &format!("{label} blur"),
        cube::upfirdn2d(&gx, &gf, 1, [1, 1]).expect("runs"),
        reference(&x, &fir, |x, fir| {
            let planes = x.clone().reshape([6, 1, 7, 5]);
            let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
            conv2d(planes, fir.clone().flip([2, 3]), None, options).reshape([2, 3, 6, 4])
        }),
        arithmetic,
    );
    assert_matches(
        &format!("{label} up-sampling"),
        cube::upfirdn2d(&gx, &gf, 2, [2, 1]).expect("runs"),
        reference(&x, &fir, |x, fir| {
            let planes = x.clone().reshape([6, 1, 7, 5]);
            let options = ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1);
            conv_transpose2d(planes, fir.clone(), None, options).reshape([2, 3, 14, 10])
        }),
        arithmetic,
    );
}

/// Matrix products (sums of 70 products of values in [-1, 1]; same bound as the convolutions),
/// plain and batched with either side shared, and on a transposed (strided) view. Compared as
/// `[1, batch, m, n]`, so the helpers of the convolutions serve.
fn check_matmul<B: Backend>(device: &B::Device, label: &str, arithmetic: Arithmetic) {
    let as4 = |t: Tensor<Flex, 3>| t.unsqueeze::<4>();
    let matmul = |a: &Tensor<Flex, 4>, b: &Tensor<Flex, 4>| a.clone().matmul(b.clone());
    let (a, b) = (cpu([5, 70], 11), cpu([70, 130], 12));
    let (ga, gb) = (
        to_gpu::<B, 2>(&a, device, arithmetic),
        to_gpu::<B, 2>(&b, device, arithmetic),
    );
    let (a, b) = (as4(a.unsqueeze()), as4(b.unsqueeze()));
    assert_matches(
        &format!("{label} matmul"),
        cube::matmul(&ga, &gb).expect("runs").unsqueeze::<4>(),
        reference(&a, &b, matmul),
        arithmetic,
    );

    let at = cpu([70, 5], 13);
    let gpu_at = to_gpu::<B, 2>(&at, device, arithmetic).transpose();
    assert_matches(
        &format!("{label} matmul of a transposed view"),
        cube::matmul(&gpu_at, &gb).expect("runs").unsqueeze::<4>(),
        reference(&as4(at.transpose().unsqueeze()), &b, matmul),
        arithmetic,
    );

    for (lb, rb) in [(3, 3), (3, 1), (1, 3)] {
        let (a, b) = (cpu([lb, 5, 70], 14), cpu([rb, 70, 130], 15));
        let gpu = cube::matmul(
            &to_gpu::<B, 3>(&a, device, arithmetic),
            &to_gpu::<B, 3>(&b, device, arithmetic),
        )
        .expect("runs");
        assert_matches(
            &format!("{label} batched matmul {lb}×{rb}"),
            gpu.unsqueeze::<4>(),
            reference(&as4(a), &as4(b), matmul),
            arithmetic,
        );
    }
}

/// Every case under each setting in `settings`.
fn check_all<B: Backend>(device: &B::Device, label: &str, settings: &[(TensorCores, Arithmetic)]) {
    for &(cores, arithmetic) in settings {
        cube::set_tensor_cores(cores);
        let label = format!("{label} {cores:?} {:?}", arithmetic.dtype);
        check::<B>(device, &label, arithmetic);
        check_matmul::<B>(device, &label, arithmetic);
    }
    cube::set_tensor_cores(TensorCores::default());
    assert!(!cube::accelerates::<Flex>(), "the CPU backend is not a CubeCL backend");
}

/// Both engines of the convolution kernel, on the CubeCL backend itself and under Burn's fusion
/// (as the `wgpu` feature builds it): plain multiply-adds, and the tensor-core engine's
/// fragment layout with plain code in place of the matrix instructions (software Vulkan has no
/// matrix units, so this is how its indexing is checked here).
#[cfg(feature = "wgpu")]
#[test]
fn kernels_match_burn_ops_on_wgpu() {
    use burn::backend::wgpu::{CubeBackend, WgpuDevice, WgpuRuntime};
    type Plain = CubeBackend<WgpuRuntime, f32, i32, u32>;
    let settings = [(TensorCores::Never, F32), (TensorCores::Emulated, F32)];
    let device = WgpuDevice::default();
    check_all::<Plain>(&device, "plain", &settings);
    check_all::<burn::backend::Wgpu>(&device, "fused", &settings);
}

/// The tensor cores themselves, on a CUDA GPU: TF32 for f32 tensors, and f16 tensors (whose
/// products are exact in f32; the output is rounded to f16), beside plain f32.
#[cfg(feature = "cuda")]
#[test]
fn kernels_match_burn_ops_on_cuda() {
    use burn::backend::cuda::CudaDevice;
    // TF32 keeps 10 fraction bits of each operand (cut or rounded): every product is within
    // 2⁻⁹ of its value relative to its magnitude, so a sum within 2⁻⁹ · Σ|products|.
    let tf32 = Arithmetic {
        per_abs_sum: 2f32.powi(-9),
        ..F32
    };
    // f16: the operands are exact (multiples of 2⁻¹⁰ in [-1, 1)), the products exact in f32,
    // the sums f32; the result is rounded to f16, within 2⁻¹¹ of its magnitude.
    let f16 = Arithmetic {
        dtype: FloatDType::F16,
        per_abs_sum: 0.0,
        per_value: 2f32.powi(-11),
    };
    let settings = [
        (TensorCores::Never, F32),
        (TensorCores::Tf32, tf32),
        (TensorCores::HalfPrecision, f16),
        (TensorCores::Never, f16),
    ];
    // As the `cuda` feature builds it: under Burn's fusion.
    check_all::<burn::backend::Cuda>(&CudaDevice::default(), "fused", &settings);
}
