//! Trains HyperStyle's hypernetwork as the original's `scripts/train.py` does: the generator and
//! W encoder frozen, the refinement iterations per batch, the original's losses and optimizer,
//! image grids, validation, checkpoints the inversion pipeline loads, and resuming.
//!
//! The released faces setting (converted checkpoints, image folders):
//!
//! ```text
//! cargo run --release --example train -- --exp-dir experiments/hyperstyle \
//!     --dataset-type ffhq_hypernet --train-source ffhq/ --test-source celeba_test/ \
//!     --stylegan-weights stylegan2-ffhq-config-f.safetensors --w-encoder faces_w_encoder.safetensors \
//!     --resnet34 resnet34.safetensors --lpips-alexnet alexnet.safetensors --lpips-linear lpips_alex.safetensors \
//!     --arcface model_ir_se50.safetensors --batch-size 8 --test-batch-size 8 --n-iters-per-batch 5 \
//!     --val-interval 5000 --save-interval 10000 --max-val-batches 150
//! ```
//!
//! `--demo` trains on the bundled photos with the bundled test model (pattern weights, 256×256,
//! L2 loss only, two small layers tuned, five steps, a few minutes): it shows the loop run, the loss
//! fall and the checkpoints appear, without any download.

mod common;

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::prelude::*;
use clap::{Parser, ValueEnum};
use common::BoxError;
use hyperstyle::backend::{reuse_freed_memory, DefaultBackend};
use hyperstyle::core::{Kind, WeightStore};
use hyperstyle::demo::{fixtures_dir, Demo};
use hyperstyle::encoders::{LatentAverage, WEncoder};
use hyperstyle::hypernet::{HypernetConfig, LayersToTune};
use hyperstyle::stylegan2::{Generator, GeneratorConfig};
use hyperstyle::training::data::{DataLoader, DatasetType, ImagesDataset, LatentsImagesDataset, LoaderConfig};
use hyperstyle::training::step::{
    BackboneInit, FrozenNetworks, Lambdas, LossNets, OptimizerChoice, RangerConfig, SimilarityNet, TrainConfig,
    TrainableHypernetwork, Trainer,
};
use hyperstyle::training::{Coach, CoachConfig, Event};
use hyperstyle_metrics::{IdSimilarity, Lpips, MocoSimilarity};

type B = Autodiff<DefaultBackend>;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Optim {
    Ranger,
    Adam,
}

