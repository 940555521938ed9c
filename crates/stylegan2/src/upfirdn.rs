//! FIR resampling: `upfirdn2d` (docs/ARCHITECTURE.md §3.3) and the two fast forms the generator uses.
//!
//! upfirdn2d = zero-insertion up-sampling, zero padding, a TRUE 2-D convolution with the FIR
//! kernel (flipped, unlike a cross-correlation), then decimation; per channel. The generator only
//! needs (a) the ToRGB skip up-sampling (up 2, pad (2,1)) and (b) the blur after a transposed conv
//! (pad (1,1)); both are written as one Burn conv over channels folded into the batch, and unit
//! tests check them against the general definition. On the CPU backend (`flex`) and the CubeCL GPU
//! backends (`cube`) all three run as direct FIR kernels of `hyperstyle_kernels` instead, which
//! skip the inserted zeros.

use burn::prelude::*;
use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

/// A 2-D FIR kernel as stored in a checkpoint (`blur.kernel`, `upsample.kernel`), kept both as is
/// and flipped, shaped `[1, 1, kh, kw]` for single-channel convs.
#[derive(Module, Debug)]
pub struct FirKernel<B: Backend> {
    kernel: Tensor<B, 4>,
    flipped: Tensor<B, 4>,
    /// The row-major values, for the CPU kernels.
    #[module(skip)]
    values: Vec<f32>,
}

impl<B: Backend> FirKernel<B> {
    /// From row-major values of a `kh × kw` kernel.
    pub fn from_values(values: &[f32], kh: usize, kw: usize, device: &B::Device) -> Self {
        let flipped: Vec<f32> = values.iter().rev().copied().collect();
        Self {
            kernel: Tensor::from_data(TensorData::new(values.to_vec(), [1, 1, kh, kw]), device),
            flipped: Tensor::from_data(TensorData::new(flipped, [1, 1, kh, kw]), device),
            values: values.to_vec(),
        }
    }

    /// `make_kernel(taps) · gain`: the outer product of the 1-D taps normalised to sum 1, times
    /// `gain` (4 for the generator's up-sampling filters).
    pub fn from_taps(taps: &[f32], gain: f32, device: &B::Device) -> Self {
        let sum: f32 = taps.iter().sum();
        let n = taps.len();
        let mut values = Vec::with_capacity(n * n);
        for a in taps {
            for b in taps {
                values.push(a * b / (sum * sum) * gain);
            }
        }
        Self::from_values(&values, n, n, device)
    }

    /// The kernel as a checkpoint stores it: shape `[kh, kw]` and row-major values.
    pub fn checkpoint_tensor(&self) -> hyperstyle_core::Result<(Vec<usize>, Vec<f32>)> {
        let [kh, kw] = self.size();
        Ok((
            vec![kh, kw],
            hyperstyle_core::weights::tensor_values(self.kernel.clone())?,
        ))
    }

    fn size(&self) -> [usize; 2] {
        let [_, _, kh, kw] = self.kernel.dims();
        [kh, kw]
    }
}

/// `upfirdn2d` without decimation by a native kernel (non-negative pads, up-sampling 1 or 2): the
/// CPU's (`flex`) or the GPU's (`cube`); `None` where none applies (another backend, another
/// dtype, cropping, or built without either feature).
fn native_upfirdn2d<B: Backend>(
    x: &Tensor<B, 4>,
    kernel: &FirKernel<B>,
    up: usize,
    pad: [i64; 2],
) -> Option<Tensor<B, 4>> {
    let [p0, p1] = pad;
    if !(1..=2).contains(&up) || p0 < 0 || p1 < 0 {
        return None;
    }
    let pad = [p0 as usize, p1 as usize];
    #[cfg(feature = "flex")]
    if hyperstyle_kernels::flex::accelerates(x) {
        return hyperstyle_kernels::flex::upfirdn2d(x, &kernel.values, kernel.size(), up, pad);
    }
    #[cfg(feature = "cube")]
    if hyperstyle_kernels::cube::accelerates::<B>() {
        return hyperstyle_kernels::cube::upfirdn2d(x, &kernel.kernel, up, pad);
    }
    let _ = (x, kernel, pad);
    None
}

fn fold_channels<B: Backend>(x: Tensor<B, 4>) -> (Tensor<B, 4>, [usize; 2]) {
    let [n, c, h, w] = x.dims();
    (x.reshape([n * c, 1, h, w]), [n, c])
}

fn unfold_channels<B: Backend>(x: Tensor<B, 4>, [n, c]: [usize; 2]) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    x.reshape([n, c, h, w])
}

/// General `upfirdn2d(x, kernel, up, down, pad=(pad0, pad1))` on every channel; negative pads crop.
/// x: `[batch, channels, height, width]`.
pub fn upfirdn2d<B: Backend>(
    x: Tensor<B, 4>,
    kernel: &FirKernel<B>,
    up: usize,
    down: usize,
    pad: [i64; 2],
) -> Tensor<B, 4> {
    if down == 1 {
        if let Some(y) = native_upfirdn2d(&x, kernel, up, pad) {
            return y;
        }
    }
    let (x, nc) = fold_channels(x);
    let [m, _, h, w] = x.dims();
    let device = x.device();
    // 1. zero insertion: every sample followed by up−1 zeros.
    let x = if up > 1 {
        let z = Tensor::<B, 6>::zeros([m, 1, h, up, w, up], &device);
        z.slice_assign([0..m, 0..1, 0..h, 0..1, 0..w, 0..1], x.reshape([m, 1, h, 1, w, 1]))
            .reshape([m, 1, h * up, w * up])
    } else {
        x
    };
    // 2. pad (or crop) both spatial axes.
    let [p0, p1] = pad;
    let grow = |v: i64| v.max(0) as usize;
    let x = x.pad(
        (grow(p0), grow(p1), grow(p0), grow(p1)),
        burn::tensor::ops::PadMode::Constant(0.0),
    );
    let [_, _, hp, wp] = x.dims();
    let crop0 = (-p0).max(0) as usize;
    let crop1 = (-p1).max(0) as usize;
    let x = x.slice([0..m, 0..1, crop0..hp - crop1, crop0..wp - crop1]);
    // 3. true convolution = cross-correlation with the flipped kernel; 4. decimation by stride.
    let y = conv2d(
        x,
        kernel.flipped.clone(),
        None,
        ConvOptions::new([down, down], [0, 0], [1, 1], 1),
    );
    unfold_channels(y, nc)
}

