//! The training engine: batch, stochastic and mini-batch gradient descent over a [`Model`].
//!
//! Following argmin, the loop lives apart from the problem: a [`Trainer`] owns the optimizer, an
//! optional learning-rate schedule and the [`TrainConfig`]; [`Trainer::fit`] drives any [`Model`]
//! over [`Rows`] and returns a [`TrainReport`] whose `history` ([`EpochRecord`]s) records, per epoch, the training
//! and validation metrics, the learning rate, the mean gradient norm and the time. Observers see
//! every step and epoch (the command line hangs its progress bars there).
//!
//! Training stops at `epochs`, on convergence (the change of the training loss between epochs
//! falls below `tol`), on early stopping (the validation metric has not improved for `patience`
//! epochs; the best parameters are restored) or on divergence: a non-finite loss or one far above
//! its starting value stops training with [`TrainError::Diverged`], which says when, what and what
//! to try, and leaves the parameters as they were before the step that went wrong.
//!
//! Each epoch's order of rows comes from `(seed, epoch)` alone, so a run resumed from a checkpoint
//! gives the same parameters, bit for bit, as an uninterrupted one.

pub mod metrics;
pub mod stream;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::ConfigError;
use crate::memory::{self, MemoryError};
use crate::model::{check_rows, evaluate_checked, EpochPass, Model, Rows, RowsError};
use crate::optim::{Optimizer, OptimizerState, SparseGrad, SparseRows};
use crate::parallel::{CHUNK, PARALLEL_THRESHOLD};
use crate::schedule::{LrSchedule, PlateauState};
use crate::transform::{all_finite, clip_grad_value, clip_to_norm, sum_of_squares, sum_of_squares_within};
pub use metrics::{Metrics, Task};

/// How many rows each update sees, named as in the textbooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchMode {
    /// Batch gradient descent: every update uses the whole training set.
    Full,
    /// Stochastic gradient descent: one example per update.
    Stochastic,
    /// Mini-batch gradient descent with batches of this many rows (the last may be smaller).
    MiniBatch(usize),
}

impl BatchMode {
    /// The batch size for `rows` training rows.
    pub fn size(self, rows: usize) -> usize {
        match self {
            BatchMode::Full => rows.max(1),
            BatchMode::Stochastic => 1,
            BatchMode::MiniBatch(n) => n,
        }
    }
}

/// When a step-indexed schedule advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleUnit {
    /// Once per epoch (PyTorch's usual `scheduler.step()` after each epoch).
    Epoch,
    /// After every update (one-cycle, cyclic and warmup schedules are usually stepped so).
    Step,
}

/// Early stopping on a validation metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The metric watched (`loss`, `accuracy`, `rmse`, ...); `None` takes the task's primary metric.
    pub metric: Option<String>,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
}

/// Checkpoints written during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Write one every this many epochs.
    pub every: usize,
    /// Where (replaced atomically each time).
    pub path: PathBuf,
}

/// Everything about a training run except the model, the data and the optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum number of epochs (default 20).
    pub epochs: usize,
    /// Batch mode (default mini-batches of 32).
    pub batch: BatchMode,
    /// Seed of the per-epoch shuffles (default 0).
    pub seed: u64,
    /// Reshuffle the rows every epoch (default true).
    pub shuffle: bool,
    /// Stop when the training loss changes by less than `tol` between epochs (default none).
    pub tol: Option<f64>,
    /// Early stopping on the validation metric (default none).
    pub early_stopping: Option<EarlyStopping>,
    /// Clip the global gradient norm to this value (default none).
    pub clip_norm: Option<f64>,
    /// Clip every gradient element to `[-v, v]` (default none).
    pub clip_value: Option<f64>,
    /// Sum gradients over this many micro-batches before each update (default 1).
    pub accumulate: usize,
    /// Skip (and count) updates whose gradient holds NaN or infinity instead of failing (default false).
    pub skip_nonfinite: bool,
    /// A batch loss above `divergence_factor ×` the starting loss counts as divergence (default 1e4).
    pub divergence_factor: f64,
    /// When a step-indexed schedule advances (default per epoch).
    pub schedule_unit: ScheduleUnit,
    /// Epochs a layer's gradient must look vanishing or exploding before a warning (default 3).
    pub diagnostic_patience: usize,
    /// Measure the training metrics with a full pass over the training rows after each epoch
    /// (default true). When false, the epoch's training record holds only `loss`: the mean of the
    /// epoch's mini-batch losses, each taken before its update (as Keras reports it), which saves a
    /// forward pass over the training set per epoch. The starting loss (the scale against which a loss counts
    /// as diverged) is then the first mini-batch's, taken before its update, rather than a pass
    /// over the training rows before training.
    pub evaluate_train: bool,
    /// Checkpoints (default none).
    pub checkpoint: Option<CheckpointConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch: BatchMode::MiniBatch(32),
            seed: 0,
            shuffle: true,
            tol: None,
            early_stopping: None,
            clip_norm: None,
            clip_value: None,
            accumulate: 1,
            skip_nonfinite: false,
            divergence_factor: 1e4,
            schedule_unit: ScheduleUnit::Epoch,
            diagnostic_patience: 3,
            evaluate_train: true,
            checkpoint: None,
        }
    }
}

impl TrainConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.epochs == 0 {
            return Err(ConfigError::new("epochs", 0, "at least 1"));
        }
        if self.batch == BatchMode::MiniBatch(0) {
            return Err(ConfigError::new("batch_size", 0, "at least 1, `full` or `1`"));
        }
        if let Some(tol) = self.tol {
            crate::error::non_negative("tol", tol)?;
        }
        if let Some(c) = self.clip_norm {
            crate::error::positive("clip_norm", c)?;
        }
        if let Some(c) = self.clip_value {
            crate::error::positive("clip_value", c)?;
        }
        if self.accumulate == 0 {
            return Err(ConfigError::new("accumulate", 0, "at least 1"));
        }
        if self.divergence_factor.is_nan() || self.divergence_factor <= 1.0 {
            return Err(ConfigError::new("divergence_factor", self.divergence_factor, "a number > 1"));
        }
        if let Some(es) = &self.early_stopping {
            if es.patience == 0 {
                return Err(ConfigError::new("early_stopping.patience", 0, "at least 1"));
            }
        }
        if let Some(cp) = &self.checkpoint {
            if cp.every == 0 {
                return Err(ConfigError::new("checkpoint_every", 0, "at least 1"));
            }
        }
        Ok(())
    }
}

