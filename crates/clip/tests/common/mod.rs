//! Helpers shared by the CLIP tests: the fixture model, golden tensors, a small text tower.

#![allow(dead_code)]

use std::path::PathBuf;

use hyperstyle_clip::TextConfig;
use hyperstyle_core::pattern::pattern_values;
use hyperstyle_core::WeightStore;
use hyperstyle_testing::{fixtures_dir, pattern_store, Manifest, NamedTensor};

pub type B = burn::backend::Flex;

pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// The ViT-B/32 text tower filled with the fixture's pattern weights, and its manifest.
pub fn fixture_store() -> (WeightStore, Manifest) {
    let manifest = Manifest::load(fixture("clip_text_manifest.json")).expect("clip manifest");
    let store = pattern_store(manifest.checkpoint("clip_text").expect("clip_text checkpoint"), &[""]);
    (store, manifest)
}

/// A golden tensor as f64 values (F32, F64 or I64 in the file), with its shape.
pub fn golden(name: &str) -> (Vec<usize>, Vec<f64>) {
    hyperstyle_testing::read_f64(fixture("clip_text_golden.safetensors"), name)
}

/// A small text tower (2 blocks of width 64, 1 head, vocabulary 600, context 8).
pub fn small_config() -> TextConfig {
    TextConfig {
        context_length: 8,
        vocab_size: 600,
        width: 64,
        heads: 1,
        layers: 2,
        embed_dim: 32,
    }
}

/// Pattern tensors of a text tower of `config`, under OpenAI's keys (prefixed by `prefix`).
pub fn text_tensors(config: &TextConfig, prefix: &str) -> Vec<NamedTensor> {
    let w = config.width;
    let mut shapes = vec![
        ("token_embedding.weight".to_string(), vec![config.vocab_size, w]),
        ("positional_embedding".to_string(), vec![config.context_length, w]),
        ("ln_final.weight".to_string(), vec![w]),
        ("ln_final.bias".to_string(), vec![w]),
        ("text_projection".to_string(), vec![w, config.embed_dim]),
    ];
    for i in 0..config.layers {
        let p = format!("transformer.resblocks.{i}.");
        for (name, shape) in [
            ("ln_1.weight", vec![w]),
            ("ln_1.bias", vec![w]),
            ("attn.in_proj_weight", vec![3 * w, w]),
            ("attn.in_proj_bias", vec![3 * w]),
            ("attn.out_proj.weight", vec![w, w]),
            ("attn.out_proj.bias", vec![w]),
            ("ln_2.weight", vec![w]),
            ("ln_2.bias", vec![w]),
            ("mlp.c_fc.weight", vec![4 * w, w]),
            ("mlp.c_fc.bias", vec![4 * w]),
            ("mlp.c_proj.weight", vec![w, 4 * w]),
            ("mlp.c_proj.bias", vec![w]),
        ] {
            shapes.push((format!("{p}{name}"), shape));
        }
    }
    shapes
        .into_iter()
        .map(|(key, shape)| {
            let n = shape.iter().product();
            let mean = if key.ends_with("ln_1.weight") || key.ends_with("ln_2.weight") || key == "ln_final.weight" {
                1.0
            } else {
                0.0
            };
            let values = pattern_values("small", &key, n, mean, 0.05);
            (format!("{prefix}{key}"), shape, values)
        })
        .collect()
}
