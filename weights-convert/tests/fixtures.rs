//! The fixture checkpoints convert to exactly the tensors of `expected.safetensors`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{expected, expected_json, fixture, Output};
use half::{bf16, f16};
use sha2::Digest;
use weights_convert::{convert_bytes, convert_file, ConvertOptions, DType, Kind};

fn convert(name: &str, options: &ConvertOptions) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    convert_file(&fixture(name), &out, options).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "only the output remains (no temporary file)");
    Output::read(&out)
}

/// safetensors dtype (as the safetensors crate debug-prints it) of a torch dtype name.
fn safetensors_dtype(torch: &str) -> &'static str {
    match torch {
        "torch.float32" => "F32",
        "torch.float16" => "F16",
        "torch.bfloat16" => "BF16",
        "torch.float64" => "F64",
        "torch.int64" => "I64",
        other => panic!("unexpected dtype {other}"),
    }
}

fn check_hyperstyle(name: &str, sha256: &str) {
    let out = convert(name, &ConvertOptions::default());
    let expected = expected();
    let json = expected_json();

    // Aliases: exactly expected.json's map, alias → canonical.
    let expected_aliases: BTreeMap<String, String> = serde_json::from_value(json["aliases"].clone()).unwrap();
    assert_eq!(out.aliases(), expected_aliases);

    // Every expected tensor is there, bit for bit, aliases resolved; nothing else is.
    for (key, want) in &expected.tensors {
        assert_eq!(out.get(key), want, "tensor `{key}`");
    }
    let stored: BTreeSet<&String> = out.tensors.keys().collect();
    let want: BTreeSet<&String> = expected
        .tensors
        .keys()
        .filter(|k| !expected_aliases.contains_key(*k))
        .collect();
    assert_eq!(
        stored, want,
        "each aliased tensor is stored once, under its canonical key"
    );

    // dtypes preserved.
    for (key, torch) in json["dtypes"].as_object().unwrap() {
        assert_eq!(
            out.get(key).dtype,
            safetensors_dtype(torch.as_str().unwrap()),
            "dtype of `{key}`"
        );
    }

    // Metadata: exactly the documented keys.
    let keys: BTreeSet<&str> = out.metadata.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["format", "kind", "opts", "aliases", "source_file", "source_sha256"])
    );
    assert_eq!(out.metadata["format"], "hyperstyle-rs/1");
    assert_eq!(out.metadata["kind"], "hyperstyle");
    assert_eq!(out.metadata["source_file"], name);
    assert_eq!(out.metadata["source_sha256"], sha256);
    assert_eq!(out.meta_json("opts"), json["opts"]);
}

#[test]
fn zip_checkpoint_matches_expected() {
    check_hyperstyle(
        "hyperstyle_like_zip.pt",
        "ef263f87e41a8c73eac85992711e561f245430cdc6ce90ae4b3167caf6017e63",
    );
}

#[test]
fn legacy_checkpoint_matches_expected() {
    check_hyperstyle(
        "hyperstyle_like_legacy.pt",
        "35d1f33d074d5a02db27485d7a79c72b7e215c4d64628085b8aae3d51e6a14a5",
    );
}

#[test]
fn zip_and_legacy_give_identical_tensors() {
    let zip = convert("hyperstyle_like_zip.pt", &ConvertOptions::default());
    let legacy = convert("hyperstyle_like_legacy.pt", &ConvertOptions::default());
    assert_eq!(zip.tensors, legacy.tensors);
}

#[test]
fn rosinality_generator_matches_expected() {
    let out = convert("rosinality_like.pt", &ConvertOptions::default());
    let expected = expected();
    // rosinality keeps the generator under `g_ema`; its tensors are the HyperStyle decoder's.
    let names = [
        "view_rows",
        "view_cols",
        "noises.noise_0",
        "half",
        "bf16",
        "f64",
        "scalar",
        "empty",
    ];
    for name in names {
        assert_eq!(
            out.get(&format!("g_ema/{name}")),
            expected.get(&format!("state_dict/decoder.{name}")),
            "{name}"
        );
    }
    // Its latent_avg is a 4-element view of the same data as expected's (18, 4) one.
    let latent = out.get("latent_avg");
    assert_eq!((latent.dtype.as_str(), latent.shape.as_slice()), ("F32", &[4][..]));
    assert_eq!(latent.data, expected.get("latent_avg").data[..16]);
    assert_eq!(out.tensors.len(), names.len() + 1);
    assert_eq!(out.metadata["kind"], "stylegan2");
    assert_eq!(out.metadata["aliases"], "{}");
    assert!(!out.metadata.contains_key("opts"), "no opts in a rosinality checkpoint");
}

