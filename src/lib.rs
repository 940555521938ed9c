//! HyperStyle in pure Rust on Burn: invert a photo into StyleGAN2 with a W encoder and a
//! hypernetwork that predicts per-image offsets of the generator's weights, then edit it.
//!
//! The networks live in their own crates, re-exported here:
//! [`stylegan2`] (generator), with encoders and the hypernetwork to follow.

pub mod backend;
pub mod error;
pub mod image_ops;
pub mod io;
pub mod resize;

pub use error::{Error, Result};

pub use hyperstyle_stylegan2 as stylegan2;
