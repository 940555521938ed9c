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
//!
//! The data files are the original's: the relevance matrix `fs3.npy`, read as it is
//! ([`read_relevance`]); the StyleSpace statistics `S_mean_std` (a pickle) and OpenAI's CLIP model
//! (`ViT-B-32.pt`), both converted to safetensors by `weights-convert` ([`read_channel_std`],
//! [`load_clip_text`]); the prompt templates are bundled ([`PROMPT_TEMPLATES`]).
//!
//! ```no_run
//! use hyperstyle::styleclip::{self, GlobalDirections};
//! # fn main() -> hyperstyle::Result<()> {
//! # let device = Default::default();
//! # let generator: hyperstyle::stylegan2::Generator<burn::backend::Flex> = unimplemented!();
//! # let latents: burn::tensor::Tensor<burn::backend::Flex, 3> = unimplemented!();
//! let layers = generator.config().layers();
//! let text = styleclip::load_clip_text("clip_vit_b32.safetensors", &device)?;
//! let directions = GlobalDirections::from_files("fs3.npy", "S_mean_std.safetensors", &layers, &device)?;
//! let tokenizer = hyperstyle::clip::Tokenizer::bundled()?;
//! let templates = styleclip::bundled_templates();
//! let delta_i = GlobalDirections::text_direction(&text, &tokenizer, &templates, "a face", "a face with a beard")?;
//! let direction = directions.style_direction(delta_i, 0.13)?;
//! let styles = generator.styles(latents)?;
//! let edited = styleclip::apply_alphas(&styles, &direction, &styleclip::linspace(-5.0, 5.0, 11))?;
//! # Ok(()) }
//! ```
//!
//! [`Generator::styles`]: hyperstyle_stylegan2::Generator::styles
//! [`Generator::synthesis_from_styles`]: hyperstyle_stylegan2::Generator::synthesis_from_styles

use std::path::Path;

use burn::prelude::*;
use hyperstyle_clip::{TextTransformer, Tokenizer, CONTEXT_LENGTH};
use hyperstyle_core::checkpoint::KIND;
use hyperstyle_core::WeightStore;
use hyperstyle_stylegan2::LayerSpec;

use crate::error::{invalid_file, invalid_input, Result};

/// The original's prompt templates (`editing/styleclip/global_directions/templates.txt`: CLIP's
/// 79 ImageNet prompt templates, `{}` standing for the prompt), one per line.
pub const PROMPT_TEMPLATES: &str = include_str!("../tests/fixtures/styleclip_templates.txt");

/// The `kind` metadata of StyleSpace statistics converted by `weights-convert` (`S_mean_std`);
/// `styleclip_stats` is accepted as well.
pub const STATS_KIND: &str = "styleclip-stats";
/// The `kind` metadata of a CLIP model converted by `weights-convert` (`ViT-B-32.pt`).
pub const CLIP_KIND: &str = "clip";

/// The bundled prompt templates ([`PROMPT_TEMPLATES`]).
pub fn bundled_templates() -> Vec<String> {
    parse_templates(PROMPT_TEMPLATES)
}

/// Prompt templates from a text file, one per line, as the original reads them (its
/// `readlines()` keeps each line's newline, which CLIP's text cleaning removes again).
pub fn read_templates(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| hyperstyle_core::Error::io(path, e))?;
    let templates = parse_templates(&text);
    if templates.is_empty() {
        return Err(invalid_file(path, "holds no prompt templates (one per line expected)"));
    }
    Ok(templates)
}

