//! Random images from a StyleGAN2 generator, with truncation.
//!
//! ```text
//! cargo run --release --example generate -- --model stylegan2-ffhq-config-f.safetensors --count 4 --truncation 0.7
//! cargo run --release --example generate            # the bundled 256 demo generator (pattern weights)
//! ```
//! The model is a converted rosinality generator (`weights-convert stylegan2-ffhq-config-f.pt
//! stylegan2-ffhq-config-f.safetensors`) or a converted HyperStyle checkpoint (its decoder).

mod common;

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use clap::Parser;
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::demo::Demo;
use hyperstyle::io::{save_image, tensor_to_images};
use hyperstyle::stylegan2::{GenerateOptions, Generator, GeneratorConfig, Noise};

#[derive(Parser)]
#[command(about = "Generate random images with a StyleGAN2 generator")]
struct Args {
    /// Converted generator (.safetensors). Without it, the bundled demo generator is used: the
    /// 256×256 test fixture with deterministic pattern weights (its images are not faces).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output resolution of the model.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Number of images.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    count: u64,
    /// Random seed of z (and of the noise with --random-noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Truncation ψ in (0, 1]; 1 disables truncation.
    #[arg(long, default_value_t = 0.7)]
    truncation: f32,
    /// Samples of the mapping network averaged for the truncation target.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    truncation_samples: u64,
    /// Fresh random noise instead of the checkpoint's stored noise buffers.
    #[arg(long)]
    random_noise: bool,
    /// Output folder.
    #[arg(long, default_value = "out/generate")]
    output: PathBuf,
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), common::BoxError> {
    let args = Args::parse();
    // Many large buffers come and go during a pass: keep freed memory for reuse (BENCHMARKS.md).
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    // A GPU backend without its driver: a clear error instead of a panic.
    hyperstyle::backend::check_device::<B>(&device)?;
    let generator: Generator<B> = match &args.model {
        Some(path) => Generator::from_file(path, &GeneratorConfig::new(args.size), &device)?,
        None => {
            println!("No --model given: using the bundled 256×256 demo generator (pattern weights).");
            Demo::load("ffhq256")?.generator(&device)?
        }
    };
    std::fs::create_dir_all(&args.output)?;
    B::seed(&device, args.seed);
    let truncation = (args.truncation < 1.0).then(|| {
        (
            args.truncation,
            generator.mean_latent(args.truncation_samples as usize, &device),
        )
    });
    let options = GenerateOptions {
        truncation,
        noise: if args.random_noise {
            Noise::Random
        } else {
            Noise::Stored
        },
        ..GenerateOptions::default()
    };
    let dim = generator.config().style_dim;
    for i in 0..args.count {
        let start = Instant::now();
        let z = Tensor::<B, 2>::random([1, dim], Distribution::Normal(0.0, 1.0), &device);
        let image = generator.generate(&[z], &options, None)?;
        let path = args.output.join(format!("seed{}_{i:03}.png", args.seed));
        save_image(&tensor_to_images(image)?[0], &path)?;
        println!(
            "[{}/{}] {} ({:.2} s)",
            i + 1,
            args.count,
            path.display(),
            start.elapsed().as_secs_f32()
        );
    }
    Ok(())
}
