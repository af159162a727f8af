//! Cosine annealing, plain and with warm restarts (SGDR).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::{at_least_one, check_base_lr, Schedule};
use crate::error::{non_negative, positive, ConfigError};

/// Options of [`Cosine`], named and defaulted as `torch.optim.lr_scheduler.CosineAnnealingLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineConfig {
    /// Half-period in steps, `> 0` (required).
    #[serde(rename = "T_max")]
    pub t_max: f64,
    /// Minimum learning rate η_min, `>= 0` (default 0).
    #[serde(default)]
    pub eta_min: f64,
}

/// `CosineAnnealingLR`: a cosine from the base rate down to η_min over `T_max` steps.
///
/// ```text
/// lr(t) = η_min + (lr₀ − η_min) · (1 + cos(π t / T_max)) / 2
/// ```
///
/// As in PyTorch, the cosine goes on past `T_max`: the rate climbs back to `lr₀` at `2 T_max`,
/// and so on (PyTorch's recursive form and this closed form agree to rounding).
#[derive(Debug, Clone)]
pub struct Cosine {
    base_lr: f64,
    config: CosineConfig,
}

impl Cosine {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: CosineConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        positive("T_max", config.t_max)?;
        non_negative("eta_min", config.eta_min)?;
        Ok(Self { base_lr, config })
    }
}

impl Schedule for Cosine {
    fn name(&self) -> &'static str {
        "cosine"
    }

    fn lr(&self, step: u64) -> f64 {
        let CosineConfig { t_max, eta_min } = self.config;
        eta_min + (self.base_lr - eta_min) * (1.0 + (PI * step as f64 / t_max).cos()) / 2.0
    }
}

/// Options of [`CosineWarmRestarts`], named and defaulted as
/// `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineWarmRestartsConfig {
    /// Length of the first period in steps, at least 1 (required).
    #[serde(rename = "T_0")]
    pub t_0: u64,
    /// Factor by which each period is longer than the last, at least 1 (default 1).
    #[serde(rename = "T_mult", default = "one")]
    pub t_mult: u64,
    /// Minimum learning rate η_min, `>= 0` (default 0).
    #[serde(default)]
    pub eta_min: f64,
}

fn one() -> u64 {
    1
}

/// `CosineAnnealingWarmRestarts` (SGDR): cosine annealing that restarts at the base rate at the
/// end of each period, periods growing by `T_mult`.
///
/// Period `i` lasts `Tᵢ = T_0 · T_multⁱ` steps; with `T_cur` the steps since the last restart:
///
/// ```text
/// lr(t) = η_min + (lr₀ − η_min) · (1 + cos(π T_cur / Tᵢ)) / 2
/// ```
///
/// The period containing `t` is found with integer arithmetic, so restarts land exactly on
/// `T_0 (T_multⁿ − 1) / (T_mult − 1)` — as PyTorch's `step()` places them (its `step(epoch)` path
/// uses a floating-point logarithm instead, which can be one period off at a boundary).
#[derive(Debug, Clone)]
pub struct CosineWarmRestarts {
    base_lr: f64,
    config: CosineWarmRestartsConfig,
}

impl CosineWarmRestarts {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: CosineWarmRestartsConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        at_least_one("T_0", config.t_0)?;
        at_least_one("T_mult", config.t_mult)?;
        non_negative("eta_min", config.eta_min)?;
        Ok(Self { base_lr, config })
    }

    /// `(T_cur, Tᵢ)` at `step`.
    fn position(&self, step: u64) -> (u64, u64) {
        let CosineWarmRestartsConfig { t_0, t_mult, .. } = self.config;
        if t_mult == 1 {
            return (step % t_0, t_0);
        }
        let (mut start, mut period) = (0u64, t_0);
        // Each period is at least twice the last, so this runs at most 64 times.
        while step - start >= period {
            start += period;
            period = period.saturating_mul(t_mult);
        }
        (step - start, period)
    }
}

impl Schedule for CosineWarmRestarts {
    fn name(&self) -> &'static str {
        "cosine_warm_restarts"
    }

    fn lr(&self, step: u64) -> f64 {
        let (t_cur, period) = self.position(step);
        let eta_min = self.config.eta_min;
        eta_min + (self.base_lr - eta_min) * (1.0 + (PI * t_cur as f64 / period as f64).cos()) / 2.0
    }
}
