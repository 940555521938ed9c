//! Domain adaptation (docs/ARCHITECTURE.md ): HyperStyle's offsets of a photo, transplanted onto a
//! fine-tuned generator (Toonify, Pixar, Sketch, Disney princess, …) together with the photo's
//! ReStyle-e4e W+ codes.
//!
//! * [`ReStyle`]: the ReStyle-e4e iterative inversion (encoder, its own generator, `latent_avg`),
//!   docs/ARCHITECTURE.md §5.3 and §9 step 1.
//! * [`DomainAdapter`]: ReStyle + the fine-tuned generator; [`DomainAdapter::adapt`] runs both
//!   inversions and renders the result, keeping offsets only for [`ADAPTED_LAYERS`].
//!
//! ```no_run
//! use burn::backend::Flex;
//! use hyperstyle::domain_adaptation::{AdaptOptions, DomainAdapter};
//! use hyperstyle::HyperStyle;
//! # fn main() -> hyperstyle::Result<()> {
//! let device = Default::default();
//! let model = HyperStyle::<Flex>::builder()
//!     .model_file("hyperstyle_ffhq.safetensors")
//!     .w_encoder_file("faces_w_encoder.safetensors")
//!     .load(&device)?;
//! let adapter = DomainAdapter::from_files("restyle_e4e_ffhq_encode.safetensors", "toonify.safetensors", &device)?;
//! # let images = burn::tensor::Tensor::zeros([1, 3, 256, 256], &device);
//! let adapted = adapter.adapt(&model, images, &AdaptOptions::default(), |_| {})?;
//! // adapted.image: [1, 3, 1024, 1024]
//! # Ok(()) }
//! ```

use std::path::Path;

use burn::prelude::*;
use hyperstyle_core::{Error as CoreError, Kind, WeightStore};
use hyperstyle_encoders::{EncoderType, LatentAverage, ReStyleEncoder};
use hyperstyle_stylegan2::{Generator, GeneratorConfig, Noise, WeightOffsets};

use crate::domain::Domain;
use crate::error::{invalid_input, Result};
use crate::image_ops::{crop_rows, pool};
use crate::pipeline::{HyperStyle, Inversion};

/// Generator layers (Δ idx) whose offsets domain adaptation keeps: the non-shared 3×3 convs at
/// 128–1024 px (`convs.8`–`convs.15`); upstream's `filter_non_ffhq_layers_in_toonify_model`
/// (docs/ARCHITECTURE.md §9, §11.22).
pub const ADAPTED_LAYERS: [usize; 8] = [14, 15, 17, 18, 20, 21, 23, 24];

/// Input channels of a ReStyle encoder: the image and the current reconstruction.
const RESTYLE_INPUT_CHANNELS: usize = 6;

/// What a ReStyle-e4e model is: from its checkpoint's `opts`, or detected from its weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReStyleConfig {
    /// Encoder class (`opts['encoder_type']`).
    pub encoder_type: EncoderType,
    /// Output size of its generator (`opts['output_size']`).
    pub output_size: usize,
    /// Domain (`opts['dataset_type']`): input size and crops.
    pub domain: Domain,
}

impl ReStyleConfig {
    /// W+ rows: `2·log2(size) − 2`.
    pub fn n_styles(&self) -> usize {
        GeneratorConfig::new(self.output_size).n_latent()
    }

    /// From the checkpoint's `opts` metadata where it has the field, else from the weights under
    /// `prefix`: the backbone stem gives the encoder class, the number of `decoder.to_rgbs.*`
    /// blocks the output size (`4·2^blocks`); the domain defaults to faces.
    fn detect(store: &WeightStore, prefix: &str) -> Result<Self> {
        let opts = store.opts()?;
        let encoder_type = match opts["encoder_type"].as_str() {
            Some(name) => name.parse()?,
            None => EncoderType::detect(&store.scope(&format!("{prefix}encoder.")))?,
        };
        let output_size = match opts["output_size"].as_u64() {
            Some(size) => size as usize,
            None => {
                let blocks = (0..16)
                    .take_while(|k| store.contains(&format!("{prefix}decoder.to_rgbs.{k}.conv.weight")))
                    .count();
                if blocks == 0 {
                    return Err(CoreError::MissingKey {
                        key: format!("{prefix}decoder.to_rgbs.0.conv.weight"),
                    }
                    .into());
                }
                4 << blocks
            }
        };
        let domain = opts["dataset_type"]
            .as_str()
            .map(Domain::from_dataset_type)
            .unwrap_or(Domain::Faces);
        Ok(Self {
            encoder_type,
            output_size,
            domain,
        })
    }
}

/// The ReStyle-e4e model (upstream's `e4e` wrapper): encoder, its generator ("decoder") and
/// `latent_avg`.
#[derive(Module, Debug)]
pub struct ReStyle<B: Backend> {
    encoder: ReStyleEncoder<B>,
    decoder: Generator<B>,
    latent_avg: LatentAverage<B>,
    #[module(skip)]
    config: ReStyleConfig,
}

