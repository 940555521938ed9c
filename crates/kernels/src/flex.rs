//! The kernels on Burn tensors of burn-flex's CPU backend.
//!
//! Every function here is generic over `B: Backend` so that model code keeps one path: it returns
//! `None` (or hands the tensor back) unless `B` is [`Flex`] and the main input holds `f32`, and
//! the caller then runs its tensor-operation form. Secondary inputs of another float type are
//! converted to `f32`; non-contiguous inputs are made contiguous.

use std::borrow::Cow;

use burn::prelude::*;
use burn::tensor::{DType, FloatDType, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};

use crate::conv::{Activation, Epilogue};
use crate::same_type;
use crate::{activation, conv, elementwise, fir};

/// Whether the kernels run for `x`: `B` is burn-flex and `x` holds `f32`.
pub fn accelerates<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Flex>() && x.dtype() == DType::F32
}

/// The contiguous `f32` storage of a Flex tensor (copied only if it is a strided view).
struct Values {
    tensor: FlexTensor,
}

impl Values {
    fn slice(&self) -> Cow<'_, [f32]> {
        match self.tensor.as_slice::<f32>() {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(
                self.tensor
                    .to_contiguous()
                    .as_slice::<f32>()
                    .map(<[f32]>::to_vec)
                    .unwrap_or_default(),
            ),
        }
    }
}

/// `x` as Flex `f32` storage, or `None` when `B` is not Flex.
fn values<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Option<Values> {
    let x = if x.dtype() == DType::F32 {
        x.clone()
    } else {
        x.clone().cast(FloatDType::F32)
    };
    let flex: Tensor<Flex, D> = same_type(x).ok()?;
    Some(Values {
        tensor: flex.into_primitive().tensor(),
    })
}

/// A `B` tensor from values computed here; `None` when `B` is not Flex.
fn tensor<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Option<Tensor<B, D>> {
    let flex = FlexTensor::from_data(TensorData::new(values, shape));
    same_type(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(flex))).ok()
}

/// [`conv::conv2d_same`]: x `[n, in, h, w]`, weights `[n or 1, out, in, k, k]` (odd k) →
/// `[n, out, h, w]`.
pub fn conv2d_same<B: Backend>(x: &Tensor<B, 4>, weights: &Tensor<B, 5>) -> Option<Tensor<B, 4>> {
    per_sample_conv(x, weights, conv::conv2d_same, |n, _| n)
}

/// A convolution with per-sample kernels `weights` `[n or 1, out, in, k, k]` by `run(x, dims,
/// weights, weight batch, out, k)`, whose output side is `size(input side, k)`.
fn per_sample_conv<B: Backend>(
    x: &Tensor<B, 4>,
    weights: &Tensor<B, 5>,
    run: conv::PerSampleConv,
    size: fn(usize, usize) -> usize,
) -> Option<Tensor<B, 4>> {
    if !accelerates(x) {
        return None;
    }
    let dims = x.dims();
    let [wb, cout, _, k, _] = weights.dims();
    let (xv, wv) = (values(x)?, values(weights)?);
    let out = run(&xv.slice(), dims, &wv.slice(), wb, cout, k);
    tensor(out, [dims[0], cout, size(dims[2], k), size(dims[3], k)])
}

/// An activation for [`conv2d`], with its parameters as tensors.
#[derive(Debug)]
pub enum ConvActivation<'a, B: Backend> {
    /// None.
    Identity,
    /// `max(y, 0)`.
    Relu,
    /// PReLU with one slope per output channel (`[out]`).
    PRelu(&'a Tensor<B, 1>),
    /// Leaky ReLU with one slope.
    LeakyRelu(f32),
}

// Manual impls: a derive would require `B: Copy`.
impl<B: Backend> Clone for ConvActivation<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for ConvActivation<'_, B> {}

