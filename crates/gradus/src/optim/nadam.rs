//! NAdam (Dozat, 2016): Adam with Nesterov momentum and a momentum schedule.

use serde::{Deserialize, Serialize};

use super::adam::{load_buffers, update_moments, validate_adam_options, MomentScalars};
use super::{check_lengths, ensure_buffer, for_each_run, Optimizer, OptimizerState};
use crate::error::{non_negative, ConfigError, StateError};
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`NAdam`], named and defaulted as in `torch.optim.NAdam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NAdamConfig {
    /// Learning rate γ (default 2e-3).
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first and second moment averages (default [0.9, 0.999]).
    pub betas: [f64; 2],
    /// Term ε added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// Weight decay λ (default 0): an L2 term added to the gradient, or decoupled (as AdamW) when
    /// `decoupled_weight_decay` is set.
    pub weight_decay: f64,
    /// Momentum decay ψ of the momentum schedule (default 4e-3).
    pub momentum_decay: f64,
    /// Shrink the parameters by `γλ` directly instead of adding `λθ` to the gradient (default false).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for NAdamConfig {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl NAdamConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_adam_options(self.lr, self.betas, self.eps, self.weight_decay)?;
        non_negative("momentum_decay", self.momentum_decay)
    }
}

/// NAdam (`torch.optim.NAdam`): Adam with Nesterov momentum, whose momentum factor μₜ follows the
/// schedule of Dozat (2016).
///
/// With learning rate γ, decay rates β₁ and β₂, ε, weight decay λ, momentum decay ψ, at step t
/// (counting from 1) with gradient gₜ:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// θ ← θ (1 − γλ)        if decoupled_weight_decay   else   g ← g + λ θ
/// μₜ ← β₁ (1 − ½ · 0.96^(t ψ)),  μₜ₊₁ ← β₁ (1 − ½ · 0.96^((t+1) ψ))
/// Πₜ ← Πₜ₋₁ μₜ                                  (Π₀ = 1: the running `mu_product`)
/// m ← β₁ m + (1 − β₁) g
/// v ← β₂ v + (1 − β₂) g²
/// d ← √(v / (1 − β₂ᵗ)) + ε
/// θ ← θ − γ (1 − μₜ) / (1 − Πₜ) · g / d − γ μₜ₊₁ / (1 − Πₜ μₜ₊₁) · m / d
/// ```
///
/// Defaults as PyTorch: lr 2e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, momentum_decay 4e-3,
/// decoupled_weight_decay false, maximize false. Identical to PyTorch's single-tensor path
/// (`foreach=False`) in the order of its `f32` operations. PyTorch keeps `mu_product` in a
/// float32 tensor; gradus keeps it as an `f64` scalar but rounds it to `f32` after each product in
/// the same way, so that the step sizes agree.
#[derive(Debug, Clone)]
pub struct NAdam {
    config: NAdamConfig,
    groups: Option<ParamGroups>,
    step: u64,
    mu_product: f64,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
}

impl NAdam {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: NAdamConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, step: 0, mu_product: 1.0, exp_avg: Vec::new(), exp_avg_sq: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &NAdamConfig {
        &self.config
    }
}

/// Per-run factors of the NAdam update.
#[derive(Clone, Copy)]
struct NAdamScalars {
    moments: MomentScalars,
    bias_correction2: f32,
    eps: f32,
    /// −γ (1 − μₜ) / (1 − Πₜ), the factor of the gradient.
    grad_factor: f32,
    /// −γ μₜ₊₁ / (1 − Πₜ μₜ₊₁), the factor of the first moment.
    exp_avg_factor: f32,
}

impl Optimizer for NAdam {
    fn name(&self) -> &'static str {
        "nadam"
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
        let bias_correction2 = 1.0 - beta2.powf(t);
        let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(t * c.momentum_decay));
        let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * c.momentum_decay));
        // PyTorch multiplies a float32 tensor by μₜ: the product is rounded to f32.
        self.mu_product = (self.mu_product as f32 * mu as f32) as f64;
        let mu_product = self.mu_product;
        let mu_product_next = mu_product * mu_next;
        let (exp_avg, exp_avg_sq) = (&mut self.exp_avg, &mut self.exp_avg_sq);
        for_each_run(self.groups.as_ref(), len, |run| {
            let lr = c.lr * run.lr_scale;
            let weight_decay = run.weight_decay.unwrap_or(c.weight_decay);
            let (moments, l2) = MomentScalars::new(lr, c.betas, weight_decay, c.decoupled_weight_decay, c.maximize);
            let s = NAdamScalars {
                moments,
                bias_correction2: bias_correction2 as f32,
                eps: c.eps as f32,
                grad_factor: (-lr * (1.0 - mu) / (1.0 - mu_product)) as f32,
                exp_avg_factor: (-lr * mu_next / (1.0 - mu_product_next)) as f32,
            };
            let r = run.range.clone();
            let (p, g, m, v) = (&mut params[r.clone()], &grads[r.clone()], &mut exp_avg[r.clone()], &mut exp_avg_sq[r]);
            match (l2, moments.lerp.from_start) {
                (false, false) => nadam_run::<false, false>(p, g, m, v, &s),
                (false, true) => nadam_run::<false, true>(p, g, m, v, &s),
                (true, false) => nadam_run::<true, false>(p, g, m, v, &s),
                (true, true) => nadam_run::<true, true>(p, g, m, v, &s),
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
        state.scalars.insert("mu_product".into(), self.mu_product);
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        let [exp_avg, exp_avg_sq] = load_buffers(state, ["exp_avg", "exp_avg_sq"])?;
        let mu_product = state.scalar("mu_product")?;
        self.exp_avg = exp_avg;
        self.exp_avg_sq = exp_avg_sq;
        self.mu_product = mu_product;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}

/// One fused pass over θ, g, m, v.
fn nadam_run<const L2: bool, const FROM_START: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: &NAdamScalars,
) {
    let s = *s;
    for_each_split(p, g, [m, v], &move |p: &mut [f32], g: &[f32], [m, v]: [&mut [f32]; 2]| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let (decayed, g) = update_moments::<L2, FROM_START>(&s.moments, *p, g, m, v);
            let denom = (*v / s.bias_correction2).sqrt() + s.eps;
            // Two additions, rounded one after the other as PyTorch's two `addcdiv_` calls are.
            let p1 = decayed + s.grad_factor * g / denom;
            *p = p1 + s.exp_avg_factor * *m / denom;
        }
    });
}
