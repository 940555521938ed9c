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
//! cargo run --release --example edit -- --text "a face with a beard" --neutral "a face" --alpha 4 --beta 0.11
//! cargo run --release --example edit -- --model hyperstyle_ffhq.safetensors \
//!     --w-encoder faces_w_encoder.safetensors --text "a face with a beard" --neutral "a face" \
//!     --clip clip_vit_b32.safetensors --fs3 fs3.npy --s-mean-std S_mean_std.safetensors photos/
//! ```
//! Faces get all three InterFaceGAN edits (upstream's `--edit_directions age,smile,pose`) over
//! upstream's factor range unless `--edit` / `--factor` say otherwise. Each input gets, per edit,
//! `NAME_EDIT.png`: input | inversion | one column per factor, at the generator's resolution, and
//! every result on its own (`NAME_inversion.png`, `NAME_EDIT_LABEL.png`). `--layout upstream`
//! writes upstream's editing folders instead (`editing_results/EDIT/FILE`, `editing_coupled/FILE`;
//! examples/common/upstream.rs). Models, directions and PCA data are converted from the upstream
//! `.pt` files with `weights-convert`. `--align` first crops the face of each ordinary photo the
//! FFHQ way, as upstream's alignment script does (examples/common/mod.rs, `AlignArgs`).
//!
//! `--text` edits by text instead (StyleCLIP global directions, upstream's
//! `editing/styleclip/edit.py`): the prompts become a StyleSpace direction per threshold β (CLIP's
//! text tower, the relevance matrix `fs3.npy`, the channel statistics `S_mean_std`), and every
//! (β, α) of upstream's grids (α −5..5 × 11, β 0.11..0.16 × 5, `np.linspace`) renders
//! `styles + α·direction` with the inversion's offsets. Flat layout: `NAME_text_betaB_alphaA.png`
//! per edit, `NAME_inversion.png`, and the grid `NAME_text.png` (one row per β, one column per α);
//! `--layout upstream`: upstream's `styleclip_edits/NEUTRAL_to_TARGET/STEM.jpg` grid (saved inversions
//! welcome). CLIP and `S_mean_std` are converted with `weights-convert`; `fs3.npy` is read as it
//! is; the prompt templates are bundled (`--templates` reads others). Without `--model`
//! (or with `--demo`) the bundled ffhq1024 demo runs with pattern CLIP / StyleCLIP data: it shows
//! the mechanics, not a beard, and compares the edits upstream also rendered with its output.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::prelude::*;
use clap::{Parser, ValueEnum};
use common::upstream::{concat_vertical, network_input_image, EditWriter, Layout, UpstreamNames};
use common::{
    check_align_domain, file_part, load_photos, progress_bar, refinement_steps, report, say, side_by_side, AlignArgs,
    BoxError, Failures, ModelArgs, Outputs,
};
use hyperstyle::align::FaceAligner;
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::clip::{TextTransformer, Tokenizer};
use hyperstyle::core::checkpoint::BARE_TENSOR_KEY;
use hyperstyle::core::WeightStore;
use hyperstyle::demo::Demo;
use hyperstyle::editing::{factor_range, Editor, GanSpace, GanSpaceEdit, InterFaceGanDirection, CARS_EDITS};
use hyperstyle::image_ops::pool;
use hyperstyle::io::{save_image, tensor_to_images};
use hyperstyle::styleclip::{self, GlobalDirections};
use hyperstyle::stylegan2::{Generator, GeneratorConfig, Noise, WeightOffsets};
use hyperstyle::{Domain, HyperStyle, SavedInversion};
use image::RgbImage;
use indicatif::ProgressBar;

