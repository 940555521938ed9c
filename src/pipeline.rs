//! The HyperStyle inversion: W encoder, then refinement steps of hypernetwork offsets
//! (docs/ARCHITECTURE.md §2, §7). [`HyperStyle::invert`] is the whole data path, top to bottom.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::prelude::*;
use hyperstyle_core::{Kind, WeightStore};
use hyperstyle_encoders::{LatentAverage, WEncoder};
use hyperstyle_hypernet::{HypernetConfig, HypernetType, Hypernetwork, LayersToTune};
use hyperstyle_stylegan2::{ConvStrategy, Generator, GeneratorConfig, Noise, WeightOffsets};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::backend::{runtime_events, RuntimeEvents};
use crate::domain::Domain;
use crate::error::{invalid_input, Result};
use crate::image_ops::{crop_rows, pool};
use crate::io::images_to_tensor;

/// What a HyperStyle model is: taken from the checkpoint's `opts`, overridable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HyperStyleConfig {
    /// Domain (sizes and crops).
    pub domain: Domain,
    /// Generator output size.
    pub output_size: usize,
    /// Generator layers the hypernetwork tunes (upstream's `layers_to_tune`).
    pub layers_to_tune: LayersToTune,
    /// Hypernetwork variant (upstream's `encoder_type`).
    pub encoder_type: HypernetType,
}

impl HyperStyleConfig {
    /// The released model of a domain.
    pub fn for_domain(domain: Domain) -> Self {
        Self {
            domain,
            output_size: domain.generator_size(),
            layers_to_tune: LayersToTune::default(),
            encoder_type: HypernetType::default(),
        }
    }

    /// From a checkpoint's `opts` (JSON): `dataset_type`, `output_size`, `layers_to_tune`,
    /// `encoder_type`; missing fields take the faces defaults. A `layers_to_tune` or
    /// `encoder_type` this project cannot read is an error.
    pub fn from_opts(opts: &serde_json::Value) -> Result<Self> {
        let domain = opts["dataset_type"]
            .as_str()
            .map(Domain::from_dataset_type)
            .unwrap_or(Domain::Faces);
        let mut config = Self::for_domain(domain);
        if let Some(size) = opts["output_size"].as_u64() {
            config.output_size = size as usize;
        }
        if let Some(layers) = opts["layers_to_tune"].as_str() {
            config.layers_to_tune = layers.parse()?;
        }
        if let Some(kind) = opts["encoder_type"].as_str() {
            config.encoder_type = kind.parse()?;
        }
        Ok(config)
    }

    /// The generator's configuration.
    pub fn generator_config(&self) -> GeneratorConfig {
        GeneratorConfig::new(self.output_size)
    }

    /// The hypernetwork's configuration.
    pub fn hypernet_config(&self) -> HypernetConfig {
        HypernetConfig::new(self.generator_config())
            .with_layers_to_tune(self.layers_to_tune.clone())
            .with_kind(self.encoder_type)
    }

    /// W+ rows of the generator: `2·log2(size) − 2`.
    pub fn n_styles(&self) -> usize {
        self.generator_config().n_latent()
    }
}

/// A stage of [`HyperStyle::invert`], in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The W encoder and `latent_avg`: the W+ codes.
    WEncoder,
    /// The unmodified generator's image of the W+ codes (the W inversion).
    WSynthesis,
    /// Refinement step `i`'s hypernetwork forward and offset accumulation.
    Hypernet(usize),
    /// Refinement step `i`'s generator forward with the accumulated offsets.
    Synthesis(usize),
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::WEncoder => f.write_str("W encoder"),
            Stage::WSynthesis => f.write_str("W synthesis"),
            Stage::Hypernet(i) => write!(f, "step {i} hypernetwork"),
            Stage::Synthesis(i) => write!(f, "step {i} synthesis"),
        }
    }
}

