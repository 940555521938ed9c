//! Per-operation profile of one StyleGAN2 synthesis pass on the CPU backend: every operation the
//! generator runs at each resolution, at the generator's shapes (per-sample kernels, as in a
//! refinement step), with its time, arithmetic rate, and the page faults and system time it
//! caused.
//!
//! ```text
//! cargo run --release --example op_profile                         # the CPU kernels (default path)
//! cargo run --release --example op_profile -- --path tensor-ops    # the generic tensor-op forms
//! cargo run --release --example op_profile -- --size 256 --batch 4 --reuse-freed-memory
//! ```
//! `--path tensor-ops` times the form every other backend runs (Burn's conv2d / conv_transpose2d,
//! the FIR filter as a one-channel conv, separate element-wise operations): the "before" of the
//! CPU kernels. Times are the median of `--reps` runs after a warm-up run.

mod common;

use std::time::Instant;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::Distribution;
use clap::{Parser, ValueEnum};
use hyperstyle::kernels::flex;
use hyperstyle::stylegan2::GeneratorConfig;

type B = Flex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Path {
    /// hyperstyle-kernels (what the CPU backend runs).
    Kernels,
    /// Burn tensor operations (what every other backend runs).
    TensorOps,
}

#[derive(Parser, Debug)]
#[command(about = "Time every operation of a StyleGAN2 synthesis pass on the CPU backend")]
struct Args {
    /// Generator output size (a power of two, 8 to 1024; FFHQ channel widths).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Which implementation to time.
    #[arg(long, value_enum, default_value_t = Path::Kernels)]
    path: Path,
    /// Timed runs per operation (median reported), after one warm-up run.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Call `hyperstyle::backend::reuse_freed_memory()` first.
    #[arg(long)]
    reuse_freed_memory: bool,
}

/// Minor page faults and system CPU seconds of this process so far (Linux `/proc/self/stat`).
fn faults_and_system_time() -> (u64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (field(10), field(15) as f64 / 100.0)
}

struct Row {
    op: String,
    shape: String,
    ms: f64,
    gflops: Option<f64>,
    faults: f64,
    system_ms: f64,
}

fn measure(reps: usize, flop: Option<f64>, op: String, shape: String, mut f: impl FnMut() -> Tensor<B, 4>) -> Row {
    let _ = f().into_data();
    let mut times = Vec::with_capacity(reps);
    let (f0, s0) = faults_and_system_time();
    for _ in 0..reps {
        let start = Instant::now();
        let y = f();
        // Reading the result back forces the computation and includes handing it on.
        let _ = y.into_data();
        times.push(start.elapsed().as_secs_f64());
    }
    let (f1, s1) = faults_and_system_time();
    times.sort_by(f64::total_cmp);
    let t = times[times.len() / 2];
    Row {
        op,
        shape,
        ms: t * 1e3,
        gflops: flop.map(|f| f / t / 1e9),
        faults: (f1 - f0) as f64 / reps as f64,
        system_ms: (s1 - s0) * 1e3 / reps as f64,
    }
}

