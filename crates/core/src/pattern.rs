//! Deterministic "pattern weights": every float tensor of a checkpoint filled from its key, a
//! salt and a mean / standard deviation (tests/fixtures/PATTERN.md states the rule).
//!
//! A [`Manifest`] lists a model's checkpoints with each tensor's shape and statistics; from it
//! [`CheckpointManifest::store`] builds a [`WeightStore`] without any weight file. This is how the
//! bundled demo models run (they are not trained: their outputs are checked against the upstream
//! implementation's outputs for the very same weights, not judged by eye).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use crate::weights::NamedTensor;
use crate::weights::WeightStore;

/// 64-bit FNV-1a over the UTF-8 bytes of `s`.
pub fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The raw uniform stream in [-1, 1) for `salt:key` (SplitMix64 on a golden-ratio counter).
pub fn uniform(salt: &str, key: &str, n: usize) -> impl Iterator<Item = f64> {
    let seed = fnv1a64(&format!("{salt}:{key}"));
    (0..n as u64).map(move |i| {
        let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z ^= z >> 30;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 27;
        z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}

/// `n` pattern values for `key`: `mean + std·sqrt(3)·u`, computed in f64 and rounded once to f32.
pub fn pattern_values(salt: &str, key: &str, n: usize, mean: f64, std: f64) -> Vec<f32> {
    let scale = std * 3f64.sqrt();
    uniform(salt, key, n).map(|u| (mean + scale * u) as f32).collect()
}

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

impl Manifest {
    /// Reads a manifest file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
            path: path.to_path_buf(),
            reason: format!("not a pattern-weight manifest: {e}"),
        })
    }

    /// The manifest of checkpoint `name`.
    pub fn checkpoint(&self, name: &str) -> Result<&CheckpointManifest> {
        self.checkpoints.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.checkpoints.keys().map(String::as_str).collect();
            Error::unknown("checkpoint", name, &names)
        })
    }

    /// An integer `meta` field (`output_size`, `n_iters`, ...).
    pub fn meta_usize(&self, field: &str) -> Result<usize> {
        self.meta[field]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| Error::InvalidConfig(format!("manifest field meta.{field} is not an integer")))
    }
}

impl CheckpointManifest {
    /// Pattern-filled tensors whose key starts with `prefix`, returned under the key with the
    /// prefix removed. Aliases are skipped (they are the same tensor as their target) and so are
    /// integer buffers (`num_batches_tracked`), which are unused at inference.
    pub fn pattern_tensors(&self, prefix: &str) -> Result<Vec<NamedTensor>> {
        self.tensors
            .iter()
            .filter(|(key, entry)| {
                key.starts_with(prefix) && entry.alias_of.is_none() && !key.ends_with("num_batches_tracked")
            })
            .map(|(key, entry)| {
                let values = self.pattern(key, entry)?;
                Ok((key[prefix.len()..].to_string(), entry.shape.clone(), values))
            })
            .collect()
    }

    /// The values of one tensor. `latent_avg` is a 512-value pattern repeated over its rows.
    pub fn pattern(&self, key: &str, entry: &TensorEntry) -> Result<Vec<f32>> {
        let n: usize = entry.shape.iter().product();
        let (Some(mean), Some(std)) = (entry.mean, entry.std) else {
            return Err(Error::InvalidConfig(format!(
                "manifest entry `{key}` has no mean / std"
            )));
        };
        if key == "latent_avg" {
            let row = pattern_values(&self.salt, key, 512, mean, std);
            return Ok(row.iter().copied().cycle().take(n).collect());
        }
        Ok(pattern_values(&self.salt, key, n, mean, std))
    }

    /// A [`WeightStore`] holding the pattern weights of every key that starts with one of
    /// `prefixes`, under its full checkpoint key; aliases are registered as aliases.
    pub fn store(&self, prefixes: &[&str]) -> Result<WeightStore> {
        let mut tensors = Vec::new();
        for prefix in prefixes {
            for (key, shape, values) in self.pattern_tensors(prefix)? {
                tensors.push((format!("{prefix}{key}"), shape, values));
            }
        }
        let mut store = WeightStore::from_tensors(tensors)?;
        for (key, entry) in &self.tensors {
            if let Some(target) = &entry.alias_of {
                if prefixes.iter().any(|p| key.starts_with(p)) {
                    store.add_alias(key.clone(), target.clone());
                }
            }
        }
        Ok(store)
    }

    /// The values of a tensor that is not in the manifest but follows the same rule (edit
    /// directions, GANSpace data: see tests/fixtures/README.md).
    pub fn extra_pattern(&self, key: &str, n: usize, mean: f64, std: f64) -> Vec<f32> {
        pattern_values(&self.salt, key, n, mean, std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_from_pattern_md() {
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        let u: Vec<f64> = uniform("s", "k", 4).collect();
        assert_eq!(
            u,
            [
                -0.5088574950772882,
                0.3436624326301694,
                0.20913640110857168,
                0.9922726214380073
            ]
        );
        // mean 0, std 1/sqrt(3) gives u itself (rounded to f32).
        let v = pattern_values("s", "k", 4, 0.0, 1.0 / 3f64.sqrt());
        assert_eq!(v[0], -0.5088574950772882f64 as f32);
    }
}
