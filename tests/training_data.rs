//! The training data of `hyperstyle::training::data`: transforms against torchvision's on real
//! photos (goldens made by tests/fixtures/training_data/make_goldens.py), the original's file
//! listing and pairing, the seeded loader, and the typed errors.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hyperstyle::io::load_image;
use hyperstyle::training::data::{
    inversion_name, list_images, write_latents, DataError, DataLoader, Dataset, DatasetTransforms, DatasetType,
    ImagesDataset, LatentsImagesDataset, LoaderConfig, Position, Transform, DEFAULT_N_STYLES, LATENT_DIM,
};
use hyperstyle::Domain;
use image::{Rgb, RgbImage};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A `width`×`height` image whose pixels encode their position and `seed` (so that every
/// image and every column differs).
fn synthetic(width: u32, height: u32, seed: u8) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 7 + u32::from(seed)) as u8,
            (y * 5) as u8,
            (x * y + u32::from(seed) * 31) as u8,
        ])
    })
}

/// Writes `image` PNG-encoded, whatever the file's name says.
fn write_png(path: &Path, image: &RgbImage) {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    std::fs::write(path, bytes.into_inner()).expect("write test image");
}

/// A folder of `n` synthetic images `img_{k}.png` of 40×30 pixels.
fn image_folder(root: &Path, name: &str, n: usize) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for k in 0..n {
        write_png(&dir.join(format!("img_{k:02}.png")), &synthetic(40, 30, k as u8));
    }
    dir
}

