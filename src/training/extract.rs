//! Pre-extraction of the W inversions HyperStyle's pre-extracted training data holds (see
//! [`crate::training::data::LatentsImagesDataset`] and `examples/extract_inversions.rs`).

use burn::prelude::*;
use image::RgbImage;

use crate::image_ops::crop_rows;
use crate::io::{images_to_tensor, tensor_to_images};
use crate::training::data::inversion_name;
use crate::{Domain, HyperStyle, Result};

/// The W inversion of one training image, as the pre-extracted dataset stores it.
#[derive(Debug, Clone)]
pub struct ExtractedInversion {
    /// Its file name and latent key, `{index+1:05d}.png`.
    pub name: String,
    /// The inversion image, 8-bit (upstream's `tensor2im`), at the network's input size.
    pub image: RgbImage,
    /// Its W+ code `[n_styles, 512]`, row-major.
    pub latent: Vec<f32>,
}

/// A batch of W inversions, with the tensors they were made from.
#[derive(Debug, Clone)]
pub struct ExtractedBatch<B: Backend> {
    /// The inversions, in input order.
    pub inversions: Vec<ExtractedInversion>,
    /// The W+ codes `[batch, n_styles, 512]`: `WEncoder(x) + latent_avg`.
    pub codes: Tensor<B, 3>,
    /// The images before quantisation `[batch, 3, h, w]` in [−1, 1]: the unmodified generator's
    /// output pooled to 256×256 as upstream's `face_pool` (cars: rows 32..224, 192×256).
    pub pooled: Tensor<B, 4>,
}

/// Upstream's initial inversion (`HyperStyle.__get_w_inversion` with `resize=True`) of
/// `images`, the training images `first_index`, `first_index + 1`, … of a sorted target folder:
/// each resized to the network's input size (Pillow bilinear) and normalised, encoded, and
/// rendered by the generator without offsets.
pub fn extract_inversions<B: Backend>(
    model: &HyperStyle<B>,
    images: &[RgbImage],
    first_index: usize,
    device: &B::Device,
) -> Result<ExtractedBatch<B>> {
    let size = model.input_size();
    let (codes, pooled) = model.w_inversion(images_to_tensor::<B>(images, size, device))?;
    let pooled = match model.config().domain {
        // Rows 64..448 of the 512×512 car images, pooled: 32..224 of 256.
        Domain::Cars => crop_rows(pooled, 32, 224),
        Domain::Faces | Domain::Wild => pooled,
    };
    let pictures = tensor_to_images(pooled.clone())?;
    let [_, n_styles, dim] = codes.dims();
    let values = crate::core::weights::tensor_values(codes.clone())?;
    let per_image = n_styles * dim;
    let inversions = pictures
        .into_iter()
        .enumerate()
        .map(|(b, image)| ExtractedInversion {
            name: inversion_name(first_index + b),
            image,
            latent: values[b * per_image..(b + 1) * per_image].to_vec(),
        })
        .collect();
    Ok(ExtractedBatch {
        inversions,
        codes,
        pooled,
    })
}
