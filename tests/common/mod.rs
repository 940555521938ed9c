//! Shared by the end-to-end parity tests: the fixture's HyperStyle model and the checks of an
//! inversion against the upstream goldens.

use hyperstyle::backend;
use hyperstyle::{Domain, HyperStyle, HyperStyleConfig, Inversion};
use hyperstyle_testing::{assert_close, check_all_delta_stats, pattern_store, Fixture};

/// The parity suite runs on the fastest enabled backend (the CPU unless `--features wgpu` or `cuda`).
pub type B = backend::Default;

// Float32 noise floor (upstream's f32 run against its f64 run, ffhq256): w_codes 1.2e-7 max-abs /
// 8.3e-9 mean-abs; images 4.7e-5 / 6.2e-6. Unlike the per-network tests, errors here compound
// through the W encoder and every step (our rounding feeds our next step), as in upstream's
// own f32-vs-f64 comparison, so we allow 5× the floor on every quantity.
const CODES: (f64, f64) = (6e-7, 5e-8);
const IMAGES: (f64, f64) = (2.5e-4, 3e-5);

/// The fixture's HyperStyle model (pattern weights rebuilt from the manifest).
pub fn fixture_model(fixture: &Fixture) -> HyperStyle<B> {
    let meta = &fixture.manifest.meta;
    let model = pattern_store(
        fixture.manifest.checkpoint("hyperstyle"),
        &["hypernet.", "decoder.", "latent_avg"],
    );
    let w_encoder = pattern_store(fixture.manifest.checkpoint("w_encoder"), &["encoder."]);
    let config = HyperStyleConfig {
        domain: Domain::from_dataset_type(meta["dataset_type"].as_str().unwrap()),
        output_size: fixture.manifest.meta_usize("output_size"),
        layers_to_tune: meta["layers_to_tune"].as_str().unwrap().into(),
        encoder_type: "SharedWeightsHyperNetResNet".into(),
    };
    HyperStyle::load(&model, &w_encoder, Some(config), &Default::default()).unwrap()
}

/// Checks an inversion of golden `input` against every golden the fixture has for it: `w_codes`,
/// the W inversion, every step's pooled image, the last step at full resolution (subsampled) and
/// the accumulated offsets' statistics.
pub fn check_inversion(name: &str, fixture: &Fixture, inversion: &Inversion<B>) {
    let golden = &fixture.golden;
    let n_iters = inversion.steps.len();
    assert_close(
        &format!("{name} w_codes"),
        inversion.latents.clone(),
        golden.get("w_codes"),
        CODES.0,
        CODES.1,
    );
    let (max, mean) = IMAGES;
    assert_close(
        &format!("{name} w_inversion_pooled"),
        inversion.w_inversion.clone(),
        golden.get("w_inversion_pooled"),
        max,
        mean,
    );
    for (i, step) in inversion.steps.iter().enumerate() {
        let key = format!("iter{i}_image_pooled");
        assert_close(
            &format!("{name} {key}"),
            step.pooled.clone(),
            golden.get(&key),
            max,
            mean,
        );
    }
    // The last step at full resolution, subsampled: every k-th row and column.
    let last = n_iters - 1;
    let full = &inversion.steps[last].image;
    let (key, k) = [2usize, 4]
        .iter()
        .map(|k| (format!("iter{last}_image_full_sub{k}"), *k))
        .find(|(key, _)| golden.contains(key))
        .unwrap_or_else(|| (format!("iter{last}_image_pooled"), 1));
    let [b, c, h, w] = full.dims();
    let sub = full
        .clone()
        .reshape([b, c, h / k, k, w / k, k])
        .narrow(3, 0, 1)
        .narrow(5, 0, 1)
        .reshape([b, c, h / k, w / k]);
    assert_close(&format!("{name} {key}"), sub, golden.get(&key), max, mean);
    check_all_delta_stats(golden, "", &inversion.offsets);
}
