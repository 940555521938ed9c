//! Invert photos with HyperStyle and write every refinement step.
//!
//! ```text
//! cargo run --release --example invert                       # bundled demo, checked against upstream
//! cargo run --release --example invert -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --iters 5 photos/ --save-tensors
//! ```
//! Models are converted with `weights-convert` from the upstream `.pt` files.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use common::{
    load_images, progress_bar, refinement_steps, report, say, side_by_side, BoxError, Failures, ModelArgs, Outputs,
};
use hyperstyle::backend::{set_precision, DefaultBackend as B, Precision};
use hyperstyle::io::{save_image, tensor_to_images};
use hyperstyle::stylegan2::ConvStrategy;
use hyperstyle::{HyperStyle, Inversion, OffsetPrecision, SavedInversion};
use image::RgbImage;

#[derive(Parser)]
#[command(about = "Invert images into StyleGAN2 with HyperStyle")]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Refinement steps (default 5; the demo uses its upstream run's 3).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    iters: Option<u64>,
    /// Images inverted together.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    batch: u64,
    /// Output folder.
    #[arg(long, default_value = "out/invert")]
    output: PathBuf,
    /// Also write NAME.safetensors per input: latents, the final offsets and each step's raw
    /// image (full resolution and pooled); `edit --inversion` reads it.
    #[arg(long)]
    save_tensors: bool,
    /// Also write NAME_generator.safetensors per input: the generator with that image's offsets
    /// folded into its weights, a plain StyleGAN2 checkpoint (`g_ema/…`; ~120 MB at 1024) that
    /// renders the inversion's latents without offsets (`generate --model` loads it).
    #[arg(long)]
    export_generator: bool,
    /// Store the offsets as f16 (half the size).
    #[arg(long)]
    offsets_f16: bool,
    /// Float type of every tensor on the device: f32, f16 or bf16. The half types halve the
    /// memory (and are faster on GPUs with tensor cores) at a small error (BENCHMARKS.md).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// How per-sample convolutions run: per-sample (dense conv per image) or gemm (one batched
    /// matrix product); same result, the faster one depends on the backend and batch.
    #[arg(long, default_value = "per-sample")]
    conv: ConvStrategy,
    /// Images (PNG, JPEG) or folders of images. FFHQ-aligned crops for faces.
    inputs: Vec<PathBuf>,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let device = Default::default();
    // Before the first tensor: the device's precision is fixed by it.
    set_precision::<B>(&device, args.precision)?;
    let (mut model, demo) = args.model.load("ffhq256", &device)?;
    model.set_conv_strategy(args.conv);
    let n_iters = refinement_steps(args.iters, demo.as_ref(), 5)?;
    let mut inputs = args.inputs.clone();
    if let (Some(demo), true) = (&demo, inputs.is_empty()) {
        inputs.push(demo.photo("astronaut.png"));
    }
    if inputs.is_empty() {
        return Err("no input images given".into());
    }
    // Load every image first: a bad file is reported and skipped, the others go on.
    let mut failures = Failures::default();
    let images = load_images(&inputs, &mut failures);
    let input_files: Vec<PathBuf> = images.iter().map(|(path, _)| path.clone()).collect();
    let mut outputs = Outputs::new(&args.output, &input_files)?;
    let bar = progress_bar(images.len() * n_iters, "steps")?;
    for chunk in images.chunks(args.batch as usize) {
        let start = Instant::now();
        let photos: Vec<RgbImage> = chunk.iter().map(|(_, image)| image.clone()).collect();
        let result = model.invert_images_with_progress(&photos, n_iters, |_| bar.inc(chunk.len() as u64));
        let inversion = match result {
            Ok(inversion) => inversion,
            Err(e) => {
                for (path, _) in chunk {
                    failures.fail(Some(&bar), format!("failed on {}: {e}", path.display()));
                }
                continue;
            }
        };
        let per_image = start.elapsed().as_secs_f32() / chunk.len() as f32;
        for (b, (path, image)) in chunk.iter().enumerate() {
            let name = outputs.name(path);
            match write_outputs(&args, &outputs, &model, &inversion, b, &name, image) {
                Ok(()) => {
                    failures.succeed();
                    say(
                        &bar,
                        format!(
                            "{} → {}/{name}_* ({per_image:.2} s/image)",
                            path.display(),
                            args.output.display()
                        ),
                    );
                }
                Err(e) => failures.fail(Some(&bar), format!("cannot write outputs of {}: {e}", path.display())),
            }
            if let Some(demo) = &demo {
                let codes = inversion.latents.clone().narrow(0, b, 1);
                report(demo, &bar, path, "W+ codes", "w_codes", &codes);
                for (i, step) in inversion.steps.iter().enumerate() {
                    let pooled = step.pooled.clone().narrow(0, b, 1);
                    report(
                        demo,
                        &bar,
                        path,
                        &format!("step {i} image"),
                        &format!("iter{i}_image_pooled"),
                        &pooled,
                    );
                }
            }
        }
    }
    bar.finish();
    if demo.is_some() {
        println!("Demo done: outputs in {}.", args.output.display());
    }
    failures.finish()
}

/// Writes `NAME_step{i}.png`, `NAME_grid.png` and, with --save-tensors, `NAME.safetensors`.
fn write_outputs(
    args: &Args,
    outputs: &Outputs,
    model: &HyperStyle<B>,
    inversion: &Inversion<B>,
    b: usize,
    name: &str,
    input: &RgbImage,
) -> Result<(), BoxError> {
    let mut grid = vec![input.clone()];
    for (i, step) in inversion.steps.iter().enumerate() {
        let image = tensor_to_images(step.image.clone().narrow(0, b, 1))?.remove(0);
        save_image(&image, outputs.file(&format!("{name}_step{i}.png"))?)?;
        grid.push(image);
    }
    let height = grid.last().map_or(1, |i| i.height());
    save_image(&side_by_side(&grid, height), outputs.file(&format!("{name}_grid.png"))?)?;
    if args.export_generator {
        model.export_tuned_generator(inversion, b, outputs.file(&format!("{name}_generator.safetensors"))?)?;
    }
    if args.save_tensors {
        let saved = SavedInversion::new(inversion, model.config()).sample(b)?;
        let mut images = Vec::new();
        for (i, step) in inversion.steps.iter().enumerate() {
            images.push((format!("image_step{i}"), step.image.clone().narrow(0, b, 1)));
            images.push((format!("image_step{i}_pooled"), step.pooled.clone().narrow(0, b, 1)));
        }
        let precision = if args.offsets_f16 {
            OffsetPrecision::F16
        } else {
            OffsetPrecision::F32
        };
        saved.save_with_images(outputs.file(&format!("{name}.safetensors"))?, precision, &images)?;
    }
    Ok(())
}
