//! Photo to edits, end to end, against the upstream goldens. One HyperStyle inversion of golden
//! `input` per fixture configuration (the expensive part) is checked against every inversion
//! golden (`w_codes`, the W inversion, every step's image, the last full-resolution image, the
//! offsets' statistics), then feeds the edits that upstream rendered from it: InterFaceGAN
//! (`edit_*_pooled`), GANSpace (`ganspace_*_pooled`, cars) and, at 1024, ReStyle-e4e
//! (`restyle_codes`) and domain adaptation (`domain_adapted_pooled`).

mod common;

use burn::prelude::*;
use common::B;
use hyperstyle::animation::Keyframe;
use hyperstyle::core::checkpoint::BARE_TENSOR_KEY;
use hyperstyle::core::WeightStore;
use hyperstyle::domain_adaptation::{DomainAdapter, ReStyle, ADAPTED_LAYERS};
use hyperstyle::editing::{factor_range, Editor, GanSpace, GanSpaceEdit, InterFaceGanDirection, CARS_EDITS};
use hyperstyle::encoders::EncoderType;
use hyperstyle::image_ops::pool;
use hyperstyle::stylegan2::{Generator, GeneratorConfig, Noise, WeightOffsets};
use hyperstyle::{Domain, HyperStyle, Inversion, Stage};
use hyperstyle_testing::{assert_close, pattern_store, to_vec, Fixture};

// Float32 noise floor of edited images: upstream's f32 run against its f64 run on the ffhq256
// edits differs by 4.5e-5 max-abs and 5.3e-6 mean-abs (values up to ±16). The offsets come from
// our own inversion, so the errors of the W encoder and of every refinement step compound before
// the edit is rendered; we allow 5× the floor.
const IMAGES: (f64, f64) = (2.25e-4, 2.65e-5);
// ReStyle codes (values up to 1.8): no float64 run of ReStyle was recorded, so they are held to
// the W-code bounds of `encoder_parity.rs`: about 4× upstream's f32-vs-f64 floor on `w_codes`
// (1.2e-7 max-abs, one ulp at 1.8; 8.3e-9 mean-abs).
const CODES: (f64, f64) = (5e-7, 4e-8);
/// ReStyle iterations of the `restyle_codes` golden (tests/fixtures/README.md).
const RESTYLE_ITERS: usize = 2;

/// The fixture's HyperStyle model and its inversion of golden `input`, checked against every
/// inversion golden before the edits use it.
fn invert(name: &str, fixture: &Fixture) -> (HyperStyle<B>, Inversion<B>) {
    let model = common::fixture_model(fixture);
    let n_iters = fixture.manifest.meta_usize("n_iters").unwrap();
    let inversion = model
        .invert(fixture.golden.tensor("input", &Default::default()), n_iters)
        .unwrap();
    common::check_inversion(name, fixture, &inversion);
    (model, inversion)
}

/// Pattern tensors under the HyperStyle salt, as a store: `(key, pattern key, shape, mean, std)`.
fn pattern_file(fixture: &Fixture, tensors: &[(&str, &str, Vec<usize>, f64, f64)]) -> WeightStore {
    let checkpoint = fixture.manifest.checkpoint("hyperstyle").unwrap();
    WeightStore::from_tensors(tensors.iter().map(|(key, pattern_key, shape, mean, std)| {
        let values = checkpoint.extra_pattern(pattern_key, shape.iter().product(), *mean, *std);
        (key.to_string(), shape.clone(), values)
    }))
    .unwrap()
}

/// InterFaceGAN direction `direction/{name}`: mean 0, std 0.045; pose `(1, 18, 512)`, the others
/// `(1, 512)`; stored under `tensor` as `weights-convert` writes a bare tensor.
fn direction(fixture: &Fixture, name: &str) -> InterFaceGanDirection<B> {
    let shape = if name == "pose" { vec![1, 18, 512] } else { vec![1, 512] };
    let store = pattern_file(
        fixture,
        &[(BARE_TENSOR_KEY, &format!("direction/{name}"), shape, 0.0, 0.045)],
    );
    InterFaceGanDirection::load(&store, &Default::default()).unwrap()
}