#[derive(Parser)]
#[command(
    about = "Edit images with HyperStyle: InterFaceGAN (faces), GANSpace (cars) or text (StyleCLIP, --text)",
    after_help = "Without --model the bundled demo runs: the test fixture models (deterministic pattern \
                  weights, not trained models; 256×256 faces, or 512 cars for --edit ganspace) on a bundled \
                  public-domain photo, with pattern directions (for --text: the 1024 demo with pattern CLIP \
                  and StyleCLIP data); edits that upstream also computed are compared with its output."
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
    /// Run the bundled demo (what runs without --model): pattern models and, for --text, pattern
    /// CLIP / StyleCLIP data; nothing to download.
    #[arg(long, conflicts_with_all = ["model", "w_encoder"])]
    demo: bool,
    #[command(flatten)]
    align: AlignArgs,
    #[command(flatten)]
    text: TextArgs,
    /// Images (PNG, JPEG) or folders of images to invert and edit: FFHQ-aligned crops for faces,
    /// or any photos with --align.
    inputs: Vec<PathBuf>,
}

/// StyleCLIP global-direction edits: the options of upstream's `editing/styleclip/edit.py`.
#[derive(clap::Args)]
#[command(next_help_heading = "Text edits (StyleCLIP global directions)")]
struct TextArgs {
    /// Edit by text, instead of InterFaceGAN / GANSpace: what the edit leads to (upstream's
    /// --target_text), e.g. "a face with a beard".
    #[arg(
        long,
        conflicts_with_all = ["edit", "direction", "ganspace", "ganspace_edits", "factor", "factor_range", "resize_outputs"]
    )]
    text: Option<String>,
    /// What the photo shows now (upstream's --neutral_text): the edit goes from it to --text.
    #[arg(long, default_value = "face with hair", requires = "text")]
    neutral: String,
    /// One edit strength α instead of the grid below.
    #[arg(long, allow_hyphen_values = true, requires = "text", conflicts_with_all = ["alpha_min", "alpha_max", "num_alphas"])]
    alpha: Option<f32>,
    /// Smallest α of the grid (`np.linspace(alpha_min, alpha_max, num_alphas)`).
    #[arg(long, allow_hyphen_values = true, default_value_t = -5.0, requires = "text")]
    alpha_min: f64,
    /// Largest α of the grid.
    #[arg(long, allow_hyphen_values = true, default_value_t = 5.0, requires = "text")]
    alpha_max: f64,
    /// Number of α values (columns).
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u64).range(1..=1000), requires = "text")]
    num_alphas: u64,
    /// One threshold β instead of the grid below: style channels less relevant to the text than β
    /// stay as they are.
    #[arg(long, allow_hyphen_values = true, requires = "text", conflicts_with_all = ["beta_min", "beta_max", "num_betas"])]
    beta: Option<f32>,
    /// Smallest β of the grid (`np.linspace(beta_min, beta_max, num_betas)`).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.11, requires = "text")]
    beta_min: f64,
    /// Largest β of the grid.
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.16, requires = "text")]
    beta_max: f64,
    /// Number of β values (rows).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000), requires = "text")]
    num_betas: u64,
    /// OpenAI's CLIP ViT-B/32 (`ViT-B-32.pt`) converted with weights-convert: its text tower.
    #[arg(long, requires = "text")]
    clip: Option<PathBuf>,
    /// The channel relevances of the generator (upstream's
    /// `editing/styleclip/global_directions/ffhq/fs3.npy`), read as it is.
    #[arg(long, requires = "text")]
    fs3: Option<PathBuf>,
    /// The StyleSpace statistics (upstream's `global_directions/ffhq/S_mean_std`) converted with
    /// weights-convert.
    #[arg(long, requires = "text")]
    s_mean_std: Option<PathBuf>,
    /// Prompt templates, one per line, `{}` for the prompt (default: the bundled copy of upstream's
    /// `global_directions/templates.txt`).
    #[arg(long, requires = "text")]
    templates: Option<PathBuf>,
    /// Print how long each stage takes: text → direction, and the render of each edit.
    #[arg(long, requires = "text")]
    timings: bool,
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

