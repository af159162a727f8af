//! SparseAdam: the lazy Adam of `torch.optim.SparseAdam`, whose moments move only for the rows a
//! step's gradient touched.

use serde::{Deserialize, Serialize};

use super::adam::{validate_adam_options, AdamHyper, AdamMoments};
use super::{check_lengths, sparse_pieces, Optimizer, OptimizerState, SparseGrad};
use crate::error::{ConfigError, StateError};
use crate::parallel::for_each_piece;
use crate::params::ParamGroups;

/// Hyperparameters of [`SparseAdam`], named and defaulted as in `torch.optim.SparseAdam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparseAdamConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the moment estimates (default (0.9, 0.999)).
    pub betas: [f64; 2],
    /// Term ε added to the denominator (default 1e-8).
    pub eps: f64,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for SparseAdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, maximize: false }
    }
}

impl SparseAdamConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_adam_options(self.lr, self.betas, self.eps, 0.0)
    }
}

/// SparseAdam (`torch.optim.SparseAdam`): Adam made lazy for row-sparse gradients. On a step
/// given a row-sparse gradient ([`Optimizer::step_sparse`]), the moments and the parameters of
/// only the touched rows move; the step count t is global (it counts every step, so a row's bias
/// correction uses the number of steps taken, not the number of times the row was seen).
///
/// For each touched row, with learning rate γ, decay rates β₁ and β₂ and ε, at step t:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// m ← m + (1 − β₁)(g − m)
/// v ← v + (1 − β₂)(g² − v)
/// θ ← θ − (γ √(1 − β₂ᵗ) / (1 − β₁ᵗ)) · m / (√v + ε)
/// ```
///
/// in PyTorch's order of operations (the moments by increments, ε added to √v, the step size in
/// `f64`). The dense segments of the gradient (every segment that is not row-sparse) and every
/// element in a dense [`Optimizer::step`] get [`super::Adam`]'s update, bit for bit, with the
/// same moment buffers: where PyTorch's `SparseAdam` refuses dense gradients, gradus lets one
/// optimizer train an embedding table and the dense layers above it.
///
/// How it differs from dense Adam on a row-sparse segment: a row that a step does not touch keeps
/// its moments, where Adam decays them (m ← β₁m, v ← β₂v) and still moves the parameter by the
/// decayed momentum. Without weight decay or AMSGrad (PyTorch's `SparseAdam` has neither).
/// Parameter groups' learning-rate factors apply; their weight decay applies to dense segments
/// only.
#[derive(Debug, Clone)]
pub struct SparseAdam {
    config: SparseAdamConfig,
    groups: Option<ParamGroups>,
    /// Step count and moments, shared with the dense (Adam) update.
    moments: AdamMoments,
}

impl SparseAdam {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: SparseAdamConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, moments: AdamMoments::default() })
    }

    /// The configuration.
    pub fn config(&self) -> &SparseAdamConfig {
        &self.config
    }

    fn hyper(&self) -> AdamHyper {
        let c = &self.config;
        AdamHyper {
            lr: c.lr,
            betas: c.betas,
            eps: c.eps,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: c.maximize,
            decoupled: false,
        }
    }
}

impl Optimizer for SparseAdam {
    fn name(&self) -> &'static str {
        "sparse_adam"
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
        let hyper = self.hyper();
        self.moments.step(&hyper, self.groups.as_ref(), params, grads);
    }

    fn updates_sparse(&self) -> bool {
        true
    }

    fn step_sparse(&mut self, params: &mut [f32], grads: &[f32], sparse: &SparseGrad<'_>) {
        check_lengths(params, grads);
        let hyper = self.hyper();
        // Adam on the dense segments; this allocates the moments and counts the step.
        self.moments.step_ranges(&hyper, self.groups.as_ref(), params, grads, sparse.dense);
        let c = &self.config;
        let t = self.moments.step as f64;
        let [beta1, beta2] = c.betas;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let (one_minus_beta1, one_minus_beta2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
        let eps = c.eps as f32;
        let sign = if c.maximize { -1.0f32 } else { 1.0 };
        let rows = SparseGrad { dense: &[], segments: sparse.segments };
        // Each touched piece with its step size; the pieces run on rayon's threads when many.
        let pieces = sparse_pieces(self.groups.as_ref(), params.len(), &rows, |run| {
            (-(c.lr * run.lr_scale * bias_correction2.sqrt() / bias_correction1)) as f32
        });
        let (exp_avg, exp_avg_sq) = (&mut self.moments.exp_avg, &mut self.moments.exp_avg_sq);
        let kernel = |[p, m, v]: [&mut [f32]; 3], [g]: [&[f32]; 1], neg_step_size: f32| {
            let lanes = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
            for (((p, &g), m), v) in lanes {
                let g = sign * g;
                // PyTorch's increments: `update = (new − old)·(1 − β)`, the moment `old + update`,
                // and the numerator and denominator from `update + old` again (the same sums).
                let (m_old, v_old) = (*m, *v);
                let m_update = (g - m_old) * one_minus_beta1;
                let v_update = (g * g - v_old) * one_minus_beta2;
                *m = m_old + m_update;
                *v = v_old + v_update;
                let numer = m_update + m_old;
                let denom = (v_update + v_old).sqrt() + eps;
                *p += neg_step_size * (numer / denom);
            }
        };
        for_each_piece([params, exp_avg, exp_avg_sq], [grads], &pieces, &kernel);
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
