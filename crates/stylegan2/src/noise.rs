//! Where the per-layer noise images come from.

use burn::prelude::*;

/// Noise for the styled convs (one image per noise input, `noises.noise_i`).
#[derive(Debug, Clone, Default)]
pub enum Noise<B: Backend> {
    /// The checkpoint's stored buffers: deterministic, what every HyperStyle inversion and edit
    /// uses (`randomize_noise=False` upstream).
    #[default]
    Stored,
    /// Fresh standard-normal noise per sample and call (`randomize_noise=True`); seed the backend
    /// with `B::seed` for reproducible runs.
    Random,
    /// Caller-provided images, one per noise input: `[batch or 1, 1, R_i, R_i]`.
    Given(Vec<Tensor<B, 4>>),
}
