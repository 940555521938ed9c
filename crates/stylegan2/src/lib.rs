//! StyleGAN2 generator in the rosinality layout, as HyperStyle uses it, on Burn.
//!
//! * [`Generator`]: mapping network, synthesis network, truncation, style mixing, stored /
//!   random / given noise, and per-sample multiplicative weight offsets ([`WeightOffsets`],
//!   HyperStyle's `weights_deltas`).
//! * [`GeneratorConfig`]: sizes 8…1024+ with presets, and the layer table ([`LayerSpec`]) that
//!   the generator is built from and that weight offsets are indexed by.
//!
//! Weights load through [`hyperstyle_core::WeightStore`]; errors are [`hyperstyle_core::Error`].
//!
//! ```no_run
//! use burn::backend::Flex;
//! use hyperstyle_stylegan2::{Generator, GeneratorConfig, Noise};
//! # fn main() -> Result<(), hyperstyle_stylegan2::Error> {
//! let device = Default::default();
//! let generator = Generator::<Flex>::from_file("stylegan2-ffhq-config-f.safetensors", &GeneratorConfig::ffhq_1024(), &device)?;
//! let w = generator.mapping(burn::tensor::Tensor::random([1, 512], burn::tensor::Distribution::Normal(0.0, 1.0), &device));
//! let image = generator.synthesis(generator.broadcast_latent(w), &Noise::Stored, None)?; // [1, 3, 1024, 1024]
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod generator;
pub mod mapping;
pub mod modulated_conv;
pub mod noise;
pub mod offsets;
pub mod styled_conv;
pub mod upfirdn;

pub use config::{GeneratorConfig, LayerKind, LayerSpec};
pub use generator::{GenerateOptions, Generator, GENERATOR_PREFIXES};
pub use hyperstyle_core::{Error, Result};
pub use modulated_conv::{ConvStrategy, Style};
pub use noise::Noise;
pub use offsets::WeightOffsets;