/// Wall time of every stage of one inversion ([`HyperStyle::invert_timed`]).
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    /// Each stage and its time, in the order they ran.
    pub stages: Vec<(Stage, Duration)>,
    /// What the GPU runtime did during each stage (kernels compiled, shapes autotuned), in the
    /// order of `stages`; all zero unless [`crate::backend::GpuRuntime::count_events`] is on.
    pub events: Vec<RuntimeEvents>,
}

impl StageTimes {
    /// The sum over all stages.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|(_, t)| *t).sum()
    }

    /// The time of the stages `select` picks, summed (e.g. every hypernetwork forward).
    pub fn sum(&self, select: impl Fn(Stage) -> bool) -> Duration {
        self.stages.iter().filter(|(s, _)| select(*s)).map(|(_, t)| *t).sum()
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
    pub offsets: WeightOffsets<B>,
    /// The initial W inversion pooled to 256×256 (uncropped, also for cars).
    pub w_inversion: Tensor<B, 4>,
    /// Every step's image, in order (at least one).
    pub steps: Vec<Step<B>>,
}

impl<B: Backend> Inversion<B> {
    /// The last step's output: the final reconstruction.
    pub fn last_step(&self) -> &Step<B> {
        self.steps.last().expect("an inversion has at least one step")
    }
}

/// Sample `b` of W+ codes `[batch, n_styles, 512]` and of their offsets, the batch axis kept
/// (size 1): what saved inversions, keyframes and exported generators keep of one image.
pub(crate) fn one_sample<B: Backend>(
    latents: &Tensor<B, 3>,
    offsets: &WeightOffsets<B>,
    b: usize,
) -> Result<(Tensor<B, 3>, WeightOffsets<B>)> {
    let batch = latents.dims()[0];
    if b >= batch {
        return Err(invalid_input(format!(
            "sample {b} requested from an inversion of {batch}"
        )));
    }
    Ok((latents.clone().narrow(0, b, 1), offsets.sample(b)?))
}

/// A loaded HyperStyle model: W encoder, average latent, hypernetwork and generator.
///
/// A Burn [`Module`]: it can be moved to another device (`fork`) or its record saved like any
/// module's.
#[derive(Module, Debug)]
pub struct HyperStyle<B: Backend> {
    w_encoder: WEncoder<B>,
    latent_avg: LatentAverage<B>,
    hypernet: Hypernetwork<B>,
    generator: Generator<B>,
    #[module(skip)]
    config: HyperStyleConfig,
}

/// Where the weights of one checkpoint come from.
enum Source {
    File(PathBuf),
    Store(Box<WeightStore>),
}

impl Source {
    fn open(self, kind: Kind) -> Result<WeightStore> {
        Ok(match self {
            Source::File(path) => WeightStore::open_checkpoint(path, &[kind])?,
            Source::Store(store) => *store,
        })
    }
}

/// Loads a [`HyperStyle`] model: two checkpoints named by role, an optional configuration.
///
/// ```no_run
/// # use hyperstyle::HyperStyle;
/// # fn main() -> hyperstyle::Result<()> {
/// let device = Default::default();
/// let model = HyperStyle::<burn::backend::Flex>::builder()
///     .model_file("hyperstyle_ffhq.safetensors")
///     .w_encoder_file("faces_w_encoder.safetensors")
///     .load(&device)?;
/// # Ok(()) }
/// ```
pub struct HyperStyleBuilder<B: Backend> {
    model: Option<Source>,
    w_encoder: Option<Source>,
    config: Option<HyperStyleConfig>,
    domain: Option<Domain>,
    conv_strategy: ConvStrategy,
    backend: PhantomData<B>,
}

impl<B: Backend> Default for HyperStyleBuilder<B> {
    fn default() -> Self {
        Self {
            model: None,
            w_encoder: None,
            config: None,
            domain: None,
            conv_strategy: ConvStrategy::default(),
            backend: PhantomData,
        }
    }
}

impl<B: Backend> HyperStyleBuilder<B> {
    /// The converted HyperStyle checkpoint (`hypernet.*`, `decoder.*`, `latent_avg`).
    pub fn model_file(mut self, path: impl AsRef<Path>) -> Self {
        self.model = Some(Source::File(path.as_ref().to_path_buf()));
        self
    }

