//! AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

use serde::{Deserialize, Serialize};

use super::adam::{validate_adam_options, AdamHyper, AdamMoments};
use super::{Optimizer, OptimizerState};
use crate::error::{ConfigError, StateError};
use crate::params::ParamGroups;

/// Hyperparameters of [`AdamW`], named and defaulted as in `torch.optim.AdamW`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first and second moment averages (default [0.9, 0.999]).
    pub betas: [f64; 2],
    /// Term ε added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay λ: parameters shrink by `γλ` of themselves each step (default 1e-2).
    pub weight_decay: f64,
    /// Normalize by the running maximum of the second moment (AMSGrad, default false).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 1e-2, amsgrad: false, maximize: false }
    }
}

impl AdamWConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_adam_options(self.lr, self.betas, self.eps, self.weight_decay)
    }
}

/// AdamW (`torch.optim.AdamW`): Adam whose weight decay shrinks the parameters directly instead of
/// entering the gradient, so it is not rescaled by the adaptive denominator.
///
/// With learning rate γ, decay rates β₁ and β₂, ε, weight decay λ, at step t (counting from 1) with
/// gradient gₜ:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// θ ← θ (1 − γλ)
/// m ← β₁ m + (1 − β₁) g
/// v ← β₂ v + (1 − β₂) g²
/// v̂ ← max(v̂, v) if amsgrad else v
/// θ ← θ − γ / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
/// ```
///
/// Defaults as PyTorch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2, amsgrad false,
/// maximize false. Runs the same kernel as [`Adam`](super::adam::Adam), so it is identical to
/// PyTorch's single-tensor path in the same way.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    groups: Option<ParamGroups>,
    moments: AdamMoments,
}

impl AdamW {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: AdamWConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, moments: AdamMoments::default() })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }
}

impl Optimizer for AdamW {
    fn state_buffers(&self) -> usize {
        2 + usize::from(self.config.amsgrad)
    }

    fn name(&self) -> &'static str {
        "adamw"
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn set_groups(&mut self, groups: ParamGroups) {
        self.groups = Some(groups);
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let c = &self.config;
        let hyper = AdamHyper {
            lr: c.lr,
            betas: c.betas,
            eps: c.eps,
            weight_decay: c.weight_decay,
            amsgrad: c.amsgrad,
            maximize: c.maximize,
            decoupled: true,
        };
        self.moments.step(&hyper, self.groups.as_ref(), params, grads);
    }

    fn steps(&self) -> u64 {
        self.moments.step
    }

    fn state(&self) -> OptimizerState {
        self.moments.state(self.name(), self.config.lr)
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        self.moments.load(state)?;
        self.config.lr = state.lr;
        Ok(())
    }
}
