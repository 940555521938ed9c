//! Bad inputs give typed errors and never leave an output (or temporary) file behind.

mod common;

use common::fixture;
use weights_convert::{convert_bytes, convert_file, inspect_file, ConvertError, ConvertOptions};

/// Converts `name` into an empty directory, checks the error with `check`, and checks that the
/// directory is still empty.
fn refused(name: &str, check: impl Fn(&ConvertError) -> bool) -> ConvertError {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let err = convert_file(&fixture(name), &out, &ConvertOptions::default()).unwrap_err();
    assert!(check(&err), "{name}: unexpected error {err:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{name}: no file may be created"
    );
    let listed = inspect_file(&fixture(name)).unwrap_err();
    assert_eq!(
        std::mem::discriminant(&listed),
        std::mem::discriminant(&err),
        "--list fails the same way"
    );
    err
}

#[test]
fn truncated_file() {
    let err = refused("truncated.pt", |e| matches!(e, ConvertError::Truncated(_)));
    assert!(err.to_string().contains("cut short"), "{err}");
}

#[test]
fn not_a_checkpoint() {
    refused("not_a_checkpoint.pt", |e| matches!(e, ConvertError::NotACheckpoint(_)));
}

#[test]
fn malicious_global_is_refused() {
    let err = refused(
        "malicious_global.pt",
        |e| matches!(e, ConvertError::ForbiddenGlobal { module, name } if module == "posix" && name == "system"),
    );
    assert!(err.to_string().contains("posix.system"), "{err}");
}

#[test]
fn missing_input() {
    let dir = tempfile::tempdir().unwrap();
    let err = convert_file(
        &dir.path().join("nope.pt"),
        &dir.path().join("out.safetensors"),
        &ConvertOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConvertError::Io { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn existing_output_survives_a_failed_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    std::fs::write(&out, b"previous").unwrap();
    convert_file(&fixture("malicious_global.pt"), &out, &ConvertOptions::default()).unwrap_err();
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
}

/// Every prefix of a valid checkpoint is an error (never a panic, never a bogus success).
#[test]
fn every_prefix_of_a_checkpoint_is_refused() {
    for name in ["hyperstyle_like_zip.pt", "hyperstyle_like_legacy.pt", "bare_tensor.pt"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in 0..bytes.len() {
            let result = convert_bytes(&bytes[..cut], name, &ConvertOptions::default(), &mut std::io::sink());
            assert!(result.is_err(), "{name} cut at {cut} was accepted");
        }
    }
}

/// Flipping any single byte never panics (the result may be an error or, for bytes inside
/// tensor data, a success).
#[test]
fn single_byte_corruptions_never_panic() {
    for name in ["hyperstyle_like_zip.pt", "hyperstyle_like_legacy.pt"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[i] ^= flip;
                let _ = convert_bytes(&corrupt, name, &ConvertOptions::default(), &mut std::io::sink());
            }
        }
    }
}
