//! Shared by the training tests: the ffhq256 pattern-weight model, the loss networks' pattern
//! weights, the fixture inputs and the training golden.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use hyperstyle_core::WeightStore;
use hyperstyle_hypernet::{HypernetConfig, LayersToTune};
use hyperstyle_metrics::{IdSimilarity, Lpips};
use hyperstyle_stylegan2::GeneratorConfig;
use hyperstyle_testing::{hyperstyle_stores, pattern_store, values_f64, Fixture, Manifest};
use hyperstyle_train::{
    FrozenNetworks, Lambdas, LossNets, OptimizerChoice, RangerConfig, SimilarityNet, TrainConfig,
    TrainableHypernetwork, Trainer,
};
use safetensors::SafeTensors;

pub mod parity;

/// Training runs on the CPU backend through autodiff (the generic tensor-operation path).
pub type B = Autodiff<Flex>;

/// `crates/train/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The ffhq256 pattern-weight checkpoints (HyperStyle, W encoder) of the workspace fixtures.
pub fn ffhq256_stores() -> (WeightStore, WeightStore) {
    hyperstyle_stores(&Fixture::load("ffhq256").manifest)
}

/// LPIPS (AlexNet) and ArcFace with the pattern weights of `loss_nets_manifest.json`.
pub fn loss_nets(device: &Device<B>) -> LossNets<B> {
    let manifest = Manifest::load(fixture("loss_nets_manifest.json")).expect("loss-net manifest");
    let store = |name: &str| pattern_store(manifest.checkpoint(name).expect("checkpoint"), &[""]);
    let (alexnet, lpips, arcface) = (store("alexnet"), store("lpips"), store("arcface"));
    let lpips = Lpips::load(&alexnet.root(), &lpips.root(), device).expect("LPIPS");
    let id = IdSimilarity::load(&arcface.root(), device).expect("ArcFace");
    LossNets::new(Some(lpips), Some(SimilarityNet::Id(id)))
}

/// A PNG of the workspace's `tests/fixtures/images/` as the training transform makes it:
/// `(v/255 − 0.5)/0.5`, `[1, 3, h, w]`.
pub fn load_image(name: &str, device: &Device<B>) -> Tensor<B, 4> {
    let path = hyperstyle_testing::fixtures_dir().join("images").join(name);
    let image = image::open(&path).expect("fixture png").to_rgb8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut values = vec![0f32; 3 * h * w];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            values[c * h * w + i] = (f32::from(pixel.0[c]) / 255.0 - 0.5) / 0.5;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 3, h, w]), device)
}

/// The two ffhq256 fixture inputs as one batch.
pub fn ffhq256_batch(device: &Device<B>) -> Tensor<B, 4> {
    Tensor::cat(
        (0..2)
            .map(|k| load_image(&format!("ffhq256_input{k}.png"), device))
            .collect(),
        0,
    )
}

/// The faces step configuration with `n_iters` iterations and Ranger at `lr`.
pub fn faces_config(n_iters: usize, lr: f64) -> TrainConfig {
    TrainConfig {
        lambdas: Lambdas::faces(),
        n_iters_per_batch: n_iters,
        learning_rate: lr,
        optimizer: OptimizerChoice::Ranger(RangerConfig {
            lr,
            ..Default::default()
        }),
        dataset_type: "ffhq_hypernet".into(),
    }
}

/// The hypernetwork configuration of the ffhq256 fixture with `layers`.
pub fn hypernet_config(layers: &str) -> HypernetConfig {
    HypernetConfig::new(GeneratorConfig::new(256)).with_layers_to_tune(layers.parse::<LayersToTune>().expect("layers"))
}

/// A trainer of the ffhq256 pattern model, loading the hypernetwork's tuned layers from the
/// fixture (other refinement blocks in the file are skipped).
pub fn ffhq256_trainer(layers: &str, config: TrainConfig) -> Trainer<B> {
    let device = Default::default();
    let (model, w_encoder) = ffhq256_stores();
    let hypernet_config = hypernet_config(layers);
    let view = model.scope("hypernet.");
    for key in model.keys() {
        // Blocks of layers this configuration does not tune.
        if let Some(rest) = key.strip_prefix("hypernet.refinement_blocks.") {
            let j: usize = rest.split('.').next().unwrap().parse().unwrap();
            if !hypernet_config.layers_to_tune.resolve(20).contains(&j) {
                view.ignore(&key["hypernet.".len()..]);
            }
        }
    }
    let hypernet = TrainableHypernetwork::load(&view, &hypernet_config, &device).expect("hypernetwork");
    let frozen = FrozenNetworks::from_checkpoint(&model, Some(&w_encoder), &GeneratorConfig::new(256), &device)
        .expect("frozen networks");
    Trainer::new(hypernet, hypernet_config, frozen, loss_nets(&device), config).expect("trainer")
}

/// A golden file's tensors as f64, with its metadata.
pub struct TrainGolden {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
    pub meta: HashMap<String, String>,
}

impl TrainGolden {
    pub fn load(name: &str) -> Self {
        let bytes = std::fs::read(fixture(name)).expect("training golden");
        let (_, metadata) = SafeTensors::read_metadata(&bytes).expect("golden header");
        let meta = metadata.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(&bytes).expect("golden");
        let tensors = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, (view.shape().to_vec(), values_f64(&view))))
            .collect();
        Self { tensors, meta }
    }

    /// Entry `name`, or `fallback` when the file has no `name` (a golden without its float64 run).
    pub fn get_or(&self, name: &str, fallback: &str) -> &[f64] {
        match self.tensors.get(name) {
            Some((_, v)) => v,
            None => self.get(fallback),
        }
    }

    pub fn get(&self, name: &str) -> &[f64] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("golden `{name}` missing"))
            .1
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("golden `{name}` missing"))
            .0
    }
}

/// Row-major f64 values of a tensor.
pub fn values<BB: Backend, const D: usize>(t: Tensor<BB, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec::<f64>().expect("f64")
}

/// (max-abs, mean-abs) of `a − b`.
pub fn diff(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let mean = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len().max(1) as f64;
    (max, mean)
}
