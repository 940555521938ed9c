//! Domain adaptation: a photo's HyperStyle offsets and ReStyle-e4e codes rendered by a
//! fine-tuned generator (Toonify, Pixar, Sketch, Disney princess; docs/ARCHITECTURE.md §9).
//!
//! ```text
//! cargo run --release --example domain_adapt                 # bundled 1024 demo (a minute or two on a CPU)
//! cargo run --release --example domain_adapt -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --restyle restyle_e4e_ffhq_encode.safetensors \
//!     --generator toonify.safetensors photos/
//! cargo run --release --example domain_adapt -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --restyle restyle_e4e_ffhq_encode.safetensors \
//!     --generator toonify.safetensors --align --landmarks shape_predictor_68_face_landmarks.dat holiday.jpg
//! ```
//! Each input gets `NAME_adapted.png` (the result at full resolution) and `NAME_adapted_grid.png`:
//! input | HyperStyle inversion | adapted, at the generator's resolution. All four models
//! are converted from the upstream `.pt` files with `weights-convert`. `--align` first crops the
//! face of each ordinary photo the FFHQ way, as upstream's alignment script does
//! (examples/common/mod.rs, `AlignArgs`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use clap::Parser;
use common::{
    check_align_domain, load_photos, progress_bar, refinement_steps, report, side_by_side, AlignArgs, BoxError,
    Failures, Outputs,
};
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::demo::Demo;
use hyperstyle::domain_adaptation::{AdaptOptions, DomainAdapter};
use hyperstyle::image_ops::pool;
use hyperstyle::io::{images_to_tensor, save_image, tensor_to_images};
use hyperstyle::stylegan2::Noise;
use hyperstyle::HyperStyle;
use image::RgbImage;
use indicatif::ProgressBar;

