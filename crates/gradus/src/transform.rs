//! Gradient transforms that compose around any optimizer: clipping by value and by global norm,
//! gradient accumulation over micro-batches, refusing non-finite updates, and an exponential
//! moving average of the parameters.
//!
//! Each transform's options are checked once by its `new` (a typed [`ConfigError`] naming the
//! option); applying it cannot fail. Reductions (the global norm) are computed in `f64` over
//! fixed-size chunks summed in a fixed order, so their result is the same bit for bit whatever
//! the number of threads; element-wise work is split across rayon's threads.

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{non_negative, unit_interval, ConfigError};
use crate::optim::Optimizer;
use crate::parallel::{for_each_split, CHUNK, PARALLEL_THRESHOLD};

/// Applies `f` to every element of `values`, on rayon's threads when the buffer is long.
fn map_in_place(values: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let apply = |chunk: &mut [f32]| chunk.iter_mut().for_each(|v| *v = f(*v));
    if values.len() < PARALLEL_THRESHOLD {
        apply(values);
    } else {
        values.par_chunks_mut(CHUNK).for_each(apply);
    }
}

/// Clamps every gradient element to `[-clip_value, clip_value]` in place, as
/// `torch.nn.utils.clip_grad_value_`. NaN elements stay NaN.
///
/// `clip_value` should be `>= 0` (as [`ClipGradValue::new`] checks); a negative one sets every
/// non-NaN element to `clip_value`, as PyTorch's `clamp` does when `min > max`.
pub fn clip_grad_value(grads: &mut [f32], clip_value: f32) {
    map_in_place(grads, |g| {
        let g = if g < -clip_value { -clip_value } else { g };
        if g > clip_value {
            clip_value
        } else {
            g
        }
    });
}

/// The `norm_type`-norm of `grads` (2 for the Euclidean norm, `f64::INFINITY` for the largest
/// magnitude), computed in `f64`.
///
/// Deterministic: the buffer is cut into chunks of [`CHUNK`] elements, each chunk's sum is
/// accumulated in a fixed order (32 interleaved partial sums, added pairwise at the end), and the
/// chunk sums are added in buffer order, so the result does not depend on the thread count.
pub fn grad_norm(grads: &[f32], norm_type: f64) -> f64 {
    if norm_type == f64::INFINITY {
        let chunk_max = |c: &[f32]| c.iter().fold(0.0f32, |m, &g| if g.abs() > m || g.is_nan() { g.abs() } else { m });
        let maxima: Vec<f32> = if grads.len() < PARALLEL_THRESHOLD {
            grads.chunks(CHUNK).map(chunk_max).collect()
        } else {
            grads.par_chunks(CHUNK).map(chunk_max).collect()
        };
        return maxima.into_iter().fold(0.0f64, |m, g| if g as f64 > m || g.is_nan() { g as f64 } else { m });
    }
    if norm_type == 2.0 {
        return sum_of_squares(grads).sqrt();
    }
    let total = chunked_sum(grads, |g| {
        let g = (g as f64).abs();
        if norm_type == 1.0 {
            g
        } else {
            g.powf(norm_type)
        }
    });
    if norm_type == 1.0 {
        total
    } else {
        total.powf(1.0 / norm_type)
    }
}

/// `Σ g²` over `values`, in `f64`, deterministically as [`grad_norm`] sums. It is finite exactly
/// when every element is: the square of the largest `f32` is far below `f64`'s range.
pub fn sum_of_squares(values: &[f32]) -> f64 {
    chunked_sum(values, |g| {
        let g = g as f64;
        g * g
    })
}

