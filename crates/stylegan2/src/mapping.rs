//! The mapping network z → w: PixelNorm then equalized linear layers with lr multiplier and
//! fused leaky ReLU (docs/ARCHITECTURE.md §3.2).

use burn::prelude::*;

use hyperstyle_core::weights::NamedTensor;
use hyperstyle_core::{EqualLinear, EqualLinearConfig, Result, Weights};

/// `x · rsqrt(mean(x², dim 1) + 1e-8)`.
pub fn pixel_norm<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).mean_dim(1).add_scalar(1e-8).sqrt().recip();
    x * norm
}

/// `style.1 … style.{n_mlp}` (index 0 is the parameter-free PixelNorm).
#[derive(Module, Debug)]
pub struct MappingNetwork<B: Backend> {
    layers: Vec<EqualLinear<B>>,
}

impl<B: Backend> MappingNetwork<B> {
    /// Loads `style.{1..=n_mlp}.{weight,bias}`.
    pub fn load(weights: &Weights, style_dim: usize, n_mlp: usize, lr_mul: f32, device: &B::Device) -> Result<Self> {
        let config = EqualLinearConfig::new(style_dim, style_dim)
            .with_lr_mul(lr_mul)
            .with_activation(true);
        let layers = (1..=n_mlp)
            .map(|i| config.load(&weights.pp(format!("style.{i}")), device))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// The layers as a checkpoint stores them: `style.{i}.weight` and `style.{i}.bias`.
    pub fn checkpoint_tensors(&self, out: &mut Vec<NamedTensor>) -> Result<()> {
        for (i, layer) in self.layers.iter().enumerate() {
            let (weight, bias) = layer.checkpoint_tensors()?;
            let dim = (weight.len() as f64).sqrt() as usize;
            out.push((format!("style.{}.weight", i + 1), vec![dim, dim], weight));
            if let Some(bias) = bias {
                out.push((format!("style.{}.bias", i + 1), vec![dim], bias));
            }
        }
        Ok(())
    }

    /// z: `[batch, style_dim]` → w: `[batch, style_dim]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        self.layers.iter().fold(pixel_norm(z), |x, layer| layer.forward(x))
    }
}
