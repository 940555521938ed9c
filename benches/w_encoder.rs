//! W-encoder forward on the default backend (the CPU unless `--features cuda` or `wgpu`): one
//! 256×256 image (IR-SE-50 + pooled EqualLinear, 32.8 GMAC,
//! docs/ARCHITECTURE.md §5.2), fixture pattern weights.
//!
//! `cargo bench --bench w_encoder` (batch sizes from `HYPERSTYLE_BENCH_BATCHES`, default 1).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle_encoders::WEncoder;
use hyperstyle_testing::{bench_batches, pattern_store, Fixture};

fn w_encoder_forward(c: &mut Criterion) {
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    let fixture = Fixture::load("ffhq256");
    let n_styles = fixture.manifest.meta_usize("n_styles").unwrap();
    let store = pattern_store(fixture.manifest.checkpoint("w_encoder").unwrap(), &["encoder."]);
    let encoder = WEncoder::<B>::load(&store.scope("encoder."), n_styles, &device).unwrap();
    let image = fixture.golden.tensor::<B, 4>("input", &device).narrow(0, 0, 1);
    let mut group = c.benchmark_group("w_encoder");
    for batch in bench_batches() {
        group.throughput(Throughput::Elements(batch as u64));
        let images = image.clone().repeat_dim(0, batch);
        group.bench_function(format!("256x256/batch{batch}"), |b| {
            // Reading the data back waits for the whole forward pass on any backend.
            b.iter(|| black_box(encoder.forward(images.clone()).unwrap().into_data()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // One to two seconds per forward pass on two cores: ten samples are plenty.
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(30));
    targets = w_encoder_forward
}
criterion_main!(benches);
