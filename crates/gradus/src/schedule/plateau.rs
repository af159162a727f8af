//! Reducing the learning rate when a metric stops improving.

use serde::{Deserialize, Serialize};

use super::check_base_lr;
use crate::error::{non_negative, ConfigError, StateError};

/// Whether the watched metric should go down or up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` measures a significant improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Relative: better than `best · (1 ∓ threshold)`.
    Rel,
    /// Absolute: better than `best ∓ threshold`.
    Abs,
}

/// Options of [`ReduceOnPlateau`], named and defaulted as
/// `torch.optim.lr_scheduler.ReduceLROnPlateau`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateauConfig {
    /// `min` or `max` (default `min`).
    pub mode: PlateauMode,
    /// Factor applied on a plateau, in `[0, 1)` (default 0.1).
    pub factor: f64,
    /// Observations without improvement tolerated before reducing (default 10).
    pub patience: u64,
    /// Size of a significant improvement, `>= 0` (default 1e-4).
    pub threshold: f64,
    /// `rel` or `abs` (default `rel`).
    pub threshold_mode: ThresholdMode,
    /// Observations to wait after a reduction before counting again (default 0).
    pub cooldown: u64,
    /// Lower bound of the learning rate, `>= 0` (default 0).
    pub min_lr: f64,
    /// Reductions smaller than this are skipped, `>= 0` (default 1e-8).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        Self {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// The saved progress of a [`ReduceOnPlateau`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// The current learning rate.
    pub lr: f64,
    /// The best metric so far (±∞, written `"inf"`/`"-inf"`, before the first).
    #[serde(with = "super::non_finite_f64")]
    pub best: f64,
    /// Observations since the last improvement.
    pub num_bad_epochs: u64,
    /// Observations left in the cooldown.
    pub cooldown_counter: u64,
    /// Observations so far.
    pub last_epoch: u64,
}

/// `ReduceLROnPlateau`: a controller that multiplies the learning rate by `factor` when a metric
/// has not improved for more than `patience` observations.
///
/// On each observation of metric `m` (mode `min`; `max` mirrors it):
///
/// ```text
/// improved   = m < best · (1 − threshold)     (rel)   or   m < best − threshold   (abs)
/// if improved: best ← m, bad ← 0   else: bad ← bad + 1
/// if cooldown > 0: cooldown ← cooldown − 1, bad ← 0
/// if bad > patience:
///     new ← max(lr · factor, min_lr);  if lr − new > eps: lr ← new
///     cooldown ← cooldown option, bad ← 0
/// ```
///
/// `best` starts at +∞ (−∞ for `max`). A NaN metric never improves. Identical to PyTorch for a
/// single parameter group.
#[derive(Debug, Clone)]
pub struct ReduceOnPlateau {
    config: PlateauConfig,
    state: PlateauState,
}

impl ReduceOnPlateau {
    /// Validates `config` and builds the controller, starting at learning rate `base_lr`.
    pub fn new(base_lr: f64, config: PlateauConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        crate::error::unit_interval("factor", config.factor)?;
        non_negative("threshold", config.threshold)?;
        non_negative("min_lr", config.min_lr)?;
        non_negative("eps", config.eps)?;
        let best = match config.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        let state = PlateauState { lr: base_lr, best, num_bad_epochs: 0, cooldown_counter: 0, last_epoch: 0 };
        Ok(Self { config, state })
    }

    /// The configuration.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.state.lr
    }

    /// The best metric so far.
    pub fn best(&self) -> f64 {
        self.state.best
    }

    /// How many metrics have been observed.
    pub fn epochs(&self) -> u64 {
        self.state.last_epoch
    }

    fn is_better(&self, metric: f64) -> bool {
        let (best, threshold) = (self.state.best, self.config.threshold);
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + threshold,
        }
    }

    /// Records one observation of the metric and returns the (possibly reduced) learning rate.
    pub fn observe(&mut self, metric: f64) -> f64 {
        self.state.last_epoch += 1;
        if self.is_better(metric) {
            self.state.best = metric;
            self.state.num_bad_epochs = 0;
        } else {
            self.state.num_bad_epochs += 1;
        }
        if self.state.cooldown_counter > 0 {
            self.state.cooldown_counter -= 1;
            self.state.num_bad_epochs = 0;
        }
        if self.state.num_bad_epochs > self.config.patience {
            let old = self.state.lr;
            let new = (old * self.config.factor).max(self.config.min_lr);
            if old - new > self.config.eps {
                self.state.lr = new;
            }
            self.state.cooldown_counter = self.config.cooldown;
            self.state.num_bad_epochs = 0;
        }
        self.state.lr
    }

    /// A snapshot of the progress.
    pub fn state(&self) -> PlateauState {
        self.state.clone()
    }

    /// Restores a snapshot taken by [`ReduceOnPlateau::state`].
    pub fn load_state(&mut self, state: &PlateauState) -> Result<(), StateError> {
        if !(state.lr.is_finite() && state.lr >= 0.0) {
            return Err(StateError::BadBuffer { name: "lr".to_string(), problem: format!("is {}", state.lr) });
        }
        self.state = state.clone();
        Ok(())
    }
}
