//! The bundled demo models: the real architectures filled with deterministic pattern weights
//! (no download, no weight file), and the upstream implementation's outputs for those very
//! weights, so that a run can say how far it is from upstream.
//!
//! The models are not trained: their images are not faces or cars. They show that the whole
//! pipeline runs and reproduces upstream's arithmetic; real models come from `weights-convert`.
//! The manifests, reference outputs and photos live in the repository's `tests/fixtures/`
//! (or the folder named by `HYPERSTYLE_FIXTURES`).
//!
//! ```no_run
//! use hyperstyle::demo::Demo;
//! # fn main() -> hyperstyle::Result<()> {
//! let demo = Demo::load("ffhq256")?;
//! let model = demo.hyperstyle::<burn::backend::Flex>(&Default::default())?;
//! let photo = hyperstyle::io::load_image(demo.photo("astronaut.png"))?;
//! let inversion = model.invert_images(&[photo], demo.n_iters()?)?;
//! let step = inversion.steps.len() - 1;
//! if let Some(stats) = demo.compare(&format!("iter{step}_image_pooled"), 0, &inversion.last_step().pooled) {
//!     println!("last step vs upstream: {stats}");
//! }
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use burn::prelude::*;
use hyperstyle_clip::TextTransformer;
use hyperstyle_core::{error_stats, ErrorStats, Manifest, WeightStore};
use hyperstyle_stylegan2::{Generator, GeneratorConfig, LayerSpec};

use crate::domain_adaptation::{DomainAdapter, ReStyle};
use crate::error::Result;
use crate::pipeline::{HyperStyle, HyperStyleConfig};
use crate::styleclip::{self, GlobalDirections};

/// The demo configurations: `ffhq256` (faces, 256 generator, 3 steps), `cars512` (cars, 2 steps,
/// GANSpace data), `ffhq1024` (the real FFHQ architecture, 2 steps, edits, domain adaptation) and
/// `wild512` (AFHQ wild animals, 512 generator, 2 steps).
pub const CONFIGS: [&str; 4] = ["ffhq256", "cars512", "ffhq1024", "wild512"];

/// The folder of the demo data: `HYPERSTYLE_FIXTURES` if set, else the repository's
/// `tests/fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("HYPERSTYLE_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    }
}

/// One demo configuration: its weight manifest and upstream's outputs.
pub struct Demo {
    name: String,
    manifest: Manifest,
    reference: WeightStore,
}

impl Demo {
    /// Loads configuration `name` (one of [`CONFIGS`]).
    pub fn load(name: &str) -> Result<Self> {
        if !CONFIGS.contains(&name) {
            return Err(hyperstyle_core::Error::unknown("demo configuration", name, &CONFIGS).into());
        }
        let dir = fixtures_dir();
        Ok(Self {
            name: name.to_string(),
            manifest: Manifest::load(dir.join(format!("{name}_manifest.json")))?,
            reference: WeightStore::open(dir.join(format!("{name}_golden.safetensors")))?,
        })
    }

    /// The configuration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weight manifest (shapes and pattern statistics of every checkpoint).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The model configuration the upstream run used.
    pub fn config(&self) -> Result<HyperStyleConfig> {
        HyperStyleConfig::from_opts(&self.manifest.meta)
    }

    /// Refinement steps of the upstream run.
    pub fn n_iters(&self) -> Result<usize> {
        Ok(self.manifest.meta_usize("n_iters")?)
    }

    /// Pattern weights of checkpoint `checkpoint` (`hyperstyle`, `w_encoder`, `restyle_e4e`,
    /// `toon_generator`) for the keys under `prefixes`, under their full checkpoint keys.
    pub fn weights(&self, checkpoint: &str, prefixes: &[&str]) -> Result<WeightStore> {
        Ok(self.manifest.checkpoint(checkpoint)?.store(prefixes)?)
    }

    /// The HyperStyle model.
    pub fn hyperstyle<B: Backend>(&self, device: &B::Device) -> Result<HyperStyle<B>> {
        HyperStyle::<B>::builder()
            .model_weights(self.weights("hyperstyle", &["hypernet.", "decoder.", "latent_avg"])?)
            .w_encoder_weights(self.weights("w_encoder", &["encoder."])?)
            .config(self.config()?)
            .load(device)
    }

    /// The HyperStyle checkpoint's generator alone.
    pub fn generator<B: Backend>(&self, device: &B::Device) -> Result<Generator<B>> {
        let store = self.weights("hyperstyle", &["decoder."])?;
        let config = GeneratorConfig::new(self.manifest.meta_usize("output_size")?);
        Ok(Generator::load(&store.scope("decoder."), &config, device)?)
    }

