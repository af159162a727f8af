//! One training run: the model's starting parameters, the optimizer and schedule, and the
//! engine's loop (or L-BFGS on the full batch), observed by the caller.

use std::time::Instant;

use gradus::model::{evaluate, Model};
use gradus::optim::lbfgs::FnProblem;
use gradus::optim::{Lbfgs, LbfgsConfig};
use gradus::train::{
    Checkpoint, CheckpointConfig, EpochRecord, Observer, Termination, TrainError, TrainReport, Trainer,
};

use crate::error::CliError;
use crate::fingerprint::Fingerprint;
use crate::prepare::Prepared;
use crate::setup::{lbfgs_options, Settings};

/// What a run produced.
pub struct RunOutput {
    /// The kept parameters (the best epoch's under early stopping, else the last).
    pub params: Vec<f32>,
    /// The engine's report.
    pub report: TrainReport,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl RunOutput {
    /// The record of the kept parameters.
    pub fn final_record(&self) -> Option<&EpochRecord> {
        self.report.history.iter().find(|r| r.epoch == self.report.best_epoch).or(self.report.history.last())
    }
}

/// Updates per epoch for `rows` training rows.
pub fn steps_per_epoch(settings: &Settings, rows: usize) -> u64 {
    let batch = settings.batch.size(rows).clamp(1, rows.max(1));
    rows.div_ceil(batch) as u64
}

/// Trains `model` on `data` as `settings` say.
pub fn fit(
    model: &dyn Model,
    settings: &Settings,
    data: &Prepared,
    observer: &mut dyn Observer,
    resume: Option<Checkpoint>,
    checkpoint: Option<CheckpointConfig>,
) -> Result<RunOutput, CliError> {
    fit_run(model, settings, data, observer, resume, checkpoint, Fingerprint::new())
}

/// [`fit`], with the run's fingerprint written into its checkpoints (and checked against the
/// checkpoint resumed, if any).
pub fn fit_run(
    model: &dyn Model,
    settings: &Settings,
    data: &Prepared,
    observer: &mut dyn Observer,
    resume: Option<Checkpoint>,
    checkpoint: Option<CheckpointConfig>,
    fingerprint: Fingerprint,
) -> Result<RunOutput, CliError> {
    let start = Instant::now();
    if settings.optimizer.name == "lbfgs" {
        if resume.is_some() || checkpoint.is_some() {
            return Err(CliError::usage("--optimizer lbfgs does not write or resume checkpoints"));
        }
        check_memory(model, settings, data.train_y.len())?;
        let mut params = model.init_params(settings.seed);
        let report = fit_lbfgs(model, settings, data, &mut params, observer)?;
        return Ok(RunOutput { params, report, seconds: start.elapsed().as_secs_f64() });
    }
    let optimizer = settings.optimizer.build()?;
    let base_lr = optimizer.lr();
    let spe = steps_per_epoch(settings, data.train_y.len());
    let schedule = settings.schedule(spe, base_lr)?;
    let mut trainer = Trainer::new(settings.train_config(checkpoint), optimizer)?.with_fingerprint(fingerprint);
    if let Some(schedule) = schedule {
        trainer = trainer.with_lr_control(schedule);
    }
    // Before the parameters are allocated: their size came from flags and the data.
    trainer.check_memory(model, data.train_y.len()).map_err(|e| settings.memory_error(model.inputs(), e))?;
    let mut params = model.init_params(settings.seed);
    let report = trainer.fit_from(model, &mut params, data.train(), data.validation(), &mut [observer], resume)?;
    Ok(RunOutput { params, report, seconds: start.elapsed().as_secs_f64() })
}

/// Checks that training `model` on `rows` rows as `settings` say fits in the memory available,
/// before its parameters are allocated; the error names the flag that sized the model.
pub fn check_memory(model: &dyn Model, settings: &Settings, rows: usize) -> Result<(), CliError> {
    let n = model.layout().len();
    let result = if settings.optimizer.name == "lbfgs" {
        // The f32 parameters and two f32 copies, the f64 point and gradient, and L-BFGS's history
        // of steps and gradient changes (two f64 vectors per remembered step).
        let history = LbfgsConfig::from_options(&lbfgs_options(&settings.optimizer)).map_or(100, |c| c.history_size);
        let f32s = gradus::memory::bytes_of(n.saturating_mul(3), 4);
        let f64s = gradus::memory::bytes_of(n.saturating_mul(history.saturating_mul(2).saturating_add(4)), 8);
        gradus::memory::check(
            format!("the model ({n} parameters)"),
            "its parameters, gradients and L-BFGS history",
            gradus::memory::total([f32s, f64s]),
        )
    } else {
        let trainer = Trainer::new(settings.train_config(None), settings.optimizer.build()?)?;
        trainer.check_memory(model, rows)
    };
    result.map_err(|e| settings.memory_error(model.inputs(), e))
}

/// L-BFGS over the full training set, one optimizer step (up to `max_iter` iterations with a
/// strong-Wolfe line search) per epoch.
fn fit_lbfgs(
    model: &dyn Model,
    settings: &Settings,
    data: &Prepared,
    params: &mut [f32],
    observer: &mut dyn Observer,
) -> Result<TrainReport, CliError> {
    let config = LbfgsConfig::from_options(&lbfgs_options(&settings.optimizer))?;
    let lr = config.lr;
    let mut lbfgs = Lbfgs::new(config)?;
    let train = data.train();
    let validation = data.validation();
    let start = Instant::now();
    let mut x: Vec<f64> = params.iter().map(|&p| f64::from(p)).collect();
    let mut p32 = params.to_vec();
    let mut g32 = vec![0.0f32; params.len()];
    let mut history = Vec::new();
    let mut termination = Termination::MaxEpochs;
    let initial = evaluate(model, params, train).map_err(TrainError::from)?.get("loss").copied().unwrap_or(f64::NAN);
    for epoch in 1..=settings.epochs {
        let before = p32.clone();
        let step = {
            let mut problem = FnProblem(|x: &[f64], g: &mut [f64]| {
                for (p, &v) in p32.iter_mut().zip(x) {
                    *p = v as f32;
                }
                let loss = model.loss_and_gradient(&p32, train.x, train.y, train.rows, &mut g32);
                for (g, &v) in g.iter_mut().zip(&g32) {
                    *g = f64::from(v);
                }
                loss
            });
            lbfgs.step(&mut x, &mut problem)
        };
        for (p, &v) in params.iter_mut().zip(&x) {
            *p = v as f32;
        }
        let train_metrics = evaluate(model, params, train).map_err(TrainError::from)?;
        let loss = train_metrics.get("loss").copied().unwrap_or(f64::NAN);
        if !loss.is_finite() || params.iter().any(|p| !p.is_finite()) {
            params.copy_from_slice(&before);
            return Err(TrainError::Diverged {
                epoch,
                step: step.evaluations,
                loss_before: initial,
                loss_after: loss,
                hint: format!("Try a smaller --lr than {lr} or standardized features."),
            }
            .into());
        }
        let record = EpochRecord {
            epoch,
            train: train_metrics,
            validation: validation
                .map(|v| evaluate(model, params, v))
                .transpose()
                .map_err(TrainError::from)?
                .unwrap_or_default(),
            lr,
            grad_norm: g32.iter().map(|&g| f64::from(g).powi(2)).sum::<f64>().sqrt(),
            seconds: start.elapsed().as_secs_f64(),
        };
        let previous = history.last().and_then(|r: &EpochRecord| r.train.get("loss").copied());
        let keep_going = observer.on_epoch(&record);
        history.push(record);
        if !keep_going {
            termination = Termination::Interrupted;
            break;
        }
        let small_change = matches!((settings.tol, previous), (Some(tol), Some(prev)) if (prev - loss).abs() < tol);
        if step.termination.is_converged() || small_change {
            termination = Termination::Converged;
            break;
        }
    }
    let best_epoch = history.last().map_or(0, |r| r.epoch);
    Ok(TrainReport { history, termination, skipped_updates: 0, warnings: Vec::new(), best_epoch })
}
