//! Fuzzes the command line end to end through files: the input bytes are written to a file
//! named `.pt` or `.safetensors`, and the command runs with arguments chosen by the first byte
//! (convert, list, a forced kind, a float cast, an output that is the input or a link to it, an
//! output in a missing folder, stray arguments).
//!
//! Properties checked: no panic; the input file is never modified; an exit status of 0 after a
//! conversion leaves a valid safetensors file, any other status leaves no output and no
//! temporary file behind.

#![no_main]

use std::ffi::OsString;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use safetensors::SafeTensors;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weights-convert-fuzz-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, content)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let input = dir.join(if selector & 1 == 0 { "in.pt" } else { "in.safetensors" });
    std::fs::write(&input, content).expect("write the input");
    let output = match (selector >> 1) & 3 {
        0 | 1 => dir.join("out.safetensors"),
        2 => input.clone(),
        _ => {
            let link = dir.join("link.safetensors");
            std::os::unix::fs::symlink(&input, &link).expect("symlink");
            link
        }
    };
    let mut args: Vec<OsString> = vec!["weights-convert".into()];
    match (selector >> 3) & 7 {
        0 => args.extend([input.clone().into(), output.clone().into()]),
        1 => args.extend(["--list".into(), input.clone().into()]),
        2 => args.extend([
            input.clone().into(),
            output.clone().into(),
            "--kind".into(),
            "hyperstyle".into(),
        ]),
        3 => args.extend([
            "--dtype".into(),
            "f16".into(),
            input.clone().into(),
            output.clone().into(),
        ]),
        4 => args.extend([input.clone().into(), dir.join("missing/out.safetensors").into()]),
        5 => args.extend(["--list".into(), input.clone().into(), output.clone().into()]),
        6 => args.extend([
            input.clone().into(),
            output.clone().into(),
            "--kind".into(),
            "direction".into(),
        ]),
        _ => args.extend(["--bogus".into(), input.clone().into()]),
    }
    let converting = !args.iter().any(|a| a == "--list");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let status = weights_convert::cli::run(args, &mut out, &mut err);
    assert_eq!(
        std::fs::read(&input).expect("the input still exists"),
        content,
        "the input changed"
    );
    let written = output != input
        && output.exists()
        && !std::fs::symlink_metadata(&output)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
    if status == 0 && converting && (selector >> 3) & 7 != 4 && written {
        let bytes = std::fs::read(&output).expect("the output exists");
        SafeTensors::deserialize(&bytes).expect("a successful conversion writes valid safetensors");
    }
    if status != 0 {
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("scratch")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp") || name == "out.safetensors")
            .collect();
        assert!(leftovers.is_empty(), "a failed run left {leftovers:?}");
    }
});
