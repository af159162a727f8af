//! Loss functions with their gradients, as PyTorch defines them with `reduction="mean"`.
//!
//! Every loss is written out together with its gradient with respect to the model's outputs, in
//! forms that stay finite for extreme logits (±80 and far beyond): cross-entropy subtracts the
//! row maximum before exponentiating (log-sum-exp), binary cross-entropy uses the softplus form
//! `max(x, 0) − x·y + ln(1 + e^{−|x|})`.
//!
//! The same code runs in `f32` (what models train in) and `f64` (what reference checks and
//! finite-difference tests use): see [`Real`]. Loss values are always accumulated in `f64`.
//!
//! Batches are row-major `rows × cols` matrices. For every loss except cross-entropy the targets
//! have the outputs' shape; for [`Loss::CrossEntropy`] they hold one class index per row, stored
//! as a float (`2.0` is class 2), and the outputs are that row's unnormalized logits.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{closed_unit_interval, positive, ConfigError};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point type the losses and models compute in: `f32` or `f64` (sealed).
///
/// Models train in `f32`; `f64` runs the very same code for checks against PyTorch's float64
/// reference values and for finite differences.
pub trait Real:
    sealed::Sealed
    + Copy
    + Default
    + Debug
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// `e^self` by a branch-free polynomial that vectorizes: within 2 units in the last place
    /// of `f32` for `f32` (the standard library's for `f64`), and for arguments below −87 a tiny
    /// positive number rather than 0. For the softmax over wide rows (a vocabulary), where the
    /// library call per element would cost more than the matrix product before it.
    fn exp_fast(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + self)`, accurate near zero.
    fn ln_1p(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of the two (the other one when either is NaN).
    fn max(self, other: Self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// Square root.
    fn sqrt(self) -> Self;
    /// The error function `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt` (the standard library has none).
    fn erf(self) -> Self;

    /// `C ← α A B + β C` for row-major or transposed operands given by their strides (see
    /// `matrixmultiply::sgemm`). When `β` is zero, `C` is only written.
    ///
    /// # Safety
    /// Every element addressed through the dimensions and strides must lie in the slices.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// Runs `f` with this thread's reusable scratch buffer of this type, or with a fresh one when
    /// the thread's buffer is already in use (a nested call on the same thread).
    #[doc(hidden)]
    fn with_scratch<R>(slot: usize, f: impl FnOnce(&mut Vec<Self>) -> R) -> R;
}

/// Scratch slots per thread and type: 0 and 1 for the dense passes, 2 for a network pass's
/// workspace, 3 for a layer's own temporary (im2col columns), 4 for evaluation blocks.
const SCRATCH_SLOTS: usize = 5;

/// `e^x` in `f32` without a branch or a library call, so that loops of it vectorize: `x = n ln 2
/// + r` with `|r| ≤ ln 2 / 2`, `e^r` by Cephes' degree-7 polynomial, `2^n` built in the
/// exponent bits. Relative error below 2 ulp on `[−87, 88]`.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by the magic number 1.5 · 2^23 (no rounding instruction needed).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    // The integer n is in the low bits of `shifted` (a bit cast, not a saturating conversion,
    // which would not vectorize).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[inline(always)]
fn exp_f64(x: f64) -> f64 {
    x.exp()
}

macro_rules! impl_real {
    ($t:ty, $gemm:path, $erf:path, $scratch:ident, $exp_fast:path) => {
        thread_local! {
            static $scratch: [std::cell::RefCell<Vec<$t>>; SCRATCH_SLOTS] =
                const { [const { std::cell::RefCell::new(Vec::new()) }; SCRATCH_SLOTS] };
        }

        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn exp_fast(self) -> Self {
                $exp_fast(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline]
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
            fn with_scratch<R>(slot: usize, f: impl FnOnce(&mut Vec<Self>) -> R) -> R {
                let mut f = Some(f);
                let done = $scratch.with(|slots| match slots[slot].try_borrow_mut() {
                    Ok(mut buffer) => Some((f.take().expect("called once"))(&mut buffer)),
                    Err(_) => None,
                });
                match done {
                    Some(result) => result,
                    None => (f.take().expect("called once"))(&mut Vec::new()),
                }
            }
        }
    };
}

