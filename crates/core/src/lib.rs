//! Shared infrastructure of the hyperstyle crates.
//!
//! * [`Error`]: the one error type of the network crates (files, weights, configurations, inputs).
//! * [`WeightStore`] / [`Weights`]: named tensors from safetensors files (memory-mapped) or memory,
//!   read under a key prefix with shape checks, dtype conversion to f32, the converter's aliases
//!   and detection of keys no network used.
//! * [`checkpoint`]: what a converted checkpoint records about itself (its [`Kind`], `opts`,
//!   aliases) and where its networks' keys are.
//! * [`atomic`]: writing files atomically.
//! * [`nn`]: layers every network shares ([`EqualLinear`]).
//! * [`compare`]: max-abs / mean-abs error against reference values.
//! * [`pattern`]: the deterministic pattern weights of the bundled demo models and test fixtures.
//!
//! The `burn` feature (default) adds tensors; without it the crate has no Burn dependency.

#![warn(missing_docs)]

pub mod atomic;
pub mod checkpoint;
pub mod compare;
pub mod error;
#[cfg(feature = "burn")]
pub mod nn;
pub mod pattern;
pub mod weights;

pub use checkpoint::Kind;
pub use compare::{error_stats, ErrorStats};
pub use error::{parse_name, Error, Result};
#[cfg(feature = "burn")]
pub use nn::{EqualLinear, EqualLinearConfig};
pub use pattern::{CheckpointManifest, Manifest};
pub use weights::{WeightStore, Weights};
