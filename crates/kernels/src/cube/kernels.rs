//! The GPU kernels and their launchers on CubeCL tensors.
//!
//! Both kernels read their inputs through strides, accumulate in `f32` whatever the storage type
//! (`f32`, `f16`, `bf16`), and have no tuning step: one compiled kernel per storage type and
//! variant serves every shape. They guard every access themselves, so they launch without the
//! runtime's per-access bounds checks.

use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use crate::conv::{transposed_size, Geometry};
use crate::fir::upfirdn_size;
use cubecl::{calculate_cube_count_elemwise, CubeCount, CubeDim};

/// Output channels per cube of the convolution kernel.
const TILE_M: usize = 64;
/// Output pixels per cube of the convolution kernel.
const TILE_N: usize = 64;
/// Input channels (of one tap) staged per step.
const TILE_K: usize = 16;
/// Units per cube along each axis; each unit owns a 4 × 4 block of outputs.
const UNITS: usize = 16;

/// A convolution as an implicit matrix product, one cube per (64 output channels, 64 output
/// pixels, sample[, phase]) tile: `out[b, o, p] = Σ_{tap,c} weight[b, o, c, tap] · x[b, c, p ⊕ tap]`.
/// 256 units; each stages slabs of 16 channels of one tap into shared memory and accumulates a
/// 4 × 4 block of outputs in registers (`f32`).
///
/// * `transposed == false`: a cross-correlation with stride `stride` and zero padding `pad`.
/// * `transposed == true`: the stride-2, unpadded transposed convolution, split into its four
///   output phases (`z % 4`: row parity, column parity). In a phase every output pixel takes
///   the same taps, so no product is spent on the zeros a stride-2 transposed convolution
///   inserts.
///
/// `x_batched` / `weight_batched` are 0 when all samples share `x[0]` / `weight[0]`.
#[cube(launch_unchecked)]
// `div_ceil(2)` does not expand inside `#[cube]` (the literal's type is not inferred there).
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
fn conv_kernel<F: Float>(
    x: &Tensor<F>,
    weight: &Tensor<F>,
    out: &mut Tensor<F>,
    cin: u32,
    height: u32,
    width: u32,
    cout: u32,
    out_height: u32,
    out_width: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    x_batched: u32,
    weight_batched: u32,
    #[comptime] transposed: bool,
    #[define(F)] _dtype: StorageType,
) {
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let unit = ty * UNITS + tx;
    let n0 = CUBE_POS_X as usize * TILE_N;
    let m0 = CUBE_POS_Y as usize * TILE_M;
    let z = CUBE_POS_Z as usize;

    let cin = cin as usize;
    let (height, width) = (height as usize, width as usize);
    let cout = cout as usize;
    let kernel = kernel as usize;

    // This cube's sample, phase, output grid and taps.
    let mut batch = z;
    let mut py = 0usize;
    let mut px = 0usize;
    let mut grid_h = out_height as usize;
    let mut grid_w = out_width as usize;
    let mut taps_y = kernel;
    let mut taps_x = kernel;
    if transposed {
        batch = z / 4;
        py = (z % 4) / 2;
        px = z % 2;
        grid_h = (out_height as usize - py + 1) / 2;
        grid_w = (out_width as usize - px + 1) / 2;
        taps_y = (kernel - py + 1) / 2;
        taps_x = (kernel - px + 1) / 2;
    }
    let pixels = grid_h * grid_w;

    let x_base = batch * x_batched as usize * x.stride(0);
    let w_base = batch * weight_batched as usize * weight.stride(0);

    let mut a_tile = SharedMemory::<f32>::new(TILE_K * TILE_M);
    let mut b_tile = SharedMemory::<f32>::new(TILE_K * TILE_N);
    let mut acc = Array::<f32>::new(16usize);
    #[unroll]
    for i in 0..16usize {
        acc[i] = 0.0;
    }

    // What this unit stages: weights of channel offset `a_kk` for output rows `a_m + 16·i`, and
    // input values of pixel `b_n` for channel offsets `b_kk + 4·i`. Both are fixed for the whole
    // reduction, so the loops below divide by nothing.
    let a_kk = unit % TILE_K;
    let a_m = unit / TILE_K;
    let b_n = unit % TILE_N;
    let b_kk = unit / TILE_N;
    let p = n0 + b_n;
    let gy = p / grid_w;
    let gx = p % grid_w;

    // The reduction runs tap by tap, and within a tap over channels in chunks of TILE_K.
    let chunks = (cin + TILE_K - 1) / TILE_K;
    for t in 0..taps_y * taps_x {
        let tap_y = t / taps_x;
        let tap_x = t % taps_x;
        let mut ky = tap_y;
        let mut kx = tap_x;
        // Transposed: output 2·gy + py takes tap py + 2·tap_y from input gy − tap_y.
        let mut iy = (gy * stride as usize + tap_y) as i32 - pad as i32;
        let mut ix = (gx * stride as usize + tap_x) as i32 - pad as i32;
        if transposed {
            ky = py + tap_y * 2;
            kx = px + tap_x * 2;
            iy = gy as i32 - tap_y as i32;
            ix = gx as i32 - tap_x as i32;
        }
        let inside = p < pixels && iy >= 0 && ix >= 0 && (iy as usize) < height && (ix as usize) < width;
        let w_tap = w_base + ky * weight.stride(3) + kx * weight.stride(4);

        for chunk in 0..chunks {
            let c0 = chunk * TILE_K;
            #[unroll]
            for i in 0..4usize {
                let m = a_m + i * UNITS;
                let o = m0 + m;
                let c = c0 + a_kk;
                let mut value = 0.0f32;
                if o < cout && c < cin {
                    value = f32::cast_from(weight[w_tap + o * weight.stride(1) + c * weight.stride(2)]);
                }
                a_tile[a_kk * TILE_M + m] = value;
            }
            #[unroll]
            for i in 0..4usize {
                let kk = b_kk + i * 4;
                let c = c0 + kk;
                let mut value = 0.0f32;
                if inside && c < cin {
                    value = f32::cast_from(
                        x[x_base + c * x.stride(1) + iy as usize * x.stride(2) + ix as usize * x.stride(3)],
                    );
                }
                b_tile[kk * TILE_N + b_n] = value;
            }
            sync_cube();

            #[unroll]
            for kk in 0..TILE_K {
                let a0 = a_tile[kk * TILE_M + ty];
                let a1 = a_tile[kk * TILE_M + ty + UNITS];
                let a2 = a_tile[kk * TILE_M + ty + UNITS * 2];
                let a3 = a_tile[kk * TILE_M + ty + UNITS * 3];
                #[unroll]
                for j in 0..4usize {
                    let b = b_tile[kk * TILE_N + tx + j * UNITS];
                    acc[j] += a0 * b;
                    acc[j + 4] += a1 * b;
                    acc[j + 8] += a2 * b;
                    acc[j + 12] += a3 * b;
                }
            }
            sync_cube();
        }
    }

    let o_base = batch * out.stride(0);
    #[unroll]
    for i in 0..4usize {
        let o = m0 + ty + i * UNITS;
        #[unroll]
        for j in 0..4usize {
            let p = n0 + tx + j * UNITS;
            if o < cout && p < pixels {
                let mut oy = p / grid_w;
                let mut ox = p % grid_w;
                if transposed {
                    oy = oy * 2 + py;
                    ox = ox * 2 + px;
                }
                out[o_base + o * out.stride(1) + oy * out.stride(2) + ox * out.stride(3)] =
                    F::cast_from(acc[i * 4 + j]);
            }
        }
    }
}

