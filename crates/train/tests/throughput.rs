//! Training throughput of the ffhq256 pattern model (every released layer tuned, faces lambdas,
//! Ranger) on `Autodiff<Flex>`. Not part of the suite (`#[ignore]`): run one configuration per
//! process so that the peak RSS is its own,
//!
//! ```text
//! HYPERSTYLE_TRAIN_BENCH=2x2 cargo test --release -p hyperstyle-train --test throughput -- --ignored --nocapture
//! ```
//!
//! (`BATCHxN_ITERS`, default `1x1`; `HYPERSTYLE_TRAIN_BENCH_STEPS` timed steps after one warm-up,
//! default 3). Prints one JSON line: seconds per step (median), steps/s, images/s, peak RSS.

mod common;

use std::time::Instant;

use hyperstyle_train::Batch;

/// VmHWM of this process in GiB (Linux), else NaN.
fn peak_rss_gb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map(|kb| kb / (1024.0 * 1024.0))
        .unwrap_or(f64::NAN)
}

#[test]
#[ignore = "a measurement, minutes long"]
fn training_throughput() {
    let spec = std::env::var("HYPERSTYLE_TRAIN_BENCH").unwrap_or_else(|_| "1x1".into());
    let (batch, n_iters) = spec
        .split_once('x')
        .and_then(|(b, n)| Some((b.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .expect("HYPERSTYLE_TRAIN_BENCH must look like 2x2 (batch x n_iters)");
    let steps: usize = std::env::var("HYPERSTYLE_TRAIN_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let layers = hyperstyle_hypernet::LayersToTune::default().to_string();
    let mut trainer = common::ffhq256_trainer(&layers, common::faces_config(n_iters, 1e-4));
    let device = Default::default();
    let faces = common::ffhq256_batch(&device);
    let x = if batch <= 2 {
        faces.narrow(0, 0, batch)
    } else {
        faces.repeat_dim(0, batch.div_ceil(2)).narrow(0, 0, batch)
    };
    let mut times = Vec::new();
    for _ in 0..=steps {
        let start = Instant::now();
        let out = trainer.train_step(Batch::images(x.clone())).unwrap();
        let _ = out.last_losses().loss;
        times.push(start.elapsed().as_secs_f64());
    }
    let mut timed = times[1..].to_vec();
    timed.sort_by(f64::total_cmp);
    let t = timed[timed.len() / 2];
    println!(
        "{{\"impl\": \"hyperstyle-rs\", \"batch\": {batch}, \"n_iters\": {n_iters}, \"s_per_step\": {t:.3}, \"steps_per_s\": {:.4}, \"images_per_s\": {:.4}, \"peak_rss_gb\": {:.2}}}",
        1.0 / t,
        batch as f64 / t,
        peak_rss_gb()
    );
}
