//! The high-level operations: convert a checkpoint, or list what it holds.

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value as Json};

use hyperstyle_core::atomic::{same_file, write_atomically_with};

use crate::dtype::DType;
use crate::error::{ConvertError, Result};
use crate::kind::{self, Kind};
use crate::plan::{self, Plan, PlanOptions};
use crate::source::{ByteSource, FileSource};
use crate::torch::{read_checkpoint, Checkpoint, Format};
use crate::{metadata, writer};

/// Options of a conversion.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvertOptions {
    /// Record this kind instead of the detected one.
    pub kind: Option<Kind>,
    /// Cast floating-point tensors to this type (`F32` or `F16`); integers are never cast.
    pub dtype: Option<DType>,
}

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertSummary {
    /// Container format of the input.
    pub format: Format,
    /// Kind recorded in the metadata.
    pub kind: Kind,
    /// Distinct tensors written.
    pub tensors: usize,
    /// Keys recorded as aliases of a written tensor.
    pub aliases: usize,
    /// Size of the output in bytes.
    pub bytes: u64,
}

/// One key of a checkpoint, as `--list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryEntry {
    /// Flattened key.
    pub key: String,
    /// Element type in the checkpoint.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// The canonical key, if this key is an alias of an earlier one.
    pub alias_of: Option<String>,
}

/// Everything a checkpoint holds, without its data.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// Container format.
    pub format: Format,
    /// Detected kind, if any rule matched.
    pub kind: Option<Kind>,
    /// Every tensor key in checkpoint order, aliases included.
    pub entries: Vec<InventoryEntry>,
    /// Training options, if present.
    pub opts: Option<Json>,
    /// Other top-level values holding no tensors.
    pub scalars: Map<String, Json>,
}

/// Output limit: 4× the input plus 1 MiB leaves room for casts to wider types and for
/// overlapping views of one storage, but stops tiny files describing huge broadcast views.
fn max_output_bytes(input_len: u64) -> u64 {
    input_len.saturating_mul(4).saturating_add(1 << 20)
}

/// Input bytes the writer may read per byte of input file, on top of [`READ_FLOOR`].
///
/// Each distinct tensor reads its elements (contiguous views) or the whole span of storage it
/// touches (strided views), so many small strided views of one large storage would read that
/// storage once each: a thousand of them over a 1 GB storage, a terabyte. Real checkpoints store
/// each tensor as a contiguous view of its own storage, and tensors shared under several names
/// (HyperStyle's shared hypernetwork, 10 names) are aliases read once, so they read at most
/// their own size; 4 leaves room for a few slices and transposes of one storage.
pub const READ_PER_INPUT_BYTE: u64 = 4;
/// Input bytes the writer may read regardless of the input's size.
pub const READ_FLOOR: u64 = 1 << 20;

fn max_read_bytes(input_len: u64) -> u64 {
    input_len.saturating_mul(READ_PER_INPUT_BYTE).saturating_add(READ_FLOOR)
}

fn check_options(options: &ConvertOptions) -> Result<()> {
    match options.dtype {
        Some(DType::F32 | DType::F16) | None => Ok(()),
        Some(other) => Err(ConvertError::Unsupported(format!(
            "casting floats to {other} (use F32 or F16)"
        ))),
    }
}

/// Reads and plans a checkpoint; returns it with the plan and the kind to record.
fn prepare<S: ByteSource + ?Sized>(src: &S, options: &ConvertOptions) -> Result<(Checkpoint, Plan, Kind)> {
    check_options(options)?;
    let ck = read_checkpoint(src)?;
    let kind = options.kind.or_else(|| kind::detect(&ck.root, &ck.arena));
    let plan = plan::plan(
        &ck,
        &PlanOptions {
            cast: options.dtype.or_else(|| kind.and_then(kind::default_cast)),
            max_output_bytes: max_output_bytes(src.len()),
            max_read_bytes: max_read_bytes(src.len()),
            kind,
        },
    )?;
    let kind = match kind {
        Some(kind) => kind,
        None => return Err(ConvertError::UnknownKind(describe_top_level(&ck))),
    };
    Ok((ck, plan, kind))
}