#[test]
fn bare_tensor_is_stored_under_tensor() {
    let out = convert("bare_tensor.pt", &ConvertOptions::default());
    let t = out.get("tensor");
    assert_eq!((t.dtype.as_str(), t.shape.as_slice()), ("F32", &[1, 18, 4][..]));
    // The direction is random data that `expected.safetensors` does not hold: compare with the
    // storage bytes as Python's zipfile extracts them (SHA-256 and first values).
    let sha = format!("{:x}", sha2::Sha256::digest(&t.data));
    assert_eq!(sha, "bb4c600155c160e744554655e4aba4b779501a3101eb68569b95e564faf380e9");
    assert_eq!(
        common::f32_values(&t.data)[..4],
        [-0.485_752_5f32, 2.131_007_2, 0.397_289_84, -1.619_204_4]
    );
    assert_eq!(out.tensors.len(), 1);
    assert_eq!(out.metadata["kind"], "direction");
}

#[test]
fn dtype_f16_casts_floats_only() {
    let out = convert(
        "hyperstyle_like_zip.pt",
        &ConvertOptions {
            dtype: Some(DType::F16),
            ..Default::default()
        },
    );
    let expected = expected();
    for (key, want) in &expected.tensors {
        let got = out.get(key);
        assert_eq!(got.shape, want.shape, "{key}");
        let converted: Vec<u8> = match want.dtype.as_str() {
            "I64" => {
                assert_eq!(got.dtype, "I64", "{key}: integers keep their type");
                want.data.clone()
            }
            "F32" => want
                .data
                .chunks(4)
                .flat_map(|b| f16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
                .collect(),
            "F64" => want
                .data
                .chunks(8)
                .flat_map(|b| f16::from_f64(f64::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
                .collect(),
            "BF16" => want
                .data
                .chunks(2)
                .flat_map(|b| f16::from_f32(bf16::from_le_bytes([b[0], b[1]]).to_f32()).to_le_bytes())
                .collect(),
            "F16" => want.data.clone(),
            other => panic!("{other}"),
        };
        if want.dtype != "I64" {
            assert_eq!(got.dtype, "F16", "{key}");
        }
        assert_eq!(got.data, converted, "{key}");
    }
    assert_eq!(out.aliases().len(), 1, "aliases survive the cast");
}

#[test]
fn dtype_f32_widens_half_types_exactly() {
    let out = convert(
        "hyperstyle_like_legacy.pt",
        &ConvertOptions {
            dtype: Some(DType::F32),
            ..Default::default()
        },
    );
    let expected = expected();
    let half = out.get("state_dict/decoder.half");
    assert_eq!(half.dtype, "F32");
    let want: Vec<f32> = expected
        .get("state_dict/decoder.half")
        .data
        .chunks(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    assert_eq!(common::f32_values(&half.data), want);
    assert_eq!(out.get("state_dict/hypernet.bn1.num_batches_tracked").dtype, "I64");
    assert_eq!(out.get("state_dict/decoder.f64").dtype, "F32");
}

#[test]
fn layout_is_aligned() {
    let out = convert("hyperstyle_like_zip.pt", &ConvertOptions::default());
    assert_eq!((8 + out.header_len) % 8, 0, "header padded to 8 bytes");
    for (key, start, size) in &out.offsets {
        assert_eq!(start % size, 0, "`{key}` starts aligned to its element size");
    }
}

#[test]
fn kind_override_is_recorded() {
    let out = convert(
        "bare_tensor.pt",
        &ConvertOptions {
            kind: Some(Kind::Ganspace),
            ..Default::default()
        },
    );
    assert_eq!(out.metadata["kind"], "ganspace");
}

#[test]
fn in_memory_conversion_matches_file_conversion() {
    let bytes = std::fs::read(fixture("hyperstyle_like_zip.pt")).unwrap();
    let mut buf = Vec::new();
    let summary = convert_bytes(&bytes, "hyperstyle_like_zip.pt", &ConvertOptions::default(), &mut buf).unwrap();
    assert_eq!(
        (summary.tensors, summary.aliases, summary.bytes),
        (13, 1, buf.len() as u64)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    convert_file(&fixture("hyperstyle_like_zip.pt"), &out, &ConvertOptions::default()).unwrap();
    assert_eq!(std::fs::read(out).unwrap(), buf);
}

#[test]
fn inventory_lists_aliases_and_opts() {
    let inv = weights_convert::inspect_file(&fixture("hyperstyle_like_legacy.pt")).unwrap();
    assert_eq!(inv.kind, Some(Kind::Hyperstyle));
    assert_eq!(inv.format, weights_convert::Format::Legacy);
    assert_eq!(inv.entries.len(), 14);
    let alias = inv
        .entries
        .iter()
        .find(|e| e.key == "state_dict/hypernet.blocks.0.hypernet.w1")
        .unwrap();
    assert_eq!(alias.alias_of.as_deref(), Some("state_dict/hypernet.shared.w1"));
    assert_eq!(inv.opts.as_ref(), Some(&expected_json()["opts"]));
}