/// `Σ term(v)` over `values`, chunk by chunk (on rayon's threads when long), chunk sums added in
/// order.
fn chunked_sum(values: &[f32], term: impl Fn(f32) -> f64 + Sync) -> f64 {
    // 32 independent partial sums: four vectors of eight `f64`, enough to keep the adder busy
    // instead of waiting on one dependency chain.
    const LANES: usize = 32;
    let chunk_sum = |c: &[f32]| {
        let mut lanes = [0.0f64; LANES];
        let mut blocks = c.chunks_exact(LANES);
        for block in &mut blocks {
            for (lane, &g) in lanes.iter_mut().zip(block) {
                *lane += term(g);
            }
        }
        for (lane, &g) in lanes.iter_mut().zip(blocks.remainder()) {
            *lane += term(g);
        }
        reduce_lanes(lanes)
    };
    if values.len() < PARALLEL_THRESHOLD {
        values.chunks(CHUNK).map(chunk_sum).sum()
    } else {
        values.par_chunks(CHUNK).map(chunk_sum).collect::<Vec<f64>>().into_iter().sum()
    }
}

/// The lanes of a chunk's partial sums added pairwise, as [`chunked_sum`] adds them.
fn reduce_lanes<const LANES: usize>(mut lanes: [f64; LANES]) -> f64 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

/// [`sum_of_squares`] of `values` that reads only the elements within `ranges` (sorted, disjoint)
/// and takes every other element for zero: the same value bit for bit when they are, in time
/// proportional to the ranges (plus one addition per chunk). Each element goes to the partial
/// sum it has in [`chunked_sum`] in the same order; the zeros left out would add nothing.
pub(crate) fn sum_of_squares_within(values: &[f32], ranges: &[Range<usize>]) -> f64 {
    // The ranges cut at chunk boundaries, and the pieces of each chunk.
    let mut pieces: Vec<Range<usize>> = Vec::with_capacity(ranges.len() + 8);
    let mut chunks: Vec<(usize, Range<usize>)> = Vec::new();
    let mut elements = 0;
    for range in ranges {
        let mut start = range.start;
        while start < range.end {
            let chunk = start / CHUNK;
            let end = range.end.min((chunk + 1) * CHUNK);
            match chunks.last_mut() {
                Some((c, listed)) if *c == chunk => listed.end += 1,
                _ => chunks.push((chunk, pieces.len()..pieces.len() + 1)),
            }
            pieces.push(start..end);
            elements += end - start;
            start = end;
        }
    }
    let chunk_sum = |listed: &Range<usize>| within_chunk(values, &pieces[listed.clone()]);
    let sums: Vec<f64> = if elements < PARALLEL_THRESHOLD {
        chunks.iter().map(|(_, listed)| chunk_sum(listed)).collect()
    } else {
        chunks.par_iter().map(|(_, listed)| chunk_sum(listed)).collect()
    };
    let mut chunk_sums = vec![0.0f64; values.len().div_ceil(CHUNK)];
    for ((chunk, _), sum) in chunks.iter().zip(sums) {
        chunk_sums[*chunk] = sum;
    }
    chunk_sums.into_iter().sum()
}

/// The sum of squares of one chunk of [`chunked_sum`] that is zero outside `pieces` (sorted,
/// within the chunk): each element goes to the lane it has there (its index modulo the lanes, as
/// a chunk starts at a multiple of them), in the same order.
fn within_chunk(values: &[f32], pieces: &[Range<usize>]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { within_chunk_avx2(values, pieces) };
        }
    }
    within_chunk_portable(values, pieces)
}

/// [`within_chunk_portable`] compiled for AVX2 (no FMA: the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn within_chunk_avx2(values: &[f32], pieces: &[Range<usize>]) -> f64 {
    within_chunk_portable(values, pieces)
}

#[inline(always)]
fn within_chunk_portable(values: &[f32], pieces: &[Range<usize>]) -> f64 {
    const LANES: usize = 32;
    let mut lanes = [0.0f64; LANES];
    for piece in pieces {
        let mut i = piece.start;
        // Up to the first lane boundary, then whole blocks of lanes, then the rest.
        while i < piece.end && i % LANES != 0 {
            let g = values[i] as f64;
            lanes[i % LANES] += g * g;
            i += 1;
        }
        let whole = i + (piece.end - i) / LANES * LANES;
        for block in values[i..whole].chunks_exact(LANES) {
            for (lane, &g) in lanes.iter_mut().zip(block) {
                let g = g as f64;
                *lane += g * g;
            }
        }
        for (lane, &g) in lanes.iter_mut().zip(&values[whole..piece.end]) {
            let g = g as f64;
            *lane += g * g;
        }
    }
    reduce_lanes(lanes)
}

