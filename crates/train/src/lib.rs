//! Training building blocks for hyperstyle.
//!
//! * [`Ranger`]: the optimizer HyperStyle trains with (RAdam with the rectification threshold,
//!   Lookahead slow weights and gradient centralization), step for step as the original training
//!   code computes it, over named `f32` buffers. Its [`RangerState`] serializes with serde, so
//!   training can be resumed.
//! * [`BurnRanger`]: the same update as a Burn `SimpleOptimizer`, for training Burn modules with
//!   autodiff ([`RangerConfig::init_burn`]).

pub mod burn_ranger;
pub mod ranger;

pub use burn_ranger::{BurnRanger, RangerTensorState};
pub use hyperstyle_core::{Error, Result};
pub use ranger::{ParamState, Ranger, RangerConfig, RangerState};