/// The demo configuration and photo for the edits: the 1024 one for text edits (the real FFHQ
/// architecture, whose StyleCLIP edits upstream's code rendered for the demo).
fn demo_config(args: &Args) -> (&'static str, &'static str) {
    if args.text.text.is_some() {
        ("ffhq1024", "astronaut.png")
    } else if args.edit.contains(&EditKind::Ganspace) {
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
    if args.layout == Layout::Upstream && !args.inversion.is_empty() && args.text.text.is_none() {
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
            let demo = Demo::load(demo_config(&args).0)?;
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
            let (model, demo) = model_args.load(demo_config(&args).0, &device)?;
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
    if let Some(target) = &args.text.text {
        let sources = Sources {
            model: model.as_ref(),
            generator,
            demo: demo.as_ref(),
            domain,
            aligner: aligner.as_ref(),
        };
        return text_edits(&args, target, &sources, &device);
    }
    let n_styles = generator.config().n_latent();
    let edits = load_edits(&args, demo.as_ref(), n_styles, &device)?;
    let editor = Editor::new(generator, domain).with_max_batch(args.max_batch as usize);
    let n_iters = refinement_steps(args.iters, demo.as_ref(), 3)?;
    let mut inputs = args.inputs.clone();
    if let (Some(demo), true) = (&demo, inputs.is_empty() && args.inversion.is_empty()) {
        inputs.push(demo.photo(demo_config(&args).1));
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
            let saved = load_saved(path, generator, &device)?;
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

// ----------------------------------------------------------------------------------------------
// Text edits (StyleCLIP global directions).

/// What the text edits start from: the model (to invert photos) or its generator alone, and the
/// demo when it runs.
struct Sources<'a> {
    model: Option<&'a HyperStyle<B>>,
    generator: &'a Generator<B>,
    demo: Option<&'a Demo>,
    domain: Domain,
    aligner: Option<&'a FaceAligner>,
}

/// The edit strengths or thresholds: the one value given, or `np.linspace(min, max, n)`.
fn grid(name: &str, one: Option<f32>, min: f64, max: f64, n: u64) -> Result<Vec<f32>, BoxError> {
    match one {
        Some(v) if v.is_finite() => Ok(vec![v]),
        Some(v) => Err(format!("--{name} must be a finite number, got {v}").into()),
        None if min.is_finite() && max.is_finite() => Ok(styleclip::linspace(min, max, n as usize)),
        None => Err(format!("--{name}-min and --{name}-max must be finite numbers").into()),
    }
}

/// CLIP's text tower, the prompt templates and the global-direction data.
type StyleClipData = (TextTransformer<B>, Vec<String>, GlobalDirections<B>);

/// [`StyleClipData`] from the files given, or the demo's pattern data.
fn load_styleclip(
    text: &TextArgs,
    demo: Option<&Demo>,
    generator: &Generator<B>,
    device: &Device<B>,
) -> Result<StyleClipData, BoxError> {
    let layers = generator.config().layers();
    let files = [
        ("--clip", &text.clip),
        ("--fs3", &text.fs3),
        ("--s-mean-std", &text.s_mean_std),
    ];
    let missing: Vec<&str> = files.iter().filter(|(_, f)| f.is_none()).map(|(n, _)| *n).collect();
    let (clip, templates, directions) = match (&text.clip, &text.fs3, &text.s_mean_std) {
        (Some(clip), Some(fs3), Some(stats)) => {
            let clip = styleclip::load_clip_text(clip, device)?;
            let directions = GlobalDirections::from_files(fs3, stats, &layers, device)?;
            (clip, styleclip::bundled_templates(), directions)
        }
        _ if demo.is_some() && missing.len() == files.len() => {
            println!(
                "StyleCLIP data: the demo's pattern CLIP text tower, relevance matrix and channel \
                 statistics (deterministic, not trained: the edits show the mechanics, not the text)."
            );
            Demo::styleclip(&layers, device)?
        }
        _ => {
            return Err(format!(
                "text edits need {} (CLIP and S_mean_std converted with weights-convert; fs3.npy as \
                 upstream ships it){}",
                missing.join(", "),
                if demo.is_some() {
                    "; or none of them for the demo's pattern data"
                } else {
                    ""
                }
            )
            .into())
        }
    };
    let templates = match &text.templates {
        Some(path) => styleclip::read_templates(path)?,
        None => templates,
    };
    let embed_dim = clip.config().embed_dim;
    if directions.embed_dim() != embed_dim {
        return Err(format!(
            "the relevance matrix (--fs3) has {} columns, the CLIP model's text features {embed_dim}",
            directions.embed_dim()
        )
        .into());
    }
    Ok((clip, templates, directions))
}

/// The renders of one sample: per β, the image of each α.
type EditGrid = Vec<Vec<RgbImage>>;

/// One sample's edits: the images, and for the demo's comparison the raw images pooled to
/// 256×256 (same order, one `[1, 3, 256, 256]` tensor per edit; empty otherwise).
struct Rendered {
    images: EditGrid,
    pooled: Vec<Vec<Tensor<B, 4>>>,
}

/// The text edit of a run: one StyleSpace direction per β, rendered at every α.
struct TextEdit<'a> {
    generator: &'a Generator<B>,
    domain: Domain,
    alphas: Vec<f32>,
    directions: Vec<(f32, Vec<Tensor<B, 1>>)>,
    max_batch: usize,
    layout: Layout,
    render_time: Duration,
    renders: usize,
    /// Whether to keep the pooled raw images (the demo compares them with upstream's).
    keep_pooled: bool,
}

impl TextEdit<'_> {
    /// Every (β, α) edit of one sample (W+ codes `[1, n_styles, 512]` and its offsets), `max_batch`
    /// images per generator call, as images (rounded as upstream's `save_image` for its layout,
    /// truncated as `tensor2im` for the flat one).
    fn render(
        &mut self,
        latents: Tensor<B, 3>,
        offsets: &WeightOffsets<B>,
        bar: &ProgressBar,
    ) -> Result<Rendered, BoxError> {
        let styles = self.generator.styles(latents)?;
        let n = self.alphas.len();
        let mut rendered = Rendered {
            images: Vec::with_capacity(self.directions.len()),
            pooled: Vec::new(),
        };
        for (_, direction) in &self.directions {
            let edited = styleclip::apply_alphas(&styles, direction, &self.alphas)?;
            let mut row = Vec::with_capacity(n);
            let mut pooled = Vec::new();
            for start in (0..n).step_by(self.max_batch) {
                let len = self.max_batch.min(n - start);
                let chunk: Vec<Tensor<B, 2>> = edited.iter().map(|s| s.clone().narrow(0, start, len)).collect();
                let begin = Instant::now();
                let images = self
                    .generator
                    .synthesis_from_styles(&chunk, &Noise::Stored, Some(offsets))?;
                row.extend(self.to_images(images.clone())?);
                self.render_time += begin.elapsed();
                self.renders += len;
                if self.keep_pooled {
                    pooled.extend(pool(images, 256, 256).chunk(len, 0));
                }
                bar.inc(len as u64);
            }
            rendered.images.push(row);
            rendered.pooled.push(pooled);
        }
        Ok(rendered)
    }

    /// Generator output → images in the layout's rounding, cars cropped to their content rows.
    fn to_images(&self, images: Tensor<B, 4>) -> Result<Vec<RgbImage>, BoxError> {
        let [_, _, h, _] = images.dims();
        let (top, bottom) = self.domain.content_rows(h);
        let images = images.slice(s![.., .., top..bottom, ..]);
        Ok(match self.layout {
            Layout::Flat => tensor_to_images(images)?,
            Layout::Upstream => rounded_images(images)?,
        })
    }

    /// `BETA`/`ALPHA` labels of edit (row, column).
    fn label(&self, row: usize, column: usize) -> String {
        format!("beta{}_alpha{:+}", self.directions[row].0, self.alphas[column])
    }
}

/// torchvision's `save_image(normalize=True, range=(-1, 1))`, as upstream's StyleCLIP script
/// saves its grids: clamp to [−1, 1], map to [0, 255], add 0.5 and truncate (rounding).
fn rounded_images(images: Tensor<B, 4>) -> Result<Vec<RgbImage>, BoxError> {
    let [batch, _, h, w] = images.dims();
    let values = images
        .clamp(-1.0, 1.0)
        .add_scalar(1.0)
        .div_scalar(2.0)
        .mul_scalar(255.0)
        .add_scalar(0.5)
        .clamp(0.0, 255.0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    let plane = h * w;
    Ok((0..batch)
        .map(|b| {
            let sample = &values[b * 3 * plane..(b + 1) * 3 * plane];
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                image::Rgb([sample[i] as u8, sample[plane + i] as u8, sample[2 * plane + i] as u8])
            })
        })
        .collect())
}

