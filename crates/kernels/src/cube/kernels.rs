//! The GPU kernels and their launchers on CubeCL tensors.
//!
//! Both kernels read their inputs through strides, accumulate in `f32` whatever the storage type
//! (`f32`, `f16`, `bf16`), and have no tuning step: one compiled kernel per storage type, variant
//! and engine (`super::engine`: plain multiply-adds or tensor cores) serves every shape. They guard every access themselves, so they launch without the
//! runtime's per-access bounds checks.

use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use crate::conv::{transposed_size, Geometry};
use crate::fir::upfirdn_size;
use cubecl::{calculate_cube_count_elemwise, CubeCount, CubeDim};

use super::engine::{EmulatedWmma, Engine, Units, Wmma, FRAGMENT};
use super::TensorCores;
use cubecl::features::MmaConfig;
use cubecl::ir::{ElemType, FloatKind, StorageType as Storage};

/// Output channels per cube of the convolution kernel.
pub(super) const TILE_M: usize = 64;
/// Output pixels per cube of the convolution kernel.
pub(super) const TILE_N: usize = 64;
/// Input channels (of one tap) staged per step.
pub(super) const TILE_K: usize = 16;
/// Units per cube along each axis: 256 units, eight groups of 32.
pub(super) const UNITS: usize = 16;

/// Where a cube's outputs lie: its sample, and for a transposed convolution its output phase
/// (row parity `py`, column parity `px`), the grid of output pixels it covers and the taps that
/// reach them.
#[derive(CubeType, Clone, Copy)]
pub(super) struct Placement {
    batch: usize,
    py: usize,
    px: usize,
    grid_w: usize,
    pixels: usize,
    taps_x: usize,
    taps: usize,
}

#[cube]
// `div_ceil(2)` does not expand inside `#[cube]` (the literal's type is not inferred there).
#[allow(clippy::manual_div_ceil)]
fn placement(z: usize, out_height: u32, out_width: u32, kernel: usize, #[comptime] transposed: bool) -> Placement {
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
    Placement {
        batch,
        py,
        px,
        grid_w,
        pixels: grid_h * grid_w,
        taps_x,
        taps: taps_y * taps_x,
    }
}

/// The output position of grid pixel `p` (row, column).
#[cube]
fn output_position(place: &Placement, p: usize, #[comptime] transposed: bool) -> (usize, usize) {
    let mut oy = p / place.grid_w;
    let mut ox = p % place.grid_w;
    if transposed {
        oy = oy * 2 + place.py;
        ox = ox * 2 + place.px;
    }
    (oy, ox)
}

/// Writes `value` to output channel `o`, grid pixel `p`, when both exist.
#[cube]
pub(super) fn write_output<F: Float>(
    out: &mut Tensor<F>,
    place: &Placement,
    cout: u32,
    o: usize,
    p: usize,
    value: f32,
    #[comptime] transposed: bool,
) {
    if o < cout as usize && p < place.pixels {
        let (oy, ox) = output_position(place, p, transposed);
        out[place.batch * out.stride(0) + o * out.stride(1) + oy * out.stride(2) + ox * out.stride(3)] =
            F::cast_from(value);
    }
}