/// Train HyperStyle's hypernetwork (the original's scripts/train.py). The generator and the W
/// encoder stay frozen; checkpoints go to <exp-dir>/checkpoints/ and load with `invert --model`.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Experiment folder: checkpoints/, logs/images/, logs/metrics.jsonl.
    #[arg(long)]
    exp_dir: PathBuf,
    /// Train on the bundled photos with the bundled test model (no files needed).
    #[arg(long)]
    demo: bool,

    /// ffhq_hypernet, ffhq_hypernet_pre_extract, cars_hypernet or afhq_wild_hypernet: the
    /// domain, its transforms and whether inversions are pre-extracted.
    #[arg(long, default_value = "ffhq_hypernet")]
    dataset_type: String,
    /// Training images (the sources; also the targets unless --train-target).
    #[arg(long)]
    train_source: Option<PathBuf>,
    /// Training targets (pre-extracted data: the original photos).
    #[arg(long)]
    train_target: Option<PathBuf>,
    /// Pre-extracted data: the latents file of the training inversions (extract_inversions).
    #[arg(long)]
    train_latents: Option<PathBuf>,
    /// Validation images (no validation without them).
    #[arg(long)]
    test_source: Option<PathBuf>,
    /// Validation targets.
    #[arg(long)]
    test_target: Option<PathBuf>,
    /// Pre-extracted data: the latents file of the validation inversions.
    #[arg(long)]
    test_latents: Option<PathBuf>,

    /// Converted StyleGAN2 checkpoint (rosinality's g_ema and latent_avg) for a fresh run.
    #[arg(long, conflicts_with = "checkpoint")]
    stylegan_weights: Option<PathBuf>,
    /// Converted HyperStyle checkpoint to continue training from (its hypernetwork, generator
    /// and latent_avg).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Resume a run exactly: the resume.safetensors of an earlier run (or `auto`: the one in
    /// --exp-dir). The networks come from --stylegan-weights / --checkpoint as before.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Converted W-encoder checkpoint (needed unless inversions are pre-extracted).
    #[arg(long)]
    w_encoder: Option<PathBuf>,
    /// Converted torchvision ResNet-34 to start the hypernetwork's backbone from (as the
    /// original); without it the backbone starts from random values.
    #[arg(long)]
    resnet34: Option<PathBuf>,
    /// Converted torchvision AlexNet, for the LPIPS loss.
    #[arg(long, requires = "lpips_linear")]
    lpips_alexnet: Option<PathBuf>,
    /// Converted LPIPS linear layers (alex.pth).
    #[arg(long, requires = "lpips_alexnet")]
    lpips_linear: Option<PathBuf>,
    /// Converted IR-SE-50 ArcFace (model_ir_se50.pth), for the ID loss (faces).
    #[arg(long, conflicts_with = "moco")]
    arcface: Option<PathBuf>,
    /// Converted MoCo v2 ResNet-50 (moco_v2_800ep_pretrain.pt), for the similarity loss of the
    /// other domains.
    #[arg(long)]
    moco: Option<PathBuf>,

    /// Generator output size (1024 faces, 512 cars and animals, 256); default: the checkpoint's.
    #[arg(long)]
    output_size: Option<usize>,
    /// Generator layers the hypernetwork tunes.
    #[arg(long, default_value = "0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24")]
    layers_to_tune: String,
    /// Training batch size.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Validation batch size.
    #[arg(long, default_value_t = 2)]
    test_batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-4)]
    learning_rate: f64,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "ranger")]
    optim_name: Optim,
    /// Refinement iterations per batch (the released models used 5).
    #[arg(long, default_value_t = 1)]
    n_iters_per_batch: usize,
    /// LPIPS weight (default 0.8).
    #[arg(long)]
    lpips_lambda: Option<f64>,
    /// L2 weight (default 1).
    #[arg(long)]
    l2_lambda: Option<f64>,
    /// ID weight (default 0.1 for faces, else 0).
    #[arg(long)]
    id_lambda: Option<f64>,
    /// MoCo similarity weight (default 0.5 for cars and animals, else 0).
    #[arg(long)]
    moco_lambda: Option<f64>,
    /// Last step (the run trains steps 0 to max-steps).
    #[arg(long, default_value_t = 500_000)]
    max_steps: u64,
    /// Steps between training image grids.
    #[arg(long, default_value_t = 100)]
    image_interval: u64,
    /// Steps between logged training losses.
    #[arg(long, default_value_t = 50)]
    board_interval: u64,
    /// Steps between validation passes.
    #[arg(long, default_value_t = 1000)]
    val_interval: u64,
    /// Steps between checkpoints (default: only at the end).
    #[arg(long)]
    save_interval: Option<u64>,
    /// Validation batches per pass (default: all).
    #[arg(long)]
    max_val_batches: Option<usize>,
    /// Seed of the data order, the flips and a fresh hypernetwork.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> std::process::ExitCode {
    common::exit(start())
}

