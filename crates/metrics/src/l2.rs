//! The L2 metric of upstream's `calc_losses_on_images.py`: `torch.nn.MSELoss()` (mean reduction)
//! on one image pair at a time.

use burn::prelude::*;

use crate::{check_pair, per_sample_mean, Result};

/// Mean squared error of each pair, over all channels and pixels: `[batch, 3, h, w]` twice →
/// `[batch]`. On images normalised to [−1, 1] this is upstream's `l2` score; the mean over the
/// batch is `MSELoss` of the whole batch.
pub fn l2<B: Backend>(x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
    check_pair("l2", &x, &y, (1, 1))?;
    Ok(per_sample_mean((x - y).powi_scalar(2)))
}
