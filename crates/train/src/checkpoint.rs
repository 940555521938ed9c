//! Saving a [`Trainer`]: inference checkpoints and resume files.
//!
//! * [`Trainer::save_model`] writes what the original's `checkpoint_me` saves, in the layout of a
//!   converted upstream checkpoint: `hypernet.*` (every parameter, the BatchNorm running
//!   statistics and `num_batches_tracked`), `decoder.*`, `latent_avg`, and the metadata `kind`
//!   (`hyperstyle`), `opts` (the training options as JSON) and `aliases` (the shared blocks'
//!   `refinement_blocks.{j}.hypernet.*` names of the one shared hypernet). The `hyperstyle`
//!   facade loads it like a converted release model.
//! * [`Trainer::save_state`] / [`Trainer::resume`] keep everything a run needs to continue
//!   bit-identically: the hypernetwork (with running statistics), the optimizer's per-parameter
//!   state (Ranger: step count, both moments and the Lookahead slow weights; Adam: step count
//!   and both moments), `num_batches_tracked`, `global_step`, `best_val_loss` and the step's
//!   configuration. Tensors are stored exactly (f32), so a resumed run computes the same values.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{AdamState, AdaptiveMomentumState, Optimizer, SimpleOptimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use hyperstyle_core::checkpoint::{ALIASES, FORMAT, FORMAT_VERSION, KIND, OPTS};
use hyperstyle_core::weights::{tensor_values, NamedTensor};
use hyperstyle_core::{Error, Kind, Result, WeightStore};
use hyperstyle_hypernet::{HypernetConfig, LayersToTune};
use hyperstyle_stylegan2::GeneratorConfig;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::burn_ranger::RangerTensorState;
use crate::hypernetwork::TrainableHypernetwork;
use crate::layers::ParamVisitor;
use crate::loss::LossNets;
use crate::trainer::{FrozenNetworks, Optim, TrainConfig, Trainer};

/// The `kind` metadata of resume files.
pub const STATE_KIND: &str = "hyperstyle-train-state";

/// A tensor to write: f32 values or one i64 (`num_batches_tracked`).
enum Data {
    F32(Vec<usize>, Vec<f32>),
    I64(i64),
}

/// A tensor's dtype, shape and little-endian bytes.
type Encoded = (Dtype, Vec<usize>, Vec<u8>);

