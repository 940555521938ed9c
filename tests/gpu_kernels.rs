//! The GPU kernels (`hyperstyle::kernels::cube`) against Burn's own convolutions and matrix
//! products on the CPU, on wgpu (software Vulkan suffices), plain and under fusion, at shapes that
//! leave partial tiles on every axis. Only built with `--features wgpu`.
#![cfg(feature = "wgpu")]

use burn::backend::wgpu::{CubeBackend, WgpuDevice, WgpuRuntime};
use burn::backend::{Flex, Wgpu};
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use hyperstyle::kernels::cube;
use hyperstyle_testing::{assert_close, to_vec};

/// The CubeCL backend itself, and as the `wgpu` feature builds it (under Burn's fusion).
type Plain = CubeBackend<WgpuRuntime, f32, i32, u32>;
type Fused = Wgpu;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| {
            let v = i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8;
            (v % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn cpu<const D: usize>(shape: [usize; D], seed: u32) -> Tensor<Flex, D> {
    let len = shape.iter().product();
    Tensor::from_data(TensorData::new(values(len, seed), shape), &Default::default())
}

fn to_gpu<B: Backend, const D: usize>(x: &Tensor<Flex, D>, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(x.to_data(), device)
}

/// Asserts `gpu` within [`TOLERANCE`] of `reference` (max-abs; the mean-abs bound follows from
/// it), printing both.
fn assert_matches<B: Backend, const D: usize>(what: &str, gpu: Tensor<B, D>, reference: Tensor<Flex, D>) {
    let (shape, expected) = to_vec(reference);
    assert_close(what, gpu, (&shape, &expected), TOLERANCE.into(), TOLERANCE.into());
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

// Every output is a sum of at most in·k² = 6·25 products of values in [-1, 1], typically of
// magnitude ~4: float32 sums of that length in two different orders differ by ~1e-6 (a few ulp
// of the partial sums), 1e-5 in a bad case. 5e-5 leaves room for that, while a wrong or missing
// tap moves an output by the size of one product, ~0.1 typically.
const TOLERANCE: f32 = 5e-5;

fn check<B: Backend>(device: &B::Device, label: &str) {
    assert!(cube::accelerates::<B>(), "{label}: the kernels must claim this backend");
    // 70 output channels (two channel tiles), 9×11 pixels (a partial pixel tile), batch 2.
    let x = cpu([2, 6, 9, 11], 1);
    for (wb, k) in [(2, 3), (1, 3), (2, 1), (1, 5)] {
        let w = cpu([wb, 70, 6, k, k], 2 + k as u32);
        let (gx, gw) = (to_gpu::<B, 4>(&x, device), to_gpu::<B, 5>(&w, device));

        let pad = k / 2;
        let reference = per_sample(&x, &w, |x, w| {
            conv2d(x, w, None, ConvOptions::new([1, 1], [pad, pad], [1, 1], 1))
        });
        assert_matches(
            &format!("{label} same conv wb={wb} k={k}"),
            cube::conv2d_same(&gx, &gw).expect("runs"),
            reference,
        );

        let reference = per_sample(&x, &w, |x, w| {
            conv2d(x, w, None, ConvOptions::new([2, 2], [1, 1], [1, 1], 1))
        });
        assert_matches(
            &format!("{label} stride-2 conv wb={wb} k={k}"),
            cube::conv2d(&gx, &gw, 2, 1).expect("runs"),
            reference,
        );

        let reference = per_sample(&x, &w, |x, w| {
            conv_transpose2d(
                x,
                w.swap_dims(0, 1),
                None,
                ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1),
            )
        });
        assert_matches(
            &format!("{label} transposed conv wb={wb} k={k}"),
            cube::conv_transpose2d_stride2(&gx, &gw).expect("runs"),
            reference,
        );
    }

    // FIR: an asymmetric 4×4 kernel, so a missing flip shows; up 1 pad (1, 1) and up 2 pad (2, 1).
    let fir = cpu([1, 1, 4, 4], 9);
    let flipped = fir.clone().flip([2, 3]);
    let x = cpu([2, 3, 7, 5], 4);
    let planes = x.clone().reshape([6, 1, 7, 5]);
    let blur = conv2d(
        planes.clone(),
        flipped,
        None,
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    )
    .reshape([2, 3, 6, 4]);
    let up = conv_transpose2d(
        planes,
        fir.clone(),
        None,
        ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
    )
    .reshape([2, 3, 14, 10]);
    let (gx, gf) = (to_gpu::<B, 4>(&x, device), to_gpu::<B, 4>(&fir, device));
    assert_matches(
        &format!("{label} blur"),
        cube::upfirdn2d(&gx, &gf, 1, [1, 1]).expect("runs"),
        blur,
    );
    assert_matches(
        &format!("{label} up-sampling"),
        cube::upfirdn2d(&gx, &gf, 2, [2, 1]).expect("runs"),
        up,
    );
}

/// Matrix products (sums of 70 products of values in [-1, 1]; same bound as the convolutions),
/// plain and batched with either side shared, and on a transposed (strided) view.
fn check_matmul<B: Backend>(device: &B::Device, label: &str) {
    let (a, b) = (cpu([5, 70], 11), cpu([70, 130], 12));
    assert_matches(
        &format!("{label} matmul"),
        cube::matmul(&to_gpu::<B, 2>(&a, device), &to_gpu::<B, 2>(&b, device)).expect("runs"),
        a.clone().matmul(b.clone()),
    );

    let at = cpu([70, 5], 13);
    let gpu_at = to_gpu::<B, 2>(&at, device).transpose();
    assert_matches(
        &format!("{label} matmul of a transposed view"),
        cube::matmul(&gpu_at, &to_gpu::<B, 2>(&b, device)).expect("runs"),
        at.transpose().matmul(b),
    );

    for (lb, rb) in [(3, 3), (3, 1), (1, 3)] {
        let (a, b) = (cpu([lb, 5, 70], 14), cpu([rb, 70, 130], 15));
        let gpu = cube::matmul(&to_gpu::<B, 3>(&a, device), &to_gpu::<B, 3>(&b, device)).expect("runs");
        assert_matches(&format!("{label} batched matmul {lb}×{rb}"), gpu, a.matmul(b));
    }
}

#[test]
fn kernels_match_burn_ops_on_wgpu() {
    let device = WgpuDevice::default();
    check::<Plain>(&device, "plain");
    check::<Fused>(&device, "fused");
    check_matmul::<Plain>(&device, "plain");
    check_matmul::<Fused>(&device, "fused");
    assert!(!cube::accelerates::<Flex>(), "the CPU backend is not a CubeCL backend");
}
