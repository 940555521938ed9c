//! Convolutions where every sample may have its own kernel, as tiled im2col + GEMM.
//!
//! Both public functions reduce to one primitive: a stride-1 convolution over a *set of taps*
//! (input offsets `(dy, dx)`, each with its `[out, in]` slice of the kernel) written to an output
//! grid that may be strided in the destination. A "same" convolution is one such grid with all
//! `k²` taps. A stride-2 transposed convolution splits into four phases (output rows and columns
//! of each parity); each phase is an ordinary convolution of the input with the taps of that
//! parity, written to every second row and column — the same multiply-adds as the transposed
//! convolution, with no zero insertion and no scatter-add.
//!
//! Work is split into (sample, phase, band of output rows) items that run in parallel; each item
//! unfolds its band into a column buffer of about `COLUMN_BYTES` (cache-sized, so the unfolded
//! input never exists in full) and multiplies it by the packed kernel with `gemm`.

use gemm::Parallelism;
use rayon::prelude::*;

/// Target size of one item's column buffer: a band of output rows is as tall as fits.
const COLUMN_BYTES: usize = 1 << 20;
/// The fewest output positions an item computes: narrower GEMMs waste the micro-kernel on edge
/// tiles and repack the kernel for little work.
const MIN_COLUMNS: usize = 256;
/// The fewest output channels an item computes when channels are split between items.
const MIN_CHANNELS: usize = 16;

/// One kernel tap: it reads the input at `(y + dy, x + dx)` for output `(y, x)` and has index
/// `index` among the kernel's `k·k` taps (row-major).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tap {
    dy: isize,
    dx: isize,
    index: usize,
}

/// One output grid: which taps produce it and where its values go in an output plane. Output
/// `(y, x)` reads the input at `(stride·y + dy, stride·x + dx)` for each tap.
#[derive(Clone, Debug)]
struct Phase {
    taps: Vec<Tap>,
    stride: usize,
    rows: usize,
    cols: usize,
    /// Offset of the grid's first value in the output plane.
    offset: usize,
    row_stride: usize,
    col_stride: usize,
}

impl Phase {
    /// Whether the grid's rows follow each other in the plane (then GEMM writes in place).
    fn is_dense(&self) -> bool {
        self.col_stride == 1 && self.row_stride == self.cols
    }
}

/// `[batch, channels, height, width]`.
pub type Dims = [usize; 4];

/// The signature of [`conv2d_same`] and [`conv_transpose2d_stride2`]:
/// `(x, dims, weights, weight batch, output channels, kernel side) → output`.
pub type PerSampleConv = fn(&[f32], Dims, &[f32], usize, usize, usize) -> Vec<f32>;

/// A stride-1 convolution with zero padding `k / 2` ("same" size for odd `k`), each sample with
/// its own kernel: [`conv2d`] with `stride` 1, `padding` `k / 2` and no bias.
///
/// # Panics
/// If a slice's length does not match its shape.
pub fn conv2d_same(
    x: &[f32],
    dims: Dims,
    weights: &[f32],
    weight_batch: usize,
    out_channels: usize,
    k: usize,
) -> Vec<f32> {
    let geometry = Geometry {
        kernel: k,
        stride: 1,
        padding: k / 2,
    };
    conv2d(
        x,
        dims,
        weights,
        weight_batch,
        out_channels,
        geometry,
        Epilogue::default(),
    )
}

/// An activation applied to a [`conv2d`]'s output while it is still in cache.
#[derive(Clone, Copy, Debug, Default)]
pub enum Activation<'a> {
    /// None: the convolution (plus bias) as is.
    #[default]
    Identity,
    /// `max(y, 0)`.
    Relu,
    /// `y` where `y ≥ 0`, else `slope[o] · y` (one slope per output channel).
    PRelu(&'a [f32]),
    /// `y` where `y ≥ 0`, else `slope · y`.
    LeakyRelu(f32),
}

impl Activation<'_> {
    fn apply(&self, values: &mut [f32], channel: usize) {
        match *self {
            Activation::Identity => {}
            Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::PRelu(slopes) => leaky(values, slopes[channel]),
            Activation::LeakyRelu(slope) => leaky(values, slope),
        }
    }
}