/// Rescales `grads` in place so that their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` with its defaults, and returns the norm *before* clipping.
///
/// ```text
/// n     = ‖g‖₂                      (in f64, deterministically: see grad_norm)
/// scale = max_norm / (n + 1e-6)
/// g     ← g · scale                 if scale < 1
/// ```
///
/// The norm is computed in `f64` where PyTorch uses the gradients' `f32`, so the returned norm is
/// more accurate than PyTorch's by a rounding. As in PyTorch (`error_if_nonfinite=False`), a
/// non-finite norm still scales the gradients (to NaN or zero); check the returned norm, or use
/// [`NonFiniteGuard`], to refuse such a step. `max_norm` should be `>= 0` (as
/// [`ClipGradNorm::new`] checks).
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f64) -> f64 {
    clip_grad_norm_with(grads, max_norm, 2.0)
}

/// [`clip_grad_norm`] for any `norm_type` (PyTorch's option: 2, `f64::INFINITY`, or any `p > 0`).
pub fn clip_grad_norm_with(grads: &mut [f32], max_norm: f64, norm_type: f64) -> f64 {
    let norm = grad_norm(grads, norm_type);
    clip_to_norm(grads, max_norm, norm);
    norm
}

/// The rescaling of [`clip_grad_norm`], given the norm `norm` of `grads` already measured.
pub(crate) fn clip_to_norm(grads: &mut [f32], max_norm: f64, norm: f64) {
    let scale = max_norm / (norm + 1e-6);
    // A NaN norm scales too (to NaN), so that it propagates as in PyTorch.
    if scale < 1.0 || scale.is_nan() {
        let scale = scale as f32;
        map_in_place(grads, |g| g * scale);
    }
}

/// Clipping by value with a checked `clip_value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipGradValue {
    /// Bound of every element's magnitude, `>= 0` (`inf`: no clipping).
    pub clip_value: f64,
}

impl ClipGradValue {
    /// Checks `clip_value` (a number `>= 0`, possibly infinite).
    pub fn new(clip_value: f64) -> Result<Self, ConfigError> {
        let config = Self { clip_value };
        config.validate()?;
        Ok(config)
    }

    /// Checks the option, naming it when it is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.clip_value >= 0.0 {
            Ok(())
        } else {
            Err(ConfigError::new("clip_value", self.clip_value, "a number >= 0"))
        }
    }

    /// Clamps `grads` in place (see [`clip_grad_value`]).
    pub fn apply(&self, grads: &mut [f32]) {
        clip_grad_value(grads, self.clip_value as f32);
    }
}

/// Clipping by global norm with checked options, named as `torch.nn.utils.clip_grad_norm_`'s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipGradNorm {
    /// Largest allowed norm, `>= 0`.
    pub max_norm: f64,
    /// Which norm: 2 (default), `inf`, or any `p > 0`.
    #[serde(default = "two")]
    pub norm_type: f64,
}

fn two() -> f64 {
    2.0
}

impl ClipGradNorm {
    /// Checks `max_norm` (finite, `>= 0`) and builds an L2-norm clip.
    pub fn new(max_norm: f64) -> Result<Self, ConfigError> {
        Self::with_norm_type(max_norm, 2.0)
    }

    /// Checks `max_norm` and `norm_type` (`> 0`, possibly infinite).
    pub fn with_norm_type(max_norm: f64, norm_type: f64) -> Result<Self, ConfigError> {
        let config = Self { max_norm, norm_type };
        config.validate()?;
        Ok(config)
    }

