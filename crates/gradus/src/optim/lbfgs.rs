//! L-BFGS: the limited-memory quasi-Newton method for full-batch problems, as `torch.optim.LBFGS`.

use serde::{Deserialize, Serialize};

use crate::error::{positive, ConfigError, StateError};
use crate::surfaces::Surface;

/// Armijo (sufficient decrease) constant of the strong-Wolfe line search, as PyTorch.
const WOLFE_C1: f64 = 1e-4;
/// Curvature constant of the strong-Wolfe line search, as PyTorch.
const WOLFE_C2: f64 = 0.9;
/// Most evaluations one line search may make, as PyTorch.
const MAX_LINE_SEARCH: usize = 25;
/// The bracket-width tolerance of the line search. PyTorch's `step` does not pass its own
/// `tolerance_change` to `_strong_wolfe`, which therefore always uses its default, 1e-9.
const LINE_SEARCH_TOLERANCE_CHANGE: f64 = 1e-9;
/// The longest history L-BFGS keeps (`history_size`; PyTorch's default is 100): each step
/// allocates one number per remembered pair up front.
const MAX_HISTORY: usize = 1_000_000;
/// A curvature pair (s, y) enters the history only when yᵀs exceeds this, as in PyTorch.
const CURVATURE_THRESHOLD: f64 = 1e-10;

/// An objective and its gradient, evaluated together (argmin's `CostFunction` + `Gradient`).
///
/// Every [`Surface`] implements it; wrap a closure in [`FnProblem`] for anything else.
pub trait CostGradient {
    /// Returns the objective at `x` and writes its gradient into `grad` (as long as `x`).
    fn cost_gradient(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
}

/// # Panics
/// If `x` is not the surface's [`Surface::dim`] long: the caller's buffer, not data, is wrong
/// (check a point that comes from a user with [`Surface::check_dim`] first).
impl<S: Surface + ?Sized> CostGradient for S {
    fn cost_gradient(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        match self.try_value_and_gradient(x, grad) {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A closure `|x, grad| -> loss` used as a [`CostGradient`] problem.
pub struct FnProblem<F>(pub F);

impl<F: FnMut(&[f64], &mut [f64]) -> f64> CostGradient for FnProblem<F> {
    fn cost_gradient(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        (self.0)(x, grad)
    }
}

/// The line search used to pick each step length (`line_search_fn` in PyTorch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineSearch {
    /// A bracketing line search with cubic interpolation that ends at a point satisfying the
    /// strong Wolfe conditions (`"strong_wolfe"`).
    StrongWolfe,
}

/// Hyperparameters of [`Lbfgs`], named and defaulted as in `torch.optim.LBFGS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LbfgsConfig {
    /// Learning rate: the initial step length of each line search, or the fixed step length
    /// without one (default 1).
    pub lr: f64,
    /// Most iterations per [`Lbfgs::step`] (default 20).
    pub max_iter: usize,
    /// Most objective evaluations per [`Lbfgs::step`] (default `max_iter * 5 / 4`).
    pub max_eval: Option<usize>,
    /// Stop when every gradient component is at most this in magnitude (default 1e-7).
    pub tolerance_grad: f64,
    /// Stop when the loss, the step or the directional derivative changes less than this
    /// (default 1e-9).
    pub tolerance_change: f64,
    /// How many curvature pairs (s, y) to remember (default 100).
    pub history_size: usize,
    /// The line search (default `None`: fixed steps of length `lr`).
    pub line_search_fn: Option<LineSearch>,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        Self {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search_fn: None,
        }
    }
}

impl LbfgsConfig {
    /// Checks every option, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("lr", self.lr)?;
        if self.max_iter == 0 {
            return Err(ConfigError::new("max_iter", self.max_iter, "an integer >= 1"));
        }
        if self.max_eval == Some(0) {
            return Err(ConfigError::new("max_eval", 0, "an integer >= 1"));
        }
        crate::error::non_negative("tolerance_grad", self.tolerance_grad)?;
        crate::error::non_negative("tolerance_change", self.tolerance_change)?;
        if !(1..=MAX_HISTORY).contains(&self.history_size) {
            return Err(ConfigError::new("history_size", self.history_size, "an integer between 1 and 1000000"));
        }
        Ok(())
    }

