//! Per-sample multiplicative weight offsets, HyperStyle's `weights_deltas` (docs/ARCHITECTURE.md §4).

use std::ops::{Deref, DerefMut};

use burn::prelude::*;
use hyperstyle_core::{Error, Result};

/// One optional offset per modulated layer, in the order of
/// [`GeneratorConfig::layers`](crate::GeneratorConfig::layers) (26 at 1024). `None` leaves a layer
/// as it is; a tensor `[batch or 1, out, in, k, k]` makes that layer use `W·(1 + Δ)` before
/// modulation. An offset that is the same on every tap may be `[batch or 1, out, in, 1, 1]`
/// (what HyperStyle's non-shared refinement blocks predict): it is broadcast, never repeated.
///
/// The hypernetwork returns one of these per refinement step; the steps' offsets are summed
/// ([`WeightOffsets::accumulate`]); the generator, editing and domain adaptation take them.
/// It dereferences to the slice of per-layer entries (an entry may be replaced; the number of
/// layers is fixed).
#[derive(Debug, Clone)]
pub struct WeightOffsets<B: Backend> {
    layers: Vec<Option<Tensor<B, 5>>>,
}

impl<B: Backend> WeightOffsets<B> {
    /// From one entry per generator layer.
    pub fn new(layers: Vec<Option<Tensor<B, 5>>>) -> Self {
        Self { layers }
    }

    /// No offset on any of `n_layers` layers (the unmodified generator).
    pub fn none(n_layers: usize) -> Self {
        Self::new(vec![None; n_layers])
    }

    /// The per-layer entries.
    pub fn into_vec(self) -> Vec<Option<Tensor<B, 5>>> {
        self.layers
    }

    /// The sum of two steps' offsets, layer by layer (upstream adds each step's offsets to the
    /// running total); a layer is `None` only where both are.
    pub fn accumulate(self, step: Self) -> Result<Self> {
        if self.len() != step.len() {
            return Err(Error::InvalidInput(format!(
                "cannot add offsets of {} layers to offsets of {} layers",
                step.len(),
                self.len()
            )));
        }
        let layers = self
            .layers
            .into_iter()
            .zip(step.layers)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            })
            .collect();
        Ok(Self { layers })
    }

    /// The offsets of sample `b` (batch axis kept, size 1): what the generator broadcasts over
    /// that sample's edits (upstream's `d[idx]`). An offset of batch 1 serves every sample.
    pub fn sample(&self, b: usize) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(j, offset)| {
                offset
                    .as_ref()
                    .map(|o| match o.dims()[0] {
                        1 => Ok(o.clone()),
                        n if b < n => Ok(o.clone().narrow(0, b, 1)),
                        n => Err(Error::InvalidInput(format!(
                            "offset of layer {j} holds {n} samples, sample {b} requested"
                        ))),
                    })
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// The same offsets with every layer outside `keep` set to `None`.
    pub fn keep_layers(self, keep: &[usize]) -> Self {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(j, o)| if keep.contains(&j) { o } else { None })
            .collect();
        Self { layers }
    }

    /// The batch size of the offsets: the largest leading dimension of any entry (`None` if no
    /// layer has an offset).
    pub fn batch(&self) -> Option<usize> {
        self.layers.iter().flatten().map(|o| o.dims()[0]).max()
    }
}

impl<B: Backend> Deref for WeightOffsets<B> {
    type Target = [Option<Tensor<B, 5>>];

    fn deref(&self) -> &Self::Target {
        &self.layers
    }
}

impl<B: Backend> DerefMut for WeightOffsets<B> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.layers
    }
}

impl<B: Backend> From<Vec<Option<Tensor<B, 5>>>> for WeightOffsets<B> {
    fn from(layers: Vec<Option<Tensor<B, 5>>>) -> Self {
        Self::new(layers)
    }
}

impl<B: Backend> IntoIterator for WeightOffsets<B> {
    type Item = Option<Tensor<B, 5>>;
    type IntoIter = std::vec::IntoIter<Option<Tensor<B, 5>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.layers.into_iter()
    }
}

impl<B: Backend> FromIterator<Option<Tensor<B, 5>>> for WeightOffsets<B> {
    fn from_iter<I: IntoIterator<Item = Option<Tensor<B, 5>>>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn offset(value: f32, batch: usize) -> Option<Tensor<Flex, 5>> {
        Some(Tensor::full([batch, 2, 2, 1, 1], value, &Default::default()))
    }

    fn values(o: &Option<Tensor<Flex, 5>>) -> Vec<f32> {
        o.clone().unwrap().into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn accumulate_sums_layers_and_keeps_untouched_ones() {
        let a = WeightOffsets::new(vec![offset(1.0, 2), None, None, offset(0.5, 2)]);
        let b = WeightOffsets::new(vec![offset(2.0, 2), None, offset(4.0, 2), offset(0.25, 2)]);
        let sum = a.accumulate(b).unwrap();
        assert_eq!(values(&sum[0]), [3.0; 8]);
        assert!(sum[1].is_none());
        assert_eq!(values(&sum[2]), [4.0; 8]);
        assert_eq!(values(&sum[3]), [0.75; 8]);
        assert_eq!(sum.batch(), Some(2));
        let err = sum.accumulate(WeightOffsets::none(3)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }

    #[test]
    fn sample_and_keep_layers() {
        let device = Default::default();
        let two = Tensor::<Flex, 1>::from_floats([1.0, 2.0], &device).reshape([2, 1, 1, 1, 1]);
        let offsets = WeightOffsets::new(vec![Some(two), offset(7.0, 1), None]);
        let second = offsets.sample(1).unwrap();
        assert_eq!(values(&second[0]), [2.0]);
        assert_eq!(values(&second[1]), [7.0; 4], "batch-1 offsets serve every sample");
        assert!(matches!(offsets.sample(2), Err(Error::InvalidInput(_))));
        let kept = offsets.keep_layers(&[1]);
        assert!(kept[0].is_none() && kept[1].is_some() && kept[2].is_none());
        assert_eq!(WeightOffsets::<Flex>::none(3).batch(), None);
    }
}
