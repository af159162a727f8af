//! Linear, logistic and softmax regression: one dense layer with no hidden units, trained by any
//! optimizer through the [`Model`] interface, with optional L2 and L1 penalties on the weights.
//!
//! A linear model has the parameter layout of a one-layer [`Mlp`] (identity activation):
//! `layer0.weight` (`[outputs][inputs]`, as PyTorch's `Linear`) and `layer0.bias`, and the same
//! losses. Its passes are written out here rather than taken from the MLP's matrix products: with
//! at most a handful of outputs, a general matrix product spends most of its time packing the
//! inputs, while a direct pass reads each row once for the outputs and once (from cache) for the
//! gradient. Batches are cut into blocks of [`BLOCK_ROWS`] rows that run on rayon's pool, each
//! into its own gradient buffer, added in block order: the gradient does not depend on the number
//! of threads.

use serde::{Deserialize, Serialize};

use crate::error::{non_negative, ConfigError};
use crate::loss::Loss;
use rayon::prelude::*;

use crate::mlp::{Activation, Mlp, BLOCK_ROWS};
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
    fn forward_block(&self, params: &[f32], x: &[f32], out: &mut [f32]) {
        let inputs = self.net.input_size();
        let (weights, bias) = params.split_at(inputs * self.net.output_size());
        kernels::forward(weights, bias, inputs, x, out);
    }

    /// Outputs of any number of rows, blocks in parallel.
    fn forward_rows(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        let (inputs, outputs) = (self.net.input_size(), self.net.output_size());
        assert_eq!(params.len(), self.net.num_params(), "parameter buffer length");
        assert_eq!(x.len(), rows * inputs, "input length is not rows × input size");
        assert_eq!(out.len(), rows * outputs, "output buffer length");
        if rows <= BLOCK_ROWS {
            self.forward_block(params, x, out);
        } else {
            x.par_chunks(BLOCK_ROWS * inputs)
                .zip(out.par_chunks_mut(BLOCK_ROWS * outputs))
                .for_each(|(x_block, out_block)| self.forward_block(params, x_block, out_block));
        }
    }

    /// The summed data loss of one block, writing `grad_scale ×` its gradient into `grad`
    /// (overwritten). `scratch` holds the block's outputs and their gradients.
    fn block_loss_gradient(
        &self,
        params: &[f32],
        x: &[f32],
        targets: &[f32],
        grad_scale: f32,
        grad: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> f64 {
        let (inputs, outputs) = (self.net.input_size(), self.net.output_size());
        let rows = x.len() / inputs;
        scratch.resize(2 * rows * outputs, 0.0);
        let (out, delta) = scratch.split_at_mut(rows * outputs);
        self.forward_block(params, x, out);
        let loss = self.net.loss().sum_grad(out, targets, outputs, grad_scale, delta);
        let (grad_weights, grad_bias) = grad.split_at_mut(inputs * outputs);
        kernels::backward(x, delta, inputs, grad_weights, grad_bias);
        loss
    }

    /// The mean data loss (no penalty) and its gradient.
    fn data_loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        let (inputs, outputs) = (self.net.input_size(), self.net.output_size());
        let loss = self.net.loss();
        let target_width = loss.target_len(1, outputs);
        assert_eq!(params.len(), self.net.num_params(), "parameter buffer length");
        assert_eq!(grad.len(), params.len(), "gradient buffer length");
        assert_eq!(x.len(), rows * inputs, "input length is not rows × input size");
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
            let x_block = &x[range.start * inputs..range.end * inputs];
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

/// The two passes over a block of rows, compiled twice: with AVX2 and FMA (chosen at run time
/// when the CPU has them) and for the baseline target. Both use a fixed order of operations, so
/// the results do not depend on the thread count; they differ between the two variants by
/// rounding (fused multiply-adds).
mod kernels {
    /// Interleaved partial sums per dot product: enough independent chains (eight 8-wide vectors)
    /// to hide the latency of the multiply-adds.
    const LANES: usize = 64;

    #[inline(always)]
    fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    /// Lanes per dot product when four are computed together (four times two 8-wide vectors).
    const GROUP_LANES: usize = 16;

    /// Adds the lanes pairwise (a fixed tree), then the scalar tail.
    #[inline(always)]
    fn reduce<const N: usize>(mut lanes: [f32; N], tail: f32) -> f32 {
        let mut width = N;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                lanes[i] += lanes[i + width];
            }
        }
        lanes[0] + tail
    }

    /// `Σ w[i] x[i]`: lanes accumulated in a fixed order, added pairwise, then the tail.
    #[inline(always)]
    fn dot<const FMA: bool>(w: &[f32], x: &[f32]) -> f32 {
        let mut lanes = [0.0f32; LANES];
        let (w_blocks, x_blocks) = (w.chunks_exact(LANES), x.chunks_exact(LANES));
        let mut tail = 0.0f32;
        for (&a, &b) in w_blocks.remainder().iter().zip(x_blocks.remainder()) {
            tail = madd::<FMA>(a, b, tail);
        }
        for (ws, xs) in w_blocks.zip(x_blocks) {
            for i in 0..LANES {
                lanes[i] = madd::<FMA>(ws[i], xs[i], lanes[i]);
            }
        }
        reduce(lanes, tail)
    }

    /// Four dot products with the same `x`, which is then read once for the four: fewer loads per
    /// multiply-add than four calls of [`dot`].
    #[inline(always)]
    fn dot4<const FMA: bool>(w: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
        let (mut l0, mut l1, mut l2, mut l3) =
            ([0.0f32; GROUP_LANES], [0.0; GROUP_LANES], [0.0; GROUP_LANES], [0.0; GROUP_LANES]);
        let x_blocks = x.chunks_exact(GROUP_LANES);
        let [w0, w1, w2, w3] = w.map(|w| w.chunks_exact(GROUP_LANES));
        let tails = w.map(|w| {
            let start = x.len() - x_blocks.remainder().len();
            w[start..x.len()].iter().zip(x_blocks.remainder()).fold(0.0f32, |t, (&a, &b)| madd::<FMA>(a, b, t))
        });
        for ((((xs, a), b), c), d) in x_blocks.zip(w0).zip(w1).zip(w2).zip(w3) {
            for i in 0..GROUP_LANES {
                l0[i] = madd::<FMA>(a[i], xs[i], l0[i]);
                l1[i] = madd::<FMA>(b[i], xs[i], l1[i]);
                l2[i] = madd::<FMA>(c[i], xs[i], l2[i]);
                l3[i] = madd::<FMA>(d[i], xs[i], l3[i]);
            }
        }
        [reduce(l0, tails[0]), reduce(l1, tails[1]), reduce(l2, tails[2]), reduce(l3, tails[3])]
    }

    #[inline(always)]
    fn forward_impl<const FMA: bool>(weights: &[f32], bias: &[f32], inputs: usize, x: &[f32], out: &mut [f32]) {
        let outputs = bias.len();
        for (row, out_row) in x.chunks_exact(inputs).zip(out.chunks_exact_mut(outputs)) {
            // Outputs in groups of four, the rest one by one: which kernel computes an output
            // depends on its index alone.
            let groups = outputs / 4;
            for g in 0..groups {
                let w = |k: usize| &weights[(4 * g + k) * inputs..(4 * g + k + 1) * inputs];
                let sums = dot4::<FMA>([w(0), w(1), w(2), w(3)], row);
                for k in 0..4 {
                    out_row[4 * g + k] = bias[4 * g + k] + sums[k];
                }
            }
            for c in 4 * groups..outputs {
                out_row[c] = bias[c] + dot::<FMA>(&weights[c * inputs..(c + 1) * inputs], row);
            }
        }
    }

    #[inline(always)]
    fn backward_impl<const FMA: bool>(
        x: &[f32],
        delta: &[f32],
        inputs: usize,
        grad_weights: &mut [f32],
        grad_bias: &mut [f32],
    ) {
        let outputs = grad_bias.len();
        grad_weights.fill(0.0);
        grad_bias.fill(0.0);
        for (row, delta_row) in x.chunks_exact(inputs).zip(delta.chunks_exact(outputs)) {
            for ((g, &d), gb) in grad_weights.chunks_exact_mut(inputs).zip(delta_row).zip(grad_bias.iter_mut()) {
                *gb += d;
                // Rows whose gradient vanishes (a confident, right prediction) cost nothing.
                if d != 0.0 {
                    g.iter_mut().zip(row).for_each(|(g, &v)| *g = madd::<FMA>(d, v, *g));
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(weights: &[f32], bias: &[f32], inputs: usize, x: &[f32], out: &mut [f32]) {
        forward_impl::<true>(weights, bias, inputs, x, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_avx2(x: &[f32], delta: &[f32], inputs: usize, grad_weights: &mut [f32], grad_bias: &mut [f32]) {
        backward_impl::<true>(x, delta, inputs, grad_weights, grad_bias)
    }

    fn has_avx2_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// `out[r][c] = bias[c] + Σₖ weights[c][k] x[r][k]` for every row `r` of `x` (`inputs` wide).
    pub(super) fn forward(weights: &[f32], bias: &[f32], inputs: usize, x: &[f32], out: &mut [f32]) {
        if has_avx2_fma() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { forward_avx2(weights, bias, inputs, x, out) };
        }
        forward_impl::<false>(weights, bias, inputs, x, out)
    }

    /// `grad_weights[c][k] = Σᵣ delta[r][c] x[r][k]` and `grad_bias[c] = Σᵣ delta[r][c]`, rows in order.
    pub(super) fn backward(x: &[f32], delta: &[f32], inputs: usize, grad_weights: &mut [f32], grad_bias: &mut [f32]) {
        if has_avx2_fma() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { backward_avx2(x, delta, inputs, grad_weights, grad_bias) };
        }
        backward_impl::<false>(x, delta, inputs, grad_weights, grad_bias)
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
        let data = self.data_loss_and_gradient(params, x, y, rows, grad);
        let w = self.weight_range();
        data + self.penalty.apply(&params[w.clone()], &mut grad[w])
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