    /// Reads PyTorch-style options (a JSON object; absent options take PyTorch's defaults) and
    /// validates them.
    pub fn from_options(options: &serde_json::Value) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_value(options.clone())
            .map_err(|e| ConfigError::new("lbfgs options", e, "options named as in torch.optim.LBFGS"))?;
        config.validate()?;
        Ok(config)
    }

    /// The evaluation budget per step: `max_eval`, or `max_iter * 5 / 4` when unset.
    pub fn effective_max_eval(&self) -> usize {
        self.max_eval.unwrap_or(self.max_iter.saturating_mul(5) / 4)
    }
}

/// Why a [`Lbfgs::step`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Every gradient component is within `tolerance_grad` of 0.
    GradientTolerance,
    /// The search direction is no longer a descent direction: gᵀd > −`tolerance_change`.
    DirectionalDerivative,
    /// The last step moved no coordinate by more than `tolerance_change`.
    StepTolerance,
    /// The loss changed by less than `tolerance_change` in the last iteration.
    ChangeTolerance,
    /// `max_iter` iterations were taken.
    MaxIterations,
    /// `max_eval` evaluations were spent.
    MaxEvaluations,
}

impl Termination {
    /// Whether the step stopped because progress ended (a tolerance was met), rather than
    /// because its iteration or evaluation budget ran out.
    pub fn is_converged(self) -> bool {
        !matches!(self, Termination::MaxIterations | Termination::MaxEvaluations)
    }
}

/// The outcome of one [`Lbfgs::step`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LbfgsStep {
    /// The loss where the step began (what PyTorch's `step(closure)` returns).
    pub loss: f64,
    /// The loss at the point the step ended on, when it was evaluated. Without a line search,
    /// a step that ends by `max_iter` moves without re-evaluating (as in PyTorch), so this is
    /// `None`; otherwise it is always known.
    pub final_loss: Option<f64>,
    /// Iterations taken in this step.
    pub iterations: usize,
    /// Objective evaluations since the optimizer was created (cumulative, PyTorch's
    /// `func_evals`).
    pub evaluations: u64,
    /// Why the step stopped.
    pub termination: Termination,
}

/// The outcome of [`Lbfgs::minimize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minimization {
    /// How many steps were taken.
    pub steps: usize,
    /// The last step's outcome (`None` when no step was allowed).
    pub last: Option<LbfgsStep>,
}

/// The state L-BFGS carries between steps, named as PyTorch's `state` entries. Save it with
/// [`Lbfgs::state`] and restore it with [`Lbfgs::load_state`]: save → load → continue equals an
/// uninterrupted run bit for bit (serialize it with a float-exact format, e.g. serde_json).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LbfgsState {
    /// Objective evaluations so far.
    pub func_evals: u64,
    /// Iterations so far, over every step.
    pub n_iter: u64,
    /// The last search direction d (empty before the first iteration).
    #[serde(rename = "d")]
    pub direction: Vec<f64>,
    /// The last step length t (`None` before the first iteration).
    #[serde(rename = "t")]
    pub step_length: Option<f64>,
    /// Gradient differences yₖ = gₖ₊₁ − gₖ, oldest first.
    pub old_dirs: Vec<Vec<f64>>,
    /// Steps sₖ = xₖ₊₁ − xₖ, oldest first.
    pub old_stps: Vec<Vec<f64>>,
    /// ρₖ = 1 / (yₖᵀ sₖ), oldest first.
    pub ro: Vec<f64>,
    /// The scale γ = sᵀy / yᵀy of the initial inverse Hessian H₀ = γ I.
    #[serde(rename = "H_diag")]
    pub h_diag: f64,
    /// The gradient where the last iteration began (empty before the first iteration).
    pub prev_flat_grad: Vec<f64>,
    /// The loss where the last iteration began.
    pub prev_loss: Option<f64>,
}