/// One epoch of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Metrics on the training rows at the end of the epoch.
    pub train: Metrics,
    /// Metrics on the validation rows at the end of the epoch (empty without validation).
    pub validation: Metrics,
    /// Learning rate used during the epoch (at its last step).
    pub lr: f64,
    /// Mean global gradient norm over the epoch's updates (before clipping).
    pub grad_norm: f64,
    /// Wall-clock seconds since training started.
    pub seconds: f64,
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// All epochs ran.
    MaxEpochs,
    /// The training loss changed by less than `tol`.
    Converged,
    /// The validation metric stopped improving; the best parameters were restored.
    EarlyStopped,
    /// An observer asked to stop.
    Interrupted,
}

/// A diagnostic raised while training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// Epoch at which it was raised.
    pub epoch: usize,
    /// What was seen, naming the layer.
    pub message: String,
}

/// The outcome of [`Trainer::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// One record per epoch run.
    pub history: Vec<EpochRecord>,
    /// Why training ended.
    pub termination: Termination,
    /// Updates skipped because their gradient was not finite.
    pub skipped_updates: u64,
    /// Vanishing or exploding gradient warnings.
    pub warnings: Vec<Warning>,
    /// Epoch whose parameters were kept (the best one under early stopping, else the last).
    pub best_epoch: usize,
}

/// Why training failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrainError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The loss became non-finite or exploded.
    #[error(
        "training diverged at epoch {epoch}, step {step}: the loss went from {loss_before} to {loss_after}. {hint} \
         The parameters are those from before the step that diverged."
    )]
    Diverged {
        /// Epoch (from 1).
        epoch: usize,
        /// Update within the run (from 1).
        step: u64,
        /// The last good batch loss (the starting loss when the first step diverged).
        loss_before: f64,
        /// The offending loss.
        loss_after: f64,
        /// What to try.
        hint: String,
    },
    /// The data cannot be trained on.
    #[error("{0}")]
    Data(String),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Training the model on the data would take more memory than the machine has.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl From<RowsError> for TrainError {
    fn from(e: RowsError) -> Self {
        TrainError::Data(e.to_string())
    }
}

/// What an observer sees after each update.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// Epoch (from 1).
    pub epoch: usize,
    /// Update count in the run (from 1).
    pub step: u64,
    /// Updates per epoch.
    pub steps_per_epoch: u64,
    /// The batch loss before the update.
    pub loss: f64,
    /// Learning rate of the update.
    pub lr: f64,
}

/// Called during training; return `false` from a method to stop after the current step or epoch.
///
/// Observers are `Send` because the training loop runs on one of rayon's threads (see
/// [`Trainer::fit_from`]).
pub trait Observer: Send {
    /// After every update.
    fn on_step(&mut self, _info: &StepInfo) -> bool {
        true
    }
    /// After every epoch.
    fn on_epoch(&mut self, _record: &EpochRecord) -> bool {
        true
    }
    /// When a diagnostic warning is raised.
    fn on_warning(&mut self, _warning: &Warning) {}
}

/// Everything needed to resume training exactly where a checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format marker.
    pub format: String,
    /// Epochs completed.
    pub epoch: usize,
    /// Updates completed.
    pub step: u64,
    /// Parameters after `epoch` epochs.
    pub params: Vec<f32>,
    /// Optimizer state.
    pub optimizer: OptimizerState,
    /// Reduce-on-plateau state, when used.
    pub plateau: Option<PlateauState>,
    /// The history so far.
    pub history: Vec<EpochRecord>,
    /// Best parameters and their score for early stopping.
    pub best: Option<(usize, f64, Vec<f32>)>,
    /// Epochs without improvement.
    pub bad_epochs: usize,
    /// Skipped updates so far.
    pub skipped_updates: u64,
    /// Starting loss (the divergence reference).
    pub initial_loss: f64,
    /// The model's running statistics ([`Model::buffers`]) after `epoch` epochs.
    #[serde(default)]
    pub buffers: Vec<f32>,
    /// The running statistics of the best epoch, under early stopping.
    #[serde(default)]
    pub best_buffers: Vec<f32>,
    /// What makes the run that wrote it (see [`Trainer::with_fingerprint`]): named values such
    /// as `lr`, `seed` or `data hash`. Empty in checkpoints written without one (and in those of
    /// older versions).
    #[serde(default)]
    pub fingerprint: BTreeMap<String, String>,
    /// The file it was read from ([`Checkpoint::load`]), for messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// What differs between the fingerprint of a checkpoint's run (`written`) and that of the run
/// resuming it (`now`), one `name written ≠ now` per field, in name order. Only fields named on
/// both sides are compared (one that only one side has, say from another version, tells nothing).
/// Empty when they agree.
pub fn fingerprint_differences(written: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    written
        .iter()
        .filter_map(|(name, a)| now.get(name).filter(|b| *b != a).map(|b| format!("{name} {a} ≠ {b}")))
        .collect()
}

const CHECKPOINT_FORMAT: &str = "gradus-checkpoint-1";

impl Checkpoint {
    /// Reads a checkpoint written by [`Trainer::fit`].
    pub fn load(path: &std::path::Path) -> Result<Self, TrainError> {
        let err = |message: String| TrainError::Checkpoint { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut cp: Checkpoint =
            serde_json::from_str(&text).map_err(|e| err(format!("not a gradus checkpoint ({e})")))?;
        if cp.format != CHECKPOINT_FORMAT {
            return Err(err(format!("format `{}`, expected `{CHECKPOINT_FORMAT}`", cp.format)));
        }
        cp.source = Some(path.to_path_buf());
        Ok(cp)
    }

    fn save(&self, path: &std::path::Path) -> Result<(), TrainError> {
        let bytes = serde_json::to_vec(self).expect("checkpoints serialize");
        crate::io::write_atomic(path, &bytes)
            .map_err(|e| TrainError::Checkpoint { path: path.display().to_string(), message: e.to_string() })
    }
}

impl Checkpoint {
    /// Checks, before anything of it is used, that the checkpoint fits `model`: its parameters
    /// (the model's count, finite), the optimizer's buffers (empty or of the parameters' length,
    /// finite) and learning rate, the best parameters kept for early stopping, the model's running
    /// statistics, an epoch count that can go on, and a finite starting loss. The first mismatch
    /// is described.
    pub fn validate(&self, model: &dyn Model) -> Result<(), String> {
        let n = model.layout().len();
        let finite = |what: &str, values: &[f32]| match values.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(format!("{what}: value {i} is {}, expected a finite number", values[i])),
            None => Ok(()),
        };
        if self.params.len() != n {
            return Err(format!("holds {} parameters, the model has {n}", self.params.len()));
        }
        finite("the parameters", &self.params)?;
        for (name, buffer) in &self.optimizer.buffers {
            if !buffer.is_empty() && buffer.len() != n {
                return Err(format!(
                    "optimizer buffer `{name}` holds {} values, the model has {n} parameters",
                    buffer.len()
                ));
            }
            finite(&format!("optimizer buffer `{name}`"), buffer)?;
        }
        if !(self.optimizer.lr.is_finite() && self.optimizer.lr >= 0.0) {
            return Err(format!(
                "the optimizer's learning rate is {}, expected a finite number >= 0",
                self.optimizer.lr
            ));
        }
        if let Some((name, value)) = self.optimizer.scalars.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("optimizer value `{name}` is {value}, expected a finite number"));
        }
        if let Some((epoch, _, best)) = &self.best {
            if best.len() != n {
                return Err(format!("the best parameters hold {} values, the model has {n}", best.len()));
            }
            finite("the best parameters", best)?;
            if *epoch > self.epoch {
                return Err(format!("the best epoch {epoch} comes after the checkpoint's epoch {}", self.epoch));
            }
        }
        let statistics = model.buffers().len();
        for (what, values) in [("running statistics", &self.buffers), ("best running statistics", &self.best_buffers)] {
            if !values.is_empty() && values.len() != statistics {
                return Err(format!("{} {what} for a model that keeps {statistics}", values.len()));
            }
            finite(what, values)?;
        }
        if self.epoch == usize::MAX || self.history.len() > self.epoch {
            return Err(format!("{} epochs done with {} epoch records", self.epoch, self.history.len()));
        }
        if !self.initial_loss.is_finite() {
            return Err(format!("the starting loss is {}, expected a finite number", self.initial_loss));
        }
        Ok(())
    }
}

