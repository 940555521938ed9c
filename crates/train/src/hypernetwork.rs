//! [`TrainableHypernetwork`]: upstream's `SharedWeightsHyperNetResNet` with every parameter in
//! its original shape and name, BatchNorms in training or evaluation mode.

use burn::module::Param;
use burn::prelude::*;
use hyperstyle_core::weights::{tensor_values, NamedTensor};
use hyperstyle_core::{Error, Result, Weights};
use hyperstyle_hypernet::config::is_shared;
use hyperstyle_hypernet::HypernetConfig;
use hyperstyle_stylegan2::WeightOffsets;

use crate::backbone::{Backbone, BackboneInit};
use crate::init::Rng;
use crate::layers::{Mode, ParamVisitor};
use crate::refinement::{HyperRefinementBlock, RefinementBlock, SharedHypernet};

/// The block that predicts one tuned generator layer's offset.
#[derive(Module, Debug)]
pub enum TunedBlock<B: Backend> {
    /// A shared layer: a code for the shared hypernet.
    Shared(HyperRefinementBlock<B>),
    /// Any other tuned layer: its own offset.
    Own(RefinementBlock<B>),
}

/// The hypernetwork as the original trains it (see the [crate docs](crate)).
///
/// Loads from the same weights as the inference `hyperstyle_hypernet::Hypernetwork` (upstream key
/// names relative to `hypernet.`), or starts fresh ([`TrainableHypernetwork::init`]);
/// [`TrainableHypernetwork::tensors`] writes the parameters back under those names.
#[derive(Module, Debug)]
pub struct TrainableHypernetwork<B: Backend> {
    backbone: Backbone<B>,
    shared_weight_hypernet: SharedHypernet<B>,
    blocks: Vec<TunedBlock<B>>,
    /// The generator layer of each entry of `blocks`.
    layers: Vec<usize>,
    n_outputs: usize,
    /// Training-mode forwards so far: every BatchNorm's `num_batches_tracked`.
    batches_tracked: u64,
}

impl<B: Backend> TrainableHypernetwork<B> {
    /// Loads the network from `weights` (keys `conv1.weight`, `bn1.*`, `relu.weight`, `body.*`,
    /// `shared_weight_hypernet.*`, `refinement_blocks.{j}.*`; the shared blocks'
    /// `hypernet.*` aliases are skipped). Keys the network does not have are an error.
    pub fn load(weights: &Weights, config: &HypernetConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let mut layers = Vec::new();
        let mut blocks = Vec::new();
        for layer in config.tuned_layers() {
            let w = weights.pp("refinement_blocks").pp(layer.index);
            blocks.push(if is_shared(&layer) {
                TunedBlock::Shared(HyperRefinementBlock::load(&w, device)?)
            } else {
                TunedBlock::Own(RefinementBlock::load(&w, &layer, device)?)
            });
            layers.push(layer.index);
        }
        let network = Self {
            backbone: Backbone::load(weights, device)?,
            shared_weight_hypernet: SharedHypernet::load(&weights.pp("shared_weight_hypernet"), device)?,
            blocks,
            layers,
            n_outputs: config.n_outputs(),
            batches_tracked: 0,
        };
        weights.check_all_used()?;
        Ok(network)
    }

    /// A fresh network as the original training starts one: PyTorch's default initialisation
    /// of the refinement blocks' convolutions, a standard-normal `EqualLinear` weight (zero
    /// bias), `fmod(randn/40, 2)` for the shared hypernet, PReLU 0.25, and the backbone as
    /// `backbone` says. Random values come from `seed`.
    pub fn init(config: &HypernetConfig, backbone: BackboneInit, seed: u64, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let mut rng = Rng::new(seed);
        let backbone = Backbone::init(backbone, &mut rng, device)?;
        let shared_weight_hypernet = SharedHypernet::init(&mut rng, device);
        let mut layers = Vec::new();
        let mut blocks = Vec::new();
        for layer in config.tuned_layers() {
            blocks.push(if is_shared(&layer) {
                TunedBlock::Shared(HyperRefinementBlock::init(&mut rng, device))
            } else {
                TunedBlock::Own(RefinementBlock::init(&layer, &mut rng, device))
            });
            layers.push(layer.index);
        }
        Ok(Self {
            backbone,
            shared_weight_hypernet,
            blocks,
            layers,
            n_outputs: config.n_outputs(),
            batches_tracked: 0,
        })
    }