/// A convolution as an implicit matrix product, one cube per (64 output channels, 64 output
/// pixels, sample[, phase]) tile: `out[b, o, p] = Σ_{tap,c} weight[b, o, c, tap] · x[b, c, p ⊕ tap]`.
/// The cube's 256 units stage slabs of 16 channels of one tap into shared memory (element type
/// `E`); the engine `G` multiplies them into `f32` accumulators and writes the tile.
///
/// * `transposed == false`: a cross-correlation with stride `stride` and zero padding `pad`.
/// * `transposed == true`: the stride-2, unpadded transposed convolution, split into its four
///   output phases (`z % 4`: row parity, column parity). In a phase every output pixel takes
///   the same taps, so no product is spent on the zeros a stride-2 transposed convolution
///   inserts.
///
/// `x_batched` / `weight_batched` are 0 when all samples share `x[0]` / `weight[0]`. `M` is the
/// operand type of tensor-core engines (unused by the others).
#[cube(launch_unchecked)]
// `div_ceil` does not expand inside `#[cube]` (the literal's type is not inferred there).
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
fn conv_kernel<F: Float, E: Float, M: CubePrimitive, G: Engine>(
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
    #[comptime] mma_k: usize,
    #[define(F)] _dtype: StorageType,
    #[define(E)] _stage_dtype: StorageType,
    #[define(M)] _operand_dtype: StorageType,
) {
    let unit = UNIT_POS as usize;
    let n0 = CUBE_POS_X as usize * TILE_N;
    let m0 = CUBE_POS_Y as usize * TILE_M;
    let place = placement(CUBE_POS_Z as usize, out_height, out_width, kernel as usize, transposed);

    let cin = cin as usize;
    let (height, width) = (height as usize, width as usize);
    let x_base = place.batch * x_batched as usize * x.stride(0);
    let w_base = place.batch * weight_batched as usize * weight.stride(0);

    // Slabs: `a_tile[kk·64 + m]` = weight of output channel m0 + m, channel c0 + kk (an M × K
    // matrix stored column by column); `b_tile[kk·64 + n]` = input of channel c0 + kk at the
    // tap's source of pixel n0 + n (a K × N matrix stored row by row).
    let mut a_tile = SharedMemory::<E>::new_aligned(TILE_K * TILE_M, 32usize);
    let mut b_tile = SharedMemory::<E>::new_aligned(TILE_K * TILE_N, 32usize);
    let mut acc = G::init(mma_k);

    // What this unit stages: weights of channel offset `a_kk` for output rows `a_m + 16·i`, and
    // input values of pixel `b_n` for channel offsets `b_kk + 4·i`. Both are fixed for the whole
    // reduction, so the loops below divide by nothing.
    let a_kk = unit % TILE_K;
    let a_m = unit / TILE_K;
    let b_n = unit % TILE_N;
    let b_kk = unit / TILE_N;
    let p = n0 + b_n;
    let gy = p / place.grid_w;
    let gx = p % place.grid_w;

    // The reduction runs tap by tap, and within a tap over channels in chunks of TILE_K.
    let chunks = (cin + TILE_K - 1) / TILE_K;
    for t in 0..place.taps {
        let tap_y = t / place.taps_x;
        let tap_x = t % place.taps_x;
        let mut ky = tap_y;
        let mut kx = tap_x;
        // Transposed: output 2·gy + py takes tap py + 2·tap_y from input gy − tap_y.
        let mut iy = (gy * stride as usize + tap_y) as i32 - pad as i32;
        let mut ix = (gx * stride as usize + tap_x) as i32 - pad as i32;
        if transposed {
            ky = place.py + tap_y * 2;
            kx = place.px + tap_x * 2;
            iy = gy as i32 - tap_y as i32;
            ix = gx as i32 - tap_x as i32;
        }
        let inside = p < place.pixels && iy >= 0 && ix >= 0 && (iy as usize) < height && (ix as usize) < width;
        let w_tap = w_base + ky * weight.stride(3) + kx * weight.stride(4);

        for chunk in 0..chunks {
            let c0 = chunk * TILE_K;
            #[unroll]
            for i in 0..4usize {
                let m = a_m + i * UNITS;
                let o = m0 + m;
                let c = c0 + a_kk;
                let mut value = E::from_int(0);
                if o < cout as usize && c < cin {
                    value = E::cast_from(weight[w_tap + o * weight.stride(1) + c * weight.stride(2)]);
                }
                a_tile[a_kk * TILE_M + m] = value;
            }
            #[unroll]
            for i in 0..4usize {
                let kk = b_kk + i * 4;
                let c = c0 + kk;
                let mut value = E::from_int(0);
                if inside && c < cin {
                    value = E::cast_from(
                        x[x_base + c * x.stride(1) + iy as usize * x.stride(2) + ix as usize * x.stride(3)],
                    );
                }
                b_tile[kk * TILE_N + b_n] = value;
            }
            sync_cube();
            G::accumulate::<E, M>(&a_tile, &b_tile, &mut acc, mma_k);
            sync_cube();
        }
    }

    G::write::<F>(&acc, out, &place, m0, n0, cout, transposed);
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

/// The engine of a convolution launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Multiply {
    /// [`Units`]: `f32` multiply-adds.
    Units,
    /// [`Wmma`] with operands of this type and reduction depth `k` per instruction.
    Wmma { operand: Storage, k: usize },
    /// [`EmulatedWmma`], laid out for instructions of reduction depth `k` (that of the dtype's
    /// matrix instructions: 8 for f32 as TF32, 16 for the half types).
    Emulated { k: usize },
}