/// Owns the optimizer, learning-rate control and configuration, and runs the training loop.
pub struct Trainer {
    config: TrainConfig,
    optimizer: Box<dyn Optimizer>,
    lr_control: Option<LrSchedule>,
    fingerprint: BTreeMap<String, String>,
}

/// The order of the training rows in `epoch` (from 1): a permutation drawn from `(seed, epoch)`.
pub fn epoch_order(rows: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch as u64);
        order.shuffle(&mut rng);
    }
    order
}

impl Trainer {
    /// A trainer with a validated configuration.
    pub fn new(config: TrainConfig, optimizer: Box<dyn Optimizer>) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, optimizer, lr_control: None, fingerprint: BTreeMap::new() })
    }

    /// Names the run: `fingerprint` (what makes its result: the data's hash, the model, the
    /// optimizer and schedule with their options, the seed, ...) is written into every checkpoint,
    /// and resuming a checkpoint whose fingerprint differs fails, listing what differs.
    pub fn with_fingerprint(mut self, fingerprint: BTreeMap<String, String>) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    /// Adds a learning-rate schedule (a function of the step, advanced per [`ScheduleUnit`]) or a
    /// reduce-on-plateau controller (fed the validation loss, or the training loss without
    /// validation, after each epoch).
    pub fn with_lr_control(mut self, control: LrSchedule) -> Self {
        self.lr_control = Some(control);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The optimizer (its state after training).
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// Bytes a run of [`Trainer::fit`] on `rows` training rows of `model` takes, counted with
    /// checked arithmetic (`None` when the count overflows): the parameters, the gradient, the
    /// copy kept to undo a diverged step, the optimizer's state, the accumulated gradient and the
    /// best parameters when those are on, the model's working memory for a batch
    /// ([`Model::working_memory`]) and the outputs of an evaluation pass.
    pub fn memory_needed(&self, model: &dyn Model, rows: usize) -> Option<u64> {
        let n = model.layout().len();
        let copies = 3
            + self.optimizer.state_buffers()
            + usize::from(self.config.accumulate > 1)
            + usize::from(self.config.early_stopping.is_some());
        let batch = self.config.batch.size(rows).min(rows.max(1));
        memory::total([
            memory::bytes_of(n.checked_mul(copies)?, memory::F32_BYTES),
            memory::bytes_of(model.working_memory(batch)?, memory::F32_BYTES),
            memory::bytes_of(model.evaluation_memory(rows)?, memory::F32_BYTES),
        ])
    }

    /// Checks that a run of [`Trainer::fit`] on `rows` training rows of `model` fits in the memory
    /// available ([`Trainer::memory_needed`], [`memory::check`]). [`Trainer::fit`] checks it before
    /// it allocates anything; call it yourself before allocating the parameters of a model whose
    /// size came from a file or a flag.
    pub fn check_memory(&self, model: &dyn Model, rows: usize) -> Result<(), MemoryError> {
        self.check_memory_beyond(model, rows, 0)
    }

    /// [`Trainer::check_memory`] when `allocated` of the bytes are already taken (the parameters,
    /// once the caller holds them).
    pub(crate) fn check_memory_beyond(
        &self,
        model: &dyn Model,
        rows: usize,
        allocated: u64,
    ) -> Result<(), MemoryError> {
        let needed = self.memory_needed(model, rows);
        let what = format!("the model ({} parameters)", model.layout().len());
        let purpose = "its parameters, optimizer state, gradients and activations";
        match memory::check(&what, purpose, needed.map(|n| n.saturating_sub(allocated))) {
            // Said in full: the amount the run needs, not what is left to allocate.
            Err(e) => Err(MemoryError { needed, ..e }),
            Ok(()) => Ok(()),
        }
    }

    /// Trains `model` from `params` on `train`, watching `validation` when given.
    pub fn fit(
        &mut self,
        model: &dyn Model,
        params: &mut [f32],
        train: Rows<'_>,
        validation: Option<Rows<'_>>,
        observers: &mut [&mut dyn Observer],
    ) -> Result<TrainReport, TrainError> {
        self.fit_from(model, params, train, validation, observers, None)
    }

    /// Like [`Trainer::fit`], continuing from `resume` when given (a checkpoint of the same run: same
    /// model, data, optimizer and configuration), giving the same result bit for bit as a run that
    /// was never interrupted.
    ///
    /// The loop runs on one of rayon's threads (the current one when it is already in a pool). The
    /// parallel passes of every step then start from a worker, which pushes work onto its own
    /// queue, instead of waking the pool from outside and sleeping until it is done: for small
    /// batches that round trip costs more than the step (a third of the time of a 64-row MLP step).
    pub fn fit_from(
        &mut self,
        model: &dyn Model,
        params: &mut [f32],
        train: Rows<'_>,
        validation: Option<Rows<'_>>,
        observers: &mut [&mut dyn Observer],
        resume: Option<Checkpoint>,
    ) -> Result<TrainReport, TrainError> {
        rayon::scope(|_| self.fit_in_pool(model, params, train, validation, observers, resume))
    }

    fn fit_in_pool(
        &mut self,
        model: &dyn Model,
        params: &mut [f32],
        train: Rows<'_>,
        validation: Option<Rows<'_>>,
        observers: &mut [&mut dyn Observer],
        resume: Option<Checkpoint>,
    ) -> Result<TrainReport, TrainError> {
        if train.rows == 0 {
            return Err(TrainError::Data("there are no training rows".into()));
        }
        // Everything that comes from data is checked once, here: past this point the passes
        // cannot meet a buffer of the wrong length or a target the loss cannot take.
        check_rows(model, params, train, "the training rows")?;
        if let Some(validation) = validation {
            check_rows(model, params, validation, "the validation rows")?;
        }
        self.check_memory_beyond(model, train.rows, memory::bytes_of(params.len(), memory::F32_BYTES).unwrap_or(0))?;
        let config = self.config.clone();
        let start = Instant::now();
        let batch_size = config.batch.size(train.rows).min(train.rows);
        let batches_per_epoch = train.rows.div_ceil(batch_size);
        // Updates per epoch: micro-batches are grouped by `accumulate`, the last group may be short.
        let steps_per_epoch = batches_per_epoch.div_ceil(config.accumulate) as u64;
        let (watch_metric, higher_is_better) = match config.early_stopping.as_ref().and_then(|e| e.metric.clone()) {
            Some(m) => {
                let higher = m == "accuracy" || m == "r2";
                (m, higher)
            }
            None => {
                let (m, h) = model.task().primary_metric();
                (m.to_string(), h)
            }
        };
        if config.early_stopping.is_some() {
            let produced = model.task().metric_names();
            if !produced.contains(&watch_metric.as_str()) {
                return Err(TrainError::Config(ConfigError::new(
                    "early_stopping.metric",
                    &watch_metric,
                    "a metric the model's task reports (loss, accuracy for classification; rmse, mae, r2 for \
                     regression)",
                )));
            }
        }
        let diagnostics = model.diagnostic_segments();

        let mut history = Vec::new();
        let mut best: Option<(usize, f64, Vec<f32>)> = None;
        // The running statistics of the best epoch (empty for models without them).
        let mut best_buffers: Vec<f32> = Vec::new();
        let mut bad_epochs = 0usize;
        let mut skipped = 0u64;
        let mut step: u64 = 0;
        let mut first_epoch = 1;
        // The loss before training, the scale of divergence: from the checkpoint, or measured at
        // the first epoch (see there).
        let mut initial_loss = f64::NAN;
        let mut initial_measured = false;
        let mut initial_from_first_batch = false;
        if let Some(cp) = resume {
            let source = cp.source.as_ref().map_or("(resume)".to_string(), |p| p.display().to_string());
            let err = |message: String| TrainError::Checkpoint { path: source.clone(), message };
            cp.validate(model).map_err(err)?;
            if !cp.fingerprint.is_empty() && !self.fingerprint.is_empty() {
                let differences = fingerprint_differences(&cp.fingerprint, &self.fingerprint);
                if !differences.is_empty() {
                    return Err(err(format!("was written by another run: {}", differences.join("; "))));
                }
            }
            if cp.epoch >= config.epochs {
                return Err(err(format!(
                    "has already trained {} epochs: expected more than {} epochs to continue it, {} asked",
                    cp.epoch, cp.epoch, config.epochs
                )));
            }
            self.optimizer.load_state(&cp.optimizer).map_err(|e| err(e.to_string()))?;
            if let (Some(LrSchedule::Plateau(p)), Some(saved)) = (self.lr_control.as_mut(), cp.plateau.as_ref()) {
                p.load_state(saved).map_err(|e| err(e.to_string()))?;
            }
            model.set_buffers(&cp.buffers).map_err(err)?;
            params.copy_from_slice(&cp.params);
            history = cp.history;
            best = cp.best;
            best_buffers = cp.best_buffers;
            bad_epochs = cp.bad_epochs;
            skipped = cp.skipped_updates;
            step = cp.step;
            // `validate` bounds the epoch, so that this cannot overflow.
            first_epoch = cp.epoch + 1;
            initial_loss = cp.initial_loss;
            initial_measured = true;
        }

        // The sparse path (see `SparsePath`): taken when the model has row-sparse segments and the
        // optimizer's sparse step leaves untouched rows alone, so that nothing of the update
        // needs to read or write them; gradient accumulation sums whole buffers, and keeps the
        // dense path.
        let segments = model.sparse_segments();
        let mut sparse = (!segments.is_empty() && config.accumulate == 1 && self.optimizer.updates_sparse())
            .then(|| SparsePath::new(params.len(), segments));
        let mut grad = crate::buffer::filled(params.len(), 0.0);
        let mut accumulated = vec![0.0f32; if config.accumulate > 1 { params.len() } else { 0 }];
        // Filled before the first update (lazily zeroed: no pages touched until then).
        let mut last_good = vec![0.0f32; params.len()];
        // Whether the model trains by a pass of its own: known after the first epoch.
        let mut own_passes: Option<bool> = None;
        let mut last_good_loss = initial_loss;
        // The running statistics before the current step, restored with `last_good` on divergence.
        let has_buffers = !model.buffers().is_empty();
        let mut good_buffers = model.buffers();
        // The parameters before the last update: on the sparse path, from its record of the rows
        // that update changed (once there was one), otherwise from the copy `last_good`.
        let restore = |params: &mut [f32], last_good: &[f32], sparse: &Option<SparsePath>, good_buffers: &[f32]| {
            match sparse {
                Some(path) if path.saved => path.undo(params),
                _ => params.copy_from_slice(last_good),
            }
            if has_buffers {
                // The same model gave these buffers: they fit.
                let _ = model.set_buffers(good_buffers);
            }
        };
        let mut norms = GradientNorms::new(params.len(), &diagnostics);
        let mut warnings = Vec::new();
        let mut vanishing_epochs = vec![0usize; diagnostics.len()];
        let mut exploding_epochs = vec![0usize; diagnostics.len()];
        let mut termination = Termination::MaxEpochs;

        'epochs: for epoch in first_epoch..=config.epochs {
            self.apply_schedule(epoch, step);
            let mut norm_sum = 0.0;
            let mut norm_count = 0u64;
            let mut layer_norm_sum = vec![0.0f64; diagnostics.len()];
            let mut micro = 0usize;
            let (mut batch_loss_sum, mut batch_rows) = (0.0f64, 0usize);
            // A model with a pass of its own (matrix factorization's per-rating SGD) trains the
            // whole epoch itself: one update per row, the loss measured before each. It keeps the
            // rollback point itself; before the first epoch tells whether it has a pass, the
            // engine keeps it.
            if own_passes.is_none() {
                copy_parallel(params, &mut last_good);
            }
            let own_pass = model.epoch_pass(EpochPass {
                params,
                before: &mut last_good,
                data: train,
                seed: config.seed,
                epoch,
                continues: own_passes == Some(true),
            });
            own_passes = Some(own_pass.is_some());
            if !initial_measured {
                // Measured over the training rows before any update; for a model that trains by a
                // pass of its own, taken from its first pass, which measures every row before
                // updating it (a pass of evaluation would cost as much as an epoch).
                // Without a pass of evaluation per epoch (`evaluate_train` off), none is spent on
                // the start either: the first mini-batch's loss, taken before its update, is the
                // reference (below).
                initial_measured = true;
                initial_from_first_batch = own_pass.is_none() && !config.evaluate_train;
                if !initial_from_first_batch {
                    initial_loss = match &own_pass {
                        Some(metrics) => metrics.get("loss").copied().unwrap_or(f64::NAN),
                        None => evaluate_checked(model, params, train)?.get("loss").copied().unwrap_or(f64::NAN),
                    };
                    if own_pass.is_none() && !initial_loss.is_finite() {
                        return Err(non_finite_start(initial_loss));
                    }
                    last_good_loss = initial_loss;
                }
            }
            if let Some(metrics) = &own_pass {
                let loss = metrics.get("loss").copied().unwrap_or(f64::NAN);
                let exploded = loss > config.divergence_factor * initial_loss.abs().max(1e-12);
                // A pass's loss is not finite when a parameter is not (`Model::epoch_pass`).
                if !loss.is_finite() || exploded {
                    restore(params, &last_good, &sparse, &good_buffers);
                    return Err(self.diverged(epoch, step + train.rows as u64, last_good_loss, loss));
                }
                step += train.rows as u64;
                batch_loss_sum = loss * train.rows as f64;
                batch_rows = train.rows;
                last_good_loss = loss;
                let info = StepInfo { epoch, step, steps_per_epoch: train.rows as u64, loss, lr: self.optimizer.lr() };
                let mut keep_going = true;
                for o in observers.iter_mut() {
                    keep_going &= o.on_step(&info);
                }
                if !keep_going {
                    termination = Termination::Interrupted;
                    break 'epochs;
                }
            }
            let order = if own_pass.is_some() {
                Vec::new()
            } else {
                epoch_order(train.rows, config.seed, epoch, config.shuffle)
            };
            for (batch_index, batch) in order.chunks(batch_size).enumerate() {
                // The full-batch gradient does not depend on the row order: no indices.
                let indices = (batch.len() != train.rows).then_some(batch);
                if has_buffers {
                    good_buffers = model.buffers();
                }
                let loss = match &mut sparse {
                    Some(path) => {
                        model.train_step_sparse(params, train, indices, config.seed, step, &mut grad, &mut path.touched)
                    }
                    None => model.train_step(params, train, indices, config.seed, step, &mut grad),
                };
                if initial_from_first_batch {
                    initial_from_first_batch = false;
                    if !loss.is_finite() {
                        return Err(non_finite_start(loss));
                    }
                    (initial_loss, last_good_loss) = (loss, loss);
                }
                let exploded = loss > config.divergence_factor * initial_loss.abs().max(1e-12);
                if !loss.is_finite() || exploded {
                    // `params` came out of update `step`, which is the one that diverged.
                    restore(params, &last_good, &sparse, &good_buffers);
                    return Err(self.diverged(epoch, step.max(1), last_good_loss, loss));
                }
                batch_loss_sum += loss * batch.len() as f64;
                batch_rows += batch.len();
                if config.accumulate > 1 {
                    for (a, g) in accumulated.iter_mut().zip(&grad) {
                        *a += g;
                    }
                    micro += 1;
                    // The epoch's last micro-batches make a (shorter) group of their own, so that
                    // nothing carries over into the next epoch (and a resumed run matches).
                    if micro < config.accumulate && batch_index + 1 < batches_per_epoch {
                        continue;
                    }
                    let scale = 1.0 / micro as f32;
                    for (g, a) in grad.iter_mut().zip(accumulated.iter_mut()) {
                        *g = *a * scale;
                        *a = 0.0;
                    }
                    micro = 0;
                }
                let norm = match &mut sparse {
                    Some(path) => {
                        path.collect_ranges();
                        norms.measure_within(&grad, &path.ranges)
                    }
                    None => norms.measure(&grad),
                };
                if !norm.is_finite() {
                    if config.skip_nonfinite {
                        skipped += 1;
                        continue;
                    }
                    // The loss at `params` was finite: they are the last good ones; the update
                    // that would have diverged is the next one.
                    return Err(self.diverged(epoch, step + 1, loss, f64::NAN));
                }
                for (sum, norm) in layer_norm_sum.iter_mut().zip(&norms.segments) {
                    *sum += norm;
                }
                let update = Update { epoch, steps_per_epoch, loss };
                let keep_going = match &mut sparse {
                    Some(path) => self.apply_sparse_update(params, &mut grad, norm, path, &mut step, update, observers),
                    None => self.apply_update(params, &mut grad, norm, &mut last_good, &mut step, update, observers),
                };
                norm_sum += norm;
                norm_count += 1;
                last_good_loss = loss;
                if !keep_going {
                    termination = Termination::Interrupted;
                    break 'epochs;
                }
            }
            if own_pass.is_none() && !all_finite(params) {
                restore(params, &last_good, &sparse, &good_buffers);
                return Err(self.diverged(epoch, step, last_good_loss, f64::NAN));
            }

            let train_metrics = if let (Some(metrics), false) = (&own_pass, config.evaluate_train) {
                metrics.clone()
            } else if config.evaluate_train {
                evaluate_checked(model, params, train)?
            } else {
                Metrics::from([("loss".to_string(), batch_loss_sum / batch_rows.max(1) as f64)])
            };
            let val_metrics = validation.map(|v| evaluate_checked(model, params, v)).transpose()?.unwrap_or_default();
            let train_loss = train_metrics.get("loss").copied().unwrap_or(f64::NAN);
            if !train_loss.is_finite() || train_loss > config.divergence_factor * initial_loss.abs().max(1e-12) {
                restore(params, &last_good, &sparse, &good_buffers);
                return Err(self.diverged(epoch, step, last_good_loss, train_loss));
            }
            let record = EpochRecord {
                epoch,
                lr: self.optimizer.lr(),
                grad_norm: if norm_count > 0 { norm_sum / norm_count as f64 } else { 0.0 },
                seconds: start.elapsed().as_secs_f64(),
                train: train_metrics,
                validation: val_metrics,
            };

            // Vanishing / exploding gradient diagnostics, per tracked layer.
            // The ratio of the layer's mean gradient norm over the epoch to its weight norm at the
            // end of the epoch (weights move slowly: one norm per epoch instead of one per step).
            for (k, (name, range)) in diagnostics.iter().enumerate() {
                if norm_count == 0 {
                    continue;
                }
                let ratio =
                    layer_norm_sum[k] / norm_count as f64 / (sum_of_squares(&params[range.clone()]).sqrt() + 1e-12);
                vanishing_epochs[k] = if ratio < 1e-5 { vanishing_epochs[k] + 1 } else { 0 };
                exploding_epochs[k] = if ratio > 1e2 { exploding_epochs[k] + 1 } else { 0 };
                let message = if vanishing_epochs[k] == config.diagnostic_patience {
                    Some(format!(
                        "vanishing gradients in `{name}`: its gradient norm has been below 1e-5 of its weight norm \
                         for {} epochs (now {ratio:.1e}); try relu activations, He initialization or fewer layers",
                        config.diagnostic_patience
                    ))
                } else if exploding_epochs[k] == config.diagnostic_patience {
                    Some(format!(
                        "exploding gradients in `{name}`: its gradient norm has been above 100x its weight norm \
                         for {} epochs (now {ratio:.1e}); try --clip-norm or a lower learning rate",
                        config.diagnostic_patience
                    ))
                } else {
                    None
                };
                if let Some(message) = message {
                    let warning = Warning { epoch, message };
                    for o in observers.iter_mut() {
                        o.on_warning(&warning);
                    }
                    warnings.push(warning);
                }
            }

            let mut keep_going = true;
            for o in observers.iter_mut() {
                keep_going &= o.on_epoch(&record);
            }
            let previous_loss = history.last().map(|r: &EpochRecord| r.train.get("loss").copied().unwrap_or(f64::NAN));
            let plateau_metric = record.validation.get("loss").or(record.train.get("loss")).copied();
            history.push(record);

            if let (Some(LrSchedule::Plateau(p)), Some(metric)) = (self.lr_control.as_mut(), plateau_metric) {
                let lr = p.observe(metric);
                self.optimizer.set_lr(lr);
            }

            // Early stopping on the validation metric.
            if let (Some(es), Some(v)) = (&config.early_stopping, validation) {
                let _ = v;
                let score = history.last().unwrap().validation.get(&watch_metric).copied().unwrap_or(f64::NAN);
                let improved = match &best {
                    None => true,
                    Some((_, b, _)) => {
                        if higher_is_better {
                            score > b + es.min_delta
                        } else {
                            score < b - es.min_delta
                        }
                    }
                };
                if improved {
                    best = Some((epoch, score, params.to_vec()));
                    best_buffers = model.buffers();
                    bad_epochs = 0;
                } else {
                    bad_epochs += 1;
                }
            }

            if let Some(cp) = &config.checkpoint {
                if epoch % cp.every == 0 {
                    Checkpoint {
                        format: CHECKPOINT_FORMAT.into(),
                        epoch,
                        step,
                        params: params.to_vec(),
                        optimizer: self.optimizer.state(),
                        plateau: match &self.lr_control {
                            Some(LrSchedule::Plateau(p)) => Some(p.state()),
                            _ => None,
                        },
                        history: history.clone(),
                        best: best.clone(),
                        bad_epochs,
                        skipped_updates: skipped,
                        initial_loss,
                        buffers: model.buffers(),
                        best_buffers: best_buffers.clone(),
                        fingerprint: self.fingerprint.clone(),
                        source: None,
                    }
                    .save(&cp.path)?;
                }
            }

            if !keep_going {
                termination = Termination::Interrupted;
                break;
            }
            if let Some(es) = &config.early_stopping {
                if validation.is_some() && bad_epochs >= es.patience {
                    termination = Termination::EarlyStopped;
                    break;
                }
            }
            if let (Some(tol), Some(prev)) = (config.tol, previous_loss) {
                if (prev - train_loss).abs() < tol {
                    termination = Termination::Converged;
                    break;
                }
            }
        }

        let mut best_epoch = history.last().map_or(0, |r| r.epoch);
        if let Some((epoch, _, best_params)) = &best {
            if termination == Termination::EarlyStopped || config.early_stopping.is_some() {
                params.copy_from_slice(best_params);
                if has_buffers {
                    let _ = model.set_buffers(&best_buffers);
                }
                best_epoch = *epoch;
            }
        }
        Ok(TrainReport { history, termination, skipped_updates: skipped, warnings, best_epoch })
    }

    /// One update, shared by in-memory and streaming training: clips `grad`, whose L2 norm is
    /// `norm`, keeps the parameters it is about to change in `last_good`, steps the optimizer,
    /// advances a per-step schedule and tells the observers. Returns whether every observer wants
    /// to go on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_update(
        &mut self,
        params: &mut [f32],
        grad: &mut [f32],
        norm: f64,
        last_good: &mut [f32],
        step: &mut u64,
        update: Update,
        observers: &mut [&mut dyn Observer],
    ) -> bool {
        if let Some(max) = self.config.clip_norm {
            clip_to_norm(grad, max, norm);
        }
        if let Some(v) = self.config.clip_value {
            clip_grad_value(grad, v as f32);
        }
        copy_parallel(params, last_good);
        self.optimizer.step(params, grad);
        self.after_update(step, update, observers)
    }

    /// [`Trainer::apply_update`] on the sparse path: clips, saves and updates only the dense
    /// ranges and the touched rows. The rollback point is the saved values of those ranges (see
    /// [`SparsePath::undo`]): `last_good` is not kept up to date.
    #[allow(clippy::too_many_arguments)]
    fn apply_sparse_update(
        &mut self,
        params: &mut [f32],
        grad: &mut [f32],
        norm: f64,
        path: &mut SparsePath,
        step: &mut u64,
        update: Update,
        observers: &mut [&mut dyn Observer],
    ) -> bool {
        for range in &path.ranges {
            if let Some(max) = self.config.clip_norm {
                clip_to_norm(&mut grad[range.clone()], max, norm);
            }
            if let Some(v) = self.config.clip_value {
                clip_grad_value(&mut grad[range.clone()], v as f32);
            }
        }
        path.save(params);
        let rows: Vec<SparseRows<'_>> = path
            .segments
            .iter()
            .zip(&path.touched)
            .map(|(segment, rows)| SparseRows { range: segment.range.clone(), row_len: segment.row_len, rows })
            .collect();
        self.optimizer.step_sparse(params, grad, &SparseGrad { dense: &path.dense, segments: &rows });
        self.after_update(step, update, observers)
    }

    /// What follows every update: the step count, a per-step schedule and the observers.
    fn after_update(&mut self, step: &mut u64, update: Update, observers: &mut [&mut dyn Observer]) -> bool {
        *step += 1;
        if self.config.schedule_unit == ScheduleUnit::Step {
            self.apply_schedule(update.epoch, *step);
        }
        let info = StepInfo {
            epoch: update.epoch,
            step: *step,
            steps_per_epoch: update.steps_per_epoch,
            loss: update.loss,
            lr: self.optimizer.lr(),
        };
        let mut keep_going = true;
        for o in observers.iter_mut() {
            keep_going &= o.on_step(&info);
        }
        keep_going
    }

    /// Sets the optimizer's learning rate from the schedule for `step` (or `epoch − 1` per epoch).
    fn apply_schedule(&mut self, epoch: usize, step: u64) {
        if let Some(LrSchedule::Function(s)) = &self.lr_control {
            let t = match self.config.schedule_unit {
                ScheduleUnit::Epoch => (epoch - 1) as u64,
                ScheduleUnit::Step => step,
            };
            self.optimizer.set_lr(s.lr(t));
        }
    }

    fn diverged(&self, epoch: usize, step: u64, loss_before: f64, loss_after: f64) -> TrainError {
        let lr = self.optimizer.lr();
        TrainError::Diverged {
            epoch,
            step,
            loss_before,
            loss_after,
            hint: format!(
                "The learning rate {lr} is probably too high for this problem: try {} (ten times lower), \
                 gradient clipping (clip_norm), or standardized features.",
                lr / 10.0
            ),
        }
    }
}

