//! Adam (Kingma & Ba, 2015), with the AMSGrad variant; its kernel is shared with [`AdamW`](super::adamw::AdamW).

use serde::{Deserialize, Serialize};

use super::{check_lengths, ensure_buffer, for_each_sparse_piece, Optimizer, OptimizerState, SparseGrad};
use crate::error::{non_negative, unit_interval, ConfigError, StateError};
use crate::parallel::for_each_split;
use crate::params::ParamGroups;

/// Hyperparameters of [`Adam`], named and defaulted as in `torch.optim.Adam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first and second moment averages (default [0.9, 0.999]).
    pub betas: [f64; 2],
    /// Term ε added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Normalize by the running maximum of the second moment (AMSGrad, default false).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it (default false).
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.0, amsgrad: false, maximize: false }
    }
}

impl AdamConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_adam_options(self.lr, self.betas, self.eps, self.weight_decay)
    }
}

/// The checks shared by every Adam-family configuration.
pub(crate) fn validate_adam_options(lr: f64, betas: [f64; 2], eps: f64, weight_decay: f64) -> Result<(), ConfigError> {
    non_negative("lr", lr)?;
    unit_interval("betas", betas[0])?;
    unit_interval("betas", betas[1])?;
    non_negative("eps", eps)?;
    non_negative("weight_decay", weight_decay)
}

/// Adam (`torch.optim.Adam`): adaptive moment estimation, optionally AMSGrad.
///
/// With learning rate γ, decay rates β₁ and β₂, ε, weight decay λ, at step t (counting from 1) with
/// gradient gₜ:
///
/// ```text
/// g ← −gₜ if maximize else gₜ
/// g ← g + λ θ                                  (if λ ≠ 0)
/// m ← β₁ m + (1 − β₁) g
/// v ← β₂ v + (1 − β₂) g²
/// v̂ ← max(v̂, v) if amsgrad else v
/// θ ← θ − γ / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
/// ```
///
/// Defaults as PyTorch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, amsgrad false,
/// maximize false. Identical to PyTorch's single-tensor path (`foreach=False`) in the order of its
/// `f32` operations (`m` is updated with PyTorch's `lerp` formula); the bias corrections and step size
/// are computed in `f64` as PyTorch computes them in Python floats. The moments start at zero.
#[derive(Debug, Clone)]
pub struct Adam {
    config: AdamConfig,
    groups: Option<ParamGroups>,
    moments: AdamMoments,
}

impl Adam {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: AdamConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, groups: None, moments: AdamMoments::default() })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
}

impl Optimizer for Adam {
    fn state_buffers(&self) -> usize {
        2 + usize::from(self.config.amsgrad)
    }

    fn name(&self) -> &'static str {
        "adam"
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
            decoupled: false,
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

/// The options the shared Adam kernel needs, whichever public configuration they came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamHyper {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub maximize: bool,
    /// Decay the parameters directly (AdamW) instead of adding an L2 term to the gradient (Adam).
    pub decoupled: bool,
}

/// The state of Adam and AdamW: step count and moment buffers, allocated on the first step.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdamMoments {
    pub step: u64,
    pub(crate) exp_avg: Vec<f32>,
    pub(crate) exp_avg_sq: Vec<f32>,
    max_exp_avg_sq: Vec<f32>,
}

/// Per-run factors of the moment updates shared by Adam, AdamW, NAdam and RAdam, cast to `f32` once
/// so that the loops only do `f32` arithmetic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MomentScalars {
    /// `1 − γλ` for decoupled weight decay, else 1 (multiplying by 1 is exact).
    pub decay: f32,
    /// λ for the L2 term (used only by the L2 variant of the kernels).
    pub l2: f32,
    /// −1 to maximize, else 1.
    pub sign: f32,
    /// `m ← lerp(m, g, 1 − β₁)`.
    pub lerp: Lerp,
    pub beta2: f32,
    pub one_minus_beta2: f32,
}

impl MomentScalars {
    /// The factors for a run with learning rate `lr` and weight decay `weight_decay`; returns them
    /// with whether the L2 variant of the kernel must run.
    pub(crate) fn new(lr: f64, betas: [f64; 2], weight_decay: f64, decoupled: bool, maximize: bool) -> (Self, bool) {
        let scalars = Self {
            decay: if decoupled { (1.0 - lr * weight_decay) as f32 } else { 1.0 },
            l2: weight_decay as f32,
            sign: if maximize { -1.0 } else { 1.0 },
            lerp: Lerp::new(1.0 - betas[0]),
            beta2: betas[1] as f32,
            one_minus_beta2: (1.0 - betas[1]) as f32,
        };
        (scalars, !decoupled && weight_decay != 0.0)
    }
}

