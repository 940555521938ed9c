//! Upstream's evaluation metrics on two folders of images: per-image L2, MS-SSIM, LPIPS and
//! identity similarity as CSV, and their means (`scripts/calc_losses_on_images.py` and the
//! identity loss of the original implementation).
//!
//! ```text
//! cargo run --release --example metrics -- inference_results/ gt_images/ \
//!     --alexnet alexnet.safetensors --lpips lpips_alex.safetensors --arcface model_ir_se50.safetensors
//! cargo run --release --example metrics -- results/ originals/          # L2 and MS-SSIM only
//! ```
//! The weight files are converted with `weights-convert`: torchvision's `alexnet-owt-*.pth`,
//! LPIPS v0.1's `alex.pth` and ArcFace's `model_ir_se50.pth`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use clap::Parser;
use hyperstyle::backend::DefaultBackend as B;
use hyperstyle::core::{Kind, WeightStore};
use hyperstyle::io::{load_image, normalize};
use hyperstyle_metrics::{l2, IdSimilarity, Lpips, MsSsim};
use indicatif::{ProgressBar, ProgressStyle};

use common::BoxError;

/// Side of the square every image is resized to (upstream's `Resize((256, 256))`).
const SIDE: usize = 256;

#[derive(Parser)]
#[command(
    about = "Compare two folders of images with upstream HyperStyle's metrics",
    long_about = "Compare each image of RESULTS with the image of the same file name in GT, as \
                  upstream's metric scripts do: both are resized to 256×256 (Pillow bilinear) and \
                  normalised to [-1, 1]; then L2 (mean squared error), MS-SSIM, LPIPS (AlexNet, \
                  v0.1) and the ArcFace identity similarity of the face region (as HyperStyle's \
                  identity loss crops it; upstream's separate ID script uses CurricularFace with \
                  MTCNN alignment instead, which is not ported). If RESULTS holds numbered folders \
                  (upstream's inference_results/0, 1, ...), each step is evaluated. L2 and MS-SSIM \
                  need no weights; LPIPS needs --alexnet and --lpips, the identity similarity \
                  --arcface (converted with weights-convert). Writes one CSV per step and the means \
                  (MS-SSIM NaNs, from negative contrast terms, are left out of the mean as upstream \
                  does)."
)]
struct Args {
    /// Folder of result images (PNG or JPEG), or of numbered step folders.
    results: PathBuf,
    /// Folder of ground-truth images with the same file names.
    gt: PathBuf,
    /// torchvision's AlexNet, converted (.safetensors); with --lpips enables LPIPS.
    #[arg(long, requires = "lpips")]
    alexnet: Option<PathBuf>,
    /// The LPIPS v0.1 linear layers (`alex.pth`), converted (.safetensors).
    #[arg(long, requires = "alexnet")]
    lpips: Option<PathBuf>,
    /// ArcFace IR-SE-50 (`model_ir_se50.pth`), converted (.safetensors); enables the identity
    /// similarity.
    #[arg(long)]
    arcface: Option<PathBuf>,
    /// Use the test fixtures' pattern weights for LPIPS and ID when their files are not given.
    /// They are not trained networks: the numbers only show that the pipeline runs.
    #[arg(long)]
    demo_weights: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    batch_size: u64,
    /// Output folder for `scores[_step<N>].csv` and `stats.txt` [default: inference_metrics next
    /// to RESULTS, as upstream].
    #[arg(long)]
    output: Option<PathBuf>,
}

/// The metrics that run, in CSV column order.
struct Metrics {
    lpips: Option<Lpips<B>>,
    id: Option<IdSimilarity<B>>,
    ms_ssim: MsSsim,
}

impl Metrics {
    fn load(args: &Args, device: &Device<B>) -> Result<Self, BoxError> {
        let demo = || -> Result<hyperstyle::core::Manifest, BoxError> {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/metrics/tests/fixtures/metrics_manifest.json");
            Ok(hyperstyle::core::Manifest::load(path)?)
        };
        let store = |path: &Path, kind: Kind| WeightStore::open_checkpoint(path, &[kind]);
        let lpips = match (&args.alexnet, &args.lpips) {
            (Some(alexnet), Some(linear)) => {
                let (alexnet, linear) = (store(alexnet, Kind::Alexnet)?, store(linear, Kind::Lpips)?);
                Some(Lpips::load(&alexnet.root(), &linear.root(), device)?)
            }
            _ if args.demo_weights => {
                let manifest = demo()?;
                let alexnet = manifest.checkpoint("alexnet")?.store(&[""])?;
                let linear = manifest.checkpoint("lpips")?.store(&[""])?;
                Some(Lpips::load(&alexnet.root(), &linear.root(), device)?)
            }
            _ => None,
        };
        let id = match &args.arcface {
            Some(path) => Some(IdSimilarity::load(&store(path, Kind::Arcface)?.root(), device)?),
            None if args.demo_weights => {
                let arcface = demo()?.checkpoint("arcface")?.store(&[""])?;
                Some(IdSimilarity::load(&arcface.root(), device)?)
            }
            None => None,
        };
        Ok(Self {
            lpips,
            id,
            ms_ssim: MsSsim::new(),
        })
    }

