//! Upstream files beyond `torch.save` checkpoints: StyleCLIP's `S_mean_std` (a plain pickle of
//! numpy arrays), OpenAI's CLIP `ViT-B-32.pt` (a TorchScript archive), the MoCo v2 checkpoint
//! and torchvision's ResNet-34. The fixtures in `tests/fixtures/` are written by
//! `make_fixtures.py` with PyTorch and numpy; each JSON file holds what Python itself reads
//! from its fixture (the upstream code's own loading and renaming), and the converted tensors
//! must equal it exactly: conversion copies or casts values, it computes nothing.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{f32_bytes, zip_archive, zip_checkpoint, Output, Pickle};
use half::f16;
use serde_json::Value as Json;
use weights_convert::{convert_bytes, convert_file, inspect_file, ConvertError, ConvertOptions, DType, Format, Kind};

fn local_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn json(name: &str) -> Json {
    serde_json::from_slice(&std::fs::read(local_fixture(name)).unwrap()).unwrap()
}

fn convert_fixture(name: &str, options: &ConvertOptions) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    convert_file(&local_fixture(name), &out, options).unwrap();
    Output::read(&out)
}

fn convert(bytes: &[u8], options: &ConvertOptions) -> Result<Output, ConvertError> {
    let mut out = Vec::new();
    convert_bytes(bytes, "upstream.pt", options, &mut out)?;
    Ok(Output::parse(&out))
}

/// A tensor's elements as f64 (exact for every stored type used here).
fn values(t: &common::Tensor) -> Vec<f64> {
    match t.dtype.as_str() {
        "F32" => t
            .data
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
            .collect(),
        "F16" => t
            .data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect(),
        "I64" => t
            .data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unexpected dtype {other}"),
    }
}

fn safetensors_dtype(torch: &str) -> &'static str {
    match torch {
        "torch.float32" => "F32",
        "torch.float16" => "F16",
        "torch.int64" => "I64",
        other => panic!("unexpected dtype {other}"),
    }
}

/// Every tensor of `expected` (key → dtype, shape, values) is in `out`, bit for bit, with the
/// dtype `dtype` gives for it, and nothing else is.
fn assert_tensors(out: &Output, expected: &serde_json::Map<String, Json>, dtype: impl Fn(&str) -> String) {
    let got: BTreeSet<&str> = out.tensors.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(got, want, "the converted keys are exactly the expected ones");
    for (key, spec) in expected {
        let t = out.get(key);
        let shape: Vec<usize> = serde_json::from_value(spec["shape"].clone()).unwrap();
        let want: Vec<f64> = serde_json::from_value(spec["values"].clone()).unwrap();
        assert_eq!(t.shape, shape, "shape of `{key}`");
        assert_eq!(t.dtype, dtype(spec["dtype"].as_str().unwrap()), "dtype of `{key}`");
        // Copies and float casts must be exact: the expected values are the stored ones.
        assert_eq!(values(t), want, "values of `{key}`");
    }
}

// ---------------------------------------------------------------------------------------------
// StyleCLIP `S_mean_std`.

#[test]
fn styleclip_stats_in_every_pickle_protocol_match_the_upstream_float32_values() {
    let expected = json("styleclip_stats.json");
    let expected = expected.as_object().unwrap();
    for name in [
        "styleclip_stats_p2.pkl",
        "styleclip_stats_p3_numpy1.pkl",
        "styleclip_stats_p4.pkl",
    ] {
        let out = convert_fixture(name, &ConvertOptions::default());
        assert_eq!(out.metadata["kind"], "styleclip-stats", "{name}");
        // float64 arrays are rounded to float32 once, as `torch.from_numpy(a).float()` does.
        assert_tensors(&out, expected, |_| "F32".into());
        assert!(!out.metadata.contains_key("scalars"), "{name}");

        let inv = inspect_file(&local_fixture(name)).unwrap();
        assert_eq!(inv.format, Format::Pickle);
        assert_eq!(inv.kind, Some(Kind::StyleclipStats));
    }
}

