//! StyleCLIP global directions: edits by text ("a face with a beard") in StyleSpace.
//!
//! As the original implementation computes them:
//! 1. each prompt (target and neutral) is written into every prompt template (`{}` replaced),
//!    encoded by CLIP's text tower, each feature normalised, the features averaged and the average
//!    normalised; the text direction `Δi` is the normalised difference target − neutral;
//! 2. the channel relevances `R` (`fs3`, one 512-vector per StyleSpace channel) give
//!    `r = R·Δi`; channels with `|r| < β` are dropped, and the rest is divided by the largest
//!    `|r|` (over every row of `R`);
//! 3. the channels belong, in order, to the first [`EDITED_LAYERS`] modulated layers that are not
//!    ToRGB layers; each is scaled by that channel's standard deviation over StyleSpace
//!    (`S_mean_std`), every other layer (ToRGB and later ones) gets 0;
//! 4. the edit is `s + α·direction` on every layer's style ([`Generator::styles`]), rendered with
//!    [`Generator::synthesis_from_styles`] and the inversion's weight offsets.
//!
//! [`Generator::styles`]: hyperstyle_stylegan2::Generator::styles
//! [`Generator::synthesis_from_styles`]: hyperstyle_stylegan2::Generator::synthesis_from_styles

use burn::prelude::*;
use hyperstyle_clip::{TextTransformer, Tokenizer, CONTEXT_LENGTH};
use hyperstyle_stylegan2::LayerSpec;

use crate::error::{invalid_input, Result};

/// How many non-ToRGB layers carry channels of the relevance matrix: the original keeps the
/// first 11 (at 1024: the 512-channel layers up to 64² and the first 256-channel one, 5376
/// channels).
pub const EDITED_LAYERS: usize = 11;

/// How many StyleSpace channels the relevance matrix covers for a generator with `layers`: the
/// input channels of its first [`EDITED_LAYERS`] non-ToRGB layers (5376 at 1024).
pub fn edited_channels(layers: &[LayerSpec]) -> usize {
    layers
        .iter()
        .filter(|l| !l.is_to_rgb())
        .take(EDITED_LAYERS)
        .map(|l| l.in_channels)
        .sum()
}

/// The channel relevances and StyleSpace statistics of a generator, ready to turn text into
/// StyleSpace directions.
#[derive(Debug, Clone)]
pub struct GlobalDirections<B: Backend> {
    /// `[rows ≥ channels, 512]`: `fs3` (the original's `delta_i_c`).
    relevance: Tensor<B, 2>,
    /// Per modulated layer, `[in_channels]`: the standard deviation of each style channel.
    s_std: Vec<Tensor<B, 1>>,
    /// Per modulated layer: whether (and where in `relevance`) its channels are edited.
    spans: Vec<Option<(usize, usize)>>,
}

impl<B: Backend> GlobalDirections<B> {
    /// From the relevance matrix `[rows, 512]` and one standard-deviation vector per modulated
    /// layer of `layers` (the generator's layer table, ToRGB layers included). `relevance` needs
    /// at least as many rows as the edited layers have channels; further rows are kept (they
    /// take part in the normalisation, as in the original).
    pub fn new(relevance: Tensor<B, 2>, s_std: Vec<Tensor<B, 1>>, layers: &[LayerSpec]) -> Result<Self> {
        if s_std.len() != layers.len() {
            return Err(invalid_input(format!(
                "one standard-deviation vector per modulated layer: {} layers, {} vectors",
                layers.len(),
                s_std.len()
            )));
        }
        for (j, (std, layer)) in s_std.iter().zip(layers).enumerate() {
            if std.dims() != [layer.in_channels] {
                return Err(invalid_input(format!(
                    "layer {j}'s standard deviations must be [{}], got {:?}",
                    layer.in_channels,
                    std.dims()
                )));
            }
        }
        let mut spans = Vec::with_capacity(layers.len());
        let (mut start, mut edited) = (0, 0);
        for layer in layers {
            if !layer.is_to_rgb() && edited < EDITED_LAYERS {
                spans.push(Some((start, start + layer.in_channels)));
                start += layer.in_channels;
                edited += 1;
            } else {
                spans.push(None);
            }
        }
        let [rows, _] = relevance.dims();
        if rows < start {
            return Err(invalid_input(format!(
                "the relevance matrix has {rows} rows; the edited layers have {start} channels"
            )));
        }
        Ok(Self {
            relevance,
            s_std,
            spans,
        })
    }

