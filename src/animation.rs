//! Animations between inversions, as upstream's animation notebook makes them: the W+ codes and
//! the weight offsets of two inversions are interpolated linearly, `v = (1 − α)·a + α·b`, and
//! every in-between is rendered with the stored noise. The first and last frames are the two
//! inversions themselves.
//!
//! ```no_run
//! use hyperstyle::animation::Keyframe;
//! use hyperstyle::editing::Editor;
//! # fn main() -> hyperstyle::Result<()> {
//! # let device = Default::default();
//! # let model = hyperstyle::demo::Demo::load("ffhq256")?.hyperstyle::<burn::backend::Flex>(&device)?;
//! # let photos = vec![];
//! let inversion = model.invert_images(&photos, 3)?; // two photos
//! let keys = [Keyframe::from_inversion(&inversion, 0)?, Keyframe::from_inversion(&inversion, 1)?];
//! let editor = Editor::for_model(&model);
//! let mut frames = Vec::new();
//! for frame in Keyframe::sequence(&keys, 24)? {
//!     frames.extend(hyperstyle::io::tensor_to_images(editor.render(frame.latents, Some(&frame.offsets))?)?);
//! }
//! hyperstyle::io::save_gif(&frames, 12.0, "morph.gif")?;
//! # Ok(()) }
//! ```

use burn::prelude::*;
use hyperstyle_stylegan2::WeightOffsets;

use crate::error::{invalid_input, Result};
use crate::pipeline::{one_sample, Inversion};

/// One image's inversion as an animation key: W+ codes `[1, n_styles, 512]` and its offsets
/// (every entry batch 1, or `None`).
#[derive(Debug, Clone)]
pub struct Keyframe<B: Backend> {
    /// W+ codes `[1, n_styles, 512]`.
    pub latents: Tensor<B, 3>,
    /// The image's accumulated weight offsets.
    pub offsets: WeightOffsets<B>,
}

impl<B: Backend> Keyframe<B> {
    /// Sample `sample` of an inversion.
    pub fn from_inversion(inversion: &Inversion<B>, sample: usize) -> Result<Self> {
        let (latents, offsets) = one_sample(&inversion.latents, &inversion.offsets, sample)?;
        Ok(Self { latents, offsets })
    }

    /// `(1 − α)·self + α·other`, for the codes and every layer's offset. Both must come from the
    /// same model (same shapes, offsets on the same layers).
    pub fn lerp(&self, other: &Self, alpha: f32) -> Result<Self> {
        if self.latents.dims() != other.latents.dims() || self.offsets.len() != other.offsets.len() {
            return Err(invalid_input(format!(
                "keyframes of different models: latents {:?} vs {:?}, {} vs {} layers",
                self.latents.dims(),
                other.latents.dims(),
                self.offsets.len(),
                other.offsets.len()
            )));
        }
        let offsets = self
            .offsets
            .iter()
            .zip(other.offsets.iter())
            .enumerate()
            .map(|(j, pair)| match pair {
                (Some(a), Some(b)) if a.dims() == b.dims() => Ok(Some(mix(a, b, alpha))),
                (None, None) => Ok(None),
                _ => Err(invalid_input(format!("keyframes disagree on the offset of layer {j}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            latents: mix(&self.latents, &other.latents, alpha),
            offsets: WeightOffsets::new(offsets),
        })
    }

    /// Every frame of an animation through `keyframes` in order, `steps` frames from each key to
    /// the next (the last key closing the sequence): `steps·(n − 1) + 1` frames, the first and
    /// last of them the first and last keys exactly.
    pub fn sequence(keyframes: &[Self], steps: usize) -> Result<Vec<Self>> {
        if keyframes.len() < 2 || steps == 0 {
            return Err(invalid_input(
                "an animation needs at least two keyframes and one step between them",
            ));
        }
        let mut frames = Vec::with_capacity(steps * (keyframes.len() - 1) + 1);
        for pair in keyframes.windows(2) {
            for s in 0..steps {
                frames.push(if s == 0 {
                    pair[0].clone()
                } else {
                    pair[0].lerp(&pair[1], s as f32 / steps as f32)?
                });
            }
        }
        frames.push(keyframes[keyframes.len() - 1].clone());
        Ok(frames)
    }
}

/// `(1 − α)·a + α·b`.
fn mix<B: Backend, const D: usize>(a: &Tensor<B, D>, b: &Tensor<B, D>, alpha: f32) -> Tensor<B, D> {
    a.clone().mul_scalar(1.0 - alpha) + b.clone().mul_scalar(alpha)
}
