//! Edit photos with HyperStyle: InterFaceGAN age / smile / pose for faces, GANSpace for cars.
//!
//! ```text
//! cargo run --release --example edit                          # bundled demo: age, factors −5..4
//! cargo run --release --example edit -- --edit ganspace       # bundled cars demo, five GANSpace edits
//! cargo run --release --example edit -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --edit smile --direction smile.safetensors \
//!     --factor-range 5 photos/
//! cargo run --release --example edit -- --model hyperstyle_ffhq.safetensors --edit age \
//!     --direction age.safetensors --factor 3 --inversion out/invert/face.safetensors
//! ```
//! Each input gets `NAME_EDIT.png`: input | inversion | one column per edit. Models, directions
//! and PCA data are converted from the upstream `.pt` files with `weights-convert`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use clap::{Parser, ValueEnum};
use hyperstyle::backend::Default as B;
use hyperstyle::editing::{
    factor_range, sample_offsets, Editor, GanSpace, GanSpaceEdit, InterFaceGanDirection, CARS_EDITS,
};
use hyperstyle::image_ops::pool;
use hyperstyle::io::{images_to_tensor, load_images, save_image, side_by_side, tensor_to_images};
use hyperstyle::stylegan2::{Generator, GeneratorConfig, WeightStore};
use hyperstyle::{load_inversion, Domain, HyperStyle, HyperStyleConfig};
use hyperstyle_testing::{error_stats, fixtures_dir, hyperstyle_stores, pattern_store, to_vec, Fixture};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    about = "Edit images with HyperStyle: InterFaceGAN (faces) or GANSpace (cars)",
    after_help = "Without --model the bundled demo runs: the test fixture models (deterministic pattern \
                  weights, not trained models; 256×256 faces, or 512 cars for --edit ganspace) on a bundled \
                  public-domain photo, with pattern directions; edits that upstream also computed are \
                  compared with its output."
)]
struct Args {
    /// Converted HyperStyle checkpoint (.safetensors); with --inversion alone, only its generator
    /// is used.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Converted W-encoder checkpoint (.safetensors), needed to invert images.
    #[arg(long, requires = "model")]
    w_encoder: Option<PathBuf>,
    /// The edit.
    #[arg(long, value_enum, default_value_t = EditKind::Age)]
    edit: EditKind,
    /// Converted InterFaceGAN direction (from `editing/interfacegan_directions/NAME.pt`); needed for
    /// age / smile / pose with --model.
    #[arg(long)]
    direction: Option<PathBuf>,
    /// Converted GANSpace PCA data (from `editing/ganspace_directions/cars_pca.pt`); needed for
    /// ganspace with --model.
    #[arg(long)]
    ganspace: Option<PathBuf>,
    /// GANSpace edits, comma-separated: pose1, pose2, cube, color, grass (default: all five).
    #[arg(long, value_delimiter = ',')]
    ganspace_edits: Vec<String>,
    /// One InterFaceGAN factor: w + factor·direction.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "factor_range")]
    factor: Option<f32>,
    /// Upstream's --factor_range R: factors −R, …, R−1 (Python's range; +R excluded). Default 5.
    #[arg(long)]
    factor_range: Option<u32>,
    /// Refinement steps of the inversion (default 3, as upstream's editing commands).
    #[arg(long)]
    iters: Option<usize>,
    /// Domain, overriding the checkpoint's: faces, cars or wild.
    #[arg(long, value_parser = Domain::from_name)]
    domain: Option<Domain>,
    /// Saved inversions (`invert --save-tensors` output) to edit; no inversion is run for them.
    #[arg(long)]
    inversion: Vec<PathBuf>,
    /// Images per generator call (memory: ~0.5 GB per 1024² image).
    #[arg(long, default_value_t = 4)]
    max_batch: usize,
    /// Output folder.
    #[arg(long, default_value = "out/edit")]
    output: PathBuf,
    /// Images (PNG, JPEG) or folders of images to invert and edit.
    inputs: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EditKind {
    /// InterFaceGAN age (faces).
    Age,
    /// InterFaceGAN smile (faces).
    Smile,
    /// InterFaceGAN head pose (faces).
    Pose,
    /// GANSpace: upstream's five car edits.
    Ganspace,
}

impl EditKind {
    fn name(self) -> &'static str {
        match self {
            EditKind::Age => "age",
            EditKind::Smile => "smile",
            EditKind::Pose => "pose",
            EditKind::Ganspace => "ganspace",
        }
    }
}

/// What is applied to every input.
enum Edit {
    InterFaceGan {
        name: &'static str,
        direction: InterFaceGanDirection<B>,
        factors: Vec<f32>,
    },
    GanSpace {
        ganspace: GanSpace<B>,
        edits: Vec<GanSpaceEdit>,
    },
}

