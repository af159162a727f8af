//! Cyclical schedules: the 1cycle policy and cyclical learning rates (CLR).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::{check_base_lr, Schedule};
use crate::error::{closed_unit_interval, non_negative, positive, ConfigError};

/// How [`OneCycle`] moves between two rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnealStrategy {
    /// Half a cosine: `end + (start − end) · (1 + cos(π p)) / 2`.
    Cos,
    /// A straight line: `start + (end − start) · p`.
    Linear,
}

impl AnnealStrategy {
    fn anneal(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Self::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Self::Linear => (end - start) * pct + start,
        }
    }
}

/// Options of [`OneCycle`], named and defaulted as `torch.optim.lr_scheduler.OneCycleLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCycleConfig {
    /// Peak learning rate, `>= 0` (required). The optimizer's own rate is not used.
    pub max_lr: f64,
    /// Length of the cycle in steps, at least 1; or give `epochs` and `steps_per_epoch`.
    #[serde(default)]
    pub total_steps: Option<u64>,
    /// Epochs, giving `total_steps = epochs · steps_per_epoch` when `total_steps` is absent.
    #[serde(default)]
    pub epochs: Option<u64>,
    /// Steps per epoch, giving `total_steps = epochs · steps_per_epoch` when `total_steps` is absent.
    #[serde(default)]
    pub steps_per_epoch: Option<u64>,
    /// Fraction of the cycle spent increasing the rate, in `[0, 1]` (default 0.3).
    #[serde(default = "default_pct_start")]
    pub pct_start: f64,
    /// `cos` or `linear` (default `cos`).
    #[serde(default = "default_anneal")]
    pub anneal_strategy: AnnealStrategy,
    /// Cycle momentum inversely to the rate (default true), reported by [`Schedule::momentum`].
    #[serde(default = "yes")]
    pub cycle_momentum: bool,
    /// Momentum at the peak rate (default 0.85).
    #[serde(default = "default_one_cycle_base_momentum")]
    pub base_momentum: f64,
    /// Momentum at the start and end (default 0.95).
    #[serde(default = "default_one_cycle_max_momentum")]
    pub max_momentum: f64,
    /// Initial rate is `max_lr / div_factor`, `> 0` (default 25).
    #[serde(default = "default_div_factor")]
    pub div_factor: f64,
    /// Final rate is the initial rate `/ final_div_factor`, `> 0` (default 1e4).
    #[serde(default = "default_final_div_factor")]
    pub final_div_factor: f64,
    /// Use three phases (up, down to the initial rate, down to the final rate) instead of two
    /// (default false).
    #[serde(default)]
    pub three_phase: bool,
}

fn default_pct_start() -> f64 {
    0.3
}
fn default_anneal() -> AnnealStrategy {
    AnnealStrategy::Cos
}
fn yes() -> bool {
    true
}
fn default_one_cycle_base_momentum() -> f64 {
    0.85
}
fn default_one_cycle_max_momentum() -> f64 {
    0.95
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}

/// One phase of the 1cycle policy: from `start` at the previous phase's end to `end` at `end_step`.
#[derive(Debug, Clone, Copy)]
struct Phase {
    end_step: f64,
    start_lr: f64,
    end_lr: f64,
    start_momentum: f64,
    end_momentum: f64,
}

/// `OneCycleLR`: the 1cycle policy (Smith & Topin, "Super-Convergence").
///
/// With `N = total_steps`, `p = pct_start`, initial rate `lr_i = max_lr / div_factor` and final
/// rate `lr_f = lr_i / final_div_factor`, the phases end at these steps (as floats):
///
/// ```text
/// two phases:   lr_i → max_lr until p·N − 1,   max_lr → lr_f until N − 1
/// three phases: lr_i → max_lr until p·N − 1,   max_lr → lr_i until 2·p·N − 2,   lr_i → lr_f until N − 1
/// ```
///
/// Within a phase running from step `a` (the previous phase's end, 0 for the first) to `b`, the
/// rate at step `t` is `anneal(start, end, (t − a) / (b − a))` with the chosen
/// [`AnnealStrategy`]. Momentum (when cycled) moves the other way, between `max_momentum` and
/// `base_momentum` (and stays at `max_momentum` in the third phase).
///
/// Differences from PyTorch: PyTorch raises past step `N`, and at step `N` extrapolates one step
/// beyond `lr_f` (with `linear` annealing possibly below zero); gradus holds `lr_f` from step
/// `N − 1` on. A phase of zero length (PyTorch divides by zero) counts as complete.
#[derive(Debug, Clone)]
pub struct OneCycle {
    config: OneCycleConfig,
    total_steps: u64,
    phases: Vec<Phase>,
}