fn leaky(values: &mut [f32], slope: f32) {
    values
        .iter_mut()
        .for_each(|v| *v = if *v >= 0.0 { *v } else { *v * slope });
}

/// What a [`conv2d`] does to its sums before handing them back: a bias per output channel,
/// then an activation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// `[out]`: added first (GEMM accumulates onto it).
    pub bias: Option<&'a [f32]>,
    /// Applied last.
    pub activation: Activation<'a>,
}

/// Kernel side, stride and zero padding (the same on both axes) of a [`conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Kernel side `k`.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding before and after, on both axes.
    pub padding: usize,
}

impl Geometry {
    /// The output side for input side `n`: `(n + 2·padding − kernel) / stride + 1` (0 when the
    /// kernel does not fit).
    pub fn output_size(&self, n: usize) -> usize {
        match (n + 2 * self.padding).checked_sub(self.kernel) {
            Some(span) if self.stride > 0 => span / self.stride + 1,
            _ => 0,
        }
    }
}

/// A convolution (cross-correlation, as in deep-learning frameworks), each sample with its own
/// kernel or all with one:
/// `out[b, o, y, x] = bias[o] + Σ_{i, ky, kx} w[b, o, i, ky, kx] · x[b, i, s·y + ky − p, s·x + kx − p]`
/// (zero outside the input).
///
/// `x`: `[n, in, h, w]` (`dims`), `weights`: `[n or 1, out, in, k, k]` (`weight_batch` is `n` or
/// 1; 1 shares the kernel) → `[n, out, h', w']` with `h' = geometry.output_size(h)`, then the
/// epilogue: `bias` (`[out]`) added, `activation` applied.
///
/// # Panics
/// If a slice's length does not match its shape, or the stride is 0.
pub fn conv2d(
    x: &[f32],
    dims: Dims,
    weights: &[f32],
    weight_batch: usize,
    out_channels: usize,
    geometry: Geometry,
    Epilogue { bias, activation }: Epilogue,
) -> Vec<f32> {
    let [_, _, h, w] = dims;
    let Geometry {
        kernel: k,
        stride,
        padding,
    } = geometry;
    assert!(stride > 0, "stride must be positive");
    if let Activation::PRelu(slopes) = activation {
        assert_eq!(slopes.len(), out_channels, "one PReLU slope per output channel");
    }
    let (oh, ow) = (geometry.output_size(h), geometry.output_size(w));
    let taps = (0..k * k)
        .map(|index| Tap {
            dy: (index / k) as isize - padding as isize,
            dx: (index % k) as isize - padding as isize,
            index,
        })
        .collect();
    let phase = Phase {
        taps,
        stride,
        rows: oh,
        cols: ow,
        offset: 0,
        row_stride: ow,
        col_stride: 1,
    };
    run(
        x,
        dims,
        weights,
        weight_batch,
        out_channels,
        k * k,
        &[phase],
        oh * ow,
        (bias, activation),
    )
}

/// The output side of [`conv_transpose2d_stride2`] for input side `n` and kernel `k`.
pub fn transposed_size(n: usize, k: usize) -> usize {
    2 * n + k - 2
}

/// A stride-2 transposed convolution without padding, each sample with its own kernel:
/// `out[b, o, 2y + ky, 2x + kx] += Σ_i w[b, o, i, ky, kx] · x[b, i, y, x]` (the kernel is indexed
/// `[out, in]`, not flipped).
///
/// `x`: `[n, in, h, w]`, `weights`: `[n or 1, out, in, k, k]` →
/// `[n, out, 2h + k − 2, 2w + k − 2]`.
///
/// # Panics
/// If a slice's length does not match its shape, or `k` is 0.
pub fn conv_transpose2d_stride2(
    x: &[f32],
    dims: Dims,
    weights: &[f32],
    weight_batch: usize,
    out_channels: usize,
    k: usize,
) -> Vec<f32> {
    let [_, _, h, w] = dims;
    let (oh, ow) = (transposed_size(h, k), transposed_size(w, k));
    // Output row o = 2y + ky: rows of parity p take the taps ky ≡ p (mod 2), reading input row
    // y = m − (ky − p)/2 for phase row m (o = 2m + p).
    let axis_taps = |parity: usize| -> Vec<(isize, usize)> {
        (parity..k)
            .step_by(2)
            .map(|kk| (-(((kk - parity) / 2) as isize), kk))
            .collect()
    };
    let mut phases = Vec::with_capacity(4);
    for py in 0..2 {
        for px in 0..2 {
            let (rows, cols) = ((oh + 1 - py) / 2, (ow + 1 - px) / 2);
            if rows == 0 || cols == 0 {
                continue;
            }
            let mut taps = Vec::new();
            for &(dy, ky) in &axis_taps(py) {
                for &(dx, kx) in &axis_taps(px) {
                    taps.push(Tap {
                        dy,
                        dx,
                        index: ky * k + kx,
                    });
                }
            }
            phases.push(Phase {
                taps,
                stride: 1,
                rows,
                cols,
                offset: py * ow + px,
                row_stride: 2 * ow,
                col_stride: 2,
            });
        }
    }
    run(
        x,
        dims,
        weights,
        weight_batch,
        out_channels,
        k * k,
        &phases,
        oh * ow,
        (None, Activation::Identity),
    )
}

