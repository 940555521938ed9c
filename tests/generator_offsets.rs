//! Per-sample weight offsets: a batch never mixes samples, and a zero offset is no offset.

use burn::prelude::*;
use burn::tensor::Distribution;
use hyperstyle::backend;
use hyperstyle::stylegan2::{ConvStrategy, Generator, GeneratorConfig, Noise, WeightOffsets};
use hyperstyle_testing::{assert_close, pattern_store, to_vec, Fixture};

/// The parity suite runs on the fastest enabled backend (the CPU unless `--features wgpu` or `cuda`).
type B = backend::DefaultBackend;

struct Setup {
    generator: Generator<B>,
    w_codes: Tensor<B, 3>,
    device: <B as burn::tensor::backend::BackendTypes>::Device,
}

fn setup() -> Setup {
    let device = Default::default();
    let fixture = Fixture::load("ffhq256");
    let store = pattern_store(fixture.manifest.checkpoint("hyperstyle").unwrap(), &["decoder."]);
    let generator = Generator::load(&store.scope("decoder."), &GeneratorConfig::new(256), &device).unwrap();
    let w_codes = fixture.golden.tensor::<B, 3>("w_codes", &device);
    Setup {
        generator,
        w_codes,
        device,
    }
}

/// Offsets on an up-sampling conv (5), a plain conv (6), a ToRGB (7) and the last conv (18).
fn random_offsets(setup: &Setup, batch: usize, seed: u64) -> WeightOffsets<B> {
    offsets_on(setup, batch, seed, &[5, 6, 7, 18])
}

fn offsets_on(setup: &Setup, batch: usize, seed: u64, layers: &[usize]) -> WeightOffsets<B> {
    B::seed(&setup.device, seed);
    setup
        .generator
        .config()
        .layers()
        .iter()
        .map(|layer| {
            layers.contains(&layer.index).then(|| {
                let [o, i, k, _] = layer.weight_shape();
                Tensor::random([batch, o, i, k, k], Distribution::Uniform(-0.5, 0.5), &setup.device)
            })
        })
        .collect()
}

#[test]
fn batch_of_two_with_different_offsets_equals_each_sample_alone() {
    let setup = setup();
    let every_layer: Vec<usize> = (0..20).collect();
    let offsets = offsets_on(&setup, 2, 7, &every_layer);
    let batched = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&offsets))
        .unwrap();
    let without = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, None)
        .unwrap();
    for b in 0..2 {
        let alone = setup
            .generator
            .synthesis(
                setup.w_codes.clone().narrow(0, b, 1),
                &Noise::Stored,
                Some(&offsets.sample(b).unwrap()),
            )
            .unwrap();
        let (shape, expected) = to_vec(alone);
        // With an offset on every layer each conv runs per sample on the same kernels whether the
        // sample is alone or in a batch, so the images must be bit-identical. (A layer without
        // offsets runs one batched conv whose GEMM blocking may depend on the batch size.)
        assert_close(
            &format!("sample {b} in batch vs alone"),
            batched.clone().narrow(0, b, 1),
            (&shape, &expected),
            0.0,
            0.0,
        );
        // And the offsets really change the image (the test would be vacuous otherwise).
        let (_, plain) = to_vec(without.clone().narrow(0, b, 1));
        let changed = hyperstyle_testing::error_stats(&expected, &plain);
        assert!(changed.mean_abs > 1e-2, "offsets had no visible effect: {changed}");
    }
}

#[test]
fn zero_offsets_equal_no_offsets() {
    // The per-sample path (modulated, demodulated kernels per sample) against the shared-weight
    // path (modulation moved onto the activations): the same function, different rounding.
    let setup = setup();
    let zeros: WeightOffsets<B> = random_offsets(&setup, 2, 1)
        .into_iter()
        .map(|o| o.map(|t| t.zeros_like()))
        .collect();
    let with = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&zeros))
        .unwrap();
    let without = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, None)
        .unwrap();
    let (shape, expected) = to_vec(without);
    // Float32 reassociation only: well under the 1.8e-5 noise floor of this output's pooled form.
    assert_close("zero offsets vs none", with, (&shape, &expected), 2e-5, 2e-6);
}

#[test]
fn offset_without_batch_axis_broadcasts_over_the_batch() {
    let setup = setup();
    let one = random_offsets(&setup, 1, 3);
    let two: WeightOffsets<B> = one
        .iter()
        .map(|o| o.as_ref().map(|t| t.clone().repeat_dim(0, 2)))
        .collect();
    let broadcast = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&one))
        .unwrap();
    let repeated = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&two))
        .unwrap();
    let (shape, expected) = to_vec(repeated);
    assert_close("broadcast offset vs repeated", broadcast, (&shape, &expected), 0.0, 0.0);
}

