//! The tuned generator exported as a PyTorch checkpoint (`export_tuned_generator` to a `.pt`
//! path): the archive holds what `torch.save` writes (compared with a file PyTorch wrote,
//! tests/fixtures/torch_save), `weights-convert` reads it back, and the converted generator holds
//! the safetensors export's tensors bit for bit and renders the inversion's final image.

mod common;

use std::path::Path;

use common::B;
use hyperstyle::export::ExportFormat;
use hyperstyle::stylegan2::{Generator, GeneratorConfig, Noise};
use hyperstyle::torch_file::{checkpoint_to_bytes, Entry, Tensor};
use hyperstyle_testing::{assert_close, to_vec, Fixture};
use safetensors::SafeTensors;
use weights_convert::zip::ZipArchive;
use weights_convert::{ConvertOptions, Kind};

/// The records of a zip archive, in order: name and stored bytes.
fn records(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let archive = ZipArchive::read(bytes).unwrap();
    archive
        .entries()
        .iter()
        .map(|entry| {
            let range = archive.data_range(bytes, entry).unwrap();
            let data = bytes[range.offset as usize..(range.offset + range.len) as usize].to_vec();
            (entry.name.clone(), data)
        })
        .collect()
}

/// `values(shape, salt)` of tests/fixtures/torch_save/make_fixture.py.
fn values(n: usize, salt: f64) -> Vec<f32> {
    (0..n).map(|i| (i as f64 * 0.25 - salt) as f32).collect()
}

/// The checkpoint of tests/fixtures/torch_save/make_fixture.py, written here: every record but
/// the random `.data/serialization_id` holds PyTorch's bytes, the pickle included.
#[test]
fn checkpoints_hold_what_torch_save_writes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_save/archive.pt");
    let torch = records(&std::fs::read(&path).unwrap());
    let conv = values(54, 1.0);
    let (weight, bias, scale, avg) = (values(16, 2.0), values(4, 3.0), values(1, 4.0), values(4, 5.0));
    let g_ema = vec![
        ("convs.0.conv.weight".to_string(), Tensor::new(&[1, 3, 2, 3, 3], &conv)),
        ("style.1.weight".to_string(), Tensor::new(&[4, 4], &weight)),
        ("style.1.bias".to_string(), Tensor::new(&[4], &bias)),
        ("noises.scale".to_string(), Tensor::new(&[], &scale)),
    ];
    let entries = [
        ("g_ema".to_string(), Entry::StateDict(g_ema)),
        ("latent_avg".to_string(), Entry::Tensor(Tensor::new(&[4], &avg))),
    ];
    let bytes = checkpoint_to_bytes(&entries).unwrap();
    let ours = records(&bytes);
    let names = |r: &[(String, Vec<u8>)]| r.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&torch));
    for ((name, data), (_, expected)) in ours.iter().zip(&torch) {
        if name.ends_with("serialization_id") {
            assert_eq!(data.len(), expected.len(), "{name}");
            assert!(data.iter().all(u8::is_ascii_digit), "{name}");
        } else {
            assert_eq!(data, expected, "{name}");
        }
    }
    // Every record's data at a multiple of 64 bytes, as PyTorch aligns them.
    let archive = ZipArchive::read(&bytes[..]).unwrap();
    for entry in archive.entries() {
        assert_eq!(
            archive.data_range(&bytes[..], entry).unwrap().offset % 64,
            0,
            "{}",
            entry.name
        );
    }
    // weights-convert reads it as any checkpoint.
    let mut out = Vec::new();
    let summary = weights_convert::convert_bytes(&bytes, "archive.pt", &ConvertOptions::default(), &mut out).unwrap();
    assert_eq!(summary.tensors, 5);
    let converted = SafeTensors::deserialize(&out).unwrap();
    let scale_tensor = converted.tensor("g_ema/noises.scale").unwrap();
    assert!(scale_tensor.shape().is_empty());
    assert_eq!(scale_tensor.data(), scale[0].to_le_bytes());
}

#[test]
fn export_format_follows_the_extension() {
    assert_eq!(ExportFormat::for_path("a/b.pt"), ExportFormat::Torch);
    assert_eq!(ExportFormat::for_path("b.PTH"), ExportFormat::Torch);
    assert_eq!(ExportFormat::for_path("b.safetensors"), ExportFormat::Safetensors);
    assert_eq!(ExportFormat::for_path("b"), ExportFormat::Safetensors);
    assert_eq!(ExportFormat::Torch.extension(), "pt");
}

/// An inversion's tuned generator exported to `.pt`, converted by `weights-convert`, loaded and
/// rendered without offsets: the inversion's final image.
#[test]
fn exported_pt_generator_renders_the_inversion() {
    let fixture = Fixture::load("ffhq256");
    let model = common::fixture_model(&fixture);
    let photo =
        hyperstyle::io::load_image(hyperstyle_testing::fixtures_dir().join("images").join("astronaut.png")).unwrap();
    let inversion = model.invert_images(std::slice::from_ref(&photo), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("tuned.pt");
    model.export_tuned_generator(&inversion, 0, &pt).unwrap();
    let safetensors_export = dir.path().join("tuned.safetensors");
    model
        .export_tuned_generator(&inversion, 0, &safetensors_export)
        .unwrap();

    let converted = dir.path().join("tuned_from_pt.safetensors");
    let summary = weights_convert::convert_file(&pt, &converted, &ConvertOptions::default()).unwrap();
    assert_eq!(summary.kind, Kind::Stylegan2);

    // The same tensors as the safetensors export, bit for bit: the .pt only changes the container.
    let (a, b) = (
        std::fs::read(&converted).unwrap(),
        std::fs::read(&safetensors_export).unwrap(),
    );
    let (from_pt, direct) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names = from_pt.names();
    names.sort();
    let mut expected_names = direct.names();
    expected_names.sort();
    assert_eq!(names, expected_names);
    for name in names {
        let (x, y) = (from_pt.tensor(name).unwrap(), direct.tensor(name).unwrap());
        assert_eq!((x.shape(), x.data()), (y.shape(), y.data()), "{name}");
    }

    // Rendered without offsets it gives the inversion's final image. Both are float32
    // evaluations of the same function (the offsets folded into the weights once instead of per
    // call); each lies within the generator's float32 noise floor (upstream f32 vs f64: 1.8e-5
    // max-abs, 2.0e-6 mean-abs) of the exact value, so they differ by at most twice that.
    let device = Default::default();
    let tuned = Generator::<B>::from_file(&converted, &GeneratorConfig::new(256), &device).unwrap();
    let image = tuned
        .synthesis(inversion.latents.clone(), &Noise::Stored, None)
        .unwrap();
    let (shape, expected) = to_vec(inversion.last_step().image.clone());
    assert_close("exported .pt generator", image, (&shape, &expected), 3.6e-5, 4e-6);
    assert!(
        model
            .export_tuned_generator(&inversion, 1, dir.path().join("x.pt"))
            .is_err(),
        "no sample 1"
    );
}