impl Edit {
    /// `[1, n_styles, 512]` → `[n_edits, n_styles, 512]`.
    fn apply(&self, latents: Tensor<B, 3>) -> hyperstyle::Result<Tensor<B, 3>> {
        let edited = match self {
            Edit::InterFaceGan { direction, factors, .. } => direction.apply_factors(latents, factors)?,
            Edit::GanSpace { ganspace, edits } => ganspace.apply_all(latents, edits)?,
        };
        let [_, n, rows, dim] = edited.dims();
        Ok(edited.reshape([n, rows, dim]))
    }

    fn labels(&self) -> Vec<String> {
        match self {
            Edit::InterFaceGan { name, factors, .. } => factors.iter().map(|f| format!("{name} {f:+}")).collect(),
            Edit::GanSpace { edits, .. } => edits.iter().map(|e| e.label.to_string()).collect(),
        }
    }

    /// Upstream's output for each edit, where the demo fixture has it.
    fn golden_keys(&self) -> Vec<Option<String>> {
        match self {
            Edit::InterFaceGan { name, factors, .. } => factors
                .iter()
                .map(|f| (f.fract() == 0.0).then(|| format!("edit_{name}_{:+}_pooled", *f as i64)))
                .collect(),
            Edit::GanSpace { edits, .. } => edits
                .iter()
                .map(|e| {
                    CARS_EDITS
                        .iter()
                        .position(|c| c == e)
                        .map(|k| format!("ganspace_{k}_pooled"))
                })
                .collect(),
        }
    }
}

/// The demo's fixture config and photo for an edit.
fn demo_fixture(kind: EditKind) -> (&'static str, &'static str) {
    match kind {
        EditKind::Ganspace => ("cars512", "coffee.png"),
        _ => ("ffhq256", "astronaut.png"),
    }
}

/// The fixture's HyperStyle model with pattern weights.
fn demo_model(fixture: &Fixture, device: &Device<B>) -> hyperstyle::Result<HyperStyle<B>> {
    let config = HyperStyleConfig::from_opts(&fixture.manifest.meta);
    let (hyperstyle, w_encoder) = hyperstyle_stores(&fixture.manifest);
    HyperStyle::load(&hyperstyle, &w_encoder, Some(config), device)
}

/// A pattern tensor of the fixture (tests/fixtures/README.md), stored as a converted file holds it.
fn demo_tensors(fixture: &Fixture, tensors: &[(&str, &str, Vec<usize>, f64, f64)]) -> WeightStore {
    let checkpoint = fixture.manifest.checkpoint("hyperstyle");
    WeightStore::from_tensors(tensors.iter().map(|(key, pattern, shape, mean, std)| {
        let values = checkpoint.extra_pattern(pattern, shape.iter().product(), *mean, *std);
        (key.to_string(), shape.clone(), values)
    }))
    .expect("consistent shapes")
}

