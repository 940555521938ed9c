//! What training HyperStyle needs besides the networks: the original's training data
//! ([`data`]: the image folders, the pre-extracted W inversions, the per-domain transforms and a
//! seeded, resumable loader), the pre-extraction of W inversions ([`extract`]) and the run
//! around the training step ([`coach`]: logging, image grids, validation, checkpoints,
//! resuming).
//!
//! The training step itself (trainable hypernetwork, losses, optimizer) lives in the
//! `hyperstyle-train` crate, re-exported here as [`step`]; the coach turns the loader's plain
//! batches into tensors on the trainer's device.

pub mod coach;
pub mod data;
pub mod extract;

pub use coach::{Coach, CoachConfig, Event};
pub use hyperstyle_train as step;
