//! Bad weights, bad vocabularies and bad inputs are typed errors naming what is wrong, never
//! panics.

mod common;

use std::io::Write;
use std::path::Path;

use common::{small_config, text_tensors, B};
use hyperstyle_clip::{Error, TextConfig, TextTransformer, TokenBatch, Tokenizer};
use hyperstyle_core::WeightStore;
use hyperstyle_testing::{to_vec, NamedTensor};

fn load(tensors: Vec<NamedTensor>) -> Result<TextTransformer<B>, Error> {
    let store = WeightStore::from_tensors(tensors).unwrap();
    TextTransformer::load(&store.root(), &small_config(), &Default::default())
}

#[test]
fn complete_weights_load_and_other_clip_keys_are_left_alone() {
    let mut tensors = text_tensors(&small_config(), "");
    // A full CLIP state dict also holds the image tower and the logit scale.
    tensors.push(("visual.proj".into(), vec![2, 2], vec![0.5; 4]));
    tensors.push((
        "visual.transformer.resblocks.0.ln_1.weight".into(),
        vec![4],
        vec![1.0; 4],
    ));
    tensors.push(("logit_scale".into(), vec![], vec![4.6]));
    let store = WeightStore::from_tensors(tensors).unwrap();
    assert_eq!(TextConfig::detect(&store.root()).unwrap(), small_config());
    let model = TextTransformer::<B>::load_detected(&store.root(), &Default::default()).unwrap();
    let tokens = TokenBatch {
        ids: vec![598, 5, 7, 599, 0, 0, 0, 0, 598, 599, 0, 0, 0, 0, 0, 0],
        rows: 2,
        context_length: 8,
    };
    let (shape, values) = to_vec(model.encode(&tokens).unwrap());
    assert_eq!(shape, [2, 32]);
    assert!(values.iter().all(|v| v.is_finite()));
}

#[test]
fn missing_key() {
    let mut tensors = text_tensors(&small_config(), "");
    tensors.retain(|(key, _, _)| key != "transformer.resblocks.1.mlp.c_proj.bias");
    match load(tensors) {
        Err(Error::MissingKey { key }) => assert_eq!(key, "transformer.resblocks.1.mlp.c_proj.bias"),
        other => panic!("expected a missing-key error, got {other:?}"),
    }
}

#[test]
fn wrong_shape_names_the_key() {
    let mut tensors = text_tensors(&small_config(), "");
    let entry = tensors
        .iter_mut()
        .find(|(key, _, _)| key == "transformer.resblocks.0.attn.in_proj_weight")
        .unwrap();
    // Stored transposed.
    entry.1 = vec![64, 192];
    let err = load(tensors).unwrap_err();
    match &err {
        Error::ShapeMismatch { key, expected, found } => {
            assert_eq!(key, "transformer.resblocks.0.attn.in_proj_weight");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[192, 64][..], &[64, 192][..])
            );
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("transformer.resblocks.0.attn.in_proj_weight"),
        "{err}"
    );

    // A checkpoint of another size: the config's vocabulary does not fit.
    let mut tensors = text_tensors(&small_config(), "");
    tensors[0].1 = vec![500, 64];
    tensors[0].2.truncate(500 * 64);
    assert!(matches!(load(tensors), Err(Error::ShapeMismatch { key, .. }) if key == "token_embedding.weight"));
}

#[test]
fn extra_block_is_an_unexpected_key() {
    let mut tensors = text_tensors(&small_config(), "");
    tensors.push(("transformer.resblocks.2.ln_1.weight".into(), vec![64], vec![1.0; 64]));
    match load(tensors) {
        Err(Error::UnexpectedKeys { keys, .. }) => assert_eq!(keys, ["transformer.resblocks.2.ln_1.weight"]),
        other => panic!("expected an unexpected-keys error, got {other:?}"),
    }
}

#[test]
fn not_a_text_tower() {
    let store = WeightStore::from_tensors([("visual.proj".to_string(), vec![2], vec![0.0; 2])]).unwrap();
    assert!(matches!(
        TextConfig::detect(&store.root()),
        Err(Error::MissingKey { key }) if key == "token_embedding.weight"
    ));
    let mut tensors = text_tensors(&small_config(), "");
    tensors.retain(|(key, _, _)| !key.starts_with("transformer."));
    let store = WeightStore::from_tensors(tensors).unwrap();
    assert!(matches!(
        TextConfig::detect(&store.root()),
        Err(Error::InvalidConfig(_))
    ));
    let mut config = small_config();
    config.heads = 3;
    let store = WeightStore::from_tensors(text_tensors(&small_config(), "")).unwrap();
    assert!(matches!(
        TextTransformer::<B>::load(&store.root(), &config, &Default::default()),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn bad_token_batches() {
    let store = WeightStore::from_tensors(text_tensors(&small_config(), "")).unwrap();
    let model = TextTransformer::<B>::load(&store.root(), &small_config(), &Default::default()).unwrap();
    let batch = |ids: Vec<u32>, rows, context_length| TokenBatch {
        ids,
        rows,
        context_length,
    };
    for (tokens, what) in [
        (
            batch(vec![598, 1, 600, 0, 0, 0, 0, 0], 1, 8),
            "id beyond the vocabulary",
        ),
        (batch(vec![598, 599, 0, 0], 1, 4), "other context length"),
        (batch(vec![598, 599, 0, 0, 0, 0, 0], 1, 8), "too few ids"),
        (batch(vec![], 0, 8), "no rows"),
    ] {
        assert!(matches!(model.encode(&tokens), Err(Error::InvalidInput(_))), "{what}");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn corrupt_vocabularies() {
    let path = Path::new("vocab.txt.gz");
    let invalid = |bytes: &[u8], what: &str| match Tokenizer::from_bytes(bytes, path) {
        Err(Error::InvalidFile { path, reason }) => {
            assert_eq!(path, Path::new("vocab.txt.gz"), "{what}");
            reason
        }
        other => panic!("{what}: expected an invalid-file error, got {other:?}"),
    };
    // Truncated gzip stream.
    let good = gzip(b"#version: 0.2\nh e\n");
    let reason = invalid(&good[..good.len() - 6], "truncated gzip");
    assert!(reason.contains("gzip"), "{reason}");
    assert!(invalid(&[0x1f, 0x8b, 0, 1, 2, 3], "gzip header only").contains("gzip"));
    assert!(invalid(&gzip(b"#version\nh e\n\xff\xfe x\n"), "not UTF-8").contains("UTF-8"));
    let reason = invalid(b"#version: 0.2\nh e\nthree symbols here\n", "bad line");
    assert!(reason.contains("line 3"), "{reason}");
    invalid(b"#version: 0.2\n", "no merges");
    invalid(b"", "empty");
    assert!(Tokenizer::from_bytes(&good, path).is_ok());
    assert!(matches!(Tokenizer::open("no/such/vocab.txt.gz"), Err(Error::Io { .. })));
}
