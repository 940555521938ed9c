//! Edit photos with HyperStyle: InterFaceGAN age / smile / pose for faces, GANSpace for cars.
//!
//! ```text
//! cargo run --release --example edit                          # bundled demo: age, smile, pose, factors −5..4
//! cargo run --release --example edit -- --edit ganspace       # bundled cars demo, five GANSpace edits
//! cargo run --release --example edit -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --direction age.safetensors \
//!     --direction smile.safetensors --direction pose.safetensors --layout upstream photos/
//! cargo run --release --example edit -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --edit smile --direction smile.safetensors \
//!     --factor-range 5 photos/
//! cargo run --release --example edit -- --model hyperstyle_ffhq.safetensors --edit age \
//!     --direction age.safetensors --factor 3 --inversion out/invert/face.safetensors
//! cargo run --release --example edit -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --edit age --direction age.safetensors \
//!     --align --landmarks shape_predictor_68_face_landmarks.dat holiday.jpg
//! ```
//! Faces get all three InterFaceGAN edits (upstream's `--edit_directions age,smile,pose`) over
//! upstream's factor range unless `--edit` / `--factor` say otherwise. Each input gets, per edit,
//! `NAME_EDIT.png`: input | inversion | one column per factor, at the generator's resolution, and
//! every result on its own (`NAME_inversion.png`, `NAME_EDIT_LABEL.png`). `--layout upstream`
//! writes upstream's editing folders instead (`editing_results/EDIT/FILE`, `editing_coupled/FILE`;
//! examples/common/upstream.rs). Models, directions and PCA data are converted from the upstream
//! `.pt` files with `weights-convert`. `--align` first crops the face of each ordinary photo the
//! FFHQ way, as upstream's alignment script does (examples/common/mod.rs, `AlignArgs`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use clap::{Parser, ValueEnum};
use common::upstream::{network_input_image, EditWriter, Layout};
use common::{
    check_align_domain, file_part, load_photos, progress_bar, refinement_steps, report, say, side_by_side, AlignArgs,
    BoxError, Failures, ModelArgs, Outputs,
};
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::core::checkpoint::BARE_TENSOR_KEY;
use hyperstyle::core::WeightStore;
use hyperstyle::demo::Demo;
use hyperstyle::editing::{factor_range, Editor, GanSpace, GanSpaceEdit, InterFaceGanDirection, CARS_EDITS};
use hyperstyle::image_ops::pool;
use hyperstyle::io::{save_image, tensor_to_images};
use hyperstyle::stylegan2::{Generator, GeneratorConfig, WeightOffsets};
use hyperstyle::{Domain, HyperStyle, SavedInversion};
use image::RgbImage;
use indicatif::ProgressBar;

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
    /// Domain, overriding the checkpoint's: faces, cars or wild.
    #[arg(long)]
    domain: Option<Domain>,
    /// The edits, comma-separated: any of age, smile, pose (InterFaceGAN, faces; upstream's
    /// --edit_directions), or ganspace alone (cars).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [EditKind::Age, EditKind::Smile, EditKind::Pose])]
    edit: Vec<EditKind>,
    /// Converted InterFaceGAN direction (from `editing/interfacegan_directions/NAME.pt`), one per
    /// edit with --model, matched to the edit by its file stem (`age.safetensors` serves age);
    /// with a single edit, a single direction of any name serves it. Repeatable.
    #[arg(long)]
    direction: Vec<PathBuf>,
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
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    factor_range: Option<u32>,
    /// Refinement steps of the inversion (default 3, as upstream's editing commands).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    iters: Option<u64>,
    /// Saved inversions (`invert --save-tensors` output) to edit; no inversion is run for them.
    #[arg(long)]
    inversion: Vec<PathBuf>,
    /// Images per generator call (memory: ~0.5 GB per 1024² image).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    max_batch: u64,
    /// Output folder.
    #[arg(long, default_value = "out/edit")]
    output: PathBuf,
    /// What is written: flat (NAME_EDIT.png grids and every result, in the output folder) or
    /// upstream (upstream's folders: editing_results/EDIT/FILE rows and editing_coupled/FILE; cars:
    /// editing_coupled/STEM.jpg). The upstream layout needs photos (its rows start with the input).
    #[arg(long, value_enum, default_value_t = Layout::Flat)]
    layout: Layout,
    /// With --layout upstream: write the faces' rows at 256×256 per image instead of the
    /// generator's size (upstream's --resize_outputs; its cars script ignores it, and so does this).
    #[arg(long)]
    resize_outputs: bool,
    /// Edit only the first N photos (folders expanded and sorted first; upstream's --n_images).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    n_images: Option<u64>,
    #[command(flatten)]
    align: AlignArgs,
    /// Images (PNG, JPEG) or folders of images to invert and edit: FFHQ-aligned crops for faces,
    /// or any photos with --align.
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

