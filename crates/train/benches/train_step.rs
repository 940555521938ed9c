//! One training step (`Trainer::train_step`: W inversion, the refinement iterations with their
//! backward passes, one Ranger step) of the ffhq256 pattern model with every released layer
//! tuned and the faces lambdas, on `Autodiff<Flex>`.
//!
//! ```text
//! HYPERSTYLE_TRAIN_BENCH=2x2 cargo bench -p hyperstyle-train --bench train_step
//! ```
//!
//! `HYPERSTYLE_TRAIN_BENCH` lists `BATCHxN_ITERS` configurations (comma-separated, default
//! `1x1`). A step takes tens of seconds on a CPU, so each configuration runs one warm-up step and
//! ten timed ones (criterion's minimum), one step per sample; criterion reports images/s. The
//! process's peak resident memory is printed at the end: run one configuration per process to
//! attribute it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use hyperstyle_train::Batch;

/// `(batch, n_iters)` from `HYPERSTYLE_TRAIN_BENCH`.
fn configurations() -> Vec<(usize, usize)> {
    let list = std::env::var("HYPERSTYLE_TRAIN_BENCH").unwrap_or_else(|_| "1x1".into());
    list.split(',')
        .map(|spec| {
            spec.trim()
                .split_once('x')
                .and_then(|(b, n)| Some((b.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
                .filter(|&(b, n)| b > 0 && n > 0)
                .unwrap_or_else(|| panic!("HYPERSTYLE_TRAIN_BENCH must list BATCHxN_ITERS like 1x1,2x2; got {list:?}"))
        })
        .collect()
}

/// VmHWM of this process in GiB (Linux), else `None`.
fn peak_rss_gib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

fn bench_train_step(c: &mut Criterion) {
    let device = Default::default();
    let faces = common::ffhq256_batch(&device);
    let layers = hyperstyle_hypernet::LayersToTune::default().to_string();
    let mut group = c.benchmark_group("ffhq256_train_step");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for (batch, n_iters) in configurations() {
        let mut trainer = common::ffhq256_trainer(&layers, common::faces_config(n_iters, 1e-4));
        // The fixture holds two faces; larger batches repeat them.
        let x = faces.clone().repeat_dim(0, batch.div_ceil(2)).narrow(0, 0, batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch{batch}_iters{n_iters}"), |b| {
            b.iter(|| {
                let out = trainer.train_step(Batch::images(x.clone())).unwrap();
                out.last_losses().loss
            })
        });
    }
    group.finish();
    if let Some(gib) = peak_rss_gib() {
        println!("peak resident memory of this process: {gib:.2} GiB");
    }
}

criterion_group!(benches, bench_train_step);
criterion_main!(benches);
