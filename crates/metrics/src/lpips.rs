//! LPIPS v0.1 with AlexNet, as HyperStyle's `criteria/lpips` computes it:
//!
//! 1. both images (in [−1, 1]) are shifted and scaled per channel by the "scaling layer"
//!    (`(x − shift)/scale`, shift = (−0.030, −0.088, −0.188), scale = (0.458, 0.448, 0.450));
//! 2. AlexNet's five ReLU outputs ([`AlexNetFeatures`]) are each divided, per pixel, by their
//!    L2 norm over channels plus 1e-10;
//! 3. the squared differences of the two images' normalised features are weighted per channel
//!    by the learned linear layer of that level (a bias-free 1×1 convolution to one channel),
//!    averaged over pixels, and the five levels summed.

use burn::module::Param;
use burn::prelude::*;
use hyperstyle_core::Weights;

use crate::alexnet::{AlexNetFeatures, CHANNELS, MIN_SIDE};
use crate::{check_pair, Result};

/// The scaling layer's per-channel shift.
pub const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
/// The scaling layer's per-channel scale.
pub const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
/// Added to the feature norm before dividing by it.
const NORM_EPS: f32 = 1e-10;

/// LPIPS (AlexNet, v0.1): the perceptual distance of upstream's metric script and training loss.
#[derive(Module, Debug)]
pub struct Lpips<B: Backend> {
    net: AlexNetFeatures<B>,
    /// Per level, the linear layer's weights as `[1, channels, 1, 1]`.
    linear: Vec<Param<Tensor<B, 4>>>,
    shift: Tensor<B, 4>,
    scale: Tensor<B, 4>,
}

impl<B: Backend> Lpips<B> {
    /// Loads AlexNet from `alexnet` (torchvision's keys, see [`AlexNetFeatures::load`]) and the
    /// five linear layers from `linear` with the keys of the LPIPS release's `alex.pth`:
    /// `lin{i}.model.1.weight`, `[1, channels, 1, 1]`. Fails on missing keys, wrong shapes and
    /// on any other tensor under either view.
    pub fn load(alexnet: &Weights, linear: &Weights, device: &B::Device) -> Result<Self> {
        let net = AlexNetFeatures::load(alexnet, device)?;
        alexnet.check_all_used()?;
        let linear_layers = CHANNELS
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let w = linear.pp(format!("lin{i}")).pp("model").pp(1);
                Ok(Param::from_tensor(w.tensor("weight", [1, c, 1, 1], device)?))
            })
            .collect::<Result<_>>()?;
        linear.check_all_used()?;
        let channel = |v: [f32; 3]| Tensor::<B, 1>::from_floats(v, device).reshape([1, 3, 1, 1]);
        Ok(Self {
            net,
            linear: linear_layers,
            shift: channel(SHIFT),
            scale: channel(SCALE),
        })
    }

    /// The distance of each pair: `[batch, 3, h, w]` twice, in [−1, 1], h, w ≥ 31 → `[batch]`
    /// (upstream's `LPIPS()(x, y)` of a batch is the mean of these).
    pub fn forward(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        let batch = x.dims()[0];
        Ok(self.layers(x, y)?.sum_dim(1).reshape([batch]))
    }

    /// Upstream's loss value: the mean of [`Self::forward`] over the batch, `[1]`.
    pub fn loss(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        Ok(self.forward(x, y)?.mean())
    }

    /// The five levels' terms of each pair, `[batch, 5]` (their row sums are [`Self::forward`]).
    pub fn layers(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        check_pair("lpips", &x, &y, (MIN_SIDE, MIN_SIDE))?;
        let batch = x.dims()[0];
        // One pass of AlexNet over both batches.
        let both = (Tensor::cat(vec![x, y], 0) - self.shift.clone()) / self.scale.clone();
        let features = self.net.forward(both)?;
        let terms = features
            .into_iter()
            .zip(&self.linear)
            .map(|(f, w)| {
                let f = normalize(f);
                let (fx, fy) = (f.clone().narrow(0, 0, batch), f.narrow(0, batch, batch));
                let weighted = ((fx - fy).powi_scalar(2) * w.val()).sum_dim(1);
                let [_, _, h, w] = weighted.dims();
                weighted.reshape([batch, h * w]).mean_dim(1)
            })
            .collect();
        Ok(Tensor::cat(terms, 1))
    }
}

/// `x / (‖x‖₂ over channels + 1e-10)` per pixel (upstream's `normalize_activation`).
fn normalize<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(NORM_EPS);
    x / norm
}
