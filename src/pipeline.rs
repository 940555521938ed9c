//! The HyperStyle inversion: W encoder, then refinement steps of hypernetwork offsets
//! (REFERENCE §7). `HyperStyle::invert` is the whole data path, top to bottom.

use std::path::Path;

use burn::prelude::*;
use hyperstyle_encoders::{LatentAverage, WEncoder};
use hyperstyle_hypernet::{HypernetConfig, Hypernetwork, DEFAULT_LAYERS_TO_TUNE};
use hyperstyle_stylegan2::{ConvStrategy, Generator, GeneratorConfig, Noise, WeightStore};
use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::error::{Error, Result};
use crate::image_ops::{crop_rows, pool};

/// Per-layer weight offsets: one entry per generator layer, `None` where untouched.
pub type Offsets<B> = Vec<Option<Tensor<B, 5>>>;

/// Adds one step's offsets to the running sum (upstream sums them over iterations; a layer
/// without offsets stays `None`).
pub fn accumulate_offsets<B: Backend>(accumulated: Option<Offsets<B>>, step: Offsets<B>) -> Offsets<B> {
    match accumulated {
        None => step,
        Some(sum) => sum
            .into_iter()
            .zip(step)
            .map(|(a, o)| a.zip(o).map(|(a, o)| a + o))
            .collect(),
    }
}

/// What a HyperStyle model is: taken from the checkpoint's `opts`, overridable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HyperStyleConfig {
    /// Domain (sizes and crops).
    pub domain: Domain,
    /// Generator output size.
    pub output_size: usize,
    /// Upstream's comma-separated `layers_to_tune`.
    pub layers_to_tune: String,
    /// Hypernetwork variant (`encoder_type`).
    pub encoder_type: String,
}

impl HyperStyleConfig {
    /// The released model of a domain.
    pub fn for_domain(domain: Domain) -> Self {
        Self {
            domain,
            output_size: domain.generator_size(),
            layers_to_tune: DEFAULT_LAYERS_TO_TUNE.into(),
            encoder_type: "SharedWeightsHyperNetResNet".into(),
        }
    }

    /// From a converted checkpoint's `opts` metadata (JSON): `dataset_type`, `output_size`,
    /// `layers_to_tune`, `encoder_type`; missing fields take the faces defaults.
    pub fn from_opts(opts: &serde_json::Value) -> Self {
        let domain = opts["dataset_type"]
            .as_str()
            .map(Domain::from_dataset_type)
            .unwrap_or(Domain::Faces);
        let mut config = Self::for_domain(domain);
        if let Some(size) = opts["output_size"].as_u64() {
            config.output_size = size as usize;
        }
        if let Some(layers) = opts["layers_to_tune"].as_str() {
            config.layers_to_tune = layers.into();
        }
        if let Some(kind) = opts["encoder_type"].as_str() {
            config.encoder_type = kind.into();
        }
        config
    }

    /// W+ rows of the generator: `2·log2(size) − 2`.
    pub fn n_styles(&self) -> usize {
        GeneratorConfig::new(self.output_size).n_latent()
    }
}

/// One refinement step's output.
#[derive(Debug, Clone)]
pub struct Step<B: Backend> {
    /// Generator output at full resolution (cars: cropped to rows 64..448), raw, not clamped:
    /// `[batch, 3, H, W]`.
    pub image: Tensor<B, 4>,
    /// The same pooled to the input size (256×256; cars 192×256): what the next step sees.
    pub pooled: Tensor<B, 4>,
}

/// The result of [`HyperStyle::invert`].
#[derive(Debug, Clone)]
pub struct Inversion<B: Backend> {
    /// W+ codes `[batch, n_styles, 512]` (computed once, shared by every step).
    pub latents: Tensor<B, 3>,
    /// The accumulated offsets after the last step.
    pub offsets: Offsets<B>,
    /// The initial W inversion pooled to 256×256 (uncropped, also for cars).
    pub w_inversion: Tensor<B, 4>,
    /// Every step's image, in order.
    pub steps: Vec<Step<B>>,
}

/// A loaded HyperStyle model: W encoder, average latent, hypernetwork and generator.
#[derive(Debug)]
pub struct HyperStyle<B: Backend> {
    w_encoder: WEncoder<B>,
    latent_avg: LatentAverage<B>,
    hypernet: Hypernetwork<B>,
    generator: Generator<B>,
    config: HyperStyleConfig,
}

/// The prefix under which a converted checkpoint keeps its state dict (`state_dict/`), or none
/// (bare keys).
fn state_dict_prefix(store: &WeightStore, probe: &str) -> &'static str {
    if store.contains(&format!("state_dict/{probe}")) {
        "state_dict/"
    } else {
        ""
    }
}

impl<B: Backend> HyperStyle<B> {
    /// Builds the model from a HyperStyle checkpoint (`hypernet.*`, `decoder.*`, `latent_avg`)
    /// and a W-encoder checkpoint (`encoder.*`), with or without the converter's `state_dict/`
    /// nesting. `config` overrides what the checkpoint's `opts` metadata says.
    pub fn load(
        model: &WeightStore,
        w_encoder: &WeightStore,
        config: Option<HyperStyleConfig>,
        device: &B::Device,
    ) -> Result<Self> {
        let config = match config {
            Some(config) => config,
            None => {
                let opts = model
                    .metadata()
                    .get("opts")
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                HyperStyleConfig::from_opts(&opts)
            }
        };
        let n_styles = config.n_styles();
        let hypernet_config = HypernetConfig::new(config.output_size, &config.layers_to_tune, &config.encoder_type)?;
        let p = state_dict_prefix(model, "decoder.conv1.conv.weight");
        let generator = Generator::load(
            &model.scope(&format!("{p}decoder.")),
            &GeneratorConfig::new(config.output_size),
            device,
        )?;
        let hypernet = Hypernetwork::load(&model.scope(&format!("{p}hypernet.")), &hypernet_config, device)?;
        let latent_avg = LatentAverage::load(&model.root(), "latent_avg", n_styles, device)?;
        let e = state_dict_prefix(w_encoder, "encoder.linear.weight");
        let w_encoder = WEncoder::load(&w_encoder.scope(&format!("{e}encoder.")), n_styles, device)?;
        Ok(Self {
            w_encoder,
            latent_avg,
            hypernet,
            generator,
            config,
        })
    }

