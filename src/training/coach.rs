//! A training run as the original's `Coach.train` drives it: the step loop over the training
//! loader, the periodic metrics, image grids and validation passes, the best and periodic
//! checkpoints, and resuming.
//!
//! The experiment folder gets the original's layout:
//!
//! ```text
//! <exp_dir>/checkpoints/best_model.safetensors      lowest validation loss so far
//! <exp_dir>/checkpoints/iteration_<step>.safetensors every `save_interval` steps and at the end
//! <exp_dir>/checkpoints/resume.safetensors           the latest state to continue from
//! <exp_dir>/checkpoints/timestamp.txt                one entry per checkpoint, with its losses
//! <exp_dir>/logs/images/train/<step>.jpg             input | W inversion | target | outputs (last first)
//! <exp_dir>/logs/images/test/<batch>_<step>.jpg      the same for validation batches
//! <exp_dir>/logs/metrics.jsonl                       one JSON line per logged train/test entry
//! ```
//!
//! Model checkpoints load like converted release models
//! (`HyperStyle::builder().model_file(..)`); `resume.safetensors` continues a run exactly
//! ([`Trainer::resume`]).
//!
//! The step numbering is the original's: the batch trained first is step 0 and the run ends
//! after step `max_steps` (so `max_steps + 1` optimizer steps from scratch); images are logged
//! when `step % image_interval == 0` and also every 25 steps below 1000; validation runs when
//! `step % val_interval == 0` and at the last step, and at step 0 it only looks at the first
//! five batches without reporting (the original's quick check).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use hyperstyle_train::{Batch as StepBatch, LossDict, StepOutput, Trainer};
use image::RgbImage;

use crate::error::{invalid_input, Result};
use crate::io::{save_image, tensor_to_images};
use crate::training::data::{Batch, DataLoader, Dataset};

/// How often the run logs, validates and saves (the original's training options).
#[derive(Debug, Clone, PartialEq)]
pub struct CoachConfig {
    /// The experiment folder (`exp_dir`).
    pub exp_dir: PathBuf,
    /// The last step (`max_steps`, default 500000).
    pub max_steps: u64,
    /// Steps between training image grids (`image_interval`, default 100).
    pub image_interval: u64,
    /// Steps between logged training losses (`board_interval`, default 50).
    pub board_interval: u64,
    /// Steps between validation passes (`val_interval`, default 1000).
    pub val_interval: u64,
    /// Steps between checkpoints (`save_interval`; `None`: only at the end).
    pub save_interval: Option<u64>,
    /// Validation batches per pass (`max_val_batches`; `None`: the whole test set). As in the
    /// original, a pass reads one batch more than this number.
    pub max_val_batches: Option<usize>,
    /// Samples drawn per image grid (the original shows 2).
    pub display_count: usize,
}

impl CoachConfig {
    /// The original's defaults, writing to `exp_dir`.
    pub fn new(exp_dir: impl Into<PathBuf>) -> Self {
        Self {
            exp_dir: exp_dir.into(),
            max_steps: 500_000,
            image_interval: 100,
            board_interval: 50,
            val_interval: 1000,
            save_interval: None,
            max_val_batches: None,
            display_count: 2,
        }
    }

    fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("image_interval", self.image_interval),
            ("board_interval", self.board_interval),
            ("val_interval", self.val_interval),
            ("save_interval", self.save_interval.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(invalid_input(format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

/// What a run reports while it goes, for progress bars and logs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A training step finished: its last iteration's losses and its wall time.
    Step {
        /// The step.
        step: u64,
        /// The losses of its last refinement iteration (what the original logs).
        losses: &'a LossDict,
        /// Seconds the step took (loading excluded).
        seconds: f64,
    },
    /// A validation pass finished; `None` for the step-0 quick check, which reports nothing.
    Validation {
        /// The step it followed.
        step: u64,
        /// The mean of the batches' last-iteration losses.
        losses: Option<&'a LossDict>,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// The step.
        step: u64,
        /// The model checkpoint.
        path: &'a Path,
        /// Whether it is the new best model.
        best: bool,
    },
}

/// Drives a [`Trainer`] over a training loader (and a test loader for validation), writing the
/// experiment folder described in the [module docs](self).
pub struct Coach<B: AutodiffBackend, D: Dataset> {
    trainer: Trainer<B>,
    train: DataLoader<D>,
    test: Option<DataLoader<D>>,
    config: CoachConfig,
    device: B::Device,
}

impl<B: AutodiffBackend, D: Dataset> Coach<B, D> {
    /// A run of `trainer` (fresh, or from [`Trainer::resume`]: the run then continues at its
    /// `global_step`) over `train`, validating on `test` if given. Creates the experiment
    /// folders.
    pub fn new(
        trainer: Trainer<B>,
        train: DataLoader<D>,
        test: Option<DataLoader<D>>,
        config: CoachConfig,
        device: B::Device,
    ) -> Result<Self> {
        config.validate()?;
        for dir in ["checkpoints", "logs/images/train", "logs/images/test"] {
            create_dir(&config.exp_dir.join(dir))?;
        }
        Ok(Self {
            trainer,
            train,
            test,
            config,
            device,
        })
    }

    /// The trainer (its network, step count, best validation loss).
    pub fn trainer(&self) -> &Trainer<B> {
        &self.trainer
    }

    /// The run's settings.
    pub fn config(&self) -> &CoachConfig {
        &self.config
    }

    /// Where the model checkpoint of `step` goes (`best_model` for the best one).
    pub fn checkpoint_path(&self, step: Option<u64>) -> PathBuf {
        let name = match step {
            Some(step) => format!("iteration_{step}.safetensors"),
            None => "best_model.safetensors".to_string(),
        };
        self.config.exp_dir.join("checkpoints").join(name)
    }

    /// Where the state to resume from is kept.
    pub fn resume_path(&self) -> PathBuf {
        self.config.exp_dir.join("checkpoints").join("resume.safetensors")
    }

    /// Trains from the trainer's `global_step` through `max_steps`, calling `on_event` as it
    /// goes. Returns at once if the run is complete already.
    pub fn run(&mut self, mut on_event: impl FnMut(Event<'_>)) -> Result<()> {
        let max_steps = self.config.max_steps;
        let save_interval = self.config.save_interval.unwrap_or(max_steps.max(1));
        let start = self.trainer.global_step;
        for step in start..=max_steps {
            let batch = self.train.batch(self.train.position(step))?;
            let data = step_batch::<B>(&batch, &self.device);
            let started = Instant::now();
            let output = self.trainer.train_step(data.clone())?;
            let seconds = started.elapsed().as_secs_f64();
            let losses = output.last_losses().clone();

            if step % self.config.image_interval == 0 || (step < 1000 && step % 25 == 0) {
                let path = self.config.exp_dir.join(format!("logs/images/train/{step:04}.jpg"));
                self.write_grid(&data, &output, &path)?;
            }
            if step % self.config.board_interval == 0 {
                self.log_metrics("train", step, &losses)?;
            }
            on_event(Event::Step {
                step,
                losses: &losses,
                seconds,
            });

            let mut validation = None;
            if step % self.config.val_interval == 0 || step == max_steps {
                validation = self.validate(step)?;
                on_event(Event::Validation {
                    step,
                    losses: validation.as_ref(),
                });
                if let Some(val) = &validation {
                    if self.trainer.best_val_loss.is_none_or(|best| val.loss < best) {
                        self.trainer.best_val_loss = Some(val.loss);
                        let path = self.checkpoint(step, val, true)?;
                        on_event(Event::Checkpoint {
                            step,
                            path: &path,
                            best: true,
                        });
                    }
                }
            }
            if step > 0 && (step % save_interval == 0 || step == max_steps) {
                let path = self.checkpoint(step, validation.as_ref().unwrap_or(&losses), false)?;
                on_event(Event::Checkpoint {
                    step,
                    path: &path,
                    best: false,
                });
            }
        }
        Ok(())
    }

    /// One validation pass after `step` (none without a test loader): the mean of every batch's
    /// last-iteration losses, with an image grid per batch. At step 0 only the first five
    /// batches run and nothing is reported, as in the original.
    pub fn validate(&mut self, step: u64) -> Result<Option<LossDict>> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let mut all = Vec::new();
        for (index, batch) in test.epoch(0).enumerate() {
            if self.config.max_val_batches.is_some_and(|max| index > max) {
                break;
            }
            let data = step_batch::<B>(&batch?, &self.device);
            let output = self.trainer.validate(&data)?;
            all.push(output.last_losses().clone());
            let path = self
                .config
                .exp_dir
                .join(format!("logs/images/test/{index:04}_{step:04}.jpg"));
            self.write_grid(&data, &output, &path)?;
            if step == 0 && index >= 4 {
                return Ok(None);
            }
        }
        if all.is_empty() {
            return Ok(None);
        }
        let mean = LossDict::mean(&all);
        self.log_metrics("test", step, &mean)?;
        Ok(Some(mean))
    }

    /// Writes the model checkpoint of `step` (or the best one), the resume state and the
    /// `timestamp.txt` entry; returns the model checkpoint's path.
    fn checkpoint(&self, step: u64, losses: &LossDict, best: bool) -> Result<PathBuf> {
        let path = self.checkpoint_path((!best).then_some(step));
        self.trainer.save_model(&path)?;
        self.trainer.save_state(self.resume_path())?;
        let entry = if best {
            format!(
                "**Best**: Step - {step}, Loss - {:.3} \n{}\n",
                losses.loss,
                loss_text(losses)
            )
        } else {
            format!("Step - {step}, \n{}\n", loss_text(losses))
        };
        append(&self.config.exp_dir.join("checkpoints/timestamp.txt"), &entry)?;
        Ok(path)
    }

    /// Appends `{"split", "step", terms...}` to `logs/metrics.jsonl`.
    fn log_metrics(&self, split: &str, step: u64, losses: &LossDict) -> Result<()> {
        let mut line = serde_json::Map::new();
        line.insert("split".into(), split.into());
        line.insert("step".into(), step.into());
        for (name, value) in losses.entries() {
            line.insert(name.into(), value.into());
        }
        append(
            &self.config.exp_dir.join("logs/metrics.jsonl"),
            &format!("{}\n", serde_json::Value::Object(line)),
        )
    }

    /// The original's training figure without its captions: one row per displayed sample,
    /// input | W inversion | target | the iterations' outputs, last first.
    fn write_grid(&self, data: &StepBatch<B>, output: &StepOutput<B::InnerBackend>, path: &Path) -> Result<()> {
        let count = self.config.display_count.min(data.x.dims()[0]);
        if count == 0 {
            return Ok(());
        }
        let first = |t: Tensor<B::InnerBackend, 4>| tensor_to_images(t.narrow(0, 0, count));
        let inputs = first(data.x.clone().inner())?;
        let targets = first(data.y.clone().inner())?;
        let w_inversions = first(output.w_inversion.clone())?;
        let outputs = output
            .images
            .iter()
            .rev()
            .map(|images| first(images.clone()))
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<Vec<&RgbImage>> = (0..count)
            .map(|i| {
                let mut row = vec![&inputs[i], &w_inversions[i], &targets[i]];
                row.extend(outputs.iter().map(|step| &step[i]));
                row
            })
            .collect();
        save_image(&grid(&rows), path)
    }
}

/// A loader batch as the trainer takes it: pre-extracted data (latents present) trains on its
/// targets with the stored W inversion and codes; image data feeds its sources to the W
/// encoder and learns to reproduce its targets.
fn step_batch<B: Backend>(batch: &Batch, device: &B::Device) -> StepBatch<B> {
    let tensors = batch.to_tensors::<B>(device);
    match tensors.latents {
        Some(codes) => StepBatch {
            x: tensors.targets.clone(),
            y: tensors.targets,
            y_hat: Some(tensors.sources),
            codes: Some(codes),
        },
        None => StepBatch {
            x: tensors.sources,
            y: tensors.targets,
            y_hat: None,
            codes: None,
        },
    }
}

/// Rows of images side by side, each cell as large as the largest image (smaller ones sit at
/// the cell's top left on black).
fn grid(rows: &[Vec<&RgbImage>]) -> RgbImage {
    let cell_w = rows.iter().flatten().map(|im| im.width()).max().unwrap_or(1);
    let cell_h = rows.iter().flatten().map(|im| im.height()).max().unwrap_or(1);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let mut out = RgbImage::new(cell_w * columns, cell_h * rows.len() as u32);
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().enumerate() {
            image::imageops::replace(
                &mut out,
                *image,
                i64::from(c as u32 * cell_w),
                i64::from(r as u32 * cell_h),
            );
        }
    }
    out
}

/// The losses as the original prints a loss dictionary.
fn loss_text(losses: &LossDict) -> String {
    let terms: Vec<String> = losses
        .entries()
        .into_iter()
        .map(|(name, value)| format!("'{name}': {value}"))
        .collect();
    format!("{{{}}}", terms.join(", "))
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| crate::error::invalid_file(dir, format!("cannot create the folder: {e}")))
}

fn append(path: &Path, text: &str) -> Result<()> {
    let io = |e: std::io::Error| crate::error::invalid_file(path, format!("cannot write: {e}"));
    let mut file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}
