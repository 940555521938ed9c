//! Writing the safetensors file: header first, then each tensor streamed from the input.
//!
//! The format is simple enough to write by hand: an 8-byte little-endian header length, a JSON
//! header (tensor names → dtype, shape, byte range; plus `__metadata__`), padded with spaces to
//! a multiple of 8 bytes, then the data. Everything in the header is known once the checkpoint is
//! planned, so the data can be streamed tensor by tensor instead of being assembled in memory
//! (which the `safetensors` crate's serializer would require).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Map, Value as Json};

use crate::error::{ConvertError, Result};
use crate::materialize::write_tensor;
use crate::plan::Plan;
use crate::source::ByteSource;

/// Writes `plan` as safetensors to `out`; returns the number of bytes written.
///
/// Tensors are laid out by decreasing element size (8-byte types first), keeping the checkpoint's
/// order within a size, so that every tensor starts at an offset aligned to its element size
/// (the header is padded to 8 bytes) and a memory-mapped reader can use it in place.
pub fn write_safetensors<S: ByteSource + ?Sized, W: Write>(
    src: &S,
    plan: &Plan,
    big_endian: bool,
    metadata: &BTreeMap<String, String>,
    out: &mut W,
) -> Result<u64> {
    let mut order: Vec<usize> = (0..plan.tensors.len()).collect();
    // Stable sort: pickle order is kept among tensors of the same element size.
    order.sort_by_key(|&i| std::cmp::Reverse(plan.tensors.get(i).map_or(0, |t| t.out_dtype.size())));

    let mut header = Map::new();
    header.insert("__metadata__".into(), json!(metadata));
    let mut offset = 0u64;
    for tensor in order.iter().filter_map(|&i| plan.tensors.get(i)) {
        let end = offset + tensor.out_len();
        header.insert(
            tensor.key.clone(),
            json!({
                "dtype": tensor.out_dtype.safetensors_name(),
                "shape": tensor.tensor.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&Json::Object(header))
        .map_err(|e| ConvertError::io("encoding the safetensors header", e.into()))?;
    header.resize(header.len().next_multiple_of(8), b' ');

    let io = |e| ConvertError::io("writing the safetensors output", e);
    out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(&header).map_err(io)?;
    let mut written = 8 + header.len() as u64;
    for tensor in order.iter().filter_map(|&i| plan.tensors.get(i)) {
        let n = write_tensor(src, tensor, big_endian, out)?;
        // A mismatch would corrupt every following tensor's offsets; never let it through.
        if n != tensor.out_len() {
            return Err(ConvertError::InvalidTensor {
                key: tensor.key.clone(),
                reason: format!("wrote {n} bytes instead of {}", tensor.out_len()),
            });
        }
        written += n;
    }
    Ok(written)
}
