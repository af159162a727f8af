//! Linear, logistic and softmax regression: one dense layer with no hidden units, trained by any
//! optimizer through the [`Model`] interface, with optional L2 and L1 penalties on the weights.
//!
//! A linear model has the parameter layout of a one-layer [`Mlp`] (identity activation):
//! `layer0.weight` (`[outputs][inputs]`, as PyTorch's `Linear`) and `layer0.bias`, and the same
//! losses. Its passes use the MLP's hand-written `f32` kernels rather than a general matrix
//! product, which with a handful of outputs would spend most of its time packing the inputs.
//! Batches are cut into blocks of [`BLOCK_ROWS`] rows that run on rayon's pool, each
//! into its own gradient buffer, added in block order: the gradient does not depend on the number
//! of threads.

use serde::{Deserialize, Serialize};

use crate::error::{non_negative, ConfigError};
use crate::loss::Loss;
use rayon::prelude::*;

use crate::mlp::{Activation, Mlp, BLOCK_ROWS};
use crate::model::{Model, Rows};
use crate::nn::kernels::{self, RowSource};
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
        // Branch-free, so that it vectorizes: `signum` is ±1 for ±0, hence the mask for zero.
        for (g, &w) in grad.iter_mut().zip(weights) {
            let sign = if w == 0.0 { 0.0 } else { w.signum() };
            *g += l2 * w + l1 * sign;
        }
        self.value(weights)
    }

    /// The penalty's value on `weights`, summed in `f64` over eight interleaved lanes (a fixed order).
    pub fn value(&self, weights: &[f32]) -> f64 {
        if self.is_zero() {
            return 0.0;
        }
        let (mut squares, mut magnitudes) = ([0.0f64; 8], [0.0f64; 8]);
        let blocks = weights.chunks_exact(8);
        let tail = blocks.remainder();
        for block in blocks {
            for i in 0..8 {
                let w = block[i] as f64;
                squares[i] += w * w;
                magnitudes[i] += w.abs();
            }
        }
        for (i, &w) in tail.iter().enumerate() {
            squares[i] += (w as f64) * (w as f64);
            magnitudes[i] += (w as f64).abs();
        }
        let sum = |l: [f64; 8]| ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        0.5 * self.l2 * sum(squares) + self.l1 * sum(magnitudes)
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
        0..self.net.input_size() * self.net.output_size()
    }

    /// Outputs `b + W x` of the `rows` rows of `x` into `out` (`rows × outputs`), one block.
    fn forward_block(&self, params: &[f32], x: RowSource<'_>, out: &mut [f32]) {
        let inputs = self.net.input_size();
        let (weights, bias) = params.split_at(inputs * self.net.output_size());
        kernels::forward(x, weights, bias, inputs, out);
    }

    /// Outputs of any number of rows, blocks in parallel.
    fn forward_rows(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        let (inputs, outputs) = (self.net.input_size(), self.net.output_size());
        assert_eq!(params.len(), self.net.num_params(), "parameter buffer length");
        assert_eq!(x.len(), rows * inputs, "input length is not rows × input size");
        assert_eq!(out.len(), rows * outputs, "output buffer length");
        if rows <= BLOCK_ROWS {
            self.forward_block(params, RowSource::dense(x, inputs), out);
        } else {
            x.par_chunks(BLOCK_ROWS * inputs).zip(out.par_chunks_mut(BLOCK_ROWS * outputs)).for_each(
                |(x_block, out_block)| self.forward_block(params, RowSource::dense(x_block, inputs), out_block),
            );
        }
    }

    /// The summed data loss of one block, writing `grad_scale ×` its gradient into `grad`
    /// (overwritten). `scratch` holds the block's outputs and their gradients.
    fn block_loss_gradient(
        &self,
        params: &[f32],
        x: RowSource<'_>,
        targets: &[f32],
        grad_scale: f32,
        grad: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> f64 {
        let (inputs, outputs) = (self.net.input_size(), self.net.output_size());
        let rows = x.rows();
        scratch.resize(2 * rows * outputs, 0.0);
        let (out, delta) = scratch.split_at_mut(rows * outputs);
        self.forward_block(params, x, out);
        let loss = self.net.loss().sum_grad(out, targets, outputs, grad_scale, delta);
        let (grad_weights, grad_bias) = grad.split_at_mut(inputs * outputs);
        kernels::outer(delta, outputs, x, inputs, rows, 0..outputs, grad_weights);
        grad_bias.fill(0.0);
        for row in delta.chunks_exact(outputs) {
            grad_bias.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
        }
        loss
    }

    /// The mean data loss (no penalty) and its gradient, over the rows of `x` against `y`.
    fn data_loss_and_gradient(&self, params: &[f32], x: RowSource<'_>, y: &[f32], grad: &mut [f32]) -> f64 {
        let rows = x.rows();
        let outputs = self.net.output_size();
        let loss = self.net.loss();
        let target_width = loss.target_len(1, outputs);
        assert_eq!(params.len(), self.net.num_params(), "parameter buffer length");
        assert_eq!(grad.len(), params.len(), "gradient buffer length");
        assert_eq!(y.len(), rows * target_width, "wrong number of targets");
        if rows == 0 {
            grad.fill(0.0);
            return f64::NAN;
        }
        let scale = 1.0 / loss.mean_denominator(rows, outputs) as f64;
        let grad_scale = scale as f32;
        let blocks = rows.div_ceil(BLOCK_ROWS);
        let block = |b: usize, block_grad: &mut [f32], scratch: &mut Vec<f32>| {
            let range = b * BLOCK_ROWS..rows.min((b + 1) * BLOCK_ROWS);
            let x_block = x.slice(range.clone());
            let y_block = &y[range.start * target_width..range.end * target_width];
            self.block_loss_gradient(params, x_block, y_block, grad_scale, block_grad, scratch)
        };
        if blocks == 1 {
            return block(0, grad, &mut Vec::new()) * scale;
        }
        let n = params.len();
        let mut others = vec![0.0f32; (blocks - 1) * n];
        let (first, rest) = rayon::join(
            || block(0, grad, &mut Vec::new()),
            || {
                others
                    .par_chunks_mut(n)
                    .enumerate()
                    .map_init(Vec::new, |scratch, (b, g)| block(b + 1, g, scratch))
                    .collect::<Vec<f64>>()
            },
        );
        // Each element is summed over the blocks in block order.
        for other in others.chunks_exact(n) {
            grad.iter_mut().zip(other).for_each(|(g, &o)| *g += o);
        }
        rest.iter().fold(first, |total, &s| total + s) * scale
    }

    /// The mean data loss (no penalty) of outputs already computed.
    fn data_loss(&self, out: &[f32], y: &[f32]) -> f64 {
        let mut grad_out = vec![0.0f32; out.len()];
        self.net.loss().value_grad(out, y, self.net.output_size(), &mut grad_out)
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

    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), crate::loss::TargetError> {
        self.net.loss().check_targets(targets, rows, self.net.output_size())
    }

    /// Linear models start at zero, as scikit-learn's do: the loss is convex, so the start only
    /// matters for speed, and zero makes runs independent of the seed.
    fn init_params(&self, _seed: u64) -> Vec<f32> {
        self.net.layout().zeros()
    }

    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        assert_eq!(x.len(), rows * self.net.input_size(), "input length is not rows × input size");
        let data = self.data_loss_and_gradient(params, RowSource::dense(x, self.net.input_size()), y, grad);
        let w = self.weight_range();
        data + self.penalty.apply(&params[w.clone()], &mut grad[w])
    }

    /// Reads the batch's rows where they lie instead of copying them.
    fn loss_and_gradient_rows(&self, params: &[f32], data: Rows<'_>, indices: &[usize], grad: &mut [f32]) -> f64 {
        assert_eq!(data.cols, self.net.input_size(), "input width");
        let y: Vec<f32> = indices.iter().map(|&i| data.y[i]).collect();
        let x = RowSource::indexed(data.x, data.cols, indices);
        let loss = self.data_loss_and_gradient(params, x, &y, grad);
        let w = self.weight_range();
        loss + self.penalty.apply(&params[w.clone()], &mut grad[w])
    }

    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        self.forward_rows(params, x, rows, out);
    }

    fn loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize) -> f64 {
        let mut out = vec![0.0f32; rows * self.net.output_size()];
        self.forward_and_loss(params, x, y, rows, &mut out)
    }

    fn forward_and_loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, out: &mut [f32]) -> f64 {
        self.forward_rows(params, x, rows, out);
        self.data_loss(out, y) + self.penalty.value(&params[self.weight_range()])
    }
}