/// One row per β, one column per α (upstream's `nrow=num_alphas`, no padding).
fn edit_grid(rows: &EditGrid) -> Result<RgbImage, BoxError> {
    let height = rows.first().and_then(|r| r.first()).map_or(1, RgbImage::height);
    concat_vertical(&rows.iter().map(|row| side_by_side(row, height)).collect::<Vec<_>>())
}

/// Where the text edits of a run go.
enum TextOutputs {
    /// `NAME_inversion.png`, `NAME_text_betaB_alphaA.png` and the grid `NAME_text.png`.
    Flat(Outputs),
    /// Upstream's `styleclip_edits/NEUTRAL_to_TARGET/STEM.jpg` grids.
    Upstream { dir: PathBuf, names: UpstreamNames },
}

impl TextOutputs {
    fn new(args: &Args, target: &str, inputs: &[PathBuf]) -> Result<Self, BoxError> {
        Ok(match args.layout {
            Layout::Flat => TextOutputs::Flat(Outputs::new(&args.output, inputs)?),
            Layout::Upstream => {
                // Upstream names the folder after the prompts; a `/` in them would open folders.
                let folder = format!("{}_to_{target}", args.text.neutral).replace(['/', '\\'], "_");
                let dir = args.output.join("styleclip_edits").join(folder);
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                TextOutputs::Upstream {
                    dir,
                    names: UpstreamNames::new(inputs),
                }
            }
        })
    }

