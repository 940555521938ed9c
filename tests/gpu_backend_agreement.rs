//! The GPU backend against the CPU backend on the same inputs: an 8×8 generator (the first
//! blocks of the ffhq256 fixture's generator: 512-channel convs, a transposed up-sampling conv
//! with its blur, ToRGB with the up-sampled skip), with and without per-sample offsets, with
//! both conv strategies. Small enough for software Vulkan; on a real GPU the full parity suites
//! (`generator_parity`, `end_to_end_parity`, …) run on the GPU backend as well.
//!
//! Only built with `--features wgpu` or `cuda`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::prelude::*;
use burn::tensor::backend::BackendTypes;
use burn::tensor::Distribution;
use hyperstyle::backend::{runtime_events, Cpu, DefaultBackend as Gpu, GpuRuntime};
use hyperstyle::core::WeightStore;
use hyperstyle::stylegan2::{ConvStrategy, Generator, GeneratorConfig, Noise, WeightOffsets};
use hyperstyle_testing::{assert_close, pattern_store, to_vec, Fixture};

/// Keys of an 8×8 generator inside the fixture's `decoder.` (its first layers are the same).
fn small_generator_store() -> WeightStore {
    let fixture = Fixture::load("ffhq256");
    let full = pattern_store(fixture.manifest.checkpoint("hyperstyle").unwrap(), &["decoder."]);
    let blocks = [
        "conv1.",
        "to_rgb1.",
        "convs.0.",
        "convs.1.",
        "to_rgbs.0.",
        "style.",
        "input.",
    ];
    let noises = ["noises.noise_0", "noises.noise_1", "noises.noise_2"];
    let tensors = full.keys().into_iter().filter_map(|key| {
        let name = key.strip_prefix("decoder.")?;
        if !(blocks.iter().any(|b| name.starts_with(b)) || noises.contains(&name)) {
            return None;
        }
        let shape = full.shape(&key)?;
        let values = full.root().values(&key, &shape).ok()?;
        Some((name.to_string(), shape, values))
    });
    WeightStore::from_tensors(tensors).unwrap()
}

fn generator<B: Backend>(store: &WeightStore, device: &<B as BackendTypes>::Device) -> Generator<B> {
    Generator::load(&store.root(), &GeneratorConfig::new(8), device).unwrap()
}

/// The same values on another backend.
fn moved<const D: usize>(t: &Tensor<Cpu, D>, device: &<Gpu as BackendTypes>::Device) -> Tensor<Gpu, D> {
    Tensor::from_data(t.to_data(), device)
}

#[test]
fn small_generator_agrees_with_the_cpu() {
    // Before the first GPU tensor: count what the runtime compiles, with caches in a fresh folder.
    let cache = tempfile::tempdir().unwrap();
    GpuRuntime::default()
        .cache_dir(Some(cache.path().to_path_buf()))
        .count_events(true)
        .install()
        .unwrap();
    let store = small_generator_store();
    let cpu_device = Default::default();
    let gpu_device = Default::default();
    let cpu = generator::<Cpu>(&store, &cpu_device);
    let mut gpu = generator::<Gpu>(&store, &gpu_device);
    <Cpu as Backend>::seed(&cpu_device, 3);
    let latents = Tensor::<Cpu, 3>::random([2, 4, 512], Distribution::Normal(0.0, 1.0), &cpu_device);
    // Offsets on every layer: per tap on the convs, per filter pair on the up-sampling conv.
    let offsets: WeightOffsets<Cpu> = cpu
        .config()
        .layers()
        .iter()
        .map(|layer| {
            let [o, i, k, _] = layer.weight_shape();
            let taps = if layer.index == 2 { 1 } else { k };
            Some(Tensor::random(
                [2, o, i, taps, taps],
                Distribution::Uniform(-0.5, 0.5),
                &cpu_device,
            ))
        })
        .collect();
    let gpu_offsets: WeightOffsets<Gpu> = offsets
        .iter()
        .map(|o| o.as_ref().map(|t| moved(t, &gpu_device)))
        .collect();
    let gpu_latents = moved(&latents, &gpu_device);

    let cases: [(&str, Option<&WeightOffsets<Cpu>>, Option<&WeightOffsets<Gpu>>); 2] = [
        ("shared weights", None, None),
        ("per-sample offsets", Some(&offsets), Some(&gpu_offsets)),
    ];
    let mut first_call = true;
    for (name, cpu_offsets, gpu_offsets) in cases {
        let expected = cpu.synthesis(latents.clone(), &Noise::Stored, cpu_offsets).unwrap();
        let (shape, expected) = to_vec(expected);
        for strategy in [ConvStrategy::PerSample, ConvStrategy::BatchedGemm] {
            gpu.set_conv_strategy(strategy);
            let synthesis = || gpu.synthesis(gpu_latents.clone(), &Noise::Stored, gpu_offsets).unwrap();
            let before = runtime_events();
            let image = synthesis();
            to_vec(image.clone());
            let cold = runtime_events() - before;
            // A repeated call runs the kernels the first one compiled (and tuned): nothing new.
            to_vec(synthesis());
            let warm = runtime_events() - before - cold;
            println!("{name}, {strategy:?}: first call {cold}; second call {warm}");
            if first_call {
                // The runtime's compilation log reached the counter.
                assert!(cold.kernels_compiled > 0, "{cold}");
                first_call = false;
            }
            assert_eq!(
                warm.kernels_compiled + warm.autotuned_shapes,
                0,
                "{name}, {strategy:?}: {warm}"
            );
            if !cfg!(feature = "autotune") {
                assert_eq!(cold.autotuned_shapes + cold.autotune_trials, 0, "{cold}");
            }
            // Two float32 evaluations of the first two blocks of the ffhq256 generator; the full
            // generator's float32 noise floor (upstream f32 vs f64: 1.8e-5 max-abs, 2.0e-6
            // mean-abs) bounds the difference of a prefix of it.
            assert_close(
                &format!("{name}, {strategy:?}: GPU vs CPU"),
                image,
                (&shape, &expected),
                1.8e-5,
                2e-6,
            );
        }
    }
}
