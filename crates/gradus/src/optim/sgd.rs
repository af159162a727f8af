//! Stochastic gradient descent, with optional momentum (heavy ball) and Nesterov momentum.

use serde::{Deserialize, Serialize};

use super::{
    check_lengths, ensure_buffer, for_each_run, no_group_weight_decay, sparse_pieces, Optimizer, OptimizerState,
    SparseGrad,
};
use crate::error::{non_negative, ConfigError, StateError};
use crate::parallel::for_each_piece;
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`Sgd`], named and defaulted as in `torch.optim.SGD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (default 0: plain SGD).
    pub momentum: f64,
    /// Dampening τ of the momentum (default 0).
    pub dampening: f64,
    /// Use Nesterov momentum (default false; needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { lr: 1e-3, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0, maximize: false }
    }
}

impl SgdConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("lr", self.lr)?;
        non_negative("momentum", self.momentum)?;
        non_negative("dampening", self.dampening)?;
        non_negative("weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(ConfigError::new(
                "nesterov",
                format!("true with momentum {} and dampening {}", self.momentum, self.dampening),
                "momentum > 0 and dampening = 0 when nesterov is set",
            ));
        }
        Ok(())
    }
}

/// Stochastic gradient descent (`torch.optim.SGD`): plain, with momentum, or with Nesterov
/// momentum.
///
/// With learning rate γ, momentum μ, dampening τ, weight decay λ, at step t with gradient gₜ:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// g ← g + λ θ                                  (if λ ≠ 0)
/// if μ ≠ 0:
///     b ← g                 at the first step
///     b ← μ b + (1 − τ) g   afterwards
///     g ← g + μ b  if nesterov  else  b
/// θ ← θ − γ g
/// ```
///
/// Defaults as PyTorch: lr 1e-3, momentum 0, dampening 0, nesterov false, weight_decay 0.
/// Identical to PyTorch, including the first-step rule that the momentum buffer starts as the
/// undampened gradient.
///
/// With a row-sparse gradient ([`Optimizer::step_sparse`]) plain SGD (no momentum, no weight
/// decay) updates only the touched rows: the dense update leaves a row with a zero gradient as it
/// is, so the result is the dense one bit for bit (but for the sign of a parameter that is exactly
/// −0 when maximizing). As in PyTorch, whose `SGD` takes sparse gradients only without momentum and
/// weight decay in effect on them, momentum or weight decay move every row: then the sparse step
/// is the dense one.
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    groups: Option<ParamGroups>,
    step: u64,
    momentum_buffer: Vec<f32>,
}

impl Sgd {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: SgdConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, step: 0, momentum_buffer: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

impl Optimizer for Sgd {
    fn state_buffers(&self) -> usize {
        usize::from(self.config.momentum != 0.0)
    }

    fn name(&self) -> &'static str {
        "sgd"
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
        let first = self.step == 0;
        let momentum = c.momentum as f32;
        let one_minus_dampening = (1.0 - c.dampening) as f32;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        let nesterov = c.nesterov;
        if c.momentum != 0.0 {
            ensure_buffer(&mut self.momentum_buffer, len, 0.0);
        }
        let buffer = &mut self.momentum_buffer;
        for_each_run(self.groups.as_ref(), len, |run| {
            let lr = (c.lr * run.lr_scale) as f32;
            let wd = run.weight_decay.unwrap_or(c.weight_decay) as f32;
            let (p, g) = (&mut params[run.range.clone()], &grads[run.range.clone()]);
            if c.momentum == 0.0 {
                for_each_split(p, g, [], &move |p: &mut [f32], g: &[f32], []: [&mut [f32]; 0]| {
                    for (p, &g) in p.iter_mut().zip(g) {
                        let d = sign * g + wd * *p;
                        *p -= lr * d;
                    }
                });
            } else {
                let b = &mut buffer[run.range.clone()];
                // One branch-free loop per case, so each vectorizes.
                for_each_split(p, g, [b], &move |p: &mut [f32], g: &[f32], [b]: [&mut [f32]; 1]| {
                    let lanes = p.iter_mut().zip(g).zip(b.iter_mut());
                    match (first, nesterov) {
                        (true, false) => lanes.for_each(|((p, &g), b)| {
                            *b = sign * g + wd * *p;
                            *p -= lr * *b;
                        }),
                        (true, true) => lanes.for_each(|((p, &g), b)| {
                            let d = sign * g + wd * *p;
                            *b = d;
                            *p -= lr * (d + momentum * *b);
                        }),
                        (false, false) => lanes.for_each(|((p, &g), b)| {
                            let d = sign * g + wd * *p;
                            *b = momentum * *b + one_minus_dampening * d;
                            *p -= lr * *b;
                        }),
                        (false, true) => lanes.for_each(|((p, &g), b)| {
                            let d = sign * g + wd * *p;
                            *b = momentum * *b + one_minus_dampening * d;
                            *p -= lr * (d + momentum * *b);
                        }),
                    }
                });
            }
        });
        self.step += 1;
    }

    fn updates_sparse(&self) -> bool {
        self.config.momentum == 0.0 && self.config.weight_decay == 0.0 && no_group_weight_decay(self.groups.as_ref())
    }

    fn step_sparse(&mut self, params: &mut [f32], grads: &[f32], sparse: &SparseGrad<'_>) {
        if !self.updates_sparse() {
            return self.step(params, grads);
        }
        check_lengths(params, grads);
        let c = &self.config;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        let pieces = sparse_pieces(self.groups.as_ref(), params.len(), sparse, |run| {
            ((c.lr * run.lr_scale) as f32, run.weight_decay.unwrap_or(c.weight_decay) as f32)
        });
        let kernel = |[p]: [&mut [f32]; 1], [g]: [&[f32]; 1], (lr, wd): (f32, f32)| {
            // The dense loop's expression, so that touched elements come out bit for bit the same.
            for (p, &g) in p.iter_mut().zip(g) {
                let d = sign * g + wd * *p;
                *p -= lr * d;
            }
        };
        for_each_piece([params], [grads], &pieces, &kernel);
        self.step += 1;
    }

    fn steps(&self) -> u64 {
        self.step
    }

    fn state(&self) -> OptimizerState {
        let mut state = OptimizerState::new(self.name(), self.step, self.config.lr);
        state.buffers.insert("momentum_buffer".into(), self.momentum_buffer.clone());
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        self.momentum_buffer = state.buffer("momentum_buffer")?;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}
