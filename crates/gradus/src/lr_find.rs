//! The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks",
//! 2015; the "LR finder" of fastai).
//!
//! Starting from the model's initial parameters, one mini-batch after another is trained with a
//! learning rate that grows exponentially from `start_lr` to `end_lr`. The loss falls once the
//! learning rate is large enough to make progress and blows up once it is too large; a good
//! learning rate lies where the loss falls fastest.
//!
//! Losses of single mini-batches are noisy, so the test follows an exponentially weighted average
//! with bias correction (as Adam corrects its moments):
//!
//! ```text
//! avg_t      = β avg_{t−1} + (1 − β) loss_t        (avg_0 = 0, β = 0.98)
//! smoothed_t = avg_t / (1 − β^t)
//! ```
//!
//! and stops early once `smoothed_t > 4 × min_{s ≤ t} smoothed_s` or a loss is not finite.
//!
//! ## The suggestion
//!
//! [`RangeTest::suggestion`] is the learning rate where the smoothed loss falls most steeply
//! against `log10(lr)` (the most negative central difference), looked for between the first tenth
//! of the test, whose smoothed values still carry the start's transient, and the minimum of the
//! smoothed loss, past which the loss only rises. When that stretch is too short (the loss fell
//! from the first step or blew up at once), the suggestion falls back to fastai's other rule: a
//! tenth of the learning rate at the minimum, [`RangeTest::min_loss_suggestion`], which is always
//! reported too. [`RangeTest::rule`] says which rule gave the suggestion.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{positive, ConfigError};
use crate::model::{Model, Rows};
use crate::optim::Optimizer;
use crate::train::epoch_order;

/// The range test's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RangeTestConfig {
    /// The learning rate of the first mini-batch (default 1e-7).
    pub start_lr: f64,
    /// The learning rate of the last mini-batch (default 10).
    pub end_lr: f64,
    /// Mini-batches in the test, at least 2 (default 100).
    pub num_steps: usize,
    /// Rows per mini-batch (default 32; larger than the data set means all rows).
    pub batch_size: usize,
    /// Decay β of the loss's moving average, in `[0, 1)` (default 0.98).
    pub smoothing: f64,
    /// Stop once the smoothed loss exceeds this multiple of its minimum, > 1 (default 4).
    pub divergence_factor: f64,
    /// Seed of the mini-batch order (default 0).
    pub seed: u64,
}

impl Default for RangeTestConfig {
    fn default() -> Self {
        Self {
            start_lr: 1e-7,
            end_lr: 10.0,
            num_steps: 100,
            batch_size: 32,
            smoothing: 0.98,
            divergence_factor: 4.0,
            seed: 0,
        }
    }
}

impl RangeTestConfig {
    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("start_lr", self.start_lr)?;
        positive("end_lr", self.end_lr)?;
        if self.end_lr <= self.start_lr {
            return Err(ConfigError::new("end_lr", self.end_lr, "a learning rate larger than start_lr"));
        }
        if self.num_steps < 2 {
            return Err(ConfigError::new("num_steps", self.num_steps, "at least 2 mini-batches"));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::new("batch_size", self.batch_size, "at least 1 row"));
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return Err(ConfigError::new("smoothing", self.smoothing, "a number in [0, 1)"));
        }
        if !(self.divergence_factor.is_finite() && self.divergence_factor > 1.0) {
            return Err(ConfigError::new("divergence_factor", self.divergence_factor, "a finite number > 1"));
        }
        Ok(())
    }

    /// The learning rate of mini-batch `step` (from 0): `start_lr · (end_lr/start_lr)^(step/(num_steps−1))`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let fraction = step as f64 / (self.num_steps - 1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(fraction)
    }
}

/// Why a range test could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RangeTestError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// There are no training rows.
    #[error("the range test needs training rows, found none")]
    NoRows,
    /// The starting parameters do not fit the model.
    #[error("the model has {expected} parameters, the starting point has {found}")]
    ParamsLength {
        /// The model's parameter count.
        expected: usize,
        /// The length of the parameters given.
        found: usize,
    },
    /// The rows do not fit the model (their width, their targets).
    #[error(transparent)]
    Rows(#[from] crate::model::RowsError),
    /// Not even the first mini-batch had a finite loss, so there is nothing to suggest from.
    #[error("the loss of the first mini-batch is {loss}: the model or data produce non-finite losses")]
    NoFiniteLoss {
        /// The first loss.
        loss: f64,
    },
}

