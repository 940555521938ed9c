//! `hyperstyle::training::Coach`: a whole (tiny) run writes the original's experiment folder, and
//! a run stopped and resumed from its `resume.safetensors` ends with exactly the weights of an
//! uninterrupted one (optimizer state, step count and data order carried over).
//!
//! The ffhq256 pattern model with a fresh hypernetwork tuning one small layer (18, 128→128), L2
//! only, the two ffhq256 fixture faces as a one-batch dataset, one refinement iteration per step.

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use hyperstyle::demo::Demo;
use hyperstyle::hypernet::{HypernetConfig, LayersToTune};
use hyperstyle::stylegan2::GeneratorConfig;
use hyperstyle::training::data::{DataLoader, DatasetTransforms, ImagesDataset, LoaderConfig};
use hyperstyle::training::step::{
    BackboneInit, FrozenNetworks, Lambdas, LossNets, OptimizerChoice, RangerConfig, TrainConfig, TrainableHypernetwork,
    Trainer,
};
use hyperstyle::training::{Coach, CoachConfig, Event};
use hyperstyle::Domain;

type B = Autodiff<Flex>;

fn frozen(device: &Device<B>) -> FrozenNetworks<B> {
    let demo = Demo::load("ffhq256").unwrap();
    let model = demo.weights("hyperstyle", &["decoder.", "latent_avg"]).unwrap();
    let w_encoder = demo.weights("w_encoder", &["encoder."]).unwrap();
    FrozenNetworks::from_checkpoint(&model, Some(&w_encoder), &GeneratorConfig::new(256), device).unwrap()
}

fn losses(device: &Device<B>) -> LossNets<B> {
    let _ = device;
    LossNets::new(None, None)
}

fn trainer(device: &Device<B>) -> Trainer<B> {
    let config = HypernetConfig::new(GeneratorConfig::new(256)).with_layers_to_tune(LayersToTune::only([18]));
    let hypernet = TrainableHypernetwork::init(&config, BackboneInit::Random, 7, device).unwrap();
    let step = TrainConfig {
        lambdas: Lambdas {
            lpips: 0.0,
            l2: 1.0,
            id: 0.0,
            moco: 0.0,
        },
        n_iters_per_batch: 1,
        learning_rate: 1e-2,
        optimizer: OptimizerChoice::Ranger(RangerConfig {
            lr: 1e-2,
            k: 2,
            ..Default::default()
        }),
        dataset_type: "ffhq_hypernet".into(),
    };
    Trainer::new(hypernet, config, frozen(device), losses(device), step).unwrap()
}

/// A folder with the two ffhq256 fixture faces.
fn faces_folder(dir: &Path) -> std::path::PathBuf {
    let folder = dir.join("faces");
    std::fs::create_dir_all(&folder).unwrap();
    for k in 0..2 {
        let name = format!("ffhq256_input{k}.png");
        std::fs::copy(
            hyperstyle::demo::fixtures_dir().join("images").join(&name),
            folder.join(name),
        )
        .unwrap();
    }
    folder
}

fn loader(folder: &Path, batch_size: usize, shuffle: bool) -> DataLoader<ImagesDataset> {
    let t = DatasetTransforms::encode(Domain::Faces);
    let dataset = ImagesDataset::new(folder, folder, t.target_train, t.source).unwrap();
    let config = if shuffle {
        LoaderConfig::train(batch_size, 3)
    } else {
        LoaderConfig::test(batch_size)
    };
    DataLoader::new(dataset, config).unwrap()
}

fn coach(trainer: Trainer<B>, folder: &Path, exp_dir: &Path, max_steps: u64) -> Coach<B, ImagesDataset> {
    let config = CoachConfig {
        max_steps,
        image_interval: 2,
        board_interval: 1,
        val_interval: 2,
        save_interval: Some(1),
        max_val_batches: None,
        ..CoachConfig::new(exp_dir)
    };
    // Batches of one face: the two steps of an epoch see different faces, in the seed's order.
    Coach::new(
        trainer,
        loader(folder, 1, true),
        Some(loader(folder, 2, false)),
        config,
        Default::default(),
    )
    .unwrap()
}