/// `name` edited by `factor` for every sample, pooled to 256, against `edit_{name}_{factor}_pooled`.
fn check_interfacegan(
    config: &str,
    fixture: &Fixture,
    model: &HyperStyle<B>,
    inversion: &Inversion<B>,
    name: &str,
    factor: i32,
) {
    let edits = Editor::for_model(model)
        .interfacegan(
            inversion.latents.clone(),
            &inversion.offsets,
            &direction(fixture, name),
            &[factor as f32],
        )
        .unwrap();
    let edited = pool(Tensor::cat(edits, 0), 256, 256);
    let key = format!("edit_{name}_{factor:+}_pooled");
    assert_close(
        &format!("{config} {key}"),
        edited,
        fixture.golden.get(&key),
        IMAGES.0,
        IMAGES.1,
    );
}

#[test]
fn interfacegan_ffhq256_batch2() {
    let fixture = Fixture::load("ffhq256");
    let (model, inversion) = invert("ffhq256", &fixture);
    assert_eq!(inversion.latents.dims()[0], 2);
    check_interfacegan("ffhq256", &fixture, &model, &inversion, "age", 3);
    check_interfacegan("ffhq256", &fixture, &model, &inversion, "smile", -2);
}

/// Photos of any size go through `invert_images`: resized as upstream resizes them, they give the
/// golden codes and first step; zero steps and wrong sizes are errors, not panics.
#[test]
fn photos_invert_like_the_golden_input() {
    let fixture = Fixture::load("ffhq256");
    // A Burn module: it moves between devices like any other (here onto the same device).
    let model = common::fixture_model(&fixture).fork(&Default::default());
    let photos: Vec<_> = ["astronaut.png", "chelsea.png"]
        .iter()
        .map(|name| hyperstyle::io::load_image(hyperstyle_testing::fixtures_dir().join("images").join(name)).unwrap())
        .collect();
    let inversion = model.invert_images(&photos, 1).unwrap();
    // The resize is bit-exact (tests/image_input.rs), so the bounds are those of the golden
    // input's inversion (tests/common/mod.rs): 5× upstream's float32 noise floor.
    assert_close(
        "w_codes from photos",
        inversion.latents.clone(),
        fixture.golden.get("w_codes"),
        6e-7,
        5e-8,
    );
    assert_close(
        "step 0 from photos",
        inversion.last_step().pooled.clone(),
        fixture.golden.get("iter0_image_pooled"),
        2.5e-4,
        3e-5,
    );
    // Sample 1's tuned generator, exported: a plain generator that renders its latents without
    // offsets as the model does with them. Both are float32 evaluations of the same function
    // (the offsets folded into the weights once instead of per call); each lies within the
    // generator's float32 noise floor (upstream f32 vs f64: 1.8e-5 max-abs, 2.0e-6 mean-abs) of
    // the exact value, so they differ by at most twice that.
    let path = std::env::temp_dir().join(format!("hyperstyle-tuned-{}.safetensors", std::process::id()));
    model.export_tuned_generator(&inversion, 1, &path).unwrap();
    let tuned = Generator::<B>::from_file(&path, &GeneratorConfig::new(256), &Default::default()).unwrap();
    let latents = inversion.latents.clone().narrow(0, 1, 1);
    let (shape, expected) = to_vec(inversion.last_step().image.clone().narrow(0, 1, 1));
    let image = tuned.synthesis(latents, &Noise::Stored, None).unwrap();
    assert_close("exported tuned generator", image, (&shape, &expected), 3.6e-5, 4e-6);
    std::fs::remove_file(&path).unwrap();
    assert!(
        model.export_tuned_generator(&inversion, 2, &path).is_err(),
        "no sample 2"
    );

    // An animation from sample 0 to sample 1 starts and ends on the two inversions' images.
    let keys = [
        Keyframe::from_inversion(&inversion, 0).unwrap(),
        Keyframe::from_inversion(&inversion, 1).unwrap(),
    ];
    let frames = Keyframe::sequence(&keys, 4).unwrap();
    assert_eq!(frames.len(), 5);
    let editor = Editor::for_model(&model);
    for (frame, sample) in [(&frames[0], 0), (&frames[4], 1)] {
        let image = editor.render(frame.latents.clone(), Some(&frame.offsets)).unwrap();
        let (shape, expected) = to_vec(inversion.last_step().image.clone().narrow(0, sample, 1));
        // The same codes and offsets through the same per-sample kernels: equal up to the
        // order in which a batch of one and a batch of two are reduced, below the generator's
        // float32 floor (1.8e-5 max-abs, 2.0e-6 mean-abs). Measured 2.9e-6 / 2.1e-7.
        assert_close(
            &format!("animation end {sample}"),
            image,
            (&shape, &expected),
            1e-5,
            1e-6,
        );
    }
    assert!(Keyframe::sequence(&keys[..1], 4).is_err());
    assert!(Keyframe::from_inversion(&inversion, 2).is_err());

    // Timed per stage: the same computation, every stage reported once, in order.
    let input = fixture.golden.tensor::<B, 4>("input", &Default::default());
    let (timed, times) = model.invert_timed(input, 1).unwrap();
    let stages: Vec<Stage> = times.stages.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        stages,
        [
            Stage::WEncoder,
            Stage::WSynthesis,
            Stage::Hypernet(0),
            Stage::Synthesis(0)
        ]
    );
    assert_eq!(times.total(), times.sum(|_| true));
    assert_close(
        "timed inversion",
        timed.last_step().pooled.clone(),
        fixture.golden.get("iter0_image_pooled"),
        2.5e-4,
        3e-5,
    );
    assert!(model.invert_images(&photos, 0).unwrap_err().is_invalid_input());
    assert!(model.invert_images(&[], 1).unwrap_err().is_invalid_input());
    let wrong = Tensor::<B, 4>::zeros([1, 3, 128, 128], &Default::default());
    assert!(model.invert(wrong, 1).unwrap_err().is_invalid_input());
}