/// `upfirdn2d` without decimation on every plane: output `(oy, ox)` sums the taps that land on
/// input samples of the zero-inserted (`up`), padded (`pad` before) image, against the flipped
/// FIR kernel `fir` `[1, 1, kh, kw]`. One unit per output value.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn upfirdn_kernel<F: Float>(
    x: &Tensor<F>,
    fir: &Tensor<F>,
    out: &mut Tensor<F>,
    channels: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    up: u32,
    pad: u32,
    total: u32,
    #[define(F)] _dtype: StorageType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= total as usize {
        terminate!();
    }
    let (out_h, out_w) = (out_height as usize, out_width as usize);
    let ox = pos % out_w;
    let rest = pos / out_w;
    let oy = rest % out_h;
    let plane = rest / out_h;
    let c = plane % channels as usize;
    let b = plane / channels as usize;
    let (kh, kw) = (fir.shape(2), fir.shape(3));
    let up = up as usize;
    let x_base = b * x.stride(0) + c * x.stride(1);

    let mut sum = 0.0f32;
    for ty in 0..kh {
        let a = (oy + ty) as i32 - pad as i32;
        if a >= 0 && (a as usize) % up == 0 && (a as usize) / up < height as usize {
            let iy = (a as usize) / up;
            for tx in 0..kw {
                let bx = (ox + tx) as i32 - pad as i32;
                if bx >= 0 && (bx as usize) % up == 0 && (bx as usize) / up < width as usize {
                    let ix = (bx as usize) / up;
                    let tap = fir[(kh - 1 - ty) * fir.stride(2) + (kw - 1 - tx) * fir.stride(3)];
                    let value = x[x_base + iy * x.stride(2) + ix * x.stride(3)];
                    sum += f32::cast_from(value) * f32::cast_from(tap);
                }
            }
        }
    }
    out[b * out.stride(0) + c * out.stride(1) + oy * out.stride(2) + ox * out.stride(3)] = F::cast_from(sum);
}

/// The geometry of a [`conv`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvKind {
    /// Cross-correlation with a stride and zero padding on both axes.
    Direct {
        /// Step between output positions.
        stride: usize,
        /// Zeros on each side.
        pad: usize,
    },
    /// Stride-2 transposed convolution without padding (`h → 2h + k − 2`).
    TransposedStride2,
}

