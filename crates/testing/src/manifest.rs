//! Fixture manifests: per checkpoint, the salt and every tensor's shape, mean and std (or alias).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::pattern::pattern_values;

/// One `{config}_manifest.json`.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// Run configuration (`output_size`, `n_iters`, `layers_to_tune`, `salt`, ...).
    pub meta: serde_json::Value,
    /// Checkpoints by name (`hyperstyle`, `w_encoder`, `restyle_e4e`, `toon_generator`).
    pub checkpoints: BTreeMap<String, CheckpointManifest>,
}

/// The tensors of one fixture checkpoint.
#[derive(Debug, Deserialize)]
pub struct CheckpointManifest {
    /// Salt of the pattern rule for this checkpoint.
    pub salt: String,
    /// Every key exactly as in the checkpoint's state dict (plus top-level `latent_avg`).
    pub tensors: BTreeMap<String, TensorEntry>,
}

/// Shape and fill statistics of one tensor.
#[derive(Debug, Deserialize)]
pub struct TensorEntry {
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Mean of the pattern (absent for aliases).
    pub mean: Option<f64>,
    /// Standard deviation of the pattern (absent for aliases).
    pub std: Option<f64>,
    /// The key this entry is the very same tensor as.
    pub alias_of: Option<String>,
}

/// A named f32 tensor: key, shape, row-major values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

impl Manifest {
    /// Reads a manifest file.
    pub fn load(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }

    /// The manifest of checkpoint `name`.
    pub fn checkpoint(&self, name: &str) -> &CheckpointManifest {
        self.checkpoints
            .get(name)
            .unwrap_or_else(|| panic!("no checkpoint `{name}` in manifest"))
    }

    /// A `meta` field as a string or number rendered as text.
    pub fn meta_usize(&self, field: &str) -> usize {
        self.meta[field]
            .as_u64()
            .unwrap_or_else(|| panic!("meta.{field} is not an integer")) as usize
    }
}

impl CheckpointManifest {
    /// Pattern-filled tensors whose key starts with `prefix`, returned under the key with the
    /// prefix removed. Aliases are skipped (they are the same tensor as their target) and so are
    /// integer buffers (`num_batches_tracked`), which are unused at inference.
    pub fn pattern_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        self.tensors
            .iter()
            .filter(|(key, entry)| {
                key.starts_with(prefix) && entry.alias_of.is_none() && !key.ends_with("num_batches_tracked")
            })
            .map(|(key, entry)| {
                let values = self.pattern(key, entry);
                (key[prefix.len()..].to_string(), entry.shape.clone(), values)
            })
            .collect()
    }

    /// The values of one tensor. `latent_avg` is a 512-value pattern repeated over its rows.
    pub fn pattern(&self, key: &str, entry: &TensorEntry) -> Vec<f32> {
        let n: usize = entry.shape.iter().product();
        let (mean, std) = (
            entry.mean.unwrap_or_else(|| panic!("{key}: no mean")),
            entry.std.unwrap_or_else(|| panic!("{key}: no std")),
        );
        if key == "latent_avg" {
            let row = pattern_values(&self.salt, key, 512, mean, std);
            return row.iter().copied().cycle().take(n).collect();
        }
        pattern_values(&self.salt, key, n, mean, std)
    }

    /// The values of a tensor that is not in the manifest but follows the same rule (edit
    /// directions, GANSpace data: see tests/fixtures/README.md).
    pub fn extra_pattern(&self, key: &str, n: usize, mean: f64, std: f64) -> Vec<f32> {
        pattern_values(&self.salt, key, n, mean, std)
    }
}
