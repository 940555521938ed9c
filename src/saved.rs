//! Saving an inversion (latents + offsets + config) so that edits can be applied later without
//! inverting again. Upstream writes ~94 MB of `.npy` per face; offsets may be stored as f16
//! here (half the size, relative error ≤ 2⁻¹¹).

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use half::f16;
use hyperstyle_core::atomic::write_atomically;
use hyperstyle_core::checkpoint::FORMAT as FORMAT_KEY;
use hyperstyle_core::WeightStore;
use hyperstyle_stylegan2::WeightOffsets;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::error::{invalid_file, invalid_input, Result};
use crate::pipeline::{one_sample, HyperStyleConfig, Inversion};

/// Value of the `format` metadata entry of saved inversions.
pub const FORMAT: &str = "hyperstyle-rs/inversion/1";

/// The most generator layers a saved inversion may claim (a 1024 generator has 26; the bound
/// keeps a crafted file from asking for an absurd allocation).
const MAX_LAYERS: usize = 64;

/// Storage type of the saved offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetPrecision {
    /// Exact.
    #[default]
    F32,
    /// Half the size; offsets are O(1) factors, so f16 keeps ~3 significant digits.
    F16,
}

/// An inversion as saved on disk: what editing and domain adaptation need from it.
#[derive(Debug, Clone)]
pub struct SavedInversion<B: Backend> {
    /// W+ codes `[batch, n_styles, 512]`.
    pub latents: Tensor<B, 3>,
    /// Accumulated offsets, one entry per generator layer.
    pub offsets: WeightOffsets<B>,
    /// The model configuration it was made with.
    pub config: HyperStyleConfig,
}

impl<B: Backend> SavedInversion<B> {
    /// The parts of `inversion` worth keeping, with the configuration of the model that made it.
    pub fn new(inversion: &Inversion<B>, config: &HyperStyleConfig) -> Self {
        Self {
            latents: inversion.latents.clone(),
            offsets: inversion.offsets.clone(),
            config: config.clone(),
        }
    }

    /// Sample `b` of the batch (batch axis kept, size 1).
    pub fn sample(&self, b: usize) -> Result<Self> {
        let (latents, offsets) = one_sample(&self.latents, &self.offsets, b)?;
        Ok(Self {
            latents,
            offsets,
            config: self.config.clone(),
        })
    }

    /// Writes the inversion atomically (a temporary file, then a rename).
    pub fn save(&self, path: impl AsRef<Path>, precision: OffsetPrecision) -> Result<()> {
        self.save_with_images(path, precision, &[])
    }

    /// [`SavedInversion::save`] with extra named images `[batch, 3, h, w]` stored as f32 beside
    /// the inversion (e.g. each refinement step's output).
    pub fn save_with_images(
        &self,
        path: impl AsRef<Path>,
        precision: OffsetPrecision,
        images: &[(String, Tensor<B, 4>)],
    ) -> Result<()> {
        let mut file = TensorFile::default();
        file.add("latents", self.latents.clone(), false)?;
        for (j, offset) in self.offsets.iter().enumerate() {
            if let Some(offset) = offset {
                file.add(
                    &format!("offsets.{j}"),
                    offset.clone(),
                    precision == OffsetPrecision::F16,
                )?;
            }
        }
        for (name, image) in images {
            if name == "latents" || name.starts_with("offsets.") {
                return Err(invalid_input(format!(
                    "image name `{name}` is reserved for the inversion"
                )));
            }
            file.add(name, image.clone(), false)?;
        }
        file.metadata.insert(FORMAT_KEY.into(), FORMAT.into());
        let config = serde_json::to_string(&self.config).map_err(|e| invalid_input(format!("config: {e}")))?;
        file.metadata.insert("config".into(), config);
        file.metadata.insert("n_layers".into(), self.offsets.len().to_string());
        file.write(path.as_ref())
    }

    /// Reads an inversion written by [`SavedInversion::save`] (or by the `invert` example);
    /// offsets stored as f16 come back as f32.
    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let path = path.as_ref();
        let store = WeightStore::open(path)?;
        let bad = |reason: String| invalid_file(path, reason);
        let meta = store.metadata();
        if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a saved inversion (metadata `format` is not `{FORMAT}`)"
            )));
        }
        let config: HyperStyleConfig = meta
            .get("config")
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| bad("missing or invalid `config` metadata".into()))?;
        let n_layers: usize = meta
            .get("n_layers")
            .and_then(|n| n.parse().ok())
            .filter(|&n| n <= MAX_LAYERS)
            .ok_or_else(|| bad(format!("missing `n_layers` metadata, or more than {MAX_LAYERS}")))?;
        let weights = store.root();
        let shape = |key: &str| {
            store
                .shape(key)
                .ok_or_else(|| hyperstyle_core::Error::MissingKey { key: key.into() })
        };
        let latents_shape: [usize; 3] = shape("latents")?
            .try_into()
            .map_err(|s| bad(format!("latents have shape {s:?}")))?;
        let latents = weights.tensor("latents", latents_shape, device)?;
        let offsets = (0..n_layers)
            .map(|j| {
                let key = format!("offsets.{j}");
                if !store.contains(&key) {
                    return Ok(None);
                }
                let s: [usize; 5] = shape(&key)?
                    .try_into()
                    .map_err(|s| bad(format!("{key} has shape {s:?}")))?;
                Ok(Some(weights.tensor(&key, s, device)?))
            })
            .collect::<Result<_>>()?;
        Ok(SavedInversion {
            latents,
            offsets,
            config,
        })
    }
}

/// Named float tensors to write: f32 values, or f16 where asked.
#[derive(Default)]
pub(crate) struct TensorFile {
    entries: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// Adds f32 values of the given shape.
    pub(crate) fn add_values(&mut self, name: &str, shape: Vec<usize>, values: &[f32]) {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.entries.insert(name.to_string(), (Dtype::F32, shape, bytes));
    }

    /// Adds a tensor, stored as f32 or f16.
    pub(crate) fn add<B: Backend, const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<B, D>,
        half: bool,
    ) -> Result<()> {
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| invalid_input(format!("tensor `{name}`: {e:?}")))?;
        let (dtype, bytes) = if half {
            (
                Dtype::F16,
                values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
            )
        } else {
            (Dtype::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        self.entries.insert(name.to_string(), (dtype, shape, bytes));
        Ok(())
    }

    /// Writes the file atomically.
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let views: Vec<(String, TensorView)> = self
            .entries
            .iter()
            .map(|(k, (dtype, shape, bytes))| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| invalid_input(format!("tensor `{k}`: {e}")))
            })
            .collect::<Result<_>>()?;
        let metadata = self.metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| invalid_input(e.to_string()))?;
        Ok(write_atomically(path, &bytes)?)
    }
}
