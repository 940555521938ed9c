//! The tokenizer against OpenAI's `clip.tokenize` / `SimpleTokenizer` (run with ftfy 6.3, as
//! OpenAI's code requires it) on awkward strings: unicode, accents, emoji, HTML entities,
//! control characters, punctuation runs, whitespace, prompts longer than the context.

mod common;

use common::fixture;
use hyperstyle_clip::{Error, Tokenizer, CONTEXT_LENGTH};
use serde_json::Value;

fn ids(value: &Value) -> Option<Vec<u32>> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().expect("id") as u32).collect())
}

#[test]
fn tokens_equal_clips_on_awkward_strings() {
    let tokenizer = Tokenizer::bundled().unwrap();
    assert_eq!(tokenizer.vocab_size(), 49408);
    assert_eq!((tokenizer.start_of_text(), tokenizer.end_of_text()), (49406, 49407));
    let text = std::fs::read_to_string(fixture("clip_tokenizer.json")).expect("clip_tokenizer.json");
    let cases: Value = serde_json::from_str(&text).expect("tokenizer cases");
    let cases = cases["cases"].as_array().expect("cases");
    assert!(cases.len() > 40);
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let encoded = tokenizer.encode(text).unwrap();
        let expected = ids(&case["encode"]).expect("encode");
        if encoded != expected {
            failures.push(format!(
                "encode {text:?}:\n  got      {encoded:?}\n  expected {expected:?}"
            ));
            continue;
        }
        let decoded = tokenizer.decode(&encoded).unwrap();
        if decoded != case["decode"].as_str().expect("decode") {
            failures.push(format!("decode {text:?}: got {decoded:?}, expected {}", case["decode"]));
        }
        for (field, context, truncate) in [
            ("tokenize", CONTEXT_LENGTH, false),
            ("tokenize_truncated", CONTEXT_LENGTH, true),
            ("tokenize8", 8, false),
            ("tokenize8_truncated", 8, true),
        ] {
            let got = tokenizer.tokenize(&[text], context, truncate);
            match (got, ids(&case[field])) {
                (Ok(batch), Some(expected)) if batch.ids == expected => {}
                // The reference raised "too long for context length".
                (Err(Error::InvalidInput(message)), None) => {
                    assert!(message.contains("context length"), "{message}")
                }
                (got, expected) => failures.push(format!("{field} {text:?}: got {got:?}, expected {expected:?}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn batches_are_rows_of_the_context_length() {
    let tokenizer = Tokenizer::bundled().unwrap();
    let batch = tokenizer
        .tokenize(&["a face", "", "a face with a smile"], 77, false)
        .unwrap();
    assert_eq!((batch.rows, batch.context_length, batch.ids.len()), (3, 77, 231));
    assert_eq!(batch.row(1)[..3], [49406, 49407, 0]);
    assert_eq!(batch.row(0)[0], 49406);
    let long = "word ".repeat(80);
    match tokenizer.tokenize(&["fine", long.as_str()], 77, false) {
        Err(Error::InvalidInput(message)) => assert!(message.contains("prompt 1"), "{message}"),
        other => panic!("expected a too-long error, got {other:?}"),
    }
    let truncated = tokenizer.tokenize(&[long.as_str()], 77, true).unwrap();
    assert_eq!(truncated.row(0)[76], 49407);
    assert!(matches!(
        tokenizer.tokenize(&["x"], 0, true),
        Err(Error::InvalidInput(_))
    ));
    // A single slot holds only the end marker, as in the reference.
    assert_eq!(tokenizer.tokenize(&["x"], 1, true).unwrap().ids, [49407]);
    assert!(matches!(tokenizer.decode(&[49408]), Err(Error::InvalidInput(_))));
}