/// The error of a run whose starting parameters give a non-finite loss.
fn non_finite_start(loss: f64) -> TrainError {
    TrainError::Diverged {
        epoch: 0,
        step: 0,
        loss_before: loss,
        loss_after: loss,
        hint: "The starting parameters already give a non-finite loss; check the data for extreme values and \
               standardize the features."
            .into(),
    }
}

/// Where an update happens, for the observers of `Trainer::apply_update`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Update {
    pub(crate) epoch: usize,
    pub(crate) steps_per_epoch: u64,
    pub(crate) loss: f64,
}

/// `destination ← source`, on rayon's threads when long (a single thread does not saturate the
/// memory bandwidth).
fn copy_parallel(source: &[f32], destination: &mut [f32]) {
    if source.len() < PARALLEL_THRESHOLD {
        destination.copy_from_slice(source);
    } else {
        destination.par_chunks_mut(CHUNK).zip(source.par_chunks(CHUNK)).for_each(|(d, s)| d.copy_from_slice(s));
    }
}

/// Copies the `ranges` of `source` one after the other into `destination` (as long as they are
/// together), on rayon's threads when they are long.
fn gather(source: &[f32], ranges: &[Range<usize>], destination: &mut [f32]) {
    let total = destination.len();
    if total < PARALLEL_THRESHOLD || ranges.len() < 2 {
        let mut at = 0;
        for range in ranges {
            destination[at..at + range.len()].copy_from_slice(&source[range.clone()]);
            at += range.len();
        }
        return;
    }
    // Two halves of about the same length, each on its own task.
    let (mut left, mut mid) = (0, 0);
    while mid < ranges.len() - 1 && 2 * (left + ranges[mid].len()) <= total {
        left += ranges[mid].len();
        mid += 1;
    }
    let mid = mid.max(1);
    let left: usize = ranges[..mid].iter().map(|r| r.len()).sum();
    let (first, second) = destination.split_at_mut(left);
    rayon::join(|| gather(source, &ranges[..mid], first), || gather(source, &ranges[mid..], second));
}