    fn names(&self) -> Vec<&'static str> {
        let mut names = vec!["l2", "msssim"];
        if self.lpips.is_some() {
            names.push("lpips");
        }
        if self.id.is_some() {
            names.push("id");
        }
        names
    }

    /// One row of scores per pair of the batch.
    fn score(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Vec<Vec<f32>>, BoxError> {
        let mut columns = vec![l2(x.clone(), y.clone())?, self.ms_ssim.forward(x.clone(), y.clone())?];
        if let Some(lpips) = &self.lpips {
            columns.push(lpips.forward(x.clone(), y.clone())?);
        }
        if let Some(id) = &self.id {
            columns.push(id.forward(x, y)?);
        }
        let columns: Vec<Vec<f32>> = columns
            .into_iter()
            .map(|c| c.into_data().convert::<f32>().to_vec::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading scores: {e:?}"))?;
        let batch = columns[0].len();
        Ok((0..batch).map(|i| columns.iter().map(|c| c[i]).collect()).collect())
    }
}

fn is_image(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// `(label, folder)` per step: numbered subfolders in numeric order, else RESULTS itself.
fn steps(results: &Path) -> Result<Vec<(Option<u64>, PathBuf)>, BoxError> {
    let mut numbered = BTreeMap::new();
    for entry in std::fs::read_dir(results).map_err(|e| format!("{}: {e}", results.display()))? {
        let path = entry?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok());
        if let (Some(step), true) = (step, path.is_dir()) {
            numbered.insert(step, path);
        }
    }
    if numbered.is_empty() {
        Ok(vec![(None, results.to_path_buf())])
    } else {
        Ok(numbered.into_iter().map(|(s, p)| (Some(s), p)).collect())
    }
}

/// Mean and population standard deviation (numpy's `std`) of the finite values, and their count.
fn mean_std(values: impl Iterator<Item = f32>) -> (f64, f64, usize) {
    let v: Vec<f64> = values.filter(|v| v.is_finite()).map(f64::from).collect();
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt(), v.len())
}

fn run_step(
    metrics: &Metrics,
    folder: &Path,
    args: &Args,
    device: &Device<B>,
) -> Result<(Vec<String>, Vec<Vec<f32>>), BoxError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| format!("{}: {e}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    let mut pairs = Vec::new();
    for file in files {
        let gt = args.gt.join(file.file_name().expect("a file"));
        if gt.is_file() {
            pairs.push((file, gt));
        } else {
            eprintln!("skipping {}: no {} in the ground truth", file.display(), gt.display());
        }
    }
    if pairs.is_empty() {
        return Err(format!(
            "no image of {} has a same-named image in {}",
            folder.display(),
            args.gt.display()
        )
        .into());
    }
    let bar = ProgressBar::new(pairs.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} pairs {elapsed_precise} (eta {eta})",
    )?);
    let (mut names, mut rows) = (Vec::new(), Vec::new());
    for chunk in pairs.chunks(args.batch_size as usize) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (result, gt) in chunk {
            x.extend(normalize(&load_image(result)?, (SIDE, SIDE)));
            y.extend(normalize(&load_image(gt)?, (SIDE, SIDE)));
            names.push(result.file_name().expect("a file").to_string_lossy().into_owned());
        }
        let shape = [chunk.len(), 3, SIDE, SIDE];
        let x = Tensor::from_data(TensorData::new(x, shape), device);
        let y = Tensor::from_data(TensorData::new(y, shape), device);
        rows.extend(metrics.score(x, y)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok((names, rows))
}

fn main() -> std::process::ExitCode {
    common::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), BoxError> {
    for (what, dir) in [("RESULTS", &args.results), ("GT", &args.gt)] {
        if !dir.is_dir() {
            return Err(format!("{what} {} is not a folder", dir.display()).into());
        }
    }
    let device = Default::default();
    hyperstyle::backend::check_device::<B>(&device)?;
    let metrics = Metrics::load(&args, &device)?;
    if metrics.lpips.is_none() || metrics.id.is_none() {
        println!(
            "Without {} only the metrics that need no weights run (see --help).",
            [
                metrics.lpips.is_none().then_some("--alexnet/--lpips"),
                metrics.id.is_none().then_some("--arcface")
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ")
        );
    }
    if args.demo_weights {
        println!("--demo-weights: LPIPS and ID use pattern weights, not trained networks; their numbers mean nothing.");
    }
    let output = match &args.output {
        Some(dir) => dir.clone(),
        None => args
            .results
            .canonicalize()
            .map_err(|e| format!("{}: {e}", args.results.display()))?
            .parent()
            .map_or_else(|| PathBuf::from("inference_metrics"), |p| p.join("inference_metrics")),
    };
    std::fs::create_dir_all(&output).map_err(|e| format!("{}: {e}", output.display()))?;
    let columns = metrics.names();
    let mut stats = String::new();
    for (step, folder) in steps(&args.results)? {
        let label = step.map_or(String::new(), |s| format!("step {s}: "));
        println!("{label}{}", folder.display());
        let (names, rows) = run_step(&metrics, &folder, &args, &device)?;
        let mut csv = format!("file,{}\n", columns.join(","));
        for (name, row) in names.iter().zip(&rows) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
            writeln!(csv, "{name},{}", cells.join(","))?;
        }
        let csv_path = output.join(step.map_or("scores.csv".to_string(), |s| format!("scores_step{s}.csv")));
        std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
        for (c, column) in columns.iter().enumerate() {
            let (mean, std, n) = mean_std(rows.iter().map(|r| r[c]));
            let skipped = rows.len() - n;
            let note = if skipped > 0 {
                format!(" ({skipped} NaN left out)")
            } else {
                String::new()
            };
            let line = format!("{label}{column}: {mean:.5}+-{std:.5} over {n} images{note}");
            println!("  {line}");
            writeln!(stats, "{line}")?;
        }
        println!("  per-image scores: {}", csv_path.display());
    }
    let stats_path = output.join("stats.txt");
    std::fs::write(&stats_path, stats).map_err(|e| format!("{}: {e}", stats_path.display()))?;
    println!("means: {}", stats_path.display());
    Ok(())
}
