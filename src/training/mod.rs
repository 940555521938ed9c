//! What training HyperStyle needs besides the networks: the original's training data
//! ([`data`]: the image folders, the pre-extracted W inversions, the per-domain transforms and a
//! seeded, resumable loader) and the pre-extraction of W inversions ([`extract`]).
//!
//! The training step itself (losses, optimizer) lives in the `hyperstyle-train` crate; it takes
//! the plain batches of [`data::DataLoader`] and turns them into tensors on its device.

pub mod data;
pub mod extract;
