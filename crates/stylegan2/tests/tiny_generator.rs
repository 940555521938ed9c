//! A 16×16 generator built from the layer table with small random weights: the keys the layer
//! table names are exactly the keys the generator reads, and the checks on weights and inputs
//! are typed errors.

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::Distribution;
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

/// The generator written back as checkpoint tensors has exactly the checkpoint's keys and
/// shapes; with one sample's offsets folded in, the plain generator it loads into renders that
/// sample as the original does with the offsets.
#[test]
fn checkpoint_tensors_round_trip_with_offsets_folded_in() {
    let config = config();
    let original = tensors(&config);
    let generator = load(original.clone()).unwrap();
    let exported = generator.checkpoint_tensors(None).unwrap();
    let shapes = |t: &[(String, Vec<usize>, Vec<f32>)]| {
        let mut s: Vec<(String, Vec<usize>)> = t.iter().map(|(k, s, _)| (k.clone(), s.clone())).collect();
        s.sort();
        s
    };
    // The FIR kernels the generator made from its taps (this checkpoint has none) are written
    // out, as rosinality checkpoints store them: outer([1, 3, 3, 1])/64 · 4.
    let kernels: Vec<_> = exported.iter().filter(|(k, _, _)| k.ends_with(".kernel")).collect();
    assert_eq!(kernels.len(), 4, "two blur and two skip up-sampling kernels");
    for (key, shape, values) in &kernels {
        assert_eq!(shape, &[4, 4], "{key}");
        assert_eq!(values[0], 4.0 / 64.0, "{key}");
        assert_eq!(values[5], 36.0 / 64.0, "{key}");
    }
    let without_kernels: Vec<_> = exported
        .iter()
        .filter(|(k, _, _)| !k.ends_with(".kernel"))
        .cloned()
        .collect();
    assert_eq!(shapes(&without_kernels), shapes(&original));
    // Scales taken out and put back: each value within a couple of float32 roundings.
    let by_key: std::collections::HashMap<_, _> = original.iter().map(|(k, _, v)| (k.clone(), v.clone())).collect();
    for (key, _, values) in &without_kernels {
        for (a, b) in values.iter().zip(&by_key[key]) {
            assert!(
                (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1e-3),
                "{key}: {a} vs {b}"
            );
        }
    }

    let device = Default::default();
    B::seed(&device, 11);
    let latents = Tensor::<B, 3>::random(
        [1, config.n_latent(), config.style_dim],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let offsets: WeightOffsets<B> = config
        .layers()
        .iter()
        .map(|l| {
            let [o, i, k, _] = l.weight_shape();
            // Per-tap on the 3×3 convs, per filter pair on the up-sampling conv, none on layer 1.
            match l.index {
                1 => None,
                2 => Some(Tensor::random(
                    [1, o, i, 1, 1],
                    Distribution::Uniform(-0.5, 0.5),
                    &device,
                )),
                _ => Some(Tensor::random(
                    [1, o, i, k, k],
                    Distribution::Uniform(-0.5, 0.5),
                    &device,
                )),
            }
        })
        .collect();
    let expected = generator
        .synthesis(latents.clone(), &Noise::Stored, Some(&offsets))
        .unwrap();
    let tuned = load(generator.checkpoint_tensors(Some(&offsets)).unwrap()).unwrap();
    let image = tuned.synthesis(latents, &Noise::Stored, None).unwrap();
    let diff = (image - expected).abs().max().into_scalar();
    // The same kernels W·(1 + Δ)·s up to the rounding of the folded weights: float32 noise.
    assert!(diff < 1e-5, "tuned generator differs by {diff}");
    let two = WeightOffsets::new(vec![Some(Tensor::zeros([2, 512, 512, 3, 3], &device)); 8]);
    assert!(matches!(
        generator.checkpoint_tensors(Some(&two)),
        Err(Error::InvalidInput(_))
    ));
}

/// StyleSpace: the styles of W+ codes drive the same synthesis, with and without offsets; an
/// edited style changes the image; a wrong number or shape of styles is an error.
#[test]
fn stylespace_synthesis_equals_latent_synthesis() {
    let config = config();
    let generator = load(tensors(&config)).unwrap();
    let device = Default::default();
    let latents = Tensor::<B, 3>::random(
        [2, config.n_latent(), config.style_dim],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let styles = generator.styles(latents.clone()).unwrap();
    let layers = config.layers();
    assert_eq!(styles.len(), layers.len());
    for (style, layer) in styles.iter().zip(&layers) {
        assert_eq!(style.dims(), [2, layer.in_channels]);
    }
    let offsets: WeightOffsets<B> = layers
        .iter()
        .map(|l| {
            let [o, i, k, _] = l.weight_shape();
            Some(Tensor::random(
                [2, o, i, k, k],
                Distribution::Uniform(-0.1, 0.1),
                &device,
            ))
        })
        .collect();
    for offsets in [None, Some(&offsets)] {
        let from_codes = generator.synthesis(latents.clone(), &Noise::Stored, offsets).unwrap();
        let from_styles = generator
            .synthesis_from_styles(&styles, &Noise::Stored, offsets)
            .unwrap();
        // The same operations on the same values: equal, not just close.
        assert_eq!(from_codes.into_data(), from_styles.into_data());
    }
    let mut edited = styles.clone();
    edited[3] = edited[3].clone().add_scalar(0.5);
    let moved = generator.synthesis_from_styles(&edited, &Noise::Stored, None).unwrap();
    let base = generator.synthesis(latents, &Noise::Stored, None).unwrap();
    assert!(
        (moved - base).abs().max().into_scalar() > 1e-3,
        "an edited style left the image unchanged"
    );
    assert!(matches!(
        generator.synthesis_from_styles(&styles[1..], &Noise::Stored, None),
        Err(Error::InvalidInput(_))
    ));
    let mut misshapen = styles.clone();
    misshapen[2] = Tensor::zeros([2, 7], &device);
    assert!(matches!(
        generator.synthesis_from_styles(&misshapen, &Noise::Stored, None),
        Err(Error::InvalidInput(_))
    ));
}