impl OneCycle {
    /// Validates `config` and builds the schedule.
    pub fn new(config: OneCycleConfig) -> Result<Self, ConfigError> {
        non_negative("max_lr", config.max_lr)?;
        let total_steps = match (config.total_steps, config.epochs, config.steps_per_epoch) {
            (Some(total), _, _) => total,
            (None, Some(epochs), Some(per_epoch)) => {
                if epochs == 0 {
                    return Err(ConfigError::new("epochs", epochs, "an integer >= 1"));
                }
                if per_epoch == 0 {
                    return Err(ConfigError::new("steps_per_epoch", per_epoch, "an integer >= 1"));
                }
                epochs.saturating_mul(per_epoch)
            }
            _ => {
                return Err(ConfigError::new(
                    "total_steps",
                    "none",
                    "an integer >= 1, or both `epochs` and `steps_per_epoch`",
                ))
            }
        };
        if total_steps == 0 {
            return Err(ConfigError::new("total_steps", total_steps, "an integer >= 1"));
        }
        closed_unit_interval("pct_start", config.pct_start)?;
        positive("div_factor", config.div_factor)?;
        positive("final_div_factor", config.final_div_factor)?;
        if config.cycle_momentum {
            non_negative("base_momentum", config.base_momentum)?;
            non_negative("max_momentum", config.max_momentum)?;
        }
        let max_lr = config.max_lr;
        let initial_lr = max_lr / config.div_factor;
        let min_lr = initial_lr / config.final_div_factor;
        let (base_m, max_m) = (config.base_momentum, config.max_momentum);
        let n = total_steps as f64;
        let warmup_end = config.pct_start * n - 1.0;
        let phases = if config.three_phase {
            vec![
                Phase {
                    end_step: warmup_end,
                    start_lr: initial_lr,
                    end_lr: max_lr,
                    start_momentum: max_m,
                    end_momentum: base_m,
                },
                Phase {
                    end_step: 2.0 * config.pct_start * n - 2.0,
                    start_lr: max_lr,
                    end_lr: initial_lr,
                    start_momentum: base_m,
                    end_momentum: max_m,
                },
                Phase {
                    end_step: n - 1.0,
                    start_lr: initial_lr,
                    end_lr: min_lr,
                    start_momentum: max_m,
                    end_momentum: max_m,
                },
            ]
        } else {
            vec![
                Phase {
                    end_step: warmup_end,
                    start_lr: initial_lr,
                    end_lr: max_lr,
                    start_momentum: max_m,
                    end_momentum: base_m,
                },
                Phase {
                    end_step: n - 1.0,
                    start_lr: max_lr,
                    end_lr: min_lr,
                    start_momentum: base_m,
                    end_momentum: max_m,
                },
            ]
        };
        Ok(Self { config, total_steps, phases })
    }

    /// The cycle's length in steps.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// The phase containing `step` and how far through it `step` is.
    fn locate(&self, step: u64) -> (Phase, f64) {
        let step = step.min(self.total_steps - 1) as f64;
        let mut start_step = 0.0;
        let last = self.phases.len() - 1;
        for (i, phase) in self.phases.iter().enumerate() {
            if step <= phase.end_step || i == last {
                let span = phase.end_step - start_step;
                let pct = if span == 0.0 { 1.0 } else { (step - start_step) / span };
                return (*phase, pct);
            }
            start_step = phase.end_step;
        }
        unreachable!("the last phase always matches")
    }
}

impl Schedule for OneCycle {
    fn name(&self) -> &'static str {
        "one_cycle"
    }

    fn lr(&self, step: u64) -> f64 {
        let (phase, pct) = self.locate(step);
        self.config.anneal_strategy.anneal(phase.start_lr, phase.end_lr, pct)
    }

    fn momentum(&self, step: u64) -> Option<f64> {
        if !self.config.cycle_momentum {
            return None;
        }
        let (phase, pct) = self.locate(step);
        Some(self.config.anneal_strategy.anneal(phase.start_momentum, phase.end_momentum, pct))
    }
}

/// The amplitude policy of [`CyclicLr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Constant amplitude: scale 1.
    Triangular,
    /// Amplitude halved every cycle: scale `1 / 2^(cycle − 1)`.
    Triangular2,
    /// Amplitude decaying every step: scale `γ^t`.
    ExpRange,
}

