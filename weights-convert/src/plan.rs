//! Turning a checkpoint's object tree into the list of tensors to write: flattened keys,
//! aliases, validated views, options and scalars.
//!
//! Everything that can be wrong with a file is found here, before the output is created: a
//! conversion either fails without writing anything or writes a complete file.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::{Map, Value as Json};

use crate::allowlist::Global;
use crate::dtype::DType;
use crate::error::{ConvertError, Result};
use crate::json::{key_string, to_json, Budget, MAX_KEY_BYTES};
use crate::kind::{self, Kind};
use crate::pickle::{Obj, Value};
use crate::tensor::TensorRef;
use crate::torch::{Checkpoint, StorageData};

pub use hyperstyle_core::checkpoint::BARE_TENSOR_KEY;
/// Separator between the components of a flattened key (`state_dict/decoder.conv1.weight`).
pub const KEY_SEPARATOR: &str = "/";
/// Separator below a TorchScript module, whose attributes are joined as `state_dict()` names
/// them (`transformer.resblocks.0.attn.in_proj_weight`).
pub const MODULE_SEPARATOR: &str = ".";
/// The safetensors header's reserved key.
const METADATA_KEY: &str = "__metadata__";

/// A tensor to write: a validated view and where its storage is.
#[derive(Clone, Debug)]
pub struct PlannedTensor {
    /// Flattened key (the canonical one, for aliased data).
    pub key: String,
    /// The view.
    pub tensor: Rc<TensorRef>,
    /// Where the storage's bytes are.
    pub data: StorageData,
    /// Element type written (the checkpoint's, or the `--dtype` cast for floats).
    pub out_dtype: DType,
    /// Number of elements.
    pub numel: u64,
}

impl PlannedTensor {
    /// Size of the tensor in the output, in bytes.
    pub fn out_len(&self) -> u64 {
        // Cannot overflow: checked against the output limit when planning.
        self.numel.saturating_mul(self.out_dtype.size() as u64)
    }

    /// Bytes of input the writer reads for this tensor: its elements if it is contiguous, else
    /// the whole span of storage its view touches.
    pub fn read_len(&self) -> u64 {
        let size = self.tensor.dtype().size() as u64;
        let elements = if self.numel == 0 {
            0
        } else if self.tensor.is_contiguous() {
            self.numel
        } else {
            // Cannot overflow: checked against the storage when planning.
            self.tensor.extent().unwrap_or(u64::MAX)
        };
        elements.saturating_mul(size)
    }
}

/// What to write, in the checkpoint's (pickle) order.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Distinct tensors, each written once.
    pub tensors: Vec<PlannedTensor>,
    /// Every flattened key with the index of its tensor in `tensors`; a key that differs from
    /// that tensor's key is an alias.
    pub keys: Vec<(String, usize)>,
    /// The checkpoint's options (`opts`, or rosinality's `args`) as JSON.
    pub opts: Option<Json>,
    /// Other top-level entries that hold no tensors (`global_step`, `best_val_loss`, ...).
    pub scalars: Map<String, Json>,
}

impl Plan {
    /// `(alias, canonical)` pairs in pickle order.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys.iter().filter_map(|(key, i)| {
            let canonical = self.tensors.get(*i)?.key.as_str();
            (canonical != key).then_some((key.as_str(), canonical))
        })
    }
}

/// Settings for [`plan`].
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// Cast floating-point tensors to this type.
    pub cast: Option<DType>,
    /// Refuse checkpoints whose tensors would take more output bytes than this (a few bytes of
    /// storage can describe a huge broadcast view).
    pub max_output_bytes: u64,
    /// Refuse checkpoints whose tensors would make the writer read more input bytes than this
    /// (many distinct strided views of one large storage each read the span they touch).
    pub max_read_bytes: u64,
    /// The checkpoint's kind, whose naming rule ([`kind::output_key`]) renames or drops keys
    /// before anything is validated (a dropped tensor is never checked nor read).
    pub kind: Option<Kind>,
}

/// The option entry of a top-level dict: `opts` (pSp/HyperStyle family) or `args` (rosinality).
fn opts_entry(root: &Value, ck: &Checkpoint) -> Option<&'static str> {
    let top = ck.arena.dict_of(root)?;
    ["opts", "args"]
        .into_iter()
        .find(|k| top.get(k).is_some_and(|v| !matches!(v, Value::None)))
}