/// A protocol-3 pickle of `[[a], [a]]` where `a` is a numpy array with the given dtype code,
/// byte order, Fortran flag, shape and data, written opcode by opcode as numpy and pickle do.
fn numpy_pickle(module: &str, code: &str, order: &str, fortran: bool, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let mut p = Pickle::new(3);
    p.raw(b"](](");
    p.global(module, "_reconstruct").global("numpy", "ndarray");
    p.int_tuple(&[0]).raw(b"C\x01b").raw(b"\x87R");
    p.mark().int(1).int_tuple(shape);
    p.global("numpy", "dtype").str(code).raw(b"\x89\x88\x87R");
    p.mark()
        .int(3)
        .str(order)
        .raw(b"NNN")
        .raw(b"J\xff\xff\xff\xffJ\xff\xff\xff\xff")
        .int(0)
        .tuple()
        .raw(b"b");
    p.raw(if fortran { b"\x88" } else { b"\x89" });
    p.raw(b"B").raw(&(data.len() as u32).to_le_bytes()).raw(data);
    p.tuple().raw(b"b");
    // s_mean = [a], then s_std = [a] again through the memo.
    p.raw(b"q\x00e]h\x00ae");
    p.stop()
}

#[test]
fn a_hand_written_numpy_pickle_converts() {
    let data = f32_bytes(&[1.5, -2.0, 0.25]);
    for module in ["numpy.core.multiarray", "numpy._core.multiarray"] {
        let bytes = numpy_pickle(module, "f4", "<", false, &[3], &data);
        let out = convert(&bytes, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{module}: {e}"));
        assert_eq!(out.metadata["kind"], "styleclip-stats");
        assert_eq!(values(out.get("s_mean.0")), [1.5, -2.0, 0.25]);
    }
}

#[test]
fn hostile_numpy_pickles_are_refused_with_typed_errors() {
    let f32_data = f32_bytes(&[1.0, 2.0, 3.0]);
    let refused = |bytes: Vec<u8>| convert(&bytes, &ConvertOptions::default()).unwrap_err();
    let array_error = |err: ConvertError, words: &str| match &err {
        ConvertError::InvalidArray { reason, .. } if reason.contains(words) => {}
        other => panic!("expected InvalidArray mentioning `{words}`, got {other}"),
    };

    // Byte length that does not match the shape: one byte short, one element too many.
    array_error(
        refused(numpy_pickle(
            "numpy.core.multiarray",
            "f4",
            "<",
            false,
            &[3],
            &f32_data[..11],
        )),
        "needs 12 bytes but its data has 11",
    );
    array_error(
        refused(numpy_pickle("numpy.core.multiarray", "f4", "<", false, &[2], &f32_data)),
        "needs 8 bytes",
    );
    // Shapes whose byte count overflows.
    array_error(
        refused(numpy_pickle(
            "numpy.core.multiarray",
            "f8",
            "<",
            false,
            &[1 << 62, 4],
            &f32_data,
        )),
        "needs too many bytes",
    );
    array_error(
        refused(numpy_pickle("numpy.core.multiarray", "f4", ">", false, &[3], &f32_data)),
        "big-endian",
    );
    array_error(
        refused(numpy_pickle("numpy.core.multiarray", "f4", "|", false, &[3], &f32_data)),
        "byte order",
    );
    array_error(
        refused(numpy_pickle("numpy.core.multiarray", "O8", "|", false, &[3], &f32_data)),
        "\"O8\"",
    );
    array_error(
        refused(numpy_pickle("numpy.core.multiarray", "i4", "<", false, &[3], &f32_data)),
        "not supported",
    );
    array_error(
        refused(numpy_pickle("numpy.core.multiarray", "f4", "<", true, &[3], &f32_data)),
        "Fortran",
    );

    // Globals outside the three numpy ones: a module that merely looks like numpy, numpy's
    // protocol-5 buffer path, and code execution.
    for module in ["numpy.core.multiarrayx", "numpy.lib.format", "posix"] {
        match refused(numpy_pickle(module, "f4", "<", false, &[3], &f32_data)) {
            ConvertError::ForbiddenGlobal { module: m, name } => {
                assert_eq!((m.as_str(), name.as_str()), (module, "_reconstruct"))
            }
            other => panic!("{module}: {other}"),
        }
    }
    let mut p = Pickle::new(4);
    p.raw(b"\x8c\x13numpy._core.numeric\x8c\x0b_frombuffer\x93");
    assert!(matches!(refused(p.stop()), ConvertError::ForbiddenGlobal { .. }));
    let mut p = Pickle::new(2);
    p.global("posix", "system").str(&touch_canary()).raw(b"\x85R");
    assert!(matches!(refused(p.stop()), ConvertError::ForbiddenGlobal { .. }));

    // `_reconstruct` only builds empty arrays of numpy.ndarray; numpy.dtype only with (code,
    // False, True); BUILD only with numpy's exact state.
    let mut p = Pickle::new(3);
    p.global("numpy.core.multiarray", "_reconstruct")
        .global("numpy", "ndarray");
    p.int_tuple(&[5]).raw(b"C\x01b").raw(b"\x87R");
    array_error(refused(p.stop()), "_reconstruct expects");
    let mut p = Pickle::new(3);
    p.global("numpy", "dtype").str("f4").raw(b"\x88\x88\x87R");
    array_error(refused(p.stop()), "numpy.dtype expects");
    let mut p = Pickle::new(3);
    p.global("numpy", "dtype")
        .str("f4")
        .raw(b"\x89\x88\x87R")
        .mark()
        .int(3)
        .str("<")
        .tuple()
        .raw(b"b");
    array_error(refused(p.stop()), "dtype state");
    let mut p = Pickle::new(3);
    p.global("numpy", "dtype")
        .str("f4")
        .raw(b"\x89\x88\x87R")
        .mark()
        .int(3)
        .str("<");
    p.raw(b"NNN").int(4).raw(b"J\xff\xff\xff\xff").int(0).tuple().raw(b"b");
    array_error(refused(p.stop()), "not that of a plain float type");

    // A plain pickle followed by anything is not a file this converter knows.
    let mut bytes = numpy_pickle("numpy.core.multiarray", "f4", "<", false, &[3], &f32_data);
    bytes.extend(b"more");
    assert!(matches!(refused(bytes), ConvertError::NotACheckpoint(_)));
}

#[test]
fn truncated_styleclip_stats_are_refused() {
    for name in ["styleclip_stats_p2.pkl", "styleclip_stats_p4.pkl"] {
        let bytes = std::fs::read(local_fixture(name)).unwrap();
        for cut in 4..bytes.len() {
            match convert(&bytes[..cut], &ConvertOptions::default()) {
                Err(ConvertError::Truncated(_)) => {}
                other => panic!("{name} cut at {cut}: {:?}", other.map(|o| o.tensors.len())),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CLIP: TorchScript archive and plain state dict.

#[test]
fn clip_torchscript_archive_converts_to_its_state_dict() {
    let expected = json("clip_tiny_jit.json");
    let tensors = expected["tensors"].as_object().unwrap();
    let out = convert_fixture("clip_tiny_jit.pt", &ConvertOptions::default());
    assert_eq!(out.metadata["kind"], "clip");
    // Dtypes kept: float16 weights, int64 buffers.
    assert_tensors(&out, tensors, |d| safetensors_dtype(d).into());
    assert_eq!(out.get("token_embedding.weight").dtype, "F16");
    // A module's plain attributes (`training`, ...) are not recorded.
    assert!(!out.metadata.contains_key("scalars"));

    // `--dtype f32` widens the float16 weights exactly; the integer buffers stay integers.
    let wide = convert_fixture(
        "clip_tiny_jit.pt",
        &ConvertOptions {
            dtype: Some(DType::F32),
            ..Default::default()
        },
    );
    assert_tensors(&wide, tensors, |d| {
        if d == "torch.int64" {
            "I64".into()
        } else {
            "F32".into()
        }
    });

    let inv = inspect_file(&local_fixture("clip_tiny_jit.pt")).unwrap();
    assert_eq!(inv.format, Format::TorchScript);
    assert_eq!(inv.kind, Some(Kind::Clip));
    let listed: Vec<&str> = inv.entries.iter().map(|e| e.key.as_str()).collect();
    let keys: Vec<&str> = expected["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(listed, keys, "keys in `state_dict()` order");
}

/// The file hostile payloads try to create (a shell `touch`); it must never appear.
fn canary() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hyperstyle-convert-canary-{}", std::process::id()))
}

/// The shell command of the hostile payloads.
fn touch_canary() -> String {
    format!("touch {}", canary().display())
}

/// A TorchScript-shaped archive: `data.pkl` from `pickle`, `constants.pkl`, a `code/` file
/// holding Python that must never run, and one float storage `0` of four elements.
fn script_archive(pickle: Vec<u8>, with_constants: bool) -> Vec<u8> {
    let mut files = vec![("m/data.pkl".to_string(), pickle)];
    if with_constants {
        files.push(("m/constants.pkl".to_string(), b"\x80\x02).".to_vec()));
    }
    files.push((
        "m/code/__torch__.py".to_string(),
        format!("import os\nos.system('{}')\n", touch_canary()).into_bytes(),
    ));
    files.push(("m/data/0".to_string(), f32_bytes(&[1.0, 2.0, 3.0, 4.0])));
    files.push(("m/version".to_string(), b"3\n".to_vec()));
    zip_archive(&files, 0)
}

/// `__torch__.<module>.<class>` objects `{token_embedding: {weight}, transformer: {resblocks:
/// {0: {attn: {in_proj_weight}}}}}`, all weights views of storage `0`.
fn script_pickle(class_module: &str) -> Vec<u8> {
    let mut p = Pickle::new(2);
    let object = |p: &mut Pickle| {
        p.global(class_module, "M").raw(b")\x81").empty_dict().mark();
    };
    object(&mut p);
    p.str("training").raw(b"\x89");
    p.str("token_embedding");
    object(&mut p);
    p.str("weight").tensor("FloatStorage", "0", 4, 0, &[2, 2], &[2, 1]);
    p.setitems().raw(b"b");
    p.str("transformer");
    object(&mut p);
    p.str("resblocks");
    object(&mut p);
    p.str("0");
    object(&mut p);
    p.str("attn");
    object(&mut p);
    p.str("in_proj_weight").tensor("FloatStorage", "0", 4, 1, &[3], &[1]);
    for _ in 0..4 {
        p.setitems().raw(b"b");
    }
    p.setitems().raw(b"b");
    p.stop()
}

#[test]
fn torchscript_objects_flatten_to_dotted_names_and_code_is_never_read() {
    for module in ["__torch__", "__torch__.torch.nn.modules.container.___torch_mangle_3"] {
        let out = convert(&script_archive(script_pickle(module), true), &ConvertOptions::default()).unwrap();
        assert_eq!(out.metadata["kind"], "clip", "{module}");
        let keys: Vec<&str> = out.tensors.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["token_embedding.weight", "transformer.resblocks.0.attn.in_proj_weight"]
        );
        assert_eq!(
            values(out.get("transformer.resblocks.0.attn.in_proj_weight")),
            [2.0, 3.0, 4.0]
        );
    }
    assert!(!canary().exists());
}

#[test]
fn hostile_torchscript_archives_are_refused() {
    let refused = |bytes: Vec<u8>| convert(&bytes, &ConvertOptions::default()).unwrap_err();
    // Script classes are only accepted in TorchScript archives.
    match refused(zip_checkpoint(
        script_pickle("__torch__"),
        &[("0", f32_bytes(&[0.0; 4]))],
        None,
    )) {
        ConvertError::ForbiddenGlobal { module, name } => {
            assert_eq!((module.as_str(), name.as_str()), ("__torch__", "M"))
        }
        other => panic!("{other}"),
    }
    // Globals outside `__torch__` (or the custom C++ classes under it, rebuilt by native code)
    // are refused even as script objects.
    for module in [
        "builtins",
        "os",
        "__torch__.torch.classes.quantized",
        "__torch__x",
        "torch.jit._pickle",
    ] {
        match refused(script_archive(script_pickle(module), true)) {
            ConvertError::ForbiddenGlobal { module: m, .. } => assert_eq!(m, module),
            other => panic!("{module}: {other}"),
        }
    }
    // A script object may only be created empty, never called, and its state must be a dict.
    let mut p = Pickle::new(2);
    p.global("__torch__", "M").str("x").raw(b"\x85\x81");
    assert!(matches!(
        refused(script_archive(p.stop(), true)),
        ConvertError::MalformedPickle { .. }
    ));
    let mut p = Pickle::new(2);
    p.global("__torch__", "M").str("x").raw(b"\x85R");
    assert!(matches!(
        refused(script_archive(p.stop(), true)),
        ConvertError::MalformedPickle { .. }
    ));
    let mut p = Pickle::new(2);
    p.global("__torch__", "M").raw(b")\x81").str("state").raw(b"b");
    assert!(matches!(
        refused(script_archive(p.stop(), true)),
        ConvertError::MalformedPickle { .. }
    ));
    // Code that tries to run from inside data.pkl.
    let mut p = Pickle::new(2);
    p.global("__torch__", "M").raw(b")\x81").empty_dict().mark().str("w");
    p.global("posix", "system")
        .str(&touch_canary())
        .raw(b"\x85R")
        .setitems()
        .raw(b"b");
    assert!(matches!(
        refused(script_archive(p.stop(), true)),
        ConvertError::ForbiddenGlobal { .. }
    ));

    // The real archive cut anywhere: its zip directory is at the end.
    let bytes = std::fs::read(local_fixture("clip_tiny_jit.pt")).unwrap();
    for cut in (4..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        assert!(
            matches!(
                convert(&bytes[..cut], &ConvertOptions::default()),
                Err(ConvertError::Truncated(_))
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_clip_state_dict_is_detected_too() {
    let mut p = Pickle::new(2);
    p.ordered_dict().mark();
    p.str("token_embedding.weight")
        .tensor("FloatStorage", "0", 4, 0, &[2, 2], &[2, 1]);
    p.str("transformer.resblocks.0.attn.in_proj_weight")
        .tensor("FloatStorage", "0", 4, 0, &[4], &[1]);
    p.setitems();
    let out = convert(
        &zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))], None),
        &ConvertOptions::default(),
    )
    .unwrap();
    assert_eq!(out.metadata["kind"], "clip");
    assert_eq!(values(out.get("token_embedding.weight")), [1.0, 2.0, 3.0, 4.0]);
}

// ---------------------------------------------------------------------------------------------
// MoCo v2 and ResNet-34.

#[test]
fn moco_keeps_the_query_encoder_under_torchvision_resnet50_names() {
    let expected = json("moco_v2_tiny.json");
    let out = convert_fixture("moco_v2_tiny.pth.tar", &ConvertOptions::default());
    assert_eq!(out.metadata["kind"], "moco");
    assert_tensors(&out, expected["tensors"].as_object().unwrap(), |d| {
        safetensors_dtype(d).into()
    });
    assert!(out.tensors.contains_key("layer4.2.bn3.running_var"));
    assert!(out.tensors.contains_key("layer1.0.downsample.0.weight"));
    assert!(out.tensors.keys().all(|k| !k.starts_with("fc.") && !k.contains('/')));
    let scalars = out.meta_json("scalars");
    assert_eq!(
        (scalars["epoch"].as_i64(), scalars["arch"].as_str()),
        (Some(800), Some("resnet50"))
    );
}

#[test]
fn moco_skips_what_it_drops_without_reading_it() {
    // The optimizer's momentum buffer views 100 elements of a 2-element storage: validating it
    // would fail, so converting proves it is dropped before it is looked at.
    let mut p = Pickle::new(2);
    p.empty_dict().mark();
    p.str("epoch").int(800).str("state_dict").ordered_dict().mark();
    p.str("module.encoder_q.conv1.weight")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1]);
    p.str("module.encoder_q.fc.0.weight")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1]);
    p.str("module.encoder_k.conv1.weight")
        .tensor("FloatStorage", "0", 2, 0, &[100], &[1]);
    p.setitems();
    p.str("optimizer").empty_dict().mark().str("state").empty_dict().mark();
    p.int(0)
        .empty_dict()
        .mark()
        .str("momentum_buffer")
        .tensor("FloatStorage", "0", 2, 0, &[100], &[1]);
    p.setitems().setitems().setitems().setitems();
    let bytes = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[5.0, 6.0]))], None);

    let out = convert(&bytes, &ConvertOptions::default()).unwrap();
    assert_eq!(out.metadata["kind"], "moco");
    let keys: Vec<&str> = out.tensors.keys().map(String::as_str).collect();
    assert_eq!(keys, ["conv1.weight"]);
    assert_eq!(values(out.get("conv1.weight")), [5.0, 6.0]);

    let everything = ConvertOptions {
        kind: Some(Kind::Ganspace),
        ..Default::default()
    };
    match convert(&bytes, &everything) {
        Err(ConvertError::InvalidTensor { key, .. }) => assert_eq!(key, "state_dict/module.encoder_k.conv1.weight"),
        other => panic!("{:?}", other.map(|o| o.tensors.len())),
    }
}