impl_real!(f32, sgemm, libm::erff, SCRATCH_F32, exp_f32);
impl_real!(f64, matrixmultiply::dgemm, libm::erf, SCRATCH_F64, exp_f64);

/// A loss function, with PyTorch's mean reduction.
///
/// With outputs `x`, targets `y`, `n` elements (or `N` rows of `C` logits for cross-entropy):
///
/// ```text
/// mse              (1/n) Σ (x − y)²                                   ∂/∂x = 2 (x − y) / n
/// l1               (1/n) Σ |x − y|                                    ∂/∂x = sign(x − y) / n, 0 at x = y
/// huber(δ)         (1/n) Σ ½ d² if |d| ≤ δ else δ (|d| − ½ δ), d = x − y   ∂/∂x = clamp(d, −δ, δ) / n
/// bce_with_logits  (1/n) Σ max(x, 0) − x y + ln(1 + e^{−|x|})         ∂/∂x = (σ(x) − y) / n
/// cross_entropy(ε) (1/N) Σ_rows [ lse(x) − (1 − ε) x_t − (ε/C) Σ_c x_c ]
///                                            ∂/∂x_c = (softmax(x)_c − (1 − ε) [c = t] − ε/C) / N
/// hinge            (1/n) Σ max(0, 1 − y x)  (y = ±1)                  ∂/∂x = −y / n where y x < 1, else 0
/// ```
///
/// Identical to `torch.nn.functional.mse_loss`, `l1_loss`, `huber_loss(delta=δ)`,
/// `binary_cross_entropy_with_logits` and `cross_entropy(label_smoothing=ε)` with class-index
/// targets, subgradients included: l1 takes `sign(0) = 0`. PyTorch has no binary hinge loss of
/// this form; the kink `y x = 1` takes the gradient 0, as `relu(1 − y x)` does in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "loss", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
    /// Huber loss: quadratic within `delta` of the target, linear outside.
    Huber {
        /// Where the loss turns from quadratic to linear (PyTorch's default 1.0); must be > 0.
        delta: f64,
    },
    /// Binary cross-entropy on logits (targets in `[0, 1]`, usually 0 or 1).
    BceWithLogits,
    /// Softmax cross-entropy over integer class targets (stored as floats), one row per sample.
    CrossEntropy {
        /// Weight ε moved from the target class to a uniform distribution over all classes
        /// (PyTorch's default 0.0); must lie in `[0, 1]`.
        label_smoothing: f64,
    },
    /// Hinge loss for targets −1/+1: `max(0, 1 − y·x)`.
    Hinge,
}

/// Targets that do not fit a loss: found by [`Loss::check_targets`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TargetError {
    /// The number of targets does not match the outputs.
    #[error("expected {expected} targets for {rows} rows of {cols} outputs, got {found}")]
    Length {
        /// Rows in the batch.
        rows: usize,
        /// Outputs per row.
        cols: usize,
        /// Targets needed.
        expected: usize,
        /// Targets given.
        found: usize,
    },
    /// A cross-entropy target that is not the index of one of the classes.
    #[error("target {value} of row {row} is not a class index in 0..{classes}")]
    BadClass {
        /// The row.
        row: usize,
        /// Its target.
        value: f64,
        /// The number of classes (outputs per row).
        classes: usize,
    },
    /// A target that is NaN or infinite.
    #[error("target {value} of row {row} is not a finite number")]
    NonFinite {
        /// The row (for losses with several targets per row, the target's position).
        row: usize,
        /// Its target.
        value: f64,
    },
    /// A target outside what the loss takes: `[0, 1]` for binary cross-entropy, −1 or +1 for the
    /// hinge loss.
    #[error("target {value} of row {row} is outside what `{loss}` takes: expected {expected}")]
    OutOfRange {
        /// The row (for losses with several targets per row, the target's position).
        row: usize,
        /// Its target.
        value: f64,
        /// The loss's name.
        loss: &'static str,
        /// What the loss takes.
        expected: &'static str,
    },
}