/// Per-run factors of the Adam update.
#[derive(Clone, Copy)]
struct AdamScalars {
    moments: MomentScalars,
    bias_correction2_sqrt: f32,
    eps: f32,
    /// −γ / (1 − β₁ᵗ).
    neg_step_size: f32,
}

impl AdamMoments {
    pub(crate) fn step(&mut self, h: &AdamHyper, groups: Option<&ParamGroups>, params: &mut [f32], grads: &[f32]) {
        let len = params.len();
        self.step_ranges(h, groups, params, grads, std::slice::from_ref(&(0..len)));
    }

    /// [`AdamMoments::step`] that updates only the elements within `ranges` (sorted, disjoint),
    /// each exactly as the full step would; the step count is the whole buffer's.
    pub(crate) fn step_ranges(
        &mut self,
        h: &AdamHyper,
        groups: Option<&ParamGroups>,
        params: &mut [f32],
        grads: &[f32],
        ranges: &[std::ops::Range<usize>],
    ) {
        check_lengths(params, grads);
        let len = params.len();
        ensure_buffer(&mut self.exp_avg, len, 0.0);
        ensure_buffer(&mut self.exp_avg_sq, len, 0.0);
        if h.amsgrad {
            ensure_buffer(&mut self.max_exp_avg_sq, len, 0.0);
        }
        self.step += 1;
        let t = self.step as f64;
        let [beta1, beta2] = h.betas;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let (exp_avg, exp_avg_sq, max_exp_avg_sq) = (&mut self.exp_avg, &mut self.exp_avg_sq, &mut self.max_exp_avg_sq);
        let within = SparseGrad { dense: ranges, segments: &[] };
        for_each_sparse_piece(groups, len, &within, |run, r| {
            let lr = h.lr * run.lr_scale;
            let weight_decay = run.weight_decay.unwrap_or(h.weight_decay);
            let (moments, l2) = MomentScalars::new(lr, h.betas, weight_decay, h.decoupled, h.maximize);
            let s = AdamScalars {
                moments,
                bias_correction2_sqrt: bias_correction2.sqrt() as f32,
                eps: h.eps as f32,
                neg_step_size: (-(lr / bias_correction1)) as f32,
            };
            let (p, g, m, v) =
                (&mut params[r.clone()], &grads[r.clone()], &mut exp_avg[r.clone()], &mut exp_avg_sq[r.clone()]);
            match (h.amsgrad, l2, moments.lerp.from_start) {
                (false, false, false) => adam_run::<false, false>(p, g, m, v, &s),
                (false, false, true) => adam_run::<false, true>(p, g, m, v, &s),
                (false, true, false) => adam_run::<true, false>(p, g, m, v, &s),
                (false, true, true) => adam_run::<true, true>(p, g, m, v, &s),
                (true, l2, from_start) => {
                    let vmax = &mut max_exp_avg_sq[r];
                    match (l2, from_start) {
                        (false, false) => amsgrad_run::<false, false>(p, g, m, v, vmax, &s),
                        (false, true) => amsgrad_run::<false, true>(p, g, m, v, vmax, &s),
                        (true, false) => amsgrad_run::<true, false>(p, g, m, v, vmax, &s),
                        (true, true) => amsgrad_run::<true, true>(p, g, m, v, vmax, &s),
                    }
                }
            }
        });
    }

    pub(crate) fn state(&self, name: &str, lr: f64) -> OptimizerState {
        let mut state = OptimizerState::new(name, self.step, lr);
        state.buffers.insert("exp_avg".into(), self.exp_avg.clone());
        state.buffers.insert("exp_avg_sq".into(), self.exp_avg_sq.clone());
        state.buffers.insert("max_exp_avg_sq".into(), self.max_exp_avg_sq.clone());
        state
    }