impl<B: Backend> ReStyle<B> {
    /// Builds the model from a ReStyle checkpoint: `encoder.*`, `decoder.*` (under the
    /// converter's `state_dict/` or bare) and `latent_avg`. Without `config`, the checkpoint's
    /// `opts` metadata or the weights themselves say what it is.
    pub fn load(store: &WeightStore, config: Option<ReStyleConfig>, device: &B::Device) -> Result<Self> {
        let decoder_prefix = store.state_dict_prefix("decoder.", "conv1.conv.weight");
        // The encoder sits beside the decoder: both nested under `state_dict/` or both bare.
        let prefix = decoder_prefix.strip_suffix("decoder.").unwrap_or_default().to_string();
        let config = match config {
            Some(config) => config,
            None => ReStyleConfig::detect(store, &prefix)?,
        };
        GeneratorConfig::new(config.output_size).validate()?;
        let n_styles = config.n_styles();
        let encoder = ReStyleEncoder::load(
            &store.scope(&format!("{prefix}encoder.")),
            config.encoder_type,
            RESTYLE_INPUT_CHANNELS,
            n_styles,
            device,
        )?;
        let decoder = Generator::load(
            &store.scope(&decoder_prefix),
            &GeneratorConfig::new(config.output_size),
            device,
        )?;
        let latent_avg = LatentAverage::load(&store.root(), "latent_avg", n_styles, device)?;
        Ok(Self {
            encoder,
            decoder,
            latent_avg,
            config,
        })
    }

    /// [`ReStyle::load`] from a file written by `weights-convert` (e.g. from
    /// `restyle_e4e_ffhq_encode.pt`).
    pub fn from_file(path: impl AsRef<Path>, config: Option<ReStyleConfig>, device: &B::Device) -> Result<Self> {
        Self::load(&WeightStore::open_checkpoint(path, &[Kind::Restyle])?, config, device)
    }

    /// The configuration.
    pub fn config(&self) -> &ReStyleConfig {
        &self.config
    }

    /// ReStyle's own generator.
    pub fn decoder(&self) -> &Generator<B> {
        &self.decoder
    }

    /// The encoder.
    pub fn encoder(&self) -> &ReStyleEncoder<B> {
        &self.encoder
    }

    /// The decoder's image of `codes`, stored noise, cropped to the content rows and pooled to
    /// the input size (256×256; cars 192×256): what the next iteration sees.
    fn reconstruction(&self, codes: Tensor<B, 3>) -> Result<Tensor<B, 4>> {
        let image = self.decoder.synthesis(codes, &Noise::Stored, None)?;
        let (top, bottom) = self.config.domain.content_rows(self.config.output_size);
        let (h, w) = self.config.domain.input_size();
        Ok(pool(crop_rows(image, top, bottom), h, w))
    }

    /// The "average image" the first iteration starts from: the decoder on `latent_avg`, stored
    /// noise, pooled to 256×256 (cars: then rows 32..224). `[1, 3, h, w]`.
    pub fn average_image(&self) -> Result<Tensor<B, 4>> {
        let codes = self.latent_avg.codes(1, self.config.n_styles())?;
        let image = pool(self.decoder.synthesis(codes, &Noise::Stored, None)?, 256, 256);
        let (top, bottom) = self.config.domain.content_rows(256);
        Ok(crop_rows(image, top, bottom))
    }

    /// The iterative inversion (upstream's `run_on_batch`, docs/ARCHITECTURE.md §9) of normalised
    /// images `[batch, 3, h, w]` at the domain's input size: iteration 0 encodes
    /// `[x, average image]` and adds `latent_avg`, iteration t ≥ 1 encodes `[x, ŷ]` and adds the
    /// previous codes, where ŷ is the decoder's image of those codes pooled to the input size.
    /// Returns the W+ codes `[batch, n_styles, 512]` (the last reconstruction, which upstream
    /// also computes, is skipped: nothing uses it). Calls `on_step(t)` after iteration t.
    pub fn invert_with_progress(
        &self,
        images: Tensor<B, 4>,
        n_iters: usize,
        mut on_step: impl FnMut(usize),
    ) -> Result<Tensor<B, 3>> {
        let (h, w) = self.config.domain.input_size();
        let [batch, channels, ih, iw] = images.dims();
        if channels != 3 || (ih, iw) != (h, w) {
            return Err(invalid_input(format!(
                "expected images [batch, 3, {h}, {w}], got {:?}",
                images.dims()
            )));
        }
        if n_iters == 0 {
            return Err(invalid_input("ReStyle needs at least one iteration"));
        }
        let average = self.average_image()?.repeat_dim(0, batch);
        let mut codes: Option<Tensor<B, 3>> = None;
        for t in 0..n_iters {
            let reconstruction = match &codes {
                None => average.clone(),
                Some(previous) => self.reconstruction(previous.clone())?,
            };
            let residual = self
                .encoder
                .forward(Tensor::cat(vec![images.clone(), reconstruction], 1))?;
            codes = Some(match codes {
                None => self.latent_avg.add_to(residual)?,
                Some(previous) => residual + previous,
            });
            on_step(t);
        }
        Ok(codes.expect("n_iters >= 1"))
    }