impl Loss {
    /// Huber loss with `delta` (must be finite and > 0).
    pub fn huber(delta: f64) -> Result<Self, ConfigError> {
        let loss = Loss::Huber { delta };
        loss.validate()?;
        Ok(loss)
    }

    /// Cross-entropy with `label_smoothing` (must lie in `[0, 1]`).
    pub fn cross_entropy(label_smoothing: f64) -> Result<Self, ConfigError> {
        let loss = Loss::CrossEntropy { label_smoothing };
        loss.validate()?;
        Ok(loss)
    }

    /// Checks the loss's options, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Loss::Huber { delta } => positive("delta", delta),
            Loss::CrossEntropy { label_smoothing } => closed_unit_interval("label_smoothing", label_smoothing),
            _ => Ok(()),
        }
    }

    /// PyTorch's name for the loss (`mse`, `l1`, `huber`, `bce_with_logits`, `cross_entropy`,
    /// `hinge`).
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::L1 => "l1",
            Loss::Huber { .. } => "huber",
            Loss::BceWithLogits => "bce_with_logits",
            Loss::CrossEntropy { .. } => "cross_entropy",
            Loss::Hinge => "hinge",
        }
    }

    /// How many targets a batch of `rows` rows of `cols` outputs takes: one per row for
    /// cross-entropy, one per output otherwise.
    pub fn target_len(&self, rows: usize, cols: usize) -> usize {
        match self {
            Loss::CrossEntropy { .. } => rows,
            _ => rows * cols,
        }
    }

    /// The number the summed loss is divided by for the mean: rows for cross-entropy, every
    /// element otherwise.
    pub fn mean_denominator(&self, rows: usize, cols: usize) -> usize {
        self.target_len(rows, cols)
    }

    /// Checks that `targets` fit a batch of `rows × cols` outputs: the length; that every target
    /// is finite; for cross-entropy that it is a class index in `0..cols`, for binary
    /// cross-entropy that it lies in `[0, 1]`, for the hinge loss that it is −1 or +1. Run it once
    /// on a data set so that the per-batch [`Loss::value_grad`] need not: a target that breaks
    /// these rules gives a NaN or meaningless loss there, never an error.
    pub fn check_targets<T: Real>(&self, targets: &[T], rows: usize, cols: usize) -> Result<(), TargetError> {
        let expected = rows.checked_mul(cols).map(|_| self.target_len(rows, cols));
        if expected != Some(targets.len()) {
            let expected = expected.unwrap_or(usize::MAX);
            return Err(TargetError::Length { rows, cols, expected, found: targets.len() });
        }
        for (row, &target) in targets.iter().enumerate() {
            let value = target.to_f64();
            let out_of_range = |expected| TargetError::OutOfRange { row, value, loss: self.name(), expected };
            match self {
                Loss::CrossEntropy { .. } if class_index(target, cols).is_none() => {
                    return Err(TargetError::BadClass { row, value, classes: cols });
                }
                _ if !value.is_finite() => return Err(TargetError::NonFinite { row, value }),
                Loss::BceWithLogits if !(0.0..=1.0).contains(&value) => return Err(out_of_range("a number in [0, 1]")),
                Loss::Hinge if value != 1.0 && value != -1.0 => return Err(out_of_range("-1 or +1")),
                _ => {}
            }
        }
        Ok(())
    }

    /// The mean loss of `outputs` (`rows × cols`, row-major) against `targets`, writing its
    /// gradient with respect to `outputs` into `grad_out` (same shape as `outputs`).
    ///
    /// A cross-entropy target that is not a class index makes its row's loss and gradient NaN
    /// (see [`Loss::check_targets`]).
    ///
    /// # Panics
    /// If `cols` is zero or does not divide `outputs.len()`, or if `targets` or `grad_out` have
    /// the wrong length: shapes are fixed by model code.
    pub fn value_grad<T: Real>(&self, outputs: &[T], targets: &[T], cols: usize, grad_out: &mut [T]) -> f64 {
        assert!(cols > 0 && outputs.len().is_multiple_of(cols), "outputs are not rows of {cols}");
        let rows = outputs.len() / cols;
        let denominator = self.mean_denominator(rows, cols);
        if denominator == 0 {
            return f64::NAN; // the mean of nothing, as PyTorch
        }
        let scale = 1.0 / denominator as f64;
        self.sum_grad(outputs, targets, cols, T::from_f64(scale), grad_out) * scale
    }

    /// The loss of `outputs` against `targets` summed over every term of the mean (not divided),
    /// writing `grad_scale ×` its gradient into `grad_out`.
    ///
    /// This is the building block for batches split into parts: each part passes the whole
    /// batch's `1 / mean_denominator` as `grad_scale` and the parts' sums are added.
    ///
    /// # Panics
    /// As [`Loss::value_grad`].
    pub fn sum_grad<T: Real>(
        &self,
        outputs: &[T],
        targets: &[T],
        cols: usize,
        grad_scale: T,
        grad_out: &mut [T],
    ) -> f64 {
        assert!(cols > 0 && outputs.len().is_multiple_of(cols), "outputs are not rows of {cols}");
        assert_eq!(grad_out.len(), outputs.len(), "gradient length differs from the outputs'");
        let rows = outputs.len() / cols;
        assert_eq!(targets.len(), self.target_len(rows, cols), "wrong number of targets");
        let elements = outputs.iter().zip(targets).zip(grad_out.iter_mut());
        let two = T::from_f64(2.0);
        let mut sum = 0.0f64;
        match *self {
            Loss::Mse => {
                for ((&x, &y), g) in elements {
                    let d = x - y;
                    *g = two * d * grad_scale;
                    sum += (d * d).to_f64();
                }
            }
            Loss::L1 => {
                for ((&x, &y), g) in elements {
                    let d = x - y;
                    *g = sign(d) * grad_scale;
                    sum += d.abs().to_f64();
                }
            }
            Loss::Huber { delta } => {
                let delta_t = T::from_f64(delta);
                for ((&x, &y), g) in elements {
                    let d = x - y;
                    let (value, slope) = if d.abs() <= delta_t {
                        (0.5 * d.to_f64() * d.to_f64(), d)
                    } else {
                        (delta * (d.abs().to_f64() - 0.5 * delta), sign(d) * delta_t)
                    };
                    *g = slope * grad_scale;
                    sum += value;
                }
            }
            Loss::BceWithLogits => {
                for ((&x, &y), g) in elements {
                    // softplus form: never exponentiates a positive number.
                    let e = (-x.abs()).exp();
                    let value = x.max(T::ZERO) - x * y + e.ln_1p();
                    let sigmoid = if x >= T::ZERO { T::ONE / (T::ONE + e) } else { e / (T::ONE + e) };
                    *g = (sigmoid - y) * grad_scale;
                    sum += value.to_f64();
                }
            }
            Loss::Hinge => {
                for ((&x, &y), g) in elements {
                    let margin = T::ONE - y * x;
                    if margin > T::ZERO {
                        *g = -y * grad_scale;
                        sum += margin.to_f64();
                    } else {
                        *g = T::ZERO;
                    }
                }
            }
            Loss::CrossEntropy { label_smoothing } => {
                let smooth = label_smoothing / cols as f64;
                let keep = 1.0 - label_smoothing;
                let smooth_t = T::from_f64(smooth);
                let keep_t = T::from_f64(keep);
                let rows_iter = outputs.chunks_exact(cols).zip(grad_out.chunks_exact_mut(cols)).zip(targets);
                for ((logits, grad_row), &target) in rows_iter {
                    let Some(class) = class_index(target, cols) else {
                        grad_row.fill(T::from_f64(f64::NAN));
                        sum += f64::NAN;
                        continue;
                    };
                    let wide = cols >= WIDE_SOFTMAX;
                    let max = if wide { max_of(logits) } else { logits.iter().fold(logits[0], |m, &v| m.max(v)) };
                    let total = if wide {
                        softmax_numerators(logits, max, grad_row)
                    } else {
                        let mut total = T::ZERO;
                        for (g, &v) in grad_row.iter_mut().zip(logits) {
                            let e = (v - max).exp();
                            *g = e;
                            total += e;
                        }
                        total
                    };
                    let log_sum_exp = max.to_f64() + total.ln().to_f64();
                    let inv_total = T::ONE / total;
                    let mut logit_sum = 0.0f64;
                    if smooth == 0.0 && wide {
                        // The same values as below (less a zero), in a loop that vectorizes.
                        grad_row.iter_mut().for_each(|g| *g = *g * inv_total * grad_scale);
                    } else {
                        for (g, &v) in grad_row.iter_mut().zip(logits) {
                            *g = (*g * inv_total - smooth_t) * grad_scale;
                            logit_sum += v.to_f64();
                        }
                    }
                    grad_row[class] -= keep_t * grad_scale;
                    sum += log_sum_exp - keep * logits[class].to_f64() - smooth * logit_sum;
                }
            }
        }
        sum
    }
}