thread_local! {
    /// Each thread's column and tile buffers, kept between calls: a fresh buffer per call would
    /// be zero-filled (and, when large, page-faulted) every time.
    static BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's buffers (fresh ones if a caller up the stack holds them).
fn with_buffers<R>(f: impl FnOnce(&mut (Vec<f32>, Vec<f32>)) -> R) -> R {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => f(&mut buffers),
        Err(_) => f(&mut (Vec::new(), Vec::new())),
    })
}

/// One im2col row of a stride-1 convolution whose output rows are as wide as the input's:
/// `dst[(r − r0)·w + c] = x[r + dy, c + dx]` (0 outside the input) for rows `r0..r1`.
///
/// Input and output rows have the same stride, so the valid rows are one contiguous copy
/// shifted by `dy·w + dx`; the values it carries across row ends (where `c + dx` leaves the row)
/// are then zeroed, as are rows outside the input.
fn unfold_rows(
    channel: &[f32],
    [h, w]: [usize; 2],
    (dy, dx): (isize, isize),
    (r0, r1): (usize, usize),
    dst: &mut [f32],
) {
    let (h, w) = (h as isize, w as isize);
    // Output rows whose input row exists.
    let v0 = (r0 as isize).max(-dy).min(r1 as isize);
    let v1 = (r1 as isize).min(h - dy).max(v0);
    let (d0, d1) = (((v0 - r0 as isize) * w) as usize, ((v1 - r0 as isize) * w) as usize);
    dst[..d0].fill(0.0);
    dst[d1..].fill(0.0);
    if d1 == d0 {
        return;
    }
    // Flat source range of the valid rows, clipped to the channel.
    let s0 = (v0 + dy) * w + dx;
    let skip = (-s0).max(0) as usize;
    let len = d1 - d0;
    let take = (len - skip).min((h * w - (s0 + skip as isize)).max(0) as usize);
    let start = (s0 + skip as isize) as usize;
    dst[d0 + skip..d0 + skip + take].copy_from_slice(&channel[start..start + take]);
    dst[d0..d0 + skip].fill(0.0);
    dst[d0 + skip + take..d1].fill(0.0);
    // Columns whose input column falls outside the row.
    let (edge_lo, edge_hi) = ((-dx).clamp(0, w) as usize, (w - dx).clamp(0, w) as usize);
    for row in dst[d0..d1].chunks_exact_mut(w as usize) {
        row[..edge_lo].fill(0.0);
        row[edge_hi..].fill(0.0);
    }
}

/// A raw output pointer shared by the parallel items, which write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

// SAFETY: the items that share it write pairwise disjoint elements of one live allocation (each
// writes its own sample, phase and band of rows), and the allocation outlives the parallel loop.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// A unit of work: one sample, one phase, output rows `rows.0..rows.1` of that phase, output
/// channels `channels.0..channels.1`.
#[derive(Clone, Copy, Debug)]
struct Item {
    sample: usize,
    phase: usize,
    rows: (usize, usize),
    channels: (usize, usize),
}

