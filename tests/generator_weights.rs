//! Bad generator checkpoints give typed errors that name the key, never panics.

use std::collections::HashMap;

use hyperstyle::backend::Cpu;
use hyperstyle::core::WeightStore;
use hyperstyle::stylegan2::{Error, Generator, GeneratorConfig};
use hyperstyle_testing::{Fixture, NamedTensor};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn decoder_tensors() -> Vec<NamedTensor> {
    Fixture::load("ffhq256")
        .manifest
        .checkpoint("hyperstyle")
        .unwrap()
        .pattern_tensors("decoder.")
        .unwrap()
}

fn load(tensors: Vec<NamedTensor>) -> Result<Generator<Cpu>, Error> {
    let store = WeightStore::from_tensors(tensors)?;
    Generator::load(&store.root(), &GeneratorConfig::new(256), &Default::default())
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn complete_weights_load() {
    assert!(load(decoder_tensors()).is_ok());
}

#[test]
fn missing_key_is_named() {
    let tensors = decoder_tensors()
        .into_iter()
        .filter(|(k, _, _)| k != "convs.5.noise.weight")
        .collect();
    match load(tensors) {
        Err(Error::MissingKey { key }) => assert_eq!(key, "convs.5.noise.weight"),
        other => panic!("expected MissingKey, got {:?}", other.err()),
    }
}

#[test]
fn wrong_shape_names_key_expected_and_found() {
    let mut tensors = decoder_tensors();
    let entry = tensors.iter_mut().find(|(k, _, _)| k == "convs.3.conv.weight").unwrap();
    entry.1 = vec![1, 512, 256, 3, 3];
    entry.2.truncate(512 * 256 * 9);
    match load(tensors) {
        Err(Error::ShapeMismatch { key, expected, found }) => {
            assert_eq!(key, "convs.3.conv.weight");
            assert_eq!(expected, [1, 512, 512, 3, 3]);
            assert_eq!(found, [1, 512, 256, 3, 3]);
        }
        other => panic!("expected ShapeMismatch, got {:?}", other.err()),
    }
}

#[test]
fn unexpected_key_is_an_error() {
    let mut tensors = decoder_tensors();
    tensors.push(("convs.99.conv.weight".into(), vec![2], vec![0.0, 1.0]));
    match load(tensors) {
        Err(Error::UnexpectedKeys { keys, .. }) => assert_eq!(keys, ["convs.99.conv.weight"]),
        other => panic!("expected UnexpectedKeys, got {:?}", other.err()),
    }
}

#[test]
fn wrong_dtype_is_named_and_half_floats_convert() {
    let tensors = decoder_tensors();
    // Serialize: the 4×4 constant as I64 (not a float), everything else F32.
    let mut data: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, s, v)| (format!("g_ema/{k}"), (Dtype::F32, s.clone(), f32_bytes(v))))
        .collect();
    let constant = data.get_mut("g_ema/input.input").unwrap();
    constant.0 = Dtype::I64;
    constant.2 = vec![0u8; 512 * 16 * 8];
    let bytes = serialize(&data);
    let store = WeightStore::from_bytes(bytes).unwrap();
    match Generator::<Cpu>::load(&store.scope("g_ema/"), &GeneratorConfig::new(256), &Default::default()) {
        Err(Error::UnsupportedDtype { key, found }) => {
            assert_eq!(key, "g_ema/input.input");
            assert_eq!(found, "I64");
        }
        other => panic!("expected UnsupportedDtype, got {:?}", other.err()),
    }

    // The same file with the constant in F16 loads, converted to f32.
    let constant = data.get_mut("g_ema/input.input").unwrap();
    constant.0 = Dtype::F16;
    constant.2 = [0x00, 0x3c].repeat(512 * 16); // f16 1.0
    let store = WeightStore::from_bytes(serialize(&data)).unwrap();
    let values = store.values("g_ema/input.input", &[1, 512, 4, 4]).unwrap();
    assert!(values.iter().all(|&v| v == 1.0));
    assert!(Generator::<Cpu>::load(&store.scope("g_ema/"), &GeneratorConfig::new(256), &Default::default()).is_ok());
}

#[test]
fn corrupt_truncated_and_missing_files() {
    let dir = std::env::temp_dir().join(format!("hyperstyle-weights-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> =
        [("a".to_string(), (Dtype::F32, vec![4], f32_bytes(&[1.0, 2.0, 3.0, 4.0])))]
            .into_iter()
            .collect();
    let bytes = serialize(&data);
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 3]).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    for path in [&truncated, &garbage] {
        assert!(
            matches!(WeightStore::open(path), Err(Error::Format { .. })),
            "{}",
            path.display()
        );
    }
    assert!(matches!(
        WeightStore::open(dir.join("absent.safetensors")),
        Err(Error::Io { .. })
    ));
    let err = Generator::<Cpu>::from_file(&truncated, &GeneratorConfig::new(256), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("truncated.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_config_is_an_error() {
    let store = WeightStore::from_tensors(decoder_tensors()).unwrap();
    let err = Generator::<Cpu>::load(&store.root(), &GeneratorConfig::new(300), &Default::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
}

fn serialize(data: &HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = data
        .iter()
        .map(|(k, (dtype, shape, bytes))| (k.clone(), TensorView::new(*dtype, shape.clone(), bytes).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}
