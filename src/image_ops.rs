//! Tensor-side image operations of the pipeline: pooling and cropping as upstream does them.

use burn::prelude::*;
use burn::tensor::module::adaptive_avg_pool2d;

/// `AdaptiveAvgPool2d((height, width))` (upstream's `face_pool` for 256×256): every use in
/// HyperStyle has an integer ratio, so this is a box mean. x: `[batch, c, h, w]`.
pub fn pool<B: Backend>(x: Tensor<B, 4>, height: usize, width: usize) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    if h == height && w == width {
        return x;
    }
    adaptive_avg_pool2d(x, [height, width])
}

/// Rows `start..end` of an image batch (the cars crop: 64..448 of a 512 image, 32..224 of 256).
pub fn crop_rows<B: Backend>(x: Tensor<B, 4>, start: usize, end: usize) -> Tensor<B, 4> {
    x.narrow(2, start, end - start)
}
