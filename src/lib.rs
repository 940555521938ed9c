//! HyperStyle in pure Rust on Burn: invert a photo into StyleGAN2 with a W encoder and a
//! hypernetwork that predicts per-image offsets of the generator's weights, then edit it.
//!
//! ```no_run
//! use hyperstyle::backend::DefaultBackend as B;
//! use hyperstyle::editing::{factor_range, Editor, InterFaceGanDirection};
//! use hyperstyle::HyperStyle;
//! # fn main() -> hyperstyle::Result<()> {
//! let device = Default::default();
//! let model = HyperStyle::<B>::builder()
//!     .model_file("hyperstyle_ffhq.safetensors")
//!     .w_encoder_file("faces_w_encoder.safetensors")
//!     .load(&device)?;
//! let photo = hyperstyle::io::load_image("face.jpg")?; // an FFHQ-aligned face
//! let inversion = model.invert_images(&[photo], 5)?;
//! let age = InterFaceGanDirection::from_file("age.safetensors", &device)?;
//! let older = Editor::for_model(&model).interfacegan(inversion.latents, &inversion.offsets, &age, &[3.0])?;
//! hyperstyle::io::save_image(&hyperstyle::io::tensor_to_images(older[0].clone())?[0], "older.png")?;
//! # Ok(()) }
//! ```
//!
//! The networks live in their own crates, re-exported here: [`core`] (weights, checkpoints,
//! errors), [`stylegan2`] (generator), [`encoders`] (W encoder, ReStyle, ResNet-34) and
//! [`hypernet`]; [`align`] finds faces in photos and crops them the FFHQ way, as upstream
//! prepares its inputs. docs/ARCHITECTURE.md describes the data path and every upstream detail
//! reproduced.

#![warn(missing_docs)]

pub mod animation;
pub mod backend;
pub mod demo;
pub mod domain;
pub mod domain_adaptation;
pub mod editing;
pub mod error;
pub mod export;
pub mod image_ops;
pub mod io;
pub mod npy;
pub mod pickle;
pub mod pipeline;
pub mod resize;
pub mod saved;
pub mod styleclip;
pub mod torch_file;
pub mod training;

pub use domain::Domain;
pub use error::{Error, Result};
pub use pipeline::{HyperStyle, HyperStyleBuilder, HyperStyleConfig, Inversion, Stage, StageTimes, Step};
pub use saved::{OffsetPrecision, SavedInversion};

pub use hyperstyle_align as align;
pub use hyperstyle_clip as clip;
pub use hyperstyle_core as core;
pub use hyperstyle_encoders as encoders;
pub use hyperstyle_hypernet as hypernet;
pub use hyperstyle_kernels as kernels;
pub use hyperstyle_stylegan2 as stylegan2;
pub use hyperstyle_stylegan2::WeightOffsets;

/// The README's Rust examples, compiled as doc tests so that they stay correct.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
