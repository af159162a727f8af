//! Metrics recorded while training and reported by evaluation: loss, accuracy, RMSE, MAE and R².

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// Regression metrics of `predicted` against `target`: rmse, mae and r2 (1 − SS_res / SS_tot; 0 when
/// the targets are constant and the fit is exact, −∞ avoided by reporting 0 for constant targets).
pub fn regression_metrics(predicted: &[f32], target: &[f32]) -> Metrics {
    let n = target.len().max(1) as f64;
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
    m
}

/// Fraction of `predicted` class indices equal to `target`.
pub fn accuracy(predicted: &[usize], target: &[f32]) -> f64 {
    if target.is_empty() {
        return 0.0;
    }
    let hits = predicted.iter().zip(target).filter(|(&p, &t)| p == t as usize).count();
    hits as f64 / target.len() as f64
}

/// Index of the largest value in each row of `outputs` (`rows × cols`); for one column, the class is
/// 1 when the logit is positive.
pub fn argmax_rows(outputs: &[f32], cols: usize) -> Vec<usize> {
    if cols == 1 {
        return outputs.iter().map(|&o| usize::from(o > 0.0)).collect();
    }
    outputs
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
        .collect()
}
