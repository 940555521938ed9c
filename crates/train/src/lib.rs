//! Training building blocks for hyperstyle.
//!
//! * [`Ranger`]: the optimizer HyperStyle trains with (RAdam with the rectification threshold,
//!   Lookahead slow weights and gradient centralization), step for step as the original training
//!   code computes it. Its [`RangerState`] serializes with serde, so training can be resumed.

pub mod ranger;

pub use hyperstyle_core::{Error, Result};
pub use ranger::{ParamState, Ranger, RangerConfig, RangerState};