fn describe_top_level(ck: &Checkpoint) -> String {
    match ck.arena.dict_of(&ck.root) {
        Some(top) => {
            let keys: Vec<String> = top.iter().take(12).map(|(k, _)| crate::json::key_label(k)).collect();
            format!("top-level keys: {}", keys.join(", "))
        }
        None => format!("the top-level object is a {}", ck.root.type_name()),
    }
}

fn summary(ck: &Checkpoint, plan: &Plan, kind: Kind, bytes: u64) -> ConvertSummary {
    ConvertSummary {
        format: ck.format,
        kind,
        tensors: plan.tensors.len(),
        aliases: plan.aliases().count(),
        bytes,
    }
}

/// Converts the checkpoint at `input` into the safetensors file `output`.
///
/// The whole checkpoint is parsed and validated before the output is created; the output is
/// written to a temporary file in its directory and renamed into place, so on any error neither
/// the output nor a temporary file remains. Tensor data is streamed, so memory use stays near
/// the size of the largest tensor.
pub fn convert_file(input: &Path, output: &Path, options: &ConvertOptions) -> Result<ConvertSummary> {
    if same_file(input, output) {
        return Err(ConvertError::OutputIsInput(output.to_path_buf()));
    }
    let src = FileSource::open(input)?;
    let (ck, plan, kind) = prepare(&src, options)?;
    let source_file = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = metadata::build(&plan, kind, &source_file, &metadata::sha256_hex(&src)?);
    let bytes = write_atomically_with(
        output,
        |w| writer::write_safetensors(&ck.source(&src), &plan, ck.big_endian, &meta, w),
        |step, e| ConvertError::io(format!("{} {}", step.describe(), output.display()), e),
    )?;
    Ok(summary(&ck, &plan, kind, bytes))
}

/// Converts a checkpoint held in memory, writing the safetensors bytes to `out`.
/// `source_file` is recorded as the `source_file` metadata entry.
pub fn convert_bytes<W: Write>(
    bytes: &[u8],
    source_file: &str,
    options: &ConvertOptions,
    out: &mut W,
) -> Result<ConvertSummary> {
    let (ck, plan, kind) = prepare(bytes, options)?;
    let meta = metadata::build(&plan, kind, source_file, &metadata::sha256_hex(bytes)?);
    let written = writer::write_safetensors(&ck.source(bytes), &plan, ck.big_endian, &meta, out)?;
    Ok(summary(&ck, &plan, kind, written))
}

fn inventory<S: ByteSource + ?Sized>(src: &S) -> Result<Inventory> {
    let ck = read_checkpoint(src)?;
    let plan = plan::plan(
        &ck,
        &PlanOptions {
            cast: None,
            max_output_bytes: max_output_bytes(src.len()),
            max_read_bytes: max_read_bytes(src.len()),
            kind: None,
        },
    )?;
    let entries = plan
        .keys
        .iter()
        .filter_map(|(key, i)| {
            let t = plan.tensors.get(*i)?;
            Some(InventoryEntry {
                key: key.clone(),
                dtype: t.tensor.dtype(),
                shape: t.tensor.shape.clone(),
                alias_of: (t.key != *key).then(|| t.key.clone()),
            })
        })
        .collect();
    Ok(Inventory {
        format: ck.format,
        kind: kind::detect(&ck.root, &ck.arena),
        entries,
        opts: plan.opts,
        scalars: plan.scalars,
    })
}

/// Lists the tensors (keys, dtypes, shapes, aliases) and options of the checkpoint at `input`
/// without reading tensor data.
pub fn inspect_file(input: &Path) -> Result<Inventory> {
    inventory(&FileSource::open(input)?)
}

/// [`inspect_file`] for a checkpoint held in memory.
pub fn inspect_bytes(bytes: &[u8]) -> Result<Inventory> {
    inventory(bytes)
}
