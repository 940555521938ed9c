//! The rosinality StyleGAN2 generator with HyperStyle's per-layer weight offsets
//! (docs/ARCHITECTURE.md §3).

use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;

use hyperstyle_core::weights::{tensor_values, NamedTensor};
use hyperstyle_core::{Error, Kind, Result, WeightStore, Weights};

use crate::config::{GeneratorConfig, LayerKind};
use crate::mapping::MappingNetwork;
use crate::modulated_conv::{ConvStrategy, Style};
use crate::noise::Noise;
use crate::offsets::WeightOffsets;
use crate::styled_conv::{StyledConv, ToRgb};

/// Key prefixes under which converted checkpoints keep a generator, tried in this order by
/// [`Generator::from_file`]: a HyperStyle / pSp checkpoint's decoder, a rosinality file's
/// `g_ema`, then the same without the converter's nesting, then bare keys.
pub const GENERATOR_PREFIXES: [&str; 4] = ["state_dict/decoder.", "g_ema/", "decoder.", ""];

/// StyleGAN2 generator: mapping network + synthesis network.
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    mapping: MappingNetwork<B>,
    /// `input.input`: the learned 4×4 constant `[1, c4, 4, 4]`.
    constant: Param<Tensor<B, 4>>,
    conv1: StyledConv<B>,
    to_rgb1: ToRgb<B>,
    convs: Vec<StyledConv<B>>,
    to_rgbs: Vec<ToRgb<B>>,
    /// `noises.noise_i`: the stored noise images `[1, 1, R_i, R_i]`.
    noises: Vec<Param<Tensor<B, 4>>>,
    #[module(skip)]
    config: GeneratorConfig,
    #[module(skip)]
    conv_strategy: ConvStrategy,
}

/// Options of [`Generator::generate`], rosinality's `Generator.forward` arguments.
#[derive(Debug, Clone)]
pub struct GenerateOptions<B: Backend> {
    /// The styles are already w (skip the mapping network).
    pub input_is_latent: bool,
    /// Truncation ψ and the latent to truncate towards (`w ← t + ψ·(w − t)`), applied when ψ < 1.
    pub truncation: Option<(f32, Tensor<B, 2>)>,
    /// With two styles: number of leading W+ rows taken from the first one.
    pub inject_index: Option<usize>,
    /// Noise source.
    pub noise: Noise<B>,
}

impl<B: Backend> Default for GenerateOptions<B> {
    fn default() -> Self {
        Self {
            input_is_latent: false,
            truncation: None,
            inject_index: None,
            noise: Noise::Stored,
        }
    }
}

impl<B: Backend> Generator<B> {
    /// Builds the generator from `weights` (keys relative to the view: `style.1.weight`,
    /// `conv1.conv.weight`, …). Every shape is checked, missing keys and keys the generator does
    /// not have are errors.
    pub fn load(weights: &Weights, config: &GeneratorConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let dim = config.style_dim;
        let c4 = config.channels(4);
        let layers = config.layers();
        let styled = |i: usize| StyledConv::load(&weights.pp(layers[i].module_key()), &layers[i], config, device);
        let rgb = |i: usize| ToRgb::load(&weights.pp(layers[i].module_key()), &layers[i], config, device);
        let mut convs = Vec::new();
        let mut to_rgbs = Vec::new();
        for (i, layer) in layers.iter().enumerate().skip(2) {
            match layer.kind {
                LayerKind::ToRgb => to_rgbs.push(rgb(i)?),
                LayerKind::Conv | LayerKind::ConvUp => convs.push(styled(i)?),
            }
        }
        let noise_weights = weights.pp("noises");
        let noises = (0..config.num_noise())
            .map(|i| {
                let r = config.noise_size(i);
                noise_weights
                    .tensor(&format!("noise_{i}"), [1, 1, r, r], device)
                    .map(Param::from_tensor)
            })
            .collect::<Result<_>>()?;
        let generator = Self {
            mapping: MappingNetwork::load(weights, dim, config.n_mlp, config.lr_mlp, device)?,
            constant: Param::from_tensor(weights.pp("input").tensor("input", [1, c4, 4, 4], device)?),
            conv1: styled(0)?,
            to_rgb1: rgb(1)?,
            convs,
            to_rgbs,
            noises,
            config: config.clone(),
            conv_strategy: ConvStrategy::default(),
        };
        weights.check_all_used()?;
        Ok(generator)
    }

