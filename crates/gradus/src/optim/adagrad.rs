//! Adagrad: per-parameter step sizes shrinking with the sum of squared gradients.

use serde::{Deserialize, Serialize};

use super::{
    check_lengths, ensure_buffer, for_each_run, no_group_weight_decay, sparse_pieces, Optimizer, OptimizerState,
    SparseGrad,
};
use crate::error::{non_negative, ConfigError, StateError};
use crate::parallel::for_each_piece;
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`Adagrad`], named and defaulted as in `torch.optim.Adagrad`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdagradConfig {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay η: the step size at step t is γ / (1 + (t − 1) η) (default 0).
    pub lr_decay: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Starting value of the squared-gradient sum (default 0).
    pub initial_accumulator_value: f64,
    /// Term ε added to the denominator for numerical stability (default 1e-10).
    pub eps: f64,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self { lr: 1e-2, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10, maximize: false }
    }
}

impl AdagradConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("lr", self.lr)?;
        non_negative("lr_decay", self.lr_decay)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        non_negative("eps", self.eps)?;
        Ok(())
    }
}

/// Adagrad (`torch.optim.Adagrad`, Duchi et al. 2011): each parameter's step is divided by the
/// root of the sum of its squared gradients so far.
///
/// With learning rate γ, learning-rate decay η, weight decay λ, initial accumulator value s₀ and
/// ε, at step t with gradient gₜ:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// g ← g + λ θ                                  (if λ ≠ 0)
/// γₜ ← γ / (1 + (t − 1) η)
/// s ← s + g²                                   (s starts at s₀)
/// θ ← θ − γₜ g / (√s + ε)
/// ```
///
/// Defaults as PyTorch: lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0,
/// eps 1e-10. Identical to PyTorch's dense (single-tensor) update.
///
/// With a row-sparse gradient ([`Optimizer::step_sparse`]) and no weight decay, only the touched
/// rows are updated, as PyTorch's sparse Adagrad does: the dense update adds 0 to the sum and
/// subtracts 0 from a row with a zero gradient, so the result is the dense one bit for bit (but
/// where the dense update would divide 0 by 0: `eps` 0 and an accumulator still 0, which turns
/// an untouched parameter into NaN there and leaves it here). Weight decay moves every row (PyTorch
/// refuses it with sparse gradients): the sparse step is then the dense one.
#[derive(Debug, Clone)]
pub struct Adagrad {
    config: AdagradConfig,
    groups: Option<ParamGroups>,
    step: u64,
    /// The running sum of squared gradients (PyTorch's `sum`).
    sum: Vec<f32>,
}

impl Adagrad {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: AdagradConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, step: 0, sum: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &AdagradConfig {
        &self.config
    }
}

impl Optimizer for Adagrad {
    fn state_buffers(&self) -> usize {
        1
    }

    fn name(&self) -> &'static str {
        "adagrad"
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
        let t = (self.step + 1) as f64;
        let decay = 1.0 + (t - 1.0) * c.lr_decay;
        let eps = c.eps as f32;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        ensure_buffer(&mut self.sum, len, c.initial_accumulator_value as f32);
        let sum = &mut self.sum;
        for_each_run(self.groups.as_ref(), len, |run| {
            // PyTorch adds `-clr` times the quotient; negating is exact, so `θ − clr·g/d` is the same.
            let clr = (c.lr * run.lr_scale / decay) as f32;
            let wd = run.weight_decay.unwrap_or(c.weight_decay) as f32;
            let (p, g, s) = (&mut params[run.range.clone()], &grads[run.range.clone()], &mut sum[run.range.clone()]);
            for_each_split(p, g, [s], &move |p: &mut [f32], g: &[f32], [s]: [&mut [f32]; 1]| {
                for ((p, &g), s) in p.iter_mut().zip(g).zip(s.iter_mut()) {
                    let d = sign * g + wd * *p;
                    *s += d * d;
                    *p -= clr * d / (s.sqrt() + eps);
                }
            });
        });
        self.step += 1;
    }

    fn updates_sparse(&self) -> bool {
        self.config.weight_decay == 0.0 && no_group_weight_decay(self.groups.as_ref())
    }

    fn step_sparse(&mut self, params: &mut [f32], grads: &[f32], sparse: &SparseGrad<'_>) {
        if !self.updates_sparse() {
            return self.step(params, grads);
        }
        check_lengths(params, grads);
        let len = params.len();
        let c = &self.config;
        let t = (self.step + 1) as f64;
        let decay = 1.0 + (t - 1.0) * c.lr_decay;
        let eps = c.eps as f32;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        ensure_buffer(&mut self.sum, len, c.initial_accumulator_value as f32);
        let pieces = sparse_pieces(self.groups.as_ref(), len, sparse, |run| {
            ((c.lr * run.lr_scale / decay) as f32, run.weight_decay.unwrap_or(c.weight_decay) as f32)
        });
        let kernel = |[p, s]: [&mut [f32]; 2], [g]: [&[f32]; 1], (clr, wd): (f32, f32)| {
            // The dense loop's expression, so that touched elements come out bit for bit the same.
            for ((p, &g), s) in p.iter_mut().zip(g).zip(s.iter_mut()) {
                let d = sign * g + wd * *p;
                *s += d * d;
                *p -= clr * d / (s.sqrt() + eps);
            }
        };
        for_each_piece([params, &mut self.sum], [grads], &pieces, &kernel);
        self.step += 1;
    }

    fn steps(&self) -> u64 {
        self.step
    }

    fn state(&self) -> OptimizerState {
        let mut state = OptimizerState::new(self.name(), self.step, self.config.lr);
        state.buffers.insert("sum".into(), self.sum.clone());
        state
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        state.expect_kind(self.name())?;
        self.sum = state.buffer("sum")?;
        self.step = state.step;
        self.config.lr = state.lr;
        Ok(())
    }
}
