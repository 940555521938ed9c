//! Test support shared by the hyperstyle tests, benches and examples: the fixtures' pattern
//! weights, golden upstream outputs, and tensor comparison with max-abs / mean-abs errors.
//!
//! Everything reads `tests/fixtures/` of this repository, never anything outside it.

#![warn(missing_docs)]

pub mod compare;
pub mod deltas;
pub mod golden;

use std::path::PathBuf;

use hyperstyle_core::WeightStore;

pub use compare::{assert_bit_identical, assert_close, error_stats, to_vec};
pub use deltas::{check_all_delta_stats, check_delta_stats};
pub use golden::{read_f64, values_f64, Golden};
pub use hyperstyle_core::pattern::{self, CheckpointManifest, Manifest, NamedTensor};
pub use hyperstyle_core::ErrorStats;

/// `tests/fixtures/` of the workspace, or the folder named by `HYPERSTYLE_FIXTURES` (for test
/// and bench binaries run away from the source tree, e.g. on another machine).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("HYPERSTYLE_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"),
    }
}

/// The pattern-weight stores of a fixture's HyperStyle checkpoint (`hypernet.`, `decoder.`,
/// `latent_avg`) and W-encoder checkpoint (`encoder.`), as `HyperStyle::load` takes them.
pub fn hyperstyle_stores(manifest: &Manifest) -> (WeightStore, WeightStore) {
    let checkpoint = |name| manifest.checkpoint(name).expect("fixture checkpoint");
    (
        pattern_store(checkpoint("hyperstyle"), &["hypernet.", "decoder.", "latent_avg"]),
        pattern_store(checkpoint("w_encoder"), &["encoder."]),
    )
}

/// Batch sizes the benches measure: `HYPERSTYLE_BENCH_BATCHES` as a comma-separated list
/// (e.g. `1,4,8` on a GPU), else batch 1 only.
///
/// # Panics
/// If the variable is set but is not a list of positive integers.
pub fn bench_batches() -> Vec<usize> {
    match std::env::var("HYPERSTYLE_BENCH_BATCHES") {
        Ok(list) => list
            .split(',')
            .map(|b| match b.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => panic!("HYPERSTYLE_BENCH_BATCHES must be a list like 1,4,8; got {list:?}"),
            })
            .collect(),
        Err(_) => vec![1],
    }
}

/// [`CheckpointManifest::store`], for tests: a broken fixture panics.
pub fn pattern_store(checkpoint: &CheckpointManifest, prefixes: &[&str]) -> WeightStore {
    checkpoint.store(prefixes).expect("consistent fixture manifest")
}

/// A fixture configuration: `ffhq256`, `cars512`, `ffhq1024` or `wild512`.
pub struct Fixture {
    /// The manifest (weights).
    pub manifest: Manifest,
    /// The golden outputs.
    pub golden: Golden,
}

impl Fixture {
    /// Loads `{config}_manifest.json` and `{config}_golden.safetensors`.
    pub fn load(config: &str) -> Self {
        let dir = fixtures_dir();
        Self {
            manifest: Manifest::load(dir.join(format!("{config}_manifest.json"))).expect("fixture manifest"),
            golden: Golden::load(dir.join(format!("{config}_golden.safetensors"))),
        }
    }
}