    pub(crate) fn load(&mut self, state: &OptimizerState) -> Result<(), StateError> {
        let [exp_avg, exp_avg_sq, max_exp_avg_sq] = load_buffers(state, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"])?;
        *self = Self { step: state.step, exp_avg, exp_avg_sq, max_exp_avg_sq };
        Ok(())
    }
}

/// Reads the buffers `names` from `state`, checking that the allocated ones agree in length (an
/// unallocated buffer is empty), so that a step after a successful load cannot fail.
pub(crate) fn load_buffers<const N: usize>(
    state: &OptimizerState,
    names: [&str; N],
) -> Result<[Vec<f32>; N], StateError> {
    let mut buffers: [Vec<f32>; N] = std::array::from_fn(|_| Vec::new());
    let mut len: Option<usize> = None;
    for (buffer, name) in buffers.iter_mut().zip(names) {
        *buffer = state.buffer(name)?;
        if buffer.is_empty() {
            continue;
        }
        match len {
            Some(len) if len != buffer.len() => {
                return Err(StateError::BadBuffer {
                    name: name.to_string(),
                    problem: format!("holds {} values where the other buffers hold {len}", buffer.len()),
                });
            }
            _ => len = Some(buffer.len()),
        }
    }
    Ok(buffers)
}

/// PyTorch's `lerp(start, end, w)` for a fixed weight, as its CPU kernel computes it:
/// `start + w (end − start)` when |w| < 0.5, else `end − (1 − w)(end − start)`.
///
/// PyTorch updates the first moment with `m.lerp_(g, 1 − β₁)`; computing it the same way keeps the
/// rounding identical.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lerp {
    /// Whether the formula starts from `start` (|w| < 0.5) or from `end`.
    pub from_start: bool,
    /// `w` when starting from `start`, else `w − 1`.
    pub coeff: f32,
}

impl Lerp {
    pub(crate) fn new(weight: f64) -> Self {
        let weight = weight as f32;
        if weight.abs() < 0.5 {
            Self { from_start: true, coeff: weight }
        } else {
            Self { from_start: false, coeff: weight - 1.0 }
        }
    }

    /// The interpolation; `FROM_START` must equal `self.from_start` (a constant so that the choice is
    /// made outside the loop).
    #[inline(always)]
    pub(crate) fn apply<const FROM_START: bool>(self, start: f32, end: f32) -> f32 {
        let base = if FROM_START { start } else { end };
        base + self.coeff * (end - start)
    }
}

/// Decays the parameter, forms the gradient and updates both moments of one element; returns the
/// decayed parameter and the gradient used.
#[inline(always)]
pub(crate) fn update_moments<const L2: bool, const FROM_START: bool>(
    s: &MomentScalars,
    p: f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
) -> (f32, f32) {
    let p = p * s.decay;
    let g = if L2 { s.sign * g + s.l2 * p } else { s.sign * g };
    *m = s.lerp.apply::<FROM_START>(*m, g);
    *v = *v * s.beta2 + s.one_minus_beta2 * g * g;
    (p, g)
}

/// The parameter update given the (decayed) parameter, first moment and normalizing second moment,
/// in PyTorch's order: `denom = √v / √bc₂ + ε`, `θ + (−step_size · m) / denom`.
#[inline(always)]
fn adam_apply(s: &AdamScalars, p: f32, m: f32, v: f32) -> f32 {
    let denom = v.sqrt() / s.bias_correction2_sqrt + s.eps;
    p + s.neg_step_size * m / denom
}

/// One fused pass over θ, g, m, v.
fn adam_run<const L2: bool, const FROM_START: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: &AdamScalars,
) {
    let s = *s;
    for_each_split(p, g, [m, v], &move |p: &mut [f32], g: &[f32], [m, v]: [&mut [f32]; 2]| {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let (decayed, _) = update_moments::<L2, FROM_START>(&s.moments, *p, g, m, v);
            *p = adam_apply(&s, decayed, *m, *v);
        }
    });
}

/// One fused pass over θ, g, m, v and v̂ (AMSGrad).
fn amsgrad_run<const L2: bool, const FROM_START: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    s: &AdamScalars,
) {
    let s = *s;
    for_each_split(p, g, [m, v, vmax], &move |p: &mut [f32], g: &[f32], [m, v, vmax]: [&mut [f32]; 3]| {
        for ((((p, &g), m), v), vmax) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(vmax.iter_mut()) {
            let (decayed, _) = update_moments::<L2, FROM_START>(&s.moments, *p, g, m, v);
            // NaN in v propagates, as with `torch.maximum`.
            *vmax = if *vmax >= *v { *vmax } else { *v };
            *p = adam_apply(&s, decayed, *m, *vmax);
        }
    });
}
