//! Metrics recorded while training and reported by evaluation: loss, accuracy, RMSE, MAE and R².

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a model predicts, which decides its loss and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Real-valued targets: metrics loss, rmse, mae, r2.
    Regression,
    /// Two classes (targets 0/1): metrics loss and accuracy.
    Binary,
    /// `k` classes (targets 0..k as class indices): metrics loss and accuracy.
    Multiclass,
    /// (user, item, rating) triples: metrics loss, rmse, mae.
    Ratings,
}

impl Task {
    /// The task's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Task::Regression => "regression",
            Task::Binary => "binary",
            Task::Multiclass => "multiclass",
            Task::Ratings => "ratings",
        }
    }

    /// The metrics [`crate::model::evaluate`] reports for the task.
    pub fn metric_names(self) -> &'static [&'static str] {
        match self {
            Task::Regression | Task::Ratings => &["loss", "rmse", "mae", "r2"],
            Task::Binary | Task::Multiclass => &["loss", "accuracy"],
        }
    }

    /// The metric early stopping and model selection watch by default, and whether higher is better.
    pub fn primary_metric(self) -> (&'static str, bool) {
        match self {
            Task::Regression | Task::Ratings => ("rmse", false),
            Task::Binary | Task::Multiclass => ("accuracy", true),
        }
    }
}

/// Named metric values (`loss`, `accuracy`, `rmse`, `mae`, `r2`), in name order.
pub type Metrics = BTreeMap<String, f64>;

/// Metrics asked of inputs they cannot be measured on: found before anything is computed, so
/// that a mismatch is an error rather than a number that looks right.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Predictions and targets differ in number.
    #[error("{predicted} predictions for {targets} targets: expected one prediction per target")]
    Length {
        /// Predictions given.
        predicted: usize,
        /// Targets given.
        targets: usize,
    },
    /// Nothing to measure.
    #[error("no targets to measure against: expected at least one")]
    Empty,
    /// A target that is NaN or infinite.
    #[error("target {value} of row {row} is not a finite number")]
    NonFiniteTarget {
        /// The row (from 0).
        row: usize,
        /// Its target.
        value: f32,
    },
    /// A classification target that is not a class index (an integer `>= 0`).
    #[error("target {value} of row {row} is not a class index (an integer >= 0)")]
    NotAClass {
        /// The row (from 0).
        row: usize,
        /// Its target.
        value: f32,
    },
    /// Outputs of zero columns have no largest column.
    #[error("outputs of 0 columns: expected at least one column per row")]
    NoColumns,
    /// Outputs that are not a whole number of rows.
    #[error("{values} outputs are not a whole number of rows of {cols} columns")]
    PartialRow {
        /// Outputs given.
        values: usize,
        /// Columns per row.
        cols: usize,
    },
}

fn same_length(predicted: usize, targets: usize) -> Result<(), MetricsError> {
    if predicted != targets {
        return Err(MetricsError::Length { predicted, targets });
    }
    if targets == 0 {
        return Err(MetricsError::Empty);
    }
    Ok(())
}

/// Regression metrics of `predicted` against `target`: rmse, mae and r2 (1 − SS_res / SS_tot; 0
/// when the targets are constant, where r2 is undefined).
///
/// An error when the two differ in length, are empty, or a target is not finite (a NaN
/// prediction, from a diverged model, gives NaN metrics).
pub fn regression_metrics(predicted: &[f32], target: &[f32]) -> Result<Metrics, MetricsError> {
    same_length(predicted.len(), target.len())?;
    if let Some(row) = target.iter().position(|t| !t.is_finite()) {
        return Err(MetricsError::NonFiniteTarget { row, value: target[row] });
    }
    let n = target.len() as f64;
    let mean = target.iter().map(|&t| t as f64).sum::<f64>() / n;
    let (mut sse, mut sae, mut sst) = (0.0f64, 0.0f64, 0.0f64);
    for (&p, &t) in predicted.iter().zip(target) {
        let e = p as f64 - t as f64;
        sse += e * e;
        sae += e.abs();
        sst += (t as f64 - mean).powi(2);
    }
    let mut m = Metrics::new();
    m.insert("rmse".into(), (sse / n).sqrt());
    m.insert("mae".into(), sae / n);
    m.insert("r2".into(), if sst > 0.0 { 1.0 - sse / sst } else { 0.0 });
    Ok(m)
}

/// Fraction of `predicted` class indices equal to `target` (class indices stored as floats).
///
/// An error when the two differ in length, are empty, or a target is not a class index (NaN,
/// negative or fractional).
pub fn accuracy(predicted: &[usize], target: &[f32]) -> Result<f64, MetricsError> {
    same_length(predicted.len(), target.len())?;
    let mut hits = 0usize;
    for (row, (&p, &t)) in predicted.iter().zip(target).enumerate() {
        if !t.is_finite() {
            return Err(MetricsError::NonFiniteTarget { row, value: t });
        }
        if t < 0.0 || t.fract() != 0.0 {
            return Err(MetricsError::NotAClass { row, value: t });
        }
        hits += usize::from(t as f64 == p as f64);
    }
    Ok(hits as f64 / target.len() as f64)
}

/// Index of the largest value in each row of `outputs` (`rows × cols`); for one column, the class is
/// 1 when the logit is positive.
///
/// An error when `cols` is 0 or `outputs` is not a whole number of rows.
pub fn argmax_rows(outputs: &[f32], cols: usize) -> Result<Vec<usize>, MetricsError> {
    if cols == 0 {
        return Err(MetricsError::NoColumns);
    }
    if !outputs.len().is_multiple_of(cols) {
        return Err(MetricsError::PartialRow { values: outputs.len(), cols });
    }
    if cols == 1 {
        return Ok(outputs.iter().map(|&o| usize::from(o > 0.0)).collect());
    }
    Ok(outputs
        .chunks_exact(cols)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect())
}
