//! The text tower against OpenAI's `CLIP.encode_text` on the ViT-B/32 text tower filled with
//! pattern weights (tests/fixtures/clip_text_manifest.json; how the goldens were made:
//! tests/fixtures/CLIP.md).

mod common;

use common::{fixture_store, golden, B};
use hyperstyle_clip::{TextConfig, TextTransformer, Tokenizer, CONTEXT_LENGTH};
use hyperstyle_core::error_stats;
use hyperstyle_testing::to_vec;

#[test]
fn features_match_openai_encode_text() {
    let device = Default::default();
    let (store, manifest) = fixture_store();
    let config = TextConfig::detect(&store.root()).unwrap();
    assert_eq!(config, TextConfig::vit_b_32());
    let model = TextTransformer::<B>::load(&store.root(), &config, &device).unwrap();

    let prompts: Vec<String> = manifest.meta["prompts"]
        .as_array()
        .expect("meta.prompts")
        .iter()
        .map(|p| p.as_str().expect("prompt").to_string())
        .collect();
    let tokenizer = Tokenizer::bundled().unwrap();
    let tokens = tokenizer.tokenize(prompts.as_slice(), CONTEXT_LENGTH, true).unwrap();
    let (shape, golden_tokens) = golden("tokens");
    assert_eq!(shape, [prompts.len(), CONTEXT_LENGTH]);
    let ids: Vec<f64> = tokens.ids.iter().map(|&id| f64::from(id)).collect();
    assert_eq!(ids, golden_tokens, "token ids differ from clip.tokenize");

    let (shape, values) = to_vec(model.encode(&tokens).unwrap());
    let (golden_shape, expected) = golden("features");
    let (_, expected64) = golden("features_f64");
    assert_eq!(shape, golden_shape);
    let expected: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
    let expected64_as_f32: Vec<f32> = expected64.iter().map(|&v| v as f32).collect();
    let ours = error_stats(&values, &expected).unwrap();
    let ours64 = error_stats(&values, &expected64_as_f32).unwrap();
    let floor = error_stats(&expected, &expected64_as_f32).unwrap();
    let range = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!(
        "features (|v| ≤ {range:.2}): vs torch f32 {ours}; vs torch f64 {ours64}; torch f32 vs f64 (floor) {floor}"
    );
    // The float32 noise floor: torch's own float32 run is off its float64 run by max-abs 2.98e-6,
    // mean-abs 6.43e-7 (features up to 3.64). Measured here on the CPU: 5.0e-6 / 9.9e-7 from the
    // float64 run, 6.0e-6 / 1.1e-6 from the float32 one (two float32 runs differ by up to the
    // sum of their errors). The tolerance is 4× the floor, against both runs.
    const FLOOR_MAX: f64 = 2.98e-6;
    const FLOOR_MEAN: f64 = 6.43e-7;
    let (max_tol, mean_tol) = (4.0 * FLOOR_MAX, 4.0 * FLOOR_MEAN);
    for (what, stats) in [("vs torch float32", ours), ("vs torch float64", ours64)] {
        assert!(
            stats.max_abs <= max_tol && stats.mean_abs <= mean_tol,
            "features {what}: {stats} exceeds max-abs {max_tol:.1e} / mean-abs {mean_tol:.1e}"
        );
    }
}

/// Rows are independent and padding after the end-of-text token is never computed: a prompt
/// alone gives the features it has in a batch with longer prompts.
#[test]
fn batch_rows_are_independent() {
    let device = Default::default();
    let (store, _) = fixture_store();
    let model = TextTransformer::<B>::load_detected(&store.root(), &device).unwrap();
    let tokenizer = Tokenizer::bundled().unwrap();
    let batch = tokenizer
        .tokenize(
            &["a face", "a woman with blonde hair and a very long description of it"],
            77,
            false,
        )
        .unwrap();
    let both = model.encode(&batch).unwrap();
    let alone = model
        .encode(&tokenizer.tokenize(&["a face"], 77, false).unwrap())
        .unwrap();
    let diff: f32 = (both.slice([0..1, 0..512]) - alone).abs().max().into_scalar();
    // Only the order of float32 sums may differ (matrices of another size).
    assert!(diff <= 1e-5, "batch row vs alone: max-abs {diff:.2e}");
}