    /// The converted W-encoder checkpoint (`encoder.*`).
    pub fn w_encoder_file(mut self, path: impl AsRef<Path>) -> Self {
        self.w_encoder = Some(Source::File(path.as_ref().to_path_buf()));
        self
    }

    /// The HyperStyle checkpoint's tensors from a store already in memory.
    pub fn model_weights(mut self, store: WeightStore) -> Self {
        self.model = Some(Source::Store(Box::new(store)));
        self
    }

    /// The W-encoder checkpoint's tensors from a store already in memory.
    pub fn w_encoder_weights(mut self, store: WeightStore) -> Self {
        self.w_encoder = Some(Source::Store(Box::new(store)));
        self
    }

    /// Overrides what the checkpoint's `opts` metadata says the model is.
    pub fn config(mut self, config: HyperStyleConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Overrides only the domain (input size and crops) of the configuration, keeping the
    /// checkpoint's generator size and tuned layers.
    pub fn domain(mut self, domain: Domain) -> Self {
        self.domain = Some(domain);
        self
    }

    /// How the generator runs its per-sample convolutions (see [`ConvStrategy`]).
    pub fn conv_strategy(mut self, strategy: ConvStrategy) -> Self {
        self.conv_strategy = strategy;
        self
    }

    /// Reads the weights and builds the model on `device`. Both checkpoints are needed; either
    /// may keep its networks under the converter's `state_dict/` level or bare. A device that
    /// cannot start (e.g. no GPU driver) is [`Error::Device`](crate::Error::Device)
    /// ([`crate::backend::check_device`]).
    pub fn load(self, device: &B::Device) -> Result<HyperStyle<B>> {
        crate::backend::check_device::<B>(device)?;
        let missing = |what: &str| hyperstyle_core::Error::InvalidConfig(format!("no {what} checkpoint given"));
        let model = self
            .model
            .ok_or_else(|| missing("HyperStyle"))?
            .open(Kind::Hyperstyle)?;
        let w_encoder = self
            .w_encoder
            .ok_or_else(|| missing("W-encoder"))?
            .open(Kind::WEncoder)?;
        let mut config = match self.config {
            Some(config) => config,
            None => HyperStyleConfig::from_opts(&model.opts()?)?,
        };
        if let Some(domain) = self.domain {
            config.domain = domain;
        }
        config.generator_config().validate()?;
        let n_styles = config.n_styles();
        let decoder = model.state_dict_prefix("decoder.", "conv1.conv.weight");
        let mut generator = Generator::load(&model.scope(&decoder), &config.generator_config(), device)?;
        generator.set_conv_strategy(self.conv_strategy);
        let hypernet_prefix = model.state_dict_prefix("hypernet.", "conv1.weight");
        let hypernet = Hypernetwork::load(&model.scope(&hypernet_prefix), &config.hypernet_config(), device)?;
        let latent_avg = LatentAverage::load(&model.root(), "latent_avg", n_styles, device)?;
        let encoder = w_encoder.state_dict_prefix("encoder.", "linear.weight");
        let w_encoder = WEncoder::load(&w_encoder.scope(&encoder), n_styles, device)?;
        Ok(HyperStyle {
            w_encoder,
            latent_avg,
            hypernet,
            generator,
            config,
        })
    }
}

impl<B: Backend> HyperStyle<B> {
    /// A [`HyperStyleBuilder`]: name the checkpoints, then `load`.
    pub fn builder() -> HyperStyleBuilder<B> {
        HyperStyleBuilder::default()
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

    /// `(height, width)` of the images the networks take: 256×256 (cars 192×256).
    pub fn input_size(&self) -> (usize, usize) {
        self.config.domain.input_size()
    }

    /// Images at the domain's input size, `[batch, 3, h, w]` in [−1, 1].
    fn check_input(&self, images: &Tensor<B, 4>) -> Result<()> {
        let (h, w) = self.input_size();
        let dims = images.dims();
        if dims[0] == 0 || dims[1] != 3 || dims[2] != h || dims[3] != w {
            return Err(invalid_input(format!(
                "expected images [batch ≥ 1, 3, {h}, {w}], got {dims:?}"
            )));
        }
        Ok(())
    }

    /// Full-resolution image → (content crop, pooled to the input size), as upstream's loop.
    fn step_output(&self, image: Tensor<B, 4>) -> Step<B> {
        let (top, bottom) = self.config.domain.content_rows(self.config.output_size);
        let image = crop_rows(image, top, bottom);
        let (h, w) = self.input_size();
        Step {
            pooled: pool(image.clone(), h, w),
            image,
        }
    }

    /// The initial inversion: `w_codes = WEncoder(x) + latent_avg`, and the unmodified
    /// generator's image pooled to 256×256 (returned uncropped; cars feed rows 32..224 to step 0).
    pub fn w_inversion(&self, images: Tensor<B, 4>) -> Result<(Tensor<B, 3>, Tensor<B, 4>)> {
        let latents = self.w_codes(images)?;
        let image = self.w_image(latents.clone())?;
        Ok((latents, image))
    }

    /// `WEncoder(x) + latent_avg`: `[batch, n_styles, 512]`.
    fn w_codes(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        self.check_input(&images)?;
        Ok(self.w_encoder.w_codes(images, &self.latent_avg)?)
    }

    /// The unmodified generator's image of `latents`, pooled to 256×256.
    fn w_image(&self, latents: Tensor<B, 3>) -> Result<Tensor<B, 4>> {
        let image = self.generator.synthesis(latents, &Noise::Stored, None)?;
        Ok(pool(image, 256, 256))
    }

    /// One refinement step: offsets from (input, current reconstruction), added to the
    /// accumulated ones, then the generator with the new sum.
    pub fn refinement_step(
        &self,
        images: Tensor<B, 4>,
        reconstruction: Tensor<B, 4>,
        latents: Tensor<B, 3>,
        accumulated: Option<WeightOffsets<B>>,
    ) -> Result<(WeightOffsets<B>, Step<B>)> {
        let offsets = self.step_offsets(images, reconstruction, accumulated)?;
        let step = self.step_image(latents, &offsets)?;
        Ok((offsets, step))
    }

    /// The hypernetwork's offsets for (input, reconstruction), added to the accumulated ones.
    fn step_offsets(
        &self,
        images: Tensor<B, 4>,
        reconstruction: Tensor<B, 4>,
        accumulated: Option<WeightOffsets<B>>,
    ) -> Result<WeightOffsets<B>> {
        let offsets = self.hypernet.forward(images, reconstruction)?;
        Ok(match accumulated {
            Some(sum) => sum.accumulate(offsets)?,
            None => offsets,
        })
    }

    /// The generator's image with `offsets`, cropped and pooled as the next step needs it.
    fn step_image(&self, latents: Tensor<B, 3>, offsets: &WeightOffsets<B>) -> Result<Step<B>> {
        let image = self.generator.synthesis(latents, &Noise::Stored, Some(offsets))?;
        Ok(self.step_output(image))
    }

    /// Inverts a batch of normalised images (`[batch, 3, h, w]` at the domain's input size, see
    /// [`HyperStyle::input_size`]): the W inversion, then `n_iters ≥ 1` refinement steps, each
    /// fed the previous step's image pooled to the input size. Calls `on_step(i)` after step `i`
    /// (for progress reporting).
    pub fn invert_with_progress(
        &self,
        images: Tensor<B, 4>,
        n_iters: usize,
        mut on_step: impl FnMut(usize),
    ) -> Result<Inversion<B>> {
        self.invert_observed(images, n_iters, |stage| {
            if let Stage::Synthesis(i) = stage {
                on_step(i)
            }
        })
    }

    /// [`HyperStyle::invert`] calling `on_stage` after each stage has been issued to the device
    /// (on asynchronous backends it may still be running: see [`HyperStyle::invert_timed`]).
    pub fn invert_observed(
        &self,
        images: Tensor<B, 4>,
        n_iters: usize,
        mut on_stage: impl FnMut(Stage),
    ) -> Result<Inversion<B>> {
        if n_iters == 0 {
            return Err(invalid_input(
                "HyperStyle needs at least one refinement step (n_iters ≥ 1)",
            ));
        }
        let latents = self.w_codes(images.clone())?;
        on_stage(Stage::WEncoder);
        let w_inversion = self.w_image(latents.clone())?;
        on_stage(Stage::WSynthesis);
        // Step 0 sees the W inversion at 256×256 (cars: its rows 32..224, i.e. 192×256).
        let (top, bottom) = self.config.domain.content_rows(256);
        let mut reconstruction = crop_rows(w_inversion.clone(), top, bottom);
        let mut offsets: Option<WeightOffsets<B>> = None;
        let mut steps = Vec::with_capacity(n_iters);
        for i in 0..n_iters {
            let accumulated = self.step_offsets(images.clone(), reconstruction, offsets)?;
            on_stage(Stage::Hypernet(i));
            let step = self.step_image(latents.clone(), &accumulated)?;
            on_stage(Stage::Synthesis(i));
            reconstruction = step.pooled.clone();
            offsets = Some(accumulated);
            steps.push(step);
        }
        Ok(Inversion {
            latents,
            offsets: offsets.expect("n_iters ≥ 1"),
            w_inversion,
            steps,
        })
    }

    /// [`HyperStyle::invert`] with the wall time of every stage. Each stage is closed by a
    /// device synchronisation, so that on asynchronous backends (CUDA, wgpu) a stage's time is
    /// the time its work took, kernel compilation and autotuning included on a first call, not
    /// the time to queue it. The synchronisations cost a little throughput: time whole
    /// inversions with [`HyperStyle::invert`].
    pub fn invert_timed(&self, images: Tensor<B, 4>, n_iters: usize) -> Result<(Inversion<B>, StageTimes)> {
        let device = self.latent_avg.value().device();
        let sync = |device: &B::Device| B::sync(device).map_err(|e| crate::error::Error::Device(format!("{e:?}")));
        sync(&device)?;
        let mut times = StageTimes::default();
        let mut failure = None;
        let mut events = runtime_events();
        let mut start = Instant::now();
        let inversion = self.invert_observed(images, n_iters, |stage| {
            if let Err(e) = sync(&device) {
                failure.get_or_insert(e);
            }
            times.stages.push((stage, start.elapsed()));
            // Reading the counts may wait for the runtime's log: outside the stages' times.
            let now = runtime_events();
            times.events.push(now - events);
            events = now;
            start = Instant::now();
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok((inversion, times)),
        }
    }

    /// [`HyperStyle::invert_with_progress`] without progress reporting.
    pub fn invert(&self, images: Tensor<B, 4>, n_iters: usize) -> Result<Inversion<B>> {
        self.invert_with_progress(images, n_iters, |_| {})
    }

    /// Inverts photos of any size: each is resized to the model's input size with Pillow's
    /// bilinear filter (as upstream's transforms do) and normalised to [−1, 1]. Faces should be
    /// FFHQ-aligned crops.
    pub fn invert_images(&self, images: &[RgbImage], n_iters: usize) -> Result<Inversion<B>> {
        self.invert_images_with_progress(images, n_iters, |_| {})
    }

    /// [`HyperStyle::invert_images`] calling `on_step(i)` after step `i`.
    pub fn invert_images_with_progress(
        &self,
        images: &[RgbImage],
        n_iters: usize,
        on_step: impl FnMut(usize),
    ) -> Result<Inversion<B>> {
        if images.is_empty() {
            return Err(invalid_input("no images to invert"));
        }
        let device = self.latent_avg.value().device();
        let batch = images_to_tensor::<B>(images, self.input_size(), &device);
        self.invert_with_progress(batch, n_iters, on_step)
    }
}
