//! An inversion's tuned generator as a standalone StyleGAN2 checkpoint.
//!
//! HyperStyle leaves the generator's weights untouched and applies each image's offsets on the
//! fly. Folding one image's offsets into the weights, `W' = W·(1 + Δ)`, gives an ordinary
//! rosinality generator that renders that image's latents (and edits of them) with no offsets
//! at all: a file any StyleGAN2 tool reading rosinality checkpoints can load, to ship one
//! person's generator or to continue tuning it.
//!
//! Two formats ([`ExportFormat`]): a converted checkpoint in safetensors (what this project and
//! `weights-convert` write, loaded by [`Generator::from_file`]), or a PyTorch `.pt` file as
//! `torch.save({'g_ema': state_dict})` writes it ([`crate::torch_file`]), for rosinality's
//! `Generator.load_state_dict(torch.load(path)['g_ema'])` and the original HyperStyle's scripts.

use std::path::Path;

use burn::prelude::*;
use hyperstyle_core::checkpoint::{FORMAT, FORMAT_VERSION, KIND, OPTS};
use hyperstyle_core::Kind;
use hyperstyle_stylegan2::{Generator, WeightOffsets};

use crate::error::Result;
use crate::pipeline::{one_sample, HyperStyle, Inversion};
use crate::saved::TensorFile;
use crate::torch_file::{write_checkpoint, Entry, Tensor};

/// The key prefix of a rosinality checkpoint's generator.
const GENERATOR_PREFIX: &str = "g_ema/";

/// The file format of an exported generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// A converted checkpoint in safetensors ([`write_tuned_generator`]).
    Safetensors,
    /// A PyTorch checkpoint, `{'g_ema': state_dict}` ([`write_tuned_generator_pt`]).
    Torch,
}

impl ExportFormat {
    /// The format a file name asks for: [`ExportFormat::Torch`] for `.pt` and `.pth`
    /// (any case), [`ExportFormat::Safetensors`] for anything else.
    pub fn for_path(path: impl AsRef<Path>) -> Self {
        let ext = path
            .as_ref()
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("pt" | "pth") => ExportFormat::Torch,
            _ => ExportFormat::Safetensors,
        }
    }

    /// The usual file extension, without the dot: `safetensors` or `pt`.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Safetensors => "safetensors",
            ExportFormat::Torch => "pt",
        }
    }
}

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

/// Writes `generator` with one sample's `offsets` folded into its weights (as
/// [`write_tuned_generator`]) as a PyTorch checkpoint: the dict `{'g_ema': OrderedDict}` of
/// float32 tensors under rosinality's names, as `torch.save` writes it. `torch.load(path,
/// weights_only=True)` loads it, and `weights-convert` converts it back to the safetensors form.
/// Written atomically.
pub fn write_tuned_generator_pt<B: Backend>(
    generator: &Generator<B>,
    offsets: Option<&WeightOffsets<B>>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let tensors = generator.checkpoint_tensors(offsets)?;
    let state_dict = tensors
        .iter()
        .map(|(key, shape, values)| (key.clone(), Tensor::new(shape, values)))
        .collect();
    write_checkpoint(path, &[("g_ema".to_string(), Entry::StateDict(state_dict))])
}

/// [`write_tuned_generator`] or [`write_tuned_generator_pt`], as `format` says.
pub fn write_tuned_generator_as<B: Backend>(
    generator: &Generator<B>,
    offsets: Option<&WeightOffsets<B>>,
    path: impl AsRef<Path>,
    format: ExportFormat,
) -> Result<()> {
    match format {
        ExportFormat::Safetensors => write_tuned_generator(generator, offsets, path),
        ExportFormat::Torch => write_tuned_generator_pt(generator, offsets, path),
    }
}

impl<B: Backend> HyperStyle<B> {
    /// Writes the generator tuned for sample `sample` of `inversion` (its accumulated offsets
    /// folded into the weights) as a standalone rosinality checkpoint: rendering
    /// `inversion.latents` of that sample with it, without offsets, gives the inversion's final
    /// image. The format follows the file name ([`ExportFormat::for_path`]): a PyTorch
    /// checkpoint for `.pt` / `.pth` ([`write_tuned_generator_pt`]), else safetensors
    /// ([`write_tuned_generator`]).
    pub fn export_tuned_generator(
        &self,
        inversion: &Inversion<B>,
        sample: usize,
        path: impl AsRef<Path>,
    ) -> Result<()> {
        let format = ExportFormat::for_path(&path);
        self.export_tuned_generator_as(inversion, sample, path, format)
    }

    /// [`HyperStyle::export_tuned_generator`] in the given format, whatever the file name.
    pub fn export_tuned_generator_as(
        &self,
        inversion: &Inversion<B>,
        sample: usize,
        path: impl AsRef<Path>,
        format: ExportFormat,
    ) -> Result<()> {
        let (_, offsets) = one_sample(&inversion.latents, &inversion.offsets, sample)?;
        write_tuned_generator_as(self.generator(), Some(&offsets), path, format)
    }
}