#[derive(Parser)]
#[command(
    about = "Domain adaptation with HyperStyle: render a photo with a fine-tuned StyleGAN2 (e.g. Toonify)",
    after_help = "Without the four model files the bundled demo runs: the 1024×1024 test fixture models \
                  (HyperStyle, W encoder, ReStyle-e4e and a \"toon\" generator, all deterministic pattern \
                  weights, not trained models) on a bundled public-domain photo, compared with the upstream \
                  implementation's output. On a CPU it takes a minute or two."
)]
struct Args {
    /// Converted HyperStyle checkpoint (hyperstyle_ffhq.pt).
    #[arg(long, requires_all = ["w_encoder", "restyle", "generator"])]
    model: Option<PathBuf>,
    /// Converted W-encoder checkpoint (faces_w_encoder.pt).
    #[arg(long, requires = "model")]
    w_encoder: Option<PathBuf>,
    /// Converted ReStyle-e4e checkpoint (restyle_e4e_ffhq_encode.pt).
    #[arg(long, requires = "model")]
    restyle: Option<PathBuf>,
    /// Converted fine-tuned rosinality generator (toonify, pixar, sketch, disney_princess .pt).
    #[arg(long, requires = "model")]
    generator: Option<PathBuf>,
    /// HyperStyle refinement steps (default 2, as upstream's README command).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    iters: Option<u64>,
    /// ReStyle-e4e iterations.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    restyle_iters: u64,
    /// Random noise in the fine-tuned generator, as upstream (non-deterministic); default: the
    /// generator's stored noise buffers.
    #[arg(long)]
    random_noise: bool,
    /// Seed of the random noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images adapted together in one batch (faster per image on a GPU; more memory).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    batch: u64,
    /// Output folder.
    #[arg(long, default_value = "out/domain_adapt")]
    output: PathBuf,
    #[command(flatten)]
    align: AlignArgs,
    /// Aligned face images (PNG, JPEG) or folders of them; any photos with --align.
    inputs: Vec<PathBuf>,
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), common::BoxError> {
    let args = Args::parse();
    // Before the models: a missing or wrong --landmarks file is reported at once.
    let aligner = args.align.aligner()?;
    // Many large buffers come and go during a pass: keep freed memory for reuse (BENCHMARKS.md).
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    let (model, adapter, demo) = match (&args.model, &args.w_encoder, &args.restyle, &args.generator) {
        (Some(model), Some(w_encoder), Some(restyle), Some(generator)) => {
            let model = HyperStyle::<B>::builder()
                .model_file(model)
                .w_encoder_file(w_encoder)
                .load(&device)?;
            (model, DomainAdapter::from_files(restyle, generator, &device)?, None)
        }
        _ => {
            println!(
                "No models given: running the bundled demo (1024×1024 test models with pattern weights: HyperStyle, \
                 ReStyle-e4e and a fine-tuned \"toon\" generator). On a CPU this takes a minute or two."
            );
            let demo = Demo::load("ffhq1024")?;
            (demo.hyperstyle(&device)?, demo.domain_adapter(&device)?, Some(demo))
        }
    };
    check_align_domain(aligner.as_ref(), model.config().domain)?;
    let mut inputs = args.inputs.clone();
    if let (Some(demo), true) = (&demo, inputs.is_empty()) {
        inputs.push(demo.photo("astronaut.png"));
    }
    if inputs.is_empty() {
        return Err("no input images given".into());
    }
    let options = AdaptOptions {
        hyperstyle_iters: refinement_steps(args.iters, demo.as_ref(), 2)?,
        restyle_iters: args.restyle_iters as usize,
        noise: if args.random_noise {
            B::seed(&device, args.seed);
            Noise::Random
        } else {
            Noise::Stored
        },
    };
    println!(
        "Per image: {} ReStyle-e4e iterations (W+ codes), {} HyperStyle steps (weight offsets), then the fine-tuned \
         generator with the offsets of layers 14–24 ({} noise). Columns: input | inversion | adapted.",
        options.restyle_iters,
        options.hyperstyle_iters,
        if args.random_noise { "random" } else { "stored" }
    );
    let size = model.input_size();
    let mut failures = Failures::default();
    let images = load_photos(&inputs, aligner.as_ref(), None, &mut failures)?;
    let passes = options.restyle_iters + options.hyperstyle_iters + 1;
    let bar = progress_bar(images.len() * passes, "iterations")?;
    let input_files: Vec<PathBuf> = images.iter().map(|(path, _)| path.clone()).collect();
    let mut outputs = Outputs::new(&args.output, &input_files)?;
    for chunk in images.chunks(args.batch as usize) {
        let start = Instant::now();
        let photos: Vec<RgbImage> = chunk.iter().map(|(_, image)| image.clone()).collect();
        let batch = images_to_tensor::<B>(&photos, size, &device);
        let adapted = match adapter.adapt(&model, batch, &options, |_| bar.inc(chunk.len() as u64)) {
            Ok(adapted) => adapted,
            Err(err) => {
                // The whole batch failed: every file in it is reported.
                for (path, _) in chunk {
                    failures.record(&bar, path, start, Err(err.to_string().into()));
                }
                continue;
            }
        };
        bar.inc(chunk.len() as u64);
        for (b, (path, image)) in chunk.iter().enumerate() {
            let name = outputs.name(path);
            let result = (|| -> Result<PathBuf, BoxError> {
                let codes = adapted.restyle_latents.clone().narrow(0, b, 1);
                let adapted_image = adapted.image.clone().narrow(0, b, 1);
                if let Some(demo) = &demo {
                    report_adaptation(demo, (&codes, &adapted_image), path, &options, &bar);
                }
                let inversion = tensor_to_images(adapted.inversion.last_step().image.clone().narrow(0, b, 1))?;
                let result = tensor_to_images(adapted_image)?;
                for image in &result {
                    save_image(image, outputs.file(&format!("{name}_adapted.png"))?)?;
                }
                let height = result.first().map_or(1, |i| i.height());
                let mut columns = vec![image.clone()];
                columns.extend(inversion);
                columns.extend(result);
                let out = outputs.file(&format!("{name}_adapted_grid.png"))?;
                save_image(&side_by_side(&columns, height), &out)?;
                Ok(out)
            })();
            failures.record(&bar, path, start, result);
        }
    }
    bar.finish();
    failures.finish()
}

/// Demo: how far ReStyle's codes and the adapted image are from what the upstream
/// implementation computed, where the options are its run's (2 ReStyle iterations; for the image
/// also its HyperStyle steps and stored noise).
/// `(codes, image)`: one sample's ReStyle codes and adapted image.
fn report_adaptation(
    demo: &Demo,
    (codes, image): (&Tensor<B, 3>, &Tensor<B, 4>),
    path: &Path,
    options: &AdaptOptions<B>,
    bar: &ProgressBar,
) {
    if options.restyle_iters != 2 {
        return;
    }
    report(demo, bar, path, "ReStyle codes", "restyle_codes", codes);
    let stored_noise = matches!(options.noise, Noise::Stored);
    if stored_noise && demo.n_iters().ok() == Some(options.hyperstyle_iters) {
        let pooled = pool(image.clone(), 256, 256);
        report(demo, bar, path, "adapted image", "domain_adapted_pooled", &pooled);
    }
}
