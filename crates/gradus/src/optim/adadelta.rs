//! Adadelta: steps scaled by the ratio of running root-mean-squares of past updates and gradients.

use serde::{Deserialize, Serialize};

use super::{check_lengths, ensure_buffer, for_each_run, Optimizer, OptimizerState};
use crate::error::{closed_unit_interval, non_negative, ConfigError, StateError};
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`Adadelta`], named and defaulted as in `torch.optim.Adadelta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdadeltaConfig {
    /// Learning rate γ scaling the delta (default 1.0).
    pub lr: f64,
    /// Decay rate ρ of the running averages (default 0.9).
    pub rho: f64,
    /// Term ε added inside both square roots for numerical stability (default 1e-6).
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        Self { lr: 1.0, rho: 0.9, eps: 1e-6, weight_decay: 0.0, maximize: false }
    }
}

impl AdadeltaConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("lr", self.lr)?;
        closed_unit_interval("rho", self.rho)?;
        non_negative("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)?;
        Ok(())
    }
}

/// Adadelta (`torch.optim.Adadelta`, Zeiler 2012).
///
/// With learning rate γ, decay rate ρ, weight decay λ and ε, at step t with gradient gₜ (`v` and
/// `u` start at zero):
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// g ← g + λ θ                                  (if λ ≠ 0)
/// v ← ρ v + (1 − ρ) g²                         (square_avg)
/// Δ ← √(u + ε) / √(v + ε) · g
/// u ← ρ u + (1 − ρ) Δ²                         (acc_delta)
/// θ ← θ − γ Δ
/// ```
///
/// Defaults as PyTorch: lr 1.0, rho 0.9, eps 1e-6, weight_decay 0. Identical to PyTorch's
/// single-tensor update.
#[derive(Debug, Clone)]
pub struct Adadelta {
    config: AdadeltaConfig,
    groups: Option<ParamGroups>,
    step: u64,
    square_avg: Vec<f32>,
    acc_delta: Vec<f32>,
}

impl Adadelta {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: AdadeltaConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, step: 0, square_avg: Vec::new(), acc_delta: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &AdadeltaConfig {
        &self.config
    }
}

impl Optimizer for Adadelta {
    fn name(&self) -> &'static str {
        "adadelta"
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
        let c = &self.config;
        let rho = c.rho as f32;
        let one_minus_rho = (1.0 - c.rho) as f32;
        let eps = c.eps as f32;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        ensure_buffer(&mut self.square_avg, len, 0.0);
        ensure_buffer(&mut self.acc_delta, len, 0.0);
        let (square_avg, acc_delta) = (&mut self.square_avg, &mut self.acc_delta);
        for_each_run(self.groups.as_ref(), len, |run| {
            let r = run.range.clone();
            let lr = (c.lr * run.lr_scale) as f32;
            let wd = run.weight_decay.unwrap_or(c.weight_decay) as f32;
            let (p, g) = (&mut params[r.clone()], &grads[r.clone()]);
            let (v, u) = (&mut square_avg[r.clone()], &mut acc_delta[r]);
            for_each_split(p, g, [v, u], &move |p: &mut [f32], g: &[f32], [v, u]: [&mut [f32]; 2]| {
                for (((p, &g), v), u) in p.iter_mut().zip(g).zip(v.iter_mut()).zip(u.iter_mut()) {
                    let g = sign * g + wd * *p;
                    *v = rho * *v + one_minus_rho * g * g;
                    // PyTorch's order: the ratio of the roots first, then times the gradient.
                    let delta = (*u + eps).sqrt() / (*v + eps).sqrt() * g;
                    *u = rho * *u + one_minus_rho * delta * delta;
                    *p -= lr * delta;
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
        state.buffers.insert("square_avg".into(), self.square_avg.clone());
        state.buffers.insert("acc_delta".into(), self.acc_delta.clone());
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        self.square_avg = state.buffer("square_avg")?;
        self.acc_delta = state.buffer("acc_delta")?;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}
