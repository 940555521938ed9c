//! An inversion's tuned generator as a standalone StyleGAN2 checkpoint.
//!
//! HyperStyle leaves the generator's weights untouched and applies each image's offsets on the
//! fly. Folding one image's offsets into the weights, `W' = W·(1 + Δ)`, gives an ordinary
//! rosinality generator that renders that image's latents (and edits of them) with no offsets
//! at all: a file any StyleGAN2 tool reading rosinality checkpoints can load, to ship one
//! person's generator or to continue tuning it.

use std::path::Path;

use burn::prelude::*;
use hyperstyle_core::checkpoint::{FORMAT, FORMAT_VERSION, KIND, OPTS};
use hyperstyle_core::Kind;
use hyperstyle_stylegan2::{Generator, WeightOffsets};

use crate::error::Result;
use crate::pipeline::{one_sample, HyperStyle, Inversion};
use crate::saved::TensorFile;

/// The key prefix of a rosinality checkpoint's generator.
const GENERATOR_PREFIX: &str = "g_ema/";

/// Writes `generator` with one sample's `offsets` (every entry batch 1, or `None`) folded into
/// its weights, as a converted rosinality checkpoint: keys under `g_ema/`, `kind` `stylegan2`,
/// the architecture in `opts`. [`Generator::from_file`] loads it; written atomically.
pub fn write_tuned_generator<B: Backend>(
    generator: &Generator<B>,
    offsets: Option<&WeightOffsets<B>>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let mut file = TensorFile::default();
    for (key, shape, values) in generator.checkpoint_tensors(offsets)? {
        file.add_values(&format!("{GENERATOR_PREFIX}{key}"), shape, &values);
    }
    let config = generator.config();
    let opts = serde_json::json!({
        "size": config.size,
        "latent": config.style_dim,
        "n_mlp": config.n_mlp,
        "channel_multiplier": config.channel_multiplier,
    });
    file.metadata.insert(FORMAT.into(), FORMAT_VERSION.into());
    file.metadata.insert(KIND.into(), Kind::Stylegan2.name().into());
    file.metadata.insert(OPTS.into(), opts.to_string());
    file.write(path.as_ref())
}

impl<B: Backend> HyperStyle<B> {
    /// Writes the generator tuned for sample `sample` of `inversion` (its accumulated offsets
    /// folded into the weights) as a standalone rosinality checkpoint: rendering
    /// `inversion.latents` of that sample with it, without offsets, gives the inversion's final
    /// image. See [`write_tuned_generator`].
    pub fn export_tuned_generator(
        &self,
        inversion: &Inversion<B>,
        sample: usize,
        path: impl AsRef<Path>,
    ) -> Result<()> {
        let (_, offsets) = one_sample(&inversion.latents, &inversion.offsets, sample)?;
        write_tuned_generator(self.generator(), Some(&offsets), path)
    }
}