/// L-BFGS (`torch.optim.LBFGS`): a quasi-Newton method that keeps the last `m = history_size`
/// curvature pairs and applies the implied inverse-Hessian estimate by the two-loop recursion.
///
/// One [`Lbfgs::step`] is one call of PyTorch's `step(closure)`: it evaluates the objective and
/// runs up to `max_iter` iterations (and about `max_eval` evaluations). With gradient g at x,
/// pairs sᵢ = xᵢ₊₁ − xᵢ, yᵢ = gᵢ₊₁ − gᵢ, ρᵢ = 1 / yᵢᵀsᵢ (a pair is kept only when
/// yᵢᵀsᵢ > 1e-10, so the estimate stays positive definite), each iteration is:
///
/// ```text
/// first iteration ever:  d ← −g,  t ← min(1, 1/‖g‖₁) · lr
/// otherwise:             store (s, y) = (t d, g − g_prev); γ ← sᵀy / yᵀy
///                        q ← −g
///                        for i = newest … oldest:  αᵢ ← ρᵢ sᵢᵀq;  q ← q − αᵢ yᵢ
///                        r ← γ q
///                        for i = oldest … newest:  βᵢ ← ρᵢ yᵢᵀr;  r ← r + (αᵢ − βᵢ) sᵢ
///                        d ← r,  t ← lr
/// stop if gᵀd > −tolerance_change
/// line search (strong Wolfe) picks t, or t stays fixed;  x ← x + t d
/// stop if max|g| ≤ tolerance_grad, max|t d| ≤ tolerance_change, |Δf| < tolerance_change,
///      or the iteration / evaluation budget is spent
/// ```
///
/// The strong-Wolfe line search (`line_search_fn = "strong_wolfe"`) looks for a step t with
/// sufficient decrease and small slope:
///
/// ```text
/// f(x + t d) ≤ f(x) + c₁ t gᵀd        (Armijo, c₁ = 1e-4)
/// |∇f(x + t d)ᵀd| ≤ c₂ |gᵀd|           (curvature, c₂ = 0.9)
/// ```
///
/// It first brackets such a t, extrapolating by cubic interpolation (at most 10×), then zooms
/// into the bracket by safeguarded cubic interpolation, at most 25 evaluations in all.
///
/// Defaults as PyTorch: lr 1, max_iter 20, max_eval max_iter·5/4, tolerance_grad 1e-7,
/// tolerance_change 1e-9, history_size 100, line_search_fn None. The algorithm, its stopping
/// rules and its counting of evaluations follow PyTorch, including that the line search's
/// bracket tolerance is always 1e-9 whatever `tolerance_change` is. It differs in working in
/// `f64` over one flat buffer (PyTorch works in the parameters' dtype) and in reporting why each
/// step stopped.
///
/// L-BFGS is not an [`Optimizer`](super::Optimizer): that trait applies one update from one
/// given gradient, but L-BFGS has to evaluate the objective itself, several times per step, at
/// points of its line search's choosing — so it takes the problem ([`CostGradient`]) instead,
/// as PyTorch's takes a closure. It is meant for deterministic, full-batch objectives.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    config: LbfgsConfig,
    state: LbfgsState,
}

