//! HyperStyle's evaluation metrics on Burn, computed as the original implementation's scripts
//! and loss modules compute them (`scripts/calc_losses_on_images.py`, `criteria/`):
//!
//! * [`l2()`]: mean squared error (`torch.nn.MSELoss`).
//! * [`MsSsim`]: multi-scale SSIM with the original's Gaussian window, five scales, valid
//!   convolutions and value-range guess.
//! * [`Lpips`]: LPIPS v0.1 on AlexNet features ([`AlexNetFeatures`]) with the learned linear
//!   layers.
//! * [`IdSimilarity`]: the cosine similarity of ArcFace IR-SE-50 embeddings ([`ArcFace`]) of the
//!   face region, as HyperStyle's identity loss measures it.
//! * [`MocoSimilarity`]: the cosine similarity of MoCo v2 ResNet-50 features
//!   ([`MocoFeatures`]), HyperStyle's similarity loss for domains other than faces.
//!
//! Every metric takes images as upstream's scripts feed them: `[batch, 3, height, width]`
//! normalised to [−1, 1] (`ToTensor` + `Normalize(0.5, 0.5)`), 256×256 for faces, and returns one
//! value per sample (`[batch]`). Each network loads from a
//! [`Weights`](hyperstyle_core::Weights) view with the original file's key names, checks every
//! shape and rejects files with tensors it does not know. Nothing here is tied to a command
//! line: the modules are meant to be reused as training losses too.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use hyperstyle_core::WeightStore;
//! use hyperstyle_metrics::{l2, Lpips, MsSsim};
//! # fn main() -> Result<(), hyperstyle_metrics::Error> {
//! let device = Default::default();
//! let alexnet = WeightStore::open("alexnet.safetensors")?; // torchvision's AlexNet, converted
//! let linear = WeightStore::open("lpips_alex.safetensors")?; // LPIPS v0.1 `alex.pth`, converted
//! let lpips = Lpips::<Flex>::load(&alexnet.root(), &linear.root(), &device)?;
//! let x = burn::tensor::Tensor::<Flex, 4>::zeros([1, 3, 256, 256], &device);
//! let y = x.clone().add_scalar(0.1);
//! let (l2, lpips, ms_ssim) = (l2(x.clone(), y.clone())?, lpips.forward(x.clone(), y.clone())?,
//!     MsSsim::new().forward(x, y)?); // each `[1]`
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod alexnet;
pub mod arcface;
pub mod l2;
pub mod lpips;
pub mod moco;
pub mod ms_ssim;

pub use alexnet::AlexNetFeatures;
pub use arcface::{ArcFace, IdSimilarity};
pub use hyperstyle_core::{Error, Result};
pub use l2::l2;
pub use lpips::Lpips;
pub use moco::{MocoFeatures, MocoSimilarity};
pub use ms_ssim::MsSsim;

use burn::prelude::*;

/// Checks that `x` and `y` are two batches of the same non-empty shape `[batch, 3, h, w]` with
/// `h ≥ min_height`, `w ≥ min_width`.
pub(crate) fn check_pair<B: Backend>(
    what: &str,
    x: &Tensor<B, 4>,
    y: &Tensor<B, 4>,
    (min_height, min_width): (usize, usize),
) -> Result<()> {
    check_images(what, x, (min_height, min_width))?;
    if x.dims() != y.dims() {
        return Err(Error::InvalidInput(format!(
            "{what}: the two batches differ in shape: {:?} and {:?}",
            x.dims(),
            y.dims()
        )));
    }
    Ok(())
}

/// Checks that `x` is a non-empty RGB batch `[batch, 3, h, w]` with `h ≥ min_height`,
/// `w ≥ min_width`.
pub(crate) fn check_images<B: Backend>(
    what: &str,
    x: &Tensor<B, 4>,
    (min_height, min_width): (usize, usize),
) -> Result<()> {
    let [batch, channels, h, w] = x.dims();
    if batch == 0 || channels != 3 || h < min_height.max(1) || w < min_width.max(1) {
        return Err(Error::InvalidInput(format!(
            "{what}: expected RGB images [batch ≥ 1, 3, height ≥ {min_height}, width ≥ {min_width}], got {:?}",
            x.dims()
        )));
    }
    Ok(())
}

/// Mean of each sample: `[batch, c, h, w]` → `[batch]`.
///
/// Summed axis by axis (rows, then planes, then channels) rather than in one long float32
/// accumulation: burn-flex sums a flat axis sequentially, which on a 256×256 RGB image drifts
/// by ~3e-6 relative, while torch's pairwise summation stays at the float32 noise floor.
pub(crate) fn per_sample_mean<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 1> {
    let [batch, c, h, w] = x.dims();
    let n = (c * h * w) as f64;
    x.sum_dim(3).sum_dim(2).sum_dim(1).reshape([batch]).div_scalar(n)
}