    /// Loads a generator from a safetensors file (a converted rosinality, HyperStyle or ReStyle
    /// checkpoint, or bare generator keys), finding it under the first of [`GENERATOR_PREFIXES`]
    /// that holds `conv1.conv.weight`.
    pub fn from_file(path: impl AsRef<Path>, config: &GeneratorConfig, device: &B::Device) -> Result<Self> {
        let store = WeightStore::open_checkpoint(path, &[Kind::Stylegan2, Kind::Hyperstyle, Kind::Restyle])?;
        let prefix = store
            .find_prefix(&GENERATOR_PREFIXES, "conv1.conv.weight")
            .ok_or_else(|| Error::MissingKey {
                key: "conv1.conv.weight (under any generator prefix)".into(),
            })?;
        Self::load(&store.scope(prefix), config, device)
    }

    /// The generator as a rosinality checkpoint stores it (keys relative to `g_ema/`: `style.*`,
    /// `input.input`, `conv1.*`, `convs.*`, `to_rgbs.*`, `noises.*`), with one sample's weight
    /// offsets (every entry batch 1, or `None`) folded into the modulated weights as `W·(1 + Δ)`:
    /// a standalone generator that renders that sample's latents like this one with its offsets.
    /// Loading the tensors back ([`Generator::load`]) reproduces every value up to one float32
    /// rounding.
    pub fn checkpoint_tensors(&self, offsets: Option<&WeightOffsets<B>>) -> Result<Vec<NamedTensor>> {
        let layers = self.config.layers();
        if let Some(offsets) = offsets {
            if offsets.len() != layers.len() {
                return Err(Error::InvalidInput(format!(
                    "expected {} weight offsets (one per layer), got {}",
                    layers.len(),
                    offsets.len()
                )));
            }
        }
        let offset = |j: usize| offsets.and_then(|o| o[j].clone());
        let mut out = Vec::new();
        self.mapping.checkpoint_tensors(&mut out)?;
        out.push((
            "input.input".into(),
            self.constant.dims().to_vec(),
            tensor_values(self.constant.val())?,
        ));
        let (mut convs, mut to_rgbs) = (self.convs.iter(), self.to_rgbs.iter());
        for layer in &layers {
            let prefix = format!("{}.", layer.module_key());
            match (layer.index, layer.kind) {
                (0, _) => self.conv1.checkpoint_tensors(&prefix, offset(0), &mut out)?,
                (1, _) => self.to_rgb1.checkpoint_tensors(&prefix, offset(1), &mut out)?,
                (j, LayerKind::ToRgb) => {
                    let to_rgb = to_rgbs.next().expect("one ToRGB module per ToRGB layer");
                    to_rgb.checkpoint_tensors(&prefix, offset(j), &mut out)?
                }
                (j, LayerKind::Conv | LayerKind::ConvUp) => {
                    let conv = convs.next().expect("one styled conv per conv layer");
                    conv.checkpoint_tensors(&prefix, offset(j), &mut out)?
                }
            }
        }
        for (i, noise) in self.noises.iter().enumerate() {
            out.push((
                format!("noises.noise_{i}"),
                noise.dims().to_vec(),
                tensor_values(noise.val())?,
            ));
        }
        Ok(out)
    }

    /// How layers whose samples have their own kernels run their convolutions.
    pub fn conv_strategy(&self) -> ConvStrategy {
        self.conv_strategy
    }

    /// Chooses how layers whose samples have their own kernels (weight offsets, batch 1) run
    /// their convolutions. The result is the same up to float rounding; the speed is not.
    pub fn set_conv_strategy(&mut self, strategy: ConvStrategy) {
        self.conv_strategy = strategy;
    }

    /// The configuration.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Mapping network: z `[batch, 512]` → w `[batch, 512]`.
    pub fn mapping(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        self.mapping.forward(z)
    }

    /// Mean of `n` mapped standard-normal z: `[1, 512]` (rosinality `mean_latent`).
    pub fn mean_latent(&self, n: usize, device: &B::Device) -> Tensor<B, 2> {
        let z = Tensor::random([n, self.config.style_dim], Distribution::Normal(0.0, 1.0), device);
        self.mapping(z).mean_dim(0)
    }