    /// ReStyle-e4e and the fine-tuned ("toon") generator, for domain adaptation (`ffhq1024`).
    pub fn domain_adapter<B: Backend>(&self, device: &B::Device) -> Result<DomainAdapter<B>> {
        let restyle = ReStyle::load(
            &self.weights("restyle_e4e", &["encoder.", "decoder.", "latent_avg"])?,
            None,
            device,
        )?;
        let toon = self.weights("toon_generator", &[""])?;
        let config = GeneratorConfig::new(self.manifest.meta_usize("output_size")?);
        DomainAdapter::new(restyle, Generator::load(&toon.root(), &config, device)?)
    }

    /// StyleCLIP's pieces as pattern data, for edits by text on the demo: CLIP's text tower
    /// (`clip_text_manifest.json`), the bundled prompt templates, and global-direction data for a
    /// generator with `layers` (relevance matrix under salt `styleclip`, key `delta_i_c`, mean 0,
    /// std 0.05; per-layer standard deviations `s_std/{layer}`, mean 0.3, std 0.1, absolute
    /// values): what `tests/styleclip.rs` checks against the original code.
    pub fn styleclip<B: Backend>(
        layers: &[LayerSpec],
        device: &B::Device,
    ) -> Result<(TextTransformer<B>, Vec<String>, GlobalDirections<B>)> {
        use hyperstyle_core::pattern::pattern_values;
        let dir = fixtures_dir();
        let manifest = Manifest::load(dir.join("clip_text_manifest.json"))?;
        let store = manifest.checkpoint("clip_text")?.store(&[""])?;
        let text = TextTransformer::load_detected(&store.root(), device)?;
        let templates = styleclip::bundled_templates();
        let channels = styleclip::edited_channels(layers);
        let relevance = Tensor::<B, 1>::from_floats(
            pattern_values("styleclip", "delta_i_c", channels * 512, 0.0, 0.05).as_slice(),
            device,
        )
        .reshape([channels, 512]);
        let s_std = layers
            .iter()
            .enumerate()
            .map(|(c, l)| {
                let v: Vec<f32> = pattern_values("styleclip", &format!("s_std/{c}"), l.in_channels, 0.3, 0.1)
                    .into_iter()
                    .map(f32::abs)
                    .collect();
                Tensor::<B, 1>::from_floats(v.as_slice(), device)
            })
            .collect();
        Ok((text, templates, GlobalDirections::new(relevance, s_std, layers)?))
    }

    /// A tensor outside the checkpoints that follows the same pattern rule under the HyperStyle
    /// checkpoint's salt (the demo's edit directions and GANSpace data): `n` values.
    pub fn extra_pattern(&self, key: &str, n: usize, mean: f64, std: f64) -> Result<Vec<f32>> {
        Ok(self.manifest.checkpoint("hyperstyle")?.extra_pattern(key, n, mean, std))
    }

    /// A bundled photo (`astronaut.png`, `chelsea.png`, `coffee.png`, ...).
    pub fn photo(&self, name: &str) -> PathBuf {
        fixtures_dir().join("images").join(name)
    }

    /// Which sample of the upstream run a photo was, by file stem: a source photo
    /// (`astronaut`, `chelsea`, ...) or an exact network input (`{config}_input{b}`).
    pub fn sample_of(&self, stem: &str) -> Option<usize> {
        if let Some(b) = stem
            .strip_prefix(self.name.as_str())
            .and_then(|rest| rest.strip_prefix("_input"))
            .and_then(|b| b.parse().ok())
        {
            return Some(b);
        }
        self.manifest.meta["images"]
            .as_array()?
            .iter()
            .position(|name| name.as_str() == Some(stem))
    }

    /// Whether upstream's outputs include `key` (`w_codes`, `iter0_image_pooled`, ...).
    pub fn has_reference(&self, key: &str) -> bool {
        self.reference.contains(key)
    }

    /// How far `ours` (one sample) is from sample `sample` of upstream's output `key`; `None`
    /// where upstream's outputs have no such key or sample, or the sizes differ.
    pub fn compare<B: Backend, const D: usize>(
        &self,
        key: &str,
        sample: usize,
        ours: &Tensor<B, D>,
    ) -> Option<ErrorStats> {
        let (shape, values) = self.reference.any_values(key).ok()?;
        let per_sample = values.len() / shape.first().copied().filter(|&n| n > 0)?;
        let reference = values.get(sample * per_sample..(sample + 1) * per_sample)?;
        let ours = ours.clone().into_data().convert::<f32>().to_vec::<f32>().ok()?;
        error_stats(&ours, reference)
    }
}