/// Classes from which a softmax takes [`Real::exp_fast`] and sums in eight lanes: a
/// vocabulary's thousands of exponentials per row would otherwise cost more than the matrix
/// product that made the logits. Narrower rows (classes of a classifier) keep the exact
/// library exponential and the plain running sum, whose results do not change.
pub const WIDE_SOFTMAX: usize = 256;

/// The largest of `values` (NaN when one is NaN, as the running fold), in eight lanes.
pub(crate) fn max_of<T: Real>(values: &[T]) -> T {
    let mut lanes = [values[0]; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            // `v > lane` or NaN: the select vectorizes where `f32::max` does not.
            #[allow(clippy::eq_op)]
            let take = v > *lane || v != v;
            *lane = if take { v } else { *lane };
        }
    }
    let mut max = lanes[0];
    for &v in lanes[1..].iter().chain(chunks.remainder()) {
        #[allow(clippy::eq_op)]
        let (v_nan, max_nan) = (v != v, max != max);
        if !max_nan && (v > max || v_nan) {
            max = v;
        }
    }
    max
}

/// Writes `e^(v − max)` of every logit into `out` and returns their sum, in eight interleaved
/// partial sums added pairwise (a fixed order, whatever the thread).
fn softmax_numerators<T: Real>(logits: &[T], max: T, out: &mut [T]) -> T {
    for (o, &v) in out.iter_mut().zip(logits) {
        *o = (v - max).exp_fast();
    }
    let mut lanes = [T::ZERO; 8];
    let mut chunks = out.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let tail = chunks.remainder().iter().fold(T::ZERO, |s, &v| s + v);
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7])) + tail
}

