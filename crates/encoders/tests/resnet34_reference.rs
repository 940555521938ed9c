//! The ResNet-34 backbone against a plain float64 implementation written from the torchvision /
//! HyperStyle definition (docs/ARCHITECTURE.md §5.4): there is no upstream golden for the backbone alone.

mod common;

use burn::prelude::*;
use common::{resnet34_tensors, B};
use hyperstyle_core::{WeightStore, Weights};
use hyperstyle_encoders::ResNet34;
use hyperstyle_testing::pattern::pattern_values;
use hyperstyle_testing::{error_stats, to_vec, Fixture};

/// One image `[channels, height, width]` in float64.
struct Map {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

impl Map {
    fn at(&self, c: usize, y: isize, x: isize) -> f64 {
        if y < 0 || x < 0 || y >= self.h as isize || x >= self.w as isize {
            0.0
        } else {
            self.v[(c * self.h + y as usize) * self.w + x as usize]
        }
    }

    fn map(mut self, f: impl Fn(usize, f64) -> f64) -> Self {
        let plane = self.h * self.w;
        for (i, v) in self.v.iter_mut().enumerate() {
            *v = f(i / plane, *v);
        }
        self
    }

    fn add(mut self, other: &Map) -> Self {
        self.v.iter_mut().zip(&other.v).for_each(|(a, b)| *a += b);
        self
    }
}

/// `nn.Conv2d(bias=False)` with weight `name.weight` `[out, in, k, k]`.
fn conv(x: &Map, weights: &Weights, out: usize, k: usize, stride: usize, pad: usize) -> Map {
    let w = weights.values("weight", &[out, x.c, k, k]).unwrap();
    let (h, wd) = ((x.h + 2 * pad - k) / stride + 1, (x.w + 2 * pad - k) / stride + 1);
    let mut v = vec![0f64; out * h * wd];
    for o in 0..out {
        for oy in 0..h {
            for ox in 0..wd {
                let mut acc = 0f64;
                for c in 0..x.c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let y = (oy * stride + ky) as isize - pad as isize;
                            let xx = (ox * stride + kx) as isize - pad as isize;
                            acc += f64::from(w[((o * x.c + c) * k + ky) * k + kx]) * x.at(c, y, xx);
                        }
                    }
                }
                v[(o * h + oy) * wd + ox] = acc;
            }
        }
    }
    Map { c: out, h, w: wd, v }
}

/// Eval-mode `nn.BatchNorm2d`, written as PyTorch documents it.
fn batch_norm(x: Map, weights: &Weights) -> Map {
    let get = |name: &str| weights.values(name, &[x.c]).unwrap();
    let (g, b, m, var) = (get("weight"), get("bias"), get("running_mean"), get("running_var"));
    x.map(|c, v| (v - f64::from(m[c])) / (f64::from(var[c]) + 1e-5).sqrt() * f64::from(g[c]) + f64::from(b[c]))
}

fn relu(x: Map) -> Map {
    x.map(|_, v| v.max(0.0))
}

/// torchvision `BasicBlock.forward`.
fn basic_block(x: &Map, weights: &Weights, out: usize, stride: usize) -> Map {
    let y = relu(batch_norm(
        conv(x, &weights.pp("conv1"), out, 3, stride, 1),
        &weights.pp("bn1"),
    ));
    let y = batch_norm(conv(&y, &weights.pp("conv2"), out, 3, 1, 1), &weights.pp("bn2"));
    let identity = if stride != 1 || x.c != out {
        let ds = weights.pp("downsample");
        batch_norm(conv(x, &ds.pp(0), out, 1, stride, 0), &ds.pp(1))
    } else {
        Map { v: x.v.clone(), ..*x }
    };
    relu(y.add(&identity))
}

/// `SharedWeightsHyperNetResNet`'s backbone: conv1 → bn1 → PReLU → layer1..4, no max-pool.
fn reference_resnet34(x: Map, weights: &Weights) -> Map {
    let alpha = weights.pp("relu").values("weight", &[64]).unwrap();
    let x = batch_norm(conv(&x, &weights.pp("conv1"), 64, 7, 2, 3), &weights.pp("bn1"));
    let mut x = x.map(|c, v| if v >= 0.0 { v } else { f64::from(alpha[c]) * v });
    let mut index = 0;
    for (stage, (out, blocks)) in [(64, 3), (128, 4), (256, 6), (512, 3)].into_iter().enumerate() {
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            x = basic_block(&x, &weights.pp("body").pp(index), out, stride);
            index += 1;
        }
    }
    x
}

#[test]
fn resnet34_matches_float64_reference() {
    let device = Default::default();
    let fixture = Fixture::load("ffhq256");
    let store =
        WeightStore::from_tensors(resnet34_tensors(fixture.manifest.checkpoint("hyperstyle").unwrap(), "")).unwrap();
    let weights = store.root();
    let network = ResNet34::<B>::load(&weights, 6, &device).unwrap();

    // An odd, non-square size exercises the ⌈n/2⌉ rounding of every stride-2 layer: 45×38 →
    // 23×19 → 12×10 → 6×5 → 3×3.
    let (c, h, w) = (6, 45, 38);
    let input = pattern_values("test", "resnet34/input", c * h * w, 0.0, 0.5);
    let output = network
        .forward(Tensor::<B, 4>::from_data(
            TensorData::new(input.clone(), [1, c, h, w]),
            &device,
        ))
        .unwrap();
    let (shape, actual) = to_vec(output);
    assert_eq!(shape, [1, 512, 3, 3]);

    let reference = reference_resnet34(
        Map {
            c,
            h,
            w,
            v: input.iter().map(|&v| f64::from(v)).collect(),
        },
        &weights,
    );
    assert_eq!([reference.c, reference.h, reference.w], [512, 3, 3]);
    let expected: Vec<f32> = reference.v.iter().map(|&v| v as f32).collect();
    let stats = error_stats(&actual, &expected);
    println!("ResNet-34 vs float64 reference: {stats}");
    // float32 against float64 through 33 convolutions (fan-in up to 4608); the pattern weights
    // let activations grow to ~75. Measured: 7.2e-5 max-abs, i.e. 1e-6 of the largest value; we
    // allow 1e-5 of it. A wrong stride, padding, BatchNorm or activation changes the outputs by
    // a sizeable fraction of their range.
    assert!(stats.max_abs <= 1e-5 * stats.max_expected.max(1.0), "{stats}");
}