    /// Checks the options, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("max_norm", self.max_norm)?;
        if self.norm_type > 0.0 {
            Ok(())
        } else {
            Err(ConfigError::new("norm_type", self.norm_type, "a number > 0, or inf"))
        }
    }

    /// Rescales `grads` and returns their norm before clipping (see [`clip_grad_norm`]).
    pub fn apply(&self, grads: &mut [f32]) -> f64 {
        clip_grad_norm_with(grads, self.max_norm, self.norm_type)
    }
}

/// Gradient accumulation: sums the gradients of `accumulation_steps` micro-batches and hands
/// back their mean when an update is due, so that `k` micro-batches of `b` examples give the
/// update of one batch of `k·b` (with mean-reduced losses).
///
/// Sums are kept in `f64`, so the mean of `k` equal gradients is that gradient exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradAccumulator {
    accumulation_steps: u64,
    pending: u64,
    sum: Vec<f64>,
    #[serde(skip)]
    mean: Vec<f32>,
}

impl GradAccumulator {
    /// An accumulator over `accumulation_steps` micro-batches (at least 1; 1 passes every
    /// gradient straight through).
    pub fn new(accumulation_steps: u64) -> Result<Self, ConfigError> {
        if accumulation_steps == 0 {
            return Err(ConfigError::new("accumulation_steps", accumulation_steps, "an integer >= 1"));
        }
        Ok(Self { accumulation_steps, pending: 0, sum: Vec::new(), mean: Vec::new() })
    }

    /// Micro-batches per update.
    pub fn accumulation_steps(&self) -> u64 {
        self.accumulation_steps
    }

    /// Micro-batches added since the last update.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Adds one micro-batch's gradient. When it is the `accumulation_steps`-th since the last
    /// update, returns the mean gradient (the update is due) and starts over; otherwise `None`.
    ///
    /// # Panics
    /// If `grads` differs in length from the gradients added before (a programming error).
    pub fn accumulate(&mut self, grads: &[f32]) -> Option<&[f32]> {
        if self.pending == 0 {
            self.sum.clear();
            self.sum.resize(grads.len(), 0.0);
        }
        assert_eq!(self.sum.len(), grads.len(), "gradient length changed between micro-batches");
        self.sum.iter_mut().zip(grads).for_each(|(s, &g)| *s += g as f64);
        self.pending += 1;
        if self.pending == self.accumulation_steps {
            self.flush()
        } else {
            None
        }
    }

    /// Returns the mean of the micro-batches added since the last update, however many there
    /// were (as at the end of an epoch that does not divide evenly), and starts over; `None` when
    /// there were none.
    pub fn flush(&mut self) -> Option<&[f32]> {
        if self.pending == 0 {
            return None;
        }
        let count = self.pending as f64;
        self.mean.clear();
        self.mean.extend(self.sum.iter().map(|&s| (s / count) as f32));
        self.pending = 0;
        Some(&self.mean)
    }

    /// Drops the micro-batches added since the last update.
    pub fn reset(&mut self) {
        self.pending = 0;
    }
}

/// Whether every element of `grads` is finite (no NaN, no ±∞).
///
/// Each chunk is a branch-free scan over the exponent bits, which vectorizes (an early-exit search
/// does not, and the engine runs this on every update); long buffers are split across threads.
pub fn all_finite(grads: &[f32]) -> bool {
    fn chunk_finite(chunk: &[f32]) -> bool {
        const EXPONENT: u32 = 0x7f80_0000;
        !chunk.iter().fold(false, |bad, v| bad | (v.to_bits() & EXPONENT == EXPONENT))
    }
    if grads.len() < PARALLEL_THRESHOLD {
        grads.chunks(1024).all(chunk_finite)
    } else {
        grads.par_chunks(CHUNK).all(chunk_finite)
    }
}

/// What [`NonFiniteGuard::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The gradient was finite and the optimizer stepped.
    Applied,
    /// The gradient held NaN or ±∞; parameters and optimizer state were left untouched.
    Skipped,
}