/// `sign(v)`, with `sign(0) = 0` as `torch.sign`.
#[inline(always)]
fn sign<T: Real>(v: T) -> T {
    if v > T::ZERO {
        T::ONE
    } else if v < T::ZERO {
        -T::ONE
    } else {
        T::ZERO
    }
}

/// The class a cross-entropy target names, if it is an integer in `0..classes`.
#[inline]
fn class_index<T: Real>(target: T, classes: usize) -> Option<usize> {
    let value = target.to_f64();
    if value >= 0.0 && value < classes as f64 && value.fract() == 0.0 {
        Some(value as usize)
    } else {
        None
    }
}

/// `C ← α A B + β C` in `f32` with matrixmultiply's signature (dimensions, then each operand with
/// its row and column strides), computed by the `gemm` crate on the calling thread. `gemm` writes
/// `dst ← α' dst + β' lhs rhs`, so the roles of the two scalars swap; with `β = 0`, `C` is not read
/// (it may hold anything, NaN included), as matrixmultiply promises.
///
/// # Safety
/// As `matrixmultiply::sgemm`: every element addressed through the dimensions and strides lies in
/// the operands' allocations, and `C` does not overlap `A` or `B`.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            csc,
            rsc,
            beta != 0.0,
            a,
            csa,
            rsa,
            b,
            csb,
            rsb,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_of_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (fast, exact) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max(((fast - exact) / exact).abs());
            x += 0.013;
        }
        assert!(worst < 2.0 * f32::EPSILON as f64, "relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
    }

    #[test]
    fn wide_softmax_matches_the_exact_one() {
        // A row of a vocabulary's logits: the fast path against the f64 reference.
        let cols = WIDE_SOFTMAX * 3 + 5;
        let logits: Vec<f32> = (0..cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let mut grad = vec![0.0f32; cols];
        let loss = Loss::CrossEntropy { label_smoothing: 0.0 };
        let value = loss.sum_grad(&logits, &[3.0], cols, 1.0, &mut grad);
        let wide: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
        let mut grad64 = vec![0.0f64; cols];
        let want = loss.sum_grad(&wide, &[3.0], cols, 1.0, &mut grad64);
        assert!((value - want).abs() < 1e-5, "{value} vs {want}");
        for (g, w) in grad.iter().zip(&grad64) {
            assert!((*g as f64 - w).abs() < 1e-6);
        }
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(Loss::huber(0.0).unwrap_err().option, "delta");
        assert_eq!(Loss::cross_entropy(1.5).unwrap_err().option, "label_smoothing");
        assert!(Loss::cross_entropy(0.1).is_ok());
    }

    #[test]
    fn bad_class_targets_are_reported_not_panicked_on() {
        let loss = Loss::cross_entropy(0.0).unwrap();
        assert!(matches!(loss.check_targets(&[0.0f32, 3.0], 2, 3), Err(TargetError::BadClass { row: 1, .. })));
        assert!(matches!(loss.check_targets(&[0.5f32, 1.0], 2, 3), Err(TargetError::BadClass { row: 0, .. })));
        assert!(matches!(loss.check_targets(&[0.0f32], 2, 3), Err(TargetError::Length { .. })));
        assert!(matches!(loss.check_targets(&[f32::NAN, 1.0], 2, 3), Err(TargetError::BadClass { row: 0, .. })));
        assert!(matches!(
            Loss::Mse.check_targets(&[1.0f32, f32::NAN], 2, 1),
            Err(TargetError::NonFinite { row: 1, .. })
        ));
        assert!(matches!(Loss::Mse.check_targets(&[1.0f32; 2], usize::MAX, 2), Err(TargetError::Length { .. })));
        assert!(Loss::BceWithLogits.check_targets(&[0.0f32, 0.25, 1.0], 3, 1).is_ok());
        assert!(matches!(
            Loss::BceWithLogits.check_targets(&[0.0f32, 2.0], 2, 1),
            Err(TargetError::OutOfRange { row: 1, .. })
        ));
        assert!(Loss::Hinge.check_targets(&[-1.0f32, 1.0], 2, 1).is_ok());
        let err = Loss::Hinge.check_targets(&[-1.0f32, 0.0], 2, 1).unwrap_err();
        assert_eq!(err.to_string(), "target 0 of row 1 is outside what `hinge` takes: expected -1 or +1");
        let mut grad = [0.0f32; 3];
        assert!(loss.value_grad(&[1.0f32, 2.0, 3.0], &[-1.0], 3, &mut grad).is_nan());
        assert!(grad.iter().all(|g| g.is_nan()));
    }

    #[test]
    fn serde_uses_pytorch_names() {
        let json = serde_json::to_string(&Loss::Huber { delta: 0.5 }).unwrap();
        assert_eq!(json, r#"{"loss":"huber","delta":0.5}"#);
        let back: Loss = serde_json::from_str(r#"{"loss":"cross_entropy","label_smoothing":0.1}"#).unwrap();
        assert_eq!(back, Loss::CrossEntropy { label_smoothing: 0.1 });
    }
}
