//! Times the full HyperStyle inversion (W encoder, W synthesis, refinement steps) on the default
//! backend at several batch sizes, and checks the same build against the upstream goldens.
//!
//! ```text
//! cargo run --release --example throughput                               # CPU, ffhq1024, batch 1
//! cargo run --release --features cuda --example throughput -- --batches 1,4,8 --precision f16
//! ```
//! The model is a test fixture (the real architecture with deterministic pattern weights): speed
//! does not depend on the values, and the fixture's goldens say how far this backend, precision
//! and convolution strategy are from the original implementation. For repeatable statistics use
//! the criterion benches (`cargo bench --bench inversion`); this example gives a quick report per
//! configuration, e.g. on a GPU machine.

use std::time::{Duration, Instant};

use burn::prelude::*;
use clap::Parser;
use hyperstyle::backend::{set_precision, Default as B, Precision};
use hyperstyle::stylegan2::ConvStrategy;
use hyperstyle::{HyperStyle, HyperStyleConfig};
use hyperstyle_testing::{error_stats, hyperstyle_stores, to_vec, Fixture};

#[derive(Parser, Debug)]
#[command(about = "Time the HyperStyle inversion per batch size and check it against the upstream goldens")]
struct Args {
    /// Fixture model: ffhq1024, cars512 or ffhq256.
    #[arg(long, default_value = "ffhq1024", value_parser = ["ffhq1024", "cars512", "ffhq256"])]
    config: String,
    /// Batch sizes to time, comma-separated.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    batches: Vec<usize>,
    /// Refinement steps of the timed inversions.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Timed runs per batch size, after one untimed warm-up run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Float type of every tensor: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Per-sample convolutions: per-sample or gemm.
    #[arg(long, default_value = "per-sample")]
    conv: ConvStrategy,
    /// Skip the comparison with the goldens.
    #[arg(long)]
    no_check: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.batches.contains(&0) || args.runs == 0 || args.iters == 0 {
        return Err("batch sizes, --iters and --runs must be positive".into());
    }
    let device = Default::default();
    set_precision::<B>(&device, args.precision)?;
    let fixture = Fixture::load(&args.config);
    let config = HyperStyleConfig::from_opts(&fixture.manifest.meta);
    let load = Instant::now();
    let (model, w_encoder) = hyperstyle_stores(&fixture.manifest);
    let mut model = HyperStyle::<B>::load(&model, &w_encoder, Some(config), &device)?;
    drop(w_encoder);
    model.set_conv_strategy(args.conv);
    let input = fixture.golden.tensor::<B, 4>("input", &device);
    println!(
        "{} on {:?}, {}, conv {:?}: model ready in {:.1} s",
        args.config,
        device,
        args.precision,
        args.conv,
        load.elapsed().as_secs_f64()
    );

    if !args.no_check {
        check(&model, &fixture, input.clone())?;
    }

    let one = input.narrow(0, 0, 1);
    println!(
        "{:>6} {:>12} {:>12} {:>10}   ({} steps, mean of {} runs after a warm-up)",
        "batch", "ms/batch", "ms/image", "images/s", args.iters, args.runs
    );
    for &batch in &args.batches {
        let images = one.clone().repeat_dim(0, batch);
        let run = || -> Result<Duration, hyperstyle::Error> {
            let start = Instant::now();
            let inversion = model.invert(images.clone(), args.iters)?;
            // Reading a value back waits for every queued kernel on any backend.
            let _ = inversion.steps[args.iters - 1].pooled.clone().sum().into_scalar();
            Ok(start.elapsed())
        };
        run()?;
        let times = (0..args.runs).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
        let mean = times.iter().sum::<Duration>().as_secs_f64() / args.runs as f64;
        println!(
            "{batch:>6} {:>12.1} {:>12.1} {:>10.2}",
            mean * 1e3,
            mean * 1e3 / batch as f64,
            batch as f64 / mean
        );
    }
    Ok(())
}

/// Inverts the golden input with the fixture's step count and prints the distance of the codes
/// and of every step's pooled image from the upstream outputs.
fn check(model: &HyperStyle<B>, fixture: &Fixture, input: Tensor<B, 4>) -> hyperstyle::Result<()> {
    let inversion = model.invert(input, fixture.manifest.meta_usize("n_iters"))?;
    let mut rows = vec![("w_codes".to_string(), to_vec(inversion.latents.clone()).1)];
    rows.push((
        "w_inversion_pooled".to_string(),
        to_vec(inversion.w_inversion.clone()).1,
    ));
    for (i, step) in inversion.steps.iter().enumerate() {
        rows.push((format!("iter{i}_image_pooled"), to_vec(step.pooled.clone()).1));
    }
    println!("distance from the upstream goldens:");
    for (key, ours) in rows {
        println!("  {key:<20} {}", error_stats(&ours, fixture.golden.get(&key).1));
    }
    Ok(())
}