/// Options of [`CyclicLr`], named and defaulted as `torch.optim.lr_scheduler.CyclicLR`'s
/// (`scale_fn` and `scale_mode`, which take Python functions, are not available).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CyclicConfig {
    /// Lower bound of the cycle, `>= 0` (PyTorch requires it; here it defaults to the
    /// optimizer's learning rate).
    #[serde(default)]
    pub base_lr: Option<f64>,
    /// Upper bound of the cycle, `>= 0` (required).
    pub max_lr: f64,
    /// Steps in the rising half of a cycle, `> 0` (default 2000).
    #[serde(default = "default_step_size_up")]
    pub step_size_up: f64,
    /// Steps in the falling half, `> 0` (default: `step_size_up`).
    #[serde(default)]
    pub step_size_down: Option<f64>,
    /// `triangular`, `triangular2` or `exp_range` (default `triangular`).
    #[serde(default = "default_mode")]
    pub mode: CyclicMode,
    /// γ of `exp_range`, `>= 0` (default 1).
    #[serde(default = "default_cyclic_gamma")]
    pub gamma: f64,
    /// Cycle momentum inversely to the rate (default true), reported by [`Schedule::momentum`].
    #[serde(default = "yes")]
    pub cycle_momentum: bool,
    /// Momentum at the peak rate (default 0.8).
    #[serde(default = "default_cyclic_base_momentum")]
    pub base_momentum: f64,
    /// Momentum at the lowest rate (default 0.9).
    #[serde(default = "default_cyclic_max_momentum")]
    pub max_momentum: f64,
}

fn default_step_size_up() -> f64 {
    2000.0
}
fn default_mode() -> CyclicMode {
    CyclicMode::Triangular
}
fn default_cyclic_gamma() -> f64 {
    1.0
}
fn default_cyclic_base_momentum() -> f64 {
    0.8
}
fn default_cyclic_max_momentum() -> f64 {
    0.9
}

/// `CyclicLR`: cyclical learning rates (Smith, "Cyclical Learning Rates for Training Neural
/// Networks"), a triangle wave between `base_lr` and `max_lr`.
///
/// With `U = step_size_up`, `D = step_size_down` (default `U`), `S = U + D`, `r = U / S`:
///
/// ```text
/// cycle = ⌊1 + t / S⌋
/// x     = 1 + t / S − cycle                       (position in the cycle, [0, 1))
/// h     = x / r            if x ≤ r
///         (x − 1) / (r − 1) otherwise              (height of the triangle, [0, 1])
/// lr(t) = base_lr + (max_lr − base_lr) · h · scale
/// ```
///
/// where `scale` is 1 (`triangular`), `1 / 2^(cycle − 1)` (`triangular2`) or `γ^t` (`exp_range`).
/// Momentum (when cycled) is `max_momentum − (max_momentum − base_momentum) · h · scale`.
#[derive(Debug, Clone)]
pub struct CyclicLr {
    base_lr: f64,
    config: CyclicConfig,
    total_size: f64,
    step_ratio: f64,
}

impl CyclicLr {
    /// Validates `config` and builds the schedule; `base_lr` is the optimizer's learning rate,
    /// used when the options give no `base_lr`.
    pub fn new(base_lr: f64, config: CyclicConfig) -> Result<Self, ConfigError> {
        let base_lr = match config.base_lr {
            Some(lr) => {
                non_negative("base_lr", lr)?;
                lr
            }
            None => {
                check_base_lr(base_lr)?;
                base_lr
            }
        };
        non_negative("max_lr", config.max_lr)?;
        positive("step_size_up", config.step_size_up)?;
        let step_size_down = config.step_size_down.unwrap_or(config.step_size_up);
        positive("step_size_down", step_size_down)?;
        non_negative("gamma", config.gamma)?;
        if config.cycle_momentum {
            non_negative("base_momentum", config.base_momentum)?;
            non_negative("max_momentum", config.max_momentum)?;
        }
        let total_size = config.step_size_up + step_size_down;
        let step_ratio = config.step_size_up / total_size;
        Ok(Self { base_lr, config, total_size, step_ratio })
    }

    /// The triangle's height `h` and the amplitude's `scale` at `step`.
    fn height(&self, step: u64) -> (f64, f64) {
        let t = step as f64;
        let cycle = (1.0 + t / self.total_size).floor();
        let x = 1.0 + t / self.total_size - cycle;
        let h = if x <= self.step_ratio { x / self.step_ratio } else { (x - 1.0) / (self.step_ratio - 1.0) };
        let scale = match self.config.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange => self.config.gamma.powf(t),
        };
        (h, scale)
    }
}

impl Schedule for CyclicLr {
    fn name(&self) -> &'static str {
        "cyclic"
    }

    fn lr(&self, step: u64) -> f64 {
        let (h, scale) = self.height(step);
        self.base_lr + (self.config.max_lr - self.base_lr) * h * scale
    }

    fn momentum(&self, step: u64) -> Option<f64> {
        let c = &self.config;
        c.cycle_momentum.then(|| {
            let (h, scale) = self.height(step);
            c.max_momentum - (c.max_momentum - c.base_momentum) * h * scale
        })
    }
}