    /// Number of generator layers (length of the offset list).
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Training-mode forwards so far (the BatchNorms' `num_batches_tracked`).
    pub fn batches_tracked(&self) -> u64 {
        self.batches_tracked
    }

    /// Sets the BatchNorms' `num_batches_tracked` (when resuming).
    pub fn set_batches_tracked(&mut self, n: u64) {
        self.batches_tracked = n;
    }

    /// One refinement step's offsets from the input image and the current reconstruction
    /// (`[batch, 3, h, w]` each, normalised to [−1, 1]): one entry per generator layer, `None`
    /// where the layer is not tuned, `[batch, out, in, 3, 3]` (shared layers) or
    /// `[batch, out, in, 1, 1]` (the others). In [`Mode::Train`] the BatchNorms normalise with
    /// the batch statistics and update their running statistics.
    pub fn forward(
        &mut self,
        image: Tensor<B, 4>,
        reconstruction: Tensor<B, 4>,
        mode: Mode,
    ) -> Result<WeightOffsets<B>> {
        let [b, c, h, w] = image.dims();
        if reconstruction.dims() != [b, c, h, w] || c != 3 || b == 0 {
            return Err(Error::InvalidInput(format!(
                "image {:?} and reconstruction {:?} must both be [batch ≥ 1, 3, h, w]",
                image.dims(),
                reconstruction.dims()
            )));
        }
        if mode == Mode::Train {
            self.batches_tracked += 1;
        }
        let features = self.backbone.forward(Tensor::cat(vec![image, reconstruction], 1), mode);
        let mut offsets: Vec<Option<Tensor<B, 5>>> = vec![None; self.n_outputs];
        // The shared layers' codes go through the shared hypernet in one call.
        let (mut shared_layers, mut codes) = (Vec::new(), Vec::new());
        for (&j, block) in self.layers.iter().zip(&self.blocks) {
            match block {
                TunedBlock::Shared(block) => {
                    shared_layers.push(j);
                    codes.push(block.forward(features.clone()));
                }
                TunedBlock::Own(block) => offsets[j] = Some(block.forward(features.clone())),
            }
        }
        if !codes.is_empty() {
            let kernels = self.shared_weight_hypernet.forward(Tensor::cat(codes, 0));
            for (i, j) in shared_layers.into_iter().enumerate() {
                offsets[j] = Some(kernels.clone().narrow(0, i * b, b));
            }
        }
        Ok(WeightOffsets::new(offsets))
    }

    /// Visits every parameter and BatchNorm buffer under its upstream name, in the order of
    /// upstream's `named_parameters()` (the shared hypernet once, under
    /// `shared_weight_hypernet.`).
    pub fn visit<V: ParamVisitor<B>>(&self, v: &mut V) {
        self.backbone.visit(v);
        self.shared_weight_hypernet.visit("shared_weight_hypernet.", v);
        for (&j, block) in self.layers.iter().zip(&self.blocks) {
            let prefix = format!("refinement_blocks.{j}.");
            match block {
                TunedBlock::Shared(block) => block.visit(&prefix, v),
                TunedBlock::Own(block) => block.visit(&prefix, v),
            }
        }
    }

    /// The upstream names of the trained parameters, in `named_parameters()` order.
    pub fn param_names(&self) -> Vec<String> {
        struct Names(Vec<String>);
        impl<B: Backend> ParamVisitor<B> for Names {
            fn param<const D: usize>(&mut self, name: &str, _: &Param<Tensor<B, D>>) {
                self.0.push(name.to_string());
            }
        }
        let mut names = Names(Vec::new());
        self.visit::<Names>(&mut names);
        names.0
    }

    /// Every parameter and running statistic as `(upstream key, shape, values)`, keys relative
    /// to `hypernet.`, in state-dict order (`num_batches_tracked` is [`Self::batches_tracked`]).
    pub fn tensors(&self) -> Result<Vec<NamedTensor>> {
        struct Collect(Vec<NamedTensor>, Option<Error>);
        impl Collect {
            fn push<B: Backend, const D: usize>(&mut self, name: &str, t: Tensor<B, D>) {
                let shape = t.dims().to_vec();
                match tensor_values(t) {
                    Ok(values) => self.0.push((name.to_string(), shape, values)),
                    Err(e) => self.1 = Some(e),
                }
            }
        }
        impl<B: Backend> ParamVisitor<B> for Collect {
            fn param<const D: usize>(&mut self, name: &str, p: &Param<Tensor<B, D>>) {
                self.push(name, p.val());
            }
            fn buffer(&mut self, name: &str, b: &Param<Tensor<B, 1>>) {
                self.push(name, b.val());
            }
        }
        let mut collect = Collect(Vec::new(), None);
        self.visit::<Collect>(&mut collect);
        match collect.1 {
            Some(e) => Err(e),
            None => Ok(collect.0),
        }
    }

    /// The generator layers that get offsets, with whether the shared hypernet serves them.
    pub fn tuned_layers(&self) -> Vec<(usize, bool)> {
        self.layers
            .iter()
            .zip(&self.blocks)
            .map(|(&j, b)| (j, matches!(b, TunedBlock::Shared(_))))
            .collect()
    }
}
