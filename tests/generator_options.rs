//! The generator's rosinality `forward` options: the mapping network against a float64
//! reference, `input_is_latent`, truncation and style mixing.

use burn::prelude::*;
use burn::tensor::Distribution;
use hyperstyle::backend;
use hyperstyle::stylegan2::{GenerateOptions, Generator, GeneratorConfig, Noise};
use hyperstyle_testing::{assert_close, pattern_store, to_vec, Fixture};

/// The parity suite runs on the fastest enabled backend (the CPU unless `--features wgpu` or `cuda`).
type B = backend::DefaultBackend;

fn generator() -> (Generator<B>, Fixture) {
    let fixture = Fixture::load("ffhq256");
    let store = pattern_store(fixture.manifest.checkpoint("hyperstyle").unwrap(), &["decoder."]);
    let generator = Generator::load(
        &store.scope("decoder."),
        &GeneratorConfig::new(256),
        &Default::default(),
    )
    .unwrap();
    (generator, fixture)
}

/// docs/ARCHITECTURE.md §3.1–3.2 in float64: PixelNorm, then 8 × sqrt(2)·lrelu_0.2(x·(W·0.01/√512)ᵀ + 0.01·b).
fn mapping_f64(fixture: &Fixture, z: &[f32]) -> Vec<f64> {
    let checkpoint = fixture.manifest.checkpoint("hyperstyle").unwrap();
    let mut x: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    let norm = (x.iter().map(|v| v * v).sum::<f64>() / 512.0 + 1e-8).sqrt();
    x.iter_mut().for_each(|v| *v /= norm);
    for layer in 1..=8 {
        let key = |name: &str| format!("decoder.style.{layer}.{name}");
        let w = checkpoint
            .pattern(&key("weight"), &checkpoint.tensors[&key("weight")])
            .unwrap();
        let b = checkpoint
            .pattern(&key("bias"), &checkpoint.tensors[&key("bias")])
            .unwrap();
        let scale = 0.01 / 512f64.sqrt();
        x = (0..512)
            .map(|o| {
                let y =
                    (0..512).map(|i| f64::from(w[o * 512 + i]) * scale * x[i]).sum::<f64>() + 0.01 * f64::from(b[o]);
                std::f64::consts::SQRT_2 * if y > 0.0 { y } else { 0.2 * y }
            })
            .collect();
    }
    x
}

#[test]
fn mapping_network_matches_float64_reference() {
    let (generator, fixture) = generator();
    let device = Default::default();
    B::seed(&device, 3);
    let z = Tensor::<B, 2>::random([2, 512], Distribution::Normal(0.0, 1.0), &device);
    let (_, z_values) = to_vec(z.clone());
    let expected: Vec<f32> = z_values
        .chunks(512)
        .flat_map(|z| mapping_f64(&fixture, z))
        .map(|v| v as f32)
        .collect();
    // No golden covers the mapping network (HyperStyle feeds W codes), so it is checked against
    // docs/ARCHITECTURE.md §3.1–3.2 evaluated in float64. Eight layers of 512-term float32 dot products
    // measured 8.3e-6 max-abs / 9.6e-7 mean-abs on values up to 5.4 (1.5e-6 relative): we allow
    // about 2×.
    assert_close(
        "mapping vs f64",
        generator.mapping(z),
        (&[2usize, 512][..], &expected[..]),
        2e-5,
        2e-6,
    );
}

#[test]
fn forward_options_agree_with_synthesis() {
    let (generator, _) = generator();
    let device = Default::default();
    B::seed(&device, 5);
    let w1 = Tensor::<B, 2>::random([1, 512], Distribution::Normal(0.0, 1.0), &device);
    let w2 = Tensor::<B, 2>::random([1, 512], Distribution::Normal(0.0, 1.0), &device);
    let latent = GenerateOptions {
        input_is_latent: true,
        ..GenerateOptions::default()
    };

    // input_is_latent: one w repeated over all 14 rows.
    let (shape, expected) = to_vec(
        generator
            .synthesis(generator.broadcast_latent(w1.clone()), &Noise::Stored, None)
            .unwrap(),
    );
    let image = generator.generate(std::slice::from_ref(&w1), &latent, None).unwrap();
    assert_close("input_is_latent", image, (&shape, &expected), 0.0, 0.0);

    // Truncation ψ = 0 collapses every w onto the target.
    let truncated = GenerateOptions {
        truncation: Some((0.0, w1.clone())),
        ..latent.clone()
    };
    let image = generator.generate(std::slice::from_ref(&w2), &truncated, None).unwrap();
    assert_close("truncation psi=0", image, (&shape, &expected), 1e-6, 1e-7);

    // Style mixing: rows 0..5 from the first style, 5..14 from the second.
    let mixed = GenerateOptions {
        inject_index: Some(5),
        ..latent.clone()
    };
    let rows = Tensor::cat(
        vec![
            generator.broadcast_latent(w1.clone()).narrow(1, 0, 5),
            generator.broadcast_latent(w2.clone()).narrow(1, 5, 9),
        ],
        1,
    );
    let (shape, expected) = to_vec(generator.synthesis(rows, &Noise::Stored, None).unwrap());
    let image = generator.generate(&[w1.clone(), w2.clone()], &mixed, None).unwrap();
    assert_close("style mixing", image, (&shape, &expected), 0.0, 0.0);

    // Bad option values are errors.
    let bad = GenerateOptions {
        inject_index: Some(14),
        ..latent
    };
    assert!(generator.generate(&[w1.clone(), w2], &bad, None).is_err());
    assert!(generator.generate(&[], &GenerateOptions::default(), None).is_err());
}
