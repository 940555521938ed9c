//! [`Trainer`]: the original coach's training step (`Coach.perform_forward_on_batch` with
//! `train=True`, then one optimizer step) and its validation pass.

use burn::module::{AutodiffModule, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::module::adaptive_avg_pool2d;
use hyperstyle_core::weights::{tensor_values_f64, NamedTensor};
use hyperstyle_core::{Error, Result, WeightStore};
use hyperstyle_encoders::{LatentAverage, WEncoder};
use hyperstyle_hypernet::HypernetConfig;
use hyperstyle_stylegan2::{Generator, GeneratorConfig, Noise, WeightOffsets};
use serde::{Deserialize, Serialize};

use crate::burn_ranger::BurnRanger;
use crate::hypernetwork::TrainableHypernetwork;
use crate::layers::{Mode, ParamVisitor};
use crate::loss::{Lambdas, LossDict, LossNets};
use crate::ranger::RangerConfig;

/// Which optimizer trains the hypernetwork (upstream's `optim_name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OptimizerChoice {
    /// `ranger` (the default): RAdam + Lookahead + gradient centralization, the original's
    /// hyper-parameters (its `lr` is ignored: [`TrainConfig::learning_rate`] is used).
    Ranger(RangerConfig),
    /// `adam`: `torch.optim.Adam` with its defaults (β = (0.9, 0.999), ε = 1e-8). Burn's Adam
    /// computes `m̂/(√v̂ + ε)` with the bias corrections folded into one factor, the same
    /// expression as PyTorch's; only its default ε (1e-5) differs, so it is set to 1e-8 here.
    Adam,
}

/// What a training run does per step: upstream's training options that shape the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Loss weights.
    pub lambdas: Lambdas,
    /// Refinement iterations per batch (`n_iters_per_batch`), at least one.
    pub n_iters_per_batch: usize,
    /// `learning_rate` (upstream default 1e-4).
    pub learning_rate: f64,
    /// The optimizer.
    pub optimizer: OptimizerChoice,
    /// Upstream's `dataset_type` (`ffhq_hypernet`, `cars_hypernet`, …). A cars dataset crops
    /// the images to rows 32..224 of the 256×256 pooled output and the perceptual losses see
    /// 192×256 (`"cars" in dataset_type`). Saved in the checkpoints' `opts`.
    pub dataset_type: String,
}

impl TrainConfig {
    /// The released faces model's options: faces lambdas, five iterations, Ranger at 1e-4.
    pub fn faces() -> Self {
        Self {
            lambdas: Lambdas::faces(),
            n_iters_per_batch: 5,
            learning_rate: 1e-4,
            optimizer: OptimizerChoice::Ranger(RangerConfig {
                lr: 1e-4,
                ..Default::default()
            }),
            dataset_type: "ffhq_hypernet".into(),
        }
    }

    /// Whether this is the cars domain.
    pub fn is_cars(&self) -> bool {
        self.dataset_type.contains("cars")
    }

    fn validate(&self) -> Result<()> {
        self.lambdas.validate()?;
        if self.n_iters_per_batch == 0 {
            return Err(Error::InvalidConfig("n_iters_per_batch must be at least 1".into()));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::InvalidConfig(format!(
                "learning rate must be positive, got {}",
                self.learning_rate
            )));
        }
        Ok(())
    }

    /// `(height, width)` the losses see.
    fn loss_size(&self) -> [usize; 2] {
        if self.is_cars() {
            [192, 256]
        } else {
            [256, 256]
        }
    }
}

/// One training or validation batch.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// Input images `[batch, 3, h, w]`, normalised to [−1, 1] (256×256; cars 192×256).
    pub x: Tensor<B, 4>,
    /// Targets, same shape (the input itself in the original's datasets).
    pub y: Tensor<B, 4>,
    /// A pre-extracted W inversion, pooled (and for cars cropped) as `x` (upstream's
    /// `LatentsImagesDataset`); `None`: computed with the W encoder.
    pub y_hat: Option<Tensor<B, 4>>,
    /// Its W+ codes `[batch, n_styles, 512]`; given exactly when `y_hat` is.
    pub codes: Option<Tensor<B, 3>>,
}

impl<B: Backend> Batch<B> {
    /// A batch of images that are their own targets (the original's image datasets).
    pub fn images(x: Tensor<B, 4>) -> Self {
        Self {
            y: x.clone(),
            x,
            y_hat: None,
            codes: None,
        }
    }
}