#[test]
fn per_filter_pair_offset_equals_its_repetition_over_taps() {
    let setup = setup();
    // Layers 5 (up-sampling), 6, 18 (3×3) and 7 (ToRGB, 1×1 anyway), one factor per (out, in).
    let compact: WeightOffsets<B> = random_offsets(&setup, 2, 9)
        .into_iter()
        .map(|o| o.map(|t| t.narrow(3, 0, 1).narrow(4, 0, 1)))
        .collect();
    let repeated: WeightOffsets<B> = compact
        .iter()
        .zip(setup.generator.config().layers())
        .map(|(o, layer)| {
            o.as_ref()
                .map(|t| t.clone().repeat_dim(3, layer.kernel).repeat_dim(4, layer.kernel))
        })
        .collect();
    let broadcast = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&compact))
        .unwrap();
    let (shape, expected) = to_vec(
        setup
            .generator
            .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&repeated))
            .unwrap(),
    );
    // Broadcasting multiplies by exactly the same factors as the repeated tensor.
    assert_close("per-pair offset vs repeated", broadcast, (&shape, &expected), 0.0, 0.0);
}

#[test]
fn batched_gemm_strategy_equals_per_sample_convs() {
    let setup = setup();
    let mut gemm = setup.generator.clone();
    gemm.set_conv_strategy(ConvStrategy::BatchedGemm);
    assert_eq!(setup.generator.conv_strategy(), ConvStrategy::PerSample);
    let every_layer: Vec<usize> = (0..20).collect();
    let offsets = offsets_on(&setup, 2, 13, &every_layer);
    // A batch with offsets on every layer, and a single sample without offsets (which also takes
    // the per-sample path).
    let cases = [
        (setup.w_codes.clone(), Some(offsets)),
        (setup.w_codes.clone().narrow(0, 1, 1), None),
    ];
    for (latents, offsets) in cases {
        let (shape, expected) = to_vec(
            setup
                .generator
                .synthesis(latents.clone(), &Noise::Stored, offsets.as_ref())
                .unwrap(),
        );
        let image = gemm.synthesis(latents, &Noise::Stored, offsets.as_ref()).unwrap();
        // The same products summed in another order through 20 layers. Each float32 evaluation
        // lies within about the noise floor of this output (ffhq256 f32 vs f64: 1.8e-5 max-abs,
        // 2.0e-6 mean-abs) of the exact value, so two of them differ by at most twice that.
        // Measured (flex CPU, random offsets on every layer): 1.8e-5 / 1.7e-6.
        assert_close(
            "batched GEMM vs per-sample convs",
            image,
            (&shape, &expected),
            3.6e-5,
            4e-6,
        );
    }
}

#[test]
fn wrong_offsets_are_errors_not_panics() {
    let setup = setup();
    let mut layers = random_offsets(&setup, 2, 5).into_vec();
    layers.pop();
    let offsets = WeightOffsets::new(layers);
    let err = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&offsets))
        .unwrap_err();
    assert!(err.to_string().contains("expected 20 weight offsets"), "{err}");

    let mut offsets = random_offsets(&setup, 2, 5);
    offsets[6] = Some(Tensor::zeros([2, 512, 256, 3, 3], &setup.device));
    let err = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&offsets))
        .unwrap_err();
    assert!(err.to_string().contains("[2, 512, 256, 3, 3]"), "{err}");

    let mut offsets = random_offsets(&setup, 2, 5);
    offsets[6] = Some(Tensor::zeros([2, 512, 512, 1, 3], &setup.device));
    let err = setup
        .generator
        .synthesis(setup.w_codes.clone(), &Noise::Stored, Some(&offsets))
        .unwrap_err();
    assert!(err.to_string().contains("[2, 512, 512, 1, 3]"), "{err}");

    let err = setup
        .generator
        .synthesis(Tensor::zeros([1, 18, 512], &setup.device), &Noise::Stored, None)
        .unwrap_err();
    assert!(err.to_string().contains("latents must be [batch, 14, 512]"), "{err}");
}

#[test]
fn noise_modes() {
    let setup = setup();
    let w = setup.w_codes.clone().narrow(0, 0, 1);
    let stored = setup.generator.synthesis(w.clone(), &Noise::Stored, None).unwrap();
    let (shape, expected) = to_vec(stored);
    // Given noise equal to the stored buffers reproduces the stored-noise image exactly.
    let config = setup.generator.config().clone();
    let fixture = Fixture::load("ffhq256");
    let store = pattern_store(fixture.manifest.checkpoint("hyperstyle").unwrap(), &["decoder.noises."]);
    let given: Vec<Tensor<B, 4>> = (0..config.num_noise())
        .map(|i| {
            let r = config.noise_size(i);
            store
                .scope("decoder.noises.")
                .tensor(&format!("noise_{i}"), [1, 1, r, r], &setup.device)
                .unwrap()
        })
        .collect();
    let image = setup
        .generator
        .synthesis(w.clone(), &Noise::Given(given), None)
        .unwrap();
    assert_close("given = stored noise", image, (&shape, &expected), 0.0, 0.0);
    // Random noise changes the image, and re-seeding reproduces it.
    B::seed(&setup.device, 11);
    let (_, r1) = to_vec(setup.generator.synthesis(w.clone(), &Noise::Random, None).unwrap());
    B::seed(&setup.device, 11);
    let (_, r2) = to_vec(setup.generator.synthesis(w, &Noise::Random, None).unwrap());
    assert_eq!(r1, r2);
    assert!(hyperstyle_testing::error_stats(&r1, &expected).mean_abs > 1e-4);
}
