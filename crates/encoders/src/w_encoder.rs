//! `WEncoder`: HyperStyle's initial W inverter (docs/ARCHITECTURE.md §5.2, §7.2, §10.2).

use burn::prelude::*;
use hyperstyle_core::{EqualLinear, EqualLinearConfig, Weights};

use crate::ir_se50::{IrSe50, FEATURE_CHANNELS};
use crate::latent_avg::{LatentAverage, STYLE_DIM};
use crate::se_module::spatial_mean;
use hyperstyle_core::{Error, Result};

/// `WEncoder(50, 'ir_se')`: IR-SE-50 on the RGB image → global average pool → `linear`
/// (EqualLinear 512→512) → that one vector repeated `n_styles` times. All rows are equal: a W
/// code, predicted as an offset from the average latent.
#[derive(Module, Debug)]
pub struct WEncoder<B: Backend> {
    backbone: IrSe50<B>,
    linear: EqualLinear<B>,
    n_styles: usize,
}

impl<B: Backend> WEncoder<B> {
    /// Loads `input_layer.*`, `body.*` and `linear.*` from `weights` (the view of the W-encoder
    /// checkpoint's `encoder.` keys: `store.scope("state_dict/encoder.")` in converted files).
    /// `n_styles` is the generator's W+ row count, `2·log2(output_size) − 2` (18 at 1024).
    /// Keys the encoder does not have are an error.
    pub fn load(weights: &Weights, n_styles: usize, device: &B::Device) -> Result<Self> {
        if n_styles == 0 {
            return Err(Error::InvalidConfig("n_styles must be at least 1".into()));
        }
        // Upstream hard-codes 3 input channels (the pSp wrapper also forces `input_nc = 3`).
        let encoder = Self {
            backbone: IrSe50::load(weights, 3, device)?,
            linear: EqualLinearConfig::new(FEATURE_CHANNELS, STYLE_DIM).load(&weights.pp("linear"), device)?,
            n_styles,
        };
        weights.check_all_used()?;
        Ok(encoder)
    }

    /// Rows of the predicted codes.
    pub fn n_styles(&self) -> usize {
        self.n_styles
    }

    /// The encoder's own output, the offset from the average latent: images `[batch, 3, h, w]`
    /// normalised to [-1, 1] → `[batch, n_styles, 512]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        let features = self.backbone.forward(images)?;
        let w = self.linear.forward(spatial_mean(features));
        Ok(w.unsqueeze_dim::<3>(1).repeat_dim(1, self.n_styles))
    }

    /// HyperStyle's initial inversion `codes = WEncoder(x) + latent_avg`, with the latent
    /// average of the **HyperStyle** checkpoint (not the W-encoder checkpoint's own).
    /// images: `[batch, 3, h, w]` → `[batch, n_styles, 512]`.
    pub fn w_codes(&self, images: Tensor<B, 4>, latent_avg: &LatentAverage<B>) -> Result<Tensor<B, 3>> {
        latent_avg.add_to(self.forward(images)?)
    }
}