/// The outcome of a range test: one entry per mini-batch trained, and the suggested learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeTest {
    /// The learning rate of each mini-batch.
    pub lrs: Vec<f64>,
    /// The mini-batch's loss, computed before its update (all finite).
    pub losses: Vec<f64>,
    /// The bias-corrected moving average of the losses.
    pub smoothed: Vec<f64>,
    /// The suggested learning rate, between `start_lr` and `end_lr`.
    pub suggestion: f64,
    /// How the suggestion was chosen, in words.
    pub rule: String,
    /// The learning rate at the minimum of the smoothed loss.
    pub min_loss_lr: f64,
    /// A tenth of `min_loss_lr` (no lower than `start_lr`): fastai's "minimum / 10" rule.
    pub min_loss_suggestion: f64,
    /// Whether the test stopped before `num_steps` because the loss blew up or was not finite.
    pub stopped_early: bool,
}

/// Runs the range test on `model` from `params` over `data`, stepping `optimizer` (fresh; its
/// learning rate is set before every mini-batch). The caller's `params` are not changed.
///
/// Mini-batches are drawn in the order of [`crate::train::epoch_order`] from `seed`, epoch after
/// epoch, so the test is reproducible and, for the same seed, sees the rows as training would.
pub fn range_test(
    model: &dyn Model,
    params: &[f32],
    data: Rows<'_>,
    optimizer: Box<dyn Optimizer>,
    config: &RangeTestConfig,
) -> Result<RangeTest, RangeTestError> {
    range_test_with_progress(model, params, data, optimizer, config, &mut |_, _, _| {})
}

/// [`range_test`], calling `on_step(step, lr, smoothed_loss)` after each mini-batch (for a
/// progress bar; `step` counts from 1).
pub fn range_test_with_progress(
    model: &dyn Model,
    params: &[f32],
    data: Rows<'_>,
    mut optimizer: Box<dyn Optimizer>,
    config: &RangeTestConfig,
    on_step: &mut dyn FnMut(usize, f64, f64),
) -> Result<RangeTest, RangeTestError> {
    config.validate()?;
    if data.rows == 0 {
        return Err(RangeTestError::NoRows);
    }
    let expected = model.layout().len();
    if params.len() != expected {
        return Err(RangeTestError::ParamsLength { expected, found: params.len() });
    }
    crate::model::check_rows(model, params, data, "the rows")?;
    let mut params = params.to_vec();
    let mut grads = vec![0.0f32; params.len()];
    let batch_size = config.batch_size.min(data.rows);
    let (mut batch_x, mut batch_y) = (Vec::new(), Vec::new());
    let mut epoch = 1;
    let mut order = epoch_order(data.rows, config.seed, epoch, true);
    let mut cursor = 0;

    let (mut lrs, mut losses, mut smoothed) = (Vec::new(), Vec::new(), Vec::new());
    let mut average = 0.0;
    let mut best = f64::INFINITY;
    let mut stopped_early = false;
    for step in 0..config.num_steps {
        if cursor + batch_size > order.len() {
            // Start the next epoch rather than train on a short remainder.
            epoch += 1;
            order = epoch_order(data.rows, config.seed, epoch, true);
            cursor = 0;
        }
        data.gather(&order[cursor..cursor + batch_size], &mut batch_x, &mut batch_y);
        cursor += batch_size;

        let lr = config.lr_at(step);
        let loss = model.loss_and_gradient(&params, &batch_x, &batch_y, batch_size, &mut grads);
        if !loss.is_finite() {
            if losses.is_empty() {
                return Err(RangeTestError::NoFiniteLoss { loss });
            }
            stopped_early = true;
            break;
        }
        average = config.smoothing * average + (1.0 - config.smoothing) * loss;
        let corrected = average / (1.0 - config.smoothing.powi(step as i32 + 1));
        lrs.push(lr);
        losses.push(loss);
        smoothed.push(corrected);
        if step > 0 && corrected > config.divergence_factor * best {
            stopped_early = true;
            break;
        }
        best = best.min(corrected);
        optimizer.set_lr(lr);
        optimizer.step(&mut params, &grads);
        on_step(step + 1, lr, corrected);
    }

    let (suggestion, rule, min_loss_lr, min_loss_suggestion) = suggest(&lrs, &smoothed, config.start_lr);
    Ok(RangeTest { lrs, losses, smoothed, suggestion, rule, min_loss_lr, min_loss_suggestion, stopped_early })
}