/// Flattens, deduplicates and validates the tensors of `ck`.
pub fn plan(ck: &Checkpoint, options: &PlanOptions) -> Result<Plan> {
    let mut budget = Budget::for_pickle(ck.pickle_len);
    let mut found = Vec::new();
    let mut plan = Plan::default();

    match &ck.root {
        Value::Tensor(t) => found.push((BARE_TENSOR_KEY.to_string(), t.clone())),
        root => {
            let opts_key = opts_entry(root, ck);
            // A TorchScript module's plain attributes (`training`, hook flags) are not recorded.
            let script = is_script_object(ck, root);
            match ck.arena.dict_of(root) {
                Some(top) => {
                    for (k, v) in top.iter() {
                        let key = key_string(k)?;
                        budget.text(key.len())?;
                        let before = found.len();
                        walk(ck, v, key.clone(), 1, &mut budget, &mut found)?;
                        if Some(key.as_str()) == opts_key {
                            plan.opts = Some(to_json(v, &ck.arena, &mut budget, 1)?);
                        } else if found.len() == before && !script && !matches!(v, Value::Storage(_)) {
                            plan.scalars.insert(key, to_json(v, &ck.arena, &mut budget, 1)?);
                        }
                    }
                }
                None => walk(ck, root, String::new(), 0, &mut budget, &mut found)?,
            }
        }
    }

    let mut seen_keys = HashSet::new();
    let mut by_view = HashMap::new();
    // The same tensor object referenced again is an alias without comparing views.
    let mut by_object: HashMap<*const TensorRef, usize> = HashMap::new();
    let mut total: u64 = 0;
    let mut read: u64 = 0;
    for (key, tensor) in found {
        let key = match options.kind {
            Some(kind) => match kind::output_key(kind, &key) {
                Some(renamed) => renamed,
                None => continue,
            },
            None => key,
        };
        if key == METADATA_KEY || !seen_keys.insert(key.clone()) {
            return Err(ConvertError::DuplicateKey(key));
        }
        if let Some(&index) = by_object.get(&Rc::as_ptr(&tensor)) {
            plan.keys.push((key, index));
            continue;
        }
        let identity = tensor.identity();
        if let Some(&index) = by_view.get(&identity) {
            by_object.insert(Rc::as_ptr(&tensor), index);
            plan.keys.push((key, index));
            continue;
        }
        let planned = validate(ck, key.clone(), tensor, options)?;
        total = total
            .checked_add(planned.out_len())
            .filter(|&t| t <= options.max_output_bytes)
            .ok_or_else(|| {
                ConvertError::TooLarge(format!(
                    "the tensors would take more than {} bytes of output (broadcast views?)",
                    options.max_output_bytes
                ))
            })?;
        read = read
            .checked_add(planned.read_len())
            .filter(|&r| r <= options.max_read_bytes)
            .ok_or_else(|| {
                ConvertError::TooLarge(format!(
                    "writing the tensors would read more than {} bytes of input (many strided views \
                     of one storage?)",
                    options.max_read_bytes
                ))
            })?;
        let index = plan.tensors.len();
        by_object.insert(Rc::as_ptr(&planned.tensor), index);
        plan.tensors.push(planned);
        by_view.insert(identity, index);
        plan.keys.push((key, index));
    }
    Ok(plan)
}

/// Whether `value` is a TorchScript module object.
fn is_script_object(ck: &Checkpoint, value: &Value) -> bool {
    matches!(value, Value::Object(id) if matches!(ck.arena.get(*id), Obj::Object { class: Global::ScriptClass, .. }))
}

/// `prefix{separator}component`, refused if longer than [`MAX_KEY_BYTES`]; charged to the
/// budget.
fn join(prefix: &str, separator: &str, component: &str, budget: &mut Budget) -> Result<String> {
    let len = if prefix.is_empty() {
        component.len()
    } else {
        prefix.len() + separator.len() + component.len()
    };
    if len > MAX_KEY_BYTES {
        return Err(ConvertError::TooLarge(format!(
            "a tensor key is longer than {MAX_KEY_BYTES} bytes: {}…",
            crate::pickle::prefix(prefix, 120)
        )));
    }
    // The key, and the entry that holds it once found.
    budget.text(len + 32)?;
    Ok(if prefix.is_empty() {
        component.to_string()
    } else {
        format!("{prefix}{separator}{component}")
    })
}