/// One edit applied to every input.
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
    /// The edit's name: the folder of its rows in the upstream layout, the part of the flat
    /// layout's file names.
    fn name(&self) -> &'static str {
        match self {
            Edit::InterFaceGan { name, .. } => name,
            Edit::GanSpace { .. } => EditKind::Ganspace.name(),
        }
    }

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

/// The demo configuration and photo for the edits.
fn demo_config(kinds: &[EditKind]) -> (&'static str, &'static str) {
    if kinds.contains(&EditKind::Ganspace) {
        ("cars512", "coffee.png")
    } else {
        ("ffhq256", "astronaut.png")
    }
}

/// Pattern tensors of the demo (tests/fixtures/README.md: the directions and PCA data upstream's
/// run used), stored as a converted file holds them: `(key, pattern key, shape, mean, std)`.
fn demo_tensors(demo: &Demo, tensors: &[(&str, &str, Vec<usize>, f64, f64)]) -> Result<WeightStore, BoxError> {
    let mut named = Vec::new();
    for (key, pattern, shape, mean, std) in tensors {
        let values = demo.extra_pattern(pattern, shape.iter().product(), *mean, *std)?;
        named.push((key.to_string(), shape.clone(), values));
    }
    Ok(WeightStore::from_tensors(named)?)
}

/// The edits `--edit` asks for, in order, each with its data; every `--direction` must serve one.
fn load_edits(args: &Args, demo: Option<&Demo>, n_styles: usize, device: &Device<B>) -> Result<Vec<Edit>, BoxError> {
    if args.edit.is_empty() {
        return Err("--edit needs at least one edit".into());
    }
    if args.edit.contains(&EditKind::Ganspace) && args.edit.len() > 1 {
        return Err("--edit ganspace (cars) cannot be combined with other edits".into());
    }
    for (i, kind) in args.edit.iter().enumerate() {
        if args.edit[..i].contains(kind) {
            return Err(format!("--edit names {} twice", kind.name()).into());
        }
    }
    let mut used = vec![false; args.direction.len()];
    let mut edits = Vec::with_capacity(args.edit.len());
    for &kind in &args.edit {
        edits.push(load_edit(args, kind, &mut used, demo, n_styles, device)?);
    }
    if let Some(unused) = used.iter().position(|u| !u) {
        return Err(format!(
            "--direction {} serves none of the edits ({}): a direction's file stem names its edit",
            args.direction[unused].display(),
            args.edit.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
        )
        .into());
    }
    Ok(edits)
}

/// The `--direction` file for InterFaceGAN edit `name`: the one whose stem is `name`, or the only
/// one when there is only one edit. Marks it used.
fn direction_file<'a>(args: &'a Args, name: &str, used: &mut [bool]) -> Option<&'a Path> {
    let stem_is = |p: &PathBuf| p.file_stem().and_then(|s| s.to_str()) == Some(name);
    let index = args
        .direction
        .iter()
        .position(stem_is)
        .or_else(|| (args.edit.len() == 1 && args.direction.len() == 1).then_some(0))?;
    used[index] = true;
    Some(&args.direction[index])
}