fn load_edit(
    args: &Args,
    fixture: Option<&Fixture>,
    n_styles: usize,
    device: &Device<B>,
) -> Result<Edit, Box<dyn std::error::Error>> {
    if args.edit == EditKind::Ganspace {
        let ganspace = match (&args.ganspace, fixture) {
            (Some(path), _) => GanSpace::from_file(path, device)?,
            (None, Some(fixture)) => GanSpace::load(
                &demo_tensors(
                    fixture,
                    &[
                        ("mean", "ganspace/mean", vec![1, 512], 0.0, 1.0),
                        ("std", "ganspace/std", vec![80], 3.0, 0.5),
                        ("comp", "ganspace/comp", vec![80, 1, 512], 0.0, 0.045),
                    ],
                ),
                device,
            )?,
            (None, None) => return Err("--edit ganspace needs --ganspace cars_pca.safetensors".into()),
        };
        let edits = if args.ganspace_edits.is_empty() {
            CARS_EDITS.to_vec()
        } else {
            args.ganspace_edits
                .iter()
                .map(|name| {
                    GanSpaceEdit::by_name(name.trim())
                        .ok_or_else(|| format!("unknown GANSpace edit `{name}` (pose1, pose2, cube, color, grass)"))
                })
                .collect::<Result<_, _>>()?
        };
        return Ok(Edit::GanSpace { ganspace, edits });
    }
    let name = args.edit.name();
    let direction = match (&args.direction, fixture) {
        (Some(path), _) => InterFaceGanDirection::from_file(path, device)?,
        (None, Some(fixture)) => {
            // Upstream's pose direction has one row per W+ row; the demo's has the demo model's.
            let shape = if args.edit == EditKind::Pose {
                vec![1, n_styles, 512]
            } else {
                vec![1, 512]
            };
            let store = demo_tensors(fixture, &[("tensor", &format!("direction/{name}"), shape, 0.0, 0.045)]);
            InterFaceGanDirection::load(&store, device)?
        }
        (None, None) => return Err(format!("--edit {name} needs --direction {name}.safetensors").into()),
    };
    let factors = match args.factor {
        Some(f) => vec![f],
        None => factor_range(args.factor_range.unwrap_or(5)),
    };
    if factors.is_empty() {
        return Err("--factor-range 0 gives no factors".into());
    }
    Ok(Edit::InterFaceGan {
        name,
        direction,
        factors,
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Default::default();

    // The model: HyperStyle to invert images, or only its generator for saved inversions.
    let fixture = args.model.is_none().then(|| Fixture::load(demo_fixture(args.edit).0));
    let (model, generator, domain) = match (&args.model, &args.w_encoder, &fixture) {
        (_, _, Some(fixture)) => {
            let (config, photo) = demo_fixture(args.edit);
            let photos = if args.inputs.is_empty() {
                photo.to_string()
            } else {
                "the given images".into()
            };
            let on = if args.inversion.is_empty() {
                photos
            } else {
                "the given inversions".into()
            };
            println!(
                "No --model given: running the bundled demo ({config} test model with pattern weights, \
                 pattern {} data) on {on}.",
                args.edit.name()
            );
            let domain = Domain::from_dataset_type(fixture.manifest.meta["dataset_type"].as_str().unwrap_or_default());
            if args.inputs.is_empty() && !args.inversion.is_empty() {
                // Saved inversions only need the generator.
                let store = pattern_store(fixture.manifest.checkpoint("hyperstyle"), &["decoder."]);
                let config = GeneratorConfig::new(fixture.manifest.meta_usize("output_size"));
                (
                    None,
                    Some(Generator::load(&store.scope("decoder."), &config, &device)?),
                    domain,
                )
            } else {
                (Some(demo_model(fixture, &device)?), None, domain)
            }
        }
        (Some(model), Some(w_encoder), None) => {
            let config = args.domain.map(HyperStyleConfig::for_domain);
            let model = HyperStyle::<B>::from_files(model, w_encoder, config, &device)?;
            let domain = model.config().domain;
            (Some(model), None, domain)
        }
        (Some(model), None, None) => {
            if !args.inputs.is_empty() {
                return Err("inverting images needs --w-encoder (or pass --inversion files only)".into());
            }
            let Some(first) = args.inversion.first() else {
                return Err("nothing to edit: give images or --inversion files".into());
            };
            // The generator's size comes from the saved inversion's config.
            let config = load_inversion::<B>(first, &device)?.config;
            let generator = Generator::from_file(model, &GeneratorConfig::new(config.output_size), &device)?;
            (None, Some(generator), args.domain.unwrap_or(config.domain))
        }
        (None, _, None) => unreachable!("no --model means the demo"),
    };
    let generator = model
        .as_ref()
        .map(HyperStyle::generator)
        .or(generator.as_ref())
        .expect("a generator");
    let n_styles = generator.config().n_latent();
    let edit = load_edit(&args, fixture.as_ref(), n_styles, &device)?;
    let editor = Editor::new(generator, domain).with_max_batch(args.max_batch);
    let n_iters = args
        .iters
        .unwrap_or_else(|| fixture.as_ref().map_or(3, |f| f.manifest.meta_usize("n_iters")));
    let mut inputs = args.inputs.clone();
    if fixture.is_some() && inputs.is_empty() && args.inversion.is_empty() {
        inputs.push(fixtures_dir().join("images").join(demo_fixture(args.edit).1));
    }
    std::fs::create_dir_all(&args.output)?;
    println!(
        "Columns: input (photos only) | inversion | {}",
        edit.labels().join(" | ")
    );

    let (images, skipped) = load_images(&inputs);
    for message in skipped {
        eprintln!("skipping {message}");
    }
    if images.is_empty() && args.inversion.is_empty() {
        return Err("no input images given".into());
    }
    let n_edits = edit.labels().len();
    let total = images.len() * (n_iters + n_edits) + args.inversion.len() * (1 + n_edits);
    let bar = ProgressBar::new(total as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} generator/refinement passes {elapsed_precise}",
    )?);
    let mut failures = 0;

    // Photos: invert, then edit with the inversion's latents and offsets.
    if let Some(model) = &model {
        let size = model.config().domain.input_size();
        for (path, image) in &images {
            let start = Instant::now();
            let result = (|| -> Result<PathBuf, Box<dyn std::error::Error>> {
                let batch = images_to_tensor::<B>(std::slice::from_ref(image), size, &device);
                let inversion = model.invert_with_progress(batch, n_iters, |_| bar.inc(1))?;
                let reconstruction = inversion.steps.last().map(|s| s.image.clone());
                let reconstruction = reconstruction.ok_or("no refinement step was run (--iters 0)")?;
                let edits = render(&editor, &edit, inversion.latents, &inversion.offsets, &args, &bar)?;
                if let Some(fixture) = &fixture {
                    report_against_golden(fixture, &edit, &edits, path, domain, &bar);
                }
                write_grid(&args, &stem(path), Some(image.clone()), reconstruction, edits)
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
    }

    // Saved inversions: their latents and offsets are used as they are.
    for path in &args.inversion {
        let result = (|| -> Result<PathBuf, Box<dyn std::error::Error>> {
            let saved = load_inversion::<B>(path, &device)?;
            if saved.config.output_size != generator.config().size {
                return Err(format!(
                    "saved for a {0}×{0} generator, the model's is {1}×{1}",
                    saved.config.output_size,
                    generator.config().size
                )
                .into());
            }
            let offsets = sample_offsets(&saved.offsets, 0)?;
            let reconstruction = editor.render(saved.latents.clone(), Some(&offsets))?;
            bar.inc(1);
            let edits = render(&editor, &edit, saved.latents, &offsets, &args, &bar)?;
            write_grid(&args, &stem(path), None, reconstruction, edits)
        })();
        match result {
            Ok(out) => say(&bar, format!("{} → {}", path.display(), out.display())),
            Err(e) => {
                say(&bar, format!("failed on {}: {e}", path.display()));
                failures += 1;
            }
        }
    }
    bar.finish();
    if failures > 0 {
        return Err(format!("{failures} input(s) failed").into());
    }
    Ok(())
}

/// The edits of one inverted image, `max_batch` at a time with progress: `[n_edits, 3, H, W]`.
fn render(
    editor: &Editor<B>,
    edit: &Edit,
    latents: Tensor<B, 3>,
    offsets: &[Option<Tensor<B, 5>>],
    args: &Args,
    bar: &ProgressBar,
) -> hyperstyle::Result<Tensor<B, 4>> {
    let edited = edit.apply(latents)?;
    let n = edited.dims()[0];
    let mut images = Vec::new();
    for start in (0..n).step_by(args.max_batch.max(1)) {
        let len = args.max_batch.max(1).min(n - start);
        images.push(editor.render(edited.clone().narrow(0, start, len), Some(offsets))?);
        bar.inc(len as u64);
    }
    Ok(Tensor::cat(images, 0))
}

/// Writes `NAME_EDIT.png`: input (if any) | inversion | edits.
fn write_grid(
    args: &Args,
    name: &str,
    input: Option<RgbImage>,
    reconstruction: Tensor<B, 4>,
    edits: Tensor<B, 4>,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mut columns: Vec<RgbImage> = input.into_iter().collect();
    columns.extend(tensor_to_images(reconstruction)?);
    columns.extend(tensor_to_images(edits)?);
    let path = args.output.join(format!("{name}_{}.png", args.edit.name()));
    save_image(&side_by_side(&columns), &path)?;
    Ok(path)
}

/// Demo: the bundled photo is a fixture input; print how far each edit that upstream also
/// computed is from its output.
fn report_against_golden(
    fixture: &Fixture,
    edit: &Edit,
    edits: &Tensor<B, 4>,
    path: &Path,
    domain: Domain,
    bar: &ProgressBar,
) {
    let name = stem(path);
    let names: Vec<&str> = fixture.manifest.meta["images"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(index) = names.iter().position(|n| *n == name) else {
        say(
            bar,
            format!("  ({name} is not a bundled fixture photo: no upstream reference to compare with)"),
        );
        return;
    };
    let (h, w) = domain.input_size();
    for (i, (label, key)) in edit.labels().iter().zip(edit.golden_keys()).enumerate() {
        let Some(key) = key.filter(|k| fixture.golden.contains(k)) else {
            continue;
        };
        let (shape, golden) = fixture.golden.get(&key);
        let per_item = golden.len() / shape[0];
        let ours = to_vec(pool(edits.clone().narrow(0, i, 1), h, w)).1;
        let stats = error_stats(&ours, &golden[index * per_item..(index + 1) * per_item]);
        say(
            bar,
            format!(
                "  {label:<10} max-abs diff from upstream {:.2e} (mean {:.2e})",
                stats.max_abs, stats.mean_abs
            ),
        );
    }
}

/// Prints a line above the progress bar (also when the bar is hidden because stderr is not a
/// terminal, where `ProgressBar::println` prints nothing).
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| println!("{line}"));
}