/// Opt-in refusal of non-finite updates: a step whose gradient holds NaN or ±∞ is skipped
/// instead of poisoning the parameters and the optimizer's moments, and counted, never silently:
/// [`NonFiniteGuard::skipped`] and [`NonFiniteGuard::consecutive_skipped`] report the skips
/// (a training loop should log them and may give up after too many in a row).
///
/// The optimizer's step count does not advance on a skipped step, as with mixed-precision
/// loss-scaling in PyTorch (`GradScaler`), which skips `optimizer.step()` the same way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NonFiniteGuard {
    skipped: u64,
    consecutive_skipped: u64,
    applied: u64,
}

impl NonFiniteGuard {
    /// A guard that has seen no steps.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `grads`, counting a skip when they are not all finite. Returns whether the step
    /// may go ahead.
    pub fn check(&mut self, grads: &[f32]) -> bool {
        if all_finite(grads) {
            self.applied += 1;
            self.consecutive_skipped = 0;
            true
        } else {
            self.skipped += 1;
            self.consecutive_skipped += 1;
            false
        }
    }

    /// Steps `optimizer` with `grads` if they are all finite; otherwise leaves everything as it is
    /// and counts a skip.
    pub fn step<O: Optimizer + ?Sized>(&mut self, optimizer: &mut O, params: &mut [f32], grads: &[f32]) -> StepOutcome {
        if self.check(grads) {
            optimizer.step(params, grads);
            StepOutcome::Applied
        } else {
            StepOutcome::Skipped
        }
    }

    /// Steps skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Steps skipped since the last applied one.
    pub fn consecutive_skipped(&self) -> u64 {
        self.consecutive_skipped
    }

    /// Steps let through so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }
}

/// Options of [`Ema`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmaConfig {
    /// Weight δ of the old average at each update, in `[0, 1)` (default 0.999, as
    /// `torch.optim.swa_utils.get_ema_multi_avg_fn`).
    pub decay: f64,
    /// Correct the average's bias towards its start instead of starting from the first
    /// parameters (default false); see [`Ema`].
    pub bias_correction: bool,
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self { decay: 0.999, bias_correction: false }
    }
}

/// An exponential moving average of the parameters (Polyak averaging), whose shadow copy often
/// evaluates better than the raw parameters.
///
/// At update `t = 1, 2, …` with parameters θₜ and decay δ:
///
/// ```text
/// default:          s₁ = θ₁,               sₜ = δ sₜ₋₁ + (1 − δ) θₜ
/// bias_correction:  m₀ = 0,  mₜ = δ mₜ₋₁ + (1 − δ) θₜ,  sₜ = mₜ / (1 − δᵗ)
/// ```
///
/// The default is PyTorch's `AveragedModel` with `get_ema_multi_avg_fn` (the first update copies
/// the parameters). With `bias_correction` (a warmup, as Adam corrects its moments), `sₜ` is the
/// properly normalized weighted mean `Σ δ^(t−i) θᵢ / Σ δ^(t−i)` of every parameter vector seen,
/// so the early average is not dominated by the first one. Both give `s₁ = θ₁`. Element-wise
/// arithmetic is `f32` (`s ← s + (1 − δ)(θ − s)`), scalars `f64`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ema {
    config: EmaConfig,
    updates: u64,
    shadow: Vec<f32>,
    /// The uncorrected average `mₜ`, kept only with `bias_correction`.
    biased: Vec<f32>,
}

impl Ema {
    /// An average with decay `decay` (in `[0, 1)`) that starts from the first parameters.
    pub fn new(decay: f64) -> Result<Self, ConfigError> {
        Self::with_config(EmaConfig { decay, bias_correction: false })
    }

    /// An average with the given options.
    pub fn with_config(config: EmaConfig) -> Result<Self, ConfigError> {
        unit_interval("decay", config.decay)?;
        Ok(Self { config, updates: 0, shadow: Vec::new(), biased: Vec::new() })
    }