/// [`conv::conv2d`] with one kernel for the batch: x `[n, in, h, w]`, weight `[out, in, k, k]`,
/// bias `[out]` → `[n, out, h', w']`, then `activation`.
pub fn conv2d<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    (stride, padding): (usize, usize),
    activation: ConvActivation<'_, B>,
) -> Option<Tensor<B, 4>> {
    if !accelerates(x) || stride == 0 {
        return None;
    }
    let dims = x.dims();
    let [cout, _, k, _] = weight.dims();
    let geometry = conv::Geometry {
        kernel: k,
        stride,
        padding,
    };
    let wv = values(weight)?;
    let bv = match bias {
        Some(bias) => Some(values(bias)?),
        None => None,
    };
    let slopes = match activation {
        ConvActivation::PRelu(slopes) => Some(values(slopes)?),
        _ => None,
    };
    let slopes = slopes.as_ref().map(Values::slice);
    let activation = match (activation, &slopes) {
        (ConvActivation::Relu, _) => Activation::Relu,
        (ConvActivation::PRelu(_), Some(slopes)) => Activation::PRelu(slopes),
        (ConvActivation::LeakyRelu(slope), _) => Activation::LeakyRelu(slope),
        _ => Activation::Identity,
    };
    let xv = values(x)?;
    let bias = bv.as_ref().map(Values::slice);
    let out = conv::conv2d(
        &xv.slice(),
        dims,
        &wv.slice(),
        1,
        cout,
        geometry,
        Epilogue {
            bias: bias.as_deref(),
            activation,
        },
    );
    tensor(
        out,
        [
            dims[0],
            cout,
            geometry.output_size(dims[2]),
            geometry.output_size(dims[3]),
        ],
    )
}

/// [`conv::conv_transpose2d_stride2`]: x `[n, in, h, w]`, weights `[n or 1, out, in, k, k]` →
/// `[n, out, 2h + k − 2, 2w + k − 2]`.
pub fn conv_transpose2d_stride2<B: Backend>(x: &Tensor<B, 4>, weights: &Tensor<B, 5>) -> Option<Tensor<B, 4>> {
    per_sample_conv(x, weights, conv::conv_transpose2d_stride2, conv::transposed_size)
}

/// [`fir::upfirdn2d`] on every plane of x `[n, c, h, w]` with a row-major `kh × kw` kernel.
pub fn upfirdn2d<B: Backend>(
    x: &Tensor<B, 4>,
    kernel: &[f32],
    size: [usize; 2],
    up: usize,
    pad: [usize; 2],
) -> Option<Tensor<B, 4>> {
    if !accelerates(x) {
        return None;
    }
    let xv = values(x)?;
    let (out, dims) = fir::upfirdn2d(&xv.slice(), x.dims(), kernel, size, up, pad);
    tensor(out, dims)
}

/// Runs `f` on the `f32` values of `y` in place (copying them first if another tensor shares
/// them, so no other holder sees the change); hands `y` back when the kernels do not run.
fn update<B: Backend, const D: usize>(
    y: Tensor<B, D>,
    f: impl FnOnce(&mut [f32], [usize; D]),
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if !accelerates(&y) {
        return Err(y);
    }
    let dims = y.dims();
    let flex: Tensor<Flex, D> = same_type(y)?;
    let mut storage = flex.into_primitive().tensor();
    if !(storage.is_contiguous() && storage.layout().start_offset() == 0) {
        storage = storage.to_contiguous();
    }
    // Copy-on-write: a shared buffer is copied first.
    f(
        &mut storage.storage_mut::<f32>()[..dims.iter().product::<usize>()],
        dims,
    );
    let flex = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(storage));
    same_type(flex).map_err(|_| unreachable!("B is Flex: checked above"))
}

/// [`activation::noise_bias_leaky_relu`] on y `[n, c, h, w]` with noise `[n or 1, 1, h, w]` and
/// bias `[c]`, in place when `y` owns its storage. Hands `y` back when `B` is not Flex.
pub fn noise_bias_leaky_relu<B: Backend>(
    y: Tensor<B, 4>,
    noise: &Tensor<B, 4>,
    noise_weight: f32,
    bias: &Tensor<B, 1>,
    slope: f32,
    gain: f32,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let (Some(nv), Some(bv)) = (values(noise), values(bias)) else {
        return Err(y);
    };
    update(y, |v, dims| {
        activation::noise_bias_leaky_relu(v, dims, &nv.slice(), noise_weight, &bv.slice(), slope, gain)
    })
}