/// What one training or validation step produced: what a logger needs to draw the original's
/// image grids and print its metrics.
#[derive(Debug, Clone)]
pub struct StepOutput<B: Backend> {
    /// Per iteration, the loss values under upstream's names.
    pub losses: Vec<LossDict>,
    /// Per iteration, the reconstruction the loss saw `[batch, 3, h, w]` (pooled, detached).
    pub images: Vec<Tensor<B, 4>>,
    /// The initial W inversion, pooled to 256×256.
    pub w_inversion: Tensor<B, 4>,
}

impl<B: Backend> StepOutput<B> {
    /// The last iteration's losses (what the original logs for a step).
    pub fn last_losses(&self) -> &LossDict {
        self.losses.last().expect("a step has at least one iteration")
    }
}

/// The hypernetwork's gradients of one step, summed over its iterations.
pub struct Gradients(GradientsParams);

impl Gradients {
    /// Calls `f(name, shape, values)` for every parameter of `hypernet` that has a gradient,
    /// in `named_parameters()` order (one tensor's values in memory at a time). The values
    /// are f64: exact whether the model computes in float32 or float64.
    pub fn for_each<B: AutodiffBackend>(
        &self,
        hypernet: &TrainableHypernetwork<B>,
        mut f: impl FnMut(&str, &[usize], Vec<f64>),
    ) -> Result<()> {
        struct Read<'a, F>(&'a GradientsParams, F, Option<Error>);
        impl<B: AutodiffBackend, F: FnMut(&str, &[usize], Vec<f64>)> ParamVisitor<B> for Read<'_, F> {
            fn param<const D: usize>(&mut self, name: &str, p: &Param<Tensor<B, D>>) {
                if let Some(g) = self.0.get::<B::InnerBackend, D>(p.id) {
                    let shape = g.dims();
                    match tensor_values_f64(g) {
                        Ok(values) => (self.1)(name, &shape, values),
                        Err(e) => self.2 = Some(e),
                    }
                }
            }
        }
        let mut read = Read(&self.0, &mut f, None);
        hypernet.visit(&mut read);
        match read.2 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The optimizer, one of the two the original offers.
pub(crate) enum Optim<B: AutodiffBackend> {
    Ranger(OptimizerAdaptor<BurnRanger, TrainableHypernetwork<B>, B>),
    Adam(OptimizerAdaptor<Adam, TrainableHypernetwork<B>, B>),
    /// Only while the state is being replaced.
    Empty,
}

/// HyperStyle's training loop body: a trainable hypernetwork, the frozen generator (and W
/// encoder), the frozen loss networks and an optimizer.
pub struct Trainer<B: AutodiffBackend> {
    pub(crate) hypernet: Option<TrainableHypernetwork<B>>,
    pub(crate) hypernet_config: HypernetConfig,
    generator: Generator<B>,
    w_encoder: Option<WEncoder<B>>,
    latent_avg: LatentAverage<B>,
    losses: LossNets<B>,
    pub(crate) config: TrainConfig,
    pub(crate) optim: Optim<B>,
    /// The decoder's tensors as read (upstream keys under `decoder.`), written back unchanged.
    pub(crate) decoder_tensors: Vec<NamedTensor>,
    /// Steps taken (`global_step`).
    pub global_step: u64,
    /// The best validation loss so far (`best_val_loss`).
    pub best_val_loss: Option<f64>,
}

/// The frozen parts a [`Trainer`] is built from.
pub struct FrozenNetworks<B: Backend> {
    /// The generator.
    pub generator: Generator<B>,
    /// Its tensors under upstream keys (`conv1.conv.weight`, …), saved with the checkpoints.
    pub decoder_tensors: Vec<NamedTensor>,
    /// `latent_avg`, `[n_styles, 512]`.
    pub latent_avg: LatentAverage<B>,
    /// The W encoder, for batches without pre-extracted inversions.
    pub w_encoder: Option<WEncoder<B>>,
}

