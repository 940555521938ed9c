//! Golden tensors written by the upstream code (`{config}_golden.safetensors`).

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
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
                let values = match view.dtype() {
                    Dtype::F32 => view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                    Dtype::I64 => view
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                        .collect(),
                    other => panic!("{name}: unexpected golden dtype {other:?}"),
                };
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
