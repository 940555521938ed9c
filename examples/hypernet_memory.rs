//! Peak memory of one hypernetwork forward (FFHQ-1024 layout) at several batch sizes, on the CPU:
//! the growth of the process's peak resident set during the forward, over the loaded weights.
//! Linux only (reads /proc/self/status).
//!
//! `cargo run --release --example hypernet_memory -- 1 8`

mod common;

use burn::prelude::*;
use burn::tensor::Distribution;
use hyperstyle::backend::Cpu as B;
use hyperstyle::demo::Demo;
use hyperstyle::hypernet::{HypernetConfig, Hypernetwork};
use hyperstyle::stylegan2::GeneratorConfig;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux only)");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    // Writing 5 to clear_refs resets VmHWM to the current resident set.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), common::BoxError> {
    let batches: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let batches = if batches.is_empty() { vec![1, 8] } else { batches };
    let device = Default::default();
    let hypernet = {
        let store = Demo::load("ffhq1024")?.weights("hyperstyle", &["hypernet."])?;
        let config = HypernetConfig::new(GeneratorConfig::ffhq_1024());
        Hypernetwork::<B>::load(&store.scope("hypernet."), &config, &device)?
    };
    println!(
        "weights loaded: resident {:.0} MiB",
        status_kib("VmRSS:") as f64 / 1024.0
    );
    for batch in batches {
        let image = Tensor::<B, 4>::random([batch, 3, 256, 256], Distribution::Uniform(-1.0, 1.0), &device);
        let reconstruction = image.clone().flip([3]);
        reset_peak();
        let before = status_kib("VmRSS:");
        let offsets = hypernet.forward(image, reconstruction)?;
        let floats: usize = offsets.iter().flatten().map(|t| t.shape().num_elements()).sum();
        let peak = status_kib("VmHWM:");
        println!(
            "batch {batch}: peak +{:.0} MiB over the loaded weights ({:.0} MiB of offsets, {:.1} MB per image)",
            (peak.saturating_sub(before)) as f64 / 1024.0,
            floats as f64 * 4.0 / (1024.0 * 1024.0),
            floats as f64 * 4.0 / 1e6 / batch as f64
        );
        drop(offsets);
    }
    Ok(())
}