/// The suggestion (see the module's documentation): (suggestion, rule, min-loss lr, min-loss / 10).
fn suggest(lrs: &[f64], smoothed: &[f64], start_lr: f64) -> (f64, String, f64, f64) {
    let minimum = (0..smoothed.len()).min_by(|&a, &b| smoothed[a].total_cmp(&smoothed[b])).unwrap_or(0);
    let min_loss_lr = lrs[minimum];
    let min_loss_suggestion = (min_loss_lr / 10.0).max(start_lr);
    let skip = smoothed.len() / 10;
    // Central differences (one-sided at the ends) of the smoothed loss against log10(lr).
    let log_lrs: Vec<f64> = lrs.iter().map(|lr| lr.log10()).collect();
    let slope = |i: usize| {
        let (a, b) = (i.saturating_sub(1), (i + 1).min(smoothed.len() - 1));
        (smoothed[b] - smoothed[a]) / (log_lrs[b] - log_lrs[a])
    };
    let steepest = (skip.max(1)..minimum).filter(|_| smoothed.len() > 2).min_by(|&a, &b| slope(a).total_cmp(&slope(b)));
    match steepest {
        Some(i) if slope(i) < 0.0 => (
            lrs[i],
            "steepest descent of the smoothed loss against log10(lr), before its minimum".to_string(),
            min_loss_lr,
            min_loss_suggestion,
        ),
        _ => (
            min_loss_suggestion,
            "a tenth of the learning rate at the smoothed loss's minimum (too few points before the minimum to find the steepest descent)"
                .to_string(),
            min_loss_lr,
            min_loss_suggestion,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rates_grow_geometrically_from_start_to_end() {
        let config = RangeTestConfig { start_lr: 1e-4, end_lr: 1.0, num_steps: 5, ..Default::default() };
        let lrs: Vec<f64> = (0..5).map(|s| config.lr_at(s)).collect();
        for (got, want) in lrs.iter().zip([1e-4, 1e-3, 1e-2, 1e-1, 1.0]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let bad = [
            RangeTestConfig { start_lr: 0.0, ..Default::default() },
            RangeTestConfig { end_lr: 1e-8, ..Default::default() },
            RangeTestConfig { num_steps: 1, ..Default::default() },
            RangeTestConfig { batch_size: 0, ..Default::default() },
            RangeTestConfig { smoothing: 1.0, ..Default::default() },
            RangeTestConfig { divergence_factor: 1.0, ..Default::default() },
        ];
        let options: Vec<String> = bad.iter().map(|c| c.validate().unwrap_err().option).collect();
        assert_eq!(options, ["start_lr", "end_lr", "num_steps", "batch_size", "smoothing", "divergence_factor"]);
        assert!(RangeTestConfig::default().validate().is_ok());
    }

    #[test]
    fn the_suggestion_is_where_the_loss_falls_fastest() {
        // A loss that is flat, then falls fastest around lr = 1e-2, bottoms out at 1e-1 and rises.
        let lrs: Vec<f64> = (0..41).map(|i| 10f64.powf(-5.0 + i as f64 * 0.125)).collect();
        let smoothed: Vec<f64> = lrs
            .iter()
            .map(|lr| {
                let x = lr.log10();
                if x <= -1.0 {
                    1.0 - 0.9 / (1.0 + (-(x + 2.0) * 3.0).exp())
                } else {
                    1.0 - 0.9 / (1.0 + (-(-1.0 + 2.0) * 3.0f64).exp()) + (x + 1.0).powi(2)
                }
            })
            .collect();
        let (suggestion, rule, min_lr, min_suggestion) = suggest(&lrs, &smoothed, 1e-5);
        assert!((suggestion.log10() + 2.0).abs() <= 0.125 + 1e-9, "{suggestion}");
        assert!(rule.starts_with("steepest"));
        assert!((min_lr.log10() + 1.0).abs() < 1e-9);
        assert!((min_suggestion.log10() + 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_loss_falling_from_the_start_falls_back_to_a_tenth_of_the_minimum() {
        let lrs = vec![1e-3, 1e-2, 1e-1];
        let smoothed = vec![1.0, 5.0, 30.0];
        let (suggestion, rule, _, _) = suggest(&lrs, &smoothed, 1e-4);
        assert_eq!(suggestion, 1e-4);
        assert!(rule.starts_with("a tenth"));
    }
}
