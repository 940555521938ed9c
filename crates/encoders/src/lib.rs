//! HyperStyle's image encoders on Burn (docs/ARCHITECTURE.md §5.4).
//!
//! * [`WEncoder`]: IR-SE-50 → pooled W code; HyperStyle's initial inversion is
//!   [`WEncoder::w_codes`] = encoder output + the HyperStyle checkpoint's [`LatentAverage`].
//! * [`ReStyleEncoder`]: ReStyle-e4e (IR-SE-50 [`ProgressiveBackboneEncoder`] or ResNet-34
//!   [`ResNetProgressiveBackboneEncoder`]) with 18 map2style heads, for domain adaptation.
//! * [`ResNet34`]: the ResNet-34 backbone the hypernetwork shares with ReStyle's ResNet variant.
//!
//! Every network loads from a [`Weights`](hyperstyle_core::Weights) view with PyTorch key
//! names, checks every shape, and folds eval-mode BatchNorms into scales (or into the preceding
//! convolution) at load time.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use hyperstyle_encoders::{LatentAverage, WEncoder};
//! use hyperstyle_core::WeightStore;
//! # fn main() -> Result<(), hyperstyle_encoders::Error> {
//! let device = Default::default();
//! let w_encoder_file = WeightStore::open("faces_w_encoder.safetensors")?;
//! let hyperstyle_file = WeightStore::open("hyperstyle_ffhq.safetensors")?;
//! let encoder = WEncoder::<Flex>::load(&w_encoder_file.scope("state_dict/encoder."), 18, &device)?;
//! let latent_avg = LatentAverage::load(&hyperstyle_file.root(), "latent_avg", 18, &device)?;
//! let images = burn::tensor::Tensor::zeros([1, 3, 256, 256], &device); // normalised to [-1, 1]
//! let w_codes = encoder.w_codes(images, &latent_avg)?; // [1, 18, 512]
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod basic_block;
pub mod batch_norm;
pub mod bottleneck_ir_se;
pub mod conv2d;
pub mod gradual_style_block;
pub mod ir_se50;
pub mod latent_avg;
mod per_channel;
pub mod prelu;
pub mod resnet34;
pub mod restyle_e4e;
pub mod se_module;
pub mod w_encoder;

pub use hyperstyle_core::{Error, Result};
pub use ir_se50::IrSe50;
pub use latent_avg::LatentAverage;
pub use resnet34::ResNet34;
pub use restyle_e4e::{
    Backbone, EncoderType, ProgressiveBackboneEncoder, ProgressiveEncoder, ReStyleEncoder,
    ResNetProgressiveBackboneEncoder,
};
pub use w_encoder::WEncoder;