#[test]
fn ganspace_cars512() {
    let device = Default::default();
    let fixture = Fixture::load("cars512");
    let (model, inversion) = invert("cars512", &fixture);
    let store = pattern_file(
        &fixture,
        &[
            ("mean", "ganspace/mean", vec![1, 512], 0.0, 1.0),
            ("std", "ganspace/std", vec![80], 3.0, 0.5),
            ("comp", "ganspace/comp", vec![80, 1, 512], 0.0, 0.045),
        ],
    );
    let ganspace = GanSpace::<B>::load(&store, &device).unwrap();
    assert_eq!(ganspace.n_components(), 80);
    // All five edits of the one sample in one generator batch, as upstream renders them.
    let edits = Editor::for_model(&model)
        .ganspace(inversion.latents.clone(), &inversion.offsets, &ganspace, &CARS_EDITS)
        .unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0].dims(), [5, 3, 384, 512]);
    let (h, w) = Domain::Cars.input_size();
    for (k, edit) in CARS_EDITS.iter().enumerate() {
        let image = pool(edits[0].clone().narrow(0, k, 1), h, w);
        let key = format!("ganspace_{k}_pooled");
        assert_close(
            &format!("cars512 {key} ({})", edit.label),
            image,
            fixture.golden.get(&key),
            IMAGES.0,
            IMAGES.1,
        );
    }
}