impl Lbfgs {
    /// Validates `config` and builds the optimizer.
    pub fn new(config: LbfgsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config, state: LbfgsState { h_diag: 1.0, ..LbfgsState::default() } })
    }

    /// The configuration.
    pub fn config(&self) -> &LbfgsConfig {
        &self.config
    }

    /// Objective evaluations so far (PyTorch's `func_evals`).
    pub fn evaluations(&self) -> u64 {
        self.state.func_evals
    }

    /// A snapshot of the state.
    pub fn state(&self) -> LbfgsState {
        self.state.clone()
    }

    /// Restores a snapshot taken by [`Lbfgs::state`], after checking that its buffers agree with
    /// one another and with `history_size`.
    pub fn load_state(&mut self, state: LbfgsState) -> Result<(), StateError> {
        let bad = |name: &str, problem: String| StateError::BadBuffer { name: name.to_string(), problem };
        let pairs = state.ro.len();
        if state.old_dirs.len() != pairs || state.old_stps.len() != pairs {
            return Err(bad(
                "ro",
                format!(
                    "holds {pairs} entries, but old_dirs holds {} and old_stps {}",
                    state.old_dirs.len(),
                    state.old_stps.len()
                ),
            ));
        }
        if pairs > self.config.history_size {
            return Err(bad("old_dirs", format!("holds {pairs} pairs, more than history_size")));
        }
        let dim = state.prev_flat_grad.len();
        if state.n_iter > 0 && (state.step_length.is_none() || state.prev_loss.is_none()) {
            return Err(bad("t", "is missing after the first iteration".to_string()));
        }
        if state.n_iter > 0 && dim == 0 {
            return Err(bad("prev_flat_grad", "is empty after the first iteration".to_string()));
        }
        let vectors = std::iter::once(("d", &state.direction))
            .chain(state.old_dirs.iter().map(|v| ("old_dirs", v)))
            .chain(state.old_stps.iter().map(|v| ("old_stps", v)));
        for (name, vector) in vectors {
            if vector.len() != dim {
                return Err(bad(name, format!("has length {}, prev_flat_grad {dim}", vector.len())));
            }
        }
        self.state = state;
        Ok(())
    }

    /// Runs one PyTorch `step(closure)`: evaluates `problem` at `x`, then takes up to `max_iter`
    /// iterations, updating `x` in place.
    ///
    /// # Panics
    /// If `x` differs in length from the points of earlier steps, or (for a [`Surface`]) from the
    /// surface's dimension: programming errors.
    pub fn step<P: CostGradient + ?Sized>(&mut self, x: &mut [f64], problem: &mut P) -> LbfgsStep {
        let dim = x.len();
        let config = &self.config;
        let state = &mut self.state;
        if state.n_iter > 0 {
            let held = state.prev_flat_grad.len();
            assert_eq!(held, dim, "L-BFGS state holds {held} parameters, the step passed {dim}");
        }
        let max_eval = config.effective_max_eval();
        let mut grad = vec![0.0; dim];
        let initial_loss = problem.cost_gradient(x, &mut grad);
        let mut loss = initial_loss;
        let mut loss_is_current = true;
        let mut current_evals = 1usize;
        state.func_evals += 1;

        let mut opt_cond = max_abs(&grad) <= config.tolerance_grad;
        if opt_cond {
            return LbfgsStep {
                loss: initial_loss,
                final_loss: Some(initial_loss),
                iterations: 0,
                evaluations: state.func_evals,
                termination: Termination::GradientTolerance,
            };
        }

        let mut alpha = vec![0.0; config.history_size];
        let mut iterations = 0usize;
        let termination = loop {
            iterations += 1;
            state.n_iter += 1;

            // Search direction.
            if state.n_iter == 1 {
                state.direction = grad.iter().map(|g| -g).collect();
                state.old_dirs.clear();
                state.old_stps.clear();
                state.ro.clear();
                state.h_diag = 1.0;
            } else {
                let t = state.step_length.unwrap_or(config.lr);
                let y: Vec<f64> = grad.iter().zip(&state.prev_flat_grad).map(|(g, p)| g - p).collect();
                let s: Vec<f64> = state.direction.iter().map(|d| d * t).collect();
                let ys = dot(&y, &s);
                if ys > CURVATURE_THRESHOLD {
                    if state.ro.len() == config.history_size {
                        state.old_dirs.remove(0);
                        state.old_stps.remove(0);
                        state.ro.remove(0);
                    }
                    state.h_diag = ys / dot(&y, &y);
                    state.old_dirs.push(y);
                    state.old_stps.push(s);
                    state.ro.push(1.0 / ys);
                }
                // Two-loop recursion: d = −H g with H the inverse-Hessian estimate.
                let pairs = || state.old_dirs.iter().zip(&state.old_stps).zip(&state.ro);
                let mut q: Vec<f64> = grad.iter().map(|g| -g).collect();
                for (((y, s), &rho), alpha) in pairs().zip(alpha.iter_mut()).rev() {
                    *alpha = dot(s, &q) * rho;
                    axpy(-*alpha, y, &mut q);
                }
                q.iter_mut().for_each(|v| *v *= state.h_diag);
                for (((y, s), &rho), &alpha) in pairs().zip(&alpha) {
                    let beta = dot(y, &q) * rho;
                    axpy(alpha - beta, s, &mut q);
                }
                state.direction = q;
            }
            state.prev_flat_grad.clone_from(&grad);
            state.prev_loss = Some(loss);
            let prev_loss = loss;

            // Step length.
            let mut t = if state.n_iter == 1 {
                (1.0 / grad.iter().map(|g| g.abs()).sum::<f64>()).min(1.0) * config.lr
            } else {
                config.lr
            };
            state.step_length = Some(t);
            let gtd = dot(&grad, &state.direction);
            if gtd > -config.tolerance_change {
                break Termination::DirectionalDerivative;
            }

            let mut line_search_evals = 0;
            match config.line_search_fn {
                Some(LineSearch::StrongWolfe) => {
                    let direction = &state.direction;
                    let mut trial = vec![0.0; dim];
                    let mut evaluate = |t: f64, g: &mut [f64]| {
                        for ((p, &x), &d) in trial.iter_mut().zip(x.iter()).zip(direction) {
                            *p = x + t * d;
                        }
                        problem.cost_gradient(&trial, g)
                    };
                    let found = strong_wolfe(&mut evaluate, t, direction, loss, &grad, gtd);
                    loss = found.loss;
                    grad = found.grad;
                    t = found.t;
                    line_search_evals = found.evaluations;
                    axpy(t, direction, x);
                    opt_cond = max_abs(&grad) <= config.tolerance_grad;
                }
                None => {
                    axpy(t, &state.direction, x);
                    if iterations != config.max_iter {
                        // As PyTorch: the last iteration is not re-evaluated, since the next
                        // step evaluates the point anyway.
                        loss = problem.cost_gradient(x, &mut grad);
                        opt_cond = max_abs(&grad) <= config.tolerance_grad;
                        line_search_evals = 1;
                    } else {
                        loss_is_current = false;
                    }
                }
            }
            state.step_length = Some(t);
            current_evals += line_search_evals;
            state.func_evals += line_search_evals as u64;

            if iterations == config.max_iter {
                break Termination::MaxIterations;
            }
            if current_evals >= max_eval {
                break Termination::MaxEvaluations;
            }
            if opt_cond {
                break Termination::GradientTolerance;
            }
            let step: Vec<f64> = state.direction.iter().map(|d| d * t).collect();
            if max_abs(&step) <= config.tolerance_change {
                break Termination::StepTolerance;
            }
            if (loss - prev_loss).abs() < config.tolerance_change {
                break Termination::ChangeTolerance;
            }
        };

        LbfgsStep {
            loss: initial_loss,
            final_loss: loss_is_current.then_some(loss),
            iterations,
            evaluations: state.func_evals,
            termination,
        }
    }

    /// Calls [`Lbfgs::step`] up to `max_steps` times, stopping early after a step that ends by a
    /// tolerance ([`Termination::is_converged`]) rather than by its budget.
    pub fn minimize<P: CostGradient + ?Sized>(
        &mut self,
        x: &mut [f64],
        problem: &mut P,
        max_steps: usize,
    ) -> Minimization {
        let mut outcome = Minimization { steps: 0, last: None };
        while outcome.steps < max_steps {
            let step = self.step(x, problem);
            outcome.steps += 1;
            outcome.last = Some(step);
            if step.termination.is_converged() {
                break;
            }
        }
        outcome
    }
}

