//! Streaming training: mini-batch gradient descent over a CSV or LIBSVM file larger than memory.
//!
//! [`fit_stream`] is [`Trainer::fit`] with the rows coming from a [`StreamingReader`] instead of
//! memory: each epoch re-opens the file and reads it once, batch by batch, so memory stays bounded
//! by the reader's batch plus its shuffle buffer (see [`StreamingReader::max_buffered_rows`])
//! whatever the file's size. [`fit_standardizer`] fits a [`Standardizer`] in one pass over the
//! file, so features can be standardized without loading them.
//!
//! The update is the in-memory engine's, step for step: per batch, optional standardization,
//! the model's loss and gradient, optional gradient accumulation, non-finite skipping, norm and
//! value clipping, the optimizer step and the learning-rate schedule. With the reader's shuffle
//! buffer off and the same batch size, the batches are the in-memory engine's unshuffled ones and
//! the parameters come out the same, bit for bit.
//!
//! What differs, because the whole training set is never in memory:
//!
//! - The training metric of an epoch is the *running* loss: the mean, over the epoch's rows, of
//!   each batch's loss at the parameters it was seen with (as PyTorch loops usually report it),
//!   not the loss at the end of the epoch. `tol` and reduce-on-plateau use it.
//! - Divergence is judged against the first batch's starting loss instead of the whole set's.
//! - There is no validation set, early stopping or checkpointing (asking for them is a
//!   configuration error), and no vanishing/exploding gradient warnings.
//! - The batch size, shuffling and its seed are the reader's; `batch`, `shuffle` and `seed` of
//!   the [`TrainConfig`](super::TrainConfig) are not used.
//! - [`StepInfo::steps_per_epoch`](super::StepInfo::steps_per_epoch) is unknown (0) during the first epoch, then the count seen in
//!   the previous one.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{EpochRecord, GradientNorms, Metrics, Observer, Termination, TrainError, TrainReport, Trainer, Update};
use crate::data::{DataError, Standardizer, StreamingReader};
use crate::error::ConfigError;
use crate::model::Model;
use crate::schedule::LrSchedule;
use crate::transform::all_finite;

/// What one streamed epoch read and how fast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEpoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Rows read.
    pub rows: u64,
    /// Batches read (updates made, unless accumulated or skipped).
    pub batches: u64,
    /// Mean over the rows of each batch's loss before its update (the running loss).
    pub mean_loss: f64,
    /// Wall-clock seconds of the epoch, reading included.
    pub seconds: f64,
    /// The most rows the reader held at once (batch being built plus shuffle buffer).
    pub peak_buffered_rows: usize,
}