/// The tensor-op form of a per-sample convolution: `conv(x_b, w_b)` for every sample `b` of x
/// `[n, in, h, w]` with weights `[n, out, in, k, k]`, concatenated.
fn per_sample(
    x: &Tensor<B, 4>,
    weights: &Tensor<B, 5>,
    conv: impl Fn(Tensor<B, 4>, Tensor<B, 4>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [n, cout, cin, k, _] = weights.dims();
    let out = (0..n)
        .map(|b| {
            let w = weights.clone().narrow(0, b, 1).reshape([cout, cin, k, k]);
            conv(x.clone().narrow(0, b, 1), w)
        })
        .collect();
    Tensor::cat(out, 0)
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), common::BoxError> {
    let args = Args::parse();
    if args.reuse_freed_memory {
        hyperstyle::backend::reuse_freed_memory();
    }
    let config = GeneratorConfig::new(args.size);
    config.validate()?;
    let device = Default::default();
    let n = args.batch;
    let random = |shape: Vec<usize>| {
        Tensor::<B, 1>::random(
            [shape.iter().product::<usize>()],
            Distribution::Normal(0.0, 0.5),
            &device,
        )
    };
    let t4 = |shape: [usize; 4]| random(shape.to_vec()).reshape(shape);
    let t5 = |shape: [usize; 5]| random(shape.to_vec()).reshape(shape);
    let kernels = args.path == Path::Kernels;
    let fir: Vec<f32> = {
        let taps = [1.0f32, 3.0, 3.0, 1.0];
        taps.iter()
            .flat_map(|a| taps.iter().map(move |b| a * b / 16.0))
            .collect()
    };
    let fir_tensor = Tensor::<B, 4>::from_data(
        TensorData::new(fir.iter().rev().copied().collect::<Vec<_>>(), [1, 1, 4, 4]),
        &device,
    );
    let fir_up = Tensor::<B, 4>::from_data(
        TensorData::new(fir.iter().map(|v| v * 4.0).collect::<Vec<_>>(), [1, 1, 4, 4]),
        &device,
    );
    let fir4: Vec<f32> = fir.iter().map(|v| v * 4.0).collect();
    let mut rows = Vec::new();
    let reps = args.reps.max(1);
    let mut r = 8;
    while r <= args.size {
        let (ci, co) = (config.channels(r / 2), config.channels(r));
        let h = r / 2;
        let x = t4([n, ci, h, h]);
        let w_up = t5([n, co, ci, 3, 3]);
        let flop = 2.0 * (n * h * h * ci * co * 9) as f64;
        rows.push(measure(
            reps,
            Some(flop),
            "conv up (transposed 3×3, stride 2)".into(),
            format!("{ci}→{co} @{h}²"),
            || {
                if kernels {
                    flex::conv_transpose2d_stride2(&x, &w_up).expect("flex f32")
                } else {
                    per_sample(&x, &w_up, |x, w| {
                        let options = ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1);
                        conv_transpose2d(x, w.swap_dims(0, 1), None, options)
                    })
                }
            },
        ));
        let y = t4([n, co, r + 1, r + 1]);
        rows.push(measure(
            reps,
            None,
            "blur (4×4 FIR, pad 1)".into(),
            format!("{co}ch @{}²", r + 1),
            || {
                if kernels {
                    flex::upfirdn2d(&y, &fir4, [4, 4], 1, [1, 1]).expect("flex f32")
                } else {
                    let folded = y.clone().reshape([n * co, 1, r + 1, r + 1]);
                    conv2d(
                        folded,
                        fir_tensor.clone().mul_scalar(4.0),
                        None,
                        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                    )
                    .reshape([n, co, r, r])
                }
            },
        ));
        let a = t4([n, co, r, r]);
        let noise = t4([1, 1, r, r]);
        let bias = Tensor::<B, 1>::random([co], Distribution::Normal(0.0, 0.5), &device);
        rows.push(measure(
            reps,
            None,
            "noise + bias + leaky ReLU".into(),
            format!("{co}ch @{r}²"),
            || {
                let fresh = a.clone().add_scalar(0.0);
                if kernels {
                    flex::noise_bias_leaky_relu(fresh, &noise, 0.3, &bias, 0.2, std::f32::consts::SQRT_2)
                        .expect("flex f32")
                } else {
                    hyperstyle::core::nn::scaled_leaky_relu(
                        fresh + noise.clone().mul_scalar(0.3) + bias.clone().reshape([1, co, 1, 1]),
                    )
                }
            },
        ));
        let w = t5([n, co, co, 3, 3]);
        let flop = 2.0 * (n * r * r * co * co * 9) as f64;
        rows.push(measure(
            reps,
            Some(flop),
            "conv 3×3".into(),
            format!("{co}→{co} @{r}²"),
            || {
                if kernels {
                    flex::conv2d_same(&a, &w).expect("flex f32")
                } else {
                    per_sample(&a, &w, |x, w| {
                        conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
                    })
                }
            },
        ));
        let w_rgb = t5([n, 3, co, 1, 1]);
        let flop = 2.0 * (n * r * r * co * 3) as f64;
        rows.push(measure(
            reps,
            Some(flop),
            "ToRGB conv 1×1".into(),
            format!("{co}→3 @{r}²"),
            || {
                if kernels {
                    flex::conv2d_same(&a, &w_rgb).expect("flex f32")
                } else {
                    per_sample(&a, &w_rgb, |x, w| {
                        conv2d(x, w, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
                    })
                }
            },
        ));
        let skip = t4([n, 3, h, h]);
        rows.push(measure(
            reps,
            None,
            "RGB skip up-sampling (FIR, up 2)".into(),
            format!("3ch @{h}²"),
            || {
                if kernels {
                    flex::upfirdn2d(&skip, &fir4, [4, 4], 2, [2, 1]).expect("flex f32")
                } else {
                    let folded = skip.clone().reshape([n * 3, 1, h, h]);
                    conv_transpose2d(
                        folded,
                        fir_up.clone(),
                        None,
                        ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
                    )
                    .reshape([n, 3, r, r])
                }
            },
        ));
        r *= 2;
    }
    println!(
        "{:?} path, size {}, batch {n}, median of {reps} runs (faults and system time: mean per run)",
        args.path, args.size
    );
    println!("| op | shape | ms | GFLOP/s | page faults | system ms |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut total = 0.0;
    for row in &rows {
        // Each resolution runs the activation twice (after the up conv and after the 3×3 conv).
        let count = if row.op.starts_with("noise") { 2.0 } else { 1.0 };
        total += count * row.ms;
        let gflops = row.gflops.map_or(String::new(), |g| format!("{g:.0}"));
        let times = if count > 1.0 { " (×2)" } else { "" };
        println!(
            "| {}{times} | {} | {:.1} | {gflops} | {:.0} | {:.1} |",
            row.op, row.shape, row.ms, row.faults, row.system_ms
        );
    }
    println!("total of the operations (activation counted twice per resolution): {total:.0} ms");
    Ok(())
}