/// What the line search found: the step length t, and the loss and gradient at x + t d.
struct LineSearchResult {
    loss: f64,
    grad: Vec<f64>,
    t: f64,
    evaluations: usize,
}

/// One end of a line-search bracket: a step length with its loss, gradient and slope along d.
#[derive(Clone)]
struct BracketEnd {
    t: f64,
    loss: f64,
    grad: Vec<f64>,
    slope: f64,
}

/// The strong-Wolfe line search of PyTorch's `_strong_wolfe` (itself from minFunc): brackets a
/// step length satisfying the strong Wolfe conditions, then zooms in by cubic interpolation.
/// `evaluate(t, grad)` returns f(x + t d) and writes its gradient; `loss`, `grad` and `gtd` are
/// f, ∇f and ∇fᵀd at t = 0.
fn strong_wolfe(
    evaluate: &mut impl FnMut(f64, &mut [f64]) -> f64,
    initial_t: f64,
    direction: &[f64],
    loss: f64,
    grad: &[f64],
    gtd: f64,
) -> LineSearchResult {
    let dim = grad.len();
    let direction_norm = max_abs(direction);
    let armijo = |t: f64, f: f64| f > loss + WOLFE_C1 * t * gtd;
    let curvature = |slope: f64| slope.abs() <= -WOLFE_C2 * gtd;

    let mut new = BracketEnd { t: initial_t, loss: 0.0, grad: vec![0.0; dim], slope: 0.0 };
    new.loss = evaluate(new.t, &mut new.grad);
    new.slope = dot(&new.grad, direction);
    let mut evaluations = 1;
    let mut prev = BracketEnd { t: 0.0, loss, grad: grad.to_vec(), slope: gtd };
    let mut ls_iter = 0;

    // Bracketing phase: extrapolate until the interval [prev, new] must hold an acceptable step.
    let mut bracket = loop {
        if ls_iter >= MAX_LINE_SEARCH {
            let start = BracketEnd { t: 0.0, loss, grad: grad.to_vec(), slope: gtd };
            break [start, new];
        }
        if armijo(new.t, new.loss) || (ls_iter > 1 && new.loss >= prev.loss) {
            break [prev, new];
        }
        if curvature(new.slope) {
            return LineSearchResult { loss: new.loss, grad: new.grad, t: new.t, evaluations };
        }
        if new.slope >= 0.0 {
            break [prev, new];
        }
        let min_step = new.t + 0.01 * (new.t - prev.t);
        let max_step = new.t * 10.0;
        let t =
            cubic_interpolate(prev.t, prev.loss, prev.slope, new.t, new.loss, new.slope, Some((min_step, max_step)));
        prev = new;
        new = BracketEnd { t, loss: 0.0, grad: vec![0.0; dim], slope: 0.0 };
        new.loss = evaluate(t, &mut new.grad);
        new.slope = dot(&new.grad, direction);
        evaluations += 1;
        ls_iter += 1;
    };

    // Zoom phase: shrink the bracket around an acceptable step.
    let order = |b: &[BracketEnd; 2]| if b[0].loss <= b[1].loss { (0, 1) } else { (1, 0) };
    let (mut low, mut high) = order(&bracket);
    let mut insufficient_progress = false;
    while ls_iter < MAX_LINE_SEARCH {
        let (a, b) = (&bracket[0], &bracket[1]);
        if (b.t - a.t).abs() * direction_norm < LINE_SEARCH_TOLERANCE_CHANGE {
            break;
        }
        let mut t = cubic_interpolate(a.t, a.loss, a.slope, b.t, b.loss, b.slope, None);
        let (lo, hi) = (a.t.min(b.t), a.t.max(b.t));
        // Keep trial points at least a tenth of the bracket away from its ends when the
        // interpolation crowds an end twice in a row or lands outside.
        let margin = 0.1 * (hi - lo);
        if (hi - t).min(t - lo) < margin {
            if insufficient_progress || t >= hi || t <= lo {
                t = if (t - hi).abs() < (t - lo).abs() { hi - margin } else { lo + margin };
                insufficient_progress = false;
            } else {
                insufficient_progress = true;
            }
        } else {
            insufficient_progress = false;
        }

        let mut trial = BracketEnd { t, loss: 0.0, grad: vec![0.0; dim], slope: 0.0 };
        trial.loss = evaluate(t, &mut trial.grad);
        trial.slope = dot(&trial.grad, direction);
        evaluations += 1;
        ls_iter += 1;

        if armijo(t, trial.loss) || trial.loss >= bracket[low].loss {
            bracket[high] = trial;
            (low, high) = order(&bracket);
        } else {
            let done = curvature(trial.slope);
            if !done && trial.slope * (bracket[high].t - bracket[low].t) >= 0.0 {
                bracket[high] = bracket[low].clone();
            }
            bracket[low] = trial;
            if done {
                break;
            }
        }
    }

    let [first, second] = bracket;
    let best = if low == 0 { first } else { second };
    LineSearchResult { loss: best.loss, grad: best.grad, t: best.t, evaluations }
}