fn start() -> Result<(), BoxError> {
    reuse_freed_memory();
    let mut args = Args::parse();
    if args.demo {
        demo_settings(&mut args);
    }
    let device = Default::default();
    let dataset_type = DatasetType::from_name(&args.dataset_type)
        .ok_or_else(|| format!("unknown --dataset-type {}", args.dataset_type))?;

    let (frozen, start) = frozen_networks(&args, &device)?;
    let size = frozen.generator.config().size;
    let losses = loss_nets(&args, &device)?;
    let resume = args.resume.as_ref().map(|path| {
        if path.as_os_str() == "auto" {
            args.exp_dir.join("checkpoints/resume.safetensors")
        } else {
            path.clone()
        }
    });
    let trainer = match resume {
        Some(path) => {
            println!("Resuming from {}", path.display());
            Trainer::resume(&path, frozen, losses)?
        }
        None => {
            let layers: LayersToTune = args.layers_to_tune.parse()?;
            let hypernet_config = HypernetConfig::new(GeneratorConfig::new(size)).with_layers_to_tune(layers);
            let hypernet = match start {
                Some(store) => {
                    let prefix = store.state_dict_prefix("hypernet.", "conv1.weight");
                    TrainableHypernetwork::load(&store.scope(&prefix), &hypernet_config, &device)?
                }
                None => match &args.resnet34 {
                    Some(path) => {
                        let resnet = WeightStore::open(path)?;
                        let weights = resnet.root();
                        TrainableHypernetwork::init(
                            &hypernet_config,
                            BackboneInit::ImageNet(&weights),
                            args.seed,
                            &device,
                        )?
                    }
                    None => TrainableHypernetwork::init(&hypernet_config, BackboneInit::Random, args.seed, &device)?,
                },
            };
            Trainer::new(
                hypernet,
                hypernet_config,
                frozen,
                losses,
                train_config(&args, dataset_type),
            )?
        }
    };

    let config = CoachConfig {
        max_steps: args.max_steps,
        image_interval: args.image_interval,
        board_interval: args.board_interval,
        val_interval: args.val_interval,
        save_interval: args.save_interval,
        max_val_batches: args.max_val_batches,
        ..CoachConfig::new(&args.exp_dir)
    };
    let train_source = args.train_source.clone().ok_or("--train-source is needed")?;
    let loader = LoaderConfig {
        workers: 0,
        ..LoaderConfig::train(args.batch_size, args.seed)
    };
    let t = dataset_type.transforms();
    if dataset_type.pre_extracted() {
        let latents = args
            .train_latents
            .clone()
            .ok_or("pre-extracted data needs --train-latents")?;
        let target = args
            .train_target
            .clone()
            .ok_or("pre-extracted data needs --train-target")?;
        let n_styles = GeneratorConfig::new(size).n_latent();
        let train = LatentsImagesDataset::new(&train_source, &target, &latents, n_styles, t.target_train, t.source)?;
        let test = match (&args.test_source, &args.test_target, &args.test_latents) {
            (Some(source), Some(target), Some(latents)) => Some(LatentsImagesDataset::new(
                source, target, latents, n_styles, t.test, t.source,
            )?),
            _ => None,
        };
        run(trainer, (train, loader), test, args.test_batch_size, config, device)
    } else {
        let target = args.train_target.clone().unwrap_or_else(|| train_source.clone());
        let train = ImagesDataset::new(&train_source, &target, t.target_train, t.source)?;
        let test = match &args.test_source {
            Some(source) => {
                let target = args.test_target.clone().unwrap_or_else(|| source.clone());
                Some(ImagesDataset::new(source, &target, t.test, t.source)?)
            }
            None => None,
        };
        run(trainer, (train, loader), test, args.test_batch_size, config, device)
    }
}