impl Multiply {
    /// The engine `setting` asks for with `dtype` tensors, before asking the device: matrix
    /// instructions for the half types (and for f32 as TF32 where allowed).
    fn wanted(dtype: DType, setting: TensorCores) -> Multiply {
        let float = |kind| Storage::Scalar(ElemType::Float(kind));
        match (setting, dtype) {
            (TensorCores::Never, _) => Multiply::Units,
            (TensorCores::Emulated, DType::F32) => Multiply::Emulated { k: 8 },
            (TensorCores::Emulated, _) => Multiply::Emulated { k: 16 },
            (_, DType::F16) => Multiply::Wmma {
                operand: float(FloatKind::F16),
                k: 16,
            },
            (_, DType::BF16) => Multiply::Wmma {
                operand: float(FloatKind::BF16),
                k: 16,
            },
            (TensorCores::Tf32, DType::F32) => Multiply::Wmma {
                operand: float(FloatKind::TF32),
                k: 8,
            },
            _ => Multiply::Units,
        }
    }

    /// What `setting` allows for `dtype` on `client`'s device: the matrix instructions where it
    /// has the 16 × 16 fragments they need (and 32-unit groups), else plain multiply-adds.
    fn on<R: CubeRuntime>(client: &ComputeClient<R>, dtype: DType, setting: TensorCores) -> Multiply {
        let wanted = Multiply::wanted(dtype, setting);
        let Multiply::Wmma { operand, k } = wanted else {
            return wanted;
        };
        let config = MmaConfig {
            a_type: operand,
            b_type: operand,
            cd_type: Storage::Scalar(ElemType::Float(FloatKind::F32)),
            m: FRAGMENT as u32,
            n: FRAGMENT as u32,
            k: k as u32,
        };
        let hardware = &client.properties().hardware;
        let groups_of_32 = hardware.plane_size_min == 32 && hardware.plane_size_max == 32;
        if groups_of_32 && client.features().matmul.cmma.contains(&config) {
            wanted
        } else {
            Multiply::Units
        }
    }

    /// `(stage, operand, k)` of the kernel for `dtype` tensors: the shared-memory slabs' type,
    /// the fragment operand type and the reduction depth per step. Plain multiply-adds stage
    /// f32 (converted once per value); the matrix instructions read their operands from slabs
    /// of the tensors' own type (TF32 operands from f32 slabs).
    fn types(self, dtype: Storage) -> (Storage, Storage, usize) {
        let f32_ = Storage::Scalar(ElemType::Float(FloatKind::F32));
        match self {
            Multiply::Units => (f32_, dtype, 16),
            Multiply::Emulated { k } => (f32_, dtype, k),
            Multiply::Wmma { operand, k } => (dtype, operand, k),
        }
    }
}

/// x `[n or 1, in, h, w]`, weight `[n or 1, out, in, k, k]` (same dtype as x, any strides: views
/// such as transposes are read in place) → `[n, out, h', w']`; a batch of 1 is shared. `cores`
/// says whether the products may run on the matrix units.
pub(crate) fn conv<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    kind: ConvKind,
    cores: TensorCores,
) -> CubeTensor<R> {
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
    let dtype: Storage = x.dtype.into();
    let engine = Multiply::on(&client, x.dtype, cores);
    let (stage, operand, mma_k) = engine.types(dtype);
    macro_rules! launch {
        ($engine:ty) => {
            // SAFETY: every global read happens under its bounds test (output channel < cout,
            // channel < cin, input pixel inside the image, pixel < phase size), taps stay below
            // k, shared-memory, register and fragment indices are below their sizes by
            // construction (64 × 16 slabs, 4 × 4 blocks, 16 × 16 fragments at offsets inside the
            // 64 × 64 tile), every write is to an output position that exists, and every unit
            // runs the same loops (fixed bounds, no early exit), as the matrix instructions need.
            unsafe {
                conv_kernel::launch_unchecked::<$engine, R>(
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
                    mma_k,
                    dtype,
                    stage,
                    operand,
                )
            }
        };
    }
    match engine {
        Multiply::Units => launch!(Units),
        Multiply::Wmma { .. } => launch!(Wmma),
        Multiply::Emulated { .. } => launch!(EmulatedWmma),
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

#[cfg(all(test, feature = "cuda", feature = "wgpu"))]
mod cuda_source;
