//! `SharedWeightsHyperNetResNet`: ResNet-34 features of (image, reconstruction) → one weight
//! offset per tuned generator layer (docs/ARCHITECTURE.md §6).

use burn::prelude::*;
use hyperstyle_core::{Error, Result, Weights};
use hyperstyle_encoders::ResNet34;
use hyperstyle_stylegan2::WeightOffsets;

use crate::config::{is_shared, HypernetConfig};
use crate::refinement_block::{HyperRefinementBlock, RefinementBlock};
use crate::shared_weights_hypernet::SharedWeightsHypernet;

/// Input channels: the normalised input image (0–2) and the current reconstruction (3–5).
pub const INPUT_CHANNELS: usize = 6;

/// The block that predicts one generator layer's offset.
#[derive(Module, Debug)]
pub enum LayerBlock<B: Backend> {
    /// A shared layer: a code for the shared hypernet.
    Shared(HyperRefinementBlock<B>),
    /// Any other tuned layer: a per-(out, in) offset of its own.
    Own(RefinementBlock<B>),
}

/// The hypernetwork of the released HyperStyle models.
#[derive(Module, Debug)]
pub struct Hypernetwork<B: Backend> {
    backbone: ResNet34<B>,
    shared: SharedWeightsHypernet<B>,
    /// `(generator layer, block)` for every tuned layer, in layer order.
    blocks: Vec<(usize, LayerBlock<B>)>,
    n_outputs: usize,
}

impl<B: Backend> Hypernetwork<B> {
    /// Loads the network from `weights` (keys relative to the view: `conv1.weight`, `body.*`,
    /// `shared_weight_hypernet.*`, `refinement_blocks.{j}.*`). The shared hypernet is read once;
    /// its nine `refinement_blocks.{j}.hypernet.*` names are the same tensors (aliases in a
    /// converted file, or plain copies, which are then not read). Keys the network does not
    /// have are an error.
    pub fn load(weights: &Weights, config: &HypernetConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let shared = SharedWeightsHypernet::load(&weights.pp("shared_weight_hypernet"), device)?;
        let blocks = config
            .tuned_layers()
            .iter()
            .map(|layer| {
                let j = layer.index;
                let block_weights = weights.pp("refinement_blocks").pp(j);
                let block = if is_shared(layer) {
                    for name in ["w1", "b1", "w2", "b2"] {
                        block_weights.pp("hypernet").ignore(name);
                    }
                    LayerBlock::Shared(HyperRefinementBlock::load(&block_weights, device)?)
                } else {
                    LayerBlock::Own(RefinementBlock::load(&block_weights, layer, device)?)
                };
                Ok((j, block))
            })
            .collect::<Result<_>>()?;
        let network = Self {
            backbone: ResNet34::load(weights, INPUT_CHANNELS, device)?,
            shared,
            blocks,
            n_outputs: config.n_outputs(),
        };
        weights.check_all_used()?;
        Ok(network)
    }

    /// Number of generator layers (length of the returned offset list).
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// One refinement step's offsets from the input image and the current reconstruction,
    /// both `[batch, 3, h, w]` normalised to [−1, 1] (256×256; cars 192×256). Returns one entry
    /// per generator layer: `None` where the layer is not tuned, else `[batch, out, in, k, k]` (shared
    /// refinement blocks) or `[batch, out, in, 1, 1]` (the others: one factor for every tap).
    pub fn forward(&self, image: Tensor<B, 4>, reconstruction: Tensor<B, 4>) -> Result<WeightOffsets<B>> {
        if image.dims() != reconstruction.dims() {
            return Err(Error::InvalidInput(format!(
                "image {:?} and reconstruction {:?} must have the same shape",
                image.dims(),
                reconstruction.dims()
            )));
        }
        let features = self.backbone.forward(Tensor::cat(vec![image, reconstruction], 1))?;
        let batch = features.dims()[0];
        let mut offsets: Vec<Option<Tensor<B, 5>>> = vec![None; self.n_outputs];
        // All shared layers' codes go through the shared hypernet in one call: its 512×262144
        // matrix is then read once per step instead of once per layer.
        let mut shared_layers = Vec::new();
        let mut codes = Vec::new();
        for (j, block) in &self.blocks {
            match block {
                LayerBlock::Shared(block) => {
                    shared_layers.push(*j);
                    codes.push(block.forward(features.clone()));
                }
                LayerBlock::Own(block) => offsets[*j] = Some(block.forward(features.clone())),
            }
        }
        if !codes.is_empty() {
            let kernels = self.shared.forward(Tensor::cat(codes, 0));
            for (i, j) in shared_layers.into_iter().enumerate() {
                offsets[j] = Some(kernels.clone().narrow(0, i * batch, batch));
            }
        }
        Ok(WeightOffsets::new(offsets))
    }
}