#[test]
fn resnet34_is_detected_and_kept_as_is() {
    let expected = json("resnet34_tiny.json");
    let out = convert_fixture("resnet34_tiny.pth", &ConvertOptions::default());
    assert_eq!(out.metadata["kind"], "resnet34");
    assert_tensors(&out, expected["tensors"].as_object().unwrap(), |d| {
        safetensors_dtype(d).into()
    });
    assert!(out.tensors.contains_key("fc.weight") && out.tensors.contains_key("layer3.5.bn2.bias"));
}

/// A state dict with the given keys, one two-element tensor each (the values do not matter).
fn state_dict(keys: &[String]) -> Vec<u8> {
    let mut p = Pickle::new(2);
    p.ordered_dict().mark();
    for key in keys {
        p.str(key).tensor("FloatStorage", "0", 2, 0, &[2], &[1]);
    }
    p.setitems();
    zip_checkpoint(p.stop(), &[("0", f32_bytes(&[0.0, 1.0]))], None)
}

fn resnet_keys(blocks: [usize; 4], bottleneck: bool) -> Vec<String> {
    let mut keys: Vec<String> = ["conv1.weight", "bn1.weight", "bn1.running_mean", "fc.weight", "fc.bias"]
        .map(String::from)
        .to_vec();
    for (stage, &n) in blocks.iter().enumerate() {
        for b in 0..n {
            let convs = if bottleneck { 3 } else { 2 };
            for c in 1..=convs {
                keys.push(format!("layer{}.{b}.conv{c}.weight", stage + 1));
            }
        }
    }
    keys
}

#[test]
fn only_resnet34_block_counts_are_resnet34() {
    let kind =
        |keys: Vec<String>| convert(&state_dict(&keys), &ConvertOptions::default()).map(|o| o.metadata["kind"].clone());
    assert_eq!(kind(resnet_keys([3, 4, 6, 3], false)).unwrap(), "resnet34");
    for (blocks, bottleneck) in [
        ([2, 2, 2, 2], false),
        ([3, 4, 6, 3], true),
        ([3, 4, 23, 3], true),
        ([3, 4, 7, 3], false),
    ] {
        assert!(
            matches!(kind(resnet_keys(blocks, bottleneck)), Err(ConvertError::UnknownKind(_))),
            "{blocks:?} bottleneck {bottleneck}"
        );
    }
}
