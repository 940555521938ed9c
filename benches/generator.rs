//! Generator forward (synthesis from W+ codes, stored noise) on the default backend, at 256 and
//! 1024, without and with per-sample weight offsets on every 3×3 conv (what HyperStyle runs),
//! the latter with each [`ConvStrategy`].
//!
//! `cargo bench --bench generator` (add `--features cuda` / `wgpu` for a GPU; batch sizes from
//! `HYPERSTYLE_BENCH_BATCHES`, e.g. `1,4,8`, default 1). Criterion reports images/s.

use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::demo::Demo;
use hyperstyle::stylegan2::{ConvStrategy, Generator, LayerKind, Noise, WeightOffsets};
use hyperstyle_testing::bench_batches;

fn generator(config: &str, device: &<B as burn::tensor::backend::BackendTypes>::Device) -> Generator<B> {
    let demo = Demo::load(config).expect("demo data");
    demo.generator(device).expect("demo generator")
}

fn bench_generator(c: &mut Criterion) {
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    let mut group = c.benchmark_group("generator");
    group.sample_size(10);
    for (config, size) in [("ffhq256", 256), ("ffhq1024", 1024)] {
        let mut generator = generator(config, &device);
        let n_latent = generator.config().n_latent();
        for batch in bench_batches() {
            group.throughput(Throughput::Elements(batch as u64));
            let latents = Tensor::<B, 3>::random([batch, n_latent, 512], Distribution::Normal(0.0, 1.0), &device);
            group.bench_function(format!("{size}/batch{batch}"), |b| {
                b.iter(|| {
                    let image = generator.synthesis(latents.clone(), &Noise::Stored, None).unwrap();
                    B::sync(&device).unwrap();
                    image
                })
            });
            let offsets: WeightOffsets<B> = generator
                .config()
                .layers()
                .iter()
                .map(|l| {
                    (l.kind != LayerKind::ToRgb).then(|| {
                        let [o, i, k, _] = l.weight_shape();
                        Tensor::random([batch, o, i, k, k], Distribution::Uniform(-0.1, 0.1), &device)
                    })
                })
                .collect();
            for (name, strategy) in [("", ConvStrategy::PerSample), ("_gemm", ConvStrategy::BatchedGemm)] {
                generator.set_conv_strategy(strategy);
                group.bench_function(format!("{size}/batch{batch}_offsets{name}"), |b| {
                    b.iter(|| {
                        let image = generator
                            .synthesis(latents.clone(), &Noise::Stored, Some(&offsets))
                            .unwrap();
                        B::sync(&device).unwrap();
                        image
                    })
                });
            }
            generator.set_conv_strategy(ConvStrategy::default());
        }
    }
    group.finish();
}

criterion_group!(benches, bench_generator);
criterion_main!(benches);
