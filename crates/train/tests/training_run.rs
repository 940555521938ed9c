//! A tiny training run on the ffhq256 pattern model: one non-shared layer tuned (`layers_to_tune
//! = 18`, the last 128→128 conv), the fixture faces with their W inversions extracted once (as
//! upstream's latents datasets carry them), LPIPS + L2 (the identity loss is left to the parity
//! test: ArcFace's backward doubles a step's time on the CPU), a large learning rate. The loss
//! must fall; the run must resume bit-identically from a saved state (Ranger and Adam); the saved inference
//! checkpoint must hold every tensor the inference network needs (the root `tests/training.rs`
//! loads one with the facade and checks its images).

mod common;

use burn::prelude::*;
use hyperstyle_core::WeightStore;
use hyperstyle_stylegan2::GeneratorConfig;
use hyperstyle_train::{Batch, FrozenNetworks, OptimizerChoice, RangerConfig, Trainer};

const LAYERS: &str = "18";
/// Steps of the loss-falls part.
const STEPS: usize = 8;

fn config(lr: f64, k: u64, n_iters: usize) -> hyperstyle_train::TrainConfig {
    let mut config = common::faces_config(n_iters, lr);
    config.lambdas.id = 0.0;
    config.optimizer = OptimizerChoice::Ranger(RangerConfig {
        lr,
        k,
        ..Default::default()
    });
    config
}

/// The first `n` fixture faces with their W inversions.
fn batch(trainer: &Trainer<common::B>, n: usize, device: &Device<common::B>) -> Batch<common::B> {
    let x = common::ffhq256_batch(device).narrow(0, 0, n);
    let (codes, y_hat) = trainer.invert_w(x.clone()).unwrap();
    Batch {
        y: x.clone(),
        x,
        y_hat: Some(y_hat),
        codes: Some(codes),
    }
}

/// Every tensor of the hypernetwork, exactly.
fn snapshot(trainer: &Trainer<common::B>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    trainer.hypernet().tensors().unwrap()
}

/// 3 steps straight vs 2 + save + resume + 1 on one face, with `config`: every tensor of the
/// hypernetwork must come out bit-identical, and the counters must carry over.
fn resume_is_identical(config: hyperstyle_train::TrainConfig, dir: &std::path::Path, device: &Device<common::B>) {
    let mut straight = common::ffhq256_trainer(LAYERS, config.clone());
    let one = batch(&straight, 1, device);
    for _ in 0..3 {
        straight.train_step(one.clone()).unwrap();
    }
    let mut first = common::ffhq256_trainer(LAYERS, config);
    for _ in 0..2 {
        first.train_step(one.clone()).unwrap();
    }
    first.best_val_loss = Some(1.5);
    let state = dir.join("state.safetensors");
    first.save_state(&state).unwrap();
    drop(first);
    let (model, w_encoder) = common::ffhq256_stores();
    let frozen = FrozenNetworks::from_checkpoint(&model, Some(&w_encoder), &GeneratorConfig::new(256), device).unwrap();
    let mut resumed = Trainer::resume(&state, frozen, common::loss_nets(device)).unwrap();
    assert_eq!((resumed.global_step, resumed.best_val_loss), (2, Some(1.5)));
    resumed.train_step(one).unwrap();
    assert_eq!(
        resumed.hypernet().batches_tracked(),
        straight.hypernet().batches_tracked()
    );
    // Bit-identical: the same operations on the same values.
    hyperstyle_testing::assert_bit_identical(&snapshot(&straight), &snapshot(&resumed), "after resuming");
}

#[test]
fn the_loss_falls_and_a_resumed_run_is_identical() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("hyperstyle-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Resume with Ranger, two iterations. Lookahead every step: the slow weights saved after
    // step 2 are what step 3 interpolates from.
    resume_is_identical(config(1e-2, 1, 2), &dir, &device);

    // The loss falls.
    let mut trainer = common::ffhq256_trainer(LAYERS, config(1e-2, 6, 1));
    let two = batch(&trainer, 2, &device);
    let mut losses = Vec::new();
    for step in 0..STEPS {
        let out = trainer.train_step(two.clone()).unwrap();
        let loss = out.last_losses().loss;
        println!("step {step}: loss {loss:.5}");
        losses.push(loss);
    }
    let validation = trainer.validate(&two).unwrap();
    println!("validation loss {:.5}", validation.last_losses().loss);
    let (start, end) = (losses[0], *losses.last().unwrap());
    // Measured: 4.58 → 2.68 in 8 steps (×0.58, not monotone at this learning rate); at least
    // a quarter off is required.
    assert!(end < 0.75 * start, "loss went from {start} to {end}");

    // The inference checkpoint has every tensor the inference network reads.
    let path = dir.join("model.safetensors");
    trainer.save_model(&path).unwrap();
    let store = WeightStore::open(&path).unwrap();
    assert_eq!(store.kind().unwrap(), Some(hyperstyle_core::Kind::Hyperstyle));
    let config = common::hypernet_config(LAYERS);
    hyperstyle_hypernet::Hypernetwork::<burn::backend::Flex>::load(&store.scope("hypernet."), &config, &device)
        .expect("the inference hypernetwork loads the saved checkpoint");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_adam_run_resumes_identically() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("hyperstyle-train-adam-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Adam's step count and both moments go through the resume file; one iteration per step.
    let mut adam = config(1e-3, 1, 1);
    adam.optimizer = OptimizerChoice::Adam;
    resume_is_identical(adam, &dir, &device);
    std::fs::remove_dir_all(&dir).ok();
}
