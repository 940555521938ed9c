//! Storages and tensor views as a checkpoint describes them.
//!
//! A PyTorch tensor is a view into a storage: element offset, shape and strides. Several tensors
//! may view one storage (a shared weight, a slice, a transpose); the converter materialises each
//! distinct view as contiguous row-major data and records exact duplicates as aliases.

use std::rc::Rc;

use crate::dtype::DType;
use crate::pickle::Value;

/// Most dimensions a tensor may have (PyTorch's own limit is 64 as well).
pub const MAX_DIMS: usize = 64;

/// A storage referenced by the pickle's persistent ids; its bytes live elsewhere in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    /// Key of the storage's data (`data/<key>` in a zip archive, a record in the legacy stream).
    pub key: Rc<str>,
    /// Element type.
    pub dtype: DType,
    /// Number of elements the storage holds.
    pub numel: u64,
    /// Element offset of this storage inside the data record. Always 0 except for the legacy
    /// format's storage views, which share the bytes of a root storage.
    pub base: u64,
}

/// A tensor: a strided view of a storage.
#[derive(Clone, Debug)]
pub struct TensorRef {
    /// The storage viewed.
    pub storage: Rc<StorageRef>,
    /// Element offset of the first element within the storage.
    pub offset: u64,
    /// Size of each dimension (empty for a scalar).
    pub shape: Vec<u64>,
    /// Stride of each dimension, in elements.
    pub stride: Vec<u64>,
}

/// What makes two tensors the same data: same bytes of the same record, viewed the same way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ViewIdentity {
    key: Rc<str>,
    dtype: DType,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

impl TensorRef {
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype
    }

    /// Number of elements, or `None` if it overflows `u64`.
    pub fn numel(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
    }

    /// Number of storage elements from the first element to one past the last one the view
    /// touches (0 for an empty tensor), or `None` on overflow.
    pub fn extent(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        let last = self.shape.iter().zip(&self.stride).try_fold(0u64, |acc, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
        })?;
        last.checked_add(1)
    }

    /// Whether the view is plain row-major data (dimensions of size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = match expected.checked_mul(d) {
                Some(e) => e,
                None => return false,
            };
        }
        true
    }

    pub(crate) fn identity(&self) -> ViewIdentity {
        ViewIdentity {
            key: self.storage.key.clone(),
            dtype: self.storage.dtype,
            offset: self.storage.base.saturating_add(self.offset),
            shape: self.shape.clone(),
            stride: self.stride.clone(),
        }
    }
}

/// Builds a tensor from the arguments of `_rebuild_tensor_v2(storage, storage_offset, size,
/// stride, requires_grad, backward_hooks[, metadata])` or `_rebuild_tensor(storage,
/// storage_offset, size, stride)`. Only the first four arguments matter for the data.
pub(crate) fn rebuild(args: &[Value]) -> Result<TensorRef, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!("tensor rebuild takes at least 4 arguments, got {}", args.len()));
    };
    let Value::Storage(storage) = storage else {
        return Err(format!("tensor rebuild expects a storage, got {}", storage.type_name()));
    };
    let offset = non_negative(offset, "storage offset")?;
    let shape = int_tuple(size, "size")?;
    let stride = int_tuple(stride, "stride")?;
    if shape.len() != stride.len() {
        return Err(format!(
            "size has {} dimensions but stride has {}",
            shape.len(),
            stride.len()
        ));
    }
    Ok(TensorRef {
        storage: storage.clone(),
        offset,
        shape,
        stride,
    })
}

fn non_negative(value: &Value, what: &str) -> Result<u64, String> {
    value
        .as_int()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| format!("{what} must be a non-negative int, got {}", value.describe()))
}

fn int_tuple(value: &Value, what: &str) -> Result<Vec<u64>, String> {
    let Value::Tuple(items) = value else {
        return Err(format!("{what} must be a tuple, got {}", value.type_name()));
    };
    if items.len() > MAX_DIMS {
        return Err(format!(
            "{what} has {} dimensions (at most {MAX_DIMS} supported)",
            items.len()
        ));
    }
    items.iter().map(|v| non_negative(v, what)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(shape: &[u64], stride: &[u64], offset: u64) -> TensorRef {
        let storage = Rc::new(StorageRef {
            key: "0".into(),
            dtype: DType::F32,
            numel: 100,
            base: 0,
        });
        TensorRef {
            storage,
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    #[test]
    fn extents_and_contiguity() {
        assert_eq!(view(&[3, 8], &[8, 1], 16).extent(), Some(24));
        assert!(view(&[3, 8], &[8, 1], 16).is_contiguous());
        assert_eq!(view(&[10, 2], &[8, 1], 1).extent(), Some(74));
        assert!(!view(&[10, 2], &[8, 1], 1).is_contiguous());
        assert_eq!(view(&[], &[], 5).extent(), Some(1));
        assert_eq!(view(&[0, 3], &[3, 1], 0).extent(), Some(0));
        assert!(view(&[1, 4], &[99, 1], 0).is_contiguous());
        assert_eq!(view(&[u64::MAX, 2], &[u64::MAX, 1], 0).extent(), None);
    }
}
