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
use hyperstyle::pickle::{NdArray, Object};
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
    let data = bytes[data_start..].to_vec();
    // An object array's data is a pickle of its own length.
    if descr != "|O" {
        let item: usize = descr[2..].parse().unwrap();
        assert_eq!(data.len(), shape.iter().product::<usize>() * item, "data size");
    }
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
    let deltas_file = writer.write_weight_deltas(&name, &deltas).unwrap();
    assert_eq!(deltas_file, dir.join("weight_deltas/a.npy"));
    // Upstream's list: one entry per layer, None where the layer is not tuned.
    let list = read_object_npy(&deltas_file, &[layers.len()]);
    let Py::List(list) = list else {
        panic!("not a list: {list:?}")
    };
    assert_eq!(list.len(), layers.len());
    for (j, entry) in list.iter().enumerate() {
        if j != 0 && j != 14 {
            assert_eq!(entry, &Py::None, "layer {j}");
        }
    }
    let (shape, d0) = f32_array(&list[0]);
    assert_eq!(shape, [l0.out_channels, l0.in_channels, 3, 3]);
    assert_eq!(bits(&d0), bits(&per_tap[per_tap.len() / 2..]), "sample 1 of the batch");
    let (shape, d14) = f32_array(&list[14]);
    assert_eq!(shape, [l14.out_channels, l14.in_channels, 3, 3]);
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

    // Upstream's dict {file name: [n_styles, 512]}, in the order the images came.
    let latents = read_object_npy(&dir.join("latents.npy"), &[]);
    let Py::List(items) = latents else {
        panic!("{latents:?}")
    };
    let [Py::Dict(dict)] = items.as_slice() else {
        panic!("{items:?}")
    };
    let keys: Vec<&Py> = dict.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&Py::Str("b.png".into()), &Py::Str("a.jpg".into())]);
    for ((_, value), expected) in dict.iter().zip(expected_latents.chunks(n_styles * 512)) {
        let (shape, codes) = f32_array(value);
        assert_eq!(shape, [n_styles, 512]);
        assert_eq!(bits(&codes), bits(expected));
    }
    assert!(!dir.join("latents_names.txt").exists());
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
    // latents.npy: {'astronaut.png': float32 [14, 512]}, the inversion's codes bit for bit.
    let latents = read_object_npy(&dir.join("latents.npy"), &[]);
    let Py::List(items) = latents else {
        panic!("{latents:?}")
    };
    let [Py::Dict(dict)] = items.as_slice() else {
        panic!("{items:?}")
    };
    let [(Py::Str(key), value)] = dict.as_slice() else {
        panic!("{dict:?}")
    };
    assert_eq!(key, "astronaut.png");
    let (shape, codes) = f32_array(value);
    assert_eq!(shape, [14, 512]);
    let expected = inversion.latents.clone().into_data().to_vec::<f32>().unwrap();
    assert_eq!(bits(&codes), bits(&expected));

    // weight_deltas/astronaut.npy: the list of per-layer offsets, None where untuned, offsets
    // stored per filter pair repeated over the taps as upstream's refinement blocks repeat them.
    let list = read_object_npy(&dir.join("weight_deltas/astronaut.npy"), &[layers.len()]);
    let Py::List(list) = list else { panic!("{list:?}") };
    let mut tuned = 0;
    for (j, ((entry, layer), written)) in inversion.offsets.iter().zip(&layers).zip(&list).enumerate() {
        let Some(offset) = entry else {
            assert_eq!(written, &Py::None, "layer {j}");
            continue;
        };
        tuned += 1;
        let (shape, written) = f32_array(written);
        let k = layer.kernel;
        assert_eq!(shape, [layer.out_channels, layer.in_channels, k, k]);
        let expected = offset.clone().into_data().to_vec::<f32>().unwrap();
        let taps = written.len() / expected.len();
        for (i, v) in written.iter().enumerate() {
            assert_eq!(v.to_bits(), expected[i / taps].to_bits(), "layer {j} value {i}");
        }
    }
    assert_eq!(tuned, 13, "the 256 generator's tuned layers");
}

// ----------------------------------------------------------------------------------------------
// Object arrays (`np.save` of a dict or of a list of arrays): a small unpickler for the opcodes
// such files hold, written from the pickle format's description (CPython's pickletools). It
// only builds data: globals are names, and the two callables NumPy's pickles use are
// interpreted by name.