impl StreamEpoch {
    /// Rows read and trained on per second.
    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The outcome of [`fit_stream`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    /// The history, as [`Trainer::fit`] reports it; each record's `train` metrics hold `loss`,
    /// the epoch's running loss, and `validation` is empty.
    pub report: TrainReport,
    /// Rows, batches, time and buffering of each epoch run to its end.
    pub epochs: Vec<StreamEpoch>,
}

/// The hint of a divergence at the very first batch.
const NON_FINITE_START: &str = "The starting parameters already give a non-finite loss on the first batch; check the \
                                data for extreme values and standardize the features.";

/// Trains `model` from `params` on the rows of `reader`, epoch by epoch, with `trainer`'s
/// optimizer, learning-rate control and configuration (see the [module](self) for what differs
/// from [`Trainer::fit`]). Each batch is standardized with `standardizer` first, when given.
///
/// Errors: the configuration asks for early stopping or checkpoints
/// ([`TrainError::Config`]); the file's width differs from the model's or the standardizer's,
/// or a row cannot be read ([`TrainError::Data`], whose message says the epoch and how many rows
/// had been read, then the file, line and column); the loss becomes non-finite or explodes
/// ([`TrainError::Diverged`], with the parameters restored to those before the step that went
/// wrong). After a data error the parameters are those after the last update made.
pub fn fit_stream(
    trainer: &mut Trainer,
    model: &dyn Model,
    params: &mut [f32],
    reader: &mut StreamingReader,
    standardizer: Option<&Standardizer>,
    observers: &mut [&mut dyn Observer],
) -> Result<StreamReport, TrainError> {
    let config = trainer.config.clone();
    if config.early_stopping.is_some() {
        return Err(
            ConfigError::new("early_stopping", "set", "none when streaming (there is no validation set)").into()
        );
    }
    if config.checkpoint.is_some() {
        return Err(ConfigError::new("checkpoint", "set", "none when streaming").into());
    }
    let cols = reader.cols();
    if model.inputs() != cols {
        return Err(TrainError::Data(format!(
            "`{}` has {cols} feature columns but the model takes {} inputs",
            reader.path().display(),
            model.inputs()
        )));
    }
    if let Some(s) = standardizer {
        if s.cols() != cols {
            return Err(TrainError::Data(format!(
                "`{}` has {cols} feature columns but the standardizer was fitted on {}",
                reader.path().display(),
                s.cols()
            )));
        }
    }
    let expected = model.layout().len();
    if params.len() != expected {
        return Err(crate::model::RowsError::Params { found: params.len(), expected }.into());
    }
    // A batch holds at most the file's rows: a "whole file" batch size counts as a million rows.
    trainer.check_memory_beyond(
        model,
        reader.batch_size().min(1 << 20),
        crate::memory::bytes_of(params.len(), crate::memory::F32_BYTES).unwrap_or(0),
    )?;
    let reader_path = reader.path().to_path_buf();
    let data_error = |epoch: usize, rows: u64, error: DataError| {
        TrainError::Data(format!("epoch {epoch}, after {rows} rows: {error}"))
    };

    let start = Instant::now();
    let mut history: Vec<EpochRecord> = Vec::new();
    let mut epochs = Vec::new();
    let mut skipped = 0u64;
    let mut step = 0u64;
    let mut steps_per_epoch = 0u64;
    let mut termination = Termination::MaxEpochs;
    let mut grad = crate::buffer::filled(params.len(), 0.0);
    let mut accumulated = vec![0.0f32; if config.accumulate > 1 { params.len() } else { 0 }];
    let mut last_good = params.to_vec();
    let mut norms = GradientNorms::new(params.len(), &[]);
    // The divergence reference: the first batch's loss at the starting parameters.
    let mut initial_loss: Option<f64> = None;
    let mut last_good_loss = f64::NAN;

    'epochs: for epoch in 1..=config.epochs {
        trainer.apply_schedule(epoch, step);
        let epoch_start = Instant::now();
        let mut batches = reader.epoch().map_err(|e| data_error(epoch, 0, e))?;
        let mut rows = 0u64;
        let mut batch_count = 0u64;
        let mut loss_sum = 0.0f64;
        let mut norm_sum = 0.0;
        let mut norm_count = 0u64;
        let mut micro = 0usize;
        for batch in batches.by_ref() {
            let mut batch = batch.map_err(|e| data_error(epoch, rows, e))?;
            if let Some(s) = standardizer {
                s.transform_rows(&mut batch.features).map_err(|e| data_error(epoch, rows, e))?;
            }
            model.check_targets(&batch.target, batch.rows).map_err(|e| {
                TrainError::Data(format!(
                    "epoch {epoch}, after {rows} rows of `{}`: in the next batch, {e}",
                    reader_path.display()
                ))
            })?;
            let loss = model.loss_and_gradient(params, &batch.features, &batch.target, batch.rows, &mut grad);
            let reference = match initial_loss {
                Some(reference) => reference,
                None if loss.is_finite() => {
                    last_good_loss = loss;
                    *initial_loss.insert(loss)
                }
                None => {
                    return Err(TrainError::Diverged {
                        epoch: 0,
                        step: 0,
                        loss_before: loss,
                        loss_after: loss,
                        hint: NON_FINITE_START.into(),
                    })
                }
            };
            let exploded = loss > config.divergence_factor * reference.abs().max(1e-12);
            if !loss.is_finite() || exploded {
                params.copy_from_slice(&last_good);
                return Err(trainer.diverged(epoch, step + 1, last_good_loss, loss));
            }
            rows += batch.rows as u64;
            batch_count += 1;
            loss_sum += loss * batch.rows as f64;
            if config.accumulate > 1 {
                for (a, g) in accumulated.iter_mut().zip(&grad) {
                    *a += g;
                }
                micro += 1;
                if micro < config.accumulate {
                    continue;
                }
                let scale = 1.0 / micro as f32;
                for (g, a) in grad.iter_mut().zip(accumulated.iter_mut()) {
                    *g = *a * scale;
                    *a = 0.0;
                }
                micro = 0;
            }
            let norm = norms.measure(&grad);
            if !norm.is_finite() {
                if config.skip_nonfinite {
                    skipped += 1;
                    continue;
                }
                // The loss at `params` was finite: they are the last good ones (as in memory);
                // the update that would have diverged is the next one.
                return Err(trainer.diverged(epoch, step + 1, loss, f64::NAN));
            }
            let update = Update { epoch, steps_per_epoch, loss };
            let keep_going =
                trainer.apply_update(params, &mut grad, norm, &mut last_good, &mut step, update, observers);
            norm_sum += norm;
            norm_count += 1;
            last_good_loss = loss;
            if !keep_going {
                termination = Termination::Interrupted;
                break 'epochs;
            }
        }
        if rows == 0 {
            return Err(TrainError::Data(format!("`{}` holds no data rows", reader.path().display())));
        }
        if !all_finite(params) {
            params.copy_from_slice(&last_good);
            return Err(trainer.diverged(epoch, step, last_good_loss, f64::NAN));
        }
        steps_per_epoch = batch_count;
        let mean_loss = loss_sum / rows as f64;
        epochs.push(StreamEpoch {
            epoch,
            rows,
            batches: batch_count,
            mean_loss,
            seconds: epoch_start.elapsed().as_secs_f64(),
            peak_buffered_rows: batches.peak_buffered_rows(),
        });
        let record = EpochRecord {
            epoch,
            train: Metrics::from([("loss".to_string(), mean_loss)]),
            validation: Metrics::new(),
            lr: trainer.optimizer.lr(),
            grad_norm: if norm_count > 0 { norm_sum / norm_count as f64 } else { 0.0 },
            seconds: start.elapsed().as_secs_f64(),
        };
        let mut keep_going = true;
        for o in observers.iter_mut() {
            keep_going &= o.on_epoch(&record);
        }
        let previous_loss = history.last().and_then(|r| r.train.get("loss").copied());
        history.push(record);
        if let Some(LrSchedule::Plateau(p)) = trainer.lr_control.as_mut() {
            let lr = p.observe(mean_loss);
            trainer.optimizer.set_lr(lr);
        }
        if !keep_going {
            termination = Termination::Interrupted;
            break;
        }
        if let (Some(tol), Some(previous)) = (config.tol, previous_loss) {
            if (previous - mean_loss).abs() < tol {
                termination = Termination::Converged;
                break;
            }
        }
    }

