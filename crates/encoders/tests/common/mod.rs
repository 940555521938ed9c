//! Helpers shared by the encoder tests: fixture weights under chosen keys, test images.

#![allow(dead_code)]

use burn::prelude::*;
use hyperstyle_core::WeightStore;
use hyperstyle_testing::{CheckpointManifest, Fixture, NamedTensor};

pub type B = burn::backend::Flex;

/// Pattern tensors of `checkpoint` under `prefix`, re-keyed as `new_prefix` + the rest of the key.
pub fn rekeyed(checkpoint: &CheckpointManifest, prefix: &str, new_prefix: &str) -> Vec<NamedTensor> {
    checkpoint
        .pattern_tensors(prefix)
        .expect("fixture manifest")
        .into_iter()
        .map(|(key, shape, values)| (format!("{new_prefix}{key}"), shape, values))
        .collect()
}

/// The W-encoder fixture tensors of ffhq256 under their checkpoint keys (`encoder.*`).
pub fn w_encoder_tensors() -> Vec<NamedTensor> {
    let fixture = Fixture::load("ffhq256");
    rekeyed(
        fixture.manifest.checkpoint("w_encoder").unwrap(),
        "encoder.",
        "encoder.",
    )
}

/// The ResNet-34 backbone keys of a HyperStyle checkpoint (`hypernet.{conv1,bn1,relu,body}.*`)
/// under `new_prefix`; the hypernetwork's other (and far larger) tensors are not generated.
pub fn resnet34_tensors(checkpoint: &CheckpointManifest, new_prefix: &str) -> Vec<NamedTensor> {
    ["conv1.", "bn1.", "relu.", "body."]
        .iter()
        .flat_map(|part| rekeyed(checkpoint, &format!("hypernet.{part}"), &format!("{new_prefix}{part}")))
        .collect()
}

/// A ReStyle-e4e ResNet-34 encoder's weights, built from fixture pattern tensors of the real
/// shapes: the ffhq1024 hypernetwork's backbone (6 input channels, as ReStyle's) as `encoder.*`
/// stem and body, and the ffhq1024 ReStyle checkpoint's `styles.*` heads.
pub fn restyle_resnet_store() -> WeightStore {
    let fixture = Fixture::load("ffhq1024");
    let mut tensors = resnet34_tensors(fixture.manifest.checkpoint("hyperstyle").unwrap(), "encoder.");
    tensors.extend(rekeyed(
        fixture.manifest.checkpoint("restyle_e4e").unwrap(),
        "encoder.styles.",
        "encoder.styles.",
    ));
    WeightStore::from_tensors(tensors).unwrap()
}

/// ReStyle inputs `[2, 6, 256, 256]`: the two ffhq256 golden images, each followed by a
/// synthetic "reconstruction" (the image mirrored left-right and darkened).
pub fn restyle_input<Bk: Backend>(device: &Bk::Device) -> Tensor<Bk, 4> {
    let images = Fixture::load("ffhq256").golden.tensor::<Bk, 4>("input", device);
    let mirrored = images.clone().flip([3]).mul_scalar(0.8);
    Tensor::cat(vec![images, mirrored], 1)
}

/// Largest absolute difference.
pub fn max_abs_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    (a - b).abs().max().into_scalar()
}
