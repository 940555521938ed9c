//! The Ranger optimizer: RAdam, Lookahead and gradient centralization in one update rule.
//!
//! This follows the original HyperStyle training code's optimizer (Ranger version 20.4.11)
//! operation by operation, in `f32`:
//!
//! 1. **Gradient centralization.** When `use_gc` is on, a gradient with more dimensions than the
//!    threshold (one, or three with `gc_conv_only`) has its mean over every dimension but the
//!    first subtracted, per output row. Biases (1-D) are never centralized.
//! 2. **Moments.** `exp_avg_sq ← β₂·exp_avg_sq + (1−β₂)·g²` and
//!    `exp_avg ← β₁·exp_avg + (1−β₁)·g`.
//! 3. **Rectification (RAdam).** With `ρ∞ = 2/(1−β₂) − 1` and
//!    `ρₜ = ρ∞ − 2t·β₂ᵗ/(1−β₂ᵗ)`: while `ρₜ` is at most the threshold (five by default) the
//!    update is plain momentum, `p ← p − lr·exp_avg/(1−β₁ᵗ)`; above it the adaptive step
//!    `p ← p − lr·r·exp_avg/(√exp_avg_sq + ε)` with the rectification factor
//!    `r = √((1−β₂ᵗ)(ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)ρₜ(ρ∞−2))) / (1−β₁ᵗ)`. The scalars are computed in
//!    `f64` as the original does. (The original memoizes them in a small table keyed by
//!    `step % 10`; every entry holds exactly what a recomputation gives, so they are simply
//!    recomputed here.)
//! 4. **Weight decay** (before the update, off by default): `p ← p − wd·lr·p`.
//! 5. **Lookahead.** The slow weights start as the parameter before its first update; every `k`
//!    steps `slow ← slow + α·(p − slow)` and the parameter is reset to `slow`.
//!
//! Parameters are plain row-major `f32` buffers with a shape, identified by a name (a key of the
//! state), so the optimizer works with whatever holds the tensors. For Burn modules trained with
//! autodiff, [`BurnRanger`](crate::BurnRanger) applies the same update to the backend's tensors.
//!
//! ```
//! use hyperstyle_train::{Ranger, RangerConfig};
//! # fn main() -> Result<(), hyperstyle_train::Error> {
//! let mut opt = Ranger::new(RangerConfig { lr: 1e-4, ..Default::default() })?;
//! let mut weight = vec![0.5f32; 6 * 5];
//! let grad = vec![0.1f32; 6 * 5];
//! opt.step("fc.weight", &mut weight, &[6, 5], &grad)?;
//! // Resume later from the serialized state.
//! let saved = opt.state().clone();
//! let mut resumed = Ranger::from_state(saved)?;
//! resumed.step("fc.weight", &mut weight, &[6, 5], &grad)?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use hyperstyle_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Whether `x` is a finite, strictly positive number (NaN is not).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// Hyper-parameters of [`Ranger`]; the defaults are the original's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangerConfig {
    /// Learning rate (default `1e-3`; HyperStyle's training options use `1e-4`).
    pub lr: f64,
    /// Lookahead interpolation factor towards the fast weights, in `[0, 1]` (default `0.5`).
    pub alpha: f64,
    /// Lookahead period in steps, at least one (default `6`).
    pub k: u64,
    /// Rectification threshold on `ρₜ`: at or below it the step is plain momentum (default `5`).
    pub n_sma_threshold: f64,
    /// Moment decay rates `(β₁, β₂)` (default `(0.95, 0.999)`).
    pub betas: (f64, f64),
    /// Added to the square root of the second moment (default `1e-5`).
    pub eps: f64,
    /// Decoupled-style weight decay applied before the update (default `0`).
    pub weight_decay: f64,
    /// Gradient centralization on or off (default on).
    pub use_gc: bool,
    /// Centralize only gradients with more than three dimensions (convolutions) instead of
    /// every gradient with more than one (default off).
    pub gc_conv_only: bool,
}

impl Default for RangerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            alpha: 0.5,
            k: 6,
            n_sma_threshold: 5.0,
            betas: (0.95, 0.999),
            eps: 1e-5,
            weight_decay: 0.0,
            use_gc: true,
            gc_conv_only: false,
        }
    }
}

impl RangerConfig {
    /// Checks the ranges the original checks (α in `[0, 1]`, `k ≥ 1`, `lr > 0`, `eps > 0`, all
    /// finite) and that the betas lie in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(format!("Ranger: {what}")));
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad(format!("alpha {} is not in [0, 1]", self.alpha));
        }
        if self.k < 1 {
            return bad("k must be at least 1".into());
        }
        if !positive(self.lr) {
            return bad(format!("learning rate {} is not positive", self.lr));
        }
        if !positive(self.eps) {
            return bad(format!("eps {} is not positive", self.eps));
        }
        for (name, b) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("{name} {b} is not in [0, 1)"));
            }
        }
        if !self.weight_decay.is_finite() || !self.n_sma_threshold.is_finite() {
            return bad("weight decay and threshold must be finite".into());
        }
        Ok(())
    }

    /// Number of leading dimensions a gradient must exceed to be centralized.
    pub(crate) fn gc_threshold(&self) -> usize {
        if self.gc_conv_only {
            3
        } else {
            1
        }
    }
}

