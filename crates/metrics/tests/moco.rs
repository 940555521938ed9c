//! MoCo v2 similarity against the original `MocoLoss` over torchvision's ResNet-50, both with
//! the pattern weights of `fixtures/moco_manifest.json` (goldens made by
//! `fixtures/make_moco_goldens.py`), forward and backward, plus its typed errors. Each tolerance
//! is justified by the noise floor: the distance between upstream's own float32 and float64
//! runs, printed next to our error.

mod common;

use burn::backend::Autodiff;
use burn::prelude::*;
use common::{fixture, pairs, values, B};
use hyperstyle_core::WeightStore;
use hyperstyle_metrics::moco::resize_nearest;
use hyperstyle_metrics::{Error, MocoFeatures, MocoSimilarity};
use hyperstyle_testing::{Manifest, NamedTensor};

/// The pattern tensors of the ResNet-50, under torchvision's key names.
fn tensors() -> Vec<NamedTensor> {
    let manifest = Manifest::load(fixture("moco_manifest.json")).expect("moco manifest");
    manifest.checkpoint("moco").unwrap().pattern_tensors("").unwrap()
}

fn store() -> WeightStore {
    WeightStore::from_tensors(tensors()).unwrap()
}

/// The MoCo golden file.
const GOLDEN: &str = "moco_golden.safetensors";

fn golden(name: &str) -> Vec<f64> {
    common::golden_in(GOLDEN, name).1
}

fn golden_tensor(name: &str) -> Tensor<B, 4> {
    common::golden_tensor_in(GOLDEN, name)
}

fn check(name: &str, ours: &[f64], max_tol: f64) {
    common::check_in(GOLDEN, name, ours, max_tol);
}

#[test]
fn moco_similarity_matches_upstream() {
    let device = Default::default();
    let weights = store();
    let moco = MocoSimilarity::<B>::load(&weights.root(), &device).unwrap();
    let (a, b) = pairs();
    // Floor: 3.1e-8 max-abs on unit features (largest entries ~0.1): 53 convolutions in float32;
    // ours fold each BatchNorm into its convolution and sum in another order. Measured 4.8e-8
    // and 4.5e-8 (1.5× the floor).
    check("moco_features_a", &values(moco.features(a.clone()).unwrap()), 3e-7);
    check("moco_features_b", &values(moco.features(b.clone()).unwrap()), 3e-7);
    // Cars: the 192×256 content rows, resampled to 224×224 (rows and columns at different
    // scales). Floor 2.9e-8; measured 4.5e-8.
    let cars = a.clone().slice(s![.., .., 32..224, ..]);
    check("moco_features_cars", &values(moco.features(cars).unwrap()), 3e-7);
    // Floor 1.1e-7 on similarities ~0.9996 (one float32 ulp there is 6e-8); measured 1.8e-7.
    check(
        "moco_similarity",
        &values(moco.forward(a.clone(), b.clone()).unwrap()),
        5e-7,
    );
    // MocoLoss.forward(y_hat = b, y = a, x = a)[0]: mean(1 − similarity). Floor 2.0e-8 on 3.4e-4;
    // measured 6.0e-8 (one ulp of the similarities it is computed from).
    check("moco_loss", &values(moco.loss(b, a).unwrap()), 5e-7);
    // The trunk alone on a 64×64 input (a 2×2 last stage), unnormalised features up to ~1.
    // Floor 4.7e-7; measured 8.3e-7.
    let small = golden_tensor("small_input");
    check(
        "moco_trunk_small",
        &values(moco.network().forward(small).unwrap()),
        4e-6,
    );
}

#[test]
fn moco_gradient_matches_upstream() {
    type A = Autodiff<B>;
    let device = Default::default();
    let weights = store();
    let moco = MocoSimilarity::<A>::load(&weights.root(), &device).unwrap();
    let (a, b) = pairs();
    let to_autodiff = |x: Tensor<B, 4>| Tensor::<A, 4>::from_data(x.into_data(), &device);
    let y_hat = to_autodiff(b).require_grad();
    let loss = moco.loss(y_hat.clone(), to_autodiff(a)).unwrap();
    let grads = loss.backward();
    let grad = y_hat.grad(&grads).expect("a gradient for y_hat");
    let grad = values(grad);
    // Summed in float64 here; upstream sums its float32 gradient in float32, which is where most
    // of the floor (8.0e-7 on the absolute sum 0.062) comes from. Measured 2.2e-7.
    let sums = [grad.iter().sum::<f64>(), grad.iter().map(|g| g.abs()).sum::<f64>()];
    check("moco_grad_sums", &sums, 2e-6);
    // One row of the first image's red channel (the row with the most non-zero entries; nearest
    // resampling leaves every eighth row and column without gradient). Floor 8.5e-11 on entries
    // up to 6.6e-6 (1.3e-5 relative): the gradient of 1 − cos through 53 convolutions.
    // Measured 7.5e-11.
    let row = golden("moco_grad_row_index")[0] as usize;
    check("moco_grad_row", &grad[row * 256..(row + 1) * 256], 5e-10);
}