/// [`elementwise::channel_affine`]: `x · scale[c] + shift[c]` on x `[n, c, h, w]`, in place
/// when `x` owns its storage. Hands `x` back when `B` is not Flex.
pub fn channel_affine<B: Backend>(
    x: Tensor<B, 4>,
    scale: &Tensor<B, 1>,
    shift: &Tensor<B, 1>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let (Some(a), Some(b)) = (values(scale), values(shift)) else {
        return Err(x);
    };
    update(x, |v, dims| {
        elementwise::channel_affine(v, dims, &a.slice(), &b.slice())
    })
}

/// [`elementwise::gate_add`]: `x · gate[n, c] + y` on x, y `[n, c, h, w]`, gate `[n, c]`, in
/// place in `x` when it owns its storage. Hands `x` back when `B` is not Flex.
pub fn gate_add<B: Backend>(
    x: Tensor<B, 4>,
    gate: &Tensor<B, 2>,
    y: &Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if y.dims() != x.dims() {
        return Err(x);
    }
    let (Some(g), Some(yv)) = (values(gate), values(y)) else {
        return Err(x);
    };
    update(x, |v, dims| elementwise::gate_add(v, dims, &g.slice(), &yv.slice()))
}

/// [`elementwise::add_relu`]: `max(x + y, 0)`, in place in `x` when it owns its storage. Hands
/// `x` back when `B` is not Flex.
pub fn add_relu<B: Backend, const D: usize>(x: Tensor<B, D>, y: &Tensor<B, D>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if y.dims() != x.dims() {
        return Err(x);
    }
    let Some(yv) = values(y) else {
        return Err(x);
    };
    update(x, |v, _| elementwise::add_relu(v, &yv.slice()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;

    #[test]
    fn runs_only_on_flex_f32() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::random([1, 2, 3, 3], Distribution::Default, &device);
        let w = Tensor::<Flex, 5>::random([1, 2, 2, 3, 3], Distribution::Default, &device);
        assert!(conv2d_same(&x, &w).is_some());
        assert!(conv2d_same(&x.clone().cast(FloatDType::F16), &w).is_none());
        type A = Autodiff<Flex>;
        let xa = Tensor::<A, 4>::random([1, 2, 3, 3], Distribution::Default, &device);
        let wa = Tensor::<A, 5>::random([1, 2, 2, 3, 3], Distribution::Default, &device);
        assert!(conv2d_same(&xa, &wa).is_none());
        let noise = Tensor::<A, 4>::zeros([1, 1, 3, 3], &device);
        let bias = Tensor::<A, 1>::zeros([2], &device);
        let back = noise_bias_leaky_relu(xa.clone(), &noise, 1.0, &bias, 0.2, 1.0).unwrap_err();
        assert_eq!(back.into_data(), xa.into_data());
    }

    #[test]
    fn shared_storage_is_not_modified() {
        let device = Default::default();
        let y = Tensor::<Flex, 4>::from_data(TensorData::new(vec![-1.0f32, 2.0], [1, 1, 1, 2]), &device);
        let keep = y.clone();
        let noise = Tensor::<Flex, 4>::zeros([1, 1, 1, 2], &device);
        let bias = Tensor::<Flex, 1>::zeros([1], &device);
        let out = noise_bias_leaky_relu(y, &noise, 1.0, &bias, 0.5, 2.0).unwrap();
        assert_eq!(out.into_data().to_vec::<f32>().unwrap(), vec![-1.0, 4.0]);
        assert_eq!(keep.into_data().to_vec::<f32>().unwrap(), vec![-1.0, 2.0]);
    }
}