impl ConvKind {
    /// The output side for input side `n` and kernel side `k`, as the CPU kernels compute it.
    pub(crate) fn out_size(self, n: usize, k: usize) -> usize {
        match self {
            ConvKind::Direct { stride, pad } => Geometry {
                kernel: k,
                stride,
                padding: pad,
            }
            .output_size(n),
            ConvKind::TransposedStride2 => transposed_size(n, k),
        }
    }
}

/// Cube count of a launch whose cube `(x, y, z)` covers pixels `64x..`, channels `64y..` and
/// sample[·phase] `z`.
fn conv_cubes(pixels: usize, cout: usize, z: usize) -> CubeCount {
    CubeCount::Static(pixels.div_ceil(TILE_N) as u32, cout.div_ceil(TILE_M) as u32, z as u32)
}

/// x `[n or 1, in, h, w]`, weight `[n or 1, out, in, k, k]` (same dtype as x, any strides: views
/// such as transposes are read in place) → `[n, out, h', w']`; a batch of 1 is shared.
pub(crate) fn conv<R: CubeRuntime>(x: CubeTensor<R>, weight: CubeTensor<R>, kind: ConvKind) -> CubeTensor<R> {
    let [xb, cin, h, w] = x.meta.shape().dims::<4>();
    let [wb, cout, _, k, _] = weight.meta.shape().dims::<5>();
    let n = xb.max(wb);
    let (oh, ow) = (kind.out_size(h, k), kind.out_size(w, k));
    let out = empty_device_dtype::<R>(
        x.client.clone(),
        x.device.clone(),
        Shape::new([n, cout, oh, ow]),
        x.dtype,
    );
    let (stride, pad, transposed) = match kind {
        ConvKind::Direct { stride, pad } => (stride, pad, false),
        ConvKind::TransposedStride2 => (2, 0, true),
    };
    // The largest phase of a transposed conv has ⌈oh/2⌉ × ⌈ow/2⌉ pixels.
    let (cubes, z) = if transposed {
        (conv_cubes(oh.div_ceil(2) * ow.div_ceil(2), cout, n * 4), n * 4)
    } else {
        (conv_cubes(oh * ow, cout, n), n)
    };
    if z == 0 || oh * ow == 0 || cout == 0 {
        return out;
    }
    let client = x.client.clone();
    let dtype = x.dtype;
    // SAFETY: every global read happens under its bounds test (output channel < cout, channel
    // < cin, input pixel inside the image, pixel < phase size), taps stay below k, shared-memory
    // and register indices are below their sizes by construction (64 × 16 slabs, 4 × 4 blocks),
    // and every write is to an output position that exists; the loops have fixed bounds.
    unsafe {
        conv_kernel::launch_unchecked::<R>(
            &client,
            cubes,
            CubeDim::new_2d(UNITS as u32, UNITS as u32),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            cin as u32,
            h as u32,
            w as u32,
            cout as u32,
            oh as u32,
            ow as u32,
            k as u32,
            stride as u32,
            pad as u32,
            u32::from(xb != 1),
            u32::from(wb != 1),
            transposed,
            dtype.into(),
        );
    }
    out
}

/// `upfirdn2d(x, fir, up, pad = (p0, p1))` without decimation: x `[n, c, h, w]`, fir
/// `[1, 1, kh, kw]` (same dtype as x) → `[n, c, up·h + p0 + p1 − kh + 1, …]`.
pub(crate) fn upfirdn2d<R: CubeRuntime>(
    x: CubeTensor<R>,
    fir: CubeTensor<R>,
    up: usize,
    pad: [usize; 2],
) -> CubeTensor<R> {
    let [n, c, h, w] = x.meta.shape().dims::<4>();
    let [_, _, kh, kw] = fir.meta.shape().dims::<4>();
    let (oh, ow) = (upfirdn_size(h, up, kh, pad), upfirdn_size(w, up, kw, pad));
    let out = empty_device_dtype::<R>(x.client.clone(), x.device.clone(), Shape::new([n, c, oh, ow]), x.dtype);
    let total = n * c * oh * ow;
    if total == 0 {
        return out;
    }
    let client = x.client.clone();
    let dtype: DType = x.dtype;
    let cube_dim = CubeDim::new_1d(256);
    // SAFETY: units past `total` exit first; reads happen only for input positions inside the
    // image and taps inside the kernel; the write goes to the unit's own output position.
    unsafe {
        upfirdn_kernel::launch_unchecked::<R>(
            &client,
            calculate_cube_count_elemwise(&client, total, cube_dim),
            cube_dim,
            x.into_tensor_arg(),
            fir.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            c as u32,
            h as u32,
            w as u32,
            oh as u32,
            ow as u32,
            up as u32,
            pad[0] as u32,
            total as u32,
            dtype.into(),
        );
    }
    out
}
