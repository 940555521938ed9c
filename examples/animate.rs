//! Animate between inverted photos: their W+ codes and weight offsets interpolated linearly, as
//! in upstream's animation notebook, written as a looping GIF.
//!
//! ```text
//! cargo run --release --example animate                      # bundled demo: astronaut → cat
//! cargo run --release --example animate -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors a.png b.png c.png --steps 24 --fps 12 --back
//! ```
//! Writes `A_to_B[…].gif` and, with `--png`, every frame as `frame_NNN.png`.

mod common;

use std::path::PathBuf;

use clap::Parser;
use common::{load_images, progress_bar, refinement_steps, say, BoxError, Failures, ModelArgs, Outputs};
use hyperstyle::animation::Keyframe;
use hyperstyle::editing::Editor;
use hyperstyle::io::{save_gif, save_image, save_mp4, tensor_to_images};
use image::RgbImage;

#[derive(Parser)]
#[command(about = "Animate between inverted images (latents and weight offsets interpolated)")]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Refinement steps of each inversion (default 5; the demo uses its upstream run's 3).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    iters: Option<u64>,
    /// Frames from one image to the next.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=1000))]
    steps: u64,
    /// Frames per second of the GIF (and MP4).
    #[arg(long, default_value_t = 12.0, value_parser = parse_fps)]
    fps: f32,
    /// Return to the first image at the end (a seamless loop).
    #[arg(long)]
    back: bool,
    /// Also write the animation as an MP4 video (needs an `ffmpeg` program on PATH, or
    /// HYPERSTYLE_FFMPEG naming one).
    #[arg(long)]
    mp4: bool,
    /// Also write every frame as a PNG.
    #[arg(long)]
    png: bool,
    /// Output folder.
    #[arg(long, default_value = "out/animate")]
    output: PathBuf,
    /// Two or more images (PNG, JPEG) or folders, in the order to visit them.
    inputs: Vec<PathBuf>,
}

fn parse_fps(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(fps) if fps > 0.0 && fps <= 100.0 => Ok(fps),
        _ => Err(format!("`{s}` is not a frame rate in (0, 100]")),
    }
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), BoxError> {
    let args = Args::parse();
    // Many large buffers come and go during a pass: keep freed memory for reuse (BENCHMARKS.md).
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    let (model, demo) = args.model.load("ffhq256", &device)?;
    let n_iters = refinement_steps(args.iters, demo.as_ref(), 5)?;
    let mut inputs = args.inputs.clone();
    if let (Some(demo), true) = (&demo, inputs.is_empty()) {
        inputs = vec![demo.photo("astronaut.png"), demo.photo("chelsea.png")];
    }
    let mut failures = Failures::default();
    let images = load_images(&inputs, &mut failures);
    if images.len() < 2 {
        return Err(format!("an animation needs two or more images, {} could be read", images.len()).into());
    }
    let input_files: Vec<PathBuf> = images.iter().map(|(path, _)| path.clone()).collect();
    let mut outputs = Outputs::new(&args.output, &input_files)?;

    // One inversion per image (one at a time: memory stays that of a single image).
    let bar = progress_bar(images.len() * n_iters, "refinement steps")?;
    let mut keys = Vec::with_capacity(images.len() + 1);
    let mut names = Vec::new();
    for (path, image) in &images {
        let inversion = model.invert_images_with_progress(std::slice::from_ref(image), n_iters, |_| bar.inc(1))?;
        keys.push(Keyframe::from_inversion(&inversion, 0)?);
        names.push(outputs.name(path));
    }
    bar.finish();
    if args.back {
        keys.push(keys[0].clone());
    }

    let frames = Keyframe::sequence(&keys, args.steps as usize)?;
    let editor = Editor::for_model(&model).with_max_batch(1);
    let bar = progress_bar(frames.len(), "frames")?;
    let mut rendered: Vec<RgbImage> = Vec::with_capacity(frames.len());
    for (i, frame) in frames.into_iter().enumerate() {
        let image = tensor_to_images(editor.render(frame.latents, Some(&frame.offsets))?)?.remove(0);
        if args.png {
            save_image(&image, outputs.file(&format!("frame_{i:03}.png"))?)?;
        }
        rendered.push(image);
        bar.inc(1);
    }
    let gif = outputs.file(&format!("{}.gif", names.join("_to_")))?;
    save_gif(&rendered, args.fps, &gif)?;
    say(
        &bar,
        format!("{} frames at {} fps → {}", rendered.len(), args.fps, gif.display()),
    );
    if args.mp4 {
        let mp4 = outputs.file(&format!("{}.mp4", names.join("_to_")))?;
        save_mp4(&rendered, args.fps, &mp4)?;
        say(&bar, format!("and {}", mp4.display()));
    }
    bar.finish();
    failures.succeed();
    failures.finish()
}
