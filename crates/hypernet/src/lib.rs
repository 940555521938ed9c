//! HyperStyle's hypernetwork on Burn (docs/ARCHITECTURE.md §6).
//!
//! [`Hypernetwork`] looks at the input image and the current reconstruction (6 channels) through
//! a ResNet-34 and predicts, for every tuned generator layer, a multiplicative weight offset
//! `Δ` (`W' = W·(1 + Δ)`), ready for [`hyperstyle_stylegan2::Generator::synthesis`]:
//!
//! * the nine 512→512 layers at 4–64 px get full per-tap offsets from one
//!   [`SharedWeightsHypernet`] fed by a [`HyperRefinementBlock`] each;
//! * the other tuned layers get one factor per (out, in) filter pair from a [`RefinementBlock`].

#![warn(missing_docs)]

pub mod config;
pub mod hypernetwork;
pub mod refinement_block;
mod refinement_convs;
pub mod shared_weights_hypernet;

pub use config::{HypernetConfig, HypernetType, LayersToTune, DEFAULT_LAYERS_TO_TUNE, SHARED_LAYERS};
pub use hypernetwork::{Hypernetwork, LayerBlock};
pub use hyperstyle_core::{Error, Result};
pub use refinement_block::{HyperRefinementBlock, RefinementBlock};
pub use shared_weights_hypernet::SharedWeightsHypernet;
