//! Helpers shared by the metric tests: the fixture image pairs, pattern weights and goldens.

#![allow(dead_code)]

use std::path::PathBuf;

use burn::prelude::*;
use hyperstyle_core::WeightStore;
use hyperstyle_testing::{pattern_store, Manifest};

pub type B = burn::backend::Flex;

/// `crates/metrics/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The pattern-weight manifest of the three networks.
pub fn manifest() -> Manifest {
    Manifest::load(fixture("metrics_manifest.json")).expect("metrics manifest")
}

/// Pattern weights of checkpoint `name` (`alexnet`, `lpips`, `arcface`) under their file keys.
pub fn store(name: &str) -> WeightStore {
    pattern_store(manifest().checkpoint(name).expect("fixture checkpoint"), &[""])
}

/// A golden tensor as f64 values (F32 or F64 in the file), with its shape.
pub fn golden(name: &str) -> (Vec<usize>, Vec<f64>) {
    golden_in(METRICS_GOLDEN, name)
}

/// The golden file of the metrics (LPIPS, MS-SSIM, ArcFace).
pub const METRICS_GOLDEN: &str = "metrics_golden.safetensors";

/// Golden tensor `name` of fixture file `file` as `(shape, values)`.
pub fn golden_in(file: &str, name: &str) -> (Vec<usize>, Vec<f64>) {
    hyperstyle_testing::read_f64(fixture(file), name)
}

/// A golden tensor as an f32 Burn tensor.
pub fn golden_tensor<const D: usize>(name: &str) -> Tensor<B, D> {
    golden_tensor_in(METRICS_GOLDEN, name)
}

/// Golden tensor `name` of fixture file `file` as an f32 Burn tensor.
pub fn golden_tensor_in<const D: usize>(file: &str, name: &str) -> Tensor<B, D> {
    let (shape, values) = golden_in(file, name);
    let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// A fixture PNG as upstream's transform makes it: `(v/255 − 0.5)/0.5` in float32, `[1, 3, h, w]`.
pub fn load_png(name: &str) -> Tensor<B, 4> {
    let image = image::open(fixture(name)).expect("fixture png").to_rgb8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut values = vec![0f32; 3 * h * w];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            values[c * h * w + i] = (f32::from(pixel.0[c]) / 255.0 - 0.5) / 0.5;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 3, h, w]), &Default::default())
}

/// The three fixture pairs as two batches `[3, 3, 256, 256]` (originals, distorted copies).
pub fn pairs() -> (Tensor<B, 4>, Tensor<B, 4>) {
    let side = |s: &str| Tensor::cat((0..3).map(|k| load_png(&format!("pair{k}_{s}.png"))).collect(), 0);
    (side("a"), side("b"))
}

/// Row-major f64 values of a tensor.
pub fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .to_vec::<f32>()
        .expect("f32 tensor")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// (max-abs, mean-abs) of `a − b`.
pub fn diff(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    let max = d.iter().copied().fold(0.0, f64::max);
    (max, d.iter().sum::<f64>() / d.len() as f64)
}

/// Compares `ours` with golden `name` (float32 run) within `max_tol` max-abs, printing the
/// error and the golden's own float32-vs-float64 error (`name_f64`), the noise floor.
pub fn check(name: &str, ours: &[f64], max_tol: f64) {
    check_in(METRICS_GOLDEN, name, ours, max_tol);
}

/// [`check`] against golden `name` of fixture file `file`.
pub fn check_in(file: &str, name: &str, ours: &[f64], max_tol: f64) {
    let (_, expected) = golden_in(file, name);
    let (_, expected64) = golden_in(file, &format!("{name}_f64"));
    let (max, mean) = diff(ours, &expected);
    let (floor_max, floor_mean) = diff(&expected, &expected64);
    let (max64, _) = diff(ours, &expected64);
    println!(
        "{name}: vs upstream f32 max-abs {max:.2e} mean-abs {mean:.2e}; vs f64 max-abs {max64:.2e}; \
         upstream f32-vs-f64 floor max-abs {floor_max:.2e} mean-abs {floor_mean:.2e}; tolerance {max_tol:.1e}"
    );
    assert!(
        max <= max_tol,
        "{name}: max-abs {max:.3e} (mean-abs {mean:.3e}) exceeds {max_tol:.1e}\n  ours     {ours:?}\n  upstream {expected:?}"
    );
}