impl Data {
    fn bytes(&self) -> Encoded {
        match self {
            Data::F32(shape, values) => (
                Dtype::F32,
                shape.clone(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Data::I64(v) => (Dtype::I64, vec![], v.to_le_bytes().to_vec()),
        }
    }
}

/// Writes `tensors` and `metadata` as one safetensors file, atomically.
fn write(path: &Path, tensors: Vec<(String, Data)>, metadata: HashMap<String, String>) -> Result<()> {
    let encoded: Vec<(String, Encoded)> = tensors.into_iter().map(|(k, d)| (k, d.bytes())).collect();
    let views = encoded
        .iter()
        .map(|(k, (dtype, shape, bytes))| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::InvalidInput(format!("tensor `{k}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| Error::InvalidInput(format!("serializing: {e}")))?;
    hyperstyle_core::atomic::write_atomically(path, &bytes)
}

/// Every BatchNorm prefix of the network (the keys before `.running_mean`).
fn batch_norms(tensors: &[NamedTensor]) -> Vec<String> {
    tensors
        .iter()
        .filter_map(|(k, _, _)| k.strip_suffix(".running_mean").map(str::to_string))
        .collect()
}

impl<B: AutodiffBackend> Trainer<B> {
    /// The original's `opts` for this run (what the facade reads back: `dataset_type`,
    /// `output_size`, `layers_to_tune`, `encoder_type`; the rest documents the run).
    pub fn opts(&self) -> serde_json::Value {
        let c = &self.config;
        let l = &c.lambdas;
        serde_json::json!({
            "dataset_type": c.dataset_type,
            "encoder_type": self.hypernet_config.kind.name(),
            "output_size": self.hypernet_config.generator.size,
            "layers_to_tune": self.hypernet_config.layers_to_tune.to_string(),
            "input_nc": 6,
            "n_iters_per_batch": c.n_iters_per_batch,
            "learning_rate": c.learning_rate,
            "optim_name": match c.optimizer {
                crate::trainer::OptimizerChoice::Ranger(_) => "ranger",
                crate::trainer::OptimizerChoice::Adam => "adam",
            },
            "lpips_lambda": l.lpips,
            "l2_lambda": l.l2,
            "id_lambda": l.id,
            "moco_lambda": l.moco,
            "train_decoder": false,
            "global_step": self.global_step,
        })
    }

    /// The hypernetwork's tensors under `hypernet.`, `num_batches_tracked` included.
    fn hypernet_tensors(&self) -> Result<Vec<(String, Data)>> {
        let hypernet = self.hypernet();
        let tensors = hypernet.tensors()?;
        let tracked = i64::try_from(hypernet.batches_tracked()).unwrap_or(i64::MAX);
        let mut out: Vec<(String, Data)> = batch_norms(&tensors)
            .into_iter()
            .map(|bn| (format!("hypernet.{bn}.num_batches_tracked"), Data::I64(tracked)))
            .collect();
        out.extend(
            tensors
                .into_iter()
                .map(|(k, s, v)| (format!("hypernet.{k}"), Data::F32(s, v))),
        );
        Ok(out)
    }

    /// Writes an inference checkpoint (see the [module docs](self)) to `path`.
    pub fn save_model(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut tensors = self.hypernet_tensors()?;
        for (k, s, v) in &self.decoder_tensors {
            tensors.push((format!("decoder.{k}"), Data::F32(s.clone(), v.clone())));
        }
        let latent_avg = self.latent_avg().value();
        let shape = latent_avg.dims().to_vec();
        tensors.push(("latent_avg".into(), Data::F32(shape, tensor_values(latent_avg)?)));
        let mut aliases = serde_json::Map::new();
        for (j, shared) in self.hypernet().tuned_layers() {
            if shared {
                for name in ["w1", "b1", "w2", "b2"] {
                    aliases.insert(
                        format!("hypernet.refinement_blocks.{j}.hypernet.{name}"),
                        format!("hypernet.shared_weight_hypernet.{name}").into(),
                    );
                }
            }
        }
        let metadata = HashMap::from([
            (FORMAT.to_string(), FORMAT_VERSION.to_string()),
            (KIND.to_string(), Kind::Hyperstyle.name().to_string()),
            (OPTS.to_string(), self.opts().to_string()),
            (ALIASES.to_string(), serde_json::Value::Object(aliases).to_string()),
        ]);
        write(path.as_ref(), tensors, metadata)
    }

    /// Writes a resume file (see the [module docs](self)) to `path`.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut tensors = self.hypernet_tensors()?;
        let mut steps = serde_json::Map::new();
        let hypernet = self.hypernet();
        let mut collect = |name: &str, step: usize, buffers: Vec<(&str, Vec<usize>, Vec<f32>)>| {
            steps.insert(name.to_string(), step.into());
            for (buffer, shape, values) in buffers {
                tensors.push((format!("optimizer.{name}.{buffer}"), Data::F32(shape, values)));
            }
        };
        match &self.optim {
            Optim::Ranger(optim) => export(optim, hypernet, &mut collect)?,
            Optim::Adam(optim) => export(optim, hypernet, &mut collect)?,
            Optim::Empty => unreachable!("the optimizer is only replaced while resuming"),
        }
        let metadata = HashMap::from([
            (KIND.to_string(), STATE_KIND.to_string()),
            (
                "train_config".to_string(),
                serde_json::to_string(&self.config).map_err(json_error)?,
            ),
            (
                "output_size".to_string(),
                self.hypernet_config.generator.size.to_string(),
            ),
            (
                "layers_to_tune".to_string(),
                self.hypernet_config.layers_to_tune.to_string(),
            ),
            ("global_step".to_string(), self.global_step.to_string()),
            (
                "best_val_loss".to_string(),
                serde_json::to_string(&self.best_val_loss).map_err(json_error)?,
            ),
            ("batches_tracked".to_string(), hypernet.batches_tracked().to_string()),
            (
                "optimizer_steps".to_string(),
                serde_json::Value::Object(steps).to_string(),
            ),
        ]);
        write(path.as_ref(), tensors, metadata)
    }

    /// Continues a run from a file of [`Trainer::save_state`], with the same frozen and loss
    /// networks as before.
    pub fn resume(path: impl AsRef<Path>, frozen: FrozenNetworks<B>, losses: LossNets<B>) -> Result<Self> {
        let path = path.as_ref();
        let store = WeightStore::open(path)?;
        let meta = store.metadata().clone();
        let field = |name: &str| {
            meta.get(name).cloned().ok_or_else(|| Error::InvalidFile {
                path: path.to_path_buf(),
                reason: format!("not a training state: no `{name}` metadata"),
            })
        };
        if field(KIND)? != STATE_KIND {
            return Err(Error::InvalidFile {
                path: path.to_path_buf(),
                reason: format!("metadata `kind` is not `{STATE_KIND}`"),
            });
        }
        let bad = |what: &str| Error::InvalidFile {
            path: path.to_path_buf(),
            reason: format!("metadata `{what}` is malformed"),
        };
        let config: TrainConfig = serde_json::from_str(&field("train_config")?).map_err(|_| bad("train_config"))?;
        let size: usize = field("output_size")?.parse().map_err(|_| bad("output_size"))?;
        let layers: LayersToTune = field("layers_to_tune")?.parse()?;
        let hypernet_config = HypernetConfig::new(GeneratorConfig::new(size)).with_layers_to_tune(layers);
        let device = frozen.latent_avg.value().device();
        let mut hypernet = TrainableHypernetwork::load(&store.scope("hypernet."), &hypernet_config, &device)?;
        hypernet.set_batches_tracked(field("batches_tracked")?.parse().map_err(|_| bad("batches_tracked"))?);
        let steps: HashMap<String, usize> =
            serde_json::from_str(&field("optimizer_steps")?).map_err(|_| bad("optimizer_steps"))?;
        let mut trainer = Trainer::new(hypernet, hypernet_config, frozen, losses, config)?;
        trainer.global_step = field("global_step")?.parse().map_err(|_| bad("global_step"))?;
        trainer.best_val_loss = serde_json::from_str(&field("best_val_loss")?).map_err(|_| bad("best_val_loss"))?;
        let state = store.scope("optimizer.");
        let hypernet = trainer.hypernet.take().expect("present");
        let optim = std::mem::replace(&mut trainer.optim, Optim::Empty);
        trainer.optim = match optim {
            Optim::Ranger(o) => Optim::Ranger(import(o, &hypernet, &steps, &state, &device)?),
            Optim::Adam(o) => Optim::Adam(import(o, &hypernet, &steps, &state, &device)?),
            Optim::Empty => unreachable!("set above"),
        };
        trainer.hypernet = Some(hypernet);
        state.check_all_used()?;
        Ok(trainer)
    }
}

fn json_error(e: serde_json::Error) -> Error {
    Error::InvalidInput(format!("JSON: {e}"))
}

/// The per-parameter state an optimizer keeps, as named buffers and a step count.
pub(crate) trait StateBuffers<B: Backend>: SimpleOptimizer<B> {
    /// `(step, [(buffer name, tensor)])`.
    fn to_buffers<const D: usize>(state: Self::State<D>) -> (usize, Vec<(&'static str, Tensor<B, D>)>);
    /// The buffer names, in the order `from_buffers` takes them.
    fn names() -> &'static [&'static str];
    /// The state from a step count and the buffers in `names()` order.
    fn from_buffers<const D: usize>(step: usize, buffers: Vec<Tensor<B, D>>) -> Self::State<D>;
}

impl<B: Backend> StateBuffers<B> for crate::BurnRanger {
    fn to_buffers<const D: usize>(s: RangerTensorState<B, D>) -> (usize, Vec<(&'static str, Tensor<B, D>)>) {
        (
            s.step,
            vec![
                ("exp_avg", s.exp_avg),
                ("exp_avg_sq", s.exp_avg_sq),
                ("slow_buffer", s.slow),
            ],
        )
    }
    fn names() -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq", "slow_buffer"]
    }
    fn from_buffers<const D: usize>(step: usize, b: Vec<Tensor<B, D>>) -> RangerTensorState<B, D> {
        let mut b = b.into_iter();
        let mut next = || b.next().expect("three buffers");
        RangerTensorState {
            step,
            exp_avg: next(),
            exp_avg_sq: next(),
            slow: next(),
        }
    }
}

impl<B: Backend> StateBuffers<B> for burn::optim::Adam {
    fn to_buffers<const D: usize>(s: AdamState<B, D>) -> (usize, Vec<(&'static str, Tensor<B, D>)>) {
        let m = s.momentum;
        (m.time, vec![("exp_avg", m.moment_1), ("exp_avg_sq", m.moment_2)])
    }
    fn names() -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }
    fn from_buffers<const D: usize>(step: usize, b: Vec<Tensor<B, D>>) -> AdamState<B, D> {
        let mut b = b.into_iter();
        let (moment_1, moment_2) = (b.next().expect("two buffers"), b.next().expect("two buffers"));
        AdamState {
            momentum: AdaptiveMomentumState {
                time: step,
                moment_1,
                moment_2,
                max_moment_2: None,
            },
        }
    }
}

/// Calls `collect(name, step, buffers)` for every parameter with optimizer state.
fn export<B, O, F>(
    optim: &OptimizerAdaptor<O, TrainableHypernetwork<B>, B>,
    hypernet: &TrainableHypernetwork<B>,
    collect: &mut F,
) -> Result<()>
where
    B: AutodiffBackend,
    O: StateBuffers<B::InnerBackend>,
    F: FnMut(&str, usize, Vec<(&str, Vec<usize>, Vec<f32>)>),
{
    struct Export<'a, B: AutodiffBackend, O: SimpleOptimizer<B::InnerBackend>, F> {
        records: HashMap<ParamId, AdaptorRecord<O, B>>,
        collect: &'a mut F,
        error: Option<Error>,
    }
    impl<B, O, F> ParamVisitor<B> for Export<'_, B, O, F>
    where
        B: AutodiffBackend,
        O: StateBuffers<B::InnerBackend>,
        F: FnMut(&str, usize, Vec<(&str, Vec<usize>, Vec<f32>)>),
    {
        fn param<const D: usize>(&mut self, name: &str, p: &Param<Tensor<B, D>>) {
            let Some(record) = self.records.remove(&p.id) else {
                return;
            };
            let (step, buffers) = O::to_buffers::<D>(record.into_state::<D>());
            let mut out = Vec::new();
            for (buffer, t) in buffers {
                let shape = t.dims().to_vec();
                match tensor_values(t) {
                    Ok(v) => out.push((buffer, shape, v)),
                    Err(e) => self.error = Some(e),
                }
            }
            (self.collect)(name, step, out);
        }
    }
    let mut export = Export::<B, O, F> {
        records: optim.to_record().into_iter().collect(),
        collect,
        error: None,
    };
    hypernet.visit(&mut export);
    match export.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Loads the optimizer state of every parameter named in `steps` from `state`
/// (`{name}.{buffer}`), keyed by the new network's parameter ids.
fn import<B, O>(
    optim: OptimizerAdaptor<O, TrainableHypernetwork<B>, B>,
    hypernet: &TrainableHypernetwork<B>,
    steps: &HashMap<String, usize>,
    state: &hyperstyle_core::Weights,
    device: &Device<B>,
) -> Result<OptimizerAdaptor<O, TrainableHypernetwork<B>, B>>
where
    B: AutodiffBackend,
    O: StateBuffers<B::InnerBackend>,
{
    struct Import<'a, 'w, B: AutodiffBackend, O: SimpleOptimizer<B::InnerBackend>> {
        records: HashMap<ParamId, AdaptorRecord<O, B>>,
        steps: &'a HashMap<String, usize>,
        state: &'a hyperstyle_core::Weights<'w>,
        device: Device<B::InnerBackend>,
        error: Option<Error>,
    }
    impl<B, O> ParamVisitor<B> for Import<'_, '_, B, O>
    where
        B: AutodiffBackend,
        O: StateBuffers<B::InnerBackend>,
    {
        fn param<const D: usize>(&mut self, name: &str, p: &Param<Tensor<B, D>>) {
            let Some(&step) = self.steps.get(name) else { return };
            let shape: [usize; D] = p.dims();
            let buffers: Result<Vec<Tensor<B::InnerBackend, D>>> = O::names()
                .iter()
                .map(|buffer| self.state.pp(name).tensor(buffer, shape, &self.device))
                .collect();
            match buffers {
                Ok(buffers) => {
                    let record = AdaptorRecord::from_state(O::from_buffers::<D>(step, buffers));
                    self.records.insert(p.id, record);
                }
                Err(e) => self.error = Some(e),
            }
        }
    }
    let mut import = Import::<B, O> {
        records: HashMap::new(),
        steps,
        state,
        device: device.clone(),
        error: None,
    };
    hypernet.visit(&mut import);
    if let Some(e) = import.error {
        return Err(e);
    }
    Ok(optim.load_record(import.records.into_iter().collect()))
}
