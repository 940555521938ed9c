//! `--layout upstream` (examples/common/upstream.rs) and the `.npy` writer: upstream's folder and
//! file names, image sizes and arrangement, Pillow's bicubic resize, and `.npy` files read back
//! by a parser written here from the format's specification (not with the library's code).

#[path = "../examples/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::upstream::{
    concat_horizontal, resize_amount, resize_bicubic, sample_deltas, EditWriter, InferenceWriter, UpstreamNames,
};
use hyperstyle::backend::Cpu;
use hyperstyle::demo::Demo;
use hyperstyle::stylegan2::{GeneratorConfig, WeightOffsets};
use hyperstyle::{npy, Domain, HyperStyleConfig};
use image::{Rgb, RgbImage};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperstyle-upstream-layout-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `.npy` file taken apart: dtype string, shape and the raw data bytes.
#[derive(Debug)]
struct Npy {
    descr: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Parses version 1.0 `.npy` bytes and checks the layout rules: magic, version, header length,
/// 64-byte alignment, the newline ending the header, C order, data size.
fn parse_npy(bytes: &[u8]) -> Npy {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "magic");
    assert_eq!((bytes[6], bytes[7]), (1, 0), "version 1.0");
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let data_start = 10 + header_len;
    assert_eq!(data_start % 64, 0, "data start aligned to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..data_start]).unwrap();
    assert!(header.ends_with('\n'), "header ends with a newline");
    let dict = header.trim_end();
    assert!(dict.starts_with('{') && dict.ends_with('}'), "{dict}");
    let field = |key: &str| -> &str {
        let at = dict
            .find(&format!("'{key}': "))
            .unwrap_or_else(|| panic!("no {key} in {dict}"));
        &dict[at + key.len() + 4..]
    };
    let descr = field("descr");
    let descr = descr[1..descr[1..].find('\'').unwrap() + 1].to_string();
    assert!(field("fortran_order").starts_with("False"), "C order");
    let shape_text = field("shape");
    let shape_text = &shape_text[1..shape_text.find(')').unwrap()];
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let item: usize = descr[2..].parse().unwrap();
    let data = bytes[data_start..].to_vec();
    assert_eq!(data.len(), shape.iter().product::<usize>() * item, "data size");
    Npy { descr, shape, data }
}

fn read_npy(path: &Path) -> Npy {
    parse_npy(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn npy_files_read_back_with_their_shape_dtype_and_values() {
    let dir = scratch("npy");
    let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 3.0).collect();
    npy::write(dir.join("a.npy"), &[2, 3, 4], &values).unwrap();
    let a = read_npy(&dir.join("a.npy"));
    assert_eq!((a.descr.as_str(), a.shape.as_slice()), ("<f4", &[2, 3, 4][..]));
    assert_eq!(f32s(&a.data), values);

    npy::write(dir.join("v.npy"), &[3], &[1.5f64, -2.0, 1e300]).unwrap();
    let v = read_npy(&dir.join("v.npy"));
    assert_eq!((v.descr.as_str(), v.shape.as_slice()), ("<f8", &[3][..]));
    let doubles: Vec<f64> = v
        .data
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(doubles, [1.5, -2.0, 1e300]);

    npy::write(dir.join("s.npy"), &[], &[7i64]).unwrap();
    let s = read_npy(&dir.join("s.npy"));
    assert_eq!((s.descr.as_str(), s.shape.len()), ("<i8", 0));
    assert_eq!(s.data, 7i64.to_le_bytes());

    npy::write(dir.join("e.npy"), &[0, 14, 512], &[] as &[f32]).unwrap();
    assert_eq!(read_npy(&dir.join("e.npy")).shape, [0, 14, 512]);
    npy::write(dir.join("u.npy"), &[2, 2], &[0u8, 1, 254, 255]).unwrap();
    let u = read_npy(&dir.join("u.npy"));
    assert_eq!((u.descr.as_str(), u.data.as_slice()), ("|u1", &[0, 1, 254, 255][..]));

    // The in-memory form is the same file.
    assert_eq!(
        npy::to_bytes(&[2, 3, 4], &values).unwrap(),
        std::fs::read(dir.join("a.npy")).unwrap()
    );
    // Wrong element counts are typed errors, and nothing is written.
    let err = npy::write(dir.join("bad.npy"), &[2, 2], &[1.0f32]).unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(!dir.join("bad.npy").exists());
}

/// A 7×5 test pattern, and Pillow 13's `Image.resize` (bicubic) of it to 16×11 and 3×2.
#[test]
fn bicubic_resize_is_pillows() {
    let image = RgbImage::from_fn(7, 5, |x, y| {
        Rgb(std::array::from_fn(|c| {
            ((x * 67 + y * 141 + c as u32 * 29 + x * y * 13) % 256) as u8
        }))
    });
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let up = concat!(
        "000a2500153514315d3754895e7bb787a4ceb2cf88d4f112aecb003855230013531a3771516e8c7592ad90adca9bb8d5",
        "122a4b1a37503a575c59767067849a7491b897b48abfdc34aac715557226213e412a48604565816685a487a4c294b1ce",
        "5d78a76b889096b357acc9317a97554562885774938daa88a3bf679db82984a2114b733721506a3f68917291b086a1be",
        "83a0d595b2b3c7e45ddbf81b90ad2b3c5955385585617fb78caaa2c3e243cae60d778a2429374f374a77617c9b708fac",
        "415e885774848ba87db5d26dacc84491ad246d904646728952829e94c389bbce6dae6943920f2a772b505e698753809d",
        "112e4b23405f4a67967a97b0b2cf67d5f214a5c21b4865523456846494bb98a5c2d0526fec0926ae23405a5a77386e8b",
        "5a77925370903d5a8e3c5985799d71b7d95bb4a5458e383677254f6b67987991bebb7ea4e663819f59753e5672175370",
        "b0cdea92afcc456281112e4c37637879a0aead7384d91630c906247b4260567c9a90b2cfbfcce98399b62f53700e3754",
        "8eabc8809dba5d7a96415e7b3e668c4e72a184628dcc4666c13b56633f5c345a776aa3c0a2d3f09598b576436067213e",
        "3d5a774e6b887b98b595b2cf6483a22e4c6d4f607f9895b2928fac3f4f6c18385548789589adcab87b98da304de1122f",
        "1c39563a577489a6c3b8d5f2738eab1f3b58385e7b83b6d380b3d03055720b28453967847e9fbcc6708dff2744ff0b28",
    );
    assert_eq!(resize_bicubic(&image, 16, 11).into_raw(), hex(up));
    assert_eq!(
        resize_bicubic(&image, 3, 2).into_raw(),
        hex("6c896e81985d6a6f7865828f7c6c79896986")
    );
    assert_eq!(resize_bicubic(&image, 7, 5), image, "the same size is a copy");
}

#[test]
fn names_follow_upstream_and_never_collide() {
    let mut names = UpstreamNames::new(&[]);
    let name = |names: &mut UpstreamNames, p: &str| {
        let n = names.name(Path::new(p));
        (n.file, n.stem)
    };
    assert_eq!(name(&mut names, "a/face.jpg"), ("face.jpg".into(), "face".into()));
    assert_eq!(name(&mut names, "b/face.png"), ("face_2.png".into(), "face_2".into()));
    assert_eq!(name(&mut names, "img.v2.JPG"), ("img.v2.JPG".into(), "img".into()));
    assert_eq!(name(&mut names, "img.v3.jpg"), ("img_2.v3.jpg".into(), "img_2".into()));
    assert_eq!(name(&mut names, "photo"), ("photo.png".into(), "photo".into()));
    assert_eq!(name(&mut names, ".png"), ("image.png".into(), "image".into()));
    assert_eq!(name(&mut names, "x.tif"), ("x.tif.png".into(), "x".into()));
}

fn faces256() -> HyperStyleConfig {
    let mut config = HyperStyleConfig::for_domain(Domain::Faces);
    config.output_size = 256;
    config
}

/// The layout written from synthetic step images, latents and offsets.
#[test]
fn inference_folders_hold_upstreams_files() {
    let dir = scratch("inference");
    let config = faces256();
    assert_eq!(resize_amount(&config, false), (256, 256));
    assert_eq!(
        resize_amount(&HyperStyleConfig::for_domain(Domain::Faces), false),
        (1024, 1024)
    );
    assert_eq!(
        resize_amount(&HyperStyleConfig::for_domain(Domain::Cars), false),
        (512, 384)
    );
    assert_eq!(
        resize_amount(&HyperStyleConfig::for_domain(Domain::Cars), true),
        (256, 192)
    );

    let input_file = dir.join("photo.jpg");
    std::fs::write(&input_file, b"photo").unwrap();
    let mut writer = InferenceWriter::new(&dir, std::slice::from_ref(&input_file), &config, false).unwrap();
    let n_styles = config.n_styles();
    let solid = |v: u8| RgbImage::from_pixel(256, 256, Rgb([v, v / 2, 255 - v]));
    let mut expected_latents = Vec::new();
    for (k, file) in ["b.png", "a.jpg"].iter().enumerate() {
        let name = writer.name(Path::new(file));
        let steps = [solid(10), solid(100), solid(200)];
        // A smaller input is enlarged to the outputs' size, as upstream does.
        let input = RgbImage::from_pixel(128, 128, Rgb([50, 60, 70]));
        writer.write_images(&name, &input, &steps).unwrap();
        let codes: Vec<f32> = (0..n_styles * 512).map(|i| (k * 100_000 + i) as f32 * 1e-3).collect();
        writer.add_latents(&name, codes.clone()).unwrap();
        expected_latents.extend(codes);
    }
    let wrong = writer.name(Path::new("c.png"));
    assert!(writer.add_latents(&wrong, vec![0.0; 3]).is_err(), "a wrong latent size");
    writer.record_batch_time(1.0);
    writer.record_batch_time(2.0);

    // Offsets: a per-tap layer, a per-pair layer (repeated over the taps on disk), untuned layers.
    let layers = GeneratorConfig::new(256).layers();
    let device = Default::default();
    let mut entries: Vec<Option<Tensor<Cpu, 5>>> = vec![None; layers.len()];
    let l0 = &layers[0];
    let per_tap: Vec<f32> = (0..2 * l0.out_channels * l0.in_channels * 9)
        .map(|i| i as f32)
        .collect();
    entries[0] = Some(Tensor::from_data(
        TensorData::new(per_tap.clone(), [2, l0.out_channels, l0.in_channels, 3, 3]),
        &device,
    ));
    let l14 = &layers[14];
    let per_pair: Vec<f32> = (0..l14.out_channels * l14.in_channels).map(|i| -(i as f32)).collect();
    entries[14] = Some(Tensor::from_data(
        TensorData::new(per_pair.clone(), [1, l14.out_channels, l14.in_channels, 1, 1]),
        &device,
    ));
    let offsets = WeightOffsets::new(entries);
    let deltas = sample_deltas(&offsets, &layers, 1).unwrap();
    let name = UpstreamNames::new(&[]).name(Path::new("a.jpg"));
    // A stale file of an earlier run in the folder is removed: a missing file means "no offset".
    std::fs::create_dir_all(dir.join("weight_deltas/a")).unwrap();
    std::fs::write(dir.join("weight_deltas/a/layer_01.npy"), b"stale").unwrap();
    let deltas_dir = writer.write_weight_deltas(&name, &deltas).unwrap();
    assert_eq!(deltas_dir, dir.join("weight_deltas/a"));
    let mut files: Vec<String> = std::fs::read_dir(&deltas_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["layer_00.npy", "layer_14.npy"]);
    let d0 = read_npy(&deltas_dir.join("layer_00.npy"));
    assert_eq!(d0.descr, "<f4");
    assert_eq!(d0.shape, [l0.out_channels, l0.in_channels, 3, 3]);
    assert_eq!(f32s(&d0.data), per_tap[per_tap.len() / 2..], "sample 1 of the batch");
    let d14 = read_npy(&deltas_dir.join("layer_14.npy"));
    assert_eq!(d14.shape, [l14.out_channels, l14.in_channels, 3, 3]);
    let d14 = f32s(&d14.data);
    for (pair, &v) in per_pair.iter().enumerate() {
        assert!(d14[pair * 9..pair * 9 + 9].iter().all(|&t| t == v), "pair {pair}");
    }
    assert!(
        sample_deltas(&offsets, &layers[..3], 0).is_err(),
        "layer count mismatch"
    );

    writer.finish().unwrap();
    for step in 0..3 {
        for file in ["b.png", "a.jpg"] {
            let path = dir.join(format!("inference_results/{step}/{file}"));
            assert_eq!(
                image::image_dimensions(&path).unwrap(),
                (256, 256),
                "{}",
                path.display()
            );
        }
    }
    let coupled = image::open(dir.join("inference_coupled/b.png")).unwrap().to_rgb8();
    assert_eq!(coupled.dimensions(), (4 * 256, 256));
    assert_eq!(coupled.get_pixel(100, 100), &Rgb([50, 60, 70]), "input first");
    assert_eq!(coupled.get_pixel(256 + 3, 7), &Rgb([10, 5, 245]), "then step 0");
    assert_eq!(
        coupled.get_pixel(3 * 256 + 255, 255),
        &Rgb([200, 100, 55]),
        "step 2 last"
    );
    assert!(dir.join("inference_coupled/a.jpg").is_file());

    let latents = read_npy(&dir.join("latents.npy"));
    assert_eq!(
        (latents.descr.as_str(), latents.shape.as_slice()),
        ("<f4", &[2, n_styles, 512][..])
    );
    assert_eq!(f32s(&latents.data), expected_latents);
    assert_eq!(
        std::fs::read_to_string(dir.join("latents_names.txt")).unwrap(),
        "b.png\na.jpg\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("stats.txt")).unwrap(),
        "Runtime 1.5000+-0.5000"
    );
    assert_eq!(std::fs::read(&input_file).unwrap(), b"photo");
}

/// Inputs are never overwritten: an input inside the output folder under an output's name.
#[test]
fn inputs_are_never_overwritten() {
    let dir = scratch("protect");
    let step_dir = dir.join("inference_results/0");
    std::fs::create_dir_all(&step_dir).unwrap();
    let input = step_dir.join("face.png");
    std::fs::write(&input, b"photo").unwrap();
    let mut writer = InferenceWriter::new(&dir, std::slice::from_ref(&input), &faces256(), false).unwrap();
    let name = writer.name(&input);
    let image = RgbImage::new(256, 256);
    let err = writer
        .write_images(&name, &image, std::slice::from_ref(&image))
        .unwrap_err();
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(&input).unwrap(), b"photo");
}

#[test]
fn editing_folders_hold_upstreams_rows() {
    let dir = scratch("edit");
    let config = faces256();
    let mut writer = EditWriter::new(&dir, &[], &config, false).unwrap();
    let name = writer.name(Path::new("face.jpg"));
    let input = RgbImage::from_pixel(256, 256, Rgb([1, 2, 3]));
    let inversion = RgbImage::from_pixel(256, 256, Rgb([4, 5, 6]));
    let edits: Vec<(String, Vec<RgbImage>)> = ["age", "smile", "pose"]
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let images = (0..10)
                .map(|f| RgbImage::from_pixel(256, 256, Rgb([k as u8 * 50, f * 20, 0])))
                .collect();
            (e.to_string(), images)
        })
        .collect();
    let coupled = writer.write_faces(&name, &input, &inversion, &edits).unwrap();
    assert_eq!(coupled, dir.join("editing_coupled/face.jpg"));
    for edit in ["age", "smile", "pose"] {
        let row = dir.join(format!("editing_results/{edit}/face.jpg"));
        assert_eq!(image::image_dimensions(&row).unwrap(), (12 * 256, 256), "{edit}");
    }
    assert_eq!(image::image_dimensions(&coupled).unwrap(), (12 * 256, 3 * 256));

    // With --resize-outputs the 1024 generator's images are reduced to 256×256.
    let dir = scratch("edit-resized");
    let config = HyperStyleConfig::for_domain(Domain::Faces);
    let mut writer = EditWriter::new(&dir, &[], &config, true).unwrap();
    let name = writer.name(Path::new("face.png"));
    let big = RgbImage::from_pixel(1024, 1024, Rgb([9, 9, 9]));
    writer
        .write_faces(&name, &input, &inversion, &[("age".into(), vec![big.clone(), big])])
        .unwrap();
    let row = image::open(dir.join("editing_results/age/face.png")).unwrap().to_rgb8();
    assert_eq!(row.dimensions(), (4 * 256, 256));
    assert_eq!(row.get_pixel(3 * 256 + 10, 10), &Rgb([9, 9, 9]));

    // Cars: one row, input enlarged to 512×384, named STEM.jpg whatever the input's extension.
    let dir = scratch("edit-cars");
    let config = HyperStyleConfig::for_domain(Domain::Cars);
    let mut writer = EditWriter::new(&dir, &[], &config, true).unwrap();
    let name = writer.name(Path::new("car.v1.png"));
    let input = RgbImage::from_pixel(256, 192, Rgb([1, 2, 3]));
    let result = RgbImage::from_pixel(512, 384, Rgb([7, 8, 9]));
    let path = writer
        .write_cars(&name, &input, &result, &vec![result.clone(); 5])
        .unwrap();
    assert_eq!(path, dir.join("editing_coupled/car.jpg"));
    assert_eq!(image::image_dimensions(&path).unwrap(), (7 * 512, 384));
    assert!(concat_horizontal(&[input, result]).is_err(), "heights differ");
}

