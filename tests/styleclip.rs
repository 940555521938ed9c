//! StyleCLIP global directions against the original implementation (its
//! `editing/styleclip/global_direction.py` with OpenAI's CLIP code), on pattern weights: the CLIP
//! text tower of `clip_text_manifest.json`, a pattern relevance matrix (salt `styleclip`, key
//! `delta_i_c`, `[5376, 512]`, mean 0, std 0.05) and pattern standard deviations (key
//! `s_std/{layer}`, mean 0.3, std 0.1, absolute values), for the 1024 generator's layer table.
//! Goldens: `styleclip_golden.safetensors` (float32 run, and `*_f64` from a float64 run of the
//! same, stored as float32); tests/fixtures/README.md says how they were made.

use burn::prelude::*;
use hyperstyle::backend::Cpu as B;
use hyperstyle::clip::{TextTransformer, Tokenizer};
use hyperstyle::core::{error_stats, ErrorStats};
use hyperstyle::demo::Demo;
use hyperstyle::styleclip::{apply, edited_channels, GlobalDirections};
use hyperstyle::stylegan2::GeneratorConfig;
use hyperstyle_testing::{fixtures_dir, pattern_store, to_vec, Golden, Manifest};

fn directions(device: &<B as burn::tensor::backend::BackendTypes>::Device) -> GlobalDirections<B> {
    let layers = GeneratorConfig::ffhq_1024().layers();
    assert_eq!(edited_channels(&layers), 5376);
    Demo::styleclip::<B>(&layers, device).unwrap().2
}

fn compare(what: &str, ours: &[f32], golden: &Golden, key: &str) -> (ErrorStats, ErrorStats) {
    let (_, f32_run) = golden.get(key);
    let (_, f64_run) = golden.get(&format!("{key}_f64"));
    let ours_stats = error_stats(ours, f64_run).unwrap();
    let floor = error_stats(f32_run, f64_run).unwrap();
    println!("{what}: ours vs float64 {ours_stats}; original float32 vs float64 (floor) {floor}");
    (ours_stats, floor)
}

#[test]
fn text_and_style_directions_match_the_original() {
    let device = Default::default();
    let manifest = Manifest::load(fixtures_dir().join("clip_text_manifest.json")).unwrap();
    let store = pattern_store(manifest.checkpoint("clip_text").unwrap(), &[""]);
    let text = TextTransformer::<B>::load_detected(&store.root(), &device).unwrap();
    let tokenizer = Tokenizer::bundled().unwrap();
    let templates: Vec<String> = std::fs::read_to_string(fixtures_dir().join("styleclip_templates.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(templates.len(), 79);
    let golden = Golden::load(fixtures_dir().join("styleclip_golden.safetensors"));
    let gd = directions(&device);
    for (name, neutral, target, beta) in [
        ("beard", "a face", "a face with a beard", 0.13f32),
        ("curly", "face with hair", "face with curly hair", 0.08),
    ] {
        let delta_i = GlobalDirections::text_direction(&text, &tokenizer, &templates, neutral, target).unwrap();
        let (_, values) = to_vec(delta_i.clone());
        let (ours, floor) = compare(&format!("{name} Δi"), &values, &golden, &format!("{name}_delta_i"));
        // Δi is a unit vector (entries up to 0.14) after 79 text-tower passes per prompt. The
        // original's own float32 run is off its float64 run by 1.1e-7 / 1.3e-7 max-abs (the
        // floor printed above); measured here 3.6e-7 / 3.9e-7. Bound: 4× the floor plus one
        // float32 ulp at 0.25 (our float32 run and theirs round differently, each near the floor).
        assert!(ours.max_abs <= 4.0 * floor.max_abs + 3e-8, "{name} Δi: {ours}");

        let direction = gd.style_direction(delta_i, beta).unwrap();
        let flat: Vec<f32> = direction.iter().flat_map(|d| to_vec(d.clone()).1).collect();
        let (ours, floor) = compare(
            &format!("{name} direction"),
            &flat,
            &golden,
            &format!("{name}_direction"),
        );
        // The same channels survive the threshold (none lies within the text direction's error
        // of β); the kept values are r/max|r|·std, whose error follows Δi's: floor 2.7e-7 /
        // 3.3e-7 max-abs, measured 4.2e-7 / 6.9e-7 (values up to 0.45). Bound: 4× the floor plus
        // one ulp at 0.5.
        let (_, expected) = golden.get(&format!("{name}_direction"));
        let kept = |v: &[f32]| v.iter().map(|x| *x != 0.0).collect::<Vec<_>>();
        assert_eq!(
            kept(&flat),
            kept(expected),
            "{name}: other channels kept than the original's"
        );
        assert!(ours.max_abs <= 4.0 * floor.max_abs + 6e-8, "{name} direction: {ours}");
    }
}

#[test]
fn directions_move_only_the_edited_layers() {
    let device = Default::default();
    let gd = directions(&device);
    let layers = GeneratorConfig::ffhq_1024().layers();
    let unit = Tensor::<B, 1>::from_floats([1.0f32; 512].as_slice(), &device).div_scalar((512f32).sqrt());
    let direction = gd.style_direction(unit, 0.0).unwrap();
    let styles: Vec<Tensor<B, 2>> = layers
        .iter()
        .map(|l| Tensor::zeros([2, l.in_channels], &device))
        .collect();
    let moved = apply(&styles, &direction, 3.0).unwrap();
    let mut edited = 0;
    for (j, (layer, m)) in layers.iter().zip(&moved).enumerate() {
        let any = m.clone().abs().max().into_scalar() > 0.0;
        if layer.is_to_rgb() || edited == 11 {
            assert!(!any, "layer {j} moved");
        } else {
            assert!(any, "layer {j} did not move");
            edited += 1;
        }
    }
    // Wrong shapes are errors.
    assert!(gd.style_direction(Tensor::zeros([3], &device), 0.1).is_err());
    assert!(apply(&styles[1..], &direction, 1.0).is_err());
}