/// A Python value read from a pickle.
#[derive(Clone, Debug, PartialEq)]
enum Py {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
    /// `module.name`.
    Global(String),
    /// `numpy.dtype(name, False, True)`, e.g. `f4` or `O8`.
    Dtype(String),
    /// An ndarray: its dtype name, shape and data (`Bytes` for numbers, `List` for objects),
    /// `None` until its `BUILD`.
    Array(Option<(String, Vec<usize>, Box<Py>)>),
    /// The MARK on the stack.
    Mark,
}

/// A cursor over a pickle's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }

    /// The text up to the next newline, which is skipped.
    fn line(&mut self) -> String {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').expect("a newline");
        self.at += end + 1;
        String::from_utf8(rest[..end].to_vec()).unwrap()
    }
}

/// Unpickles `bytes` (protocol 2 or 3), checking that the whole input is used.
fn unpickle(bytes: &[u8]) -> Py {
    let mut cursor = Cursor { bytes, at: 0 };
    let mut stack: Vec<Py> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Py> = Default::default();
    let since_mark = |stack: &mut Vec<Py>| -> Vec<Py> {
        let mark = stack.iter().rposition(|v| *v == Py::Mark).expect("MARK");
        let items = stack.split_off(mark + 1);
        stack.pop();
        items
    };
    let pairs = |items: Vec<Py>| -> Vec<(Py, Py)> {
        assert_eq!(items.len() % 2, 0, "key without value");
        items.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect()
    };
    loop {
        let op = cursor.take(1)[0];
        match op {
            0x80 => assert!(matches!(cursor.take(1)[0], 2 | 3), "protocol"),
            b'c' => {
                let (module, name) = (cursor.line(), cursor.line());
                stack.push(Py::Global(format!("{module}.{name}")));
            }
            b'q' => {
                let index = u32::from(cursor.take(1)[0]);
                memo.insert(index, stack.last().unwrap().clone());
            }
            b'r' => {
                let index = u32::from_le_bytes(cursor.take(4).try_into().unwrap());
                memo.insert(index, stack.last().unwrap().clone());
            }
            b'h' => stack.push(memo[&u32::from(cursor.take(1)[0])].clone()),
            b'j' => stack.push(memo[&u32::from_le_bytes(cursor.take(4).try_into().unwrap())].clone()),
            b'K' => stack.push(Py::Int(i64::from(cursor.take(1)[0]))),
            b'M' => stack.push(Py::Int(i64::from(u16::from_le_bytes(
                cursor.take(2).try_into().unwrap(),
            )))),
            b'J' => stack.push(Py::Int(i64::from(i32::from_le_bytes(
                cursor.take(4).try_into().unwrap(),
            )))),
            0x8a => {
                let n = usize::from(cursor.take(1)[0]);
                let raw = cursor.take(n);
                // Sign-extend the little-endian two's complement.
                let fill = if raw.last().is_some_and(|b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut le = [fill; 8];
                le[..n].copy_from_slice(raw);
                stack.push(Py::Int(i64::from_le_bytes(le)));
            }
            b'X' => {
                let n = u32::from_le_bytes(cursor.take(4).try_into().unwrap()) as usize;
                stack.push(Py::Str(String::from_utf8(cursor.take(n).to_vec()).unwrap()));
            }
            b'C' => {
                let n = usize::from(cursor.take(1)[0]);
                stack.push(Py::Bytes(cursor.take(n).to_vec()));
            }
            b'B' => {
                let n = u32::from_le_bytes(cursor.take(4).try_into().unwrap()) as usize;
                stack.push(Py::Bytes(cursor.take(n).to_vec()));
            }
            b'N' => stack.push(Py::None),
            0x88 => stack.push(Py::Bool(true)),
            0x89 => stack.push(Py::Bool(false)),
            b'(' => stack.push(Py::Mark),
            b')' => stack.push(Py::Tuple(Vec::new())),
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let items = stack.split_off(stack.len() - n);
                stack.push(Py::Tuple(items));
            }
            b't' => {
                let items = since_mark(&mut stack);
                stack.push(Py::Tuple(items));
            }
            b']' => stack.push(Py::List(Vec::new())),
            b'a' => {
                let item = stack.pop().unwrap();
                let Some(Py::List(list)) = stack.last_mut() else {
                    panic!("APPEND to a non-list")
                };
                list.push(item);
            }
            b'e' => {
                let items = since_mark(&mut stack);
                let Some(Py::List(list)) = stack.last_mut() else {
                    panic!("APPENDS to a non-list")
                };
                list.extend(items);
            }
            b'}' => stack.push(Py::Dict(Vec::new())),
            b's' => {
                let value = stack.pop().unwrap();
                let key = stack.pop().unwrap();
                let Some(Py::Dict(dict)) = stack.last_mut() else {
                    panic!("SETITEM on a non-dict")
                };
                dict.push((key, value));
            }
            b'u' => {
                let items = pairs(since_mark(&mut stack));
                let Some(Py::Dict(dict)) = stack.last_mut() else {
                    panic!("SETITEMS on a non-dict")
                };
                dict.extend(items);
            }
            b'R' => {
                let args = stack.pop().unwrap();
                let Py::Global(callable) = stack.pop().unwrap() else {
                    panic!("REDUCE of a non-global")
                };
                let Py::Tuple(args) = args else {
                    panic!("REDUCE arguments not a tuple")
                };
                let value = match callable.as_str() {
                    // Every NumPy from 1.18 to 2.x loads this name.
                    "numpy.core.multiarray._reconstruct" => {
                        assert_eq!(
                            args,
                            [
                                Py::Global("numpy.ndarray".into()),
                                Py::Tuple(vec![Py::Int(0)]),
                                Py::Bytes(b"b".to_vec())
                            ]
                        );
                        Py::Array(None)
                    }
                    "numpy.dtype" => {
                        let [Py::Str(name), Py::Bool(false), Py::Bool(true)] = args.as_slice() else {
                            panic!("dtype arguments {args:?}")
                        };
                        Py::Dtype(name.clone())
                    }
                    other => panic!("unexpected callable {other}"),
                };
                stack.push(value);
            }
            b'b' => {
                let state = stack.pop().unwrap();
                let Py::Tuple(state) = state else {
                    panic!("BUILD state {state:?}")
                };
                match stack.last_mut().unwrap() {
                    Py::Dtype(name) => {
                        let (order, flags) = if name == "O8" { ("|", 63) } else { ("<", 0) };
                        assert_eq!(
                            state,
                            [
                                Py::Int(3),
                                Py::Str(order.into()),
                                Py::None,
                                Py::None,
                                Py::None,
                                Py::Int(-1),
                                Py::Int(-1),
                                Py::Int(flags)
                            ],
                            "dtype {name}"
                        );
                    }
                    Py::Array(array @ None) => {
                        let [Py::Int(1), Py::Tuple(shape), Py::Dtype(dtype), Py::Bool(false), data] = state.as_slice()
                        else {
                            panic!("ndarray state {state:?}")
                        };
                        let shape = shape
                            .iter()
                            .map(|d| match d {
                                Py::Int(d) => *d as usize,
                                other => panic!("dimension {other:?}"),
                            })
                            .collect();
                        *array = Some((dtype.clone(), shape, Box::new(data.clone())));
                    }
                    other => panic!("BUILD of {other:?}"),
                }
            }
            b'.' => {
                assert_eq!(cursor.at, bytes.len(), "bytes after STOP");
                assert_eq!(stack.len(), 1, "one value left");
                return stack.pop().unwrap();
            }
            other => panic!("unexpected opcode {other:#04x} at {}", cursor.at - 1),
        }
    }
}