impl<B: Backend> FrozenNetworks<B> {
    /// The decoder and `latent_avg` of a HyperStyle checkpoint (`decoder.*` with or without the
    /// converter's `state_dict/` level, top-level `latent_avg`), and a W encoder from its own
    /// checkpoint if given (`encoder.*`).
    pub fn from_checkpoint(
        model: &WeightStore,
        w_encoder: Option<&WeightStore>,
        generator: &GeneratorConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let prefix = model.state_dict_prefix("decoder.", "conv1.conv.weight");
        let n_styles = generator.n_latent();
        let generator_net = Generator::load(&model.scope(&prefix), generator, device)?;
        let mut decoder_tensors = Vec::new();
        for key in model.keys() {
            if let Some(name) = key.strip_prefix(&prefix) {
                let (shape, values) = model.any_values(&key)?;
                decoder_tensors.push((name.to_string(), shape, values));
            }
        }
        decoder_tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let latent_avg = LatentAverage::load(&model.root(), "latent_avg", n_styles, device)?;
        let w_encoder = match w_encoder {
            Some(store) => {
                let prefix = store.state_dict_prefix("encoder.", "linear.weight");
                Some(WEncoder::load(&store.scope(&prefix), n_styles, device)?)
            }
            None => None,
        };
        Ok(Self {
            generator: generator_net,
            decoder_tensors,
            latent_avg,
            w_encoder,
        })
    }
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A trainer of `hypernet` (configured as `hypernet_config`) with the frozen networks and
    /// loss networks. Fails if a loss term with a positive lambda has no network.
    pub fn new(
        hypernet: TrainableHypernetwork<B>,
        hypernet_config: HypernetConfig,
        frozen: FrozenNetworks<B>,
        losses: LossNets<B>,
        config: TrainConfig,
    ) -> Result<Self> {
        config.validate()?;
        losses.check(&config.lambdas)?;
        let optim = match &config.optimizer {
            OptimizerChoice::Ranger(ranger) => Optim::Ranger(ranger.init_burn()?),
            OptimizerChoice::Adam => Optim::Adam(AdamConfig::new().with_epsilon(1e-8).init()),
        };
        Ok(Self {
            hypernet: Some(hypernet),
            hypernet_config,
            generator: frozen.generator.no_grad(),
            w_encoder: frozen.w_encoder.map(|w| w.no_grad()),
            latent_avg: frozen.latent_avg.no_grad(),
            losses: losses.no_grad(),
            config,
            optim,
            decoder_tensors: frozen.decoder_tensors,
            global_step: 0,
            best_val_loss: None,
        })
    }

    /// The hypernetwork being trained.
    pub fn hypernet(&self) -> &TrainableHypernetwork<B> {
        self.hypernet
            .as_ref()
            .expect("the hypernetwork is only taken during a step")
    }

    /// The step's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The hypernetwork's configuration.
    pub fn hypernet_config(&self) -> &HypernetConfig {
        &self.hypernet_config
    }

    /// The frozen generator.
    pub fn generator(&self) -> &Generator<B> {
        &self.generator
    }

    /// `latent_avg`.
    pub fn latent_avg(&self) -> &LatentAverage<B> {
        &self.latent_avg
    }

    /// One training step (`optimizer.zero_grad()`, `perform_forward_on_batch(batch,
    /// train=True)`, `optimizer.step()`), the hypernetwork's BatchNorms in training mode.
    ///
    /// Each iteration starts from the previous one's offsets and image, detached (no gradient
    /// flows into earlier iterations), adds the hypernetwork's new offsets, renders, pools to
    /// 256×256 (cars: rows 32..224), and back-propagates its own loss; the gradients of all
    /// iterations add up and one optimizer step follows.
    ///
    /// Each iteration's loss is back-propagated as soon as it is computed and its gradients
    /// added to the running sum (as `loss.backward()` accumulates into `.grad` upstream) rather
    /// than summing the losses and back-propagating once: that keeps one iteration's graph
    /// alive at a time instead of all of them, and the extra gradient buffer is one copy of the
    /// parameters, smaller than the activations of an iteration at the released sizes
    /// (ResNet-34, the per-sample generator weights, LPIPS and ArcFace).
    pub fn train_step(&mut self, batch: Batch<B>) -> Result<StepOutput<B::InnerBackend>> {
        let (output, grads) = self.compute_gradients(batch)?;
        self.apply_gradients(grads);
        Ok(output)
    }

    /// The first half of [`Self::train_step`]: the iterations and their summed gradients,
    /// without the optimizer step (the running statistics and `num_batches_tracked` are
    /// updated, as the forward passes do upstream).
    pub fn compute_gradients(&mut self, batch: Batch<B>) -> Result<(StepOutput<B::InnerBackend>, Gradients)> {
        let (codes, w_inversion) = self.w_inversion(&batch)?;
        let mut hypernet = self.hypernet.take().expect("the hypernetwork is present between steps");
        let result = self.iterations(&mut hypernet, &batch, codes, w_inversion);
        self.hypernet = Some(hypernet);
        let (output, grads) = result?;
        Ok((output, Gradients(grads)))
    }