    let best_epoch = history.last().map_or(0, |r| r.epoch);
    Ok(StreamReport {
        report: TrainReport { history, termination, skipped_updates: skipped, warnings: Vec::new(), best_epoch },
        epochs,
    })
}

/// Fits a [`Standardizer`] on every row of `reader`'s file in one pass, holding one batch at a
/// time, and returns it with the number of rows read.
///
/// The file is read in file order (a copy of the reader with its shuffle buffer off, so `reader`'s
/// epochs and their shuffles are untouched). Means are `f64` sums divided by the count, as
/// [`Standardizer::fit`] computes them, so they agree with it exactly when it is fitted on all the
/// rows; variances use Welford's update in `f64` (one pass, no cancellation), and agree with its
/// two-pass result to rounding. A constant column gets std 1, as there.
pub fn fit_standardizer(reader: &StreamingReader) -> Result<(Standardizer, u64), DataError> {
    let cols = reader.cols();
    let mut sums = vec![0.0f64; cols];
    let mut running_means = vec![0.0f64; cols];
    let mut squares = vec![0.0f64; cols];
    let mut count = 0u64;
    let mut file_order = reader.clone().with_shuffle(0, 0);
    for batch in file_order.epoch()? {
        let batch = batch?;
        for row in batch.features.chunks_exact(cols.max(1)).take(batch.rows) {
            count += 1;
            let n = count as f64;
            for (((&value, sum), mean), square) in row.iter().zip(&mut sums).zip(&mut running_means).zip(&mut squares) {
                let value = f64::from(value);
                *sum += value;
                let delta = value - *mean;
                *mean += delta / n;
                *square += delta * (value - *mean);
            }
        }
    }
    if count == 0 {
        return Err(DataError::NoTrainingRows { origin: reader.path().display().to_string() });
    }
    let n = count as f64;
    let means = sums.iter().map(|sum| (sum / n) as f32).collect();
    let stds = squares
        .iter()
        .map(|square| {
            let std = (square / n).sqrt() as f32;
            if std > 0.0 && std.is_finite() {
                std
            } else {
                1.0
            }
        })
        .collect();
    Ok((Standardizer { means, stds }, count))
}
