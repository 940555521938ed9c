//! The GPU backend against the CPU backend on the same inputs: an 8×8 generator (the first
//! blocks of the ffhq256 fixture's generator: 512-channel convs, a transposed up-sampling conv
//! with its blur, ToRGB with the up-sampled skip), with and without per-sample offsets, and the
//! encoders' convolution layer. On the CubeCL backends these run `hyperstyle_kernels::cube`'s
//! kernels (the conv strategy does not apply). Small enough for software Vulkan; on a real GPU the full parity suites
//! (`generator_parity`, `end_to_end_parity`, …) run on the GPU backend as well.
//!
//! Only built with `--features wgpu` or `cuda`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::prelude::*;
use burn::tensor::backend::BackendTypes;
use burn::tensor::Distribution;
use hyperstyle::backend::{runtime_events, Cpu, DefaultBackend as Gpu, GpuRuntime};
use hyperstyle::core::WeightStore;
use hyperstyle::stylegan2::{Generator, GeneratorConfig, Noise, WeightOffsets};
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

/// The runtime's event counts are process-wide: the tests take turns so that each sees its own.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes this test's turn. The first test to run configures the GPU runtime, before any GPU
/// tensor exists: count what it compiles, with caches in a fresh folder kept for the process.
fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    static CACHE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    CACHE.get_or_init(|| {
        let cache = tempfile::tempdir().unwrap();
        GpuRuntime::default()
            .cache_dir(Some(cache.path().to_path_buf()))
            .count_events(true)
            .install()
            .unwrap();
        cache
    });
    turn
}

#[test]
fn small_generator_agrees_with_the_cpu() {
    let _turn = take_turn();
    let store = small_generator_store();
    let cpu_device = Default::default();
    let gpu_device = Default::default();
    let cpu = generator::<Cpu>(&store, &cpu_device);
    let gpu = generator::<Gpu>(&store, &gpu_device);
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

    type Case<'a> = (&'a str, Option<&'a WeightOffsets<Cpu>>, Option<&'a WeightOffsets<Gpu>>);
    let cases: [Case; 2] = [
        ("shared weights", None, None),
        ("per-sample offsets", Some(&offsets), Some(&gpu_offsets)),
    ];
    let mut first_call = true;
    for (name, cpu_offsets, gpu_offsets) in cases {
        let expected = cpu.synthesis(latents.clone(), &Noise::Stored, cpu_offsets).unwrap();
        let (shape, expected) = to_vec(expected);
        let synthesis = || gpu.synthesis(gpu_latents.clone(), &Noise::Stored, gpu_offsets).unwrap();
        let before = runtime_events();
        let image = synthesis();
        to_vec(image.clone());
        let cold = runtime_events() - before;
        // A repeated call runs the kernels the first one compiled (and tuned): nothing new.
        to_vec(synthesis());
        let warm = runtime_events() - before - cold;
        println!("{name}: first call {cold}; second call {warm}");
        if first_call {
            // The runtime's compilation log reached the counter.
            assert!(cold.kernels_compiled > 0, "{cold}");
            first_call = false;
        }
        assert_eq!(warm.kernels_compiled + warm.autotuned_shapes, 0, "{name}: {warm}");
        if !cfg!(feature = "autotune") {
            assert_eq!(cold.autotuned_shapes + cold.autotune_trials, 0, "{cold}");
        }
        // Two float32 evaluations of the first two blocks of the ffhq256 generator; the full
        // generator's float32 noise floor (upstream f32 vs f64: 1.8e-5 max-abs, 2.0e-6
        // mean-abs) bounds the difference of a prefix of it.
        assert_close(&format!("{name}: GPU vs CPU"), image, (&shape, &expected), 1.8e-5, 2e-6);
    }
}

/// The encoders' and hypernetwork's convolution layer (`Conv2d`, which runs the GPU kernel with
/// a shared weight on the CubeCL backends): a strided 3×3 conv with bias and leaky ReLU, then a
/// bias-free 1×1 conv, at sizes that leave partial tiles.
#[test]
fn encoder_convs_agree_with_the_cpu() {
    let _turn = take_turn();
    use hyperstyle::encoders::conv2d::{Activation, Conv2d, ConvShape};

    let cpu_device = Default::default();
    let gpu_device = Default::default();
    <Cpu as Backend>::seed(&cpu_device, 5);
    let values = |shape: &[usize], scale: f64| {
        let t = Tensor::<Cpu, 1>::random(
            [shape.iter().product::<usize>()],
            Distribution::Uniform(-scale, scale),
            &cpu_device,
        );
        t.into_data().to_vec::<f32>().unwrap()
    };
    let store = WeightStore::from_tensors([
        (
            "a.weight".to_string(),
            vec![70, 64, 3, 3],
            values(&[70, 64, 3, 3], 0.05),
        ),
        ("a.bias".to_string(), vec![70], values(&[70], 0.5)),
        ("b.weight".to_string(), vec![32, 70, 1, 1], values(&[32, 70, 1, 1], 0.1)),
    ])
    .unwrap();
    let shapes = [ConvShape::new(64, 70, 3, 2, 1), ConvShape::new(70, 32, 1, 1, 0)];
    fn run<B: Backend>(
        store: &WeightStore,
        shapes: [ConvShape; 2],
        x: Tensor<B, 4>,
        device: &<B as BackendTypes>::Device,
    ) -> Tensor<B, 4> {
        let a = Conv2d::<B>::load(&store.root().pp("a"), shapes[0], true, device).unwrap();
        let b = Conv2d::<B>::load(&store.root().pp("b"), shapes[1], false, device).unwrap();
        b.forward(a.forward_activated(x, Activation::LeakyRelu(0.2)))
    }
    let x = Tensor::<Cpu, 4>::random([2, 64, 17, 13], Distribution::Uniform(-1.0, 1.0), &cpu_device);
    let (shape, expected) = to_vec(run(&store, shapes, x.clone(), &cpu_device));
    let actual = run(&store, shapes, moved(&x, &gpu_device), &gpu_device);
    // Outputs are sums of 576 then 70 products, of magnitude ~0.5: two float32 summation orders
    // differ by ~1e-7 there (1e-6 at the extremes). A wrong or missing tap moves an output by one
    // product, ~0.01.
    assert_close("encoder convs: GPU vs CPU", actual, (&shape, &expected), 1e-5, 1e-6);
}
