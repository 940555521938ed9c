//! HyperStyle in pure Rust on Burn: invert a photo into StyleGAN2 with a W encoder and a
//! hypernetwork that predicts per-image offsets of the generator's weights, then edit it.
//!
//! The networks live in their own crates, re-exported here:
//! [`stylegan2`] (generator), [`encoders`] (W encoder, ReStyle, ResNet-34) and [`hypernet`].

pub mod backend;
pub mod domain;
pub mod domain_adaptation;
pub mod editing;
pub mod error;
pub mod image_ops;
pub mod io;
pub mod pipeline;
pub mod resize;
pub mod saved;

pub use domain::Domain;
pub use error::{Error, Result};
pub use pipeline::{HyperStyle, HyperStyleConfig, Inversion, Offsets, Step};
pub use saved::{load_inversion, save_inversion, OffsetPrecision, SavedInversion};

pub use hyperstyle_encoders as encoders;
pub use hyperstyle_hypernet as hypernet;
pub use hyperstyle_stylegan2 as stylegan2;