/// Runs the coach over the training data (and the test data, in order, if any) with a progress
/// bar and the original's printed metrics.
fn run<D: hyperstyle::training::data::Dataset>(
    trainer: Trainer<B>,
    (train, loader): (D, LoaderConfig),
    test: Option<D>,
    test_batch_size: usize,
    config: CoachConfig,
    device: Device<B>,
) -> Result<(), BoxError> {
    let test = match test {
        Some(test) => Some(DataLoader::new(test, LoaderConfig::test(test_batch_size))?),
        None => None,
    };
    let mut coach = Coach::new(trainer, DataLoader::new(train, loader)?, test, config, device)?;
    let start = coach.trainer().global_step;
    let max = coach.config().max_steps;
    let bar = common::progress_bar((max + 1).saturating_sub(start) as usize, "steps")?;
    let board = coach.config().board_interval;
    coach.run(|event| match event {
        Event::Step { step, losses, seconds } => {
            bar.set_message(format!("loss {:.4} ({seconds:.2} s/step)", losses.loss));
            if step % board == 0 {
                let terms: Vec<String> = losses.entries().iter().map(|(k, v)| format!("{k} = {v:.5}")).collect();
                common::say(&bar, format!("step {step} train: {}", terms.join(", ")));
            }
            bar.inc(1);
        }
        Event::Validation {
            step,
            losses: Some(losses),
        } => {
            let terms: Vec<String> = losses.entries().iter().map(|(k, v)| format!("{k} = {v:.5}")).collect();
            common::say(&bar, format!("step {step} test: {}", terms.join(", ")));
        }
        Event::Validation { .. } => {}
        Event::Checkpoint { path, best, .. } => {
            common::say(
                &bar,
                format!("saved {}{}", path.display(), if best { " (best)" } else { "" }),
            );
        }
    })?;
    bar.finish();
    println!(
        "Finished: checkpoints in {}",
        coach.config().exp_dir.join("checkpoints").display()
    );
    Ok(())
}

/// The step's settings from the options, with the original's per-domain loss weights.
fn train_config(args: &Args, dataset_type: DatasetType) -> TrainConfig {
    let faces = dataset_type.domain() == hyperstyle::Domain::Faces;
    let defaults = if faces {
        Lambdas::faces()
    } else {
        Lambdas::other_domains()
    };
    let lambdas = Lambdas {
        lpips: args.lpips_lambda.unwrap_or(defaults.lpips),
        l2: args.l2_lambda.unwrap_or(defaults.l2),
        id: args.id_lambda.unwrap_or(defaults.id),
        moco: args.moco_lambda.unwrap_or(defaults.moco),
    };
    TrainConfig {
        lambdas,
        n_iters_per_batch: args.n_iters_per_batch,
        learning_rate: args.learning_rate,
        optimizer: match args.optim_name {
            Optim::Ranger => OptimizerChoice::Ranger(RangerConfig {
                lr: args.learning_rate,
                ..Default::default()
            }),
            Optim::Adam => OptimizerChoice::Adam,
        },
        dataset_type: args.dataset_type.clone(),
    }
}

/// The frozen generator, latent_avg and W encoder; with --checkpoint also the store the
/// hypernetwork starts from.
fn frozen_networks(args: &Args, device: &Device<B>) -> Result<(FrozenNetworks<B>, Option<WeightStore>), BoxError> {
    let w_encoder_store = args.w_encoder.as_ref().map(WeightStore::open).transpose()?;
    if args.demo {
        let demo = Demo::load("ffhq256")?;
        let model = demo.weights("hyperstyle", &["decoder.", "latent_avg"])?;
        let w_encoder = demo.weights("w_encoder", &["encoder."])?;
        let frozen = FrozenNetworks::from_checkpoint(&model, Some(&w_encoder), &GeneratorConfig::new(256), device)?;
        return Ok((frozen, None));
    }
    if let Some(path) = &args.checkpoint {
        let store = WeightStore::open_checkpoint(path, &[Kind::Hyperstyle])?;
        let size = match args.output_size {
            Some(size) => size,
            None => checkpoint_size(&store)?,
        };
        let frozen =
            FrozenNetworks::from_checkpoint(&store, w_encoder_store.as_ref(), &GeneratorConfig::new(size), device)?;
        return Ok((frozen, Some(store)));
    }
    let path = args
        .stylegan_weights
        .as_ref()
        .ok_or("give --stylegan-weights (a fresh run), --checkpoint or --demo")?;
    let size = args.output_size.unwrap_or(1024);
    let config = GeneratorConfig::new(size);
    Ok((
        stylegan_networks(path, w_encoder_store.as_ref(), &config, device)?,
        None,
    ))
}