/// What [`Ranger`] keeps for one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamState {
    /// Updates applied so far.
    pub step: u64,
    /// Shape of the parameter, checked on every step.
    pub shape: Vec<usize>,
    /// First moment (momentum).
    pub exp_avg: Vec<f32>,
    /// Second moment.
    pub exp_avg_sq: Vec<f32>,
    /// Lookahead slow weights.
    pub slow: Vec<f32>,
}

/// Everything needed to resume a [`Ranger`]: its configuration and per-parameter state, keyed by
/// parameter name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangerState {
    /// Hyper-parameters (the learning rate may have been changed with [`Ranger::set_lr`]).
    pub config: RangerConfig,
    /// Per-parameter state.
    pub params: BTreeMap<String, ParamState>,
}

/// The Ranger optimizer over named `f32` parameters; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Ranger {
    state: RangerState,
}

impl Ranger {
    /// A fresh optimizer; fails with [`Error::InvalidConfig`] on out-of-range hyper-parameters.
    pub fn new(config: RangerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            state: RangerState {
                config,
                params: BTreeMap::new(),
            },
        })
    }

    /// Resumes from a saved state, checking its configuration and that every buffer matches its
    /// shape.
    pub fn from_state(state: RangerState) -> Result<Self> {
        state.config.validate()?;
        for (name, p) in &state.params {
            let n: usize = p.shape.iter().product();
            for (what, len) in [
                ("exp_avg", p.exp_avg.len()),
                ("exp_avg_sq", p.exp_avg_sq.len()),
                ("slow", p.slow.len()),
            ] {
                if len != n {
                    return Err(Error::InvalidInput(format!(
                        "Ranger state of `{name}`: {what} holds {len} values, shape {:?} needs {n}",
                        p.shape
                    )));
                }
            }
        }
        Ok(Self { state })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &RangerConfig {
        &self.state.config
    }

    /// The full state, for saving (it implements serde's traits).
    pub fn state(&self) -> &RangerState {
        &self.state
    }

    /// Consumes the optimizer into its state.
    pub fn into_state(self) -> RangerState {
        self.state
    }

    /// Changes the learning rate (a schedule); fails on a non-positive value.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        if !positive(lr) {
            return Err(Error::InvalidConfig(format!(
                "Ranger: learning rate {lr} is not positive"
            )));
        }
        self.state.config.lr = lr;
        Ok(())
    }

    /// Applies one update to the parameter `name` (row-major values `param` of `shape`) with its
    /// gradient `grad`, in place.
    ///
    /// The first call for a name creates its state. Fails with [`Error::ShapeMismatch`] when the
    /// shape differs from the one the state was created with, and with [`Error::InvalidInput`]
    /// when `param` or `grad` do not hold as many values as `shape` says. Nothing is modified on
    /// failure.
    pub fn step(&mut self, name: &str, param: &mut [f32], shape: &[usize], grad: &[f32]) -> Result<()> {
        let n: usize = shape.iter().product();
        if param.len() != n || grad.len() != n {
            return Err(Error::InvalidInput(format!(
                "Ranger step of `{name}`: shape {shape:?} needs {n} values, parameter has {} and \
                 gradient {}",
                param.len(),
                grad.len()
            )));
        }
        let cfg = self.state.config.clone();
        let st = match self.state.params.get_mut(name) {
            Some(st) => {
                if st.shape != shape {
                    return Err(Error::ShapeMismatch {
                        key: name.to_string(),
                        expected: st.shape.clone(),
                        found: shape.to_vec(),
                    });
                }
                st
            }
            None => self.state.params.entry(name.to_string()).or_insert_with(|| ParamState {
                step: 0,
                shape: shape.to_vec(),
                exp_avg: vec![0.0; n],
                exp_avg_sq: vec![0.0; n],
                slow: param.to_vec(),
            }),
        };

        // 1. Gradient centralization: subtract the mean over all but the first dimension.
        let mut g = grad.to_vec();
        if cfg.use_gc && shape.len() > cfg.gc_threshold() && n > 0 {
            let row = n / shape[0];
            for chunk in g.chunks_mut(row) {
                let mean = (chunk.iter().map(|&v| v as f64).sum::<f64>() / row as f64) as f32;
                chunk.iter_mut().for_each(|v| *v -= mean);
            }
        }

        st.step += 1;
        let t = st.step;
        // Rounded to f32, as a float32 tensor operation rounds its scalar arguments.
        let s = Scalars::new(&cfg, t, cfg.lr);
        let [b1, b2, c1, c2, eps, alpha, scale] = [s.b1, s.b2, s.c1, s.c2, s.eps, s.alpha, s.scale].map(|v| v as f32);

        // 2. Moments.
        for ((m, v), &gi) in st.exp_avg.iter_mut().zip(&mut st.exp_avg_sq).zip(&g) {
            *v = *v * b2 + c2 * gi * gi;
            *m = *m * b1 + c1 * gi;
        }

        // 4. Weight decay.
        if let Some(wd) = s.weight_decay {
            let wd = wd as f32;
            param.iter_mut().for_each(|p| *p += wd * *p);
        }

        // 3. The (rectified) update.
        if s.adaptive {
            for ((p, &m), &v) in param.iter_mut().zip(&st.exp_avg).zip(&st.exp_avg_sq) {
                *p += scale * (m / (v.sqrt() + eps));
            }
        } else {
            for (p, &m) in param.iter_mut().zip(&st.exp_avg) {
                *p += scale * m;
            }
        }

        // 5. Lookahead.
        if t % cfg.k == 0 {
            for (p, slow) in param.iter_mut().zip(&mut st.slow) {
                *slow += alpha * (*p - *slow);
                *p = *slow;
            }
        }
        Ok(())
    }
}

