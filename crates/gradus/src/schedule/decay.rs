//! Monotone decays and warmups: fixed, constant, step, multi-step, exponential, inverse-time,
//! polynomial and linear.

use serde::{Deserialize, Serialize};

use super::{at_least_one, check_base_lr, Schedule};
use crate::error::{non_negative, ConfigError};

/// Options of [`Fixed`]: none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedConfig {}

/// The base learning rate at every step: `lr(t) = lr₀`. What an optimizer without a scheduler
/// does.
#[derive(Debug, Clone)]
pub struct Fixed {
    base_lr: f64,
}

impl Fixed {
    /// Checks `base_lr` and builds the schedule.
    pub fn new(base_lr: f64, _config: FixedConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        Ok(Self { base_lr })
    }
}

impl Schedule for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn lr(&self, _step: u64) -> f64 {
        self.base_lr
    }
}

/// Options of [`Constant`], named and defaulted as `torch.optim.lr_scheduler.ConstantLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConstantConfig {
    /// The factor applied during the first `total_iters` steps, in `(0, 1]` (default 1/3).
    pub factor: f64,
    /// How many steps the factor applies for (default 5).
    pub total_iters: u64,
}

impl Default for ConstantConfig {
    fn default() -> Self {
        Self { factor: 1.0 / 3.0, total_iters: 5 }
    }
}

/// `ConstantLR`: a reduced learning rate for the first `total_iters` steps, then the base rate.
///
/// ```text
/// lr(t) = lr₀ · factor   if t < total_iters
///         lr₀            otherwise
/// ```
///
/// Defaults as PyTorch's (factor 1/3, total_iters 5) — note that a bare `constant` therefore
/// does *not* mean a fixed learning rate; that is `fixed`.
#[derive(Debug, Clone)]
pub struct Constant {
    base_lr: f64,
    config: ConstantConfig,
}

impl Constant {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: ConstantConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        if !(config.factor > 0.0 && config.factor <= 1.0) {
            return Err(ConfigError::new("factor", config.factor, "a number in (0, 1]"));
        }
        Ok(Self { base_lr, config })
    }
}

impl Schedule for Constant {
    fn name(&self) -> &'static str {
        "constant"
    }

    fn lr(&self, step: u64) -> f64 {
        if step < self.config.total_iters {
            self.base_lr * self.config.factor
        } else {
            self.base_lr
        }
    }
}

/// Options of [`StepDecay`], named and defaulted as `torch.optim.lr_scheduler.StepLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Period of the decay in steps, at least 1 (required).
    pub step_size: u64,
    /// Multiplicative factor γ of each decay (default 0.1).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
}

fn default_gamma() -> f64 {
    0.1
}

/// `StepLR`: the rate is multiplied by γ every `step_size` steps.
///
/// ```text
/// lr(t) = lr₀ · γ^⌊t / step_size⌋
/// ```
#[derive(Debug, Clone)]
pub struct StepDecay {
    base_lr: f64,
    config: StepConfig,
}

impl StepDecay {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: StepConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        at_least_one("step_size", config.step_size)?;
        non_negative("gamma", config.gamma)?;
        Ok(Self { base_lr, config })
    }
}

impl Schedule for StepDecay {
    fn name(&self) -> &'static str {
        "step"
    }

    fn lr(&self, step: u64) -> f64 {
        self.base_lr * self.config.gamma.powf((step / self.config.step_size) as f64)
    }
}

/// Options of [`MultiStep`], named and defaulted as `torch.optim.lr_scheduler.MultiStepLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiStepConfig {
    /// Steps at which the rate is multiplied by γ (required; any order, repeats multiply again).
    pub milestones: Vec<u64>,
    /// Multiplicative factor γ (default 0.1).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
}

/// `MultiStepLR`: the rate is multiplied by γ at each milestone.
///
/// ```text
/// lr(t) = lr₀ · γ^|{m ∈ milestones : m ≤ t}|
/// ```
#[derive(Debug, Clone)]
pub struct MultiStep {
    base_lr: f64,
    gamma: f64,
    sorted_milestones: Vec<u64>,
}

impl MultiStep {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: MultiStepConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        non_negative("gamma", config.gamma)?;
        let mut sorted_milestones = config.milestones;
        sorted_milestones.sort_unstable();
        Ok(Self { base_lr, gamma: config.gamma, sorted_milestones })
    }
}

impl Schedule for MultiStep {
    fn name(&self) -> &'static str {
        "multi_step"
    }

    fn lr(&self, step: u64) -> f64 {
        let passed = self.sorted_milestones.partition_point(|&m| m <= step);
        self.base_lr * self.gamma.powf(passed as f64)
    }
}

/// Options of [`Exponential`], named as `torch.optim.lr_scheduler.ExponentialLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialConfig {
    /// Multiplicative factor γ per step (required).
    pub gamma: f64,
}

/// `ExponentialLR`: the rate is multiplied by γ every step.
///
/// ```text
/// lr(t) = lr₀ · γ^t
/// ```
#[derive(Debug, Clone)]
pub struct Exponential {
    base_lr: f64,
    gamma: f64,
}

