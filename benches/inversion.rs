//! One hypernetwork forward (ResNet-34 + refinement blocks + shared hypernet) and the full HyperStyle inversion (W encoder + W synthesis + 5
//! refinement steps) at 1024, batch 1, on the default backend (the CPU unless `--features cuda`
//! or `wgpu`), with the fixture model's pattern weights (the speed does not depend on values).
//!
//! `cargo bench --bench inversion`

use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{criterion_group, criterion_main, Criterion};
use hyperstyle::backend::Default as B;
use hyperstyle::{Domain, HyperStyle, HyperStyleConfig};
use hyperstyle_testing::{pattern_store, Manifest};

fn bench_inversion(c: &mut Criterion) {
    let device = Default::default();
    let manifest = Manifest::load(hyperstyle_testing::fixtures_dir().join("ffhq1024_manifest.json"));
    let model = pattern_store(
        manifest.checkpoint("hyperstyle"),
        &["hypernet.", "decoder.", "latent_avg"],
    );
    let w_encoder = pattern_store(manifest.checkpoint("w_encoder"), &["encoder."]);
    let model = HyperStyle::<B>::load(
        &model,
        &w_encoder,
        Some(HyperStyleConfig::for_domain(Domain::Faces)),
        &device,
    )
    .expect("fixture model");
    drop(w_encoder);
    let images = Tensor::<B, 4>::random([1, 3, 256, 256], Distribution::Uniform(-1.0, 1.0), &device);
    let mut group = c.benchmark_group("ffhq1024");
    group.sample_size(10);
    let reconstruction = images.clone().flip([3]);
    group.bench_function("hypernet/batch1", |b| {
        b.iter(|| {
            let offsets = model
                .hypernet()
                .forward(images.clone(), reconstruction.clone())
                .unwrap();
            B::sync(&device).unwrap();
            offsets
        })
    });
    group.bench_function("invert_5_iters/batch1", |b| {
        b.iter(|| {
            let inversion = model.invert(images.clone(), 5).unwrap();
            B::sync(&device).unwrap();
            inversion
        })
    });
    group.finish();
}

criterion_group!(benches, bench_inversion);
criterion_main!(benches);
