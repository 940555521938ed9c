//! How the convolution kernel's cube multiplies its staged slabs: the accumulators it keeps, one
//! reduction step over a 64 × 16 and a 16 × 64 slab, and the write of its 64 × 64 tile.
//!
//! * [`Units`]: every unit multiplies on its own, a 4 × 4 block of outputs in registers (`f32`
//!   products and sums).
//! * [`Wmma`]: each group of 32 units (a CUDA warp) owns two 16 × 16 blocks and
//!   multiplies them with the matrix instructions (`cmma`, WMMA on CUDA), operands of type `M`
//!   (f16 / bf16, products exact in `f32`; or TF32), `f32` sums.
//! * [`EmulatedWmma`]: the same fragments, offsets and layouts as [`Wmma`], with every
//!   fragment operation done by plain code. It runs anywhere (including software Vulkan), which
//!   checks the tensor-core engine's indexing where no tensor cores exist.

use cubecl::prelude::*;

use super::kernels::{write_output, Placement, TILE_K, TILE_M, TILE_N, UNITS};

/// Side of a matrix-instruction fragment.
pub(super) const FRAGMENT: usize = 16;
/// Units per group that shares fragments.
const GROUP: usize = 32;

/// A way of multiplying the staged slabs.
#[cube]
pub(super) trait Engine: Send + Sync + 'static {
    /// This unit's (or its group's) share of the cube's 64 × 64 accumulators.
    type Acc: CubeType;

    /// Zeroed accumulators; `mma_k` is the reduction depth of one matrix instruction.
    fn init(#[comptime] mma_k: usize) -> Self::Acc;

    /// `acc += A · B` for the staged slabs: `a_tile[kk·64 + m]`, `b_tile[kk·64 + n]`.
    fn accumulate<E: Float, M: CubePrimitive>(
        a_tile: &SharedMemory<E>,
        b_tile: &SharedMemory<E>,
        acc: &mut Self::Acc,
        #[comptime] mma_k: usize,
    );

    /// Writes the tile of output channels `m0..` and grid pixels `n0..`.
    fn write<F: Float>(
        acc: &Self::Acc,
        out: &mut Tensor<F>,
        place: &Placement,
        m0: usize,
        n0: usize,
        cout: u32,
        #[comptime] transposed: bool,
    );
}

/// Plain multiply-adds: unit `(tx, ty)` owns output channels `ty + 16i` and pixels `tx + 16j`.
pub(super) struct Units;

#[cube]
impl Engine for Units {
    type Acc = Array<f32>;

    fn init(#[comptime] _mma_k: usize) -> Array<f32> {
        let mut acc = Array::<f32>::new(16usize);
        #[unroll]
        for i in 0..16usize {
            acc[i] = 0.0;
        }
        acc
    }

    fn accumulate<E: Float, M: CubePrimitive>(
        a_tile: &SharedMemory<E>,
        b_tile: &SharedMemory<E>,
        acc: &mut Array<f32>,
        #[comptime] _mma_k: usize,
    ) {
        let tx = UNIT_POS_X as usize;
        let ty = UNIT_POS_Y as usize;
        #[unroll]
        for kk in 0..TILE_K {
            let a0 = f32::cast_from(a_tile[kk * TILE_M + ty]);
            let a1 = f32::cast_from(a_tile[kk * TILE_M + ty + UNITS]);
            let a2 = f32::cast_from(a_tile[kk * TILE_M + ty + UNITS * 2]);
            let a3 = f32::cast_from(a_tile[kk * TILE_M + ty + UNITS * 3]);
            #[unroll]
            for j in 0..4usize {
                let b = f32::cast_from(b_tile[kk * TILE_N + tx + j * UNITS]);
                acc[j] += a0 * b;
                acc[j + 4] += a1 * b;
                acc[j + 8] += a2 * b;
                acc[j + 12] += a3 * b;
            }
        }
    }