    /// The name of `input`'s outputs.
    fn name(&mut self, input: &Path) -> String {
        match self {
            TextOutputs::Flat(outputs) => outputs.name(input),
            TextOutputs::Upstream { names, .. } => names.name(input).stem,
        }
    }

    /// Writes sample `name`'s edits (and, flat, its inversion); returns the grid's path.
    fn write(
        &self,
        edit: &TextEdit,
        name: &str,
        inversion: impl FnOnce() -> Result<RgbImage, BoxError>,
        rows: &EditGrid,
    ) -> Result<PathBuf, BoxError> {
        match self {
            TextOutputs::Flat(outputs) => {
                save_image(&inversion()?, outputs.file(&format!("{name}_inversion.png"))?)?;
                for (r, row) in rows.iter().enumerate() {
                    for (c, image) in row.iter().enumerate() {
                        let label = file_part(&edit.label(r, c));
                        save_image(image, outputs.file(&format!("{name}_text_{label}.png"))?)?;
                    }
                }
                let path = outputs.file(&format!("{name}_text.png"))?;
                save_image(&edit_grid(rows)?, &path)?;
                Ok(path)
            }
            TextOutputs::Upstream { dir, names } => {
                let path = names.check(dir.join(format!("{name}.jpg")))?;
                save_image(&edit_grid(rows)?, &path)?;
                Ok(path)
            }
        }
    }
}

