//! The library reads what `weights-convert` writes, with no other step: the converter's nesting
//! (`state_dict/…`), its alias records, its dtypes and its opts metadata.

use hyperstyle::core::Error;
use hyperstyle::core::WeightStore;
use hyperstyle::HyperStyleConfig;
use weights_convert::{convert_file, ConvertOptions};

fn converted(name: &str) -> WeightStore {
    let dir = std::env::temp_dir().join(format!("hyperstyle-converted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pt")
        .join(name);
    let output = dir.join(format!("{name}.safetensors"));
    convert_file(&input, &output, &ConvertOptions::default()).unwrap();
    WeightStore::open(&output).unwrap()
}

#[test]
fn converted_hyperstyle_checkpoint_loads_directly() {
    let store = converted("hyperstyle_like_zip.pt");
    // The alias resolves to the tensor stored once under its canonical name.
    let shared = store.values("state_dict/hypernet.shared.w1", &[4, 6]).unwrap();
    let alias = store
        .values("state_dict/hypernet.blocks.0.hypernet.w1", &[4, 6])
        .unwrap();
    assert_eq!(shared, alias);
    // Reading a tensor through a scoped view, with the converter's nesting as the prefix.
    let conv = store
        .scope("state_dict/hypernet.")
        .pp("conv1")
        .values("weight", &[3, 6, 3, 3])
        .unwrap();
    assert_eq!(conv.len(), 162);
    // Float dtypes convert to f32; integers are refused with the key named.
    for (key, shape) in [
        ("state_dict/decoder.half", vec![5]),
        ("state_dict/decoder.bf16", vec![5]),
        ("state_dict/decoder.f64", vec![2, 2]),
    ] {
        let values = store.values(key, &shape).unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{key}");
    }
    match store.values("state_dict/hypernet.bn1.num_batches_tracked", &[]) {
        Err(Error::UnsupportedDtype { key, .. }) => assert_eq!(key, "state_dict/hypernet.bn1.num_batches_tracked"),
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
    // The checkpoint's opts become the model configuration.
    let opts: serde_json::Value = serde_json::from_str(&store.metadata()["opts"]).unwrap();
    let config = HyperStyleConfig::from_opts(&opts).unwrap();
    assert_eq!(
        (config.output_size, config.layers_to_tune.to_string()),
        (1024, "0,2,3".to_string())
    );
    assert_eq!(store.metadata()["kind"], "hyperstyle");
}

#[test]
fn converted_legacy_and_rosinality_files_load_directly() {
    let zip = converted("hyperstyle_like_zip.pt");
    let legacy = converted("hyperstyle_like_legacy.pt");
    for key in [
        "latent_avg",
        "state_dict/decoder.view_rows",
        "state_dict/decoder.noises.noise_0",
    ] {
        let shape = zip.shape(key).unwrap();
        assert_eq!(
            zip.values(key, &shape).unwrap(),
            legacy.values(key, &shape).unwrap(),
            "{key}"
        );
    }
    // A rosinality file keeps its generator under `g_ema/`, with the same tensors a HyperStyle
    // checkpoint keeps under `state_dict/decoder.`.
    let rosinality = converted("rosinality_like.pt");
    for name in ["view_rows", "noises.noise_0", "half", "f64"] {
        let shape = rosinality.shape(&format!("g_ema/{name}")).unwrap();
        assert_eq!(
            rosinality.values(&format!("g_ema/{name}"), &shape).unwrap(),
            zip.values(&format!("state_dict/decoder.{name}"), &shape).unwrap(),
            "{name}"
        );
    }
    // Scalars and empty tensors read as such.
    assert_eq!(rosinality.values("g_ema/scalar", &[]).unwrap().len(), 1);
    assert!(rosinality.values("g_ema/empty", &[0, 3]).unwrap().is_empty());
}

/// Checkpoints are named by role when a model is loaded; a file of the wrong kind in a role is
/// refused with the file and both kinds named, before any network is built.
#[test]
fn checkpoints_of_the_wrong_kind_are_refused() {
    use hyperstyle::backend::Cpu;
    use hyperstyle::HyperStyle;

    let store = converted("hyperstyle_like_zip.pt");
    let path = store.path().to_path_buf();
    let err = HyperStyle::<Cpu>::builder()
        .model_file(&path)
        .w_encoder_file(&path)
        .load(&Default::default())
        .unwrap_err();
    match err {
        hyperstyle::Error::Core(Error::InvalidFile { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(
                reason.contains("`hyperstyle`") && reason.contains("`w-encoder`"),
                "{reason}"
            );
        }
        other => panic!("expected an invalid-file error, got {other}"),
    }
    let err = HyperStyle::<Cpu>::builder()
        .model_file(&path)
        .load(&Default::default())
        .unwrap_err();
    assert!(matches!(err, hyperstyle::Error::Core(Error::InvalidConfig(_))), "{err}");
    assert_eq!(store.kind().unwrap(), Some(hyperstyle::core::Kind::Hyperstyle));
}

/// A configuration naming no valid generator is a typed error before any size is derived from it.
#[test]
fn impossible_output_sizes_are_configuration_errors() {
    use hyperstyle::backend::Cpu;
    use hyperstyle::{Domain, HyperStyle};

    for output_size in [0, 1, 2, 3, 300] {
        let config = HyperStyleConfig {
            output_size,
            ..HyperStyleConfig::for_domain(Domain::Faces)
        };
        let empty = || WeightStore::from_tensors(Vec::new()).unwrap();
        let err = HyperStyle::<Cpu>::builder()
            .model_weights(empty())
            .w_encoder_weights(empty())
            .config(config)
            .load(&Default::default())
            .unwrap_err();
        assert!(
            matches!(err, hyperstyle::Error::Core(Error::InvalidConfig(_))),
            "{output_size}: {err}"
        );
    }
}