fn load_edit(
    args: &Args,
    kind: EditKind,
    used: &mut [bool],
    demo: Option<&Demo>,
    n_styles: usize,
    device: &Device<B>,
) -> Result<Edit, BoxError> {
    if kind == EditKind::Ganspace {
        let ganspace = match (&args.ganspace, demo) {
            (Some(path), _) => GanSpace::from_file(path, device)?,
            (None, Some(demo)) => GanSpace::load(
                &demo_tensors(
                    demo,
                    &[
                        ("mean", "ganspace/mean", vec![1, 512], 0.0, 1.0),
                        ("std", "ganspace/std", vec![80], 3.0, 0.5),
                        ("comp", "ganspace/comp", vec![80, 1, 512], 0.0, 0.045),
                    ],
                )?,
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
    let name = kind.name();
    let direction = match (direction_file(args, name, used), demo) {
        (Some(path), _) => InterFaceGanDirection::from_file(path, device)?,
        (None, Some(demo)) => {
            // Upstream's pose direction has one row per W+ row; the demo's has the demo model's.
            let shape = if kind == EditKind::Pose {
                vec![1, n_styles, 512]
            } else {
                vec![1, 512]
            };
            let store = demo_tensors(
                demo,
                &[(BARE_TENSOR_KEY, &format!("direction/{name}"), shape, 0.0, 0.045)],
            )?;
            InterFaceGanDirection::load(&store, device)?
        }
        (None, None) => {
            return Err(format!(
                "the {name} edit needs --direction {name}.safetensors (converted from upstream's \
                 editing/interfacegan_directions/{name}.pt), or leave it out of --edit"
            )
            .into())
        }
    };
    let factors = match args.factor {
        Some(f) if f.is_finite() => vec![f],
        Some(f) => return Err(format!("--factor must be a finite number, got {f}").into()),
        None => factor_range(args.factor_range.unwrap_or(5)),
    };
    Ok(Edit::InterFaceGan {
        name,
        direction,
        factors,
    })
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    // Before the models: a missing or wrong --landmarks file is reported at once.
    let aligner = args.align.aligner()?;
    // Many large buffers come and go during a pass: keep freed memory for reuse (BENCHMARKS.md).
    hyperstyle::backend::reuse_freed_memory();
    let device = Default::default();
    if args.layout == Layout::Upstream && !args.inversion.is_empty() {
        return Err(
            "--layout upstream writes rows that start with the input photo: give photos, not --inversion".into(),
        );
    }

    // The model: HyperStyle to invert images, or only its generator for saved inversions.
    let saved_only = args.inputs.is_empty() && !args.inversion.is_empty();
    let (model, generator, demo) = match (&args.model, &args.w_encoder) {
        (Some(model), None) => {
            if !args.inputs.is_empty() {
                return Err("inverting images needs --w-encoder (or pass --inversion files only)".into());
            }
            let Some(first) = args.inversion.first() else {
                return Err("nothing to edit: give images or --inversion files".into());
            };
            // The generator's size comes from the saved inversion's config.
            let config = SavedInversion::<B>::load(first, &device)?.config;
            let generator = Generator::from_file(model, &GeneratorConfig::new(config.output_size), &device)?;
            (None, Some(generator), None)
        }
        (None, _) if saved_only => {
            // Saved inversions of the demo only need its generator.
            let demo = Demo::load(demo_config(&args.edit).0)?;
            println!(
                "No --model given: the bundled {} demo generator renders the given inversions.",
                demo.name()
            );
            (None, Some(demo.generator(&device)?), Some(demo))
        }
        _ => {
            let model_args = ModelArgs {
                model: args.model.clone(),
                w_encoder: args.w_encoder.clone(),
                domain: args.domain,
            };
            let (model, demo) = model_args.load(demo_config(&args.edit).0, &device)?;
            (Some(model), None, demo)
        }
    };
    let generator = model
        .as_ref()
        .map(HyperStyle::generator)
        .or(generator.as_ref())
        .expect("a model or a generator");
    let domain = match (&model, &demo) {
        (Some(model), _) => model.config().domain,
        (None, Some(demo)) => demo.config()?.domain,
        (None, None) => args.domain.unwrap_or(Domain::Faces),
    };
    check_align_domain(aligner.as_ref(), domain)?;
    let n_styles = generator.config().n_latent();
    let edits = load_edits(&args, demo.as_ref(), n_styles, &device)?;
    let editor = Editor::new(generator, domain).with_max_batch(args.max_batch as usize);
    let n_iters = refinement_steps(args.iters, demo.as_ref(), 3)?;
    let mut inputs = args.inputs.clone();
    if let (Some(demo), true) = (&demo, inputs.is_empty() && args.inversion.is_empty()) {
        inputs.push(demo.photo(demo_config(&args.edit).1));
    }
    for edit in &edits {
        println!(
            "{}: input (photos only) | inversion | {}",
            edit.name(),
            edit.labels().join(" | ")
        );
    }

    let mut failures = Failures::default();
    let images = load_photos(&inputs, aligner.as_ref(), args.n_images, &mut failures)?;
    let n_edits: usize = edits.iter().map(|e| e.labels().len()).sum();
    let total = images.len() * (n_iters + n_edits) + args.inversion.len() * (1 + n_edits);
    let bar = progress_bar(total, "generator/refinement passes")?;
    let mut input_files: Vec<PathBuf> = images.iter().map(|(path, _)| path.clone()).collect();
    input_files.extend(args.inversion.iter().cloned());
    let mut outputs = Outputs::new(&args.output, &input_files)?;
    let mut upstream = match (args.layout, &model) {
        (Layout::Upstream, Some(model)) => Some(EditWriter::new(
            &args.output,
            &input_files,
            model.config(),
            args.resize_outputs,
        )?),
        _ => None,
    };

    // Photos: invert, then edit with the inversion's latents and offsets.
    if let Some(model) = &model {
        for (path, image) in &images {
            let start = Instant::now();
            let result = (|| -> Result<PathBuf, BoxError> {
                let inversion =
                    model.invert_images_with_progress(std::slice::from_ref(image), n_iters, |_| bar.inc(1))?;
                let mut rendered = Vec::with_capacity(edits.len());
                for edit in &edits {
                    let images = render(&editor, edit, inversion.latents.clone(), &inversion.offsets, &bar)?;
                    if let Some(demo) = &demo {
                        report_edits(demo, edit, &images, path, domain, &bar);
                    }
                    rendered.push(images);
                }
                match &mut upstream {
                    Some(writer) => {
                        let name = writer.name(path);
                        let input = network_input_image::<B>(image, model.input_size(), &device)?;
                        let mut results = Vec::with_capacity(edits.len());
                        for (edit, images) in edits.iter().zip(rendered) {
                            results.push((edit.name().to_string(), tensor_to_images(images)?));
                        }
                        if let [(_, cars)] = results.as_slice() {
                            if args.edit == [EditKind::Ganspace] {
                                let last = tensor_to_images(inversion.last_step().image.clone())?.remove(0);
                                return writer.write_cars(&name, &input, &last, cars);
                            }
                        }
                        // Upstream's face editing shows the final reconstruction as the network
                        // sees it: pooled to the input size.
                        let last = tensor_to_images(inversion.last_step().pooled.clone())?.remove(0);
                        writer.write_faces(&name, &input, &last, &results)
                    }
                    None => {
                        let name = outputs.name(path);
                        let reconstruction = inversion.last_step().image.clone();
                        let written =
                            write_grids(&outputs, &name, Some(image.clone()), reconstruction, &edits, rendered)?;
                        Ok(written.into_iter().last().unwrap_or_default())
                    }
                }
            })();
            failures.record(&bar, path, start, result);
        }
    }

    // Saved inversions: their latents and offsets are used as they are, sample by sample.
    for path in &args.inversion {
        let name = outputs.name(path);
        let result = (|| -> Result<Vec<PathBuf>, BoxError> {
            let saved = SavedInversion::<B>::load(path, &device)?;
            if saved.config.output_size != generator.config().size {
                return Err(format!(
                    "saved for a {0}×{0} generator, the model's is {1}×{1}",
                    saved.config.output_size,
                    generator.config().size
                )
                .into());
            }
            let batch = saved.latents.dims()[0];
            let mut written = Vec::with_capacity(batch);
            for b in 0..batch {
                let sample = saved.sample(b)?;
                let reconstruction = editor.render(sample.latents.clone(), Some(&sample.offsets))?;
                bar.inc(1);
                let mut rendered = Vec::with_capacity(edits.len());
                for edit in &edits {
                    rendered.push(render(&editor, edit, sample.latents.clone(), &sample.offsets, &bar)?);
                }
                let sample_name = if batch == 1 {
                    name.clone()
                } else {
                    format!("{name}_{b}")
                };
                written.extend(write_grids(
                    &outputs,
                    &sample_name,
                    None,
                    reconstruction,
                    &edits,
                    rendered,
                )?);
            }
            Ok(written)
        })();
        match result {
            Ok(outs) => {
                failures.succeed();
                for out in outs {
                    say(&bar, format!("{} → {}", path.display(), out.display()));
                }
            }
            Err(e) => failures.fail(Some(&bar), format!("failed on {}: {e}", path.display())),
        }
    }
    bar.finish();
    failures.finish()
}

/// The edits of one inverted image (the editor renders them `max_batch` at a time):
/// `[n_edits, 3, H, W]`.
fn render(
    editor: &Editor<B>,
    edit: &Edit,
    latents: Tensor<B, 3>,
    offsets: &WeightOffsets<B>,
    bar: &ProgressBar,
) -> hyperstyle::Result<Tensor<B, 4>> {
    let edited = edit.apply(latents)?;
    let n = edited.dims()[0];
    let images = editor.render(edited, Some(offsets))?;
    bar.inc(n as u64);
    Ok(images)
}

/// The flat layout: every result at the generator's resolution, `NAME_inversion.png` and
/// `NAME_EDIT_LABEL.png` per edited image (`face_age_age_+3.png`, `car_ganspace_Pose_I.png`), and per
/// edit the grid `NAME_EDIT.png`: input (if any) | inversion | edits, at the same resolution.
/// `rendered[k]` holds the images of `edits[k]`. Returns the grids' paths.
fn write_grids(
    outputs: &Outputs,
    name: &str,
    input: Option<RgbImage>,
    reconstruction: Tensor<B, 4>,
    edits: &[Edit],
    rendered: Vec<Tensor<B, 4>>,
) -> Result<Vec<PathBuf>, BoxError> {
    let inversion = tensor_to_images(reconstruction)?;
    for image in &inversion {
        save_image(image, outputs.file(&format!("{name}_inversion.png"))?)?;
    }
    let height = inversion.first().map_or(1, |i| i.height());
    let mut grids = Vec::with_capacity(edits.len());
    for (edit, images) in edits.iter().zip(rendered) {
        let edited = tensor_to_images(images)?;
        for (image, label) in edited.iter().zip(edit.labels()) {
            save_image(
                image,
                outputs.file(&format!("{name}_{}_{}.png", edit.name(), file_part(&label)))?,
            )?;
        }
        let mut columns: Vec<RgbImage> = input.iter().cloned().collect();
        columns.extend(inversion.iter().cloned());
        columns.extend(edited);
        let path = outputs.file(&format!("{name}_{}.png", edit.name()))?;
        save_image(&side_by_side(&columns, height), &path)?;
        grids.push(path);
    }
    Ok(grids)
}

/// Demo: how far each edit that upstream also computed is from its output.
fn report_edits(demo: &Demo, edit: &Edit, edits: &Tensor<B, 4>, path: &Path, domain: Domain, bar: &ProgressBar) {
    let (h, w) = domain.input_size();
    for (i, (label, key)) in edit.labels().iter().zip(edit.golden_keys()).enumerate() {
        if let Some(key) = key.filter(|k| demo.has_reference(k)) {
            report(demo, bar, path, label, &key, &pool(edits.clone().narrow(0, i, 1), h, w));
        }
    }
}
