//! Shared by the end-to-end parity tests: the fixture's HyperStyle model and the checks of an
//! inversion against the upstream goldens, in float32 and in half precision.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use hyperstyle::backend::{self, set_precision, Precision};
use hyperstyle::{HyperStyle, HyperStyleConfig, Inversion};
use hyperstyle_testing::{assert_close, check_all_delta_stats, error_stats, hyperstyle_stores, to_vec, Fixture};

/// The parity suite runs on the fastest enabled backend (the CPU unless `--features wgpu` or `cuda`).
pub type B = backend::DefaultBackend;

// Float32 noise floor (upstream's f32 run against its f64 run, ffhq256): w_codes 1.2e-7 max-abs /
// 8.3e-9 mean-abs; images 4.7e-5 / 6.2e-6. Unlike the per-network tests, errors here compound
// through the W encoder and every step (our rounding feeds our next step), as in upstream's
// own f32-vs-f64 comparison, so we allow 5× the floor on every quantity.
const CODES: (f64, f64) = (6e-7, 5e-8);
const IMAGES: (f64, f64) = (2.5e-4, 3e-5);

/// The fixture's HyperStyle model (pattern weights rebuilt from the manifest).
pub fn fixture_model(fixture: &Fixture) -> HyperStyle<B> {
    fixture_model_on::<B>(fixture)
}

/// [`fixture_model`] on backend `Bk`.
pub fn fixture_model_on<Bk: burn::tensor::backend::Backend>(fixture: &Fixture) -> HyperStyle<Bk> {
    // The manifest's meta holds upstream's opts fields (dataset_type, output_size, layers_to_tune).
    let config = HyperStyleConfig::from_opts(&fixture.manifest.meta).unwrap();
    let (model, w_encoder) = hyperstyle_stores(&fixture.manifest);
    HyperStyle::<Bk>::builder()
        .model_weights(model)
        .w_encoder_weights(w_encoder)
        .config(config)
        .load(&Default::default())
        .unwrap()
}

/// Checks an inversion of golden `input` against every golden the fixture has for it: `w_codes`,
/// the W inversion, every step's pooled image, the last step at full resolution (subsampled) and
/// the accumulated offsets' statistics.
pub fn check_inversion<Bk: burn::tensor::backend::Backend>(name: &str, fixture: &Fixture, inversion: &Inversion<Bk>) {
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

// Half precision: the weights and every intermediate are rounded to the half type, so the error
// against upstream's float32 goldens is proportional to the type's unit roundoff u (2^-11 for
// f16, 2^-8 for bf16) times the scale of the values. Measured (flex CPU, ffhq256, 3 steps), as
// multiples of u·max|golden| of each quantity: f16 codes 1.00 max-abs / 0.24 mean-abs, images
// ≤ 12.9 / 1.45; bf16 codes 1.04 / 0.24, images ≤ 10.8 / 1.44. The two types give the same
// constants although their u differ 8×, as the model says. The bounds are twice the largest
// constant, shared by both types.
const HALF_CODES: (f64, f64) = (2.0, 0.5);
const HALF_IMAGES: (f64, f64) = (26.0, 2.9);

/// Inverts the ffhq256 golden `input` with every tensor in `precision` (set before loading) and
/// checks the codes, the W inversion and every step's pooled image against the float32
/// goldens within the bounds above; prints the errors.
pub fn check_half_precision_inversion(precision: Precision) {
    let device = Default::default();
    set_precision::<B>(&device, precision).unwrap();
    let fixture = Fixture::load("ffhq256");
    let model = fixture_model(&fixture);
    let input = fixture.golden.tensor::<B, 4>("input", &device);
    let inversion = model
        .invert(input, fixture.manifest.meta_usize("n_iters").unwrap())
        .unwrap();
    assert_eq!(backend::precision::<B>(&device), Some(precision));
    // The device's precision is fixed now: asking again for it is fine, for another is an error.
    set_precision::<B>(&device, precision).unwrap();
    let err = set_precision::<B>(&device, Precision::F32).unwrap_err();
    assert!(
        matches!(
            err,
            hyperstyle::Error::Precision {
                precision: Precision::F32,
                ..
            }
        ),
        "{err}"
    );
    let mut checks = vec![
        ("w_codes".to_string(), to_vec(inversion.latents.clone()).1, HALF_CODES),
        (
            "w_inversion_pooled".to_string(),
            to_vec(inversion.w_inversion.clone()).1,
            HALF_IMAGES,
        ),
    ];
    for (i, step) in inversion.steps.iter().enumerate() {
        checks.push((
            format!("iter{i}_image_pooled"),
            to_vec(step.pooled.clone()).1,
            HALF_IMAGES,
        ));
    }
    let u = precision.unit_roundoff();
    for (key, actual, (max_k, mean_k)) in checks {
        let stats = error_stats(&actual, fixture.golden.get(&key).1);
        let scale = u * stats.max_expected;
        println!(
            "{precision} {key}: {stats} = {:.2} / {:.2} u·max|golden|",
            stats.max_abs / scale,
            stats.mean_abs / scale
        );
        assert!(
            stats.max_abs <= max_k * scale && stats.mean_abs <= mean_k * scale,
            "{precision} {key}: {stats} exceeds {max_k} / {mean_k} u·max|golden| = {:.3e} / {:.3e}",
            max_k * scale,
            mean_k * scale
        );
    }
}
