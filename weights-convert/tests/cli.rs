//! The `weights-convert` binary end to end.

mod common;

use std::process::{Command, Output as ProcessOutput};

use common::{expected, f32_bytes, fixture, zip_checkpoint, Output, Pickle};

fn run(args: &[&std::ffi::OsStr]) -> ProcessOutput {
    Command::new(env!("CARGO_BIN_EXE_weights-convert"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn converts_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let input = fixture("hyperstyle_like_zip.pt");
    let result = run(&[input.as_os_str(), out.as_os_str()]);
    assert!(result.status.success(), "stderr: {}", text(&result.stderr));
    assert!(
        text(&result.stdout).contains("13 tensors, 1 aliases"),
        "{}",
        text(&result.stdout)
    );
    let converted = Output::read(&out);
    assert_eq!(converted.get("latent_avg"), expected().get("latent_avg"));
    assert_eq!(converted.metadata["kind"], "hyperstyle");
}

#[test]
fn converts_with_dtype_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dir.safetensors");
    let input = fixture("bare_tensor.pt");
    let result = run(&[
        input.as_os_str(),
        out.as_os_str(),
        "--dtype".as_ref(),
        "f16".as_ref(),
        "--kind".as_ref(),
        "direction".as_ref(),
    ]);
    assert!(result.status.success(), "stderr: {}", text(&result.stderr));
    let converted = Output::read(&out);
    assert_eq!(converted.get("tensor").dtype, "F16");
    assert_eq!(converted.metadata["kind"], "direction");
}

#[test]
fn lists_keys_shapes_dtypes_and_aliases() {
    let input = fixture("hyperstyle_like_zip.pt");
    let result = run(&["--list".as_ref(), input.as_os_str()]);
    assert!(result.status.success(), "stderr: {}", text(&result.stderr));
    let stdout = text(&result.stdout);
    assert!(stdout.contains("kind: hyperstyle"), "{stdout}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("state_dict/decoder.bf16").contains("BF16"), "{stdout}");
    assert!(
        line("state_dict/hypernet.conv1.weight").contains("[3, 6, 3, 3]"),
        "{stdout}"
    );
    assert!(
        line("state_dict/hypernet.blocks.0.hypernet.w1").contains("alias of state_dict/hypernet.shared.w1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"encoder_type\":\"SharedWeightsHyperNetResNet\""),
        "{stdout}"
    );
}

#[test]
fn bad_inputs_fail_with_a_readable_message_and_no_output() {
    let cases = [
        ("not_a_checkpoint.pt", "not a PyTorch checkpoint"),
        ("truncated.pt", "truncated checkpoint"),
        ("malicious_global.pt", "refused global `posix.system`"),
    ];
    for (name, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.safetensors");
        let input = fixture(name);
        let result = run(&[input.as_os_str(), out.as_os_str()]);
        assert!(!result.status.success(), "{name} succeeded");
        let stderr = text(&result.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(message),
            "{name}: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{name}: no file may be created"
        );

        let listed = run(&["--list".as_ref(), input.as_os_str()]);
        assert!(
            !listed.status.success() && text(&listed.stderr).contains(message),
            "{name} --list"
        );
    }
}

#[test]
fn usage_errors_and_help() {
    let input = fixture("bare_tensor.pt");
    let missing_output = run(&[input.as_os_str()]);
    assert_eq!(missing_output.status.code(), Some(2), "clap usage error");

    let bad_dtype = run(&[
        input.as_os_str(),
        "x.safetensors".as_ref(),
        "--dtype".as_ref(),
        "f8".as_ref(),
    ]);
    assert_eq!(bad_dtype.status.code(), Some(2));

    let help = run(&["--help".as_ref()]);
    assert!(help.status.success());
    let help = text(&help.stdout);
    for needle in ["--list", "--dtype", "--kind", "w-encoder", "f16", "alias"] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
}

#[test]
fn the_input_is_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.pt");
    std::fs::copy(fixture("hyperstyle_like_zip.pt"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let link = dir.path().join("link.safetensors");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let hard = dir.path().join("hard.safetensors");
    std::fs::hard_link(&input, &hard).unwrap();
    for output in [&input, &link, &hard] {
        let result = run(&[input.as_os_str(), output.as_os_str()]);
        assert!(!result.status.success(), "{} was accepted as output", output.display());
        assert!(
            text(&result.stderr).contains("is the input file"),
            "{}",
            text(&result.stderr)
        );
        assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
    }
}

#[test]
fn listed_keys_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("escape.pt");
    let mut p = Pickle::new(2);
    p.empty_dict()
        .mark()
        .str("x\u{1b}[2J\nfake")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1])
        .setitems();
    std::fs::write(&input, zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0, 2.0]))], None)).unwrap();
    let result = run(&["--list".as_ref(), input.as_os_str()]);
    assert!(result.status.success(), "stderr: {}", text(&result.stderr));
    let listing = text(&result.stdout);
    assert!(!listing.contains('\u{1b}'), "raw escape in {listing:?}");
    assert!(listing.contains("x\\u{1b}[2J\\nfake"), "{listing}");
}
