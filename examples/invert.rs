//! Invert photos with HyperStyle and write every refinement step.
//!
//! ```text
//! cargo run --release --example invert                       # bundled demo, checked against upstream
//! cargo run --release --example invert -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --iters 5 photos/ --save-tensors
//! cargo run --release --example invert -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --layout upstream --save-weight-deltas photos/
//! cargo run --release --example invert -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --export-generator --export-format pt face.jpg
//! cargo run --release --example invert -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors \
//!     --align --landmarks shape_predictor_68_face_landmarks.dat holiday.jpg
//! ```
//! `--align` first finds and crops the face of each ordinary photo the FFHQ way, as upstream's
//! alignment script does (examples/common/mod.rs, `AlignArgs`).
//! By default every file goes to the output folder, named after its input (`NAME_step0.png`, …,
//! `NAME_grid.png`); `--layout upstream` writes upstream's `scripts/inference.py` folders instead
//! (`inference_results/<step>/`, `inference_coupled/`, `latents.npy`, `weight_deltas/`,
//! `stats.txt`; examples/common/upstream.rs). Models are converted with `weights-convert` from
//! the upstream `.pt` files.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use common::upstream::{network_input_image, sample_deltas, InferenceWriter, Layout};
use common::{
    check_align_domain, load_photos, progress_bar, refinement_steps, report, say, side_by_side, AlignArgs, BoxError,
    Failures, ModelArgs, Outputs,
};
use hyperstyle::backend::{set_precision, DefaultBackend as B, Precision};
use hyperstyle::export::ExportFormat;
use hyperstyle::io::{save_image, tensor_to_images};
use hyperstyle::stylegan2::ConvStrategy;
use hyperstyle::{HyperStyle, Inversion, OffsetPrecision, SavedInversion};
use image::RgbImage;

#[derive(Parser)]
#[command(about = "Invert images into StyleGAN2 with HyperStyle")]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    align: AlignArgs,
    /// Refinement steps (default 5; the demo uses its upstream run's 3).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    iters: Option<u64>,
    /// Images inverted together.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    batch: u64,
    /// Output folder.
    #[arg(long, default_value = "out/invert")]
    output: PathBuf,
    /// What is written: flat (NAME_step0.png, …, NAME_grid.png in the output folder) or upstream
    /// (upstream's folders: inference_results/STEP/FILE, inference_coupled/FILE, stats.txt and
    /// latents.npy, upstream's pickled dict {FILE: W+ codes}).
    #[arg(long, value_enum, default_value_t = Layout::Flat)]
    layout: Layout,
    /// Write the step images at the network's input size (256×256; cars 256×192), the pooled
    /// images, instead of the generator's (upstream's --resize_outputs).
    #[arg(long)]
    resize_outputs: bool,
    /// Invert only the first N inputs (folders expanded and sorted first; upstream's --n_images).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    n_images: Option<u64>,
    /// With --layout upstream: also write each image's final weight offsets as upstream's
    /// --save_weight_deltas does, weight_deltas/STEM.npy: the pickled list of per-layer float32
    /// arrays (None for untuned layers), ~94 MB per face.
    #[arg(long)]
    save_weight_deltas: bool,
    /// Also write NAME.safetensors per input: latents, the final offsets and each step's raw
    /// image (full resolution and pooled); `edit --inversion` reads it.
    #[arg(long)]
    save_tensors: bool,
    /// Also write NAME_generator.safetensors (or .pt, see --export-format) per input: the
    /// generator with that image's offsets folded into its weights, a plain StyleGAN2 checkpoint
    /// (`g_ema/…`; ~120 MB at 1024) that renders the inversion's latents without offsets
    /// (`generate --model` loads the safetensors form).
    #[arg(long)]
    export_generator: bool,
    /// Format of --export-generator: safetensors (this project's converted checkpoint) or pt (a
    /// PyTorch checkpoint {'g_ema': state_dict}, as torch.save writes it, for rosinality's and
    /// upstream's Python code).
    #[arg(long, value_enum, default_value_t = ExportFormatArg::Safetensors)]
    export_format: ExportFormatArg,
    /// Store the offsets as f16 (half the size).
    #[arg(long)]
    offsets_f16: bool,
    /// Float type of every tensor on the device: f32, f16 or bf16. The half types halve the
    /// memory (and are faster on GPUs with tensor cores) at a small error (BENCHMARKS.md).
    /// tf32: f32 tensors whose convolution and matrix-product operands keep 10 fraction bits on
    /// NVIDIA tensor cores (CUDA; elsewhere the same as f32).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// How per-sample convolutions run on backends without native kernels: per-sample (dense conv
    /// per image) or gemm (one batched matrix product); same result. The CPU, wgpu and CUDA
    /// backends run their own convolution kernels either way.
    #[arg(long, default_value = "per-sample")]
    conv: ConvStrategy,
    /// Images (PNG, JPEG) or folders of images. FFHQ-aligned crops for faces, or any photos
    /// with --align.
    inputs: Vec<PathBuf>,
}

/// `--export-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormatArg {
    /// NAME_generator.safetensors.
    Safetensors,
    /// NAME_generator.pt.
    Pt,
}