#[test]
fn transforms_match_torchvision() {
    let text = std::fs::read_to_string(fixtures().join("training_data/transforms_golden.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let transforms = [
        ("faces", Transform::resize((256, 256)), false),
        ("faces_flipped", Transform::resize_flip((256, 256)), true),
        ("cars", Transform::resize((192, 256)), false),
        ("cars_flipped", Transform::resize_flip((192, 256)), true),
    ];
    let mut checked = 0;
    for photo in ["astronaut.png", "chelsea.png", "coffee.png"] {
        let image = load_image(fixtures().join("images").join(photo)).unwrap();
        for (name, transform, flip) in transforms {
            let entry = &golden[format!("{photo}:{name}")];
            let ours = transform.apply(&image, flip);
            let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).unwrap();
            assert_eq!(transform.shape().to_vec(), shape, "{photo} {name}");
            assert_eq!(ours.len(), shape.iter().product::<usize>());
            // Pillow's resize is reproduced step for step and ToTensor/Normalize are the same
            // float32 operations: every value is identical, so the probes compare exactly and
            // the float64 sums differ only by the order of summation (measured: sums equal, sums of
            // squares within 1.5e-8 of ~5e4).
            let head: Vec<f32> = serde_json::from_value(entry["head"].clone()).unwrap();
            assert_eq!(&ours[..16], &head[..], "{photo} {name}: first values");
            let probes: Vec<(usize, f32)> = serde_json::from_value(entry["probes"].clone()).unwrap();
            for (index, value) in probes {
                assert_eq!(ours[index], value, "{photo} {name}: value {index}");
            }
            let sum: f64 = ours.iter().map(|&v| f64::from(v)).sum();
            let sum_sq: f64 = ours.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let (gold_sum, gold_sq) = (entry["sum"].as_f64().unwrap(), entry["sum_sq"].as_f64().unwrap());
            println!("{photo} {name}: sum {sum} (torchvision {gold_sum}), sum of squares {sum_sq} ({gold_sq})");
            assert!((sum - gold_sum).abs() < 1e-6, "{photo} {name}: sum {sum} vs {gold_sum}");
            assert!(
                (sum_sq - gold_sq).abs() < 1e-6,
                "{photo} {name}: sum of squares {sum_sq} vs {gold_sq}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn flip_mirrors_columns_and_needs_a_random_flip_transform() {
    let image = synthetic(40, 30, 3);
    let size = (30, 40); // no resize: the flip alone
    let plain = Transform::resize(size).apply(&image, false);
    let flipped = Transform::resize_flip(size).apply(&image, true);
    assert_ne!(plain, flipped);
    for c in 0..3 {
        for y in 0..30 {
            for x in 0..40 {
                let at = |x: usize| c * 1200 + y * 40 + x;
                assert_eq!(flipped[at(x)], plain[at(39 - x)]);
            }
        }
    }
    // The coin is ignored by a transform without RandomHorizontalFlip, and tails flip nothing.
    assert_eq!(Transform::resize(size).apply(&image, true), plain);
    assert_eq!(Transform::resize_flip(size).apply(&image, false), plain);
}

#[test]
fn dataset_types_have_the_original_transforms() {
    use DatasetType::*;
    for t in DatasetType::ALL {
        assert_eq!(DatasetType::from_name(t.name()), Some(t));
    }
    assert_eq!(DatasetType::from_name("celeba_encode"), None);
    let faces = FfhqHypernet.transforms();
    assert_eq!(faces.target_train, Transform::resize_flip((256, 256)));
    assert_eq!(faces.source, None);
    assert_eq!(faces.test, Transform::resize((256, 256)));
    assert_eq!(AfhqWildHypernet.transforms(), faces);
    assert_eq!(AfhqWildHypernet.domain(), Domain::Wild);
    let cars = CarsHypernet.transforms();
    assert_eq!(cars, DatasetTransforms::encode(Domain::Cars));
    assert_eq!(cars.target_train, Transform::resize_flip((192, 256)));
    assert_eq!(cars.test, Transform::resize((192, 256)));
    let pre = FfhqHypernetPreExtract.transforms();
    assert!(FfhqHypernetPreExtract.pre_extracted() && !FfhqHypernet.pre_extracted());
    assert_eq!(pre.source, Some(Transform::resize((256, 256))));
    assert!(!pre.target_train.random_flip && !pre.test.random_flip);
}

#[test]
fn listing_follows_make_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let image = synthetic(20, 20, 0);
    for name in [
        "b.png", "a.JPG", "c.jpeg", "Z.png", "10.png", "9.png", "e.tiff", "g.bmp", "h.PPM",
    ] {
        write_png(&dir.path().join(name), &image);
    }
    // Not images by the original's rule: other endings, upper-case TIFF, `.tif`, `.webp`, no
    // ending; sub-folders are not entered.
    for name in ["d.txt", "f.TIFF", "f.tif", "k.webp", "png"] {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    write_png(&dir.path().join("sub/inner.png"), &image);
    let names: Vec<String> = list_images(dir.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // Byte order, as Python sorts strings: digits, then upper case, then lower case.
    assert_eq!(
        names,
        ["10.png", "9.png", "Z.png", "a.JPG", "b.png", "c.jpeg", "e.tiff", "g.bmp", "h.PPM"]
    );
}

#[test]
fn images_dataset_pairs_by_index() {
    let root = tempfile::tempdir().unwrap();
    let sources = image_folder(root.path(), "sources", 4);
    let targets = image_folder(root.path(), "targets", 4);
    let size = (24, 32);
    // No source transform (the original's training setting): the source is the target itself,
    // flipped with it.
    let dataset = ImagesDataset::new(&sources, &targets, Transform::resize_flip(size), None).unwrap();
    assert_eq!(dataset.len(), 4);
    assert_eq!(dataset.source_shape(), [3, 24, 32]);
    assert_eq!(dataset.latent_shape(), None);
    let sample = dataset.sample(2, true).unwrap();
    assert_eq!(sample.index, 2);
    assert_eq!(sample.source, sample.target);
    let expected = Transform::resize_flip(size).apply(&load_image(targets.join("img_02.png")).unwrap(), true);
    assert_eq!(sample.target, expected);
    assert_eq!(sample.latent, None);
    // With a source transform, each side comes from its own folder (here the same files).
    let dataset = ImagesDataset::new(
        &sources,
        &targets,
        Transform::resize_flip(size),
        Some(Transform::resize(size)),
    )
    .unwrap();
    let sample = dataset.sample(1, true).unwrap();
    assert_eq!(
        sample.source,
        Transform::resize(size).apply(&synthetic(40, 30, 1), false)
    );
    assert_eq!(
        sample.target,
        Transform::resize_flip(size).apply(&synthetic(40, 30, 1), true)
    );
    assert!(matches!(
        dataset.sample(4, false),
        Err(DataError::OutOfRange { index: 4, len: 4 })
    ));
}

#[test]
fn images_dataset_errors_are_typed() {
    let root = tempfile::tempdir().unwrap();
    let four = image_folder(root.path(), "four", 4);
    let three = image_folder(root.path(), "three", 3);
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"no images").unwrap();
    let t = Transform::resize((16, 16));
    match ImagesDataset::new(&four, &three, t, None) {
        Err(
            e @ DataError::CountMismatch {
                sources: 4, targets: 3, ..
            },
        ) => println!("{e}"),
        other => panic!("expected CountMismatch, got {other:?}"),
    }
    match ImagesDataset::new(&empty, &empty, t, None) {
        Err(e @ DataError::Empty { .. }) => println!("{e}"),
        other => panic!("expected Empty, got {other:?}"),
    }
    match ImagesDataset::new(root.path().join("missing"), &four, t, None) {
        Err(e @ DataError::NotAFolder { .. }) => println!("{e}"),
        other => panic!("expected NotAFolder, got {other:?}"),
    }
    // An unreadable image is an error when its sample is loaded, naming the file.
    let broken = image_folder(root.path(), "broken", 2);
    std::fs::write(broken.join("img_01.png"), b"not a png").unwrap();
    let dataset = ImagesDataset::new(&broken, &broken, t, None).unwrap();
    assert!(dataset.sample(0, false).is_ok());
    match dataset.sample(1, false) {
        Err(e @ DataError::Image(_)) => {
            println!("{e}");
            assert!(e.to_string().contains("img_01.png"), "{e}");
        }
        other => panic!("expected Image, got {other:?}"),
    }
}

/// Targets `target_{k}.png`, inversions `00001.png`…, and a latents file with entry `k` set to
/// `latent(k)` (`None`: left out).
fn pre_extracted(root: &Path, n: usize, latent: impl Fn(usize) -> Option<Vec<f32>>) -> (PathBuf, PathBuf, PathBuf) {
    let (targets, inversions) = (root.join("targets"), root.join("inversions"));
    std::fs::create_dir_all(&targets).unwrap();
    std::fs::create_dir_all(&inversions).unwrap();
    let mut codes = Vec::new();
    for k in 0..n {
        write_png(&targets.join(format!("target_{k}.png")), &synthetic(40, 30, k as u8));
        write_png(&inversions.join(inversion_name(k)), &synthetic(32, 32, 100 + k as u8));
        if let Some(code) = latent(k) {
            codes.push((inversion_name(k), code));
        }
    }
    let latents = root.join("latents.safetensors");
    write_latents(&latents, &codes).unwrap();
    (inversions, targets, latents)
}

#[test]
fn latents_dataset_reads_inversions_and_codes() {
    let root = tempfile::tempdir().unwrap();
    let full = |k: usize| {
        (0..DEFAULT_N_STYLES * LATENT_DIM)
            .map(|i| (k * 10_000 + i) as f32)
            .collect()
    };
    // Entry 1 is a single W vector: repeated to 18 rows, as the original does.
    let latent = |k: usize| Some(if k == 1 { vec![0.25; LATENT_DIM] } else { full(k) });
    let (inversions, targets, latents) = pre_extracted(root.path(), 3, latent);
    assert_eq!(inversion_name(0), "00001.png");
    assert_eq!(inversion_name(41), "00042.png");
    let t = DatasetType::FfhqHypernetPreExtract.transforms();
    let dataset = LatentsImagesDataset::new(
        &inversions,
        &targets,
        &latents,
        DEFAULT_N_STYLES,
        t.target_train,
        t.source,
    )
    .unwrap();
    assert_eq!(dataset.len(), 3);
    assert_eq!(dataset.latent_shape(), Some([18, 512]));
    let sample = dataset.sample(2, true).unwrap();
    let plain = Transform::resize((256, 256));
    assert_eq!(sample.source, plain.apply(&synthetic(32, 32, 102), false));
    assert_eq!(sample.target, plain.apply(&synthetic(40, 30, 2), false));
    assert_eq!(sample.latent, Some(full(2)));
    assert_eq!(dataset.latent(1).unwrap(), vec![0.25; 18 * 512]);
}

#[test]
fn the_originals_latents_file_converts_and_loads() {
    use hyperstyle::torch_file::{write_checkpoint, Entry, Tensor};
    use weights_convert::{convert_file, ConvertOptions};
    let root = tempfile::tempdir().unwrap();
    let (inversions, targets, _) = pre_extracted(root.path(), 2, |_| None);
    // As the original's pre-extraction saves them: `torch.save({name: code})`, W+ codes and a
    // single W vector.
    let wplus: Vec<f32> = (0..DEFAULT_N_STYLES * LATENT_DIM).map(|i| i as f32 * 0.5).collect();
    let w: Vec<f32> = (0..LATENT_DIM).map(|i| -(i as f32)).collect();
    let (wplus_shape, w_shape) = ([DEFAULT_N_STYLES, LATENT_DIM], [LATENT_DIM]);
    let pt = root.path().join("latents.pt");
    let entries = [
        (inversion_name(0), Entry::Tensor(Tensor::new(&wplus_shape, &wplus))),
        (inversion_name(1), Entry::Tensor(Tensor::new(&w_shape, &w))),
    ];
    write_checkpoint(&pt, &entries).unwrap();
    let converted = root.path().join("latents.safetensors");
    convert_file(&pt, &converted, &ConvertOptions::default()).unwrap();
    let t = Transform::resize((16, 16));
    let dataset = LatentsImagesDataset::new(&inversions, &targets, &converted, DEFAULT_N_STYLES, t, Some(t)).unwrap();
    assert_eq!(dataset.latent(0).unwrap(), wplus);
    assert_eq!(dataset.latent(1).unwrap(), w.repeat(DEFAULT_N_STYLES));

    // A converted checkpoint of another kind (GANSpace data) is refused by its kind.
    let (mean, comp, std) = (vec![0.0f32; 512], vec![1.0f32; 512], vec![1.0f32]);
    let other = [
        ("mean".to_string(), Entry::Tensor(Tensor::new(&[1, 512], &mean))),
        ("comp".to_string(), Entry::Tensor(Tensor::new(&[1, 1, 512], &comp))),
        ("std".to_string(), Entry::Tensor(Tensor::new(&[1], &std))),
    ];
    write_checkpoint(&pt, &other).unwrap();
    convert_file(&pt, &converted, &ConvertOptions::default()).unwrap();
    match LatentsImagesDataset::new(&inversions, &targets, &converted, DEFAULT_N_STYLES, t, Some(t)) {
        Err(e @ DataError::Latents { .. }) => assert!(e.to_string().contains("`ganspace`"), "{e}"),
        other => panic!("expected Latents, got {other:?}"),
    }
}

#[test]
fn latents_dataset_errors_are_typed() {
    let t = Transform::resize((16, 16));
    let open = |(inversions, targets, latents): &(PathBuf, PathBuf, PathBuf)| {
        LatentsImagesDataset::new(inversions, targets, latents, DEFAULT_N_STYLES, t, Some(t))
    };
    // A target without a latent code.
    let root = tempfile::tempdir().unwrap();
    let paths = pre_extracted(root.path(), 3, |k| (k != 1).then(|| vec![0.0; LATENT_DIM]));
    match open(&paths) {
        Err(e @ DataError::MissingLatent { .. }) => {
            println!("{e}");
            assert!(e.to_string().contains("00002.png"), "{e}");
        }
        other => panic!("expected MissingLatent, got {other:?}"),
    }
    // A code of another shape.
    let root = tempfile::tempdir().unwrap();
    let paths = pre_extracted(root.path(), 2, |k| Some(vec![0.0; if k == 0 { 16 * 512 } else { 512 }]));
    match open(&paths) {
        Err(e @ DataError::LatentShape { .. }) => println!("{e}"),
        other => panic!("expected LatentShape, got {other:?}"),
    }
    // More targets than inversions.
    let root = tempfile::tempdir().unwrap();
    let paths = pre_extracted(root.path(), 2, |_| Some(vec![0.0; LATENT_DIM]));
    std::fs::remove_file(paths.0.join("00002.png")).unwrap();
    match open(&paths) {
        Err(e @ DataError::MissingInversion { index: 1, .. }) => println!("{e}"),
        other => panic!("expected MissingInversion, got {other:?}"),
    }
    // A latents file that is not safetensors.
    std::fs::write(&paths.2, b"\x80\x02}q\x00.").unwrap();
    match open(&paths) {
        Err(e @ DataError::Latents { .. }) => println!("{e}"),
        other => panic!("expected Latents, got {other:?}"),
    }
}

#[test]
fn loader_shuffles_deterministically_and_resumes() {
    let root = tempfile::tempdir().unwrap();
    let folder = image_folder(root.path(), "images", 10);
    let size = (16, 16);
    let dataset = || ImagesDataset::new(&folder, &folder, Transform::resize_flip(size), None).unwrap();
    let loader = DataLoader::new(dataset(), LoaderConfig::train(3, 7)).unwrap();
    // 10 samples in batches of 3, the last one dropped.
    assert_eq!(loader.batches_per_epoch(), 3);
    assert_eq!(loader.position(7), Position { epoch: 2, batch: 1 });
    for epoch in 0..4 {
        let order = loader.order(epoch);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "a permutation");
    }
    // Each epoch has its own order; the same seed gives the same orders in another run, another
    // seed other orders.
    assert_ne!(loader.order(0), loader.order(1));
    assert_ne!(loader.order(0), (0..10).collect::<Vec<_>>());
    let again = DataLoader::new(dataset(), LoaderConfig::train(3, 7)).unwrap();
    let other_seed = DataLoader::new(dataset(), LoaderConfig::train(3, 8)).unwrap();
    for epoch in 0..3 {
        assert_eq!(loader.order(epoch), again.order(epoch));
    }
    assert_ne!(loader.order(0), other_seed.order(0));
    // Pinned values: the order of the first epoch for seed 7 must not change between versions,
    // or resumed runs would see other data.
    assert_eq!(loader.order(0), [6, 9, 4, 5, 7, 0, 3, 2, 8, 1]);

    // Batches: the epoch's order cut in threes; the sources are the (flipped) targets.
    let batches: Vec<_> = loader.epoch(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 3);
    let order = loader.order(0);
    for (b, batch) in batches.iter().enumerate() {
        assert_eq!(batch.indices, order[b * 3..b * 3 + 3]);
        assert_eq!(batch.position, Position { epoch: 0, batch: b });
        assert_eq!(batch.source_shape, [3, 3, 16, 16]);
        assert_eq!(batch.sources.len(), 3 * 3 * 256);
        assert_eq!(batch.sources, batch.targets);
        for (slot, &index) in batch.indices.iter().enumerate() {
            let expected = Transform::resize_flip(size).apply(&synthetic(40, 30, index as u8), loader.flip(0, index));
            assert_eq!(batch.targets[slot * 768..(slot + 1) * 768], expected[..]);
        }
    }
    // Resuming at global step 4 gives what an uninterrupted run loads at step 4, and the stream
    // runs on into the next epochs; another run with the same seed loads the same bytes.
    let resumed: Vec<_> = loader.stream(4).take(4).collect();
    assert_eq!(resumed[0].0, 4);
    assert_eq!(
        resumed[0].1.as_ref().unwrap(),
        &loader.batch(Position { epoch: 1, batch: 1 }).unwrap()
    );
    assert_eq!(resumed[3].1.as_ref().unwrap().position, Position { epoch: 2, batch: 1 });
    assert_eq!(
        again.batch(loader.position(5)).unwrap(),
        *resumed[1].1.as_ref().unwrap()
    );
    // One worker or several: the same batch.
    let mut serial = LoaderConfig::train(3, 7);
    serial.workers = 1;
    let serial = DataLoader::new(dataset(), serial).unwrap();
    assert_eq!(
        serial.batch(Position { epoch: 3, batch: 2 }).unwrap(),
        loader.batch(Position { epoch: 3, batch: 2 }).unwrap()
    );

    // The flips: a fair coin per (epoch, sample), not the same for every epoch.
    let big = DataLoader::new(dataset(), LoaderConfig::train(1, 7)).unwrap();
    let flips = (0..2000).filter(|&i| big.flip(0, i)).count();
    assert!((900..1100).contains(&flips), "{flips} heads in 2000");
    let per_epoch: HashSet<Vec<bool>> = (0..5).map(|e| (0..10).map(|i| big.flip(e, i)).collect()).collect();
    assert!(per_epoch.len() > 1);
}

#[test]
fn loader_without_shuffle_or_drop_last() {
    let root = tempfile::tempdir().unwrap();
    let folder = image_folder(root.path(), "images", 5);
    let dataset = || ImagesDataset::new(&folder, &folder, Transform::resize((8, 8)), None).unwrap();
    let keep_last = LoaderConfig {
        drop_last: false,
        ..LoaderConfig::test(2)
    };
    let loader = DataLoader::new(dataset(), keep_last).unwrap();
    assert_eq!(loader.batches_per_epoch(), 3);
    let indices: Vec<Vec<usize>> = loader.epoch(0).map(|b| b.unwrap().indices).collect();
    assert_eq!(indices, [vec![0, 1], vec![2, 3], vec![4]]);
    let last = loader.batch(Position { epoch: 0, batch: 2 }).unwrap();
    assert_eq!(last.source_shape, [1, 3, 8, 8]);
    let tensors = last.to_tensors::<hyperstyle::backend::DefaultBackend>(&Default::default());
    assert_eq!(tensors.targets.dims(), [1, 3, 8, 8]);
    assert!(tensors.latents.is_none());
    // The test loader: index order, last batch dropped.
    let test = DataLoader::new(dataset(), LoaderConfig::test(2)).unwrap();
    assert_eq!(test.order(3), (0..5).collect::<Vec<_>>());
    assert_eq!(test.batches_per_epoch(), 2);
    assert!(matches!(
        test.batch(Position { epoch: 0, batch: 2 }),
        Err(DataError::OutOfRange { index: 2, len: 2 })
    ));
    // Settings that give no batch.
    assert!(matches!(
        DataLoader::new(dataset(), LoaderConfig::test(0)),
        Err(DataError::Config(_))
    ));
    match DataLoader::new(dataset(), LoaderConfig::train(6, 0)) {
        Err(e @ DataError::Config(_)) => println!("{e}"),
        other => panic!("expected Config, got {:?}", other.err()),
    }
}

#[test]
fn loader_batches_latents() {
    let root = tempfile::tempdir().unwrap();
    let code = |k: usize| Some((0..LATENT_DIM).map(|i| (k * 1000 + i) as f32).collect());
    let (inversions, targets, latents) = pre_extracted(root.path(), 4, code);
    let t = Transform::resize((16, 16));
    let dataset = LatentsImagesDataset::new(&inversions, &targets, &latents, 18, t, Some(t)).unwrap();
    let loader = DataLoader::new(dataset, LoaderConfig::train(2, 1)).unwrap();
    let batch = loader.batch(Position { epoch: 0, batch: 1 }).unwrap();
    assert_eq!(batch.latent_shape, Some([2, 18, 512]));
    let values = batch.latents.as_ref().unwrap();
    for (slot, &index) in batch.indices.iter().enumerate() {
        let row = |r: usize| &values[(slot * 18 + r) * 512..(slot * 18 + r + 1) * 512];
        assert_eq!(row(0), &code(index).unwrap()[..]);
        assert_eq!(row(17), row(0));
    }
    let tensors = batch.to_tensors::<hyperstyle::backend::DefaultBackend>(&Default::default());
    assert_eq!(tensors.latents.unwrap().dims(), [2, 18, 512]);
    assert_eq!(tensors.sources.dims(), [2, 3, 16, 16]);
}

#[test]
fn demo_inversions_load_as_a_latents_dataset() {
    use hyperstyle::backend::DefaultBackend as B;
    use hyperstyle::training::extract::extract_inversions;
    let device = Default::default();
    let demo = hyperstyle::demo::Demo::load("ffhq256").unwrap();
    let model = demo.hyperstyle::<B>(&device).unwrap();
    // The two photos of the demo's upstream run, as a target folder.
    let root = tempfile::tempdir().unwrap();
    let targets = root.path().join("targets");
    let inversions = root.path().join("inversions");
    std::fs::create_dir_all(&targets).unwrap();
    std::fs::create_dir_all(&inversions).unwrap();
    for k in 0..2 {
        let name = format!("ffhq256_input{k}.png");
        std::fs::copy(fixtures().join("images").join(&name), targets.join(&name)).unwrap();
    }
    let files = list_images(&targets).unwrap();
    let photos: Vec<RgbImage> = files.iter().map(|f| load_image(f).unwrap()).collect();
    let extracted = extract_inversions(&model, &photos, 0, &device).unwrap();
    // The codes and images are upstream's initial inversion (the invert example's W step).
    for b in 0..2 {
        let codes = demo
            .compare("w_codes", b, &extracted.codes.clone().narrow(0, b, 1))
            .unwrap();
        let pooled = demo
            .compare("w_inversion_pooled", b, &extracted.pooled.clone().narrow(0, b, 1))
            .unwrap();
        println!(
            "sample {b}: W+ codes max-abs {:.2e}, W inversion max-abs {:.2e}",
            codes.max_abs, pooled.max_abs
        );
        // The bounds tests/end_to_end_parity.rs holds codes and images to (4× and 5× upstream's
        // float32 noise floor); measured 1.2e-7 and 2.1e-5.
        assert!(codes.max_abs < 5e-7, "W+ codes: {codes:?}");
        assert!(pooled.max_abs < 2.25e-4, "W inversion: {pooled:?}");
    }
    let mut codes = Vec::new();
    for inversion in &extracted.inversions {
        hyperstyle::io::save_image(&inversion.image, inversions.join(&inversion.name)).unwrap();
        codes.push((inversion.name.clone(), inversion.latent.clone()));
    }
    assert_eq!(codes[1].0, "00002.png");
    let latents = root.path().join("latents.safetensors");
    write_latents(&latents, &codes).unwrap();

    let n_styles = model.config().n_styles();
    let t = DatasetType::FfhqHypernetPreExtract.transforms();
    let dataset =
        LatentsImagesDataset::new(&inversions, &targets, &latents, n_styles, t.target_train, t.source).unwrap();
    for (k, inversion) in extracted.inversions.iter().enumerate() {
        let sample = dataset.sample(k, true).unwrap();
        assert_eq!(sample.latent.as_ref(), Some(&inversion.latent));
        assert_eq!(
            sample.source,
            Transform::resize((256, 256)).apply(&inversion.image, false)
        );
        assert_eq!(sample.target, Transform::resize((256, 256)).apply(&photos[k], false));
    }
}
