//! Pre-extract the W-encoder inversions of a training folder, in the layout HyperStyle's
//! pre-extracted dataset reads (`hyperstyle::training::data::LatentsImagesDataset`).
//!
//! ```text
//! cargo run --release --example extract_inversions -- --demo
//! cargo run --release --example extract_inversions -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --output ffhq_w_inv ffhq/
//! ```
//! For each image of the folder (listed and sorted as the dataset lists its targets), the W
//! encoder's codes (plus the model's average latent) and the unmodified generator's image of
//! them, pooled to the network's input size as upstream's `face_pool` does (cars: rows 32..224,
//! 192×256), are written as
//!
//! * `<output>/inversions/00001.png`, `00002.png`, …: the inversion of the k-th image, 8-bit
//!   (upstream's `tensor2im`);
//! * `<output>/latents.safetensors`: one `[n_styles, 512]` float32 tensor per inversion, named
//!   after its file (`00001.png`, …), as the original's dataset looks its latents up;
//! * `<output>/targets.txt`: `00001.png<TAB>target file` per line, to check the pairing.
//!
//! Every image must load: one missing inversion would shift the pairing of all later ones, so
//! the run stops at the first failure and writes no latents file.

mod common;

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use common::{progress_bar, report, say, BoxError, ModelArgs};
use hyperstyle::io::{load_image, save_image};
use hyperstyle::training::data::{list_images, write_latents};
use hyperstyle::training::extract::extract_inversions;

#[derive(Parser)]
#[command(
    about = "Write the W-encoder inversions and latent codes of a folder of training images \
             (inversions/00001.png…, latents.safetensors), the layout of HyperStyle's pre-extracted dataset"
)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Run the bundled demo instead of a trained model: a test model with pattern weights on
    /// the bundled photos, its inversions compared with upstream's.
    #[arg(long, conflicts_with_all = ["model", "w_encoder", "input"])]
    demo: bool,
    /// Output folder (inversions/, latents.safetensors, targets.txt).
    #[arg(long, default_value = "out/extract_inversions")]
    output: PathBuf,
    /// Images inverted together.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    batch: u64,
    /// Only the first N images of the sorted folder (the dataset must then list the same N).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    n_images: Option<u64>,
    /// The folder of training images (the dataset's target root). Only its own files ending in
    /// .jpg, .jpeg, .png (either case), … are used, as the dataset lists them.
    input: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), BoxError> {
    let args = Args::parse();
    if !args.demo && args.model.model.is_none() {
        return Err("give --model and --w-encoder with an input folder, or --demo (see --help)".into());
    }
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    let (model, demo) = args.model.load("ffhq256", &device)?;
    let folder = match (&args.input, &demo) {
        (Some(folder), _) => folder.clone(),
        (None, Some(demo)) => demo
            .photo("astronaut.png")
            .parent()
            .map(PathBuf::from)
            .ok_or("the demo photos have no folder")?,
        (None, None) => return Err("no input folder given".into()),
    };
    let mut targets = list_images(&folder)?;
    if let Some(n) = args.n_images {
        targets.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if targets.is_empty() {
        return Err(format!("{}: no images", folder.display()).into());
    }
    let (height, width) = model.input_size();
    let inversions_dir = args.output.join("inversions");
    std::fs::create_dir_all(&inversions_dir)?;
    println!(
        "{} images of {} → {} ({} style layers, {width}×{height} inversions)",
        targets.len(),
        folder.display(),
        args.output.display(),
        model.config().n_styles()
    );

    let bar = progress_bar(targets.len(), "images")?;
    let mut latents = Vec::with_capacity(targets.len());
    let mut listing = String::new();
    for (chunk_index, chunk) in targets.chunks(args.batch as usize).enumerate() {
        let first = chunk_index * args.batch as usize;
        let images = chunk
            .iter()
            .map(|path| {
                load_image(path)
                    .map_err(|e| format!("{}: {e} (stopping: the pairing needs every image)", path.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let extracted = extract_inversions(&model, &images, first, &device)?;
        for (b, (path, inversion)) in chunk.iter().zip(extracted.inversions).enumerate() {
            let name = inversion.name;
            save_image(&inversion.image, inversions_dir.join(&name))?;
            listing.push_str(&format!("{name}\t{}\n", path.display()));
            if let Some(demo) = &demo {
                say(&bar, format!("{} → {name}", path.display()));
                if demo.sample_of(&stem(path)).is_some() {
                    let codes = extracted.codes.clone().narrow(0, b, 1);
                    report(demo, &bar, path, "W+ codes", "w_codes", &codes);
                    let image = extracted.pooled.clone().narrow(0, b, 1);
                    report(demo, &bar, path, "W inversion (pooled)", "w_inversion_pooled", &image);
                }
            }
            latents.push((name, inversion.latent));
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    write_latents(args.output.join("latents.safetensors"), &latents)?;
    std::fs::File::create(args.output.join("targets.txt"))?.write_all(listing.as_bytes())?;
    println!(
        "Wrote {} inversions to {}, their codes to {}.",
        latents.len(),
        inversions_dir.display(),
        args.output.join("latents.safetensors").display()
    );
    Ok(())
}

fn stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