/// The kernel of `phase` for one sample, packed `[out, in · taps]` (tap fastest), as GEMM's left
/// operand. A phase with every tap in order is the stored layout itself.
fn pack(weights: &[f32], out_channels: usize, in_channels: usize, kernel_taps: usize, phase: &Phase) -> Vec<f32> {
    let taps = phase.taps.len();
    let mut packed = Vec::with_capacity(out_channels * in_channels * taps);
    for oi in weights.chunks_exact(kernel_taps) {
        packed.extend(phase.taps.iter().map(|tap| oi[tap.index]));
    }
    debug_assert_eq!(packed.len(), out_channels * in_channels * taps);
    packed
}

#[allow(clippy::too_many_arguments)]
fn run(
    x: &[f32],
    dims: Dims,
    weights: &[f32],
    weight_batch: usize,
    out_channels: usize,
    kernel_taps: usize,
    phases: &[Phase],
    plane: usize,
    (bias, activation): (Option<&[f32]>, Activation),
) -> Vec<f32> {
    let [n, in_channels, h, w] = dims;
    let kernel_len = out_channels * in_channels * kernel_taps;
    assert_eq!(
        x.len(),
        n * in_channels * h * w,
        "input length does not match its shape"
    );
    assert!(
        weight_batch == n || weight_batch == 1,
        "weight batch must be 1 or the input batch"
    );
    assert_eq!(
        weights.len(),
        weight_batch * kernel_len,
        "weight length does not match its shape"
    );
    let mut out = match bias {
        Some(bias) => {
            assert_eq!(bias.len(), out_channels, "one bias per output channel");
            // Every output starts at its bias; GEMM adds the products to it.
            let mut out = Vec::with_capacity(n * out_channels * plane);
            for _ in 0..n {
                for &b in bias {
                    out.resize(out.len() + plane, b);
                }
            }
            out
        }
        None => vec![0.0f32; n * out_channels * plane],
    };
    if out.is_empty() || in_channels == 0 {
        return out;
    }
    let accumulate = bias.is_some();
    // Packed kernels per (weight sample, phase); a full in-order tap set needs no copy.
    let packed: Vec<Vec<Option<Vec<f32>>>> = weights
        .chunks_exact(kernel_len)
        .map(|kernel| {
            phases
                .iter()
                .map(|phase| {
                    let in_order =
                        phase.taps.len() == kernel_taps && phase.taps.iter().enumerate().all(|(i, t)| t.index == i);
                    (!in_order).then(|| pack(kernel, out_channels, in_channels, kernel_taps, phase))
                })
                .collect()
        })
        .collect();
    let threads = rayon::current_num_threads().max(1);
    let mut items = Vec::new();
    for sample in 0..n {
        for (p, phase) in phases.iter().enumerate() {
            let depth = in_channels * phase.taps.len();
            if depth == 0 {
                continue;
            }
            // Enough bands to keep every thread busy, each at least MIN_COLUMNS wide and at most
            // the column budget.
            let min_rows = MIN_COLUMNS.div_ceil(phase.cols).max(1);
            let by_cache = (COLUMN_BYTES / (4 * depth * phase.cols)).max(min_rows);
            let by_threads = phase.rows.div_ceil(4 * threads);
            let band = by_threads.clamp(min_rows, by_cache);
            let mut start = 0;
            while start < phase.rows {
                let end = (start + band).min(phase.rows);
                items.push(Item {
                    sample,
                    phase: p,
                    rows: (start, end),
                    channels: (0, out_channels),
                });
                start = end;
            }
        }
    }
    // Small images give few bands: split the output channels too (each part unfolds its band
    // again, which costs little next to its GEMM), rather than leave threads idle or run narrow
    // GEMMs.
    if items.len() < 2 * threads && threads > 1 {
        let parts = (2 * threads)
            .div_ceil(items.len().max(1))
            .min(out_channels.div_ceil(MIN_CHANNELS))
            .max(1);
        let step = out_channels.div_ceil(parts);
        items = items
            .iter()
            .flat_map(|item| {
                (0..out_channels).step_by(step).map(move |c0| Item {
                    channels: (c0, (c0 + step).min(out_channels)),
                    ..*item
                })
            })
            .collect();
    }
    let ptr = OutPtr(out.as_mut_ptr());
    let job = |buffers: &mut (Vec<f32>, Vec<f32>), item: &Item, parallelism: Parallelism| {
        let phase = &phases[item.phase];
        let ws = if weight_batch == 1 { 0 } else { item.sample };
        let lhs = match &packed[ws][item.phase] {
            Some(p) => p.as_slice(),
            None => &weights[ws * kernel_len..(ws + 1) * kernel_len],
        };
        let (c0, c1) = item.channels;
        let depth = lhs.len() / out_channels;
        let lhs = &lhs[c0 * depth..c1 * depth];
        let input = &x[item.sample * in_channels * h * w..(item.sample + 1) * in_channels * h * w];
        let plane_offset = (item.sample * out_channels + c0) * plane;
        // SAFETY: `ptr` points to `out`, alive for the whole loop; `run_item` writes only this
        // item's sample, channels, phase and rows, which no other item writes.
        unsafe {
            run_item(
                input,
                [in_channels, h, w],
                lhs,
                (c0, c1),
                phase,
                item.rows,
                plane,
                ptr.get().add(plane_offset),
                buffers,
                (accumulate, activation, parallelism),
            );
        }
    };
    if items.len() >= threads && threads > 1 {
        items
            .par_iter()
            .for_each(|item| with_buffers(|buffers| job(buffers, item, Parallelism::None)));
    } else {
        let parallelism = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        with_buffers(|buffers| items.iter().for_each(|item| job(buffers, item, parallelism)));
    }
    out
}

