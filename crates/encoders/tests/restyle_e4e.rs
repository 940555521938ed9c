//! ReStyle-e4e encoders of both classes: output shape, determinism, batch independence.
//! (Parity of the IR-SE-50 class with upstream is in the workspace's `tests/encoder_parity.rs`.)

mod common;

use common::{max_abs_diff, restyle_input, restyle_resnet_store, B};
use hyperstyle_encoders::{EncoderType, ReStyleEncoder};
use hyperstyle_testing::{pattern_store, Fixture};

/// Shape `[2, 18, 512]`; the same input twice gives bit-identical codes; a batch of two gives
/// each sample's codes alone.
fn check_encoder(encoder: &ReStyleEncoder<B>) {
    let device = Default::default();
    let x = restyle_input::<B>(&device);
    let batched = encoder.forward(x.clone()).unwrap();
    assert_eq!(batched.dims(), [2, 18, 512]);
    assert!(batched.clone().is_finite().all().into_scalar(), "non-finite codes");

    let first = x.clone().narrow(0, 0, 1);
    let alone = encoder.forward(first.clone()).unwrap();
    let again = encoder.forward(first).unwrap();
    assert_eq!(
        alone.clone().into_data(),
        again.into_data(),
        "forward is not deterministic"
    );
    let second = encoder.forward(x.narrow(0, 1, 1)).unwrap();
    for (i, single) in [alone, second].into_iter().enumerate() {
        let diff = max_abs_diff(batched.clone().narrow(0, i, 1), single);
        println!(
            "{}: sample {i}, batch of 2 vs alone: max-abs {diff:.3e}",
            encoder.encoder_type()
        );
        // Bit-identical on flex (measured 0). The bound only allows for a backend whose batched
        // matrix products round in another order; anything beyond float32 rounding (codes are
        // O(1)) would mean the samples interact.
        assert!(diff <= 1e-6, "sample {i} depends on the batch: {diff:e}");
    }
}

#[test]
fn progressive_backbone_encoder_ir_se50() {
    let device = Default::default();
    let fixture = Fixture::load("ffhq1024");
    let store = pattern_store(fixture.manifest.checkpoint("restyle_e4e").unwrap(), &["encoder."]);
    let weights = store.scope("encoder.");
    let encoder_type: EncoderType = "ProgressiveBackboneEncoder".parse().unwrap();
    assert_eq!(EncoderType::detect(&weights).unwrap(), encoder_type);
    let encoder = ReStyleEncoder::<B>::load(&weights, encoder_type, 6, 18, &device).unwrap();
    assert_eq!(encoder.encoder_type(), EncoderType::ProgressiveBackbone);
    check_encoder(&encoder);
}

#[test]
fn resnet_progressive_backbone_encoder() {
    let device = Default::default();
    let store = restyle_resnet_store();
    let weights = store.scope("encoder.");
    let encoder_type: EncoderType = "ResNetProgressiveBackboneEncoder".parse().unwrap();
    assert_eq!(EncoderType::detect(&weights).unwrap(), encoder_type);
    let encoder = ReStyleEncoder::<B>::load(&weights, encoder_type, 6, 18, &device).unwrap();
    assert_eq!(encoder.encoder_type(), EncoderType::ResNetProgressiveBackbone);
    check_encoder(&encoder);
}

/// Row 0 is `w0`; every other row is `w0 + delta_i`, so with the deltas' heads given the same
/// weights as head 0 every row i ≥ 1 equals exactly `2·w0`.
#[test]
fn rows_are_w0_plus_deltas() {
    let device = Default::default();
    let fixture = Fixture::load("ffhq1024");
    let checkpoint = fixture.manifest.checkpoint("restyle_e4e").unwrap();
    let mut tensors = common::rekeyed(checkpoint, "encoder.", "encoder.");
    tensors.retain(|(key, _, _)| !key.starts_with("encoder.styles."));
    let head0 = common::rekeyed(checkpoint, "encoder.styles.0.", "");
    for i in 0..3 {
        tensors.extend(
            head0
                .iter()
                .map(|(key, shape, values)| (format!("encoder.styles.{i}.{key}"), shape.clone(), values.clone())),
        );
    }
    let store = hyperstyle_core::WeightStore::from_tensors(tensors).unwrap();
    let encoder = ReStyleEncoder::<B>::load(
        &store.scope("encoder."),
        EncoderType::ProgressiveBackbone,
        6,
        3,
        &device,
    )
    .unwrap();
    // A small input keeps this quick: 64×64 → a 4×4 map, which the heads reduce to 1×1 as well.
    let x = restyle_input::<B>(&device)
        .narrow(0, 0, 1)
        .narrow(2, 96, 64)
        .narrow(3, 96, 64);
    let codes = encoder.forward(x).unwrap();
    assert_eq!(codes.dims(), [1, 3, 512]);
    let w0 = codes.clone().narrow(1, 0, 1);
    for i in 1..3 {
        let row = codes.clone().narrow(1, i, 1);
        assert_eq!(row.into_data(), w0.clone().mul_scalar(2.0).into_data(), "row {i}");
    }
}
