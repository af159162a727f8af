//! Linear, logistic and softmax regression: one dense layer with no hidden units, trained by any
//! optimizer through the [`Model`] interface, with optional L2 and L1 penalties on the weights.
//!
//! A linear model is the one-layer case of [`Mlp`] (identity activation), so it shares the MLP's
//! GEMM-based forward and backward passes and its thread-count-independent batch reduction; this
//! module adds the penalties and the task-specific loss.

use serde::{Deserialize, Serialize};

use crate::error::{non_negative, ConfigError};
use crate::loss::Loss;
use crate::mlp::{Activation, Mlp};
use crate::model::Model;
use crate::params::ParamLayout;
use crate::train::Task;

/// Which linear model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearKind {
    /// Least squares: ŷ = w·x + b, mean squared error.
    Linear,
    /// Binary logistic regression: p = σ(w·x + b), binary cross-entropy on the logit.
    Logistic,
    /// Multinomial (softmax) regression over `k` classes, softmax cross-entropy.
    Softmax,
}

/// Penalties on the weights (never on the bias), added to the mean data loss:
/// `l2/2 · ‖W‖² + l1 · ‖W‖₁`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Penalty {
    /// L2 (ridge) strength.
    pub l2: f64,
    /// L1 (lasso) strength; its subgradient at 0 is 0.
    pub l1: f64,
}

impl Penalty {
    /// Checks both strengths are finite and non-negative.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("l2", self.l2)?;
        non_negative("l1", self.l1)
    }

    /// Whether the penalty is zero.
    pub fn is_zero(&self) -> bool {
        self.l2 == 0.0 && self.l1 == 0.0
    }

    /// Adds the penalty's gradient on `weights` to `grad` and returns its value.
    pub fn apply(&self, weights: &[f32], grad: &mut [f32]) -> f64 {
        if self.is_zero() {
            return 0.0;
        }
        let (l2, l1) = (self.l2 as f32, self.l1 as f32);
        let mut value = 0.0f64;
        for (g, &w) in grad.iter_mut().zip(weights) {
            let sign = if w > 0.0 {
                1.0
            } else if w < 0.0 {
                -1.0
            } else {
                0.0
            };
            *g += l2 * w + l1 * sign;
            value += 0.5 * self.l2 * (w as f64) * (w as f64) + self.l1 * (w as f64).abs();
        }
        value
    }

    /// The penalty's value on `weights`.
    pub fn value(&self, weights: &[f32]) -> f64 {
        weights.iter().map(|&w| 0.5 * self.l2 * (w as f64).powi(2) + self.l1 * (w as f64).abs()).sum()
    }
}

/// A linear, logistic or softmax regression model.
#[derive(Debug, Clone)]
pub struct LinearModel {
    kind: LinearKind,
    penalty: Penalty,
    net: Mlp,
}

impl LinearModel {
    /// A model of `kind` over `inputs` features (`classes` outputs for softmax, ignored otherwise).
    pub fn new(kind: LinearKind, inputs: usize, classes: usize, penalty: Penalty) -> Result<Self, ConfigError> {
        penalty.validate()?;
        let (outputs, loss) = match kind {
            LinearKind::Linear => (1, Loss::Mse),
            LinearKind::Logistic => (1, Loss::BceWithLogits),
            LinearKind::Softmax => {
                if classes < 2 {
                    return Err(ConfigError::new("classes", classes, "at least 2 classes for softmax regression"));
                }
                (classes, Loss::CrossEntropy { label_smoothing: 0.0 })
            }
        };
        let net = Mlp::new(&[inputs, outputs], &[Activation::Identity], loss)?;
        Ok(Self { kind, penalty, net })
    }

    /// Least-squares linear regression.
    pub fn linear(inputs: usize, penalty: Penalty) -> Result<Self, ConfigError> {
        Self::new(LinearKind::Linear, inputs, 1, penalty)
    }

    /// Binary logistic regression.
    pub fn logistic(inputs: usize, penalty: Penalty) -> Result<Self, ConfigError> {
        Self::new(LinearKind::Logistic, inputs, 2, penalty)
    }

    /// Softmax regression over `classes` classes.
    pub fn softmax(inputs: usize, classes: usize, penalty: Penalty) -> Result<Self, ConfigError> {
        Self::new(LinearKind::Softmax, inputs, classes, penalty)
    }

    /// Which model this is.
    pub fn kind(&self) -> LinearKind {
        self.kind
    }

    /// The penalty.
    pub fn penalty(&self) -> Penalty {
        self.penalty
    }

    fn weight_range(&self) -> std::ops::Range<usize> {
        self.net.layout().segment("layer0.weight").expect("a linear model has a weight segment").range()
    }
}

impl Model for LinearModel {
    fn task(&self) -> Task {
        match self.kind {
            LinearKind::Linear => Task::Regression,
            LinearKind::Logistic => Task::Binary,
            LinearKind::Softmax => Task::Multiclass,
        }
    }

    fn layout(&self) -> &ParamLayout {
        self.net.layout()
    }

    fn inputs(&self) -> usize {
        self.net.input_size()
    }

    fn outputs(&self) -> usize {
        self.net.output_size()
    }

    /// Linear models start at zero, as scikit-learn's do: the loss is convex, so the start only
    /// matters for speed, and zero makes runs independent of the seed.
    fn init_params(&self, _seed: u64) -> Vec<f32> {
        self.net.layout().zeros()
    }

    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        let data = self.net.loss_and_gradient(params, x, rows, y, grad);
        let w = self.weight_range();
        data + self.penalty.apply(&params[w.clone()], &mut grad[w])
    }

    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        self.net.predict(params, x, rows, out);
    }

    fn loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize) -> f64 {
        self.net.loss_only(params, x, y, rows) + self.penalty.value(&params[self.weight_range()])
    }

    fn forward_and_loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, out: &mut [f32]) -> f64 {
        crate::model::mlp_forward_and_loss(&self.net, params, x, y, rows, out)
            + self.penalty.value(&params[self.weight_range()])
    }
}