fn parse_templates(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// NumPy's `linspace(min, max, n)` (computed in f64, as NumPy does, then rounded to f32): the
/// original's grids of α (−5..5, 11 values) and β (0.11..0.16, 5 values). `n = 1` gives `[min]`.
pub fn linspace(min: f64, max: f64, n: usize) -> Vec<f32> {
    match n {
        0 => Vec::new(),
        1 => vec![min as f32],
        _ => {
            let step = (max - min) / (n - 1) as f64;
            (0..n)
                .map(|i| {
                    let value = if i == n - 1 { max } else { min + i as f64 * step };
                    value as f32
                })
                .collect()
        }
    }
}

/// Checks a converted file's `kind` metadata: files without one are accepted (their contents are
/// checked when read), any other kind is an error naming the file.
fn expect_kind(store: &WeightStore, expected: &str, what: &str) -> Result<()> {
    let normalise = |s: &str| s.replace('-', "_");
    match store.metadata().get(KIND) {
        Some(kind) if normalise(kind) != normalise(expected) => Err(invalid_file(
            store.path(),
            format!("is a converted `{kind}` file, expected {what} (kind `{expected}`)"),
        )),
        _ => Ok(()),
    }
}

/// CLIP's text tower from a CLIP model converted to safetensors (OpenAI's state-dict keys, at the
/// top level or under `state_dict/`; `visual.*` is ignored), in float32 whatever the file's
/// precision.
pub fn load_clip_text<B: Backend>(path: impl AsRef<Path>, device: &B::Device) -> Result<TextTransformer<B>> {
    let store = WeightStore::open(path.as_ref())?;
    expect_kind(&store, CLIP_KIND, "a CLIP model")?;
    let prefix = store
        .find_prefix(&["", "state_dict/"], "token_embedding.weight")
        .ok_or_else(|| invalid_file(store.path(), "holds no CLIP text tower (no `token_embedding.weight`)"))?;
    Ok(TextTransformer::load_detected(&store.scope(prefix), device)?)
}

/// The relevance matrix `fs3.npy` (`[rows, embed_dim]`, float32 or float64; the original's
/// `delta_i_c`).
pub fn read_relevance<B: Backend>(path: impl AsRef<Path>, device: &B::Device) -> Result<Tensor<B, 2>> {
    let path = path.as_ref();
    let (shape, values) = crate::npy::read_f32(path)?;
    let [rows, dim] = shape[..] else {
        return Err(invalid_file(
            path,
            format!("a relevance matrix must be [channels, embed_dim], got {shape:?}"),
        ));
    };
    if rows == 0 || dim == 0 {
        return Err(invalid_file(path, format!("an empty relevance matrix {shape:?}")));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(invalid_file(path, format!("value {i} is not finite ({})", values[i])));
    }
    Ok(Tensor::from_data(TensorData::new(values, [rows, dim]), device))
}

/// The per-channel standard deviations of every modulated layer of `layers` (the generator's
/// layer table) from converted StyleSpace statistics: `s_std.{i}` for layer `i` (0-based, ToRGB
/// layers included), `[in_channels]` (a shape such as `[1, in_channels]` is accepted). One entry
/// per layer is required: statistics of another generator are an error.
pub fn read_channel_std<B: Backend>(
    path: impl AsRef<Path>,
    layers: &[LayerSpec],
    device: &B::Device,
) -> Result<Vec<Tensor<B, 1>>> {
    let store = WeightStore::open(path.as_ref())?;
    expect_kind(&store, STATS_KIND, "StyleSpace statistics (`S_mean_std`)")?;
    let n = store.keys().iter().filter(|k| k.starts_with("s_std.")).count();
    if n != layers.len() {
        return Err(invalid_file(
            store.path(),
            format!(
                "holds standard deviations of {n} StyleSpace layers (`s_std.*`); the generator has {} modulated layers",
                layers.len()
            ),
        ));
    }
    layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let key = format!("s_std.{i}");
            let shape = store
                .shape(&key)
                .ok_or_else(|| invalid_file(store.path(), format!("has no `{key}`")))?;
            let channels = layer.in_channels;
            if shape.iter().product::<usize>() != channels || !shape.iter().all(|&d| d == 1 || d == channels) {
                return Err(invalid_file(
                    store.path(),
                    format!("`{key}` has shape {shape:?}; layer {i} of the generator has {channels} channels"),
                ));
            }
            let values = store.values(&key, &shape)?;
            Ok(Tensor::from_data(TensorData::new(values, [channels]), device))
        })
        .collect()
}

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

    /// [`GlobalDirections::new`] from the original's files: the relevance matrix `fs3.npy`
    /// ([`read_relevance`]) and converted StyleSpace statistics ([`read_channel_std`]). A
    /// matrix with fewer rows than the edited layers' channels is an error naming `fs3`.
    pub fn from_files(
        fs3: impl AsRef<Path>,
        s_mean_std: impl AsRef<Path>,
        layers: &[LayerSpec],
        device: &B::Device,
    ) -> Result<Self> {
        let fs3 = fs3.as_ref();
        let relevance = read_relevance(fs3, device)?;
        let [rows, _] = relevance.dims();
        let channels = edited_channels(layers);
        if rows < channels {
            return Err(invalid_file(
                fs3,
                format!(
                    "has {rows} rows; this generator's first {EDITED_LAYERS} non-ToRGB layers have {channels} \
                     channels (the relevance matrix belongs to another generator)"
                ),
            ));
        }
        Self::new(relevance, read_channel_std(s_mean_std, layers, device)?, layers)
    }

    /// Size of the text directions this relevance matrix takes (CLIP's `embed_dim`, 512 for
    /// ViT-B/32).
    pub fn embed_dim(&self) -> usize {
        self.relevance.dims()[1]
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

/// One sample's styles (`[1, in]` per layer) moved by each of `alphas` along `direction`: per
/// layer `[alphas.len(), in]`, row `k` being `s + alphas[k]·d` (the original's batch of edits).
pub fn apply_alphas<B: Backend>(
    styles: &[Tensor<B, 2>],
    direction: &[Tensor<B, 1>],
    alphas: &[f32],
) -> Result<Vec<Tensor<B, 2>>> {
    if alphas.is_empty() {
        return Err(invalid_input("no edit strengths (alphas)"));
    }
    if let Some(s) = styles.iter().find(|s| s.dims()[0] != 1) {
        return Err(invalid_input(format!(
            "the styles of one sample are [1, channels], got {:?}",
            s.dims()
        )));
    }
    let per_alpha = alphas
        .iter()
        .map(|&alpha| apply(styles, direction, alpha))
        .collect::<Result<Vec<_>>>()?;
    Ok((0..styles.len())
        .map(|j| Tensor::cat(per_alpha.iter().map(|s| s[j].clone()).collect(), 0))
        .collect())
}

/// How many style channels `direction` moves (its non-zero entries).
pub fn moved_channels<B: Backend>(direction: &[Tensor<B, 1>]) -> usize {
    direction
        .iter()
        .map(|d| {
            d.clone()
                .abs()
                .greater_elem(0.0)
                .int()
                .sum()
                .into_scalar()
                .elem::<i64>() as usize
        })
        .sum()
}

/// `[rows, 1]`: each row's Euclidean length.
fn l2_norm_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    x.powi_scalar(2).sum_dim(1).sqrt()
}
