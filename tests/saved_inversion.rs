//! Saving and loading inversions: f32 exact, f16 within half precision, wrong files refused.

use burn::prelude::*;
use burn::tensor::Distribution;
use hyperstyle::backend::Cpu;
use hyperstyle::core::Error as CoreError;
use hyperstyle::stylegan2::WeightOffsets;
use hyperstyle::{Domain, Error, HyperStyleConfig, OffsetPrecision, SavedInversion};
use hyperstyle_testing::{assert_close, to_vec};

type B = Cpu;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperstyle-saved-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn example() -> (Tensor<B, 3>, WeightOffsets<B>) {
    let device = Default::default();
    let latents = Tensor::random([2, 14, 512], Distribution::Normal(0.0, 1.0), &device);
    let mut offsets = vec![None; 20];
    offsets[0] = Some(Tensor::random(
        [2, 512, 512, 3, 3],
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    offsets[18] = Some(Tensor::random(
        [2, 128, 128, 3, 3],
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    (latents, WeightOffsets::new(offsets))
}

#[test]
fn round_trip_f32_is_exact_and_f16_is_half_precision() {
    let (latents, offsets) = example();
    let config = HyperStyleConfig {
        output_size: 256,
        ..HyperStyleConfig::for_domain(Domain::Faces)
    };
    for (precision, tolerance) in [(OffsetPrecision::F32, 0.0), (OffsetPrecision::F16, 2f64.powi(-11))] {
        let path = scratch(&format!("inversion_{precision:?}.safetensors"));
        let inversion = SavedInversion {
            latents: latents.clone(),
            offsets: offsets.clone(),
            config: config.clone(),
        };
        inversion.save(&path, precision).unwrap();
        let saved = SavedInversion::<B>::load(&path, &Default::default()).unwrap();
        assert_eq!(saved.config, config);
        let (shape, values) = to_vec(latents.clone());
        assert_close("latents", saved.latents, (&shape, &values), 0.0, 0.0);
        assert_eq!(saved.offsets.len(), 20);
        for (j, (a, b)) in saved.offsets.iter().zip(offsets.iter()).enumerate() {
            assert_eq!(a.is_some(), b.is_some(), "layer {j}");
            if let (Some(a), Some(b)) = (a, b) {
                let (shape, values) = to_vec(b.clone());
                // f16 keeps 11 significant bits: relative error ≤ 2⁻¹¹ on values of |v| < 6.
                assert_close(
                    &format!("offsets.{j} {precision:?}"),
                    a.clone(),
                    (&shape, &values),
                    tolerance * 6.0,
                    tolerance,
                );
            }
        }
    }
    let f32_size = std::fs::metadata(scratch("inversion_F32.safetensors")).unwrap().len();
    let f16_size = std::fs::metadata(scratch("inversion_F16.safetensors")).unwrap().len();
    assert!(
        f16_size * 10 < f32_size * 6,
        "f16 file {f16_size} B vs f32 {f32_size} B"
    );
}

#[test]
fn other_files_are_refused() {
    let path = scratch("not_an_inversion.safetensors");
    let data = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    safetensors::serialize_to_file(vec![("x", view)], None, &path).unwrap();
    let err = SavedInversion::<B>::load(&path, &Default::default()).unwrap_err();
    assert!(matches!(err, Error::Core(CoreError::InvalidFile { .. })), "{err}");
    let err = SavedInversion::<B>::load(scratch("absent.safetensors"), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}

/// A crafted file claiming an absurd number of layers is refused before anything is allocated.
#[test]
fn absurd_layer_counts_are_refused() {
    let (latents, offsets) = example();
    let path = scratch("many_layers.safetensors");
    let config = HyperStyleConfig {
        output_size: 256,
        ..HyperStyleConfig::for_domain(Domain::Faces)
    };
    let saved = SavedInversion {
        latents,
        offsets,
        config,
    };
    saved.save(&path, OffsetPrecision::F16).unwrap();
    let st = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&st).unwrap();
    let mut metadata = meta.metadata().clone().unwrap();
    metadata.insert("n_layers".into(), "18446744073709551615".into());
    let tensors = safetensors::SafeTensors::deserialize(&st).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors.tensors();
    safetensors::serialize_to_file(views, Some(metadata), &path).unwrap();
    let err = SavedInversion::<B>::load(&path, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("n_layers"), "{err}");
    // One sample of a batch of two, and a sample that is not there.
    let (latents, offsets) = example();
    let config = HyperStyleConfig::for_domain(Domain::Faces);
    let saved = SavedInversion {
        latents,
        offsets,
        config,
    };
    assert_eq!(saved.sample(1).unwrap().latents.dims(), [1, 14, 512]);
    assert!(saved.sample(2).unwrap_err().is_invalid_input());
}