/// The engine's sparse path, for models with row-sparse segments ([`Model::sparse_segments`]):
/// the gradient of those segments is zero outside the rows a batch touched, and every part of an
/// update (norms, clipping, the rollback record, the optimizer's step) reads and writes only the
/// dense segments and the touched rows (the other rows of the gradient buffer are stale, unread), so that a step costs in
/// proportion to the rows a batch sees rather than to the table. The results are the dense path's
/// bit for bit for the optimizers whose sparse step is their dense one restricted to the touched
/// rows (see [`Optimizer::updates_sparse`]).
struct SparsePath {
    segments: Vec<crate::model::SparseSegment>,
    /// The ranges outside the sparse segments.
    dense: Vec<Range<usize>>,
    /// The rows of each segment the current batch touched.
    touched: Vec<Vec<u32>>,
    /// The values of `saved_ranges` before the last update, one after the other.
    saved_values: Vec<f32>,
    /// The ranges the last update changed (the dense ranges and the rows it touched), sorted.
    saved_ranges: Vec<Range<usize>>,
    /// Whether an update has been saved (before the first, the parameters are the last good ones).
    saved: bool,
    /// The dense ranges and the touched rows, sorted: where the gradient may be non-zero.
    ranges: Vec<Range<usize>>,
}

impl SparsePath {
    fn new(len: usize, mut segments: Vec<crate::model::SparseSegment>) -> Self {
        segments.sort_by_key(|s| s.range.start);
        let mut dense = Vec::new();
        let mut at = 0;
        for segment in &segments {
            if segment.range.start > at {
                dense.push(at..segment.range.start);
            }
            at = segment.range.end;
        }
        if at < len {
            dense.push(at..len);
        }
        let n = segments.len();
        Self {
            segments,
            dense,
            touched: vec![Vec::new(); n],
            ranges: Vec::new(),
            saved_values: Vec::new(),
            saved_ranges: Vec::new(),
            saved: false,
        }
    }

