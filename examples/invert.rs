//! Invert photos with HyperStyle and write every refinement step.
//!
//! ```text
//! cargo run --release --example invert                       # bundled demo, checked against upstream
//! cargo run --release --example invert -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --iters 5 photos/ --save-tensors
//! ```
//! Models are converted with `weights-convert` from the upstream `.pt` files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use hyperstyle::backend::{set_precision, Default as B, Precision};
use hyperstyle::io::{images_to_tensor, load_images, save_image, side_by_side, tensor_to_images};
use hyperstyle::saved::{add_inversion, TensorFile};
use hyperstyle::stylegan2::ConvStrategy;
use hyperstyle::{Domain, HyperStyle, HyperStyleConfig, Inversion, OffsetPrecision};
use hyperstyle_testing::{error_stats, fixtures_dir, hyperstyle_stores, to_vec, Fixture};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(about = "Invert images into StyleGAN2 with HyperStyle")]
struct Args {
    /// Converted HyperStyle checkpoint (.safetensors). Without --model and --w-encoder the bundled
    /// demo runs: the 256×256 test model (deterministic pattern weights, not a trained model) on a
    /// bundled public-domain photo, compared with the upstream implementation's output.
    #[arg(long, requires = "w_encoder")]
    model: Option<PathBuf>,
    /// Converted W-encoder checkpoint (.safetensors).
    #[arg(long, requires = "model")]
    w_encoder: Option<PathBuf>,
    /// Refinement steps (default 5; the demo uses its fixture's 3).
    #[arg(long)]
    iters: Option<usize>,
    /// Domain, overriding the checkpoint's: faces, cars or wild.
    #[arg(long, value_parser = Domain::from_name)]
    domain: Option<Domain>,
    /// Images inverted together.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Output folder.
    #[arg(long, default_value = "out/invert")]
    output: PathBuf,
    /// Also write NAME.safetensors per input: latents, each step's raw image (full resolution and
    /// pooled) and the final offsets.
    #[arg(long)]
    save_tensors: bool,
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
    /// Images (PNG, JPEG) or folders of images.
    inputs: Vec<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Default::default();
    // Before the first tensor: the device's precision is fixed by it.
    set_precision::<B>(&device, args.precision)?;
    let demo = args.model.is_none();
    let (mut model, n_iters, inputs, fixture) = if let (Some(model), Some(w_encoder)) = (&args.model, &args.w_encoder) {
        let config = args.domain.map(HyperStyleConfig::for_domain);
        let model = HyperStyle::<B>::from_files(model, w_encoder, config, &device)?;
        (model, args.iters.unwrap_or(5), args.inputs.clone(), None)
    } else {
        println!("No --model given: running the bundled demo (256×256 test model with pattern weights).");
        let fixture = Fixture::load("ffhq256");
        let config = HyperStyleConfig::from_opts(&fixture.manifest.meta);
        let (hyperstyle, w_encoder) = hyperstyle_stores(&fixture.manifest);
        let model = HyperStyle::<B>::load(&hyperstyle, &w_encoder, Some(config), &device)?;
        let inputs = if args.inputs.is_empty() {
            vec![fixtures_dir().join("images/astronaut.png")]
        } else {
            args.inputs.clone()
        };
        (
            model,
            args.iters.unwrap_or(fixture.manifest.meta_usize("n_iters")),
            inputs,
            Some(fixture),
        )
    };
    if inputs.is_empty() {
        return Err("no input images given".into());
    }
    model.set_conv_strategy(args.conv);
    std::fs::create_dir_all(&args.output)?;
    let size = model.config().domain.input_size();
    let precision = if args.offsets_f16 {
        OffsetPrecision::F16
    } else {
        OffsetPrecision::F32
    };