/// AFHQ wild (512 generator, 256×256 input, no crop): the inversion, checked against every
/// inversion golden, and the domain the checkpoint's options name.
#[test]
fn afhq_wild512() {
    let fixture = Fixture::load("wild512");
    let (model, inversion) = invert("wild512", &fixture);
    assert_eq!(model.config().domain, Domain::Wild);
    assert_eq!(inversion.steps.last().unwrap().image.dims(), [1, 3, 512, 512]);
}

/// ffhq1024: the three InterFaceGAN edits, then ReStyle-e4e and domain adaptation, all from one
/// HyperStyle inversion.
#[test]
fn interfacegan_and_domain_adaptation_ffhq1024() {
    let device = Default::default();
    let fixture = Fixture::load("ffhq1024");
    let (model, inversion) = invert("ffhq1024", &fixture);
    for (name, factor) in [("age", 3), ("smile", -2), ("pose", 2)] {
        check_interfacegan("ffhq1024", &fixture, &model, &inversion, name, factor);
    }

    // ReStyle from bare `encoder.` / `decoder.` keys without opts: class and size are detected.
    let restyle_store = pattern_store(
        fixture.manifest.checkpoint("restyle_e4e").unwrap(),
        &["encoder.", "decoder.", "latent_avg"],
    );
    let restyle = ReStyle::<B>::load(&restyle_store, None, &device).unwrap();
    assert_eq!(restyle.config().encoder_type, EncoderType::ProgressiveBackbone);
    assert_eq!(restyle.config().output_size, 1024);
    let toon_store = pattern_store(fixture.manifest.checkpoint("toon_generator").unwrap(), &[""]);
    let toon = Generator::<B>::load(&toon_store.root(), &GeneratorConfig::new(1024), &device).unwrap();
    let adapter = DomainAdapter::new(restyle, toon).unwrap();

    let input = fixture.golden.tensor::<B, 4>("input", &device);
    let codes = adapter.restyle().invert(input, RESTYLE_ITERS).unwrap();
    assert_close(
        "ffhq1024 restyle_codes",
        codes.clone(),
        fixture.golden.get("restyle_codes"),
        CODES.0,
        CODES.1,
    );
    // Upstream draws random noise for this pass; the golden used the stored buffers.
    let adapted = adapter.synthesize(codes, &inversion.offsets, &Noise::Stored).unwrap();
    assert_close(
        "ffhq1024 domain_adapted_pooled",
        pool(adapted, 256, 256),
        fixture.golden.get("domain_adapted_pooled"),
        IMAGES.0,
        IMAGES.1,
    );
}

// Cheap checks of the editing rules and of the errors on bad input (no networks).

fn random(shape: [usize; 3]) -> Tensor<B, 3> {
    Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), &Default::default())
}

