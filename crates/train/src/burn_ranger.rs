//! [`Ranger`](crate::Ranger)'s update as a Burn [`SimpleOptimizer`], for training Burn modules
//! with autodiff.
//!
//! Wrap it with [`RangerConfig::init_burn`](crate::RangerConfig::init_burn) into an
//! [`OptimizerAdaptor`], which walks a module's parameters, keeps one [`RangerTensorState`] per
//! parameter (saved and restored with the optimizer's record, like Burn's own optimizers) and
//! applies [`Optimizer::step`](burn::optim::Optimizer::step) with the gradients of a backward pass.
//! The learning rate is the one given to `step` (a scheduler's value); the configuration's `lr`
//! is not used here. Every other hyper-parameter and the operations themselves are those of
//! [`Ranger`](crate::Ranger), on the backend's tensors.

use burn::module::AutodiffModule;
use burn::optim::{adaptor::OptimizerAdaptor, LearningRate, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use crate::ranger::{RangerConfig, Scalars};

/// The Ranger update rule on Burn tensors; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct BurnRanger {
    config: RangerConfig,
}

impl BurnRanger {
    /// The update rule with `config` (validated by [`RangerConfig::init_burn`]).
    pub(crate) fn new(config: RangerConfig) -> Self {
        Self { config }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &RangerConfig {
        &self.config
    }
}

/// What [`BurnRanger`] keeps for one parameter tensor.
#[derive(Record, Clone)]
pub struct RangerTensorState<B: Backend, const D: usize> {
    /// Updates applied so far.
    pub step: usize,
    /// First moment (momentum).
    pub exp_avg: Tensor<B, D>,
    /// Second moment.
    pub exp_avg_sq: Tensor<B, D>,
    /// Lookahead slow weights.
    pub slow: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for BurnRanger {
    type State<const D: usize> = RangerTensorState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let cfg = &self.config;
        let dims = tensor.dims();
        let state = state.unwrap_or_else(|| RangerTensorState {
            step: 0,
            exp_avg: tensor.zeros_like(),
            exp_avg_sq: tensor.zeros_like(),
            slow: tensor.clone(),
        });

        // Gradient centralization over every dimension but the first.
        let n: usize = dims.iter().product();
        let grad = if cfg.use_gc && D > cfg.gc_threshold() && n > 0 {
            let flat: Tensor<B, 2> = grad.reshape([dims[0], n / dims[0]]);
            let mean = flat.clone().mean_dim(1);
            (flat - mean).reshape(dims)
        } else {
            grad
        };

        let step = state.step + 1;
        let s = Scalars::new(cfg, step as u64, lr);
        let exp_avg_sq = state.exp_avg_sq.mul_scalar(s.b2) + grad.clone().mul_scalar(s.c2).mul(grad.clone());
        let exp_avg = state.exp_avg.mul_scalar(s.b1) + grad.mul_scalar(s.c1);

        let mut param = tensor;
        if let Some(wd) = s.weight_decay {
            param = param.clone() + param.mul_scalar(wd);
        }
        param = if s.adaptive {
            let denom = exp_avg_sq.clone().sqrt().add_scalar(s.eps);
            param + (exp_avg.clone() / denom).mul_scalar(s.scale)
        } else {
            param + exp_avg.clone().mul_scalar(s.scale)
        };

        let mut slow = state.slow;
        if step as u64 % cfg.k == 0 {
            slow = slow.clone() + (param - slow).mul_scalar(s.alpha);
            param = slow.clone();
        }
        let state = RangerTensorState {
            step,
            exp_avg,
            exp_avg_sq,
            slow,
        };
        (param, Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        RangerTensorState {
            step: state.step,
            exp_avg: state.exp_avg.to_device(device),
            exp_avg_sq: state.exp_avg_sq.to_device(device),
            slow: state.slow.to_device(device),
        }
    }
}

impl RangerConfig {
    /// A Burn optimizer for module `M` on autodiff backend `B`; fails with
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) on out-of-range hyper-parameters.
    pub fn init_burn<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> crate::Result<OptimizerAdaptor<BurnRanger, M, B>> {
        self.validate()?;
        Ok(BurnRanger::new(self.clone()).into())
    }
}