    /// Fills `ranges` from `dense` and `touched`, in order.
    fn collect_ranges(&mut self) {
        self.ranges.clear();
        self.ranges.extend(self.dense.iter().cloned());
        for (segment, rows) in self.segments.iter().zip(&self.touched) {
            self.ranges.extend(rows.iter().map(|&row| {
                let start = segment.range.start + row as usize * segment.row_len;
                start..start + segment.row_len
            }));
        }
        self.ranges.sort_unstable_by_key(|r| r.start);
    }

    /// Keeps the values of `params` in [`SparsePath::ranges`], which the coming update is about
    /// to change: a compact undo record, so that the rollback point costs a copy of the rows a
    /// batch touched rather than a second table kept up to date.
    fn save(&mut self, params: &[f32]) {
        self.saved_ranges.clone_from(&self.ranges);
        let total: usize = self.saved_ranges.iter().map(|r| r.len()).sum();
        self.saved_values.resize(total, 0.0);
        gather(params, &self.saved_ranges, &mut self.saved_values);
        self.saved = true;
    }

    /// Puts back the values [`SparsePath::save`] kept: `params` as they were before the last
    /// update (the ranges it changed are exactly those saved).
    fn undo(&self, params: &mut [f32]) {
        let mut at = 0;
        for range in &self.saved_ranges {
            params[range.clone()].copy_from_slice(&self.saved_values[at..at + range.len()]);
            at += range.len();
        }
    }
}