    /// The options.
    pub fn config(&self) -> &EmaConfig {
        &self.config
    }

    /// Folds `params` into the average.
    ///
    /// # Panics
    /// If `params` differs in length from earlier updates (a programming error).
    pub fn update(&mut self, params: &[f32]) {
        let weight = (1.0 - self.config.decay) as f32;
        self.updates += 1;
        if !self.config.bias_correction {
            if self.updates == 1 {
                self.shadow = params.to_vec();
                return;
            }
            assert_eq!(self.shadow.len(), params.len(), "parameter length changed between EMA updates");
            for_each_split(&mut self.shadow, params, [], &|s: &mut [f32], p: &[f32], []: [&mut [f32]; 0]| {
                for (s, &p) in s.iter_mut().zip(p) {
                    *s += weight * (p - *s);
                }
            });
            return;
        }
        if self.updates == 1 {
            // m₁ = (1 − δ) θ₁ and s₁ = θ₁ exactly (dividing by 1 − δ in f32 could round).
            self.biased = params.iter().map(|&p| weight * p).collect();
            self.shadow = params.to_vec();
            return;
        }
        assert_eq!(self.biased.len(), params.len(), "parameter length changed between EMA updates");
        let correction = (1.0 / (1.0 - self.config.decay.powf(self.updates as f64))) as f32;
        for_each_split(
            &mut self.biased,
            params,
            [&mut self.shadow],
            &|m: &mut [f32], p: &[f32], [s]: [&mut [f32]; 1]| {
                for ((m, &p), s) in m.iter_mut().zip(p).zip(s.iter_mut()) {
                    *m += weight * (p - *m);
                    *s = *m * correction;
                }
            },
        );
    }

    /// The averaged parameters (empty before the first update).
    pub fn shadow(&self) -> &[f32] {
        &self.shadow
    }

    /// Updates folded in so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Copies the averaged parameters into `params` (for evaluation); does nothing before the
    /// first update.
    ///
    /// # Panics
    /// If `params` differs in length from the average (a programming error).
    pub fn copy_to(&self, params: &mut [f32]) {
        if self.updates > 0 {
            params.copy_from_slice(&self.shadow);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sparse sum of squares must give the dense one's bits on a buffer that is zero outside
    /// the ranges: ranges not aligned to the lanes, crossing chunk boundaries, and enough of them
    /// to take the threaded path.
    #[test]
    fn sum_of_squares_within_ranges_matches_the_dense_sum_bit_for_bit() {
        let len = 40 * CHUNK + 77;
        let mut values = vec![0.0f32; len];
        let mut ranges = Vec::new();
        let mut start = 5;
        let mut k = 0usize;
        while start < len {
            let width = 1 + (k * 37) % 150;
            let end = (start + width).min(len);
            ranges.push(start..end);
            for (i, v) in values[start..end].iter_mut().enumerate() {
                *v = ((((k + i) * 7919) % 2001) as f32 - 1000.0) * 1e-3;
            }
            // Gaps of varying length, some across a chunk boundary.
            start = end + 3 + (k * 101) % 700;
            k += 1;
        }
        assert!(ranges.iter().map(|r| r.len()).sum::<usize>() > PARALLEL_THRESHOLD);
        assert!(ranges.iter().any(|r| r.start / CHUNK != (r.end - 1) / CHUNK), "a range crosses a chunk boundary");
        let dense = sum_of_squares(&values);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let sparse = pool.install(|| sum_of_squares_within(&values, &ranges));
        assert_eq!(sparse.to_bits(), dense.to_bits());
        let few = &ranges[..10];
        let mut only_few = vec![0.0f32; len];
        for r in few {
            only_few[r.clone()].copy_from_slice(&values[r.clone()]);
        }
        assert_eq!(sum_of_squares_within(&values, few).to_bits(), sum_of_squares(&only_few).to_bits());
    }
}