    /// The second half of [`Self::train_step`]: one optimizer step with `grads`.
    pub fn apply_gradients(&mut self, grads: Gradients) {
        let hypernet = self.hypernet.take().expect("the hypernetwork is present between steps");
        let lr = self.config.learning_rate;
        let hypernet = match &mut self.optim {
            Optim::Ranger(optim) => optim.step(lr, hypernet, grads.0),
            Optim::Adam(optim) => optim.step(lr, hypernet, grads.0),
            Optim::Empty => unreachable!("the optimizer is only replaced while resuming"),
        };
        self.hypernet = Some(hypernet);
        self.global_step += 1;
    }

    /// The training iterations of one batch: outputs and the summed gradients.
    fn iterations(
        &self,
        hypernet: &mut TrainableHypernetwork<B>,
        batch: &Batch<B>,
        codes: Tensor<B, 3>,
        w_inversion: Tensor<B, 4>,
    ) -> Result<(StepOutput<B::InnerBackend>, GradientsParams)> {
        let mut y_hat = self.initial_reconstruction(batch, &w_inversion);
        let mut offsets: Option<WeightOffsets<B>> = None;
        let mut grads: Option<GradientsParams> = None;
        let mut output = StepOutput {
            losses: Vec::new(),
            images: Vec::new(),
            w_inversion: w_inversion.inner(),
        };
        for i in 0..self.config.n_iters_per_batch {
            if i > 0 {
                // `clone().detach().requires_grad_(True)` upstream: a fresh leaf.
                y_hat = y_hat.detach();
                offsets = offsets.map(detach_offsets);
            }
            let step = hypernet.forward(batch.x.clone(), y_hat, Mode::Train)?;
            let accumulated = match offsets {
                Some(sum) => sum.accumulate(step)?,
                None => step,
            };
            let image = self.render(codes.clone(), &accumulated)?;
            let (loss, dict) = self.losses.loss(
                image.clone(),
                batch.y.clone(),
                &self.config.lambdas,
                self.config.loss_size(),
            )?;
            let step_grads = GradientsParams::from_grads(loss.backward(), hypernet);
            grads = Some(match grads {
                Some(sum) => add_gradients(sum, step_grads, hypernet),
                None => step_grads,
            });
            output.losses.push(dict);
            output.images.push(image.clone().inner());
            y_hat = image;
            offsets = Some(accumulated);
        }
        Ok((output, grads.expect("at least one iteration")))
    }

    /// The validation pass of one batch (`perform_forward_on_batch` under `torch.no_grad()`
    /// with the network in evaluation mode): no gradients, BatchNorms on running statistics.
    pub fn validate(&self, batch: &Batch<B>) -> Result<StepOutput<B::InnerBackend>> {
        let inner = |t: &Tensor<B, 4>| t.clone().inner();
        let batch = Batch {
            x: inner(&batch.x),
            y: inner(&batch.y),
            y_hat: batch.y_hat.as_ref().map(inner),
            codes: batch.codes.as_ref().map(|c| c.clone().inner()),
        };
        let mut hypernet = self.hypernet().valid();
        let generator = self.generator.valid();
        let losses = self.losses.valid();
        let latent_avg = self.latent_avg.valid();
        let w_encoder = self.w_encoder.as_ref().map(|w| w.valid());
        let (codes, w_inversion) = w_inversion_with(&generator, w_encoder.as_ref(), &latent_avg, &batch)?;
        let mut y_hat = initial_reconstruction(&self.config, &batch, &w_inversion);
        let mut offsets: Option<WeightOffsets<B::InnerBackend>> = None;
        let mut output = StepOutput {
            losses: Vec::new(),
            images: Vec::new(),
            w_inversion,
        };
        for _ in 0..self.config.n_iters_per_batch {
            let step = hypernet.forward(batch.x.clone(), y_hat, Mode::Eval)?;
            let accumulated = match offsets {
                Some(sum) => sum.accumulate(step)?,
                None => step,
            };
            let image = render(&self.config, &generator, codes.clone(), &accumulated)?;
            let (_, dict) = losses.loss(
                image.clone(),
                batch.y.clone(),
                &self.config.lambdas,
                self.config.loss_size(),
            )?;
            output.losses.push(dict);
            output.images.push(image.clone());
            y_hat = image;
            offsets = Some(accumulated);
        }
        Ok(output)
    }