    /// [`HyperStyle::load`] from two safetensors files written by `weights-convert`.
    pub fn from_files(
        model: impl AsRef<Path>,
        w_encoder: impl AsRef<Path>,
        config: Option<HyperStyleConfig>,
        device: &B::Device,
    ) -> Result<Self> {
        let model = WeightStore::open(model)?;
        let w_encoder = WeightStore::open(w_encoder)?;
        Self::load(&model, &w_encoder, config, device)
    }

    /// The configuration.
    pub fn config(&self) -> &HyperStyleConfig {
        &self.config
    }

    /// The generator (for editing with the inversion's latents and offsets).
    pub fn generator(&self) -> &Generator<B> {
        &self.generator
    }

    /// Chooses how the generator runs its per-sample convolutions (see [`ConvStrategy`]); the
    /// result is the same up to float rounding, the speed depends on the backend and batch.
    pub fn set_conv_strategy(&mut self, strategy: ConvStrategy) {
        self.generator.set_conv_strategy(strategy);
    }

    /// The hypernetwork.
    pub fn hypernet(&self) -> &Hypernetwork<B> {
        &self.hypernet
    }

    /// Images at the domain's input size, `[batch, 3, h, w]` in [−1, 1].
    fn check_input(&self, images: &Tensor<B, 4>) -> Result<()> {
        let (h, w) = self.config.domain.input_size();
        let dims = images.dims();
        if dims[1] != 3 || dims[2] != h || dims[3] != w {
            return Err(Error::InvalidInput(format!(
                "expected images [batch, 3, {h}, {w}], got {dims:?}"
            )));
        }
        Ok(())
    }

    /// Full-resolution image → (content crop, pooled to the input size), as upstream's loop.
    fn step_output(&self, image: Tensor<B, 4>) -> Step<B> {
        let (top, bottom) = self.config.domain.content_rows(self.config.output_size);
        let image = crop_rows(image, top, bottom);
        let (h, w) = self.config.domain.input_size();
        Step {
            pooled: pool(image.clone(), h, w),
            image,
        }
    }

    /// The initial inversion: `w_codes = WEncoder(x) + latent_avg`, and the unmodified
    /// generator's image pooled to 256×256 (returned uncropped; cars feed rows 32..224 to step 0).
    pub fn w_inversion(&self, images: Tensor<B, 4>) -> Result<(Tensor<B, 3>, Tensor<B, 4>)> {
        self.check_input(&images)?;
        let latents = self.w_encoder.w_codes(images, &self.latent_avg)?;
        let image = self.generator.synthesis(latents.clone(), &Noise::Stored, None)?;
        Ok((latents, pool(image, 256, 256)))
    }

    /// One refinement step: offsets from (input, current reconstruction), added to the
    /// accumulated ones, then the generator with the new sum.
    pub fn refinement_step(
        &self,
        images: Tensor<B, 4>,
        reconstruction: Tensor<B, 4>,
        latents: Tensor<B, 3>,
        accumulated: Option<Offsets<B>>,
    ) -> Result<(Offsets<B>, Step<B>)> {
        let offsets = self.hypernet.forward(images, reconstruction)?;
        let offsets = accumulate_offsets(accumulated, offsets);
        let image = self.generator.synthesis(latents, &Noise::Stored, Some(&offsets))?;
        Ok((offsets, self.step_output(image)))
    }

    /// Inverts a batch of normalised images (`[batch, 3, h, w]` at the domain's input size):
    /// the W inversion, then `n_iters` refinement steps, each fed the previous step's image
    /// pooled to the input size. Calls `on_step(i)` after step `i` (for progress reporting).
    pub fn invert_with_progress(
        &self,
        images: Tensor<B, 4>,
        n_iters: usize,
        mut on_step: impl FnMut(usize),
    ) -> Result<Inversion<B>> {
        let (latents, w_inversion) = self.w_inversion(images.clone())?;
        // Step 0 sees the W inversion at 256×256 (cars: its rows 32..224, i.e. 192×256).
        let (top, bottom) = self.config.domain.content_rows(256);
        let mut reconstruction = crop_rows(w_inversion.clone(), top, bottom);
        let mut offsets: Option<Offsets<B>> = None;
        let mut steps = Vec::with_capacity(n_iters);
        for i in 0..n_iters {
            let (accumulated, step) = self.refinement_step(images.clone(), reconstruction, latents.clone(), offsets)?;
            reconstruction = step.pooled.clone();
            offsets = Some(accumulated);
            steps.push(step);
            on_step(i);
        }
        let offsets = offsets.unwrap_or_else(|| vec![None; self.generator.config().num_weight_layers()]);
        Ok(Inversion {
            latents,
            offsets,
            w_inversion,
            steps,
        })
    }

    /// [`HyperStyle::invert_with_progress`] without progress reporting.
    pub fn invert(&self, images: Tensor<B, 4>, n_iters: usize) -> Result<Inversion<B>> {
        self.invert_with_progress(images, n_iters, |_| {})
    }
}