#[test]
fn nearest_resize_matches_pytorch_indices() {
    // F.interpolate(x, size=224) on 256 rows takes rows ⌊i · 256/224⌋: 0, 1, …, 6, 8, 9, …
    let x = Tensor::<B, 1, Int>::arange(0..256, &Default::default())
        .float()
        .reshape([1, 1, 256, 1]);
    let rows: Vec<f64> = values(resize_nearest(x.clone(), 224, 1));
    let expected: Vec<f64> = (0..224).map(|i| (i * 8 / 7) as f64).collect();
    assert_eq!(rows, expected);
    // Upsampling 192 → 224 repeats rows; doubling takes i / 2; the same size is a copy.
    let rows = values(resize_nearest(x.clone().narrow(2, 0, 192), 224, 1));
    assert_eq!(&rows[..8], &[0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(rows[223], 191.0);
    let doubled = values(resize_nearest(x.clone().narrow(2, 0, 4), 8, 1));
    assert_eq!(doubled, [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
    assert_eq!(values(resize_nearest(x.clone(), 256, 1)), values(x));
}

fn invalid_input<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    match result {
        Err(Error::InvalidInput(message)) => println!("{what}: {message}"),
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn moco_weights_and_inputs_are_checked() {
    let device: Device<B> = Default::default();
    // A real checkpoint's integer `num_batches_tracked` buffers are accepted.
    let mut with_counters = tensors();
    with_counters.push(("bn1.num_batches_tracked".into(), vec![], vec![0.0]));
    with_counters.push(("layer3.0.downsample.1.num_batches_tracked".into(), vec![], vec![0.0]));
    let store = WeightStore::from_tensors(with_counters).unwrap();
    let moco = MocoSimilarity::<B>::load(&store.root(), &device).unwrap();

    // The classifier is not part of the loss network: a file with `fc.*` is the wrong file.
    let mut with_fc = tensors();
    with_fc.push(("fc.weight".into(), vec![1000, 2048], vec![0.0; 1000 * 2048]));
    let store = WeightStore::from_tensors(with_fc).unwrap();
    match MocoFeatures::<B>::load(&store.root(), &device) {
        Err(Error::UnexpectedKeys { keys, .. }) => assert!(keys.iter().any(|k| k == "fc.weight"), "{keys:?}"),
        other => panic!("expected UnexpectedKeys, got {other:?}"),
    }

    // A missing tensor names its key.
    let mut missing = tensors();
    missing.retain(|(key, _, _)| key != "layer2.0.downsample.1.running_var");
    let store = WeightStore::from_tensors(missing).unwrap();
    match MocoFeatures::<B>::load(&store.root(), &device) {
        Err(Error::MissingKey { key }) => assert_eq!(key, "layer2.0.downsample.1.running_var"),
        other => panic!("expected MissingKey, got {other:?}"),
    }

    // A wrong shape (a ResNet-34 3×3 conv where ResNet-50's 1×1 is) names the key.
    let mut wrong = tensors();
    for (key, shape, values) in &mut wrong {
        if key == "layer1.0.conv1.weight" {
            *shape = vec![64, 64, 3, 3];
            *values = vec![0.0; 64 * 64 * 9];
        }
    }
    let store = WeightStore::from_tensors(wrong).unwrap();
    match MocoFeatures::<B>::load(&store.root(), &device) {
        Err(Error::ShapeMismatch { key, .. }) => assert_eq!(key, "layer1.0.conv1.weight"),
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }

    let zeros = |shape: [usize; 4]| Tensor::<B, 4>::zeros(shape, &device);
    invalid_input("grey images", moco.features(zeros([1, 1, 64, 64])));
    invalid_input("empty batch", moco.features(zeros([0, 3, 64, 64])));
    invalid_input(
        "pair shapes",
        moco.forward(zeros([1, 3, 64, 64]), zeros([2, 3, 64, 64])),
    );
    invalid_input("loss shapes", moco.loss(zeros([1, 3, 64, 64]), zeros([1, 3, 64, 32])));
    invalid_input("trunk too small", moco.network().forward(zeros([1, 3, 31, 64])));
}