/// An object array's `.npy` file, checked to be of `shape`: its elements, a list (a 0-d array
/// holds one element).
fn read_object_npy(path: &Path, shape: &[usize]) -> Py {
    let npy = read_npy(path);
    assert_eq!(
        (npy.descr.as_str(), npy.shape.as_slice()),
        ("|O", shape),
        "{}",
        path.display()
    );
    let Py::Array(Some((dtype, array_shape, data))) = unpickle(&npy.data) else {
        panic!("not an array")
    };
    assert_eq!((dtype.as_str(), array_shape.as_slice()), ("O8", shape));
    *data
}

/// A float32 ndarray's shape and values.
fn f32_array(value: &Py) -> (Vec<usize>, Vec<f32>) {
    let Py::Array(Some((dtype, shape, data))) = value else {
        panic!("not an array: {value:?}")
    };
    assert_eq!(dtype, "f4");
    let Py::Bytes(data) = data.as_ref() else {
        panic!("array data {data:?}")
    };
    assert_eq!(data.len(), shape.iter().product::<usize>() * 4);
    (shape.clone(), f32s(data))
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// `values(n, salt)` of tests/fixtures/npy_objects/make_fixtures.py.
fn fixture_values(n: usize, salt: f64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.37 - salt) * 1.5f64.powi((i % 7) as i32)) as f32)
        .collect();
    if n >= 6 {
        v[..5].copy_from_slice(&[-0.0, 1e-45, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    }
    v
}

fn npy_fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy_objects")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn array<'a>(shape: &[usize], values: &'a [f32]) -> Object<'a> {
    Object::Array(NdArray::f32(shape, values))
}

