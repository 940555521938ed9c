//! Golden tensors written by the upstream code (`{config}_golden.safetensors`).

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// All tensors of a golden file, as f32 (integer shape vectors converted).
pub struct Golden {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Golden {
    /// Reads a golden safetensors file (all entries are F32).
    pub fn load(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                // Everything is F32 except the integer `delta{j}_shape` vectors.
                if !matches!(view.dtype(), Dtype::F32 | Dtype::I64) {
                    panic!("{name}: unexpected golden dtype {:?}", view.dtype());
                }
                let values = values_f64(&view).into_iter().map(|v| v as f32).collect();
                (name, (view.shape().to_vec(), values))
            })
            .collect();
        Self { tensors }
    }

    /// Shape and values of `name`.
    pub fn get(&self, name: &str) -> (&[usize], &[f32]) {
        let (shape, values) = self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("golden tensor `{name}` not found"));
        (shape, values)
    }

    /// `name` as a Burn tensor of rank `D`.
    pub fn tensor<B: Backend, const D: usize>(&self, name: &str, device: &B::Device) -> Tensor<B, D> {
        let (shape, values) = self.get(name);
        assert_eq!(shape.len(), D, "{name}: rank {} requested, file has {shape:?}", D);
        Tensor::from_data(TensorData::new(values.to_vec(), shape.to_vec()), device)
    }

    /// Whether the file has `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// The values of a safetensors entry as f64: F32, F64 or I64 in the file (anything else panics).
pub fn values_f64(view: &TensorView<'_>) -> Vec<f64> {
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64)
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

/// Shape and f64 values (see [`values_f64`]) of entry `name` of the safetensors file at `path`.
pub fn read_f64(path: impl AsRef<Path>, name: &str) -> (Vec<usize>, Vec<f64>) {
    let path = path.as_ref();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let file = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let view = file
        .tensor(name)
        .unwrap_or_else(|e| panic!("{}: `{name}`: {e}", path.display()));
    (view.shape().to_vec(), values_f64(&view))
}