    /// [`ReStyle::invert_with_progress`] without progress reporting.
    pub fn invert(&self, images: Tensor<B, 4>, n_iters: usize) -> Result<Tensor<B, 3>> {
        self.invert_with_progress(images, n_iters, |_| {})
    }
}

/// Options of [`DomainAdapter::adapt`].
#[derive(Debug, Clone)]
pub struct AdaptOptions<B: Backend> {
    /// HyperStyle refinement steps (README: 2; the notebook: 5).
    pub hyperstyle_iters: usize,
    /// ReStyle iterations (README: 2; the notebook: 5).
    pub restyle_iters: usize,
    /// Noise of the fine-tuned generator. Upstream draws random noise here (docs/ARCHITECTURE.md §11.23);
    /// the default is the stored buffers, which makes the result deterministic.
    pub noise: Noise<B>,
}

impl<B: Backend> Default for AdaptOptions<B> {
    fn default() -> Self {
        Self {
            hyperstyle_iters: 2,
            restyle_iters: 2,
            noise: Noise::Stored,
        }
    }
}

/// The result of [`DomainAdapter::adapt`].
#[derive(Debug, Clone)]
pub struct Adaptation<B: Backend> {
    /// ReStyle's W+ codes `[batch, n_styles, 512]`.
    pub restyle_latents: Tensor<B, 3>,
    /// HyperStyle's inversion (its offsets unfiltered).
    pub inversion: Inversion<B>,
    /// The fine-tuned generator's image, full resolution, raw: `[batch, 3, size, size]`.
    pub image: Tensor<B, 4>,
}

/// ReStyle-e4e and a fine-tuned generator: everything domain adaptation needs besides HyperStyle.
#[derive(Debug)]
pub struct DomainAdapter<B: Backend> {
    restyle: ReStyle<B>,
    generator: Generator<B>,
}

impl<B: Backend> DomainAdapter<B> {
    /// Pairs a ReStyle model with a fine-tuned generator of the same size.
    pub fn new(restyle: ReStyle<B>, generator: Generator<B>) -> Result<Self> {
        let (ours, theirs) = (generator.config().size, restyle.config().output_size);
        if ours != theirs {
            return Err(invalid_input(format!(
                "the fine-tuned generator is {ours}×{ours} but ReStyle inverts into a {theirs}×{theirs} one"
            )));
        }
        Ok(Self { restyle, generator })
    }

    /// Loads a converted ReStyle checkpoint and a converted fine-tuned rosinality generator
    /// (`g_ema`, e.g. Toonify) of ReStyle's output size.
    pub fn from_files(restyle: impl AsRef<Path>, generator: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let restyle = ReStyle::from_file(restyle, None, device)?;
        let config = GeneratorConfig::new(restyle.config().output_size);
        let generator = Generator::from_file(generator, &config, device)?;
        Self::new(restyle, generator)
    }

    /// The ReStyle model.
    pub fn restyle(&self) -> &ReStyle<B> {
        &self.restyle
    }

    /// The fine-tuned generator.
    pub fn generator(&self) -> &Generator<B> {
        &self.generator
    }

    /// The final synthesis (docs/ARCHITECTURE.md §9): the fine-tuned generator on ReStyle's codes
    /// with HyperStyle's offsets kept only for [`ADAPTED_LAYERS`]. restyle_latents
    /// `[batch, n_styles, 512]`, offsets per sample (batch `batch` or 1) → `[batch, 3, size, size]`.
    pub fn synthesize(
        &self,
        restyle_latents: Tensor<B, 3>,
        offsets: &WeightOffsets<B>,
        noise: &Noise<B>,
    ) -> Result<Tensor<B, 4>> {
        let offsets = offsets.clone().keep_layers(&ADAPTED_LAYERS);
        Ok(self.generator.synthesis(restyle_latents, noise, Some(&offsets))?)
    }

    /// Domain adaptation of normalised images `[batch, 3, 256, 256]`: ReStyle's codes,
    /// HyperStyle's offsets, then [`DomainAdapter::synthesize`]. Calls `on_step(i)` after each of
    /// the `restyle_iters + hyperstyle_iters` iterations (ReStyle's first).
    pub fn adapt(
        &self,
        hyperstyle: &HyperStyle<B>,
        images: Tensor<B, 4>,
        options: &AdaptOptions<B>,
        mut on_step: impl FnMut(usize),
    ) -> Result<Adaptation<B>> {
        let size = hyperstyle.generator().config().size;
        if size != self.generator.config().size {
            return Err(invalid_input(format!(
                "HyperStyle's offsets are for a {size}×{size} generator, the fine-tuned one is {0}×{0}",
                self.generator.config().size
            )));
        }
        let restyle_latents = self
            .restyle
            .invert_with_progress(images.clone(), options.restyle_iters, &mut on_step)?;
        let done = options.restyle_iters;
        let inversion = hyperstyle.invert_with_progress(images, options.hyperstyle_iters, |i| on_step(done + i))?;
        let image = self.synthesize(restyle_latents.clone(), &inversion.offsets, &options.noise)?;
        Ok(Adaptation {
            restyle_latents,
            inversion,
            image,
        })
    }
}