/// The global L2 norm of a gradient and the norms of the tracked segments within it, from one
/// pass over the buffer.
pub(crate) struct GradientNorms {
    /// Consecutive pieces covering the whole buffer, each with the index of the tracked segment
    /// it is, if it is one.
    pieces: Vec<(Range<usize>, Option<usize>)>,
    /// The norm of each tracked segment at the last [`GradientNorms::measure`].
    pub(crate) segments: Vec<f64>,
}

impl GradientNorms {
    /// For buffers `len` long, tracking `tracked` (ranges that do not overlap).
    pub(crate) fn new(len: usize, tracked: &[(String, Range<usize>)]) -> Self {
        let mut order: Vec<(usize, Range<usize>)> = tracked.iter().map(|(_, r)| r.clone()).enumerate().collect();
        order.sort_by_key(|(_, r)| r.start);
        let mut pieces = Vec::new();
        let mut at = 0;
        for (k, range) in order {
            if range.start > at {
                pieces.push((at..range.start, None));
            }
            at = range.end;
            pieces.push((range, Some(k)));
        }
        if at < len {
            pieces.push((at..len, None));
        }
        Self { pieces, segments: vec![0.0; tracked.len()] }
    }

    /// The L2 norm of `grad`, which is finite exactly when every element is, and each tracked
    /// segment's norm into [`GradientNorms::segments`].
    pub(crate) fn measure(&mut self, grad: &[f32]) -> f64 {
        let mut total = 0.0;
        for (range, tracked) in &self.pieces {
            let squares = sum_of_squares(&grad[range.clone()]);
            if let Some(k) = tracked {
                self.segments[*k] = squares.sqrt();
            }
            total += squares;
        }
        total.sqrt()
    }

