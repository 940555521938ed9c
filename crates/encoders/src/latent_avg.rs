//! `latent_avg`: the average W code that the encoders predict offsets from (docs/ARCHITECTURE.md §7.2, §11.14).

use burn::module::Param;
use burn::prelude::*;
use hyperstyle_core::Weights;

use hyperstyle_core::{Error, Result};

/// Width of a W code.
pub const STYLE_DIM: usize = 512;

/// The average latent a checkpoint stores next to its networks: `(n_styles, 512)` (HyperStyle,
/// ReStyle) or `(512,)` (generators, some 512-px models). Either way it is added to every style
/// row of every sample.
#[derive(Module, Debug)]
pub struct LatentAverage<B: Backend> {
    /// `[n_styles or 1, 512]`.
    value: Param<Tensor<B, 2>>,
}

impl<B: Backend> LatentAverage<B> {
    /// Reads `name` from `weights` (e.g. `store.root()` and `"latent_avg"`), accepting
    /// `[n_styles, 512]` or `[512]`.
    pub fn load(weights: &Weights, name: &str, n_styles: usize, device: &B::Device) -> Result<Self> {
        let key = weights.key(name);
        let shape = weights
            .store()
            .shape(&key)
            .ok_or_else(|| Error::MissingKey { key: key.clone() })?;
        let rows = if shape == [STYLE_DIM] {
            1
        } else if shape == [n_styles, STYLE_DIM] {
            n_styles
        } else {
            return Err(Error::ShapeMismatch {
                key,
                expected: vec![n_styles, STYLE_DIM],
                found: shape,
            });
        };
        let values = weights.values(name, &shape)?;
        Ok(Self {
            value: Param::from_tensor(Tensor::from_data(TensorData::new(values, [rows, STYLE_DIM]), device)),
        })
    }

    /// From a tensor `[n_styles or 1, 512]`.
    pub fn from_tensor(value: Tensor<B, 2>) -> Result<Self> {
        if value.dims()[1] != STYLE_DIM {
            return Err(Error::InvalidInput(format!(
                "latent_avg must be [rows, {STYLE_DIM}], got {:?}",
                value.dims()
            )));
        }
        Ok(Self {
            value: Param::from_tensor(value),
        })
    }

    /// The stored value, `[n_styles or 1, 512]`.
    pub fn value(&self) -> Tensor<B, 2> {
        self.value.val()
    }

    /// `codes + latent_avg` over every sample and row. codes: `[batch, n_styles, 512]`.
    pub fn add_to(&self, codes: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
        let [_, n_styles, dim] = codes.dims();
        let rows = self.value.dims()[0];
        if dim != STYLE_DIM || (rows != 1 && rows != n_styles) {
            return Err(Error::InvalidInput(format!(
                "cannot add latent_avg {:?} to codes {:?}",
                self.value.dims(),
                codes.dims()
            )));
        }
        Ok(codes + self.value.val().unsqueeze_dim(0))
    }

    /// The average itself as codes `[batch, n_styles, 512]` (ReStyle decodes it into the
    /// "average image" its first iteration starts from).
    pub fn codes(&self, batch: usize, n_styles: usize) -> Result<Tensor<B, 3>> {
        let zeros = Tensor::zeros([batch, n_styles, STYLE_DIM], &self.value.device());
        self.add_to(zeros)
    }
}
