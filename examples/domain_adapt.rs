//! Domain adaptation: a photo's HyperStyle offsets and ReStyle-e4e codes rendered by a
//! fine-tuned generator (Toonify, Pixar, Sketch, Disney princess; REFERENCE §9).
//!
//! ```text
//! cargo run --release --example domain_adapt                 # bundled 1024 demo (a minute or two on a CPU)
//! cargo run --release --example domain_adapt -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --restyle restyle_e4e_ffhq_encode.safetensors \
//!     --generator toonify.safetensors photos/
//! ```
//! Each input gets `NAME_adapted.png`: input | HyperStyle inversion | adapted. All four models
//! are converted from the upstream `.pt` files with `weights-convert`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use clap::Parser;
use hyperstyle::backend::Default as B;
use hyperstyle::domain_adaptation::{AdaptOptions, Adaptation, DomainAdapter, ReStyle};
use hyperstyle::image_ops::pool;
use hyperstyle::io::{images_to_tensor, load_image, save_image, side_by_side, tensor_to_images};
use hyperstyle::stylegan2::{Generator, GeneratorConfig, Noise};
use hyperstyle::{HyperStyle, HyperStyleConfig};
use hyperstyle_testing::{error_stats, fixtures_dir, hyperstyle_stores, pattern_store, to_vec, Fixture};
use indicatif::{ProgressBar, ProgressStyle};

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
    #[arg(long)]
    iters: Option<usize>,
    /// ReStyle-e4e iterations.
    #[arg(long, default_value_t = 2)]
    restyle_iters: usize,
    /// Random noise in the fine-tuned generator, as upstream (non-deterministic); default: the
    /// generator's stored noise buffers.
    #[arg(long)]
    random_noise: bool,
    /// Seed of the random noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/domain_adapt")]
    output: PathBuf,
    /// Aligned face images (PNG, JPEG).
    inputs: Vec<PathBuf>,
}

/// The demo: the ffhq1024 fixture's four checkpoints with pattern weights.
fn demo(fixture: &Fixture, device: &Device<B>) -> hyperstyle::Result<(HyperStyle<B>, DomainAdapter<B>)> {
    let size = fixture.manifest.meta_usize("output_size");
    let config = HyperStyleConfig::from_opts(&fixture.manifest.meta);
    let checkpoint = |name| fixture.manifest.checkpoint(name);
    let (hyperstyle, w_encoder) = hyperstyle_stores(&fixture.manifest);
    let model = HyperStyle::load(&hyperstyle, &w_encoder, Some(config), device)?;
    let restyle = pattern_store(checkpoint("restyle_e4e"), &["encoder.", "decoder.", "latent_avg"]);
    let restyle = ReStyle::load(&restyle, None, device)?;
    let toon = pattern_store(checkpoint("toon_generator"), &[""]);
    let toon = Generator::load(&toon.root(), &GeneratorConfig::new(size), device)?;
    Ok((model, DomainAdapter::new(restyle, toon)?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Default::default();
    let (model, adapter, fixture) = match (&args.model, &args.w_encoder, &args.restyle, &args.generator) {
        (Some(model), Some(w_encoder), Some(restyle), Some(generator)) => {
            let model = HyperStyle::<B>::from_files(model, w_encoder, None, &device)?;
            (model, DomainAdapter::from_files(restyle, generator, &device)?, None)
        }
        _ => {
            println!(
                "No models given: running the bundled demo (1024×1024 test models with pattern weights: HyperStyle, \
                 ReStyle-e4e and a fine-tuned \"toon\" generator). On a CPU this takes a minute or two."
            );
            let fixture = Fixture::load("ffhq1024");
            let (model, adapter) = demo(&fixture, &device)?;
            (model, adapter, Some(fixture))
        }
    };
    let mut inputs = args.inputs.clone();
    if inputs.is_empty() {
        if fixture.is_none() {
            return Err("no input images given".into());
        }
        inputs.push(fixtures_dir().join("images/astronaut.png"));
    }
    let options = AdaptOptions {
        hyperstyle_iters: args
            .iters
            .unwrap_or_else(|| fixture.as_ref().map_or(2, |f| f.manifest.meta_usize("n_iters"))),
        restyle_iters: args.restyle_iters,
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
    std::fs::create_dir_all(&args.output)?;
    let size = model.config().domain.input_size();
    let passes = options.restyle_iters + options.hyperstyle_iters + 1;
    let bar = ProgressBar::new((inputs.len() * passes) as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} iterations {elapsed_precise} {msg}",
    )?);
    let mut failures = 0;
    for path in &inputs {
        let start = Instant::now();
        let result = (|| -> Result<PathBuf, Box<dyn std::error::Error>> {
            let image = load_image(path)?;
            let batch = images_to_tensor::<B>(std::slice::from_ref(&image), size, &device);
            let adapted = adapter.adapt(&model, batch, &options, |_| bar.inc(1))?;
            bar.inc(1);
            if let Some(fixture) = &fixture {
                report_against_golden(fixture, &adapted, path, &options, &bar);
            }
            let inversion = adapted
                .inversion
                .steps
                .last()
                .ok_or("no HyperStyle step was run (--iters 0)")?;
            let mut columns = vec![image];
            columns.extend(tensor_to_images(inversion.image.clone())?);
            columns.extend(tensor_to_images(adapted.image)?);
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let out = args.output.join(format!("{stem}_adapted.png"));
            save_image(&side_by_side(&columns), &out)?;
            Ok(out)
        })();
        match result {
            Ok(out) => say(
                &bar,
                format!(
                    "{} → {} ({:.1} s)",
                    path.display(),
                    out.display(),
                    start.elapsed().as_secs_f32()
                ),
            ),
            Err(e) => {
                say(&bar, format!("failed on {}: {e}", path.display()));
                failures += 1;
            }
        }
    }
    bar.finish();
    if failures > 0 {
        return Err(format!("{failures} image(s) failed").into());
    }
    Ok(())
}

/// Demo: the bundled photo is the fixture's input; print how far ReStyle's codes and the adapted
/// image are from what the upstream implementation computed, where the options are the fixture's
/// (2 ReStyle iterations; for the image also its HyperStyle steps and stored noise).
fn report_against_golden(
    fixture: &Fixture,
    adapted: &Adaptation<B>,
    path: &Path,
    options: &AdaptOptions<B>,
    bar: &ProgressBar,
) {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if !matches!(stem, "astronaut" | "ffhq1024_input0") {
        say(
            bar,
            format!("  ({stem} is not the bundled fixture photo: no upstream reference to compare with)"),
        );
        return;
    }
    if options.restyle_iters != 2 {
        return;
    }
    let compare = |what: &str, ours: Vec<f32>, key: &str| {
        let stats = error_stats(&ours, fixture.golden.get(key).1);
        say(
            bar,
            format!(
                "  {what:<16} max-abs diff from upstream {:.2e} (mean {:.2e})",
                stats.max_abs, stats.mean_abs
            ),
        );
    };
    compare(
        "ReStyle codes",
        to_vec(adapted.restyle_latents.clone()).1,
        "restyle_codes",
    );
    let stored_noise = matches!(options.noise, Noise::Stored);
    if stored_noise && options.hyperstyle_iters == fixture.manifest.meta_usize("n_iters") {
        compare(
            "adapted image",
            to_vec(pool(adapted.image.clone(), 256, 256)).1,
            "domain_adapted_pooled",
        );
    }
}

/// Prints a line above the progress bar (also when the bar is hidden because stderr is not a
/// terminal, where `ProgressBar::println` prints nothing).
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| println!("{line}"));
}
