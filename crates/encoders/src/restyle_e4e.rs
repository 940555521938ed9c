//! ReStyle-e4e encoders (`restyle_e4e_encoders.py`), used by domain adaptation (docs/ARCHITECTURE.md §5.3,
//! §9, §10.2): a backbone and `n_styles` map2style heads all reading its final feature map.

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use hyperstyle_core::Weights;

use crate::gradual_style_block::GradualStyleBlock;
use crate::ir_se50::{IrSe50, FEATURE_CHANNELS};
use crate::resnet34::ResNet34;
use hyperstyle_core::{parse_name, Error, Result};

/// Side of the feature map the map2style heads are built for (`GradualStyleBlock(512, 512, 16)`).
const HEAD_SPATIAL: usize = 16;

/// The encoder class of a ReStyle checkpoint, named by its `opts['encoder_type']`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderType {
    /// `ProgressiveBackboneEncoder`: IR-SE-50 backbone (the FFHQ model).
    ProgressiveBackbone,
    /// `ResNetProgressiveBackboneEncoder`: ResNet-34 backbone.
    ResNetProgressiveBackbone,
}

impl EncoderType {
    /// Every class.
    pub const ALL: [EncoderType; 2] = [Self::ProgressiveBackbone, Self::ResNetProgressiveBackbone];

    /// The upstream class name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProgressiveBackbone => "ProgressiveBackboneEncoder",
            Self::ResNetProgressiveBackbone => "ResNetProgressiveBackboneEncoder",
        }
    }

    /// For checkpoints whose options are not at hand: the class whose stem is in `weights`
    /// (`input_layer.0.weight` for IR-SE-50, `conv1.weight` for ResNet-34).
    pub fn detect(weights: &Weights) -> Result<Self> {
        match (
            weights.contains("input_layer.0.weight"),
            weights.contains("conv1.weight"),
        ) {
            (true, false) => Ok(Self::ProgressiveBackbone),
            (false, true) => Ok(Self::ResNetProgressiveBackbone),
            _ => Err(Error::InvalidFile {
                path: weights.store().path().to_path_buf(),
                reason: format!(
                    "no single ReStyle backbone stem (`input_layer.0.weight` or `conv1.weight`) under `{}`",
                    weights.prefix()
                ),
            }),
        }
    }
}

impl FromStr for EncoderType {
    type Err = Error;

    /// Parses `opts['encoder_type']`; any other class name is [`Error::Unknown`].
    fn from_str(name: &str) -> Result<Self> {
        parse_name("ReStyle encoder type", name, &Self::ALL, Self::name)
    }
}

impl fmt::Display for EncoderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `styles` heads with ReStyle's progressive combination at its `Inference` stage (all
/// deltas active): row 0 is `w0 = styles[0](x)`, row i is `w0 + styles[i](x)`.
#[derive(Module, Debug)]
struct ProgressiveStyles<B: Backend> {
    styles: Vec<GradualStyleBlock<B>>,
}

impl<B: Backend> ProgressiveStyles<B> {
    fn load(weights: &Weights, n_styles: usize, device: &B::Device) -> Result<Self> {
        if n_styles == 0 {
            return Err(Error::InvalidConfig("n_styles must be at least 1".into()));
        }
        let styles = (0..n_styles)
            .map(|i| GradualStyleBlock::load(&weights.pp("styles").pp(i), FEATURE_CHANNELS, HEAD_SPATIAL, device))
            .collect::<Result<_>>()?;
        Ok(Self { styles })
    }

    /// features: `[batch, 512, h ≤ 16, w ≤ 16]` → `[batch, n_styles, 512]`.
    fn forward(&self, features: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        let (first, rest) = self.styles.split_first().expect("at least one style head");
        // Refuse a too large map once, before running any head.
        first.check_features(&features)?;
        let w0 = first.forward(features.clone())?;
        let mut rows = Vec::with_capacity(self.styles.len());
        rows.push(w0.clone());
        for style in rest {
            rows.push(w0.clone() + style.forward(features.clone())?);
        }
        Ok(Tensor::stack(rows, 1))
    }
}

/// A backbone the progressive heads read: its final `[batch, 512, ≤16, ≤16]` feature map.
pub trait Backbone<B: Backend>: Module<B> + Sized {
    /// Loads the backbone's keys from `weights` for `input_nc` input channels.
    fn load(weights: &Weights, input_nc: usize, device: &B::Device) -> Result<Self>;
    /// x: `[batch, input_nc, h, w]` → features `[batch, 512, h/16, w/16]`.
    fn features(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>>;
}

impl<B: Backend> Backbone<B> for IrSe50<B> {
    fn load(weights: &Weights, input_nc: usize, device: &B::Device) -> Result<Self> {
        IrSe50::load(weights, input_nc, device)
    }

