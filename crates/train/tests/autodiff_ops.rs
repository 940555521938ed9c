//! The backward passes the training step relies on, on `Autodiff<Flex>`, against float64 loops:
//! strided and padded convolutions at the shapes of the hypernetwork (input, weight and bias
//! gradients) and LeakyReLU.

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
type B = Autodiff<Flex>;

/// `n` values in [−0.5, 0.5) from a linear congruential sequence.
fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

#[test]
fn strided_convolution_gradients() {
    for &(cin, cout, h, stride, pad, k) in &[
        (128usize, 128usize, 4usize, 2usize, 1usize, 3usize),
        (128, 128, 8, 2, 1, 3),
        (512, 128, 16, 1, 1, 3),
        (128, 512, 2, 2, 1, 3),
        (64, 64, 32, 1, 1, 3),
        (16, 16, 4, 2, 1, 3),
    ] {
        let dev = Default::default();
        let xv = vals(2 * cin * h * h, 1);
        let wv = vals(cout * cin * k * k, 2);
        let x = Tensor::<B, 4>::from_data(TensorData::new(xv.clone(), [2, cin, h, h]), &dev).require_grad();
        let w = Tensor::<B, 4>::from_data(TensorData::new(wv.clone(), [cout, cin, k, k]), &dev).require_grad();
        let b = Tensor::<B, 1>::from_data(TensorData::new(vals(cout, 4), [cout]), &dev).require_grad();
        let y = conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
        );
        let [_, _, oh, ow] = y.dims();
        let gv = vals(2 * cout * oh * ow, 3);
        let g = Tensor::<B, 4>::from_data(TensorData::new(gv.clone(), [2, cout, oh, ow]), &dev);
        let grads = (y * g).sum().backward();
        let gx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let gw = w.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let gb = b.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        // reference in f64
        let mut rx = vec![0f64; xv.len()];
        let mut rw = vec![0f64; wv.len()];
        let mut rb = vec![0f64; cout];
        for n in 0..2 {
            for o in 0..cout {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let gg = gv[((n * cout + o) * oh + oy) * ow + ox] as f64;
                        rb[o] += gg;
                        for i in 0..cin {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * stride + ky) as isize - pad as isize;
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= h as isize {
                                        continue;
                                    }
                                    let xi = ((n * cin + i) * h + iy as usize) * h + ix as usize;
                                    let wi = ((o * cin + i) * k + ky) * k + kx;
                                    rx[xi] += gg * wv[wi] as f64;
                                    rw[wi] += gg * xv[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let e = |a: &[f32], r: &[f64]| a.iter().zip(r).map(|(a, r)| (*a as f64 - r).abs()).fold(0.0, f64::max);
        let (ex, ew, eb) = (e(&gx, &rx), e(&gw, &rw), e(&gb, &rb));
        println!("{cin}→{cout} {h}×{h} stride {stride} pad {pad} k{k}: input {ex:.2e} weight {ew:.2e} bias {eb:.2e}");
        // Sums of up to 2·h²·9 products of values below 0.5: float32 accumulation over
        // ~10⁴ terms of magnitude ~0.1 stays below 1e-4.
        assert!(
            ex < 1e-4 && ew < 1e-4 && eb < 1e-4,
            "conv backward off: {ex:e} {ew:e} {eb:e}"
        );
    }
}

#[test]
fn leaky_relu_gradient() {
    let dev = Default::default();
    for n in [2 * 128 * 4 * 4, 2 * 512 * 16 * 16, 37] {
        let xv = vals(n, 5);
        let gv = vals(n, 6);
        let x = Tensor::<B, 1>::from_data(TensorData::new(xv.clone(), [n]), &dev).require_grad();
        let g = Tensor::<B, 1>::from_data(TensorData::new(gv.clone(), [n]), &dev);
        let y = burn::tensor::activation::leaky_relu(x.clone(), 0.01);
        let grads = (y * g).sum().backward();
        let gx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let err = xv
            .iter()
            .zip(&gv)
            .zip(&gx)
            .map(|((x, g), o)| {
                let r = if *x < 0.0 { 0.01 * g } else { *g };
                (r - o).abs()
            })
            .fold(0f32, f32::max);
        assert_eq!(err, 0.0, "leaky_relu backward (n = {n})");
    }
}
