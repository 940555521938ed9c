//! Every metric against the original implementation's output on the fixture pairs (goldens made
//! by tests/fixtures/make_goldens.py). Each tolerance is justified by the noise floor: the
//! distance between upstream's own float32 and float64 runs, printed next to our error.

mod common;

use common::{check, golden_tensor, pairs, store, values, B};
use hyperstyle_metrics::{l2, IdSimilarity, Lpips, MsSsim};

#[test]
fn l2_matches_upstream() {
    let (a, b) = pairs();
    let ours = values(l2(a, b).unwrap());
    // Floor: 3.7e-10 on values ~5e-3 (a mean of 196 608 squares in float32); only the order of
    // the summation differs. Measured 9.3e-10 (2.5× the floor).
    check("l2", &ours, 2e-9);
}

#[test]
fn ms_ssim_matches_upstream() {
    let (a, b) = pairs();
    let metric = MsSsim::new();
    // Floors 3.3e-7 ([-1, 1]), 1.2e-6 ([0, 1]) and 7.0e-7 ([0, 255]): the variances are
    // E[x²] − E[x]² in float32, which cancels, and our convolution sums the window in another
    // order. Measured 8.3e-7, 1.6e-6 and 1.7e-6 (at most 2.5× the floor).
    check("msssim", &values(metric.forward(a.clone(), b.clone()).unwrap()), 2e-6);
    let unit = |x: burn::tensor::Tensor<B, 4>| x.add_scalar(1.0).div_scalar(2.0);
    check(
        "msssim_unit",
        &values(metric.forward(unit(a.clone()), unit(b.clone())).unwrap()),
        4e-6,
    );
    let bytes = |x: burn::tensor::Tensor<B, 4>| x.add_scalar(1.0).mul_scalar(127.5);
    check("msssim_255", &values(metric.forward(bytes(a), bytes(b)).unwrap()), 4e-6);
    // 64×64: windows of 11, 11, 11, 8 and 4 pixels. Floor 2.6e-8; measured 0 (bit-exact).
    let small = metric
        .forward(golden_tensor("small_a"), golden_tensor("small_b"))
        .unwrap();
    check("msssim_small", &values(small), 2e-7);
}

#[test]
fn lpips_matches_upstream() {
    let device = Default::default();
    let (alexnet, linear) = (store("alexnet"), store("lpips"));
    let lpips = Lpips::<B>::load(&alexnet.root(), &linear.root(), &device).unwrap();
    let (a, b) = pairs();
    // Floor: 8.8e-10 on distances ~1e-2 (4.6e-10 per level); AlexNet's convolutions accumulate
    // in another order. Measured 9.3e-10 (distances), 7.0e-10 (levels), 0 (batch mean).
    check("lpips", &values(lpips.forward(a.clone(), b.clone()).unwrap()), 5e-9);
    check(
        "lpips_layers",
        &values(lpips.layers(a.clone(), b.clone()).unwrap()),
        5e-9,
    );
    check("lpips_batch", &values(lpips.loss(a, b).unwrap()), 5e-9);
}

#[test]
fn id_similarity_matches_upstream() {
    let device = Default::default();
    let weights = store("arcface");
    let id = IdSimilarity::<B>::load(&weights.root(), &device).unwrap();
    let (a, b) = pairs();
    // Floor: 1.6e-7 max-abs on unit embeddings (values ~0.05): 24 IR-SE units in float32, with
    // our BatchNorms folded into the convolutions. Measured 2.4e-7 (1.5× the floor).
    check("id_features_a", &values(id.features(a.clone()).unwrap()), 1e-6);
    check("id_features_b", &values(id.features(b.clone()).unwrap()), 1e-6);
    // Floor: 6.5e-8 on similarities ~0.99; measured 1.2e-7 (one float32 ulp at 0.99 is 6e-8).
    check(
        "id_similarity",
        &values(id.forward(a.clone(), b.clone()).unwrap()),
        5e-7,
    );
    // IDLoss.forward(y_hat = b, y = a): mean(1 − similarity).
    // Floor 2.1e-8; measured 4.0e-8.
    check("id_loss", &values(id.loss(b, a).unwrap()), 5e-7);
}