impl From<ExportFormatArg> for ExportFormat {
    fn from(format: ExportFormatArg) -> Self {
        match format {
            ExportFormatArg::Safetensors => ExportFormat::Safetensors,
            ExportFormatArg::Pt => ExportFormat::Torch,
        }
    }
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
    // Before the first tensor: the device's precision is fixed by it.
    set_precision::<B>(&device, args.precision)?;
    let (mut model, demo) = args.model.load("ffhq256", &device)?;
    check_align_domain(aligner.as_ref(), model.config().domain)?;
    model.set_conv_strategy(args.conv);
    let n_iters = refinement_steps(args.iters, demo.as_ref(), 5)?;
    let mut inputs = args.inputs.clone();
    if let (Some(demo), true) = (&demo, inputs.is_empty()) {
        inputs.push(demo.photo("astronaut.png"));
    }
    if inputs.is_empty() {
        return Err("no input images given".into());
    }
    if args.save_weight_deltas && args.layout != Layout::Upstream {
        return Err("--save-weight-deltas belongs to --layout upstream (the flat layout has --save-tensors)".into());
    }
    // Load (and align) every image first: a bad file or a photo without a face is reported and
    // skipped, the others go on.
    let mut failures = Failures::default();
    let images = load_photos(&inputs, aligner.as_ref(), args.n_images, &mut failures)?;
    let input_files: Vec<PathBuf> = images.iter().map(|(path, _)| path.clone()).collect();
    let mut outputs = Outputs::new(&args.output, &input_files)?;
    let mut upstream = match args.layout {
        Layout::Flat => None,
        Layout::Upstream => Some(InferenceWriter::new(
            &args.output,
            &input_files,
            model.config(),
            args.resize_outputs,
        )?),
    };
    let bar = progress_bar(images.len() * n_iters, "steps")?;
    for chunk in images.chunks(args.batch as usize) {
        let start = Instant::now();
        let photos: Vec<RgbImage> = chunk.iter().map(|(_, image)| image.clone()).collect();
        let result = model.invert_images_with_progress(&photos, n_iters, |_| bar.inc(chunk.len() as u64));
        if let Some(writer) = &mut upstream {
            writer.record_batch_time(start.elapsed().as_secs_f64());
        }
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
            let written = match &mut upstream {
                None => {
                    let name = outputs.name(path);
                    write_outputs(&args, &outputs, &model, &inversion, b, &name, image)
                        .map(|()| format!("{}/{name}_*", args.output.display()))
                }
                Some(writer) => write_upstream(&args, writer, &model, &inversion, b, path, image),
            };
            match written {
                Ok(written) => {
                    failures.succeed();
                    say(&bar, format!("{} → {written} ({per_image:.2} s/image)", path.display()));
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
    if let Some(writer) = upstream {
        if let Err(e) = writer.finish() {
            failures.fail(None, format!("cannot write latents.npy / stats.txt: {e}"));
        }
    }
    if demo.is_some() {
        println!("Demo done: outputs in {}.", args.output.display());
    }
    failures.finish()
}

/// Writes `NAME_step{i}.png`, `NAME_grid.png` and the optional files of [`write_extras`].
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
        let image = if args.resize_outputs { &step.pooled } else { &step.image };
        let image = tensor_to_images(image.clone().narrow(0, b, 1))?.remove(0);
        save_image(&image, outputs.file(&format!("{name}_step{i}.png"))?)?;
        grid.push(image);
    }
    let height = grid.last().map_or(1, |i| i.height());
    save_image(&side_by_side(&grid, height), outputs.file(&format!("{name}_grid.png"))?)?;
    write_extras(args, &|file| outputs.file(file), model, inversion, b, name)
}

/// Upstream's files for sample `b` (examples/common/upstream.rs), the optional weight offsets and
/// the files of [`write_extras`] (named after the image's stem). Returns where the images went.
fn write_upstream(
    args: &Args,
    writer: &mut InferenceWriter,
    model: &HyperStyle<B>,
    inversion: &Inversion<B>,
    b: usize,
    path: &Path,
    photo: &RgbImage,
) -> Result<String, BoxError> {
    let name = writer.name(path);
    let input = network_input_image::<B>(photo, model.input_size(), &inversion.latents.device())?;
    writer.write_sample(&name, &input, inversion, b)?;
    if args.save_weight_deltas {
        let deltas = sample_deltas(&inversion.offsets, &model.generator().config().layers(), b)?;
        writer.write_weight_deltas(&name, &deltas)?;
    }
    write_extras(args, &|file| writer.file(file), model, inversion, b, &name.stem)?;
    Ok(format!("{}/inference_results/*/{}", args.output.display(), name.file))
}

/// With --export-generator, `NAME_generator.safetensors` (or `.pt`); with --save-tensors,
/// `NAME.safetensors`. `file` gives an output file's path from its name.
fn write_extras(
    args: &Args,
    file: &dyn Fn(&str) -> Result<PathBuf, BoxError>,
    model: &HyperStyle<B>,
    inversion: &Inversion<B>,
    b: usize,
    name: &str,
) -> Result<(), BoxError> {
    if args.export_generator {
        let format = ExportFormat::from(args.export_format);
        let path = file(&format!("{name}_generator.{}", format.extension()))?;
        model.export_tuned_generator_as(inversion, b, path, format)?;
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
        saved.save_with_images(file(&format!("{name}.safetensors"))?, precision, &images)?;
    }
    Ok(())
}