/// Computes rows `rows` of `phase`, output channels `c0..c1`, for one sample into `out` (the
/// plane of that sample's channel `c0`).
///
/// # Safety
/// `out` must be valid for writes of `out_channels · plane` values, and no other thread may access
/// the elements of these rows of this phase while it runs.
#[allow(clippy::too_many_arguments)]
unsafe fn run_item(
    x: &[f32],
    [in_channels, h, w]: [usize; 3],
    lhs: &[f32],
    (c0, c1): (usize, usize),
    phase: &Phase,
    (r0, r1): (usize, usize),
    plane: usize,
    out: *mut f32,
    (columns, tile): &mut (Vec<f32>, Vec<f32>),
    (accumulate, activation, parallelism): (bool, Activation, Parallelism),
) {
    let out_channels = c1 - c0;
    let cols = phase.cols;
    let n = (r1 - r0) * cols;
    let depth = in_channels * phase.taps.len();
    columns.resize(depth * n, 0.0);
    let mut row = 0;
    for ci in 0..in_channels {
        let channel = &x[ci * h * w..(ci + 1) * h * w];
        for tap in &phase.taps {
            let dst_row = &mut columns[row * n..(row + 1) * n];
            row += 1;
            if phase.stride == 1 && cols == w {
                unfold_rows(channel, [h, w], (tap.dy, tap.dx), (r0, r1), dst_row);
                continue;
            }
            // Valid output columns: 0 ≤ stride·ox + dx < w.
            let stride = phase.stride as isize;
            let lo = (((-tap.dx).max(0) + stride - 1) / stride).min(cols as isize) as usize;
            let hi = ((w as isize - tap.dx + stride - 1) / stride).clamp(lo as isize, cols as isize) as usize;
            for (r, seg) in (r0..r1).zip(dst_row.chunks_exact_mut(cols)) {
                let iy = r as isize * stride + tap.dy;
                if iy < 0 || iy >= h as isize {
                    seg.fill(0.0);
                    continue;
                }
                let src = &channel[iy as usize * w..(iy as usize + 1) * w];
                seg[..lo].fill(0.0);
                let start = (lo as isize * stride + tap.dx) as usize;
                if stride == 1 {
                    seg[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                } else {
                    for (d, s) in seg[lo..hi].iter_mut().zip(src[start..].iter().step_by(phase.stride)) {
                        *d = *s;
                    }
                }
                seg[hi..].fill(0.0);
            }
        }
    }
    let dense = phase.is_dense();
    debug_assert!(dense || !accumulate, "a bias needs a dense output grid");
    let (dst, dst_rs) = if dense {
        (out.add(phase.offset + r0 * cols), plane as isize)
    } else {
        tile.resize(out_channels * n, 0.0);
        (tile.as_mut_ptr(), n as isize)
    };
    gemm::gemm(
        out_channels,
        n,
        depth,
        dst,
        1,
        dst_rs,
        accumulate,
        lhs.as_ptr(),
        1,
        depth as isize,
        columns.as_ptr(),
        1,
        n as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    );
    if dense {
        for co in 0..out_channels {
            let values = std::slice::from_raw_parts_mut(out.add(co * plane + phase.offset + r0 * cols), n);
            activation.apply(values, c0 + co);
        }
    } else {
        debug_assert!(
            matches!(activation, Activation::Identity),
            "activations need a dense output grid"
        );
        for (co, values) in tile.chunks_exact(n).enumerate() {
            let channel = out.add(co * plane + phase.offset);
            for (r, row_values) in (r0..r1).zip(values.chunks_exact(cols)) {
                let dst_row = channel.add(r * phase.row_stride);
                for (c, &v) in row_values.iter().enumerate() {
                    *dst_row.add(c * phase.col_stride) = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// The definitions, in f64, by direct summation.
    fn naive(
        x: &[f32],
        [n, ci, h, w]: Dims,
        wt: &[f32],
        wb: usize,
        co: usize,
        g: Geometry,
        bias: Option<&[f32]>,
    ) -> Vec<f64> {
        let (k, s, p) = (g.kernel, g.stride, g.padding as isize);
        let (oh, ow) = (g.output_size(h), g.output_size(w));
        let mut out = vec![0.0f64; n * co * oh * ow];
        for b in 0..n {
            let wsel = if wb == 1 { 0 } else { b };
            for o in 0..co {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = bias.map_or(0.0, |bias| bias[o] as f64);
                        for i in 0..ci {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (y * s) as isize + ky as isize - p;
                                    let ix = (xx * s) as isize + kx as isize - p;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let wv = wt[(((wsel * co + o) * ci + i) * k + ky) * k + kx] as f64;
                                    acc += wv * x[((b * ci + i) * h + iy as usize) * w + ix as usize] as f64;
                                }
                            }
                        }
                        out[((b * co + o) * oh + y) * ow + xx] = acc;
                    }
                }
            }
        }
        out
    }

    fn naive_same(x: &[f32], dims: Dims, wt: &[f32], wb: usize, co: usize, k: usize) -> Vec<f64> {
        naive(
            x,
            dims,
            wt,
            wb,
            co,
            Geometry {
                kernel: k,
                stride: 1,
                padding: k / 2,
            },
            None,
        )
    }

    fn naive_transposed(x: &[f32], [n, ci, h, w]: Dims, wt: &[f32], wb: usize, co: usize, k: usize) -> Vec<f64> {
        let (oh, ow) = (transposed_size(h, k), transposed_size(w, k));
        let mut out = vec![0.0f64; n * co * oh * ow];
        for b in 0..n {
            let wsel = if wb == 1 { 0 } else { b };
            for o in 0..co {
                for i in 0..ci {
                    for y in 0..h {
                        for xx in 0..w {
                            let v = x[((b * ci + i) * h + y) * w + xx] as f64;
                            for ky in 0..k {
                                for kx in 0..k {
                                    let wv = wt[(((wsel * co + o) * ci + i) * k + ky) * k + kx] as f64;
                                    out[((b * co + o) * oh + 2 * y + ky) * ow + 2 * xx + kx] += wv * v;
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn assert_close(got: &[f32], want: &[f64], depth: usize) {
        assert_eq!(got.len(), want.len());
        // Each output is a sum of `depth` products of values in [−1, 1): float32 rounding grows
        // at most like depth · 2⁻²⁴ relative to the sum of |products| ≤ depth.
        let bound = depth as f64 * depth as f64 * f32::EPSILON as f64;
        let max = got
            .iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0f64, f64::max);
        assert!(max <= bound, "max-abs error {max:e} over bound {bound:e}");
    }

    type Reference = fn(&[f32], Dims, &[f32], usize, usize, usize) -> Vec<f64>;

    /// `conv` against `reference` on cases `(n, in, out, h, w, k, weight batch)`.
    fn check_per_sample(conv: PerSampleConv, reference: Reference, cases: &[[usize; 7]]) {
        for (i, &[n, ci, co, h, w, k, wb]) in cases.iter().enumerate() {
            let x = values(n * ci * h * w, 2 * i as u64 + 1);
            let wt = values(wb * co * ci * k * k, 2 * i as u64 + 2);
            let got = conv(&x, [n, ci, h, w], &wt, wb, co, k);
            assert_close(&got, &reference(&x, [n, ci, h, w], &wt, wb, co, k), ci * k * k);
        }
    }

    #[test]
    fn same_convolution_matches_the_definition() {
        let cases = [
            [1, 3, 4, 5, 7, 3, 1],
            [2, 4, 3, 6, 5, 3, 2],
            [3, 5, 2, 4, 4, 1, 3],
            [2, 2, 5, 9, 3, 5, 1],
            [1, 6, 3, 1, 1, 3, 1],
        ];
        check_per_sample(conv2d_same, naive_same, &cases);
    }

    #[test]
    fn transposed_convolution_matches_the_definition() {
        let cases = [
            [1, 3, 4, 4, 4, 3, 1],
            [2, 4, 3, 5, 3, 3, 2],
            [2, 2, 3, 3, 6, 4, 1],
            [1, 3, 2, 2, 2, 1, 1],
            [1, 2, 2, 1, 1, 3, 1],
        ];
        check_per_sample(conv_transpose2d_stride2, naive_transposed, &cases);
    }

    #[test]
    fn strided_padded_convolution_with_bias_matches_the_definition() {
        for &(n, ci, co, h, w, kernel, stride, padding, wb) in &[
            (1, 3, 4, 8, 8, 3, 2, 1, 1),
            (2, 2, 3, 7, 9, 3, 2, 1, 1),
            (2, 3, 2, 9, 6, 1, 2, 0, 2),
            (1, 3, 5, 11, 10, 7, 2, 3, 1),
            (1, 2, 2, 5, 5, 3, 1, 0, 1),
            (1, 2, 2, 6, 5, 2, 3, 2, 1),
        ] {
            let g = Geometry {
                kernel,
                stride,
                padding,
            };
            let x = values(n * ci * h * w, 7);
            let wt = values(wb * co * ci * kernel * kernel, 8);
            let bias = values(co, 9);
            let got = conv2d(
                &x,
                [n, ci, h, w],
                &wt,
                wb,
                co,
                g,
                Epilogue {
                    bias: Some(&bias),
                    activation: Activation::Identity,
                },
            );
            assert_eq!(got.len(), n * co * g.output_size(h) * g.output_size(w));
            let want = naive(&x, [n, ci, h, w], &wt, wb, co, g, Some(&bias));
            assert_close(&got, &want, ci * kernel * kernel + 1);
        }
    }

    #[test]
    fn activations_and_split_channels() {
        // 40 output channels on a small image: the work is split by channels too.
        let (n, ci, co, h, w) = (1, 3, 40, 5, 4);
        let g = Geometry {
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let x = values(n * ci * h * w, 10);
        let wt = values(co * ci * 9, 11);
        let bias = values(co, 12);
        let slopes = values(co, 13);
        let want = naive(&x, [n, ci, h, w], &wt, 1, co, g, Some(&bias));
        let plane = h * w;
        let relu: Vec<f64> = want.iter().map(|v| v.max(0.0)).collect();
        let prelu: Vec<f64> = want
            .iter()
            .enumerate()
            .map(|(i, &v)| if v >= 0.0 { v } else { slopes[i / plane] as f64 * v })
            .collect();
        let depth = ci * 9 + 1;
        let run = |activation| {
            let epilogue = Epilogue {
                bias: Some(&bias),
                activation,
            };
            conv2d(&x, [n, ci, h, w], &wt, 1, co, g, epilogue)
        };
        assert_close(&run(Activation::Identity), &want, depth);
        assert_close(&run(Activation::Relu), &relu, depth);
        assert_close(&run(Activation::PRelu(&slopes)), &prelu, depth);
    }

    #[test]
    fn many_bands_give_the_same_result_as_one() {
        // Tall enough that the rows split into several bands per sample.
        let (n, ci, co, h, w, k) = (2, 3, 2, 64, 9, 3);
        let x = values(n * ci * h * w, 5);
        let wt = values(n * co * ci * k * k, 6);
        let got = conv2d_same(&x, [n, ci, h, w], &wt, n, co, k);
        assert_close(&got, &naive_same(&x, [n, ci, h, w], &wt, n, co, k), ci * k * k);
    }
}