    /// One w per sample repeated over all W+ rows: `[batch, 512]` → `[batch, n_latent, 512]`.
    pub fn broadcast_latent(&self, w: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, dim] = w.dims();
        w.reshape([batch, 1, dim]).repeat_dim(1, self.config.n_latent())
    }

    /// rosinality's `Generator.forward`: one style, or two for style mixing, each `[batch, 512]`
    /// (z, or w with `input_is_latent`), with optional truncation; returns the image.
    pub fn generate(
        &self,
        styles: &[Tensor<B, 2>],
        options: &GenerateOptions<B>,
        offsets: Option<&WeightOffsets<B>>,
    ) -> Result<Tensor<B, 4>> {
        if styles.is_empty() || styles.len() > 2 {
            return Err(Error::InvalidInput(format!(
                "expected 1 or 2 styles, got {}",
                styles.len()
            )));
        }
        let ws: Vec<Tensor<B, 2>> = styles
            .iter()
            .map(|s| {
                let w = if options.input_is_latent {
                    s.clone()
                } else {
                    self.mapping(s.clone())
                };
                match &options.truncation {
                    Some((psi, target)) if *psi < 1.0 => target.clone() + (w - target.clone()).mul_scalar(*psi),
                    _ => w,
                }
            })
            .collect();
        let latents = match ws.as_slice() {
            [w] => self.broadcast_latent(w.clone()),
            [w1, w2] => {
                let n = self.config.n_latent();
                let inject = options.inject_index.unwrap_or(n / 2);
                if inject == 0 || inject >= n {
                    return Err(Error::InvalidInput(format!(
                        "inject_index must be in 1..{n}, got {inject}"
                    )));
                }
                let (a, b) = (self.broadcast_latent(w1.clone()), self.broadcast_latent(w2.clone()));
                Tensor::cat(vec![a.narrow(1, 0, inject), b.narrow(1, inject, n - inject)], 1)
            }
            _ => unreachable!("checked above"),
        };
        self.synthesis(latents, &options.noise, offsets)
    }

    /// The synthesis network on W+ codes: latents `[batch, n_latent, 512]` → image
    /// `[batch, 3, size, size]`, raw (nominally in [−1, 1], not clamped).
    pub fn synthesis(
        &self,
        latents: Tensor<B, 3>,
        noise: &Noise<B>,
        offsets: Option<&WeightOffsets<B>>,
    ) -> Result<Tensor<B, 4>> {
        let batch = self.check_latents(&latents)?;
        let rows = self.latent_rows();
        let style = |j: usize| {
            Style::Latent(
                latents
                    .clone()
                    .narrow(1, rows[j], 1)
                    .reshape([batch, self.config.style_dim]),
            )
        };
        self.synthesize(batch, style, noise, offsets)
    }

    /// StyleSpace: the style every modulated layer derives from W+ codes `latents` `[batch,
    /// n_latent, 512]`, in layer-table order (`config().layers()`, ToRGB layers included): layer
    /// `j` gets `[batch, in_channels_j]`. [`Self::synthesis_from_styles`] of these equals
    /// [`Self::synthesis`] of the codes.
    pub fn styles(&self, latents: Tensor<B, 3>) -> Result<Vec<Tensor<B, 2>>> {
        let batch = self.check_latents(&latents)?;
        let dim = self.config.style_dim;
        let row = |i: usize| latents.clone().narrow(1, i, 1).reshape([batch, dim]);
        let rows = self.latent_rows();
        let mut styles = vec![self.conv1.style(row(rows[0])), self.to_rgb1.style(row(rows[1]))];
        for (k, to_rgb) in self.to_rgbs.iter().enumerate() {
            let t = 2 + 3 * k;
            styles.push(self.convs[2 * k].style(row(rows[t])));
            styles.push(self.convs[2 * k + 1].style(row(rows[t + 1])));
            styles.push(to_rgb.style(row(rows[t + 2])));
        }
        Ok(styles)
    }

    /// The synthesis network driven by StyleSpace styles (one per modulated layer, as
    /// [`Self::styles`] returns them, possibly edited) instead of W+ codes.
    pub fn synthesis_from_styles(
        &self,
        styles: &[Tensor<B, 2>],
        noise: &Noise<B>,
        offsets: Option<&WeightOffsets<B>>,
    ) -> Result<Tensor<B, 4>> {
        let n_layers = self.config.num_weight_layers();
        if styles.len() != n_layers {
            return Err(Error::InvalidInput(format!(
                "expected {n_layers} styles (one per modulated layer), got {}",
                styles.len()
            )));
        }
        let batch = styles[0].dims()[0];
        self.synthesize(batch, |j| Style::Modulated(styles[j].clone()), noise, offsets)
    }

    /// The batch size of W+ codes of the right shape.
    fn check_latents(&self, latents: &Tensor<B, 3>) -> Result<usize> {
        let [batch, rows, dim] = latents.dims();
        let config = &self.config;
        if rows != config.n_latent() || dim != config.style_dim {
            return Err(Error::InvalidInput(format!(
                "latents must be [batch, {}, {}], got [{batch}, {rows}, {dim}]",
                config.n_latent(),
                config.style_dim
            )));
        }
        Ok(batch)
    }

    /// The W+ row each modulated layer reads, in layer-table order: conv1 0, to_rgb1 1, then per
    /// resolution the up conv, the conv and the ToRGB read rows `2k + 1`, `2k + 2`, `2k + 3`.
    fn latent_rows(&self) -> Vec<usize> {
        let mut rows = vec![0, 1];
        for k in 0..self.to_rgbs.len() {
            rows.extend([2 * k + 1, 2 * k + 2, 2 * k + 3]);
        }
        rows
    }

    /// The synthesis loop, layer `j` driven by `style(j)`.
    fn synthesize(
        &self,
        batch: usize,
        style: impl Fn(usize) -> Style<B>,
        noise: &Noise<B>,
        offsets: Option<&WeightOffsets<B>>,
    ) -> Result<Tensor<B, 4>> {
        let n_layers = self.config.num_weight_layers();
        if let Some(offsets) = offsets {
            if offsets.len() != n_layers {
                return Err(Error::InvalidInput(format!(
                    "expected {n_layers} weight offsets (one per layer), got {}",
                    offsets.len()
                )));
            }
        }
        let noises = self.noise_images(noise, batch)?;
        let offset = |j: usize| offsets.and_then(|o| o[j].clone());
        let strategy = self.conv_strategy;

        let mut h = self.constant.val().repeat_dim(0, batch);
        h = self
            .conv1
            .forward(h, style(0), noises[0].clone(), offset(0), strategy)?;
        let mut skip = self.to_rgb1.forward(h.clone(), style(1), None, offset(1), strategy)?;
        for (k, to_rgb) in self.to_rgbs.iter().enumerate() {
            let t = 2 + 3 * k;
            let (up, conv) = (&self.convs[2 * k], &self.convs[2 * k + 1]);
            h = up.forward(h, style(t), noises[2 * k + 1].clone(), offset(t), strategy)?;
            h = conv.forward(h, style(t + 1), noises[2 * k + 2].clone(), offset(t + 1), strategy)?;
            skip = to_rgb.forward(h.clone(), style(t + 2), Some(skip), offset(t + 2), strategy)?;
        }
        Ok(skip)
    }

    fn noise_images(&self, noise: &Noise<B>, batch: usize) -> Result<Vec<Tensor<B, 4>>> {
        match noise {
            Noise::Stored => Ok(self.noises.iter().map(|n| n.val()).collect()),
            Noise::Random => {
                let device = self.constant.device();
                Ok((0..self.config.num_noise())
                    .map(|i| {
                        let r = self.config.noise_size(i);
                        Tensor::random([batch, 1, r, r], Distribution::Normal(0.0, 1.0), &device)
                    })
                    .collect())
            }
            Noise::Given(images) => {
                if images.len() != self.config.num_noise() {
                    return Err(Error::InvalidInput(format!(
                        "expected {} noise images, got {}",
                        self.config.num_noise(),
                        images.len()
                    )));
                }
                for (i, image) in images.iter().enumerate() {
                    let r = self.config.noise_size(i);
                    let [b, c, h, w] = image.dims();
                    if (b != 1 && b != batch) || c != 1 || h != r || w != r {
                        return Err(Error::InvalidInput(format!(
                            "noise {i} must be [batch or 1, 1, {r}, {r}], got {:?}",
                            image.dims()
                        )));
                    }
                }
                Ok(images.clone())
            }
        }
    }
}