    /// [`GradientNorms::measure`] of a gradient that is zero outside `ranges` (sorted, disjoint),
    /// reading only those: the same values bit for bit.
    pub(crate) fn measure_within(&mut self, grad: &[f32], ranges: &[Range<usize>]) -> f64 {
        let mut total = 0.0;
        let mut within = Vec::new();
        for (piece, tracked) in &self.pieces {
            within.clear();
            let first = ranges.partition_point(|r| r.end <= piece.start);
            for r in &ranges[first..] {
                if r.start >= piece.end {
                    break;
                }
                within.push(r.start.max(piece.start) - piece.start..r.end.min(piece.end) - piece.start);
            }
            let squares = sum_of_squares_within(&grad[piece.clone()], &within);
            if let Some(k) = tracked {
                self.segments[*k] = squares.sqrt();
            }
            total += squares;
        }
        total.sqrt()
    }
}

/// Per-fold and mean metrics of a k-fold cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    /// Held-out metrics of each fold.
    pub folds: Vec<Metrics>,
    /// Mean of each metric over the folds.
    pub mean: Metrics,
}

impl CrossValidation {
    /// Collects per-fold metrics and averages them.
    pub fn from_folds(folds: Vec<Metrics>) -> Self {
        let mut mean = Metrics::new();
        for fold in &folds {
            for (k, v) in fold {
                *mean.entry(k.clone()).or_insert(0.0) += v / folds.len() as f64;
            }
        }
        Self { folds, mean }
    }
}

/// Runs `k`-fold cross-validation over the folds of [`crate::data::kfold`] (rows shuffled from `seed`;
/// test parts partition the rows; index lists sorted): for each fold,
/// `fit_and_score(train_indices, test_indices)` trains on the others and returns the held-out
/// metrics (it standardizes on the training rows only, if it standardizes).
pub fn cross_validate<F>(rows: usize, k: usize, seed: u64, mut fit_and_score: F) -> Result<CrossValidation, TrainError>
where
    F: FnMut(&[usize], &[usize]) -> Result<Metrics, TrainError>,
{
    if k < 2 || k > rows {
        return Err(TrainError::Config(ConfigError::new("folds", k, "between 2 and the number of rows")));
    }
    let splits = crate::data::kfold(rows, k, seed)?;
    let folds = splits.iter().map(|(train, test)| fit_and_score(train, test)).collect::<Result<Vec<_>, _>>()?;
    Ok(CrossValidation::from_folds(folds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_differences_list_the_fields_both_sides_name() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let written = map(&[("lr", "0.01"), ("seed", "0"), ("data hash", "1a2b"), ("old field", "x")]);
        let now = map(&[("lr", "0.1"), ("seed", "0"), ("data hash", "3c4d"), ("new field", "y")]);
        assert_eq!(fingerprint_differences(&written, &now), ["data hash 1a2b ≠ 3c4d", "lr 0.01 ≠ 0.1"]);
        assert!(fingerprint_differences(&written, &written).is_empty());
    }

    /// The pieces cover the buffer once whatever the order and gaps of the tracked segments, so
    /// the global norm is the norm of every element, and each tracked norm is its own segment's.
    #[test]
    fn gradient_norms_cover_the_buffer_once() {
        let grad: Vec<f32> = (0..100).map(|i| (i as f32 - 40.0) * 0.25).collect();
        let norm = |values: &[f32]| values.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        let tracked = vec![("b".to_string(), 60..90), ("a".to_string(), 10..30), ("c".to_string(), 30..31)];
        let mut norms = GradientNorms::new(grad.len(), &tracked);
        let total = norms.measure(&grad);
        assert!((total - norm(&grad)).abs() < 1e-9 * total);
        for ((_, range), &measured) in tracked.iter().zip(&norms.segments) {
            assert!((measured - norm(&grad[range.clone()])).abs() < 1e-9 * measured.max(1.0));
        }
        let mut bad = grad.clone();
        bad[95] = f32::INFINITY;
        assert!(!norms.measure(&bad).is_finite(), "an element outside every tracked segment");
        bad[95] = 0.0;
        bad[12] = f32::NAN;
        assert!(norms.measure(&bad).is_nan());
        assert_eq!(GradientNorms::new(0, &[]).measure(&[]), 0.0);
    }
}
