//! Images in and out of tensors, as upstream converts them.

use std::path::Path;

use burn::prelude::*;
use image::RgbImage;

use crate::error::{Error, Result};

/// Upstream's `tensor2im`: `v ← (v + 1)/2`, clamp to [0, 1], ×255, cast to u8 by truncation.
/// images: `[batch, 3, h, w]` in nominal [−1, 1] → one RGB image per sample.
pub fn tensor_to_images<B: Backend>(images: Tensor<B, 4>) -> Result<Vec<RgbImage>> {
    let [batch, channels, h, w] = images.dims();
    if channels != 3 {
        return Err(Error::InvalidImageTensor(format!(
            "expected 3 channels, got {channels}"
        )));
    }
    let bytes: Vec<u8> = images
        .add_scalar(1.0)
        .div_scalar(2.0)
        .clamp(0.0, 1.0)
        .mul_scalar(255.0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| Error::InvalidImageTensor(format!("{e:?}")))?
        .into_iter()
        .map(|v| v as u8) // truncation, as `.astype('uint8')`
        .collect();
    let plane = h * w;
    Ok((0..batch)
        .map(|b| {
            let sample = &bytes[b * 3 * plane..(b + 1) * 3 * plane];
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                image::Rgb([sample[i], sample[plane + i], sample[2 * plane + i]])
            })
        })
        .collect())
}

/// Writes an image; the format follows the extension (PNG or JPEG).
pub fn save_image(image: &RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    image.save(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}
