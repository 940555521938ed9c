//! One refinement step without the encoder, against the upstream goldens: golden `input` and the
//! golden reconstruction → hypernetwork → offsets (accumulated over steps) → generator(`w_codes`)
//! → pooled image must equal `iter{i}_image_pooled`; the offsets must match the golden delta
//! statistics after step 0 and after the last step.

use hyperstyle::backend;
use hyperstyle::hypernet::{HypernetConfig, Hypernetwork};
use hyperstyle::image_ops::{crop_rows, pool};
use hyperstyle::stylegan2::{Generator, GeneratorConfig, Noise, WeightOffsets};
use hyperstyle_testing::{assert_close, check_all_delta_stats, pattern_store, Fixture};

/// The parity suite runs on the fastest enabled backend (the CPU unless `--features wgpu` or `cuda`).
type B = backend::DefaultBackend;

// Images: upstream's own float32 run differs from its float64 run on `iter{i}_image_pooled`
// (ffhq256) by up to 4.7e-5 max-abs and 6.2e-6 mean-abs (values up to ±16): the float32 noise
// floor. Each step here starts from upstream's float32 reconstruction, so our error is our
// rounding against theirs; we allow 5× the floor.
const IMAGE_MAX_ABS: f64 = 2.5e-4;
const IMAGE_MEAN_ABS: f64 = 3e-5;
fn hypernet_parity(config: &str) {
    let device = Default::default();
    let fixture = Fixture::load(config);
    let meta = &fixture.manifest.meta;
    let size = fixture.manifest.meta_usize("output_size").unwrap();
    let n_iters = fixture.manifest.meta_usize("n_iters").unwrap();
    let cars = meta["dataset_type"].as_str().unwrap().contains("cars");
    let checkpoint = fixture.manifest.checkpoint("hyperstyle").unwrap();
    let store = pattern_store(checkpoint, &["hypernet.", "decoder."]);
    let hn_config = HypernetConfig::new(GeneratorConfig::new(size))
        .with_layers_to_tune(meta["layers_to_tune"].as_str().unwrap().parse().unwrap());
    let hypernet = Hypernetwork::<B>::load(&store.scope("hypernet."), &hn_config, &device).unwrap();
    let generator = Generator::<B>::load(&store.scope("decoder."), &GeneratorConfig::new(size), &device).unwrap();
    let golden = &fixture.golden;
    let input = golden.tensor::<B, 4>("input", &device);
    let w_codes = golden.tensor::<B, 3>("w_codes", &device);
    // Step 0 sees the W inversion, pooled to 256 (cars: rows 32..224 of it).
    let w_inversion = golden.tensor::<B, 4>("w_inversion_pooled", &device);
    let mut reconstruction = if cars {
        crop_rows(w_inversion, 32, 224)
    } else {
        w_inversion
    };
    let mut accumulated: Option<WeightOffsets<B>> = None;
    for step in 0..n_iters {
        let offsets = hypernet.forward(input.clone(), reconstruction).unwrap();
        if step == 0 {
            check_all_delta_stats(golden, "_step0", &offsets);
        }
        accumulated = Some(match accumulated {
            Some(sum) => sum.accumulate(offsets).unwrap(),
            None => offsets,
        });
        let image = generator
            .synthesis(w_codes.clone(), &Noise::Stored, accumulated.as_ref())
            .unwrap();
        let pooled = if cars {
            pool(crop_rows(image, 64, 448), 192, 256)
        } else {
            pool(image, 256, 256)
        };
        let name = format!("iter{step}_image_pooled");
        assert_close(
            &format!("{config} {name}"),
            pooled,
            golden.get(&name),
            IMAGE_MAX_ABS,
            IMAGE_MEAN_ABS,
        );
        // The next step starts from upstream's own reconstruction.
        reconstruction = golden.tensor::<B, 4>(&name, &device);
    }
    check_all_delta_stats(golden, "", &accumulated.unwrap());
}

#[test]
fn ffhq256_batch2() {
    hypernet_parity("ffhq256");
}

#[test]
fn cars512() {
    hypernet_parity("cars512");
}

#[test]
fn ffhq1024() {
    hypernet_parity("ffhq1024");
}
