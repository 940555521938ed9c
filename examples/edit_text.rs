//! Edits by text (StyleCLIP global directions) of inverted photos, on the bundled demo.
//!
//! ```text
//! cargo run --release --example edit_text -- --target "a face with a beard" --neutral "a face"
//! cargo run --release --example edit_text -- --alphas -4,0,4 --beta 0.1 photo.png
//! ```
//! Each photo is inverted with HyperStyle (W+ codes and weight offsets); the prompts become a
//! StyleSpace direction (CLIP's text tower, the channel relevances, the channel statistics:
//! docs/ARCHITECTURE.md §8.3), and every α renders `styles + α·direction` with the photo's
//! offsets. The demo's CLIP tower, relevances and statistics are pattern data (checked against
//! the original code in tests/styleclip.rs), so the edits show the mechanics, not a beard; with
//! real data the library calls are the same (`hyperstyle::styleclip`). This example is the short
//! walk through those calls; the command-line tool, with real CLIP / `fs3.npy` / `S_mean_std`
//! files, upstream's α × β grids, saved inversions and upstream's output layout, is
//! `edit --text` (examples/edit.rs).

mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use common::{load_images, progress_bar, say, side_by_side, BoxError, Failures, Outputs};
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::clip::Tokenizer;
use hyperstyle::demo::Demo;
use hyperstyle::io::{images_to_tensor, save_image, tensor_to_images};
use hyperstyle::styleclip::{apply, GlobalDirections};
use hyperstyle::stylegan2::Noise;

#[derive(Parser, Debug)]
#[command(about = "Edit inverted photos by text (StyleCLIP global directions) on the bundled demo")]
struct Args {
    /// What the edit should lead to.
    #[arg(long, default_value = "face with long hair")]
    target: String,
    /// What the photo is now (the edit is target − neutral).
    #[arg(long, default_value = "face with hair")]
    neutral: String,
    /// Threshold β: style channels less relevant than this are left alone.
    #[arg(long, default_value_t = 0.13)]
    beta: f32,
    /// Edit strengths α, comma-separated (one column each).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-5,-2.5,0,2.5,5"
    )]
    alphas: Vec<f32>,
    /// HyperStyle refinement steps (default: the demo's upstream run's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    iters: Option<u64>,
    /// Output folder.
    #[arg(long, default_value = "out/edit_text")]
    output: PathBuf,
    /// Photos (PNG, JPEG) or folders; default: the demo's photo.
    inputs: Vec<PathBuf>,
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), BoxError> {
    let args = Args::parse();
    // Many large buffers come and go during a pass: keep freed memory for reuse (BENCHMARKS.md).
    hyperstyle::backend::reuse_freed_memory();
    if args.alphas.is_empty() || args.alphas.iter().any(|a| !a.is_finite()) {
        return Err("--alphas needs finite numbers".into());
    }
    let device = Default::default();
    let demo = Demo::load("ffhq1024")?;
    println!(
        "Bundled demo: the ffhq1024 test model and pattern CLIP / StyleCLIP data (deterministic, not trained). \
         On a CPU each photo takes a minute or so."
    );
    let model = demo.hyperstyle::<B>(&device)?;
    let layers = model.generator().config().layers();
    let (text, templates, directions) = Demo::styleclip::<B>(&layers, &device)?;
    let tokenizer = Tokenizer::bundled()?;
    let delta_i = GlobalDirections::text_direction(&text, &tokenizer, &templates, &args.neutral, &args.target)?;
    let direction = directions.style_direction(delta_i, args.beta)?;
    let moved: usize = direction
        .iter()
        .map(|d| d.clone().abs().greater_elem(0.0).int().sum().into_scalar() as usize)
        .sum();
    println!(
        "\"{}\" → \"{}\" at β {}: {moved} style channels move; columns: input | α = {:?}",
        args.neutral, args.target, args.beta, args.alphas
    );

    let mut inputs = args.inputs.clone();
    if inputs.is_empty() {
        inputs.push(demo.photo("astronaut.png"));
    }
    let mut failures = Failures::default();
    let photos = load_images(&inputs, &mut failures);
    let iters = match args.iters {
        Some(n) => n as usize,
        None => demo.n_iters()?,
    };
    let bar = progress_bar(photos.len() * (iters + 1 + args.alphas.len()), "passes")?;
    let files: Vec<PathBuf> = photos.iter().map(|(p, _)| p.clone()).collect();
    let mut outputs = Outputs::new(&args.output, &files)?;
    for (path, photo) in photos {
        let start = Instant::now();
        let name = outputs.name(&path);
        let result = (|| -> Result<PathBuf, BoxError> {
            let input = images_to_tensor::<B>(std::slice::from_ref(&photo), model.input_size(), &device);
            let inversion = model.invert_with_progress(input, iters, |_| bar.inc(1))?;
            bar.inc(1);
            let styles = model.generator().styles(inversion.latents.clone())?;
            let mut columns = vec![photo.clone()];
            for &alpha in &args.alphas {
                let edited = apply(&styles, &direction, alpha)?;
                let image =
                    model
                        .generator()
                        .synthesis_from_styles(&edited, &Noise::Stored, Some(&inversion.offsets))?;
                let image = tensor_to_images(image)?.remove(0);
                save_image(&image, outputs.file(&format!("{name}_alpha{alpha:+}.png"))?)?;
                columns.push(image);
                bar.inc(1);
            }
            let height = columns.last().map_or(1, |i| i.height());
            let grid = outputs.file(&format!("{name}_text_edit.png"))?;
            save_image(&side_by_side(&columns, height), &grid)?;
            Ok(grid)
        })();
        failures.record(&bar, &path, start, result);
    }
    say(&bar, format!("outputs in {}", args.output.display()));
    bar.finish();
    failures.finish()
}
