//! The hypernetwork of the 256 demo model (pattern weights): one offset per tuned layer with the
//! shape the generator's layer table gives, samples independent of each other, bad inputs typed
//! errors. Its numbers are checked against upstream in the workspace's `tests/hypernet_parity.rs`.

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::Distribution;
use hyperstyle_core::Error;
use hyperstyle_hypernet::{HypernetConfig, Hypernetwork, LayersToTune, SHARED_LAYERS};
use hyperstyle_stylegan2::GeneratorConfig;
use hyperstyle_testing::{error_stats, pattern_store, to_vec, Fixture};

type B = Flex;

fn hypernet(config: &HypernetConfig) -> Result<Hypernetwork<B>, Error> {
    let fixture = Fixture::load("ffhq256");
    let store = pattern_store(fixture.manifest.checkpoint("hyperstyle").unwrap(), &["hypernet."]);
    Hypernetwork::load(&store.scope("hypernet."), config, &Default::default())
}

#[test]
fn offsets_follow_the_layer_table_and_samples_stay_apart() {
    let config = HypernetConfig::new(GeneratorConfig::new(256));
    let network = hypernet(&config).unwrap();
    let device = Default::default();
    B::seed(&device, 3);
    let image = Tensor::<B, 4>::random([2, 3, 256, 256], Distribution::Uniform(-1.0, 1.0), &device);
    let reconstruction = image.clone().flip([3]);
    let offsets = network.forward(image.clone(), reconstruction.clone()).unwrap();
    assert_eq!(offsets.len(), 20);
    let tuned: Vec<usize> = config.tuned_layers().iter().map(|l| l.index).collect();
    for layer in GeneratorConfig::new(256).layers() {
        let j = layer.index;
        match &offsets[j] {
            None => assert!(!tuned.contains(&j), "layer {j} is tuned but has no offset"),
            Some(offset) => {
                let [o, i, k, _] = layer.weight_shape();
                let taps = if SHARED_LAYERS.contains(&j) { k } else { 1 };
                assert_eq!(offset.dims(), [2, o, i, taps, taps], "layer {j}");
            }
        }
    }
    // Sample 1 alone gives sample 1 of the batch: the batch never mixes samples.
    let alone = network
        .forward(image.narrow(0, 1, 1), reconstruction.narrow(0, 1, 1))
        .unwrap();
    for j in tuned {
        let batched = to_vec(offsets[j].clone().unwrap().narrow(0, 1, 1)).1;
        let single = to_vec(alone[j].clone().unwrap()).1;
        let stats = error_stats(&single, &batched);
        // Identical arithmetic per sample up to the order of batched reductions: float32 rounding.
        assert!(stats.max_abs <= 1e-5, "layer {j}: {stats}");
    }
}

#[test]
fn wrong_inputs_and_configs_are_errors() {
    let network = hypernet(&HypernetConfig::new(GeneratorConfig::new(256))).unwrap();
    let device = Default::default();
    let image = Tensor::<B, 4>::zeros([1, 3, 256, 256], &device);
    let err = network
        .forward(image, Tensor::zeros([1, 3, 128, 128], &device))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    // Tuning a ToRGB layer the checkpoint has no block for: its keys are missing.
    let config = HypernetConfig::new(GeneratorConfig::new(256)).with_layers_to_tune(LayersToTune::only([1]));
    match hypernet(&config) {
        Err(Error::MissingKey { key }) => assert!(key.starts_with("hypernet.refinement_blocks.1."), "{key}"),
        other => panic!("expected a missing key, got {:?}", other.err()),
    }
}
