//! Times the full HyperStyle inversion (W encoder, W synthesis, refinement steps) on the default
//! backend at several batch sizes, and checks the same build against the upstream goldens.
//!
//! ```text
//! cargo run --release --example throughput                               # CPU, ffhq1024, batch 1
//! cargo run --release --features cuda --example throughput -- --batches 1,4,8 --precision f16
//! cargo run --release --features cuda --example throughput -- --profile   # time per stage, cold and warm
//! ```
//! The model is a test fixture (the real architecture with deterministic pattern weights): speed
//! does not depend on the values, and the fixture's goldens say how far this backend, precision
//! and convolution strategy are from the original implementation. For repeatable statistics use
//! the criterion benches (`cargo bench --bench inversion`); this example gives a quick report per
//! configuration, e.g. on a GPU machine.

mod common;

use std::time::{Duration, Instant};

use burn::prelude::*;
use clap::Parser;
use hyperstyle::backend::{
    runtime_events, set_precision, AutotuneLevel, DefaultBackend as B, GpuRuntime, Precision, RuntimeEvents,
};
use hyperstyle::demo::{Demo, CONFIGS};
use hyperstyle::stylegan2::ConvStrategy;
use hyperstyle::{HyperStyle, Stage, StageTimes};

#[derive(Parser, Debug)]
#[command(about = "Time the HyperStyle inversion per batch size and check it against the upstream goldens")]
struct Args {
    /// Demo model: ffhq1024, cars512, ffhq256 or wild512.
    #[arg(long, default_value = "ffhq1024", value_parser = CONFIGS)]
    config: String,
    /// Batch sizes to time, comma-separated.
    #[arg(long, default_value = "1", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=256))]
    batches: Vec<u64>,
    /// Refinement steps of the timed inversions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    iters: u64,
    /// Timed runs per batch size, after one untimed warm-up run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    runs: u64,
    /// Float type of every tensor: f32, f16 or bf16; or tf32 (f32 tensors, TF32 tensor-core
    /// products on CUDA).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Per-sample convolutions on backends without native kernels: per-sample or gemm (the CPU,
    /// wgpu and CUDA backends run their own convolution kernels either way).
    #[arg(long, default_value = "per-sample")]
    conv: ConvStrategy,
    /// Skip the comparison with the goldens.
    #[arg(long)]
    no_check: bool,
    /// Also print the time of every stage (W encoder, W synthesis, each step's hypernetwork and
    /// synthesis) for the first call at each batch size (cold: kernel compilation and autotuning
    /// included on GPUs) and for a second (warm) call, each stage closed by a device sync.
    #[arg(long)]
    profile: bool,
    /// GPU backends: autotune effort (minimal, balanced, extensive, full).
    #[arg(long, default_value = "balanced")]
    autotune: AutotuneLevel,
    /// GPU backends: folder of the persisted autotune and compiled-kernel caches (default:
    /// $HYPERSTYLE_CACHE_DIR, else hyperstyle-rs/ in the user's cache folder).
    #[arg(long)]
    cache_dir: Option<std::path::PathBuf>,
    /// GPU backends: do not persist compiled kernels, and leave autotune results where the
    /// runtime puts them by default.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Print one JSON line per batch size instead of the table: the median and minimum of the
    /// timed runs, the median over the runs of each stage (W encoder, W synthesis = the
    /// generator without offsets, the mean hypernetwork step), and the process's peak resident
    /// set (Linux).
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), common::BoxError> {
    let args = Args::parse();
    // Many large buffers come and go during a pass: keep freed memory for reuse (BENCHMARKS.md).
    hyperstyle::backend::reuse_freed_memory();
    let (iters, runs) = (args.iters as usize, args.runs as usize);
    // Before the first GPU tensor: the runtime's caches, autotune effort, and event counting
    // for the profile (kernels compiled and shapes autotuned per stage).
    let mut runtime = GpuRuntime::default().autotune(args.autotune).count_events(args.profile);
    if args.no_cache {
        runtime = runtime.cache_dir(None);
    } else if let Some(dir) = &args.cache_dir {
        runtime = runtime.cache_dir(Some(dir.clone()));
    }
    runtime.install()?;
    let device = Default::default();
    set_precision::<B>(&device, args.precision)?;
    let demo = Demo::load(&args.config)?;
    let load = Instant::now();
    let mut model = demo.hyperstyle::<B>(&device)?;
    model.set_conv_strategy(args.conv);
    // The demo's photo (the exact network input of the upstream run).
    let photo = hyperstyle::io::load_image(demo.photo(&format!("{}_input0.png", demo.name())))?;
    let input = hyperstyle::io::images_to_tensor::<B>(&[photo], model.input_size(), &device);
    println!(
        "{} on {:?}, {}, conv {:?}: model ready in {:.1} s",
        args.config,
        device,
        args.precision,
        args.conv,
        load.elapsed().as_secs_f64()
    );
    if args.profile {
        println!("  since start: {}", runtime_events());
    }

    if !args.no_check {
        check(&model, &demo, input.clone())?;
    }

    let one = input.narrow(0, 0, 1);
    if args.profile {
        for batch in args.batches.iter().map(|&b| b as usize) {
            profile(&model, one.clone().repeat_dim(0, batch), iters)?;
        }
    }
    if !args.json {
        println!(
            "{:>6} {:>12} {:>12} {:>10}   ({} steps, mean of {} runs after a warm-up)",
            "batch", "ms/batch", "ms/image", "images/s", iters, runs
        );
    }
    for batch in args.batches.iter().map(|&b| b as usize) {
        let images = one.clone().repeat_dim(0, batch);
        let run = || -> Result<(Duration, StageTimes), hyperstyle::Error> {
            let start = Instant::now();
            let (inversion, stages) = model.invert_timed(images.clone(), iters)?;
            // Reading a value back waits for every queued kernel on any backend.
            let _ = inversion.last_step().pooled.clone().sum().into_scalar();
            Ok((start.elapsed(), stages))
        };
        run()?;
        let timed = (0..runs).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
        let times: Vec<f64> = timed.iter().map(|(t, _)| t.as_secs_f64()).collect();
        if args.json {
            print_json(batch, iters, &times, &timed.iter().map(|(_, s)| s).collect::<Vec<_>>());
            continue;
        }
        let mean = times.iter().sum::<f64>() / runs as f64;
        println!(
            "{batch:>6} {:>12.1} {:>12.1} {:>10.2}",
            mean * 1e3,
            mean * 1e3 / batch as f64,
            batch as f64 / mean
        );
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One JSON line: timings in seconds, peak resident set in MiB (null where unknown).
fn print_json(batch: usize, iters: usize, times: &[f64], stages: &[&StageTimes]) {
    let stage = |pick: &dyn Fn(&Stage) -> bool| {
        median(
            stages
                .iter()
                .map(|s| {
                    let picked: Vec<f64> = s
                        .stages
                        .iter()
                        .filter(|(st, _)| pick(st))
                        .map(|(_, d)| d.as_secs_f64())
                        .collect();
                    picked.iter().sum::<f64>() / picked.len().max(1) as f64
                })
                .collect(),
        )
    };
    let peak = peak_rss_mib().map_or("null".to_string(), |m| format!("{m:.0}"));
    println!(
        "{{\"batch\": {batch}, \"iters\": {iters}, \"inversion_s_median\": {:.4}, \"inversion_s_min\": {:.4}, \"generator_s\": {:.4}, \"w_encoder_s\": {:.4}, \"hypernet_s\": {:.4}, \"peak_rss_mib\": {peak}}}",
        median(times.to_vec()),
        times.iter().copied().fold(f64::INFINITY, f64::min),
        stage(&|s| matches!(s, Stage::WSynthesis)),
        stage(&|s| matches!(s, Stage::WEncoder)),
        stage(&|s| matches!(s, Stage::Hypernet(_))),
    );
}

/// `VmHWM` of /proc/self/status: the peak resident set of this process.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints the time of every stage of a first (cold) and a second (warm) inversion of `images`.
fn profile(model: &HyperStyle<B>, images: Tensor<B, 4>, iters: usize) -> hyperstyle::Result<()> {
    let batch = images.dims()[0];
    // Each table is printed as soon as its call returns, so a cold call that outlives a time
    // limit still leaves the warm-up's numbers.
    for call in ["cold (first call)", "warm (second call)"] {
        let (_, times) = model.invert_timed(images.clone(), iters)?;
        println!("batch {batch}, {call}: time per stage, each closed by a device sync, and the GPU runtime's work");
        println!(
            "  {:<24} {:>10} {:>16} {:>15} {:>15}",
            "stage", "ms", "kernels compiled", "shapes tuned", "tuning trials"
        );
        let row = |name: &str, time: Duration, e: &RuntimeEvents| {
            println!(
                "  {name:<24} {:>10.1} {:>16} {:>15} {:>15}",
                ms(time),
                e.kernels_compiled,
                e.autotuned_shapes,
                e.autotune_trials
            );
        };
        for ((stage, time), events) in times.stages.iter().zip(&times.events) {
            row(&stage.to_string(), *time, events);
        }
        row("total", times.total(), &times.events.iter().copied().sum());
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Inverts the demo input with the upstream run's step count and prints the distance of the
/// codes and of every step's pooled image from upstream's outputs.
fn check(model: &HyperStyle<B>, demo: &Demo, input: Tensor<B, 4>) -> hyperstyle::Result<()> {
    let inversion = model.invert(input, demo.n_iters()?)?;
    println!("distance from upstream's outputs:");
    let print = |key: &str, stats: Option<hyperstyle::core::ErrorStats>| match stats {
        Some(stats) => println!("  {key:<20} {stats}"),
        None => println!("  {key:<20} (no upstream output)"),
    };
    print("w_codes", demo.compare("w_codes", 0, &inversion.latents));
    print(
        "w_inversion_pooled",
        demo.compare("w_inversion_pooled", 0, &inversion.w_inversion),
    );
    for (i, step) in inversion.steps.iter().enumerate() {
        let key = format!("iter{i}_image_pooled");
        print(&key, demo.compare(&key, 0, &step.pooled));
    }
    Ok(())
}
