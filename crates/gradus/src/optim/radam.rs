//! RAdam (Liu et al., 2020): Adam with a rectified adaptive learning rate.

use serde::{Deserialize, Serialize};

use super::adam::{load_buffers, update_moments, validate_adam_options, MomentScalars};
use super::{check_lengths, ensure_buffer, for_each_run, Optimizer, OptimizerState};
use crate::error::{ConfigError, StateError};
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`RAdam`], named and defaulted as in `torch.optim.RAdam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RAdamConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first and second moment averages (default [0.9, 0.999]).
    pub betas: [f64; 2],
    /// Term ε added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// Weight decay λ (default 0): an L2 term added to the gradient, or decoupled (as AdamW) when
    /// `decoupled_weight_decay` is set.
    pub weight_decay: f64,
    /// Shrink the parameters by `γλ` directly instead of adding `λθ` to the gradient (default false).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for RAdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl RAdamConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_adam_options(self.lr, self.betas, self.eps, self.weight_decay)
    }
}

/// RAdam (`torch.optim.RAdam`): Adam whose adaptive step is switched on, and scaled by a
/// rectification factor, only once the variance of the adaptive learning rate is tractable.
///
/// With learning rate γ, decay rates β₁ and β₂, ε, weight decay λ, at step t (counting from 1) with
/// gradient gₜ:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// θ ← θ (1 − γλ)        if decoupled_weight_decay   else   g ← g + λ θ
/// m ← β₁ m + (1 − β₁) g
/// v ← β₂ v + (1 − β₂) g²
/// m̂ ← m / (1 − β₁ᵗ)
/// ρ∞ ← 2 / (1 − β₂) − 1,   ρₜ ← ρ∞ − 2 t β₂ᵗ / (1 − β₂ᵗ)
/// if ρₜ > 5:
///     r ← √((ρₜ − 4)(ρₜ − 2) ρ∞ / ((ρ∞ − 4)(ρ∞ − 2) ρₜ))
///     θ ← θ − γ m̂ · √(1 − β₂ᵗ) / (√v + ε) · r
/// else:
///     θ ← θ − γ m̂
/// ```
///
/// Defaults as PyTorch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0,
/// decoupled_weight_decay false, maximize false. Identical to PyTorch's single-tensor path
/// (`foreach=False`) in the order of its `f32` operations.
#[derive(Debug, Clone)]
pub struct RAdam {
    config: RAdamConfig,
    groups: Option<ParamGroups>,
    step: u64,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
}

impl RAdam {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: RAdamConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, step: 0, exp_avg: Vec::new(), exp_avg_sq: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &RAdamConfig {
        &self.config
    }
}

/// Per-run factors of the RAdam update.
#[derive(Clone, Copy)]
struct RAdamScalars {
    moments: MomentScalars,
    bias_correction1: f32,
    lr: f32,
    /// √(1 − β₂ᵗ).
    bias_correction2_sqrt: f32,
    eps: f32,
    /// The rectification factor r (used only when ρₜ > 5).
    rect: f32,
}

impl Optimizer for RAdam {
    fn name(&self) -> &'static str {
        "radam"
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
        ensure_buffer(&mut self.exp_avg_sq, len, 0.0);
        self.step += 1;
        let c = &self.config;
        let t = self.step as f64;
        let [beta1, beta2] = c.betas;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * beta2.powf(t) / bias_correction2;
        let rectified = rho_t > 5.0;
        let rect = if rectified {
            ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt()
        } else {
            0.0
        };
        let (exp_avg, exp_avg_sq) = (&mut self.exp_avg, &mut self.exp_avg_sq);
        for_each_run(self.groups.as_ref(), len, |run| {
            let lr = c.lr * run.lr_scale;
            let weight_decay = run.weight_decay.unwrap_or(c.weight_decay);
            let (moments, l2) = MomentScalars::new(lr, c.betas, weight_decay, c.decoupled_weight_decay, c.maximize);
            let s = RAdamScalars {
                moments,
                bias_correction1: bias_correction1 as f32,
                lr: lr as f32,
                bias_correction2_sqrt: bias_correction2.sqrt() as f32,
                eps: c.eps as f32,
                rect: rect as f32,
            };
            let r = run.range.clone();
            let (p, g, m, v) = (&mut params[r.clone()], &grads[r.clone()], &mut exp_avg[r.clone()], &mut exp_avg_sq[r]);
            match (rectified, l2, moments.lerp.from_start) {
                (false, false, false) => radam_run::<false, false, false>(p, g, m, v, &s),
                (false, false, true) => radam_run::<false, false, true>(p, g, m, v, &s),
                (false, true, false) => radam_run::<false, true, false>(p, g, m, v, &s),
                (false, true, true) => radam_run::<false, true, true>(p, g, m, v, &s),
                (true, false, false) => radam_run::<true, false, false>(p, g, m, v, &s),
                (true, false, true) => radam_run::<true, false, true>(p, g, m, v, &s),
                (true, true, false) => radam_run::<true, true, false>(p, g, m, v, &s),
                (true, true, true) => radam_run::<true, true, true>(p, g, m, v, &s),
            }
        });
    }

    fn steps(&self) -> u64 {
        self.step
    }

    fn state(&self) -> OptimizerState {
        let mut state = OptimizerState::new(self.name(), self.step, self.config.lr);
        state.buffers.insert("exp_avg".into(), self.exp_avg.clone());
        state.buffers.insert("exp_avg_sq".into(), self.exp_avg_sq.clone());
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        let [exp_avg, exp_avg_sq] = load_buffers(state, ["exp_avg", "exp_avg_sq"])?;
        self.exp_avg = exp_avg;
        self.exp_avg_sq = exp_avg_sq;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}

/// One fused pass over θ, g, m, v; `RECTIFIED` says whether ρₜ > 5 this step.
fn radam_run<const RECTIFIED: bool, const L2: bool, const FROM_START: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: &RAdamScalars,
) {
    let s = *s;
    for_each_split(p, g, [m, v], &move |p: &mut [f32], g: &[f32], [m, v]: [&mut [f32]; 2]| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let (decayed, _) = update_moments::<L2, FROM_START>(&s.moments, *p, g, m, v);
            let corrected = *m / s.bias_correction1;
            // PyTorch's order: ((m̂ · γ) · adaptive_lr) · r.
            let update = if RECTIFIED {
                let adaptive_lr = s.bias_correction2_sqrt / (v.sqrt() + s.eps);
                corrected * s.lr * adaptive_lr * s.rect
            } else {
                corrected * s.lr
            };
            *p = decayed - update;
        }
    });
}