/// The writer's bytes are NumPy 1.x's `np.save` bytes for the same objects (the fixtures, written
/// by tests/fixtures/npy_objects/make_fixtures.py), and the unpickler above reads both.
#[test]
fn object_arrays_are_numpys_bytes() {
    let a = fixture_values(6, 1.0);
    let b = fixture_values(4, 2.0);
    let big = fixture_values(210, 3.0);

    // upstream's latents.npy: a dict, a 0-d object array.
    let dict = Object::Dict(vec![
        (Object::str("b.png"), array(&[2, 3], &a)),
        (Object::str("a.jpg"), array(&[1, 2, 2], &b)),
    ]);
    let expected = npy_fixture("dict_of_two_arrays.npy");
    assert_eq!(npy::pickled_to_bytes(dict.clone()).unwrap(), expected);
    let dir = scratch("objects");
    npy::write_pickled(dir.join("dict.npy"), dict).unwrap();
    assert_eq!(std::fs::read(dir.join("dict.npy")).unwrap(), expected);
    let Py::List(items) = read_object_npy(&dir.join("dict.npy"), &[]) else {
        panic!()
    };
    let [Py::Dict(entries)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(entries[0].0, Py::Str("b.png".into()));
    assert_eq!(f32_array(&entries[0].1).0, [2, 3]);
    assert_eq!(bits(&f32_array(&entries[0].1).1), bits(&a));
    assert_eq!(f32_array(&entries[1].1).0, [1, 2, 2]);
    assert_eq!(bits(&f32_array(&entries[1].1).1), bits(&b));

    // upstream's weight_deltas/<stem>.npy: a list of arrays and Nones, an object array (n,);
    // 840 bytes of data take the 4-byte length form.
    let items = vec![
        array(&[2, 3], &a),
        Object::None,
        array(&[3, 70], &big),
        Object::None,
        array(&[1, 2, 2], &b),
    ];
    let expected = npy_fixture("list_with_none.npy");
    assert_eq!(npy::object_to_bytes(&[5], items.clone()).unwrap(), expected);
    npy::write_object(dir.join("list.npy"), &[5], items).unwrap();
    assert_eq!(std::fs::read(dir.join("list.npy")).unwrap(), expected);
    let Py::List(list) = read_object_npy(&dir.join("list.npy"), &[5]) else {
        panic!()
    };
    assert_eq!((&list[1], &list[3]), (&Py::None, &Py::None));
    let (shape, values) = f32_array(&list[2]);
    assert_eq!((shape, bits(&values)), (vec![3, 70], bits(&big)));

    // Over 256 memo entries (4-byte memo indices), a one-element and an empty array, singleton
    // strings.
    let names: Vec<String> = (0..300).map(|i| format!("name{i:03}")).collect();
    let (one, three) = (fixture_values(1, 0.5), fixture_values(3, 4.0));
    let mut items: Vec<Object> = names.iter().map(|n| Object::str(n.as_str())).collect();
    items.extend([
        array(&[1], &one),
        array(&[0], &[]),
        array(&[3], &three),
        Object::str(""),
        Object::str("x"),
        Object::str("x"),
    ]);
    assert_eq!(
        npy::object_to_bytes(&[306], items).unwrap(),
        npy_fixture("long_memo.npy")
    );

    // 1000 dict items: CPython closes with an empty batch.
    let keys: Vec<String> = (0..1000).map(|i| format!("{i:06}.jpg")).collect();
    let values: Vec<Vec<f32>> = (0..1000).map(|i| fixture_values(1, i as f64 * 0.01)).collect();
    let dict = Object::Dict(
        keys.iter()
            .zip(&values)
            .map(|(k, v)| (Object::str(k.as_str()), array(&[1], v)))
            .collect(),
    );
    let expected = npy_fixture("dict_of_1000.npy");
    assert_eq!(npy::pickled_to_bytes(dict).unwrap(), expected);
    let Py::Array(Some((_, _, data))) = unpickle(&parse_npy(&expected).data) else {
        panic!()
    };
    let Py::List(items) = *data else { panic!() };
    let [Py::Dict(entries)] = items.as_slice() else {
        panic!()
    };
    assert_eq!(entries.len(), 1000);
    assert_eq!(entries[999].0, Py::Str("000999.jpg".into()));
    assert_eq!(bits(&f32_array(&entries[999].1).1), bits(&values[999]));

    // Items that do not fill the shape are typed errors, and nothing is written.
    let err = npy::write_object(dir.join("bad.npy"), &[3], vec![Object::None]).unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(!dir.join("bad.npy").exists());
}