/// `--text`: StyleCLIP edits of every photo (inverted first) and saved inversion.
fn text_edits(args: &Args, target: &str, sources: &Sources, device: &Device<B>) -> Result<(), BoxError> {
    let text = &args.text;
    let generator = sources.generator;
    let alphas = grid("alpha", text.alpha, text.alpha_min, text.alpha_max, text.num_alphas)?;
    let betas = grid("beta", text.beta, text.beta_min, text.beta_max, text.num_betas)?;
    let start = Instant::now();
    let (clip, templates, global) = load_styleclip(text, sources.demo, generator, device)?;
    let loaded = start.elapsed();

    // The text direction once; a StyleSpace direction per β.
    let tokenizer = Tokenizer::bundled()?;
    let start = Instant::now();
    let delta_i = GlobalDirections::text_direction(&clip, &tokenizer, &templates, &text.neutral, target)?;
    let _ = delta_i.clone().into_data();
    let text_time = start.elapsed();
    let start = Instant::now();
    let mut directions = Vec::with_capacity(betas.len());
    for &beta in &betas {
        let direction = global.style_direction(delta_i.clone(), beta)?;
        println!(
            "β {beta}: {} style channels move",
            styleclip::moved_channels(&direction)
        );
        directions.push((beta, direction));
    }
    let direction_time = start.elapsed();
    println!(
        "\"{}\" → \"{target}\": {} β × {} α = {} edits per image (rows β {:?}, columns α {:?})",
        text.neutral,
        betas.len(),
        alphas.len(),
        betas.len() * alphas.len(),
        betas,
        alphas
    );
    if text.timings {
        println!(
            "timings: StyleCLIP data loaded in {:.2} s; text → Δi {:.3} s (2 prompts × {} templates \
             through CLIP's text tower); Δi → {} StyleSpace directions {:.1} ms",
            loaded.as_secs_f64(),
            text_time.as_secs_f64(),
            templates.len(),
            betas.len(),
            direction_time.as_secs_f64() * 1e3
        );
    }
    let mut edit = TextEdit {
        generator,
        domain: sources.domain,
        alphas,
        directions,
        max_batch: args.max_batch as usize,
        layout: args.layout,
        render_time: Duration::ZERO,
        renders: 0,
        keep_pooled: false,
    };
    let golden = sources.demo.and_then(|_| DemoEdits::load(text, target));
    edit.keep_pooled = golden.is_some();

    let n_iters = refinement_steps(args.iters, sources.demo, 3)?;
    let mut inputs = args.inputs.clone();
    if let (Some(demo), true) = (sources.demo, inputs.is_empty() && args.inversion.is_empty()) {
        inputs.push(demo.photo(demo_config(args).1));
    }
    let mut failures = Failures::default();
    let photos = match sources.model {
        Some(_) => load_photos(&inputs, sources.aligner, args.n_images, &mut failures)?,
        None => Vec::new(),
    };
    let per_image = betas.len() * edit.alphas.len();
    let total = photos.len() * (n_iters + per_image) + args.inversion.len() * (1 + per_image);
    let bar = progress_bar(total, "generator/refinement passes")?;
    let mut files: Vec<PathBuf> = photos.iter().map(|(path, _)| path.clone()).collect();
    files.extend(args.inversion.iter().cloned());
    let mut outputs = TextOutputs::new(args, target, &files)?;

    if let Some(model) = sources.model {
        for (path, photo) in &photos {
            let start = Instant::now();
            let name = outputs.name(path);
            let result = (|| -> Result<PathBuf, BoxError> {
                let inversion =
                    model.invert_images_with_progress(std::slice::from_ref(photo), n_iters, |_| bar.inc(1))?;
                if text.timings {
                    say(&bar, format!("  inversion: {:.2} s", start.elapsed().as_secs_f64()));
                }
                let rendered = edit.render(inversion.latents.clone(), &inversion.offsets, &bar)?;
                if let Some(golden) = &golden {
                    golden.report(&edit, &rendered, path, &bar);
                }
                let last = inversion.last_step().image.clone();
                outputs.write(&edit, &name, || Ok(tensor_to_images(last)?.remove(0)), &rendered.images)
            })();
            failures.record(&bar, path, start, result);
        }
    }
    for path in &args.inversion {
        let start = Instant::now();
        let name = outputs.name(path);
        let result = (|| -> Result<PathBuf, BoxError> {
            let saved = load_saved(path, generator, device)?;
            let batch = saved.latents.dims()[0];
            let mut grid = PathBuf::new();
            for b in 0..batch {
                let sample = saved.sample(b)?;
                let rows = edit.render(sample.latents.clone(), &sample.offsets, &bar)?.images;
                let inversion = || -> Result<RgbImage, BoxError> {
                    let image = generator.synthesis(sample.latents.clone(), &Noise::Stored, Some(&sample.offsets))?;
                    Ok(edit.to_images(image)?.remove(0))
                };
                let sample_name = if batch == 1 {
                    name.clone()
                } else {
                    format!("{name}_{b}")
                };
                grid = outputs.write(&edit, &sample_name, inversion, &rows)?;
            }
            bar.inc(1);
            Ok(grid)
        })();
        failures.record(&bar, path, start, result);
    }
    bar.finish();
    if text.timings && edit.renders > 0 {
        let size = generator.config().size;
        println!(
            "timings: {} edits rendered at {size}×{size} (batches of up to {}): {:.2} s per edit",
            edit.renders,
            edit.max_batch,
            edit.render_time.as_secs_f64() / edit.renders as f64
        );
    }
    failures.finish()
}