/// Collects every tensor below `value` with its flattened key, in pickle order.
fn walk(
    ck: &Checkpoint,
    value: &Value,
    path: String,
    depth: usize,
    budget: &mut Budget,
    found: &mut Vec<(String, Rc<TensorRef>)>,
) -> Result<()> {
    budget.visit(depth)?;
    match value {
        Value::Tensor(t) => found.push((path, t.clone())),
        // A numpy array (never built: an empty placeholder holding no data).
        Value::Object(id) if matches!(ck.arena.get(*id), Obj::Array(_)) => {
            if let Obj::Array(Some(t)) = ck.arena.get(*id) {
                found.push((path, t.clone()));
            }
        }
        Value::Dict(_) | Value::Object(_) => {
            let separator = if is_script_object(ck, value) {
                MODULE_SEPARATOR
            } else {
                KEY_SEPARATOR
            };
            if let Some(dict) = ck.arena.dict_of(value) {
                for (k, v) in dict.iter() {
                    if holds_tensors(v) {
                        let path = join(&path, separator, &key_string(k)?, budget)?;
                        walk(ck, v, path, depth + 1, budget, found)?;
                    } else {
                        budget.visit(depth + 1)?;
                    }
                }
            }
        }
        Value::List(id) => {
            if let Obj::List(items) = ck.arena.get(*id) {
                walk_items(ck, items, &path, depth, budget, found)?;
            }
        }
        Value::Tuple(items) => {
            walk_items(ck, items, &path, depth, budget, found)?;
        }
        _ => {}
    }
    Ok(())
}

/// Whether walking `value` can find a tensor (so that it needs a key path).
fn holds_tensors(value: &Value) -> bool {
    matches!(
        value,
        Value::Tensor(_) | Value::Dict(_) | Value::Object(_) | Value::List(_) | Value::Tuple(_)
    )
}

/// [`walk`] over the items of a list or tuple at `depth`, keyed by index.
fn walk_items(
    ck: &Checkpoint,
    items: &[Value],
    path: &str,
    depth: usize,
    budget: &mut Budget,
    found: &mut Vec<(String, Rc<TensorRef>)>,
) -> Result<()> {
    for (i, v) in items.iter().enumerate() {
        if holds_tensors(v) {
            let path = join(path, KEY_SEPARATOR, &i.to_string(), budget)?;
            walk(ck, v, path, depth + 1, budget, found)?;
        } else {
            budget.visit(depth + 1)?;
        }
    }
    Ok(())
}

/// Checks that the view lies inside its storage's bytes and decides the output type.
fn validate(ck: &Checkpoint, key: String, tensor: Rc<TensorRef>, options: &PlanOptions) -> Result<PlannedTensor> {
    let invalid = |reason: String| ConvertError::InvalidTensor {
        key: key.clone(),
        reason,
    };
    let storage = &tensor.storage;
    let data = *ck
        .storages
        .get(&storage.key)
        .ok_or_else(|| invalid(format!("its storage `{}` has no data in the file", storage.key)))?;
    let numel = tensor
        .numel()
        .ok_or_else(|| invalid(format!("shape {:?} overflows", tensor.shape)))?;
    let extent = tensor
        .extent()
        .ok_or_else(|| invalid(format!("view {:?}/{:?} overflows", tensor.shape, tensor.stride)))?;
    if numel > 0 {
        let end = tensor.offset.checked_add(extent);
        if end.is_none_or(|end| end > storage.numel) {
            return Err(invalid(format!(
                "view (offset {}, shape {:?}, stride {:?}) reaches past its storage of {} elements",
                tensor.offset, tensor.shape, tensor.stride, storage.numel
            )));
        }
        let record_end = storage.base.checked_add(storage.numel);
        if record_end.is_none_or(|end| end > data.elements()) {
            return Err(invalid(format!("storage `{}` is shorter than declared", storage.key)));
        }
    }
    let dtype = tensor.dtype();
    let out_dtype = match options.cast {
        Some(cast) if dtype.is_float() => cast,
        _ => dtype,
    };
    numel
        .checked_mul(out_dtype.size() as u64)
        .ok_or_else(|| invalid("too many bytes".into()))?;
    Ok(PlannedTensor {
        key,
        tensor,
        data,
        out_dtype,
        numel,
    })
}