    fn write<F: Float>(
        acc: &Array<f32>,
        out: &mut Tensor<F>,
        place: &Placement,
        m0: usize,
        n0: usize,
        cout: u32,
        #[comptime] transposed: bool,
    ) {
        let tx = UNIT_POS_X as usize;
        let ty = UNIT_POS_Y as usize;
        #[unroll]
        for i in 0..4usize {
            #[unroll]
            for j in 0..4usize {
                let o = m0 + ty + i * UNITS;
                let p = n0 + tx + j * UNITS;
                write_output::<F>(out, place, cout, o, p, acc[i * 4 + j], transposed);
            }
        }
    }
}

// The fragment layout both fragment engines share. Group `g` (units 32g..32g + 31) owns the
// fragments of output rows `16·(g / 2)..` and pixel columns `16·f..` for `f` = 2·(g % 2) and
// 2·(g % 2) + 1. For reduction step `s` (channels `s·mma_k..`):
// * its A fragment starts at `a_tile[s·mma_k·64 + 16·(g / 2)]`, column-major, leading dimension 64;
// * its B fragments start at `b_tile[s·mma_k·64 + 16·f]`, row-major, leading dimension 64;
// * its accumulators go to `c_tile[16·(g / 2)·64 + 16·f]`, row-major, leading dimension 64.

/// The group of this unit.
#[cube]
fn group() -> usize {
    UNIT_POS as usize / GROUP
}

#[cube]
fn a_offset(step: usize, #[comptime] mma_k: usize) -> usize {
    step * mma_k * TILE_M + (group() / 2) * FRAGMENT
}

#[cube]
fn b_offset(step: usize, side: usize, #[comptime] mma_k: usize) -> usize {
    step * mma_k * TILE_N + ((group() % 2) * 2 + side) * FRAGMENT
}

#[cube]
fn c_offset(side: usize) -> usize {
    (group() / 2) * FRAGMENT * TILE_N + ((group() % 2) * 2 + side) * FRAGMENT
}

/// After every group stored its fragments into `c_tile` (64 × 64, row-major): each unit takes
/// the outputs of the [`Units`] pattern from it and writes them as [`Units`] does.
#[cube]
fn write_staged<F: Float>(
    c_tile: &SharedMemory<f32>,
    out: &mut Tensor<F>,
    place: &Placement,
    m0: usize,
    n0: usize,
    cout: u32,
    #[comptime] transposed: bool,
) {
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let mut block = Array::<f32>::new(16usize);
    #[unroll]
    for i in 0..16usize {
        block[i] = c_tile[(ty + (i / 4) * UNITS) * TILE_N + tx + (i % 4) * UNITS];
    }
    Units::write::<F>(&block, out, place, m0, n0, cout, transposed);
}

/// A zeroed 16 × 16 `f32` accumulator fragment.
#[cube]
fn zero_fragment(#[comptime] mma_k: usize) -> cmma::Matrix<f32> {
    cmma::Matrix::<f32>::from_value(
        cmma::MatrixIdent::Accumulator,
        FRAGMENT,
        FRAGMENT,
        mma_k,
        cmma::MatrixLayout::Undefined,
        0.0,
    )
}

/// The matrix instructions: each group holds two 16 × 16 `f32` accumulator fragments.
pub(super) struct Wmma;

/// A group's two accumulator fragments (pixel columns `f` and `f + 1`).
#[derive(CubeType)]
pub(super) struct FragmentPair {
    left: cmma::Matrix<f32>,
    right: cmma::Matrix<f32>,
}

#[cube]
impl Engine for Wmma {
    type Acc = FragmentPair;

    fn init(#[comptime] mma_k: usize) -> FragmentPair {
        FragmentPair {
            left: zero_fragment(mma_k),
            right: zero_fragment(mma_k),
        }
    }