/// The minimizer of the cubic through (x₁, f₁) and (x₂, f₂) with slopes g₁ and g₂, clamped to
/// `bounds` (the interval between x₁ and x₂ when `None`); the bounds' midpoint when the cubic
/// has no minimizer.
fn cubic_interpolate(x1: f64, f1: f64, g1: f64, x2: f64, f2: f64, g2: f64, bounds: Option<(f64, f64)>) -> f64 {
    let (lower, upper) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let minimizer = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        minimizer.max(lower).min(upper)
    } else {
        (lower + upper) / 2.0
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// y ← y + a x.
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The largest magnitude in `v` (0 when empty), NaN when any entry is NaN — as PyTorch's
/// `abs().max()`, so that a NaN gradient or step never passes for a converged one.
fn max_abs(v: &[f64]) -> f64 {
    v.iter().map(|x| x.abs()).fold(0.0, |m, a| if a.is_nan() || m.is_nan() { f64::NAN } else { m.max(a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_interpolation_finds_the_minimum_of_a_quadratic() {
        // f(x) = (x − 2)²: f(0) = 4, f'(0) = −4; f(3) = 1, f'(3) = 2.
        let t = cubic_interpolate(0.0, 4.0, -4.0, 3.0, 1.0, 2.0, None);
        assert!((t - 2.0).abs() < 1e-12, "{t}");
        // Clamped to the bounds given.
        assert_eq!(cubic_interpolate(0.0, 4.0, -4.0, 3.0, 1.0, 2.0, Some((2.5, 4.0))), 2.5);
    }

    #[test]
    fn strong_wolfe_accepts_a_point_satisfying_both_conditions() {
        // f(x) = ½ x², x = 4, d = −4: the unit step lands on the minimum.
        let mut evaluate = |t: f64, g: &mut [f64]| {
            let x = 4.0 - 4.0 * t;
            g[0] = x;
            0.5 * x * x
        };
        let found = strong_wolfe(&mut evaluate, 1.0, &[-4.0], 8.0, &[4.0], -16.0);
        assert_eq!((found.t, found.loss, found.evaluations), (1.0, 0.0, 1));
        // Starting far too long, it must zoom back into the bracket.
        let found = strong_wolfe(&mut evaluate, 10.0, &[-4.0], 8.0, &[4.0], -16.0);
        assert!(found.loss <= 8.0 + WOLFE_C1 * found.t * -16.0);
        assert!((found.grad[0] * -4.0).abs() <= WOLFE_C2 * 16.0);
        assert!(found.evaluations > 1);
    }

    #[test]
    fn without_line_search_the_last_iteration_is_not_evaluated() {
        let config = LbfgsConfig { max_iter: 3, max_eval: Some(10), ..LbfgsConfig::default() };
        let mut lbfgs = Lbfgs::new(config).unwrap();
        let mut x = vec![1.0, -2.0];
        let step = lbfgs.step(&mut x, &mut crate::surfaces::Rosenbrock(2));
        // One evaluation to start and one per iteration but the last.
        assert_eq!(step.evaluations, 3);
        assert_eq!(step.termination, Termination::MaxIterations);
        assert_eq!(step.final_loss, None);
    }

    #[test]
    fn nan_is_never_small() {
        assert_eq!(max_abs(&[1.0, -3.0, 2.0]), 3.0);
        assert!(max_abs(&[f64::NAN, 1.0]).is_nan());
        assert!(max_abs(&[1.0, f64::NAN]).is_nan());
        // A NaN gradient does not end the step as converged.
        let mut lbfgs = Lbfgs::new(LbfgsConfig::default()).unwrap();
        let mut problem = FnProblem(|_: &[f64], g: &mut [f64]| {
            g.fill(f64::NAN);
            f64::NAN
        });
        let step = lbfgs.step(&mut [1.0, 2.0], &mut problem);
        assert_ne!(step.termination, Termination::GradientTolerance);
    }
}
