//! The `__metadata__` entries of the output file, which the project's loader reads.
//!
//! | key | value |
//! |---|---|
//! | `format` | `hyperstyle-rs/1` |
//! | `kind` | [`Kind`] name: `hyperstyle`, `w-encoder`, `restyle`, `stylegan2`, `direction`, `ganspace`, `alexnet`, `lpips`, `arcface`, `styleclip-stats`, `clip`, `moco`, `resnet34` |
//! | `opts` | the checkpoint's `opts` (or `args`) as a JSON object string; absent if it has none |
//! | `aliases` | JSON object string, full alias key → full canonical key; `{}` if none |
//! | `source_file` | the input's file name, without directory |
//! | `source_sha256` | lowercase hex SHA-256 of the input file |
//! | `scalars` | JSON object string of top-level entries that hold no tensors; absent if none |

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::kind::Kind;
use crate::plan::Plan;
use crate::source::ByteSource;

pub use hyperstyle_core::checkpoint::{
    ALIASES, FORMAT, FORMAT_VERSION, KIND, OPTS, SCALARS, SOURCE_FILE, SOURCE_SHA256,
};

/// Builds the metadata map for a planned conversion.
pub fn build(plan: &Plan, kind: Kind, source_file: &str, source_sha256: &str) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    meta.insert(FORMAT.into(), FORMAT_VERSION.into());
    meta.insert(KIND.into(), kind.name().into());
    if let Some(opts) = &plan.opts {
        meta.insert(OPTS.into(), opts.to_string());
    }
    let aliases: Map<String, Json> = plan
        .aliases()
        .map(|(alias, canonical)| (alias.to_string(), Json::String(canonical.to_string())))
        .collect();
    meta.insert(ALIASES.into(), Json::Object(aliases).to_string());
    meta.insert(SOURCE_FILE.into(), source_file.into());
    meta.insert(SOURCE_SHA256.into(), source_sha256.into());
    if !plan.scalars.is_empty() {
        meta.insert(SCALARS.into(), Json::Object(plan.scalars.clone()).to_string());
    }
    meta
}

/// Lowercase hex SHA-256 of everything in `src`, read in bounded chunks.
pub fn sha256_hex<S: ByteSource + ?Sized>(src: &S) -> Result<String> {
    const CHUNK: u64 = 4 << 20;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK.min(src.len()) as usize];
    let mut pos = 0u64;
    while pos < src.len() {
        let n = CHUNK.min(src.len() - pos) as usize;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        src.read_at(pos, chunk)?;
        hasher.update(&*chunk);
        pos += n as u64;
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc".as_slice()).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