impl Exponential {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: ExponentialConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        non_negative("gamma", config.gamma)?;
        Ok(Self { base_lr, gamma: config.gamma })
    }
}

impl Schedule for Exponential {
    fn name(&self) -> &'static str {
        "exponential"
    }

    fn lr(&self, step: u64) -> f64 {
        self.base_lr * self.gamma.powf(step as f64)
    }
}

/// Options of [`InverseTime`]. PyTorch has no such scheduler; the names are gradus's own, with
/// scikit-learn's `power_t` accepted for `power`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InverseTimeConfig {
    /// Decay rate per step, `>= 0` (default 1).
    pub decay: f64,
    /// Exponent, `>= 0` (default 0.5, scikit-learn's `power_t`).
    #[serde(alias = "power_t")]
    pub power: f64,
}

impl Default for InverseTimeConfig {
    fn default() -> Self {
        Self { decay: 1.0, power: 0.5 }
    }
}

/// Inverse-time decay, scikit-learn's `invscaling`.
///
/// ```text
/// lr(t) = lr₀ / (1 + decay · t)^power
/// ```
///
/// With the defaults (decay 1, power 0.5) this is scikit-learn's `eta0 / t'^power_t` with its
/// count `t' = t + 1` starting at 1. `power = 1` gives Keras' `InverseTimeDecay`.
#[derive(Debug, Clone)]
pub struct InverseTime {
    base_lr: f64,
    config: InverseTimeConfig,
}

impl InverseTime {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: InverseTimeConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        non_negative("decay", config.decay)?;
        non_negative("power", config.power)?;
        Ok(Self { base_lr, config })
    }
}

impl Schedule for InverseTime {
    fn name(&self) -> &'static str {
        "inverse_time"
    }

    fn lr(&self, step: u64) -> f64 {
        self.base_lr / (1.0 + self.config.decay * step as f64).powf(self.config.power)
    }
}

/// Options of [`Polynomial`], named and defaulted as `torch.optim.lr_scheduler.PolynomialLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolynomialConfig {
    /// Steps until the rate reaches zero, at least 1 (default 5).
    pub total_iters: u64,
    /// Exponent of the decay, `>= 0` (default 1).
    pub power: f64,
}

impl Default for PolynomialConfig {
    fn default() -> Self {
        Self { total_iters: 5, power: 1.0 }
    }
}

/// `PolynomialLR`: polynomial decay to zero over `total_iters` steps, then zero.
///
/// ```text
/// lr(t) = lr₀ · (1 − min(t, total_iters) / total_iters)^power
/// ```
#[derive(Debug, Clone)]
pub struct Polynomial {
    base_lr: f64,
    config: PolynomialConfig,
}

impl Polynomial {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: PolynomialConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        at_least_one("total_iters", config.total_iters)?;
        non_negative("power", config.power)?;
        Ok(Self { base_lr, config })
    }
}

impl Schedule for Polynomial {
    fn name(&self) -> &'static str {
        "polynomial"
    }

    fn lr(&self, step: u64) -> f64 {
        let total = self.config.total_iters;
        let done = step.min(total) as f64 / total as f64;
        self.base_lr * (1.0 - done).powf(self.config.power)
    }
}

/// Options of [`Linear`], named and defaulted as `torch.optim.lr_scheduler.LinearLR`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearConfig {
    /// Factor at step 0, in `(0, 1]` (default 1/3).
    pub start_factor: f64,
    /// Factor from step `total_iters` on, in `[0, 1]` (default 1).
    pub end_factor: f64,
    /// Length of the ramp in steps, at least 1 (default 5).
    pub total_iters: u64,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self { start_factor: 1.0 / 3.0, end_factor: 1.0, total_iters: 5 }
    }
}

/// `LinearLR`: the factor moves linearly from `start_factor` to `end_factor` over
/// `total_iters` steps, then stays; the usual warmup.
///
/// ```text
/// lr(t) = lr₀ · (start_factor + (end_factor − start_factor) · min(t, total_iters) / total_iters)
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    base_lr: f64,
    config: LinearConfig,
}

impl Linear {
    /// Validates `config` and builds the schedule.
    pub fn new(base_lr: f64, config: LinearConfig) -> Result<Self, ConfigError> {
        check_base_lr(base_lr)?;
        if !(config.start_factor > 0.0 && config.start_factor <= 1.0) {
            return Err(ConfigError::new("start_factor", config.start_factor, "a number in (0, 1]"));
        }
        crate::error::closed_unit_interval("end_factor", config.end_factor)?;
        at_least_one("total_iters", config.total_iters)?;
        Ok(Self { base_lr, config })
    }
}

impl Schedule for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn lr(&self, step: u64) -> f64 {
        let c = &self.config;
        let done = step.min(c.total_iters) as f64 / c.total_iters as f64;
        self.base_lr * (c.start_factor + (c.end_factor - c.start_factor) * done)
    }
}