/// ToRGB skip up-sampling (rosinality `Upsample(factor=2)`): `H → 2H`.
///
/// For the usual 4×4 kernel this is `upfirdn2d(x, kernel, up=2, pad=(2, 1))`, and zero insertion
/// followed by a true convolution is a transposed convolution with the unflipped kernel:
/// `out[m] = Σ x[y]·K[m − 2y + 1]`, i.e. stride 2, padding 1.
pub fn upsample_2x<B: Backend>(x: Tensor<B, 4>, kernel: &FirKernel<B>) -> Tensor<B, 4> {
    let [kh, _] = kernel.size();
    if kh != 4 {
        let p = kh as i64 - 2;
        return upfirdn2d(x, kernel, 2, 1, [(p + 1) / 2 + 1, p / 2]);
    }
    if let Some(y) = native_upfirdn2d(&x, kernel, 2, [2, 1]) {
        return y;
    }
    let (x, nc) = fold_channels(x);
    let y = conv_transpose2d(
        x,
        kernel.kernel.clone(),
        None,
        ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
    );
    unfold_channels(y, nc)
}

/// Blur after the stride-2 transposed 3×3 conv: `2H + 1 → 2H`. For the usual 4×4 kernel this is
/// `upfirdn2d(x, kernel, pad=(1, 1))` (rosinality's `Blur(pad=((p+1)//2 + 1, p//2 + 1))`,
/// `p = kernel − 4`).
pub fn blur<B: Backend>(x: Tensor<B, 4>, kernel: &FirKernel<B>) -> Tensor<B, 4> {
    let [kh, _] = kernel.size();
    if kh != 4 {
        let p = kh as i64 - 4;
        return upfirdn2d(x, kernel, 1, 1, [(p + 1) / 2 + 1, p / 2 + 1]);
    }
    if let Some(y) = native_upfirdn2d(&x, kernel, 1, [1, 1]) {
        return y;
    }
    let (x, nc) = fold_channels(x);
    let y = conv2d(
        x,
        kernel.flipped.clone(),
        None,
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    );
    unfold_channels(y, nc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    type B = Flex;

    fn max_diff(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar()
    }

    /// An asymmetric kernel, so that a missing flip would show.
    fn asymmetric() -> FirKernel<B> {
        let values: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin() + 0.1 * i as f32).collect();
        FirKernel::from_values(&values, 4, 4, &Default::default())
    }

    #[test]
    fn upsample_2x_equals_upfirdn2d() {
        let device = Default::default();
        let k = asymmetric();
        let x = Tensor::<B, 4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device);
        let fast = upsample_2x(x.clone(), &k);
        assert_eq!(fast.dims(), [2, 3, 10, 14]);
        assert!(max_diff(fast, upfirdn2d(x, &k, 2, 1, [2, 1])) < 1e-5);
    }

    #[test]
    fn blur_equals_upfirdn2d() {
        let device = Default::default();
        let k = asymmetric();
        let x = Tensor::<B, 4>::random([2, 3, 11, 9], Distribution::Normal(0.0, 1.0), &device);
        let fast = blur(x.clone(), &k);
        assert_eq!(fast.dims(), [2, 3, 10, 8]);
        assert!(max_diff(fast, upfirdn2d(x, &k, 1, 1, [1, 1])) < 1e-5);
    }

    #[test]
    fn upfirdn2d_matches_closed_form_of_reference() {
        // docs/ARCHITECTURE.md §3.3: with 4·K4, up 2, pad (2,1): out[2y] = .25x[y−1] + .75x[y],
        // out[2y+1] = .75x[y] + .25x[y+1] along each axis. Check on a 1×1×1×4 row (rows are
        // constant, so the vertical pass contributes the factor 1 in the interior only).
        let device = Default::default();
        let k = FirKernel::<B>::from_taps(&[1.0, 3.0, 3.0, 1.0], 4.0, &device);
        let x = Tensor::<B, 4>::from_data(TensorData::new(vec![1.0f32, 2.0, 4.0, 8.0], [1, 1, 1, 4]), &device);
        let y = upfirdn2d(x, &k, 2, 1, [2, 1]);
        assert_eq!(y.dims(), [1, 1, 2, 8]);
        let row: Vec<f32> = y.slice([0..1, 0..1, 0..1, 0..8]).into_data().to_vec().unwrap();
        // Vertical pass on a single row: out[0] = 0.75·x (x[−1] = 0).
        let expect: Vec<f32> = [0.75f32, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, 6.0]
            .iter()
            .map(|v| v * 0.75)
            .collect();
        for (a, e) in row.iter().zip(&expect) {
            assert!((a - e).abs() < 1e-5, "{row:?} vs {expect:?}");
        }
    }
}
