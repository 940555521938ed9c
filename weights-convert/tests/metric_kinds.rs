//! The plain state dicts of the evaluation metrics' networks (torchvision's AlexNet, the LPIPS
//! linear layers, ArcFace IR-SE-50) and the training data's pre-extracted latents dicts are
//! recognised by their keys, in both container formats.

mod common;

use common::{f32_bytes, f32_values, legacy_checkpoint, zip_checkpoint, Output, Pickle};
use weights_convert::{convert_bytes, ConvertError, ConvertOptions};

/// A state dict (an `OrderedDict`, as `torch.save(model.state_dict())` writes it) holding one
/// two-value tensor per key, in the legacy stream format or a zip archive.
fn state_dict(keys: &[&str], zip: bool) -> Vec<u8> {
    tensor_dict(keys, zip, true)
}

/// A dict (`OrderedDict` or plain `dict`) holding tensor `[i, -1]` under the `i`-th key.
fn tensor_dict(keys: &[&str], zip: bool, ordered: bool) -> Vec<u8> {
    let mut p = Pickle::new(2);
    if ordered {
        p.ordered_dict();
    } else {
        p.empty_dict();
    }
    p.mark();
    for (i, key) in keys.iter().enumerate() {
        let storage = i.to_string();
        if zip {
            p.str(key).tensor("FloatStorage", &storage, 2, 0, &[2], &[1]);
        } else {
            p.str(key)
                .legacy_tensor("FloatStorage", &storage, 2, None, (0, &[2], &[1]));
        }
    }
    p.setitems();
    let names: Vec<String> = (0..keys.len()).map(|i| i.to_string()).collect();
    let data: Vec<Vec<u8>> = (0..keys.len()).map(|i| f32_bytes(&[i as f32, -1.0])).collect();
    if zip {
        let storages: Vec<(&str, Vec<u8>)> = names.iter().map(String::as_str).zip(data).collect();
        zip_checkpoint(p.stop(), &storages, None)
    } else {
        let storages: Vec<(&str, Vec<u8>, usize)> = names
            .iter()
            .map(String::as_str)
            .zip(data)
            .map(|(n, d)| (n, d, 4))
            .collect();
        legacy_checkpoint(p.stop(), &storages)
    }
}

fn convert(bytes: &[u8]) -> Result<Output, ConvertError> {
    let mut out = Vec::new();
    convert_bytes(bytes, "weights.pth", &ConvertOptions::default(), &mut out)?;
    Ok(Output::parse(&out))
}

#[test]
fn metric_networks_are_detected() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "alexnet",
            &["features.0.weight", "features.10.weight", "classifier.6.bias"],
        ),
        ("lpips", &["lin0.model.1.weight", "lin4.model.1.weight"]),
        (
            "arcface",
            &[
                "input_layer.0.weight",
                "body.0.res_layer.1.weight",
                "output_layer.3.weight",
            ],
        ),
    ];
    for (kind, keys) in cases {
        for zip in [false, true] {
            let out = convert(&state_dict(keys, zip)).unwrap();
            assert_eq!(out.metadata["kind"], kind, "zip: {zip}");
            // Keys stay as in the state dict, at the top level.
            assert_eq!(f32_values(&out.get(keys[1]).data), [1.0, -1.0]);
        }
    }
    // A W encoder's bare backbone (no output layer) is not ArcFace.
    assert!(matches!(
        convert(&state_dict(
            &["input_layer.0.weight", "body.0.res_layer.1.weight"],
            false
        )),
        Err(ConvertError::UnknownKind(_))
    ));
}

#[test]
fn latents_dicts_are_detected() {
    // `torch.save({name: code})` of the pre-extracted inversions: a plain dict keyed by file name.
    let keys = ["00001.png", "00002.png", "00003.PNG"];
    for zip in [false, true] {
        let out = convert(&tensor_dict(&keys, zip, false)).unwrap();
        assert_eq!(out.metadata["kind"], "latents", "zip: {zip}");
        assert_eq!(f32_values(&out.get("00003.PNG").data), [2.0, -1.0]);
    }
    // One key that is no image file name, or a bare extension, and it is not a latents dict.
    for keys in [["00001.png", "latent_avg"], ["00001.png", ".png"]] {
        assert!(matches!(
            convert(&tensor_dict(&keys, true, false)),
            Err(ConvertError::UnknownKind(_))
        ));
    }
}
