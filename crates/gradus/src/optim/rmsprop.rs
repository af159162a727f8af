//! RMSprop: steps divided by a running root-mean-square of the gradients, optionally centered and
//! with momentum.

use serde::{Deserialize, Serialize};

use super::{check_lengths, ensure_buffer, for_each_run, Optimizer, OptimizerState};
use crate::error::{closed_unit_interval, non_negative, ConfigError, StateError};
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`RmsProp`], named and defaulted as in `torch.optim.RMSprop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmsPropConfig {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Smoothing constant α of the running averages (default 0.99).
    pub alpha: f64,
    /// Term ε added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Momentum factor μ (default 0: no momentum buffer).
    pub momentum: f64,
    /// Divide by the centered second moment (an estimate of the gradient's variance) instead of
    /// the raw one (default false).
    pub centered: bool,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self { lr: 1e-2, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false, maximize: false }
    }
}

impl RmsPropConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("lr", self.lr)?;
        // PyTorch only asks for alpha >= 0; above 1 the average diverges, so it is refused here.
        closed_unit_interval("alpha", self.alpha)?;
        non_negative("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("momentum", self.momentum)?;
        Ok(())
    }
}

/// RMSprop (`torch.optim.RMSprop`, Hinton's lecture notes 2012; centered form from Graves 2013).
///
/// With learning rate γ, smoothing constant α, momentum μ, weight decay λ and ε, at step t with
/// gradient gₜ (`v`, `m` and `b` start at zero):
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// g ← g + λ θ                                  (if λ ≠ 0)
/// v ← α v + (1 − α) g²                         (square_avg)
/// if centered:
///     m ← m + (1 − α)(g − m)                   (grad_avg)
///     d ← √(v − m²) + ε
/// else:
///     d ← √v + ε
/// if μ > 0:
///     b ← μ b + g / d                          (momentum_buffer)
///     θ ← θ − γ b
/// else:
///     θ ← θ − γ g / d
/// ```
///
/// Defaults as PyTorch: lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered
/// false. Identical to PyTorch's single-tensor update (the `grad_avg` update is PyTorch's `lerp`).
/// Differs only in validation: `alpha` must lie in [0, 1], where PyTorch accepts any `alpha >= 0`.
#[derive(Debug, Clone)]
pub struct RmsProp {
    config: RmsPropConfig,
    groups: Option<ParamGroups>,
    step: u64,
    square_avg: Vec<f32>,
    /// Running mean of the gradients; only allocated when `centered`.
    grad_avg: Vec<f32>,
    /// Only allocated when `momentum > 0`.
    momentum_buffer: Vec<f32>,
}

impl RmsProp {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: RmsPropConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            groups: None,
            step: 0,
            square_avg: Vec::new(),
            grad_avg: Vec::new(),
            momentum_buffer: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RmsPropConfig {
        &self.config
    }
}

/// PyTorch's `lerp(start, end, weight)`: two formulas, picked by the size of the weight, keep it
/// exact at both ends. `weight` is the same for the whole buffer, so the branch is hoisted.
#[inline(always)]
fn lerp(start: f32, end: f32, weight: f32, small_weight: bool) -> f32 {
    if small_weight {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

impl Optimizer for RmsProp {
    fn state_buffers(&self) -> usize {
        1 + usize::from(self.config.momentum > 0.0) + usize::from(self.config.centered)
    }

    fn name(&self) -> &'static str {
        "rmsprop"
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
        let alpha = c.alpha as f32;
        let one_minus_alpha = (1.0 - c.alpha) as f32;
        let small_weight = one_minus_alpha.abs() < 0.5;
        let eps = c.eps as f32;
        let momentum = c.momentum as f32;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        let (centered, with_momentum) = (c.centered, c.momentum > 0.0);
        ensure_buffer(&mut self.square_avg, len, 0.0);
        if centered {
            ensure_buffer(&mut self.grad_avg, len, 0.0);
        }
        if with_momentum {
            ensure_buffer(&mut self.momentum_buffer, len, 0.0);
        }
        let (square_avg, grad_avg, momentum_buffer) =
            (&mut self.square_avg, &mut self.grad_avg, &mut self.momentum_buffer);
        for_each_run(self.groups.as_ref(), len, |run| {
            let r = run.range.clone();
            let lr = (c.lr * run.lr_scale) as f32;
            let wd = run.weight_decay.unwrap_or(c.weight_decay) as f32;
            let (p, g, v) = (&mut params[r.clone()], &grads[r.clone()], &mut square_avg[r.clone()]);
            // One loop per combination of options keeps the inner loops branch-free.
            match (centered, with_momentum) {
                (false, false) => {
                    for_each_split(p, g, [v], &move |p: &mut [f32], g: &[f32], [v]: [&mut [f32]; 1]| {
                        for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                            let g = sign * g + wd * *p;
                            *v = alpha * *v + one_minus_alpha * g * g;
                            *p -= lr * g / (v.sqrt() + eps);
                        }
                    });
                }
                (true, false) => {
                    let m = &mut grad_avg[r];
                    for_each_split(p, g, [v, m], &move |p: &mut [f32], g: &[f32], [v, m]: [&mut [f32]; 2]| {
                        for (((p, &g), v), m) in p.iter_mut().zip(g).zip(v.iter_mut()).zip(m.iter_mut()) {
                            let g = sign * g + wd * *p;
                            *v = alpha * *v + one_minus_alpha * g * g;
                            *m = lerp(*m, g, one_minus_alpha, small_weight);
                            *p -= lr * g / ((*v - *m * *m).sqrt() + eps);
                        }
                    });
                }
                (false, true) => {
                    let b = &mut momentum_buffer[r];
                    for_each_split(p, g, [v, b], &move |p: &mut [f32], g: &[f32], [v, b]: [&mut [f32]; 2]| {
                        for (((p, &g), v), b) in p.iter_mut().zip(g).zip(v.iter_mut()).zip(b.iter_mut()) {
                            let g = sign * g + wd * *p;
                            *v = alpha * *v + one_minus_alpha * g * g;
                            *b = momentum * *b + g / (v.sqrt() + eps);
                            *p -= lr * *b;
                        }
                    });
                }
                (true, true) => {
                    let (m, b) = (&mut grad_avg[r.clone()], &mut momentum_buffer[r]);
                    for_each_split(p, g, [v, m, b], &move |p: &mut [f32], g: &[f32], [v, m, b]: [&mut [f32]; 3]| {
                        let states = v.iter_mut().zip(m.iter_mut()).zip(b.iter_mut());
                        for ((p, &g), ((v, m), b)) in p.iter_mut().zip(g).zip(states) {
                            let g = sign * g + wd * *p;
                            *v = alpha * *v + one_minus_alpha * g * g;
                            *m = lerp(*m, g, one_minus_alpha, small_weight);
                            *b = momentum * *b + g / ((*v - *m * *m).sqrt() + eps);
                            *p -= lr * *b;
                        }
                    });
                }
            }
        });
        self.step += 1;
    }

    fn steps(&self) -> u64 {
        self.step
    }

    fn state(&self) -> OptimizerState {
        let mut state = OptimizerState::new(self.name(), self.step, self.config.lr);
        state.buffers.insert("square_avg".into(), self.square_avg.clone());
        state.buffers.insert("grad_avg".into(), self.grad_avg.clone());
        state.buffers.insert("momentum_buffer".into(), self.momentum_buffer.clone());
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        self.square_avg = state.buffer("square_avg")?;
        self.grad_avg = state.buffer("grad_avg")?;
        self.momentum_buffer = state.buffer("momentum_buffer")?;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}