    /// The text direction `Δi` (`[embed_dim]`, unit length) from `neutral` to `target`: each
    /// prompt averaged over `templates` (`{}` stands for the prompt) in CLIP's normalised feature
    /// space.
    pub fn text_direction(
        text: &TextTransformer<B>,
        tokenizer: &Tokenizer,
        templates: &[String],
        neutral: &str,
        target: &str,
    ) -> Result<Tensor<B, 1>> {
        if templates.is_empty() {
            return Err(invalid_input("no prompt templates"));
        }
        let feature = |prompt: &str| -> Result<Tensor<B, 1>> {
            let prompts: Vec<String> = templates.iter().map(|t| t.replace("{}", prompt)).collect();
            let tokens = tokenizer.tokenize(&prompts, CONTEXT_LENGTH, false)?;
            let features = text.encode(&tokens)?;
            let features = features.clone() / l2_norm_rows(features);
            let mean = features.mean_dim(0).squeeze_dim::<1>(0);
            Ok(mean.clone() / mean.powi_scalar(2).sum().sqrt())
        };
        let delta = feature(target)? - feature(neutral)?;
        Ok(delta.clone() / delta.powi_scalar(2).sum().sqrt())
    }

    /// The StyleSpace direction of text direction `delta_i` at threshold `beta`: per modulated
    /// layer `[in_channels]` (zeros where the layer is not edited).
    pub fn style_direction(&self, delta_i: Tensor<B, 1>, beta: f32) -> Result<Vec<Tensor<B, 1>>> {
        let [rows, dim] = self.relevance.dims();
        if delta_i.dims() != [dim] {
            return Err(invalid_input(format!(
                "a text direction for this relevance matrix must be [{dim}], got {:?}",
                delta_i.dims()
            )));
        }
        let r = self.relevance.clone().matmul(delta_i.reshape([dim, 1])).reshape([rows]);
        let kept = r.clone().abs().greater_equal_elem(beta);
        let r = r.clone().mask_fill(kept.bool_not(), 0.0);
        let max: f32 = r.clone().abs().max().into_scalar().elem();
        let r = if max > 0.0 { r.div_scalar(max) } else { r };
        Ok(self
            .spans
            .iter()
            .zip(&self.s_std)
            .map(|(span, std)| match span {
                Some((a, b)) => r.clone().slice(*a..*b) * std.clone(),
                None => std.zeros_like(),
            })
            .collect())
    }
}

/// Every layer's style moved by `alpha` along `direction`: `s + α·d` (styles `[batch, in]`,
/// directions `[in]`, one per modulated layer).
pub fn apply<B: Backend>(styles: &[Tensor<B, 2>], direction: &[Tensor<B, 1>], alpha: f32) -> Result<Vec<Tensor<B, 2>>> {
    if styles.len() != direction.len() {
        return Err(invalid_input(format!(
            "{} styles but {} direction vectors",
            styles.len(),
            direction.len()
        )));
    }
    styles
        .iter()
        .zip(direction)
        .map(|(s, d)| {
            let [_, c] = s.dims();
            if d.dims() != [c] {
                return Err(invalid_input(format!(
                    "a direction of {:?} for a style of {c} channels",
                    d.dims()
                )));
            }
            Ok(s.clone() + d.clone().mul_scalar(alpha).reshape([1, c]))
        })
        .collect()
}

/// `[rows, 1]`: each row's Euclidean length.
fn l2_norm_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    x.powi_scalar(2).sum_dim(1).sqrt()
}