/// The scalars of one step, in f64 (a float32 tensor operation rounds them to f32 when it
/// applies them; a float64 one keeps them).
pub(crate) struct Scalars {
    pub b1: f64,
    pub b2: f64,
    pub c1: f64,
    pub c2: f64,
    pub eps: f64,
    pub alpha: f64,
    /// Whether `ρₜ` is above the threshold (adaptive step) or not (momentum step).
    pub adaptive: bool,
    /// `−lr · step_size`.
    pub scale: f64,
    /// `−wd · lr`, when weight decay is on.
    pub weight_decay: Option<f64>,
}

impl Scalars {
    /// The scalars of step `t` (1-based) with learning rate `lr`.
    pub fn new(cfg: &RangerConfig, t: u64, lr: f64) -> Self {
        let (beta1, beta2) = cfg.betas;
        let beta2_t = beta2.powi(t as i32);
        let n_sma_max = 2.0 / (1.0 - beta2) - 1.0;
        let n_sma = n_sma_max - 2.0 * t as f64 * beta2_t / (1.0 - beta2_t);
        let bias1 = 1.0 - beta1.powi(t as i32);
        let adaptive = n_sma > cfg.n_sma_threshold;
        let step_size = if adaptive {
            ((1.0 - beta2_t) * (n_sma - 4.0) / (n_sma_max - 4.0) * (n_sma - 2.0) / n_sma * n_sma_max
                / (n_sma_max - 2.0))
                .sqrt()
                / bias1
        } else {
            1.0 / bias1
        };
        Self {
            b1: beta1,
            b2: beta2,
            c1: 1.0 - beta1,
            c2: 1.0 - beta2,
            eps: cfg.eps,
            alpha: cfg.alpha,
            adaptive,
            scale: -step_size * lr,
            weight_decay: (cfg.weight_decay != 0.0).then(|| -cfg.weight_decay * lr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_config() {
        for cfg in [
            RangerConfig {
                alpha: 1.5,
                ..Default::default()
            },
            RangerConfig {
                k: 0,
                ..Default::default()
            },
            RangerConfig {
                lr: 0.0,
                ..Default::default()
            },
            RangerConfig {
                eps: -1.0,
                ..Default::default()
            },
            RangerConfig {
                betas: (0.9, 1.0),
                ..Default::default()
            },
        ] {
            assert!(matches!(Ranger::new(cfg), Err(Error::InvalidConfig(_))));
        }
    }

    #[test]
    fn shape_errors_leave_state_untouched() {
        let mut opt = Ranger::new(RangerConfig::default()).unwrap();
        let mut p = vec![1.0f32; 6];
        opt.step("w", &mut p, &[2, 3], &[0.5; 6]).unwrap();
        let before = (opt.state().clone(), p.clone());
        let err = opt.step("w", &mut p, &[3, 2], &[0.5; 6]).unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        let err = opt.step("w", &mut p, &[2, 3], &[0.5; 5]).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert_eq!(before, (opt.state().clone(), p));
    }

    #[test]
    fn gc_removes_row_means() {
        // With a gradient constant along each row, centralization leaves nothing to apply.
        let mut opt = Ranger::new(RangerConfig::default()).unwrap();
        let mut p = vec![0.25f32; 6];
        let g = [1.0, 1.0, 1.0, -2.0, -2.0, -2.0];
        opt.step("w", &mut p, &[2, 3], &g).unwrap();
        assert!(p.iter().all(|&v| v == 0.25));
        // A bias is not centralized.
        let mut b = vec![0.25f32; 3];
        opt.step("b", &mut b, &[3], &[1.0; 3]).unwrap();
        assert!(b.iter().all(|&v| v < 0.25));
    }
}