fn weights(trainer: &Trainer<B>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    trainer.hypernet().tensors().unwrap()
}

#[test]
fn a_run_writes_the_experiment_folder_and_resumes_exactly() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let folder = faces_folder(dir.path());

    // Uninterrupted: steps 0 and 1.
    let straight_dir = dir.path().join("straight");
    let mut straight = coach(trainer(&device), &folder, &straight_dir, 1);
    let mut events = Vec::new();
    straight
        .run(|event| {
            events.push(match event {
                Event::Step { step, losses, .. } => {
                    assert!(losses.loss.is_finite() && losses.loss_l2 == Some(losses.loss));
                    format!("step {step}")
                }
                Event::Validation { step, losses } => format!("val {step} {}", losses.is_some()),
                Event::Checkpoint { step, best, .. } => format!("save {step} {best}"),
            })
        })
        .unwrap();
    assert_eq!(straight.trainer().global_step, 2);
    for file in [
        "checkpoints/best_model.safetensors",
        "checkpoints/iteration_1.safetensors",
        "checkpoints/resume.safetensors",
        "checkpoints/timestamp.txt",
        "logs/images/train/0000.jpg",
        "logs/images/test/0000_0000.jpg",
        "logs/images/test/0000_0001.jpg",
    ] {
        assert!(straight_dir.join(file).is_file(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(straight_dir.join("logs/metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let splits: Vec<(String, u64)> = lines
        .iter()
        .map(|l| (l["split"].as_str().unwrap().to_string(), l["step"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(String, u64)> = [("train", 0), ("test", 0), ("train", 1), ("test", 1)]
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    assert_eq!(splits, expected);
    // The original's order: validation at step 0 (reported: fewer than five test batches) and at
    // the last step; the best model at the first validation and again only if the loss
    // improved; a checkpoint at every step after 0 (save_interval 1).
    let test_loss = |step: u64| {
        lines
            .iter()
            .find(|l| l["split"] == "test" && l["step"] == step)
            .unwrap()["loss"]
            .as_f64()
            .unwrap()
    };
    let mut expected_events = vec!["step 0", "val 0 true", "save 0 true", "step 1", "val 1 true"];
    if test_loss(1) < test_loss(0) {
        expected_events.push("save 1 true");
    }
    expected_events.push("save 1 false");
    assert_eq!(events, expected_events);
    let timestamps = std::fs::read_to_string(straight_dir.join("checkpoints/timestamp.txt")).unwrap();
    assert!(timestamps.starts_with("**Best**: Step - 0, Loss - "), "{timestamps}");
    assert!(timestamps.contains("Step - 1, \n{'loss_l2': "), "{timestamps}");
    // Each grid: 2 displayed samples × (input, W inversion, target, 1 iteration) of 256².
    let grid = image::open(straight_dir.join("logs/images/test/0000_0000.jpg")).unwrap();
    assert_eq!((grid.width(), grid.height()), (4 * 256, 2 * 256));

    // Stopped after step 0, resumed from its resume file with a fresh coach up to step 1.
    let resumed_dir = dir.path().join("resumed");
    let mut first = coach(trainer(&device), &folder, &resumed_dir, 0);
    first.run(|_| {}).unwrap();
    let state = first.resume_path();
    drop(first);
    let resumed_trainer = Trainer::resume(&state, frozen(&device), losses(&device)).unwrap();
    assert_eq!(resumed_trainer.global_step, 1);
    let mut resumed = coach(resumed_trainer, &folder, &resumed_dir, 1);
    resumed.run(|_| {}).unwrap();
    // Bit for bit: the same data in the same order through the same operations.
    hyperstyle_testing::assert_bit_identical(
        &weights(straight.trainer()),
        &weights(resumed.trainer()),
        "after resuming",
    );
}