/// The bundled demo model inverted and written in the layout: the files hold the inversion's
/// latents and offsets.
#[test]
fn demo_inversion_in_upstream_layout() {
    let dir = scratch("demo");
    let device = Default::default();
    let demo = Demo::load("ffhq256").unwrap();
    let model = demo.hyperstyle::<Cpu>(&device).unwrap();
    let photo_path = demo.photo("astronaut.png");
    let photo = hyperstyle::io::load_image(&photo_path).unwrap();
    let inversion = model.invert_images(std::slice::from_ref(&photo), 2).unwrap();

    let mut writer = InferenceWriter::new(&dir, std::slice::from_ref(&photo_path), model.config(), false).unwrap();
    let name = writer.name(&photo_path);
    let input = common::upstream::network_input_image::<Cpu>(&photo, model.input_size(), &device).unwrap();
    assert_eq!(input.dimensions(), (256, 256));
    writer.write_sample(&name, &input, &inversion, 0).unwrap();
    let layers = model.generator().config().layers();
    let deltas = sample_deltas(&inversion.offsets, &layers, 0).unwrap();
    writer.write_weight_deltas(&name, &deltas).unwrap();
    writer.finish().unwrap();

    for step in 0..2 {
        let path = dir.join(format!("inference_results/{step}/astronaut.png"));
        let written = image::open(&path).unwrap().to_rgb8();
        let expected = hyperstyle::io::tensor_to_images(inversion.steps[step].image.clone()).unwrap();
        assert_eq!(written, expected[0], "step {step}");
    }
    assert_eq!(
        image::image_dimensions(dir.join("inference_coupled/astronaut.png")).unwrap(),
        (3 * 256, 256)
    );
    let latents = read_npy(&dir.join("latents.npy"));
    assert_eq!(latents.shape, [1, 14, 512]);
    let expected = inversion.latents.clone().into_data().to_vec::<f32>().unwrap();
    assert_eq!(f32s(&latents.data), expected);

    let mut tuned = 0;
    for (j, (entry, layer)) in inversion.offsets.iter().zip(&layers).enumerate() {
        let path = dir.join(format!("weight_deltas/astronaut/layer_{j:02}.npy"));
        let Some(offset) = entry else {
            assert!(!path.exists(), "{}", path.display());
            continue;
        };
        tuned += 1;
        let file = read_npy(&path);
        let k = layer.kernel;
        assert_eq!(file.shape, [layer.out_channels, layer.in_channels, k, k]);
        let expected = offset.clone().into_data().to_vec::<f32>().unwrap();
        let written = f32s(&file.data);
        let taps = written.len() / expected.len();
        for (i, v) in written.iter().enumerate() {
            assert_eq!(*v, expected[i / taps], "layer {j} value {i}");
        }
    }
    assert_eq!(tuned, 13, "the 256 generator's tuned layers");
}
