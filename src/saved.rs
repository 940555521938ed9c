//! Saving an inversion (latents + offsets + config) so that edits can be applied later without
//! inverting again. Upstream writes ~94 MB of `.npy` per face; offsets may be stored as f16
//! here (half the size, relative error ≤ 2⁻¹¹).

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use half::f16;
use hyperstyle_stylegan2::WeightStore;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::error::{Error, Result};
use crate::pipeline::{HyperStyleConfig, Offsets};

/// Value of the `format` metadata entry of saved inversions.
pub const FORMAT: &str = "hyperstyle-rs/inversion/1";

/// Storage type of the saved offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetPrecision {
    /// Exact.
    #[default]
    F32,
    /// Half the size; offsets are O(1) factors, so f16 keeps ~3 significant digits.
    F16,
}

/// An inversion read back from disk.
#[derive(Debug, Clone)]
pub struct SavedInversion<B: Backend> {
    /// W+ codes `[batch, n_styles, 512]`.
    pub latents: Tensor<B, 3>,
    /// Accumulated offsets, one entry per generator layer.
    pub offsets: Offsets<B>,
    /// The model configuration it was made with.
    pub config: HyperStyleConfig,
}

/// Named float tensors to write: f32 values, or f16 where asked.
pub struct TensorFile {
    entries: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
    metadata: BTreeMap<String, String>,
}

impl Default for TensorFile {
    fn default() -> Self {
        Self::new()
    }
}

impl TensorFile {
    /// An empty file.
    pub fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Adds a tensor, stored as f32 or f16.
    pub fn add<B: Backend, const D: usize>(&mut self, name: &str, tensor: Tensor<B, D>, half: bool) -> Result<()> {
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| Error::InvalidInput(format!("tensor `{name}`: {e:?}")))?;
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

    /// Adds a metadata entry.
    pub fn metadata(&mut self, key: &str, value: String) {
        self.metadata.insert(key.to_string(), value);
    }

    /// Writes the file atomically: a temporary file beside it, then a rename, so a failure
    /// never leaves a half-written file under `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let views: Vec<(String, TensorView)> = self
            .entries
            .iter()
            .map(|(k, (dtype, shape, bytes))| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| Error::InvalidInput(format!("tensor `{k}`: {e}")))
            })
            .collect::<Result<_>>()?;
        let metadata = self.metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::InvalidInput(e.to_string()))?;
        write_atomically(path, &bytes)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .map_err(io)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Adds `latents` and `offsets.{j}` of an inversion, and its config, to a file.
pub fn add_inversion<B: Backend>(
    file: &mut TensorFile,
    latents: Tensor<B, 3>,
    offsets: &[Option<Tensor<B, 5>>],
    config: &HyperStyleConfig,
    precision: OffsetPrecision,
) -> Result<()> {
    file.add("latents", latents, false)?;
    for (j, offset) in offsets.iter().enumerate() {
        if let Some(offset) = offset {
            file.add(
                &format!("offsets.{j}"),
                offset.clone(),
                precision == OffsetPrecision::F16,
            )?;
        }
    }
    file.metadata("format", FORMAT.into());
    file.metadata("config", serde_json::to_string(config).expect("config serialises"));
    file.metadata("n_layers", offsets.len().to_string());
    Ok(())
}

/// Saves an inversion (latents, offsets, config).
pub fn save_inversion<B: Backend>(
    path: impl AsRef<Path>,
    latents: Tensor<B, 3>,
    offsets: &[Option<Tensor<B, 5>>],
    config: &HyperStyleConfig,
    precision: OffsetPrecision,
) -> Result<()> {
    let mut file = TensorFile::new();
    add_inversion(&mut file, latents, offsets, config, precision)?;
    file.write(path)
}

/// Reads an inversion written by [`save_inversion`] (or by the `invert` example); offsets stored
/// as f16 come back as f32.
pub fn load_inversion<B: Backend>(path: impl AsRef<Path>, device: &B::Device) -> Result<SavedInversion<B>> {
    let path = path.as_ref();
    let store = WeightStore::open(path)?;
    let bad = |reason: String| Error::InvalidFile {
        path: path.to_path_buf(),
        reason,
    };
    let meta = store.metadata();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
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
        .ok_or_else(|| bad("missing `n_layers` metadata".into()))?;
    let weights = store.root();
    let shape = |key: &str| {
        store
            .shape(key)
            .ok_or_else(|| hyperstyle_stylegan2::Error::MissingKey { key: key.into() })
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