    // Load every image first: a bad file is reported and skipped, the others go on.
    let (images, skipped) = load_images(&inputs);
    for message in skipped {
        eprintln!("skipping {message}");
    }
    let bar = ProgressBar::new((images.len() * n_iters) as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} steps {elapsed_precise} {msg}",
    )?);
    let mut failures = 0;
    for chunk in images.chunks(args.batch.max(1)) {
        let start = Instant::now();
        let rgb: Vec<_> = chunk.iter().map(|(_, image)| image.clone()).collect();
        let batch = images_to_tensor::<B>(&rgb, size, &device);
        let result = model.invert_with_progress(batch, n_iters, |_| bar.inc(chunk.len() as u64));
        let inversion = match result {
            Ok(inversion) => inversion,
            Err(e) => {
                bar.suspend(|| eprintln!("failed on {:?}: {e}", chunk.iter().map(|(p, _)| p).collect::<Vec<_>>()));
                failures += chunk.len();
                continue;
            }
        };
        let per_image = start.elapsed().as_secs_f32() / chunk.len() as f32;
        for (b, (path, image)) in chunk.iter().enumerate() {
            match write_outputs(&args, &model, &inversion, b, path, image, precision) {
                Ok(stem) => bar.suspend(|| {
                    println!(
                        "{} → {}/{stem}_* ({per_image:.2} s/image)",
                        path.display(),
                        args.output.display()
                    )
                }),
                Err(e) => {
                    bar.suspend(|| eprintln!("cannot write outputs of {}: {e}", path.display()));
                    failures += 1;
                }
            }
            if let Some(fixture) = &fixture {
                bar.suspend(|| report_against_golden(fixture, &inversion, b, path));
            }
        }
    }
    bar.finish();
    if demo {
        println!("Demo done: outputs in {}.", args.output.display());
    }
    if failures > 0 {
        return Err(format!("{failures} image(s) failed").into());
    }
    Ok(())
}

/// Writes `NAME_step{i}.png`, `NAME_grid.png` and, with --save-tensors, `NAME.safetensors`.
fn write_outputs(
    args: &Args,
    model: &HyperStyle<B>,
    inversion: &Inversion<B>,
    b: usize,
    path: &Path,
    input: &image::RgbImage,
    precision: OffsetPrecision,
) -> Result<String, Box<dyn std::error::Error>> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let mut grid = vec![input.clone()];
    for (i, step) in inversion.steps.iter().enumerate() {
        let image = tensor_to_images(step.image.clone().narrow(0, b, 1))?.remove(0);
        save_image(&image, args.output.join(format!("{stem}_step{i}.png")))?;
        grid.push(image);
    }
    save_image(&side_by_side(&grid), args.output.join(format!("{stem}_grid.png")))?;
    if args.save_tensors {
        let mut file = TensorFile::new();
        let offsets: Vec<_> = inversion
            .offsets
            .iter()
            .map(|o| o.as_ref().map(|t| t.clone().narrow(0, b, 1)))
            .collect();
        add_inversion(
            &mut file,
            inversion.latents.clone().narrow(0, b, 1),
            &offsets,
            model.config(),
            precision,
        )?;
        for (i, step) in inversion.steps.iter().enumerate() {
            file.add(&format!("image_step{i}"), step.image.clone().narrow(0, b, 1), false)?;
            file.add(
                &format!("image_step{i}_pooled"),
                step.pooled.clone().narrow(0, b, 1),
                false,
            )?;
        }
        file.write(args.output.join(format!("{stem}.safetensors")))?;
    }
    Ok(stem)
}

/// Demo: the bundled photos are the fixture's inputs; print how far each result is from what
/// the upstream implementation computed.
fn report_against_golden(fixture: &Fixture, inversion: &Inversion<B>, b: usize, path: &Path) {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let names: Vec<&str> = fixture.manifest.meta["images"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(index) = names
        .iter()
        .position(|n| *n == stem)
        .or_else(|| stem.strip_prefix("ffhq256_input").and_then(|i| i.parse().ok()))
    else {
        println!("  ({stem} is not a bundled fixture photo: no upstream reference to compare with)");
        return;
    };
    let compare = |what: &str, ours: Vec<f32>, golden: &str| {
        let (shape, values) = fixture.golden.get(golden);
        let per_item = values.len() / shape[0];
        let stats = error_stats(&ours, &values[index * per_item..(index + 1) * per_item]);
        println!(
            "  {what:<22} max-abs diff from upstream {:.2e} (mean {:.2e})",
            stats.max_abs, stats.mean_abs
        );
    };
    compare(
        "W+ codes",
        to_vec(inversion.latents.clone().narrow(0, b, 1)).1,
        "w_codes",
    );
    for (i, step) in inversion.steps.iter().enumerate() {
        let key = format!("iter{i}_image_pooled");
        if fixture.golden.contains(&key) {
            compare(
                &format!("step {i} image"),
                to_vec(step.pooled.clone().narrow(0, b, 1)).1,
                &key,
            );
        }
    }
}