    /// The W inversion of images `x` (`[batch, 3, h, w]`, normalised): `(codes, image pooled to
    /// 256×256)`, without gradients, to pre-extract once what [`Batch::y_hat`] and
    /// [`Batch::codes`] can carry (upstream's `LatentsImagesDataset`).
    pub fn invert_w(&self, x: Tensor<B, 4>) -> Result<(Tensor<B, 3>, Tensor<B, 4>)> {
        self.w_inversion(&Batch::images(x))
    }

    fn w_inversion(&self, batch: &Batch<B>) -> Result<(Tensor<B, 3>, Tensor<B, 4>)> {
        let (codes, image) = w_inversion_with(&self.generator, self.w_encoder.as_ref(), &self.latent_avg, batch)?;
        Ok((codes.detach(), image.detach()))
    }

    fn initial_reconstruction(&self, batch: &Batch<B>, w_inversion: &Tensor<B, 4>) -> Tensor<B, 4> {
        initial_reconstruction(&self.config, batch, w_inversion)
    }

    fn render(&self, codes: Tensor<B, 3>, offsets: &WeightOffsets<B>) -> Result<Tensor<B, 4>> {
        render(&self.config, &self.generator, codes, offsets)
    }
}

/// `(codes, W inversion pooled to 256×256)`: given by the batch, or from the W encoder and the
/// unmodified generator.
fn w_inversion_with<B: Backend>(
    generator: &Generator<B>,
    w_encoder: Option<&WEncoder<B>>,
    latent_avg: &LatentAverage<B>,
    batch: &Batch<B>,
) -> Result<(Tensor<B, 3>, Tensor<B, 4>)> {
    match (&batch.codes, &batch.y_hat) {
        (Some(codes), Some(y_hat)) => Ok((codes.clone(), y_hat.clone())),
        (None, None) => {
            let encoder = w_encoder.ok_or_else(|| {
                Error::InvalidInput("the batch has no W inversion and the trainer has no W encoder".into())
            })?;
            let codes = encoder.w_codes(batch.x.clone(), latent_avg)?;
            let image = generator.synthesis(codes.clone(), &Noise::Stored, None)?;
            Ok((codes, pool256(image)))
        }
        _ => Err(Error::InvalidInput(
            "a batch gives both the W inversion and its codes, or neither".into(),
        )),
    }
}

/// What iteration 0 sees: the W inversion (cars: its rows 32..224, unless the batch gave it).
fn initial_reconstruction<B: Backend>(
    config: &TrainConfig,
    batch: &Batch<B>,
    w_inversion: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    if config.is_cars() && batch.y_hat.is_none() {
        w_inversion.clone().narrow(2, 32, 192)
    } else {
        w_inversion.clone()
    }
}

/// The generator's image with `offsets` (stored noise), pooled to 256×256 (`face_pool`), cars
/// cropped to rows 32..224.
fn render<B: Backend>(
    config: &TrainConfig,
    generator: &Generator<B>,
    codes: Tensor<B, 3>,
    offsets: &WeightOffsets<B>,
) -> Result<Tensor<B, 4>> {
    let image = pool256(generator.synthesis(codes, &Noise::Stored, Some(offsets))?);
    Ok(if config.is_cars() {
        image.narrow(2, 32, 192)
    } else {
        image
    })
}

/// `AdaptiveAvgPool2d((256, 256))`.
fn pool256<B: Backend>(image: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = image.dims();
    if (h, w) == (256, 256) {
        image
    } else {
        adaptive_avg_pool2d(image, [256, 256])
    }
}

/// The offsets with their graph cut.
fn detach_offsets<B: Backend>(offsets: WeightOffsets<B>) -> WeightOffsets<B> {
    WeightOffsets::new(offsets.into_vec().into_iter().map(|o| o.map(Tensor::detach)).collect())
}

/// `a + b`, parameter by parameter, for the parameters of `module`.
fn add_gradients<B: AutodiffBackend>(
    mut a: GradientsParams,
    mut b: GradientsParams,
    module: &TrainableHypernetwork<B>,
) -> GradientsParams {
    struct Add<'a>(&'a mut GradientsParams, &'a mut GradientsParams);
    impl<B: AutodiffBackend> ParamVisitor<B> for Add<'_> {
        fn param<const D: usize>(&mut self, _: &str, p: &Param<Tensor<B, D>>) {
            let sum = match (
                self.0.remove::<B::InnerBackend, D>(p.id),
                self.1.remove::<B::InnerBackend, D>(p.id),
            ) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(y),
            };
            if let Some(sum) = sum {
                self.0.register(p.id, sum);
            }
        }
    }
    module.visit::<Add>(&mut Add(&mut a, &mut b));
    a
}
