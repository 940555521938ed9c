//! HyperStyle's training step on Burn autodiff, as the original training code computes it.
//!
//! * [`TrainableHypernetwork`]: the hypernetwork with every parameter in its original shape and
//!   name (convolution weights `[out, in, kh, kw]`, BatchNorm weight/bias/running statistics,
//!   PReLU, `EqualLinear` `[out, in]` scaled at each forward, the shared hypernet's `w1/b1/w2/b2`),
//!   BatchNorms in training or evaluation [`Mode`]. It loads from the same weights as the
//!   inference network, starts fresh as the original does ([`BackboneInit`]), and writes its
//!   tensors back under the upstream names.
//! * [`Trainer`]: one training step (the refinement iterations with detached restarts, each
//!   iteration's loss back-propagated, gradients summed, one optimizer step) and the validation
//!   pass; [`LossNets`] / [`Lambdas`]: the original's identity, L2, LPIPS (and MoCo) loss.
//! * [`Ranger`]: the optimizer HyperStyle trains with (RAdam with the rectification threshold,
//!   Lookahead slow weights and gradient centralization), over named `f32` buffers, and
//!   [`BurnRanger`], the same update as a Burn `SimpleOptimizer` ([`RangerConfig::init_burn`]).
//! * [`checkpoint`]: inference checkpoints the `hyperstyle` facade loads, and resume files with
//!   the optimizer state.
//!
//! Everything computes in the device's default float type: float32 unless the program sets
//! another before its first tensor, e.g. float64 on the CPU backend with
//! `burn::tensor::set_default_dtypes::<B>(&device, DType::F64, DType::I32)`. In float64 one
//! step equals the original's float64 step to ~1e-11 (losses, gradients, the update).

#![warn(missing_docs)]

pub mod backbone;
pub mod burn_ranger;
pub mod checkpoint;
pub mod hypernetwork;
pub mod init;
pub mod layers;
pub mod loss;
pub mod ranger;
pub mod refinement;
pub mod trainer;

pub use backbone::BackboneInit;
pub use burn_ranger::{BurnRanger, RangerTensorState};
pub use hypernetwork::{TrainableHypernetwork, TunedBlock};
pub use hyperstyle_core::{Error, Result};
pub use layers::{Mode, ParamVisitor};
pub use loss::{Lambdas, LossDict, LossNets, SimilarityKind, SimilarityNet};
pub use ranger::{ParamState, Ranger, RangerConfig, RangerState};
pub use trainer::{Batch, FrozenNetworks, Gradients, OptimizerChoice, StepOutput, TrainConfig, Trainer};
