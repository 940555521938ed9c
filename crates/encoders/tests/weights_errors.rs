//! Bad weights and bad inputs give typed errors naming what is wrong, never a panic.

mod common;

use burn::prelude::*;
use common::{restyle_resnet_store, w_encoder_tensors, B};
use hyperstyle_core::WeightStore;
use hyperstyle_encoders::{EncoderType, Error, LatentAverage, ReStyleEncoder, WEncoder};
use hyperstyle_testing::NamedTensor;

fn load_w_encoder(tensors: Vec<NamedTensor>) -> Result<WEncoder<B>, Error> {
    let store = WeightStore::from_tensors(tensors).unwrap();
    WEncoder::load(&store.scope("encoder."), 18, &Default::default())
}

#[test]
fn complete_weights_load_and_batch_norm_counters_are_ignored() {
    let mut tensors = w_encoder_tensors();
    // Real checkpoints carry BatchNorm's `num_batches_tracked` (the fixtures leave it out).
    tensors.push(("encoder.input_layer.1.num_batches_tracked".into(), vec![], vec![0.0]));
    tensors.push((
        "encoder.body.3.shortcut_layer.1.num_batches_tracked".into(),
        vec![],
        vec![0.0],
    ));
    assert_eq!(load_w_encoder(tensors).unwrap().n_styles(), 18);
}

#[test]
fn missing_key() {
    let mut tensors = w_encoder_tensors();
    tensors.retain(|(key, _, _)| key != "encoder.body.21.shortcut_layer.1.running_var");
    match load_w_encoder(tensors) {
        Err(Error::MissingKey { key }) => {
            assert_eq!(key, "encoder.body.21.shortcut_layer.1.running_var")
        }
        other => panic!("expected a missing-key error, got {other:?}"),
    }
}

#[test]
fn wrong_shape() {
    let mut tensors = w_encoder_tensors();
    let entry = tensors
        .iter_mut()
        .find(|(key, _, _)| key == "encoder.body.7.res_layer.1.weight")
        .unwrap();
    // A 3×3 kernel stored as 1×9.
    entry.1 = vec![256, 128, 1, 9];
    let err = load_w_encoder(tensors).unwrap_err();
    match &err {
        Error::ShapeMismatch { key, expected, found } => {
            assert_eq!(key, "encoder.body.7.res_layer.1.weight");
            assert_eq!(expected, &[256, 128, 3, 3]);
            assert_eq!(found, &[256, 128, 1, 9]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("encoder.body.7.res_layer.1.weight") && message.contains("[256, 128, 3, 3]"),
        "{message}"
    );
}

#[test]
fn unexpected_key() {
    let mut tensors = w_encoder_tensors();
    // A 25th unit: e.g. an IR-SE-100 checkpoint given to the 50-layer encoder.
    tensors.push(("encoder.body.24.res_layer.2.weight".into(), vec![512], vec![0.25; 512]));
    match load_w_encoder(tensors) {
        Err(Error::UnexpectedKeys { prefix, keys }) => {
            assert_eq!(prefix, "encoder.");
            assert_eq!(keys, ["encoder.body.24.res_layer.2.weight"]);
        }
        other => panic!("expected an unexpected-keys error, got {other:?}"),
    }
}

#[test]
fn unknown_encoder_type() {
    match "GradualStyleEncoder".parse::<EncoderType>() {
        Err(Error::Unknown { name, .. }) => assert_eq!(name, "GradualStyleEncoder"),
        other => panic!("expected an unknown-encoder error, got {other:?}"),
    }
    let store = WeightStore::from_tensors(w_encoder_tensors()).unwrap();
    assert!(matches!(
        EncoderType::detect(&store.scope("decoder.")),
        Err(Error::InvalidFile { .. })
    ));
}

/// A ReStyle checkpoint of one class loaded as the other fails on the first missing stem key.
#[test]
fn wrong_encoder_class() {
    let store = restyle_resnet_store();
    let err = ReStyleEncoder::<B>::load(
        &store.scope("encoder."),
        EncoderType::ProgressiveBackbone,
        6,
        18,
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::MissingKey { key } if key == "encoder.input_layer.0.weight"),
        "{err:?}"
    );
}

#[test]
fn latent_avg_shapes() {
    let device = Default::default();
    let row: Vec<f32> = (0..512).map(|i| i as f32 / 512.0).collect();
    let store = WeightStore::from_tensors([
        ("flat".to_string(), vec![512], row.clone()),
        ("repeated".to_string(), vec![18, 512], row.repeat(18)),
        ("odd".to_string(), vec![14, 512], row.repeat(14)),
    ])
    .unwrap();
    let weights = store.root();
    // `(512,)` and `(18, 512)` holding the same row add the same values to every style row.
    let flat = LatentAverage::<B>::load(&weights, "flat", 18, &device).unwrap();
    let repeated = LatentAverage::<B>::load(&weights, "repeated", 18, &device).unwrap();
    assert_eq!(
        flat.codes(2, 18).unwrap().into_data(),
        repeated.codes(2, 18).unwrap().into_data()
    );
    match LatentAverage::<B>::load(&weights, "odd", 18, &device) {
        Err(Error::ShapeMismatch { key, expected, found }) => {
            assert_eq!((key.as_str(), expected, found), ("odd", vec![18, 512], vec![14, 512]));
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert!(matches!(
        LatentAverage::<B>::load(&weights, "latent_avg", 18, &device),
        Err(Error::MissingKey { .. })
    ));
    // 18 rows cannot be added to 14-row codes.
    assert!(matches!(
        repeated.add_to(Tensor::zeros([1, 14, 512], &device)),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn bad_inputs() {
    let device = Default::default();
    let encoder = load_w_encoder(w_encoder_tensors()).unwrap();
    // The W encoder takes RGB only.
    assert!(matches!(
        encoder.forward(Tensor::zeros([1, 6, 32, 32], &device)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        encoder.forward(Tensor::zeros([0, 3, 32, 32], &device)),
        Err(Error::InvalidInput(_))
    ));
    // Any size the strided convs accept works, odd ones included.
    assert_eq!(
        encoder.forward(Tensor::zeros([1, 3, 37, 21], &device)).unwrap().dims(),
        [1, 18, 512]
    );
    assert!(matches!(
        WeightStore::from_tensors(w_encoder_tensors())
            .map(|s| WEncoder::<B>::load(&s.scope("encoder."), 0, &device).map(|_| ())),
        Ok(Err(Error::InvalidConfig(_)))
    ));

    // ReStyle's heads end in `view(-1, 512)`: a map larger than 16×16 (input > 256) is refused.
    let store = restyle_resnet_store();
    let restyle = ReStyleEncoder::<B>::load(
        &store.scope("encoder."),
        EncoderType::ResNetProgressiveBackbone,
        6,
        18,
        &device,
    )
    .unwrap();
    assert!(matches!(
        restyle.forward(Tensor::zeros([1, 6, 272, 64], &device)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        restyle.forward(Tensor::zeros([1, 3, 64, 64], &device)),
        Err(Error::InvalidInput(_))
    ));
}