/// Demo: the edits upstream's StyleCLIP code rendered for the bundled photo
/// (tests/fixtures/styleclip_edit_golden.safetensors: "a face" → "a face with a beard").
struct DemoEdits {
    store: WeightStore,
    /// `(key, α, β)` of each edit.
    edits: Vec<(String, f32, f32)>,
}

impl DemoEdits {
    /// The golden's edits, if the prompts are the golden's.
    fn load(text: &TextArgs, target: &str) -> Option<Self> {
        if text.neutral != "a face" || target != "a face with a beard" {
            return None;
        }
        let store =
            WeightStore::open(hyperstyle::demo::fixtures_dir().join("styleclip_edit_golden.safetensors")).ok()?;
        let edits = (0..)
            .map_while(|k| {
                let (_, ab) = store.any_values(&format!("edit{k}_alpha_beta")).ok()?;
                Some((format!("edit{k}_pooled"), ab[0], ab[1]))
            })
            .collect();
        Some(Self { store, edits })
    }

    /// Prints how far each edit upstream also rendered is from its output (pooled to 256×256).
    fn report(&self, edit: &TextEdit, rendered: &Rendered, path: &Path, bar: &ProgressBar) {
        if path.file_stem().and_then(|s| s.to_str()) != Some("astronaut") {
            return;
        }
        for (key, alpha, beta) in &self.edits {
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
            let Some(r) = edit.directions.iter().position(|(b, _)| close(*b, *beta)) else {
                continue;
            };
            let Some(c) = edit.alphas.iter().position(|a| close(*a, *alpha)) else {
                continue;
            };
            let (Ok((_, expected)), Some(ours)) = (self.store.any_values(key), rendered.pooled[r].get(c)) else {
                continue;
            };
            let ours = ours.clone().into_data().convert::<f32>().to_vec::<f32>();
            if let Some(stats) = ours.ok().and_then(|o| hyperstyle::core::error_stats(&o, &expected)) {
                say(
                    bar,
                    format!(
                        "  β {beta} α {alpha:+}: max-abs diff from upstream {:.2e} (mean {:.2e})",
                        stats.max_abs, stats.mean_abs
                    ),
                );
            }
        }
    }
}

/// A saved inversion, refused unless it was made for `generator`'s output size.
fn load_saved(path: &Path, generator: &Generator<B>, device: &Device<B>) -> Result<SavedInversion<B>, BoxError> {
    let saved = SavedInversion::<B>::load(path, device)?;
    if saved.config.output_size != generator.config().size {
        return Err(format!(
            "saved for a {0}×{0} generator, the model's is {1}×{1}",
            saved.config.output_size,
            generator.config().size
        )
        .into());
    }
    Ok(saved)
}