/// A fresh run's frozen networks from a converted rosinality checkpoint: `g_ema/*` and its
/// `latent_avg` (or, as the original does when it has none, the mean of 100000 mapped codes).
fn stylegan_networks(
    path: &Path,
    w_encoder: Option<&WeightStore>,
    config: &GeneratorConfig,
    device: &Device<B>,
) -> Result<FrozenNetworks<B>, BoxError> {
    let store = WeightStore::open_checkpoint(path, &[Kind::Stylegan2])?;
    let generator = Generator::load(&store.scope("g_ema/"), config, device)?;
    let mut decoder_tensors = Vec::new();
    for key in store.keys() {
        if let Some(name) = key.strip_prefix("g_ema/") {
            let (shape, values) = store.any_values(&key)?;
            decoder_tensors.push((name.to_string(), shape, values));
        }
    }
    decoder_tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let n_styles = config.n_latent();
    let latent_avg = if store.contains("latent_avg") {
        LatentAverage::load(&store.root(), "latent_avg", n_styles, device)?
    } else {
        LatentAverage::from_tensor(generator.mean_latent(100_000, device))?
    };
    let w_encoder = match w_encoder {
        Some(store) => {
            let prefix = store.state_dict_prefix("encoder.", "linear.weight");
            Some(WEncoder::load(&store.scope(&prefix), n_styles, device)?)
        }
        None => None,
    };
    Ok(FrozenNetworks {
        generator,
        decoder_tensors,
        latent_avg,
        w_encoder,
    })
}

/// The output size a HyperStyle checkpoint records in its `opts`.
fn checkpoint_size(store: &WeightStore) -> Result<usize, BoxError> {
    let opts = store.opts()?;
    Ok(opts
        .get("output_size")
        .and_then(|v| v.as_u64())
        .ok_or("the checkpoint's opts have no output_size; give --output-size")? as usize)
}

/// LPIPS and ArcFace or MoCo, when their files are given.
fn loss_nets(args: &Args, device: &Device<B>) -> Result<LossNets<B>, BoxError> {
    let lpips = match (&args.lpips_alexnet, &args.lpips_linear) {
        (Some(alexnet), Some(linear)) => {
            let (alexnet, linear) = (WeightStore::open(alexnet)?, WeightStore::open(linear)?);
            Some(Lpips::load(&alexnet.root(), &linear.root(), device)?)
        }
        _ => None,
    };
    let similarity = match (&args.arcface, &args.moco) {
        (Some(path), _) => {
            let store = WeightStore::open(path)?;
            Some(SimilarityNet::Id(IdSimilarity::load(&store.root(), device)?))
        }
        (None, Some(path)) => {
            let store = WeightStore::open_checkpoint(path, &[Kind::Moco])?;
            Some(SimilarityNet::Moco(MocoSimilarity::load(&store.root(), device)?))
        }
        (None, None) => None,
    };
    Ok(LossNets::new(lpips, similarity))
}

/// `--demo`: the bundled photos and test model, L2 only, two small layers, a short run.
fn demo_settings(args: &mut Args) {
    let photos = fixtures_dir().join("images");
    println!(
        "Demo: training on the bundled photos in {} with the bundled 256×256 test model \
         (pattern weights), L2 loss only.",
        photos.display()
    );
    args.train_source.get_or_insert(photos.clone());
    args.test_source.get_or_insert(photos);
    args.layers_to_tune = "17,18".into();
    args.lpips_lambda = Some(0.0);
    args.id_lambda = Some(0.0);
    args.moco_lambda = Some(0.0);
    args.l2_lambda.get_or_insert(1.0);
    args.batch_size = args.batch_size.min(2);
    args.test_batch_size = 2;
    args.n_iters_per_batch = args.n_iters_per_batch.max(2);
    if args.max_steps == 500_000 {
        args.max_steps = 4;
    }
    if args.learning_rate == 1e-4 {
        args.learning_rate = 1e-2;
    }
    args.image_interval = args.image_interval.min(2);
    args.board_interval = args.board_interval.min(1);
    args.val_interval = args.val_interval.min(2);
    args.max_val_batches.get_or_insert(0);
}
