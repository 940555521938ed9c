//! One hypernetwork forward (ResNet-34 + refinement blocks + shared hypernet) and the full
//! HyperStyle inversion (W encoder + W synthesis + 5 refinement steps) at 1024 on the default
//! backend (the CPU unless `--features cuda` or `wgpu`), with the fixture model's pattern weights
//! (the speed does not depend on values). The inversion runs with each [`ConvStrategy`].
//!
//! `cargo bench --bench inversion` (batch sizes from `HYPERSTYLE_BENCH_BATCHES`, e.g. `1,4,8`,
//! default 1). Criterion reports images/s.

use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::demo::Demo;
use hyperstyle::stylegan2::ConvStrategy;
use hyperstyle::{Domain, HyperStyle, HyperStyleConfig};
use hyperstyle_testing::bench_batches;

fn bench_inversion(c: &mut Criterion) {
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    let demo = Demo::load("ffhq1024").expect("demo data");
    let mut model = HyperStyle::<B>::builder()
        .model_weights(
            demo.weights("hyperstyle", &["hypernet.", "decoder.", "latent_avg"])
                .unwrap(),
        )
        .w_encoder_weights(demo.weights("w_encoder", &["encoder."]).unwrap())
        .config(HyperStyleConfig::for_domain(Domain::Faces))
        .load(&device)
        .expect("demo model");
    let mut group = c.benchmark_group("ffhq1024");
    group.sample_size(10);
    for batch in bench_batches() {
        group.throughput(Throughput::Elements(batch as u64));
        let images = Tensor::<B, 4>::random([batch, 3, 256, 256], Distribution::Uniform(-1.0, 1.0), &device);
        let reconstruction = images.clone().flip([3]);
        group.bench_function(format!("hypernet/batch{batch}"), |b| {
            b.iter(|| {
                let offsets = model
                    .hypernet()
                    .forward(images.clone(), reconstruction.clone())
                    .unwrap();
                B::sync(&device).unwrap();
                offsets
            })
        });
        for (name, strategy) in [("", ConvStrategy::PerSample), ("_gemm", ConvStrategy::BatchedGemm)] {
            model.set_conv_strategy(strategy);
            group.bench_function(format!("invert_5_iters/batch{batch}{name}"), |b| {
                b.iter(|| {
                    let inversion = model.invert(images.clone(), 5).unwrap();
                    B::sync(&device).unwrap();
                    inversion
                })
            });
        }
        model.set_conv_strategy(ConvStrategy::default());
    }
    group.finish();
}

criterion_group!(benches, bench_inversion);
criterion_main!(benches);