    fn features(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        self.forward(x)
    }
}

impl<B: Backend> Backbone<B> for ResNet34<B> {
    fn load(weights: &Weights, input_nc: usize, device: &B::Device) -> Result<Self> {
        ResNet34::load(weights, input_nc, device)
    }

    fn features(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        self.forward(x)
    }
}

/// A backbone and `n_styles` map2style heads combined progressively: ReStyle-e4e's encoder
/// classes differ only by the backbone.
#[derive(Module, Debug)]
pub struct ProgressiveEncoder<B: Backend, N> {
    backbone: N,
    styles: ProgressiveStyles<B>,
}

/// `ProgressiveBackboneEncoder(50, 'ir_se', n_styles)`: IR-SE-50 with `input_nc` input channels
/// (keys `input_layer.*`, `body.*`, `styles.*`).
pub type ProgressiveBackboneEncoder<B> = ProgressiveEncoder<B, IrSe50<B>>;

/// `ResNetProgressiveBackboneEncoder(n_styles)`: the ResNet-34 backbone (keys `conv1`, `bn1`,
/// `relu`, `body.*`, as in the hypernetwork) with the same heads.
pub type ResNetProgressiveBackboneEncoder<B> = ProgressiveEncoder<B, ResNet34<B>>;

impl<B: Backend, N: Backbone<B>> ProgressiveEncoder<B, N> {
    /// Loads the backbone and `styles.*`; other keys under `weights` are an error.
    pub fn load(weights: &Weights, input_nc: usize, n_styles: usize, device: &B::Device) -> Result<Self> {
        let encoder = Self {
            backbone: N::load(weights, input_nc, device)?,
            styles: ProgressiveStyles::load(weights, n_styles, device)?,
        };
        weights.check_all_used()?;
        Ok(encoder)
    }

    /// x: `[batch, input_nc, h ≤ 256, w ≤ 256]` → codes `[batch, n_styles, 512]` (before the
    /// caller adds `latent_avg` or the previous iteration's codes).
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        self.styles.forward(self.backbone.features(x)?)
    }
}

/// A ReStyle-e4e encoder of either class, chosen by the checkpoint's `encoder_type`.
///
/// One ReStyle iteration is `codes = encoder(cat([x, y_hat])) + previous codes` (the first
/// iteration adds `latent_avg` and feeds the image of the average latent); see docs/ARCHITECTURE.md §5.3.
#[derive(Module, Debug)]
pub enum ReStyleEncoder<B: Backend> {
    /// `ProgressiveBackboneEncoder`.
    ProgressiveBackbone(ProgressiveBackboneEncoder<B>),
    /// `ResNetProgressiveBackboneEncoder`.
    ResNetProgressiveBackbone(ResNetProgressiveBackboneEncoder<B>),
}

impl<B: Backend> ReStyleEncoder<B> {
    /// Loads the encoder of class `encoder_type` (parse `opts['encoder_type']` with
    /// `str::parse`, or use [`EncoderType::detect`]) from `weights` (the checkpoint's `encoder.`
    /// keys), for `input_nc` input channels (6) and `n_styles` rows (18 for FFHQ).
    pub fn load(
        weights: &Weights,
        encoder_type: EncoderType,
        input_nc: usize,
        n_styles: usize,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(match encoder_type {
            EncoderType::ProgressiveBackbone => {
                Self::ProgressiveBackbone(ProgressiveBackboneEncoder::load(weights, input_nc, n_styles, device)?)
            }
            EncoderType::ResNetProgressiveBackbone => Self::ResNetProgressiveBackbone(
                ResNetProgressiveBackboneEncoder::load(weights, input_nc, n_styles, device)?,
            ),
        })
    }

    /// The encoder's class.
    pub fn encoder_type(&self) -> EncoderType {
        match self {
            Self::ProgressiveBackbone(_) => EncoderType::ProgressiveBackbone,
            Self::ResNetProgressiveBackbone(_) => EncoderType::ResNetProgressiveBackbone,
        }
    }

    /// x: `[batch, input_nc, h ≤ 256, w ≤ 256]` → codes `[batch, n_styles, 512]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        match self {
            Self::ProgressiveBackbone(encoder) => encoder.forward(x),
            Self::ResNetProgressiveBackbone(encoder) => encoder.forward(x),
        }
    }
}
