//! A 16×16 generator built from the layer table with small random weights: the keys the layer
//! table names are exactly the keys the generator reads, and the checks on weights and inputs
//! are typed errors.

use burn::backend::Flex;
use burn::prelude::*;
use hyperstyle_core::{Error, WeightStore};
use hyperstyle_stylegan2::{Generator, GeneratorConfig, LayerKind, Noise, WeightOffsets};

type B = Flex;

/// A small config-f generator: 16×16 (512 channels at every resolution), style width 8, two
/// mapping layers.
fn config() -> GeneratorConfig {
    GeneratorConfig {
        size: 16,
        style_dim: 8,
        n_mlp: 2,
        channel_multiplier: 2,
        blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
        lr_mlp: 0.01,
    }
}

/// Deterministic values in [−0.5, 0.5).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32) / 1000.0 - 0.5)
        .collect()
}

/// Every tensor of the generator, keyed as a rosinality checkpoint keys it.
fn tensors(config: &GeneratorConfig) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let d = config.style_dim;
    let mut t = Vec::new();
    let mut add = |key: String, shape: Vec<usize>| {
        let n = shape.iter().product();
        let seed = t.len();
        t.push((key, shape, values(n, seed)));
    };
    for i in 1..=config.n_mlp {
        add(format!("style.{i}.weight"), vec![d, d]);
        add(format!("style.{i}.bias"), vec![d]);
    }
    add("input.input".into(), vec![1, config.channels(4), 4, 4]);
    for layer in config.layers() {
        let m = layer.module_key();
        let [o, i, k, _] = layer.weight_shape();
        add(format!("{m}.conv.weight"), vec![1, o, i, k, k]);
        add(format!("{m}.conv.modulation.weight"), vec![i, d]);
        add(format!("{m}.conv.modulation.bias"), vec![i]);
        match layer.kind {
            LayerKind::ToRgb => add(format!("{m}.bias"), vec![1, 3, 1, 1]),
            LayerKind::Conv | LayerKind::ConvUp => {
                add(format!("{m}.noise.weight"), vec![1]);
                add(format!("{m}.activate.bias"), vec![o]);
            }
        }
    }
    for i in 0..config.num_noise() {
        let r = config.noise_size(i);
        add(format!("noises.noise_{i}"), vec![1, 1, r, r]);
    }
    t
}

fn load(tensors: Vec<(String, Vec<usize>, Vec<f32>)>) -> Result<Generator<B>, Error> {
    let store = WeightStore::from_tensors(tensors)?;
    Generator::load(&store.root(), &config(), &Default::default())
}

#[test]
fn layer_table_keys_load_and_synthesise() {
    let config = config();
    let generator = load(tensors(&config)).unwrap();
    let device = Default::default();
    let latents = Tensor::<B, 3>::ones([2, config.n_latent(), config.style_dim], &device);
    let image = generator.synthesis(latents.clone(), &Noise::Stored, None).unwrap();
    assert_eq!(image.dims(), [2, 3, 16, 16]);
    let values = image.clone().into_data().to_vec::<f32>().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    // Zero offsets on every layer: the per-sample path gives the shared path's image.
    let offsets: WeightOffsets<B> = config
        .layers()
        .iter()
        .map(|l| {
            let [o, i, k, _] = l.weight_shape();
            Some(Tensor::zeros([2, o, i, k, k], &device))
        })
        .collect();
    let with = generator.synthesis(latents, &Noise::Stored, Some(&offsets)).unwrap();
    let diff = (with - image).abs().max().into_scalar();
    // Same function, different summation order: float32 rounding only.
    assert!(diff < 1e-5, "zero offsets changed the image by {diff}");
}

#[test]
fn missing_unexpected_and_misshapen_weights_are_errors() {
    let config = config();
    let mut missing = tensors(&config);
    missing.retain(|(k, _, _)| k != "to_rgbs.1.conv.weight");
    match load(missing) {
        Err(Error::MissingKey { key }) => assert_eq!(key, "to_rgbs.1.conv.weight"),
        other => panic!("expected a missing key, got {:?}", other.err()),
    }
    let mut extra = tensors(&config);
    extra.push(("convs.9.conv.weight".into(), vec![1], vec![0.0]));
    match load(extra) {
        Err(Error::UnexpectedKeys { keys, .. }) => assert_eq!(keys, ["convs.9.conv.weight"]),
        other => panic!("expected unexpected keys, got {:?}", other.err()),
    }
    let mut wrong = tensors(&config);
    let entry = wrong.iter_mut().find(|(k, _, _)| k == "convs.0.activate.bias").unwrap();
    *entry = (entry.0.clone(), vec![5], vec![0.0; 5]);
    match load(wrong) {
        Err(Error::ShapeMismatch { key, expected, found }) => {
            assert_eq!(
                (key.as_str(), expected, found),
                ("convs.0.activate.bias", vec![512], vec![5])
            )
        }
        other => panic!("expected a shape mismatch, got {:?}", other.err()),
    }
    let mut bad = config.clone();
    bad.size = 12;
    assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
}
