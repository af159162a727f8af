//! Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm.

use serde::{Deserialize, Serialize};

use super::{check_lengths, ensure_buffer, for_each_run, Optimizer, OptimizerState};
use crate::error::{non_negative, unit_interval, ConfigError, StateError};
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`Adamax`], named and defaulted as in `torch.optim.Adamax`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamaxConfig {
    /// Learning rate γ (default 2e-3).
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first moment and of the infinity norm (default [0.9, 0.999]).
    pub betas: [f64; 2],
    /// Term ε added to the gradient's magnitude for numerical stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        Self { lr: 2e-3, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.0, maximize: false }
    }
}

impl AdamaxConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("lr", self.lr)?;
        unit_interval("betas", self.betas[0])?;
        unit_interval("betas", self.betas[1])?;
        non_negative("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)?;
        Ok(())
    }
}

/// Adamax (`torch.optim.Adamax`, Kingma & Ba 2015, section 7).
///
/// With learning rate γ, decay rates β₁ and β₂, weight decay λ and ε, at step t with gradient gₜ
/// (`m` and `u` start at zero):
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// g ← g + λ θ                                  (if λ ≠ 0)
/// m ← m + (1 − β₁)(g − m)                      (exp_avg)
/// u ← max(β₂ u, |g| + ε)                       (exp_inf)
/// θ ← θ − γ / (1 − β₁ᵗ) · m / u
/// ```
///
/// Defaults as PyTorch: lr 2e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0. Identical to
/// PyTorch's single-tensor update (`exp_avg` moves by PyTorch's `lerp`, and a NaN in either
/// operand of the maximum gives NaN, as `torch.maximum` does).
#[derive(Debug, Clone)]
pub struct Adamax {
    config: AdamaxConfig,
    groups: Option<ParamGroups>,
    step: u64,
    exp_avg: Vec<f32>,
    exp_inf: Vec<f32>,
}

impl Adamax {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: AdamaxConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, step: 0, exp_avg: Vec::new(), exp_inf: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamaxConfig {
        &self.config
    }
}

/// PyTorch's `lerp(start, end, weight)`: two formulas, picked by the size of the weight, keep it
/// exact at both ends. `weight` is the same for the whole buffer, so the choice is loop-invariant.
#[inline(always)]
fn lerp(start: f32, end: f32, weight: f32, small_weight: bool) -> f32 {
    if small_weight {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

/// `torch.maximum`: the larger operand, or NaN when either is NaN (`f32::max` would drop it).
#[inline(always)]
fn maximum(a: f32, b: f32) -> f32 {
    let larger = if a > b { a } else { b };
    if a.is_nan() {
        a
    } else {
        larger
    }
}

impl Optimizer for Adamax {
    fn name(&self) -> &'static str {
        "adamax"
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
        let [beta1, beta2] = c.betas;
        let t = (self.step + 1) as f64;
        // PyTorch computes `beta1 ** step` with the step as a Python float.
        let bias_correction = 1.0 - beta1.powf(t);
        let one_minus_beta1 = (1.0 - beta1) as f32;
        let small_weight = one_minus_beta1.abs() < 0.5;
        let beta2 = beta2 as f32;
        let eps = c.eps as f32;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        ensure_buffer(&mut self.exp_avg, len, 0.0);
        ensure_buffer(&mut self.exp_inf, len, 0.0);
        let (exp_avg, exp_inf) = (&mut self.exp_avg, &mut self.exp_inf);
        for_each_run(self.groups.as_ref(), len, |run| {
            let r = run.range.clone();
            let clr = (c.lr * run.lr_scale / bias_correction) as f32;
            let wd = run.weight_decay.unwrap_or(c.weight_decay) as f32;
            let (p, g) = (&mut params[r.clone()], &grads[r.clone()]);
            let (m, u) = (&mut exp_avg[r.clone()], &mut exp_inf[r]);
            for_each_split(p, g, [m, u], &move |p: &mut [f32], g: &[f32], [m, u]: [&mut [f32]; 2]| {
                for (((p, &g), m), u) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(u.iter_mut()) {
                    let g = sign * g + wd * *p;
                    *m = lerp(*m, g, one_minus_beta1, small_weight);
                    *u = maximum(beta2 * *u, g.abs() + eps);
                    *p -= clr * *m / *u;
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
        state.buffers.insert("exp_inf".into(), self.exp_inf.clone());
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        self.exp_avg = state.buffer("exp_avg")?;
        self.exp_inf = state.buffer("exp_inf")?;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}
