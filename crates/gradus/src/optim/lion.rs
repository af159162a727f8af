//! Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"): sign momentum.

use serde::{Deserialize, Serialize};

use super::adam::load_buffers;
use super::{check_lengths, ensure_buffer, for_each_run, Optimizer, OptimizerState};
use crate::error::{non_negative, unit_interval, ConfigError, StateError};
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`Lion`], named and defaulted as in the paper's reference implementation
/// (PyTorch has no Lion; the names follow its conventions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LionConfig {
    /// Learning rate γ (default 1e-4; typically 3–10× smaller than AdamW's).
    pub lr: f64,
    /// Interpolation rate β₁ of the update direction and decay rate β₂ of the momentum
    /// (default [0.9, 0.99]).
    pub betas: [f64; 2],
    /// Decoupled weight decay λ (default 0).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for LionConfig {
    fn default() -> Self {
        Self { lr: 1e-4, betas: [0.9, 0.99], weight_decay: 0.0, maximize: false }
    }
}

impl LionConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("lr", self.lr)?;
        unit_interval("betas", self.betas[0])?;
        unit_interval("betas", self.betas[1])?;
        non_negative("weight_decay", self.weight_decay)
    }
}

/// Lion (EvoLved Sign Momentum): every coordinate moves by exactly ±γ (plus weight decay), in the
/// direction of the sign of an interpolation between the momentum and the gradient.
///
/// With learning rate γ, rates β₁ and β₂, weight decay λ, at each step with gradient gₜ:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// c ← β₁ m + (1 − β₁) g
/// θ ← θ − γ (sign(c) + λ θ)                    (sign(0) = 0)
/// m ← β₂ m + (1 − β₂) g
/// ```
///
/// Defaults as the paper: lr 1e-4, betas (0.9, 0.99), weight_decay 0. There is no PyTorch Lion;
/// this follows the paper's Algorithm 2. The momentum starts at zero.
#[derive(Debug, Clone)]
pub struct Lion {
    config: LionConfig,
    groups: Option<ParamGroups>,
    step: u64,
    exp_avg: Vec<f32>,
}

impl Lion {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: LionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, step: 0, exp_avg: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &LionConfig {
        &self.config
    }
}

impl Optimizer for Lion {
    fn state_buffers(&self) -> usize {
        1
    }

    fn name(&self) -> &'static str {
        "lion"
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
        check_lengths(params, grads);
        let len = params.len();
        ensure_buffer(&mut self.exp_avg, len, 0.0);
        let c = &self.config;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        let [beta1, beta2] = c.betas;
        let (beta1, one_minus_beta1) = (beta1 as f32, (1.0 - beta1) as f32);
        let (beta2, one_minus_beta2) = (beta2 as f32, (1.0 - beta2) as f32);
        let exp_avg = &mut self.exp_avg;
        for_each_run(self.groups.as_ref(), len, |run| {
            let lr = (c.lr * run.lr_scale) as f32;
            // With λ = 0 the term λθ is exactly 0, so one loop serves both cases.
            let wd = run.weight_decay.unwrap_or(c.weight_decay) as f32;
            let r = run.range.clone();
            let (p, g, m) = (&mut params[r.clone()], &grads[r.clone()], &mut exp_avg[r]);
            for_each_split(p, g, [m], &move |p: &mut [f32], g: &[f32], [m]: [&mut [f32]; 1]| {
                for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                    let g = sign * g;
                    let c = beta1 * *m + one_minus_beta1 * g;
                    // sign(0) = 0; a NaN stays NaN (`f32::signum` alone maps ±0 to ±1).
                    let direction = if c == 0.0 { 0.0 } else { c.signum() };
                    *p -= lr * (direction + wd * *p);
                    *m = beta2 * *m + one_minus_beta2 * g;
                }
            });
        });
        self.step += 1;
    }

    fn steps(&self) -> u64 {
        self.step
    }

    fn state(&self) -> OptimizerState {
        let mut state = OptimizerState::new(self.name(), self.step, self.config.lr);
        state.buffers.insert("exp_avg".into(), self.exp_avg.clone());
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        let [exp_avg] = load_buffers(state, ["exp_avg"])?;
        self.exp_avg = exp_avg;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}
