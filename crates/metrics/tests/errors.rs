//! Bad inputs and bad weight files are typed errors, never panics.

mod common;

use burn::prelude::*;
use common::{manifest, store, B};
use hyperstyle_core::WeightStore;
use hyperstyle_metrics::{l2, ArcFace, Error, IdSimilarity, Lpips, MsSsim};
use hyperstyle_testing::NamedTensor;

fn zeros(shape: [usize; 4]) -> Tensor<B, 4> {
    Tensor::zeros(shape, &Default::default())
}

fn invalid_input<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    match result {
        Err(Error::InvalidInput(message)) => println!("{what}: {message}"),
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

/// The pattern tensors of checkpoint `name`, under their file keys.
fn tensors(name: &str) -> Vec<NamedTensor> {
    manifest().checkpoint(name).unwrap().pattern_tensors("").unwrap()
}

#[test]
fn image_shapes_are_checked() {
    let metric = MsSsim::new();
    invalid_input("l2 shapes differ", l2(zeros([1, 3, 32, 32]), zeros([1, 3, 32, 16])));
    invalid_input("l2 grey", l2(zeros([1, 1, 32, 32]), zeros([1, 1, 32, 32])));
    invalid_input("l2 empty batch", l2(zeros([0, 3, 32, 32]), zeros([0, 3, 32, 32])));
    invalid_input(
        "ms-ssim too small",
        metric.forward(zeros([1, 3, 15, 64]), zeros([1, 3, 15, 64])),
    );
    invalid_input(
        "ms-ssim batches",
        metric.forward(zeros([2, 3, 64, 64]), zeros([1, 3, 64, 64])),
    );
    // 16 pixels is enough: the last scale has one pixel; identical images score 1.
    let x = Tensor::<B, 4>::random([1, 3, 16, 16], burn::tensor::Distribution::Default, &Default::default());
    let same = metric.forward(x.clone(), x).unwrap().into_scalar();
    assert!((same - 1.0).abs() < 1e-5, "{same}");

    let device = Default::default();
    let (alexnet, linear) = (store("alexnet"), store("lpips"));
    let lpips = Lpips::<B>::load(&alexnet.root(), &linear.root(), &device).unwrap();
    invalid_input(
        "lpips too small",
        lpips.forward(zeros([1, 3, 30, 64]), zeros([1, 3, 30, 64])),
    );
    invalid_input(
        "lpips shapes differ",
        lpips.forward(zeros([1, 3, 64, 64]), zeros([2, 3, 64, 64])),
    );
    let weights = store("arcface");
    let id = IdSimilarity::<B>::load(&weights.root(), &device).unwrap();
    invalid_input(
        "id too small for the crop",
        id.forward(zeros([1, 3, 222, 256]), zeros([1, 3, 222, 256])),
    );
    invalid_input("arcface not 112", id.arcface().forward(zeros([1, 3, 128, 128])));
}

#[test]
fn weight_files_are_checked() {
    let device: Device<B> = Default::default();
    let linear = store("lpips");

    // A missing tensor names its key.
    let mut alexnet = tensors("alexnet");
    alexnet.retain(|(key, _, _)| key != "features.6.bias");
    let alexnet = WeightStore::from_tensors(alexnet).unwrap();
    match Lpips::<B>::load(&alexnet.root(), &linear.root(), &device) {
        Err(Error::MissingKey { key }) => assert_eq!(key, "features.6.bias"),
        other => panic!("expected MissingKey, got {other:?}"),
    }

    // A wrong shape (a VGG conv where AlexNet's first is) names key and shapes.
    let mut alexnet = tensors("alexnet");
    alexnet.retain(|(key, _, _)| key != "features.0.weight");
    alexnet.push(("features.0.weight".into(), vec![64, 3, 3, 3], vec![0.0; 64 * 27]));
    let alexnet = WeightStore::from_tensors(alexnet).unwrap();
    match Lpips::<B>::load(&alexnet.root(), &linear.root(), &device) {
        Err(Error::ShapeMismatch { key, expected, found }) => {
            assert_eq!(
                (key.as_str(), expected, found),
                ("features.0.weight", vec![64, 3, 11, 11], vec![64, 3, 3, 3])
            )
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }

    // torchvision's full AlexNet (with its classifier) loads; any other extra tensor is refused.
    let mut full = tensors("alexnet");
    for (i, shape) in [(1, vec![4096, 9216]), (4, vec![4096, 4096]), (6, vec![1000, 4096])] {
        let n = shape[0];
        full.push((
            format!("classifier.{i}.weight"),
            shape.clone(),
            vec![0.0; shape.iter().product()],
        ));
        full.push((format!("classifier.{i}.bias"), vec![n], vec![0.0; n]));
    }
    let full_store = WeightStore::from_tensors(full.clone()).unwrap();
    Lpips::<B>::load(&full_store.root(), &linear.root(), &device).unwrap();
    full.push(("features.12.weight".into(), vec![1], vec![0.0]));
    let extra = WeightStore::from_tensors(full).unwrap();
    assert!(matches!(
        Lpips::<B>::load(&extra.root(), &linear.root(), &device),
        Err(Error::UnexpectedKeys { .. })
    ));

    // The linear layers' file: the renamed keys upstream uses in memory are not the file's.
    let renamed: Vec<NamedTensor> = tensors("lpips")
        .into_iter()
        .map(|(k, s, v)| (k.replace("lin", "").replace("model.", ""), s, v))
        .collect();
    let renamed = WeightStore::from_tensors(renamed).unwrap();
    let alexnet = store("alexnet");
    match Lpips::<B>::load(&alexnet.root(), &renamed.root(), &device) {
        Err(Error::MissingKey { key }) => assert_eq!(key, "lin0.model.1.weight"),
        other => panic!("expected MissingKey, got {other:?}"),
    }

    // ArcFace: the W encoder's backbone alone (no output layer) is not a face recognizer.
    let mut backbone = tensors("arcface");
    backbone.retain(|(key, _, _)| !key.starts_with("output_layer."));
    let backbone = WeightStore::from_tensors(backbone).unwrap();
    match ArcFace::<B>::load(&backbone.root(), &device) {
        Err(Error::MissingKey { key }) => assert!(key.starts_with("output_layer."), "{key}"),
        other => panic!("expected MissingKey, got {other:?}"),
    }
    // An input size of 224 (a 14×14 final map) is another network.
    let mut wide = tensors("arcface");
    wide.retain(|(key, _, _)| key != "output_layer.3.weight");
    wide.push((
        "output_layer.3.weight".into(),
        vec![512, 512 * 14 * 14],
        vec![0.0; 512 * 512 * 196],
    ));
    let wide = WeightStore::from_tensors(wide).unwrap();
    assert!(matches!(
        ArcFace::<B>::load(&wide.root(), &device),
        Err(Error::ShapeMismatch { .. })
    ));
    // NaN in a weight is refused by name.
    let mut nan = tensors("arcface");
    let bias = nan.iter_mut().find(|(key, _, _)| key == "output_layer.3.bias").unwrap();
    bias.2[3] = f32::NAN;
    let nan = WeightStore::from_tensors(nan).unwrap();
    assert!(matches!(
        ArcFace::<B>::load(&nan.root(), &device),
        Err(Error::NonFinite { index: 3, .. })
    ));
}