    fn accumulate<E: Float, M: CubePrimitive>(
        a_tile: &SharedMemory<E>,
        b_tile: &SharedMemory<E>,
        acc: &mut FragmentPair,
        #[comptime] mma_k: usize,
    ) {
        #[unroll]
        for step in 0..TILE_K / mma_k {
            // SAFETY: both fragments are loaded before use.
            let a = unsafe {
                cmma::Matrix::<M>::uninitialized(
                    cmma::MatrixIdent::A,
                    FRAGMENT,
                    FRAGMENT,
                    mma_k,
                    cmma::MatrixLayout::ColMajor,
                )
            };
            let b = unsafe {
                cmma::Matrix::<M>::uninitialized(
                    cmma::MatrixIdent::B,
                    FRAGMENT,
                    FRAGMENT,
                    mma_k,
                    cmma::MatrixLayout::RowMajor,
                )
            };
            cmma::load(&a, &a_tile.slice(a_offset(step, mma_k), TILE_K * TILE_M), TILE_M as u32);
            cmma::load(
                &b,
                &b_tile.slice(b_offset(step, 0, mma_k), TILE_K * TILE_N),
                TILE_N as u32,
            );
            cmma::execute::<M, M, f32, f32>(&a, &b, &acc.left, &acc.left);
            cmma::load(
                &b,
                &b_tile.slice(b_offset(step, 1, mma_k), TILE_K * TILE_N),
                TILE_N as u32,
            );
            cmma::execute::<M, M, f32, f32>(&a, &b, &acc.right, &acc.right);
        }
    }

    fn write<F: Float>(
        acc: &FragmentPair,
        out: &mut Tensor<F>,
        place: &Placement,
        m0: usize,
        n0: usize,
        cout: u32,
        #[comptime] transposed: bool,
    ) {
        let mut c_tile = SharedMemory::<f32>::new_aligned(TILE_M * TILE_N, 32usize);
        cmma::store(
            &mut c_tile.slice_mut(c_offset(0), TILE_M * TILE_N),
            &acc.left,
            TILE_N as u32,
            cmma::MatrixLayout::RowMajor,
        );
        cmma::store(
            &mut c_tile.slice_mut(c_offset(1), TILE_M * TILE_N),
            &acc.right,
            TILE_N as u32,
            cmma::MatrixLayout::RowMajor,
        );
        sync_cube();
        write_staged::<F>(&c_tile, out, place, m0, n0, cout, transposed);
    }
}

/// [`Wmma`] with plain code in place of each fragment operation. Lane `l` of a group
/// holds elements `8l..8l + 7` (row-major) of both fragments.
pub(super) struct EmulatedWmma;

#[cube]
impl Engine for EmulatedWmma {
    type Acc = Array<f32>;

    fn init(#[comptime] mma_k: usize) -> Array<f32> {
        Units::init(mma_k)
    }

    fn accumulate<E: Float, M: CubePrimitive>(
        a_tile: &SharedMemory<E>,
        b_tile: &SharedMemory<E>,
        acc: &mut Array<f32>,
        #[comptime] mma_k: usize,
    ) {
        let lane = UNIT_POS as usize % GROUP;
        #[unroll]
        for step in 0..TILE_K / mma_k {
            let a0 = a_offset(step, mma_k);
            #[unroll]
            for side in 0..2usize {
                let b0 = b_offset(step, side, mma_k);
                #[unroll]
                for e in 0..8usize {
                    let (row, col) = ((lane * 8 + e) / FRAGMENT, (lane * 8 + e) % FRAGMENT);
                    let mut sum = 0.0f32;
                    #[unroll]
                    for kk in 0..mma_k {
                        // Column-major A: (row, kk) at kk·64 + row; row-major B: (kk, col) at kk·64 + col.
                        let a = f32::cast_from(a_tile[a0 + kk * TILE_M + row]);
                        let b = f32::cast_from(b_tile[b0 + kk * TILE_N + col]);
                        sum += a * b;
                    }
                    acc[side * 8 + e] += sum;
                }
            }
        }
    }

    fn write<F: Float>(
        acc: &Array<f32>,
        out: &mut Tensor<F>,
        place: &Placement,
        m0: usize,
        n0: usize,
        cout: u32,
        #[comptime] transposed: bool,
    ) {
        let mut c_tile = SharedMemory::<f32>::new_aligned(TILE_M * TILE_N, 32usize);
        let lane = UNIT_POS as usize % GROUP;
        #[unroll]
        for side in 0..2usize {
            let c0 = c_offset(side);
            #[unroll]
            for e in 0..8usize {
                let (row, col) = ((lane * 8 + e) / FRAGMENT, (lane * 8 + e) % FRAGMENT);
                c_tile[c0 + row * TILE_N + col] = acc[side * 8 + e];
            }
        }
        sync_cube();
        write_staged::<F>(&c_tile, out, place, m0, n0, cout, transposed);
    }
}