#[test]
fn factor_range_excludes_the_upper_end() {
    assert_eq!(factor_range(5), [-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(factor_range(1), [-1.0, 0.0]);
}

#[test]
fn interfacegan_broadcasts_and_rejects_bad_shapes() {
    let device = Default::default();
    let row: Tensor<B, 2> = Tensor::ones([1, 512], &device);
    let direction = InterFaceGanDirection::from_tensor(row).unwrap();
    let latents = random([2, 18, 512]);
    let (_, before) = to_vec(latents.clone());
    let (_, after) = to_vec(direction.apply(latents.clone(), 3.0).unwrap());
    assert!(
        before.iter().zip(&after).all(|(b, a)| (a - b - 3.0).abs() < 1e-5),
        "w + 3·1 on every row of every sample"
    );
    let stacked = direction.apply_factors(latents.clone(), &factor_range(2)).unwrap();
    assert_eq!(stacked.dims(), [2, 4, 18, 512]);
    assert!(direction.apply_factors(latents, &[]).is_err());
    // Per-row directions must have as many rows as the latents.
    let pose = InterFaceGanDirection::<B>::from_tensor(random([1, 18, 512])).unwrap();
    assert_eq!(pose.rows(), 18);
    assert!(pose.apply(random([1, 16, 512]), 1.0).is_err());
    assert!(InterFaceGanDirection::<B>::from_tensor(random([1, 18, 500])).is_err());
}

#[test]
fn direction_files_are_checked() {
    let dir = std::env::temp_dir().join(format!("hyperstyle-directions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("not_a_direction.safetensors");
    let data: Vec<u8> = [1.0f32; 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![7], &data).unwrap();
    let metadata = [("kind".to_string(), "stylegan2".to_string())].into_iter().collect();
    safetensors::serialize_to_file(vec![(BARE_TENSOR_KEY, view)], Some(metadata), &path).unwrap();
    let err = InterFaceGanDirection::<B>::from_file(&path, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err,
            hyperstyle::Error::Core(hyperstyle::core::Error::InvalidFile { .. })
        ),
        "{err}"
    );
    assert!(InterFaceGanDirection::<B>::from_file(dir.join("absent.safetensors"), &Default::default()).is_err());
}

#[test]
fn ganspace_sets_the_coordinate() {
    let device = Default::default();
    let mean: Tensor<B, 2> = Tensor::random([1, 512], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    // Unit-norm components, as upstream's PCA file has them.
    let comp: Tensor<B, 3> = Tensor::random([80, 1, 512], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let comp = comp.clone() / comp.powi_scalar(2).sum_dim(2).sqrt();
    let std: Tensor<B, 1> = Tensor::ones([80], &device).mul_scalar(3.0);
    let ganspace = GanSpace::new(mean, comp, std).unwrap();
    let latents = random([2, 16, 512]);
    for edit in CARS_EDITS {
        let edited = ganspace.apply(latents.clone(), &edit).unwrap();
        // Rows outside start..end are untouched, bit for bit.
        for row in (0..16).filter(|r| *r < edit.start || *r >= edit.end) {
            assert_eq!(
                to_vec(edited.clone().narrow(1, row, 1)).1,
                to_vec(latents.clone().narrow(1, row, 1)).1
            );
        }
        // Where row 0 is edited, its coordinate becomes the strength (not strength + old).
        if edit.start == 0 {
            let (_, c) = to_vec(ganspace.coordinate(edited, edit.component).unwrap());
            for v in c {
                assert!(
                    (v - edit.strength).abs() < 1e-3 * edit.strength.abs().max(1.0),
                    "{v} vs {}",
                    edit.strength
                );
            }
        }
    }
    let bad_rows = GanSpaceEdit {
        end: 17,
        ..CARS_EDITS[0]
    };
    assert!(ganspace.apply(latents.clone(), &bad_rows).is_err());
    let bad_component = GanSpaceEdit {
        component: 80,
        ..CARS_EDITS[0]
    };
    assert!(ganspace.apply(latents, &bad_component).is_err());
    assert_eq!(GanSpaceEdit::by_name("cube").map(|e| e.component), Some(16));
}

#[test]
fn offsets_per_sample_and_adapted_layers() {
    let device = Default::default();
    let mut offsets: Vec<Option<Tensor<B, 5>>> = vec![None; 26];
    for j in [0, 14, 24] {
        offsets[j] = Some(Tensor::random(
            [2, 4, 4, 3, 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        ));
    }
    let offsets = WeightOffsets::new(offsets);
    let second = offsets.sample(1).unwrap();
    assert_eq!(second[14].as_ref().unwrap().dims(), [1, 4, 4, 3, 3]);
    assert_eq!(
        to_vec(second[14].clone().unwrap()).1,
        to_vec(offsets[14].clone().unwrap().narrow(0, 1, 1)).1
    );
    assert!(offsets.sample(2).is_err());
    let kept = offsets.keep_layers(&ADAPTED_LAYERS);
    let present: Vec<usize> = kept
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_some())
        .map(|(j, _)| j)
        .collect();
    assert_eq!(present, [14, 24]);
    assert!(present.iter().all(|j| ADAPTED_LAYERS.contains(j)));
}
