//! A multilayer perceptron: dense layers with element-wise activations, forward pass and
//! backpropagation written out over one flat parameter buffer.
//!
//! Layer `i` maps `sizes[i]` inputs to `sizes[i + 1]` outputs as `h ← act_i(h · Wᵢᵀ + bᵢ)`, with
//! `Wᵢ` stored `[out][in]` like PyTorch's `Linear`. Its parameters are the segments
//! `layer{i}.weight` and `layer{i}.bias` of the model's [`ParamLayout`], in layer order.
//!
//! Batches are row-major `rows × sizes[0]` matrices. They are cut into blocks of [`BLOCK_ROWS`]
//! rows, a fixed size that does not depend on the thread count; the blocks run on rayon's pool,
//! each into its own gradient buffer, and the buffers are added in block order. The gradient is
//! therefore the same to the bit whatever the number of threads. Scratch buffers are kept per
//! thread and reused, so a training step allocates (almost) nothing.
//!
//! The math is generic over [`Real`]: models train in `f32`, and the same code runs in `f64` to
//! check it against PyTorch's float64 reference gradients.

use std::any::TypeId;
use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::loss::{Loss, Real};
use crate::params::ParamLayout;
use kernels::RowSource;

/// Rows per block of a batch: the unit of parallel work and of the fixed-order gradient sum.
///
/// Fixed, so that the gradient's bits never depend on the thread count. 64 rows keep the matrix
/// products efficient (smaller blocks cost ~15% more CPU time per row on a 784-128-10 network)
/// while batches above 64 rows spread over the threads.
pub const BLOCK_ROWS: usize = 64;

/// The negative slope of [`Activation::LeakyRelu`] (PyTorch's default).
pub const LEAKY_RELU_SLOPE: f64 = 0.01;

/// Elements per piece when adding the blocks' gradient buffers in parallel.
const REDUCE_CHUNK: usize = 1 << 14;

/// An element-wise activation applied after a layer's affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, z)`; its derivative at 0 is taken as 0, as PyTorch does.
    Relu,
    /// `z` for `z > 0`, else `0.01 z`.
    LeakyRelu,
    /// `tanh(z)`.
    Tanh,
    /// `1 / (1 + e^{−z})`.
    Sigmoid,
    /// `z`: a linear layer (the usual last layer, producing logits or regression outputs).
    Identity,
}

impl Activation {
    /// The activation's name (`relu`, `leaky_relu`, `tanh`, `sigmoid`, `identity`).
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Identity => "identity",
        }
    }

    /// Applies the activation in place; NaN stays NaN, so that non-finite checks see it.
    fn apply<T: Real>(self, values: &mut [T]) {
        match self {
            // Selects rather than branches: the signs are random, and selects vectorize.
            Activation::Relu => values.iter_mut().for_each(|v| *v = if *v < T::ZERO { T::ZERO } else { *v }),
            Activation::LeakyRelu => {
                let slope = T::from_f64(LEAKY_RELU_SLOPE);
                values.iter_mut().for_each(|v| *v = if *v < T::ZERO { *v * slope } else { *v })
            }
            Activation::Tanh => values.iter_mut().for_each(|v| *v = v.tanh()),
            Activation::Sigmoid => values.iter_mut().for_each(|v| {
                // Written so that the exponential never overflows.
                let e = (-v.abs()).exp();
                *v = if *v >= T::ZERO { T::ONE / (T::ONE + e) } else { e / (T::ONE + e) };
            }),
            Activation::Identity => {}
        }
    }

    /// Multiplies `delta` (the gradient with respect to the activation's outputs) by the
    /// activation's derivative, which every activation here can take from its output alone.
    fn backprop<T: Real>(self, outputs: &[T], delta: &mut [T]) {
        let pairs = delta.iter_mut().zip(outputs);
        match self {
            Activation::Relu => pairs.for_each(|(d, &out)| *d = if out <= T::ZERO { T::ZERO } else { *d }),
            Activation::LeakyRelu => {
                let slope = T::from_f64(LEAKY_RELU_SLOPE);
                pairs.for_each(|(d, &out)| *d = if out <= T::ZERO { *d * slope } else { *d })
            }
            Activation::Tanh => pairs.for_each(|(d, &out)| *d *= T::ONE - out * out),
            Activation::Sigmoid => pairs.for_each(|(d, &out)| *d *= out * (T::ONE - out)),
            Activation::Identity => {}
        }
    }

    /// Whether He (Kaiming) initialization suits the activation, rather than Xavier (Glorot).
    fn uses_he_init(self) -> bool {
        matches!(self, Activation::Relu | Activation::LeakyRelu)
    }
}

/// The L2 norms of one layer's gradient, for spotting vanishing or exploding gradients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerGradientNorm {
    /// Norm of the weight gradient.
    pub weight: f64,
    /// Norm of the bias gradient.
    pub bias: f64,
}

/// Where one layer's parameters lie in the flat buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LayerParams {
    weight: Range<usize>,
    bias: Range<usize>,
}

/// A fully connected network with a loss on its last layer's outputs.
///
/// Initialization ([`Mlp::init`]) draws every weight from a seeded ChaCha8 stream, layer by layer
/// in buffer order: He normal `N(0, 2 / ((1 + a²) fan_in))` for relu (`a = 0`) and leaky relu
/// (`a = 0.01`), as `torch.nn.init.kaiming_normal_`; Xavier uniform `U(−√(6 / (fan_in + fan_out)),
/// +√(…))` for tanh, sigmoid and identity, as `torch.nn.init.xavier_uniform_` (gain 1). Biases
/// start at zero. (PyTorch's `Linear` default init differs; the same seed gives the same
/// parameters on every platform.)
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    sizes: Vec<usize>,
    activations: Vec<Activation>,
    loss: Loss,
    layout: ParamLayout,
    layers: Vec<LayerParams>,
}

impl Mlp {
    /// A network whose layer `i` maps `sizes[i]` to `sizes[i + 1]` and applies `activations[i]`,
    /// trained against `loss`.
    ///
    /// Fails when there are fewer than two sizes, a size is zero, the number of activations is
    /// not one per layer, or the loss's options are invalid.
    pub fn new(sizes: &[usize], activations: &[Activation], loss: Loss) -> Result<Self, ConfigError> {
        if sizes.len() < 2 {
            return Err(ConfigError::new("sizes", format!("{sizes:?}"), "at least two layer sizes (input and output)"));
        }
        if sizes.contains(&0) {
            return Err(ConfigError::new("sizes", format!("{sizes:?}"), "layer sizes >= 1"));
        }
        if activations.len() != sizes.len() - 1 {
            return Err(ConfigError::new(
                "activations",
                format!("{} activations for {} layers", activations.len(), sizes.len() - 1),
                "one activation per layer",
            ));
        }
        loss.validate()?;
        let mut layout = ParamLayout::new();
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                let weight = layout.push(format!("layer{i}.weight"), pair[1] * pair[0]);
                let bias = layout.push(format!("layer{i}.bias"), pair[1]);
                LayerParams { weight, bias }
            })
            .collect();
        Ok(Self { sizes: sizes.to_vec(), activations: activations.to_vec(), loss, layout, layers })
    }

    /// The layer sizes, input first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// One activation per layer.
    pub fn activations(&self) -> &[Activation] {
        &self.activations
    }

    /// The loss applied to the last layer's outputs.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// Inputs per row.
    pub fn input_size(&self) -> usize {
        self.sizes[0]
    }

    /// Outputs per row.
    pub fn output_size(&self) -> usize {
        *self.sizes.last().expect("at least two sizes")
    }

    /// The number of layers (weight matrices).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The flat buffer's layout: `layer{i}.weight` (`[out][in]`) and `layer{i}.bias` per layer.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The number of parameters.
    pub fn num_params(&self) -> usize {
        self.layout.len()
    }

    /// Freshly initialized parameters drawn from `seed` (see [`Mlp`] for the scheme).
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut params = self.layout.zeros();
        self.init_into(seed, &mut params);
        params
    }

    /// Initializes `params` from `seed` as [`Mlp::init`] does.
    ///
    /// # Panics
    /// If `params` is not [`Mlp::num_params`] long.
    pub fn init_into(&self, seed: u64, params: &mut [f32]) {
        assert_eq!(params.len(), self.num_params(), "parameter buffer length");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (i, layer) in self.layers.iter().enumerate() {
            let (fan_in, fan_out) = (self.sizes[i], self.sizes[i + 1]);
            let weights = &mut params[layer.weight.clone()];
            match self.activations[i] {
                activation if activation.uses_he_init() => {
                    let slope = if activation == Activation::LeakyRelu { LEAKY_RELU_SLOPE } else { 0.0 };
                    let std = (2.0 / ((1.0 + slope * slope) * fan_in as f64)).sqrt();
                    for w in weights {
                        let z: f64 = rng.sample(StandardNormal);
                        *w = (std * z) as f32;
                    }
                }
                _ => {
                    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
                    for w in weights {
                        let u: f64 = rng.random();
                        *w = (bound * (2.0 * u - 1.0)) as f32;
                    }
                }
            }
            params[layer.bias.clone()].fill(0.0);
        }
    }

    /// The mean loss of the `rows` rows of `x` against `targets`, by a forward pass only (no
    /// gradient with respect to the parameters is computed).
    pub fn loss_only<T: Real>(&self, params: &[T], x: &[T], targets: &[T], rows: usize) -> f64 {
        let mut out = vec![T::ZERO; rows * self.output_size()];
        self.predict(params, x, rows, &mut out);
        let mut grad_out = vec![T::ZERO; out.len()];
        self.loss.value_grad(&out, targets, self.output_size(), &mut grad_out)
    }

    /// The network's outputs for `rows` rows of `x`, written into `out` (`rows × output_size`).
    ///
    /// # Panics
    /// If `params`, `x` or `out` have the wrong length.
    pub fn predict<T: Real>(&self, params: &[T], x: &[T], rows: usize, out: &mut [T]) {
        self.check_lengths(params, x, rows);
        let (inputs, outputs) = (self.input_size(), self.output_size());
        assert_eq!(out.len(), rows * outputs, "output buffer length");
        let run = |x_block: &[T], out_block: &mut [T]| {
            let block_rows = x_block.len() / inputs;
            T::with_scratch(0, |scratch| {
                let activations = grow(scratch, block_rows * self.activation_width());
                self.forward_block(params, Input::Dense(x_block), block_rows, activations);
                let last = self.activation_offset(self.num_layers() - 1, block_rows);
                out_block.copy_from_slice(&activations[last..last + block_rows * outputs]);
            })
        };
        if rows <= BLOCK_ROWS {
            run(x, out);
        } else {
            x.par_chunks(BLOCK_ROWS * inputs)
                .zip(out.par_chunks_mut(BLOCK_ROWS * outputs))
                .for_each(|(x_block, out_block)| run(x_block, out_block));
        }
    }

    /// The mean loss of the network on `rows` rows of `x` against `targets`, writing its gradient
    /// with respect to `params` into `grad` (laid out as `params`).
    ///
    /// Targets are laid out as [`Loss::target_len`] says (one class index per row for
    /// cross-entropy). The result does not depend on the number of threads. An empty batch
    /// gives NaN and a zero gradient.
    ///
    /// # Panics
    /// If `params`, `grad`, `x` or `targets` have the wrong length.
    pub fn loss_and_gradient<T: Real>(&self, params: &[T], x: &[T], rows: usize, targets: &[T], grad: &mut [T]) -> f64 {
        self.check_lengths(params, x, rows);
        self.loss_and_gradient_of(params, Input::Dense(x), rows, targets, grad)
    }

    /// [`Mlp::loss_and_gradient`] of the rows of `x` (`width` wide) at `indices`, in that order,
    /// read where they lie; `targets` holds one target per picked row. The same bits as the
    /// rows copied out first.
    pub(crate) fn loss_and_gradient_picked(
        &self,
        params: &[f32],
        x: &[f32],
        indices: &[usize],
        targets: &[f32],
        grad: &mut [f32],
    ) -> f64 {
        assert_eq!(params.len(), self.num_params(), "parameter buffer length");
        let source = RowSource::indexed(x, self.input_size(), indices);
        self.loss_and_gradient_of(params, Input::Picked(source), indices.len(), targets, grad)
    }

    fn loss_and_gradient_of<T: Real>(
        &self,
        params: &[T],
        x: Input<'_, T>,
        rows: usize,
        targets: &[T],
        grad: &mut [T],
    ) -> f64 {
        let outputs = self.output_size();
        let target_width = self.loss.target_len(1, outputs);
        assert_eq!(targets.len(), rows * target_width, "wrong number of targets");
        assert_eq!(grad.len(), self.num_params(), "gradient buffer length");
        if rows == 0 {
            grad.fill(T::ZERO);
            return f64::NAN;
        }
        let scale = 1.0 / self.loss.mean_denominator(rows, outputs) as f64;
        let grad_scale = T::from_f64(scale);
        let inputs = self.input_size();
        let block = |b: usize, block_grad: &mut [T]| -> f64 {
            let rows_range = b * BLOCK_ROWS..rows.min((b + 1) * BLOCK_ROWS);
            let block_rows = rows_range.len();
            let x_block = x.rows_range(rows_range.clone(), inputs);
            let targets_block = &targets[rows_range.start * target_width..rows_range.end * target_width];
            T::with_scratch(0, |scratch| {
                self.block_loss_gradient(params, x_block, block_rows, targets_block, grad_scale, block_grad, scratch)
            })
        };
        let blocks = rows.div_ceil(BLOCK_ROWS);
        if blocks == 1 {
            return block(0, grad) * scale;
        }
        let n = self.num_params();
        let sum = T::with_scratch(1, |scratch| {
            // Block 0 writes into `grad`, the others into buffers of their own.
            let others = grow(scratch, (blocks - 1) * n);
            let (first, rest) = rayon::join(
                || block(0, grad),
                || others.par_chunks_mut(n).enumerate().map(|(b, g)| block(b + 1, g)).collect::<Vec<f64>>(),
            );
            // Each element is summed over the blocks in block order, however the buffer is split.
            let others: &[T] = others;
            grad.par_chunks_mut(REDUCE_CHUNK).enumerate().for_each(|(c, piece)| {
                let start = c * REDUCE_CHUNK;
                for b in 0..blocks - 1 {
                    let other = &others[b * n + start..b * n + start + piece.len()];
                    piece.iter_mut().zip(other).for_each(|(g, &o)| *g += o);
                }
            });
            rest.iter().fold(first, |total, &s| total + s)
        });
        sum * scale
    }

    /// The L2 norms of each layer's weight and bias gradients in `grad`.
    ///
    /// # Panics
    /// If `grad` is not [`Mlp::num_params`] long.
    pub fn layer_gradient_norms<T: Real>(&self, grad: &[T]) -> Vec<LayerGradientNorm> {
        assert_eq!(grad.len(), self.num_params(), "gradient buffer length");
        let norm = |values: &[T]| values.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>().sqrt();
        self.layers
            .iter()
            .map(|layer| LayerGradientNorm {
                weight: norm(&grad[layer.weight.clone()]),
                bias: norm(&grad[layer.bias.clone()]),
            })
            .collect()
    }

    fn check_lengths<T: Real>(&self, params: &[T], x: &[T], rows: usize) {
        assert_eq!(params.len(), self.num_params(), "parameter buffer length");
        assert_eq!(x.len(), rows * self.input_size(), "input length is not rows × input size");
    }

    /// Activations kept per row: every layer's outputs.
    fn activation_width(&self) -> usize {
        self.sizes[1..].iter().sum()
    }

    /// Where layer `layer`'s outputs start in a block's activation buffer.
    fn activation_offset(&self, layer: usize, rows: usize) -> usize {
        rows * self.sizes[1..=layer].iter().sum::<usize>()
    }

    /// Runs the layers on a block of `rows` rows, writing every layer's outputs into
    /// `activations` (layer after layer, each `rows × sizes[i + 1]`).
    fn forward_block<T: Real>(&self, params: &[T], x: Input<'_, T>, rows: usize, activations: &mut [T]) {
        let mut offset = 0;
        let mut input_offset = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let (n_in, n_out) = (self.sizes[i], self.sizes[i + 1]);
            let (before, after) = activations.split_at_mut(offset);
            let input = match input_offset {
                None => x,
                Some(start) => Input::Dense(&before[start..start + rows * n_in]),
            };
            let output = &mut after[..rows * n_out];
            layer_forward(input, &params[layer.weight.clone()], &params[layer.bias.clone()], rows, n_in, output);
            self.activations[i].apply(output);
            input_offset = Some(offset);
            offset += rows * n_out;
        }
    }

    /// The summed loss of one block, writing `grad_scale ×` its gradient into `grad` (which is
    /// overwritten).
    #[allow(clippy::too_many_arguments)]
    fn block_loss_gradient<T: Real>(
        &self,
        params: &[T],
        x: Input<'_, T>,
        rows: usize,
        targets: &[T],
        grad_scale: T,
        grad: &mut [T],
        scratch: &mut Vec<T>,
    ) -> f64 {
        let widest = self.sizes[1..].iter().copied().max().unwrap_or(0);
        let activation_len = rows * self.activation_width();
        let scratch = grow(scratch, activation_len + 2 * rows * widest);
        let (activations, deltas) = scratch.split_at_mut(activation_len);
        let (mut delta, mut next_delta) = deltas.split_at_mut(rows * widest);
        self.forward_block(params, x, rows, activations);

        let last = self.num_layers() - 1;
        let outputs = self.output_size();
        let out_start = self.activation_offset(last, rows);
        let network_out = &activations[out_start..out_start + rows * outputs];
        let loss = self.loss.sum_grad(network_out, targets, outputs, grad_scale, &mut delta[..rows * outputs]);
        self.activations[last].backprop(network_out, &mut delta[..rows * outputs]);

        for (i, layer) in self.layers.iter().enumerate().rev() {
            let (n_in, n_out) = (self.sizes[i], self.sizes[i + 1]);
            let input = if i == 0 {
                x
            } else {
                let start = self.activation_offset(i - 1, rows);
                Input::Dense(&activations[start..start + rows * n_in])
            };
            let layer_delta = &delta[..rows * n_out];
            // ∂W (n_out × n_in) = deltaᵀ (n_out × rows) · input (rows × n_in).
            layer_weight_grad(layer_delta, input, rows, n_out, &mut grad[layer.weight.clone()]);
            // ∂b = column sums of delta.
            let bias_grad = &mut grad[layer.bias.clone()];
            bias_grad.fill(T::ZERO);
            for row in layer_delta.chunks_exact(n_out) {
                bias_grad.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
            }
            if i > 0 {
                // delta of the layer below (rows × n_in) = delta (rows × n_out) · W (n_out × n_in).
                let below = &mut next_delta[..rows * n_in];
                layer_backprop(layer_delta, &params[layer.weight.clone()], rows, n_out, below);
                self.activations[i - 1].backprop(input.dense(), below);
                std::mem::swap(&mut delta, &mut next_delta);
            }
        }
        loss
    }
}

/// The first `len` elements of `buffer`, growing it (never shrinking) as needed.
fn grow<T: Real>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    if buffer.len() < len {
        buffer.resize(len, T::ZERO);
    }
    &mut buffer[..len]
}

/// A block's input rows: a row-major matrix, or (in `f32` only) rows of the training set picked
/// by index, which the kernels read where they lie.
#[derive(Clone, Copy)]
enum Input<'a, T> {
    Dense(&'a [T]),
    Picked(RowSource<'a>),
}

impl<'a, T: Real> Input<'a, T> {
    /// Rows `range` (of `width` values each).
    fn rows_range(self, range: Range<usize>, width: usize) -> Self {
        match self {
            Input::Dense(x) => Input::Dense(&x[range.start * width..range.end * width]),
            Input::Picked(source) => Input::Picked(source.slice(range)),
        }
    }

    /// The rows for the `f32` kernels, when `T` is `f32`.
    fn source(self, width: usize) -> Option<RowSource<'a>> {
        match self {
            Input::Dense(x) => as_f32(x).map(|x| RowSource::dense(x, width)),
            Input::Picked(source) => Some(source),
        }
    }

    /// The matrix, for the generic passes (which never see picked rows: those are `f32` only, and
    /// `f32` always takes the kernels).
    fn dense(self) -> &'a [T] {
        match self {
            Input::Dense(x) => x,
            Input::Picked(_) => unreachable!("picked rows are f32 only and take the f32 kernels"),
        }
    }
}

/// `slice` as `f32`, when `T` is `f32`: the passes below take the hand-written kernels then.
fn as_f32<T: Real>(slice: &[T]) -> Option<&[f32]> {
    // SAFETY: `T` is `f32` itself, checked by its type id.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(slice.as_ptr().cast::<f32>(), slice.len()) })
}

/// `slice` as `f32`, mutably, when `T` is `f32`.
fn as_f32_mut<T: Real>(slice: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: `T` is `f32` itself, checked by its type id.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(slice.as_mut_ptr().cast::<f32>(), slice.len()) })
}

/// Multiply-adds below which a layer pass stays on the calling thread.
const SPLIT_WORK: usize = 1 << 20;

/// How many pieces to cut a pass of `work` multiply-adds over `items` rows (or columns) into,
/// each at least `granule` items. Any split gives the same bits: every output element is
/// computed by the same operations whichever piece holds it.
fn pieces(work: usize, items: usize, granule: usize) -> usize {
    if work < SPLIT_WORK {
        return 1;
    }
    rayon::current_num_threads().min(items.div_ceil(granule)).max(1)
}

/// `output (rows × n_out) = input (rows × n_in) · Wᵀ + bias`, `W` stored `[n_out][n_in]`.
fn layer_forward<T: Real>(input: Input<'_, T>, weight: &[T], bias: &[T], rows: usize, n_in: usize, output: &mut [T]) {
    let n_out = bias.len();
    if let (Some(x), Some(w), Some(b), Some(out)) =
        (input.source(n_in), as_f32(weight), as_f32(bias), as_f32_mut(output))
    {
        let parts = pieces(rows * n_in * n_out, rows, 4);
        if parts > 1 {
            let chunk = rows.div_ceil(parts).next_multiple_of(4);
            out.par_chunks_mut(chunk * n_out).enumerate().for_each(|(p, out)| {
                let start = p * chunk;
                kernels::forward(x.slice(start..start + out.len() / n_out), w, b, n_in, out)
            });
        } else {
            kernels::forward(x.slice(0..rows), w, b, n_in, out);
        }
        return;
    }
    let input = input.dense();
    output.chunks_exact_mut(n_out).for_each(|row| row.copy_from_slice(bias));
    // SAFETY: the dimensions and strides address exactly the three slices.
    unsafe {
        T::gemm(
            rows,
            n_in,
            n_out,
            T::ONE,
            input.as_ptr(),
            n_in as isize,
            1,
            weight.as_ptr(),
            1,
            n_in as isize,
            T::ONE,
            output.as_mut_ptr(),
            n_out as isize,
            1,
        );
    }
}

/// `grad_w (n_out × n_in) = deltaᵀ (n_out × rows) · input (rows × n_in)`, overwritten.
fn layer_weight_grad<T: Real>(delta: &[T], input: Input<'_, T>, rows: usize, n_out: usize, grad_w: &mut [T]) {
    let n_in = grad_w.len() / n_out;
    if let (Some(d), Some(x), Some(g)) = (as_f32(delta), input.source(n_in), as_f32_mut(grad_w)) {
        let parts = pieces(rows * n_in * n_out, n_out, 4);
        let chunk = n_out.div_ceil(parts).next_multiple_of(4).min(n_out);
        g.par_chunks_mut(chunk * n_in).enumerate().for_each(|(p, g)| {
            let start = p * chunk;
            kernels::outer(d, n_out, x, n_in, rows, start..start + g.len() / n_in, g);
        });
        return;
    }
    let input = input.dense();
    // SAFETY: the dimensions and strides address exactly the three slices.
    unsafe {
        T::gemm(
            n_out,
            rows,
            n_in,
            T::ONE,
            delta.as_ptr(),
            1,
            n_out as isize,
            input.as_ptr(),
            n_in as isize,
            1,
            T::ZERO,
            grad_w.as_mut_ptr(),
            n_in as isize,
            1,
        );
    }
}

/// `below (rows × n_in) = delta (rows × n_out) · W (n_out × n_in)`, overwritten.
fn layer_backprop<T: Real>(delta: &[T], weight: &[T], rows: usize, n_out: usize, below: &mut [T]) {
    let n_in = weight.len() / n_out;
    if let (Some(d), Some(w), Some(out)) = (as_f32(delta), as_f32(weight), as_f32_mut(below)) {
        // The kernel sums over its first operand's rows: hand it deltaᵀ (n_out × rows).
        let mut transposed = vec![0.0f32; n_out * rows];
        for (r, row) in d.chunks_exact(n_out).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                transposed[j * rows + r] = v;
            }
        }
        let parts = pieces(rows * n_in * n_out, rows, 4);
        let chunk = rows.div_ceil(parts).next_multiple_of(4).min(rows).max(1);
        out.par_chunks_mut(chunk * n_in).enumerate().for_each(|(p, out)| {
            let start = p * chunk;
            kernels::outer(
                &transposed,
                rows,
                RowSource::dense(w, n_in),
                n_in,
                n_out,
                start..start + out.len() / n_in,
                out,
            );
        });
        return;
    }
    // SAFETY: the dimensions and strides address exactly the three slices.
    unsafe {
        T::gemm(
            rows,
            n_out,
            n_in,
            T::ONE,
            delta.as_ptr(),
            n_out as isize,
            1,
            weight.as_ptr(),
            n_in as isize,
            1,
            T::ZERO,
            below.as_mut_ptr(),
            n_in as isize,
            1,
        );
    }
}

/// Hand-written `f32` layer passes for small batches, where a general matrix product spends much
/// of its time packing its operands.
///
/// Every output element is computed by the same sequence of operations whichever tile, row range
/// or thread it falls in, so splitting the work (across threads, or into tiles of any shape)
/// never changes a bit. Each pass is compiled three times: for AVX-512 and for AVX2 (both with
/// fused multiply-adds, chosen at run time; they give the same bits, only their tile shapes
/// differ) and for the baseline target (unfused, so its last bits may differ).
pub(crate) mod kernels {
    /// The rows of a row-major matrix, in place or picked by index (so that a batch of scattered
    /// training rows needs no copy).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct RowSource<'a> {
        data: &'a [f32],
        width: usize,
        index: Option<&'a [usize]>,
        rows: usize,
    }

    impl<'a> RowSource<'a> {
        /// All rows of `data`, `width` wide.
        pub(crate) fn dense(data: &'a [f32], width: usize) -> Self {
            assert!(width > 0, "rows of width 0");
            Self { data, width, index: None, rows: data.len() / width }
        }

        /// The rows of `data` at `index`, in that order.
        ///
        /// # Panics
        /// If an index is out of range.
        pub(crate) fn indexed(data: &'a [f32], width: usize, index: &'a [usize]) -> Self {
            assert!(width > 0, "rows of width 0");
            let rows = data.len() / width;
            assert!(index.iter().all(|&i| i < rows), "row index out of range");
            Self { data, width, index: Some(index), rows: index.len() }
        }

        /// Rows `range` of this source.
        pub(crate) fn slice(self, range: std::ops::Range<usize>) -> Self {
            assert!(range.start <= range.end && range.end <= self.rows, "row range out of bounds");
            match self.index {
                Some(index) => Self { index: Some(&index[range.clone()]), rows: range.len(), ..self },
                None => Self {
                    data: &self.data[range.start * self.width..range.end * self.width],
                    rows: range.len(),
                    ..self
                },
            }
        }

        /// The number of rows.
        pub(crate) fn rows(&self) -> usize {
            self.rows
        }

        /// Row `r`'s first element.
        ///
        /// # Safety
        /// `r` must be below [`RowSource::rows`].
        #[inline(always)]
        unsafe fn row(&self, r: usize) -> *const f32 {
            // SAFETY: `r < rows`, and every index was checked against the data at construction.
            unsafe {
                let i = match self.index {
                    Some(index) => *index.get_unchecked(r),
                    None => r,
                };
                self.data.as_ptr().add(i * self.width)
            }
        }
    }

    /// Interleaved partial sums per dot product (one 512-bit or two 256-bit vectors).
    const LANES: usize = 16;

    #[inline(always)]
    fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    /// Adds the lanes pairwise (a fixed tree), then `tail`.
    #[inline(always)]
    fn reduce(mut lanes: [f32; LANES], tail: f32) -> f32 {
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                lanes[i] += lanes[i + width];
            }
        }
        lanes[0] + tail
    }

    /// [`dot_tile`] of a 4 × 4 tile in AVX-512, with the same bits: the same fused multiply-adds
    /// into 16 lanes per product, each product's lanes summed by [`reduce`]'s tree (lane i +
    /// lane i + 8, then + 4, + 2, + 1), then its tail, then the bias.
    ///
    /// Instead of 16 horizontal sums (a fifth of the generic tile's time), four rounds of
    /// shuffles pair up the accumulators so that every add works on 16 lanes: after round one
    /// each vector holds two products' eight partial sums, after round two four products' four,
    /// and so on, until one vector holds row r's four sums in its 128-bit block r. A function of
    /// its own, compiled for AVX-512 and not inlined, with its sixteen accumulators named one by
    /// one: so written, they stay in registers.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and FMA; each `x[r]` and `w[c]` must address `n` readable
    /// floats, `bias` 4 and each `out[r]` 4 writable ones.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn dot_tile_4x4_avx512(
        x: [*const f32; 4],
        w: [*const f32; 4],
        n: usize,
        bias: *const f32,
        out: [*mut f32; 4],
    ) {
        use std::arch::x86_64::*;
        let z = _mm512_setzero_ps();
        // a{c}{r} accumulates x[r] · w[c].
        let (mut a00, mut a01, mut a02, mut a03) = (z, z, z, z);
        let (mut a10, mut a11, mut a12, mut a13) = (z, z, z, z);
        let (mut a20, mut a21, mut a22, mut a23) = (z, z, z, z);
        let (mut a30, mut a31, mut a32, mut a33) = (z, z, z, z);
        let full = n / LANES * LANES;
        let mut k = 0;
        while k < full {
            // SAFETY: k + LANES <= n.
            unsafe {
                let (x0, x1, x2, x3) = (
                    _mm512_loadu_ps(x[0].add(k)),
                    _mm512_loadu_ps(x[1].add(k)),
                    _mm512_loadu_ps(x[2].add(k)),
                    _mm512_loadu_ps(x[3].add(k)),
                );
                let w0 = _mm512_loadu_ps(w[0].add(k));
                a00 = _mm512_fmadd_ps(x0, w0, a00);
                a01 = _mm512_fmadd_ps(x1, w0, a01);
                a02 = _mm512_fmadd_ps(x2, w0, a02);
                a03 = _mm512_fmadd_ps(x3, w0, a03);
                let w1 = _mm512_loadu_ps(w[1].add(k));
                a10 = _mm512_fmadd_ps(x0, w1, a10);
                a11 = _mm512_fmadd_ps(x1, w1, a11);
                a12 = _mm512_fmadd_ps(x2, w1, a12);
                a13 = _mm512_fmadd_ps(x3, w1, a13);
                let w2 = _mm512_loadu_ps(w[2].add(k));
                a20 = _mm512_fmadd_ps(x0, w2, a20);
                a21 = _mm512_fmadd_ps(x1, w2, a21);
                a22 = _mm512_fmadd_ps(x2, w2, a22);
                a23 = _mm512_fmadd_ps(x3, w2, a23);
                let w3 = _mm512_loadu_ps(w[3].add(k));
                a30 = _mm512_fmadd_ps(x0, w3, a30);
                a31 = _mm512_fmadd_ps(x1, w3, a31);
                a32 = _mm512_fmadd_ps(x2, w3, a32);
                a33 = _mm512_fmadd_ps(x3, w3, a33);
            }
            k += LANES;
        }
        let mut tails = [0.0f32; 16];
        for (t, tail) in tails.iter_mut().enumerate() {
            let (r, c) = (t / 4, t % 4);
            for k in full..n {
                // SAFETY: k < n.
                *tail = unsafe { (*x[r].add(k)).mul_add(*w[c].add(k), *tail) };
            }
        }
        // Vector 4c + r is x[r] · w[c] (column-major), so that the sums come out by rows.
        let acc = [a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33];
        // Lanes i + 8 onto i: [a.lo, b.lo] + [a.hi, b.hi] (256-bit halves).
        let s: [__m512; 8] = std::array::from_fn(|m| {
            let (a, b) = (acc[2 * m], acc[2 * m + 1]);
            _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(a, b), _mm512_shuffle_f32x4::<0xEE>(a, b))
        });
        // Lanes i + 4 onto i: 128-bit blocks 0, 2 of each plus blocks 1, 3.
        let t: [__m512; 4] = std::array::from_fn(|p| {
            let (a, b) = (s[2 * p], s[2 * p + 1]);
            _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b))
        });
        // Lanes i + 2 onto i, within each 128-bit block.
        let u: [__m512; 2] = std::array::from_fn(|q| {
            let (a, b) = (t[2 * q], t[2 * q + 1]);
            _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b))
        });
        // Lane i + 1 onto i: block r now holds row r's four sums.
        let sums = _mm512_add_ps(_mm512_shuffle_ps::<0x88>(u[0], u[1]), _mm512_shuffle_ps::<0xDD>(u[0], u[1]));
        // SAFETY: `tails` holds 16 floats, `bias` 4.
        let (tails, bias) = unsafe { (_mm512_loadu_ps(tails.as_ptr()), _mm512_broadcast_f32x4(_mm_loadu_ps(bias))) };
        let rows = _mm512_add_ps(bias, _mm512_add_ps(sums, tails));
        // SAFETY: each `out[r]` addresses 4 writable floats.
        unsafe {
            _mm_storeu_ps(out[0], _mm512_extractf32x4_ps::<0>(rows));
            _mm_storeu_ps(out[1], _mm512_extractf32x4_ps::<1>(rows));
            _mm_storeu_ps(out[2], _mm512_extractf32x4_ps::<2>(rows));
            _mm_storeu_ps(out[3], _mm512_extractf32x4_ps::<3>(rows));
        }
    }

    /// `out[r][c] = bias[c] + x[r] · w[c]` for an `R × C` tile; `x` and `w` point at rows `n` long.
    ///
    /// # Safety
    /// Each `x[r]` and `w[c]` must address `n` readable elements, each `out[r]` `C` writable ones.
    #[inline(always)]
    unsafe fn dot_tile<const FMA: bool, const AVX512: bool, const R: usize, const C: usize>(
        x: [*const f32; R],
        w: [*const f32; C],
        n: usize,
        bias: &[f32],
        out: [*mut f32; R],
    ) {
        #[cfg(target_arch = "x86_64")]
        if AVX512 && R == 4 && C == 4 {
            // Called through an opaque pointer: inlined here (`#[inline(never)]` did not prevent
            // it), the kernel's accumulators were spilled to the stack on every step, and the
            // pass ran 25% slower than with the generic tile instead of 25% faster.
            let kernel: unsafe fn([*const f32; 4], [*const f32; 4], usize, *const f32, [*mut f32; 4]) =
                dot_tile_4x4_avx512;
            // SAFETY: `AVX512` is set only in the AVX-512 kernels, which run only where the CPU
            // has it; the rows and outputs are the caller's promise.
            unsafe {
                std::hint::black_box(kernel)(
                    std::array::from_fn(|r| x[r % R]),
                    std::array::from_fn(|c| w[c % C]),
                    n,
                    bias.as_ptr(),
                    std::array::from_fn(|r| out[r % R]),
                )
            };
            return;
        }
        let mut acc = [[[0.0f32; LANES]; C]; R];
        let full = n / LANES * LANES;
        let mut k = 0;
        while k < full {
            for r in 0..R {
                // SAFETY: k + LANES <= n.
                let xv: [f32; LANES] = unsafe { *(x[r].add(k) as *const [f32; LANES]) };
                for c in 0..C {
                    let wv: [f32; LANES] = unsafe { *(w[c].add(k) as *const [f32; LANES]) };
                    for l in 0..LANES {
                        acc[r][c][l] = madd::<FMA>(xv[l], wv[l], acc[r][c][l]);
                    }
                }
            }
            k += LANES;
        }
        for r in 0..R {
            for c in 0..C {
                let mut tail = 0.0f32;
                for k in full..n {
                    // SAFETY: k < n.
                    tail = unsafe { madd::<FMA>(*x[r].add(k), *w[c].add(k), tail) };
                }
                // SAFETY: c < C.
                unsafe { *out[r].add(c) = bias[c] + reduce(acc[r][c], tail) };
            }
        }
    }

    /// `out (rows × n_out) = x (rows × n_in) · wᵀ + bias`, `w` stored `[n_out][n_in]`.
    #[inline(always)]
    fn forward_impl<const FMA: bool, const AVX512: bool, const R: usize, const C: usize>(
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        n_in: usize,
        out: &mut [f32],
    ) {
        let n_out = bias.len();
        let rows = out.len() / n_out;
        assert!(x.len() >= rows * n_in && w.len() >= n_out * n_in && out.len() == rows * n_out);
        let (xp, wp, op) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        // SAFETY (all calls): the asserts above bound every row and column addressed.
        unsafe {
            let mut r = 0;
            while r + R <= rows {
                let xr: [*const f32; R] = std::array::from_fn(|i| xp.add((r + i) * n_in));
                let orow: [*mut f32; R] = std::array::from_fn(|i| op.add((r + i) * n_out));
                let mut c = 0;
                while c + C <= n_out {
                    let wc: [*const f32; C] = std::array::from_fn(|j| wp.add((c + j) * n_in));
                    dot_tile::<FMA, AVX512, R, C>(xr, wc, n_in, &bias[c..], orow.map(|p| p.add(c)));
                    c += C;
                }
                if C > 2 && c + 2 <= n_out {
                    let wc = [wp.add(c * n_in), wp.add((c + 1) * n_in)];
                    dot_tile::<FMA, AVX512, R, 2>(xr, wc, n_in, &bias[c..], orow.map(|p| p.add(c)));
                    c += 2;
                }
                for c in c..n_out {
                    dot_tile::<FMA, AVX512, R, 1>(xr, [wp.add(c * n_in)], n_in, &bias[c..], orow.map(|p| p.add(c)));
                }
                r += R;
            }
            for r in r..rows {
                let xr = [xp.add(r * n_in)];
                let orow = [op.add(r * n_out)];
                let mut c = 0;
                while c + C <= n_out {
                    let wc: [*const f32; C] = std::array::from_fn(|j| wp.add((c + j) * n_in));
                    dot_tile::<FMA, AVX512, 1, C>(xr, wc, n_in, &bias[c..], orow.map(|p| p.add(c)));
                    c += C;
                }
                for c in c..n_out {
                    dot_tile::<FMA, AVX512, 1, 1>(xr, [wp.add(c * n_in)], n_in, &bias[c..], orow.map(|p| p.add(c)));
                }
            }
        }
    }

    /// `out[j][k] = Σᵣ a[r][j] b[r][k]` (rows in order, starting from zero) for the `J × K` tile
    /// at (`j`, `k`); `a` is `rows × a_stride`, `b` is `rows × b_stride`, `out` is `[…][out_stride]`.
    ///
    /// # Safety
    /// Every element addressed must lie in the buffers.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn outer_tile<const FMA: bool, const J: usize, const K: usize>(
        a: *const f32,
        a_stride: usize,
        b: RowSource<'_>,
        rows: usize,
        j: usize,
        k: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        let mut acc = [[0.0f32; K]; J];
        for r in 0..rows {
            // SAFETY: forwarded from the caller.
            let bv: [f32; K] = unsafe { *(b.row(r).add(k) as *const [f32; K]) };
            for (jj, acc) in acc.iter_mut().enumerate() {
                let av = unsafe { *a.add(r * a_stride + j + jj) };
                for l in 0..K {
                    acc[l] = madd::<FMA>(av, bv[l], acc[l]);
                }
            }
        }
        for (jj, acc) in acc.iter().enumerate() {
            // SAFETY: forwarded from the caller.
            unsafe { *(out.add((j + jj) * out_stride + k) as *mut [f32; K]) = *acc };
        }
    }

    /// `out[j][k] = Σᵣ a[r][j] b[r][k]` for `j` in `j_range` (written to `out`'s rows from 0) and
    /// every `k < b_width`: `aᵀ b` over `rows` rows, each element summed over the rows in order.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn outer_impl<const FMA: bool, const J: usize, const K: usize, const K_TAIL: usize>(
        a: &[f32],
        a_width: usize,
        b: RowSource<'_>,
        b_width: usize,
        rows: usize,
        j_range: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        assert!(a.len() >= rows * a_width && b.rows >= rows && b.width == b_width && j_range.end <= a_width);
        assert!(out.len() >= j_range.len() * b_width);
        let (ap, bp) = (a.as_ptr(), b);
        // `out` row o is j = j_range.start + o: shift `a` so that column j lines up with o.
        // SAFETY (all calls): the asserts above bound every element addressed.
        unsafe {
            let ap = ap.add(j_range.start);
            let op = out.as_mut_ptr();
            let js = j_range.len();
            let mut j = 0;
            while j + J <= js {
                let mut k = 0;
                while k + K <= b_width {
                    outer_tile::<FMA, J, K>(ap, a_width, bp, rows, j, k, op, b_width);
                    k += K;
                }
                while k + K_TAIL <= b_width {
                    outer_tile::<FMA, J, K_TAIL>(ap, a_width, bp, rows, j, k, op, b_width);
                    k += K_TAIL;
                }
                for k in k..b_width {
                    outer_tile::<FMA, J, 1>(ap, a_width, bp, rows, j, k, op, b_width);
                }
                j += J;
            }
            if J > 2 && j + 2 <= js {
                let mut k = 0;
                while k + K <= b_width {
                    outer_tile::<FMA, 2, K>(ap, a_width, bp, rows, j, k, op, b_width);
                    k += K;
                }
                while k + K_TAIL <= b_width {
                    outer_tile::<FMA, 2, K_TAIL>(ap, a_width, bp, rows, j, k, op, b_width);
                    k += K_TAIL;
                }
                for k in k..b_width {
                    outer_tile::<FMA, 2, 1>(ap, a_width, bp, rows, j, k, op, b_width);
                }
                j += 2;
            }
            for j in j..js {
                let mut k = 0;
                while k + K <= b_width {
                    outer_tile::<FMA, 1, K>(ap, a_width, bp, rows, j, k, op, b_width);
                    k += K;
                }
                while k + K_TAIL <= b_width {
                    outer_tile::<FMA, 1, K_TAIL>(ap, a_width, bp, rows, j, k, op, b_width);
                    k += K_TAIL;
                }
                for k in k..b_width {
                    outer_tile::<FMA, 1, 1>(ap, a_width, bp, rows, j, k, op, b_width);
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn forward_avx512(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
        forward_impl::<true, true, 4, 4>(x, w, bias, n_in, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn forward_avx2(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
        forward_impl::<true, false, 2, 3>(x, w, bias, n_in, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn outer_avx512(
        a: &[f32],
        a_width: usize,
        b: RowSource<'_>,
        b_width: usize,
        rows: usize,
        j: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        outer_impl::<true, 4, 64, 16>(a, a_width, b, b_width, rows, j, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn outer_avx2(
        a: &[f32],
        a_width: usize,
        b: RowSource<'_>,
        b_width: usize,
        rows: usize,
        j: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        outer_impl::<true, 4, 24, 8>(a, a_width, b, b_width, rows, j, out)
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Isa {
        Avx512,
        Avx2,
        Baseline,
    }

    fn isa() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx2") && has!("fma") {
                return Isa::Avx512;
            }
            if has!("avx2") && has!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// `out (rows × n_out) = x (rows × n_in) · wᵀ + bias` with `w` stored `[n_out][n_in]`.
    pub(crate) fn forward(x: RowSource<'_>, w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
        assert_eq!(x.width, n_in, "input width");
        let rows = out.len() / bias.len();
        assert!(x.rows >= rows, "too few input rows");
        match x.index {
            None => forward_dense(&x.data[..rows * n_in], w, bias, n_in, out),
            Some(index) => {
                // Picked rows are copied out for this pass (the product reads each row many
                // times; read through the index, its loop compiles to much slower code).
                thread_local! {
                    static PICKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                let gather = |buffer: &mut Vec<f32>| {
                    buffer.clear();
                    for &i in &index[..rows] {
                        buffer.extend_from_slice(&x.data[i * n_in..(i + 1) * n_in]);
                    }
                };
                PICKED.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buffer) => {
                        gather(&mut buffer);
                        forward_dense(&buffer, w, bias, n_in, out)
                    }
                    Err(_) => {
                        let mut buffer = Vec::new();
                        gather(&mut buffer);
                        forward_dense(&buffer, w, bias, n_in, out)
                    }
                })
            }
        }
    }

    fn forward_dense(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, out: &mut [f32]) {
        match isa() {
            // SAFETY: the CPU has the features, checked by `isa`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { forward_avx512(x, w, bias, n_in, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { forward_avx2(x, w, bias, n_in, out) },
            _ => forward_impl::<false, false, 2, 2>(x, w, bias, n_in, out),
        }
    }

    /// Rows `j_range` of `aᵀ b` into `out` (`j_range.len() × b_width`): `a` is `rows × a_width`,
    /// `b` is `rows × b_width`; each element is summed over the rows in order.
    pub(crate) fn outer(
        a: &[f32],
        a_width: usize,
        b: RowSource<'_>,
        b_width: usize,
        rows: usize,
        j_range: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        match isa() {
            // SAFETY: the CPU has the features, checked by `isa`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { outer_avx512(a, a_width, b, b_width, rows, j_range, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { outer_avx2(a, a_width, b, b_width, rows, j_range, out) },
            _ => outer_impl::<false, 2, 16, 4>(a, a_width, b, b_width, rows, j_range, out),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn values(len: usize, seed: usize) -> Vec<f32> {
            (0..len).map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0).collect()
        }

        /// The tile shape decides only which elements are computed together, never their bits:
        /// the dispatched kernels (big tiles) match 1 × 1 tiles of the same arithmetic.
        #[test]
        fn tile_shapes_do_not_change_a_bit() {
            if isa() == Isa::Baseline {
                return;
            }
            for (rows, n_in, n_out) in [(1, 1, 1), (7, 33, 5), (13, 100, 19), (64, 784, 12)] {
                let (x, w, bias) = (values(rows * n_in, 1), values(n_out * n_in, 2), values(n_out, 3));
                let (mut tiled, mut single) = (vec![0.0; rows * n_out], vec![0.0; rows * n_out]);
                forward(RowSource::dense(&x, n_in), &w, &bias, n_in, &mut tiled);
                forward_impl::<true, false, 1, 1>(&x, &w, &bias, n_in, &mut single);
                assert_eq!(tiled, single);
                let (mut tiled, mut single) = (vec![0.0; n_out * n_in], vec![0.0; n_out * n_in]);
                outer(&bias.repeat(rows), n_out, RowSource::dense(&x, n_in), n_in, rows, 0..n_out, &mut tiled);
                outer_impl::<true, 1, 1, 1>(
                    &bias.repeat(rows),
                    n_out,
                    RowSource::dense(&x, n_in),
                    n_in,
                    rows,
                    0..n_out,
                    &mut single,
                );
                assert_eq!(tiled, single);
                // A range of rows of the product equals those rows of the whole.
                let mut part = vec![0.0; n_in];
                outer(&bias.repeat(rows), n_out, RowSource::dense(&x, n_in), n_in, rows, n_out - 1..n_out, &mut part);
                assert_eq!(part, tiled[(n_out - 1) * n_in..]);
            }
        }

        /// Rows picked by index give the same bits as the same rows copied out first.
        #[test]
        fn indexed_rows_match_gathered_rows() {
            let (rows, n_in, n_out) = (20, 45, 7);
            let (x, w, bias) = (values(rows * n_in, 8), values(n_out * n_in, 9), values(n_out, 10));
            let index: Vec<usize> = (0..13).map(|i| (i * 7) % rows).collect();
            let gathered: Vec<f32> = index.iter().flat_map(|&i| x[i * n_in..(i + 1) * n_in].to_vec()).collect();
            let (mut by_index, mut by_copy) = (vec![0.0; 13 * n_out], vec![0.0; 13 * n_out]);
            forward(RowSource::indexed(&x, n_in, &index), &w, &bias, n_in, &mut by_index);
            forward(RowSource::dense(&gathered, n_in), &w, &bias, n_in, &mut by_copy);
            assert_eq!(by_index, by_copy);
            let delta = values(13 * n_out, 11);
            let (mut by_index, mut by_copy) = (vec![0.0; n_out * n_in], vec![0.0; n_out * n_in]);
            let source = RowSource::indexed(&x, n_in, &index).slice(0..13);
            outer(&delta, n_out, source, n_in, 13, 0..n_out, &mut by_index);
            outer(&delta, n_out, RowSource::dense(&gathered, n_in), n_in, 13, 0..n_out, &mut by_copy);
            assert_eq!(by_index, by_copy);
        }

        #[test]
        fn kernels_compute_the_products() {
            let (rows, n_in, n_out) = (6, 37, 9);
            let (x, w, bias) = (values(rows * n_in, 4), values(n_out * n_in, 5), values(n_out, 6));
            let mut out = vec![0.0; rows * n_out];
            forward(RowSource::dense(&x, n_in), &w, &bias, n_in, &mut out);
            let delta = values(rows * n_out, 7);
            let mut grad = vec![0.0; n_out * n_in];
            outer(&delta, n_out, RowSource::dense(&x, n_in), n_in, rows, 0..n_out, &mut grad);
            for r in 0..rows {
                for c in 0..n_out {
                    let exact: f64 = bias[c] as f64
                        + (0..n_in).map(|k| x[r * n_in + k] as f64 * w[c * n_in + k] as f64).sum::<f64>();
                    assert!((out[r * n_out + c] as f64 - exact).abs() < 1e-4, "forward {r} {c}");
                }
            }
            for j in 0..n_out {
                for k in 0..n_in {
                    let exact: f64 = (0..rows).map(|r| delta[r * n_out + j] as f64 * x[r * n_in + k] as f64).sum();
                    assert!((grad[j * n_in + k] as f64 - exact).abs() < 1e-5, "outer {j} {k}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_segments_like_torch() {
        let mlp = Mlp::new(&[3, 4, 2], &[Activation::Tanh, Activation::Identity], Loss::Mse).unwrap();
        let names: Vec<_> = mlp.layout().segments().iter().map(|s| (s.name.as_str(), s.len)).collect();
        assert_eq!(names, [("layer0.weight", 12), ("layer0.bias", 4), ("layer1.weight", 8), ("layer1.bias", 2)]);
        assert_eq!(mlp.num_params(), 26);
    }

    #[test]
    fn config_errors_name_the_option() {
        assert_eq!(Mlp::new(&[3], &[], Loss::Mse).unwrap_err().option, "sizes");
        assert_eq!(Mlp::new(&[3, 0], &[Activation::Relu], Loss::Mse).unwrap_err().option, "sizes");
        assert_eq!(Mlp::new(&[3, 2], &[], Loss::Mse).unwrap_err().option, "activations");
        let bad_loss = Loss::Huber { delta: -1.0 };
        assert_eq!(Mlp::new(&[3, 2], &[Activation::Relu], bad_loss).unwrap_err().option, "delta");
    }

    /// Layers big enough to be split across threads inside one block give the same bits on any
    /// number of threads, and agree with the `f64` pass (matrix products) to `f32` precision.
    #[test]
    fn split_layers_are_bit_identical_across_thread_counts() {
        let mlp = Mlp::new(&[300, 70, 5], &[Activation::Relu, Activation::Identity], Loss::Mse).unwrap();
        const { assert!(BLOCK_ROWS * 300 * 70 >= SPLIT_WORK, "the first layer must be split") };
        let params: Vec<f32> = mlp.init(3);
        for rows in [BLOCK_ROWS, 3 * BLOCK_ROWS + 5] {
            let x: Vec<f32> = (0..rows * 300).map(|i| ((i * 7919) % 1999) as f32 / 1000.0 - 1.0).collect();
            let targets: Vec<f32> = (0..rows * 5).map(|i| ((i * 31) % 7) as f32 / 7.0).collect();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut grad = vec![0.0f32; mlp.num_params()];
                    let loss = mlp.loss_and_gradient(&params, &x, rows, &targets, &mut grad);
                    let mut out = vec![0.0f32; rows * 5];
                    mlp.predict(&params, &x, rows, &mut out);
                    (loss.to_bits(), grad, out)
                })
            };
            let single = run(1);
            assert_eq!(run(2), single);
            assert_eq!(run(3), single);
            let to64 = |v: &[f32]| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
            let mut grad64 = vec![0.0f64; mlp.num_params()];
            let loss64 = mlp.loss_and_gradient(&to64(&params), &to64(&x), rows, &to64(&targets), &mut grad64);
            assert!((f64::from_bits(single.0) - loss64).abs() <= 1e-5 * loss64.abs());
            let scale = grad64.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            for (g, g32) in grad64.iter().zip(&single.1) {
                assert!((g - *g32 as f64).abs() <= 1e-4 * scale, "{g} vs {g32}");
            }
        }
    }

    /// Rows picked by index (the engine's mini-batches) give the bits of the same rows copied out.
    #[test]
    fn picked_rows_match_gathered_rows() {
        use crate::model::{Model, Rows};
        let mlp = Mlp::new(
            &[300, 70, 4],
            &[Activation::Tanh, Activation::Identity],
            Loss::CrossEntropy { label_smoothing: 0.0 },
        )
        .unwrap();
        let params = mlp.init(5);
        let rows = 200;
        let x: Vec<f32> = (0..rows * 300).map(|i| ((i * 7919) % 1999) as f32 / 1000.0 - 1.0).collect();
        let y: Vec<f32> = (0..rows).map(|i| (i % 4) as f32).collect();
        let data = Rows::new(&x, &y, 300);
        let indices: Vec<usize> = (0..150).map(|i| (i * 37 + 11) % rows).collect();
        let (mut gx, mut gy) = (Vec::new(), Vec::new());
        data.gather(&indices, &mut gx, &mut gy);
        let mut by_copy = vec![0.0f32; mlp.num_params()];
        let loss_copy = Mlp::loss_and_gradient(&mlp, &params, &gx, indices.len(), &gy, &mut by_copy);
        let mut picked = vec![0.0f32; mlp.num_params()];
        let loss_picked = mlp.loss_and_gradient_rows(&params, data, &indices, &mut picked);
        assert_eq!(loss_picked.to_bits(), loss_copy.to_bits());
        assert_eq!(picked, by_copy);
    }

    #[test]
    fn activation_offsets_follow_layers() {
        let mlp = Mlp::new(&[3, 4, 5, 2], &[Activation::Relu; 3], Loss::Mse).unwrap();
        assert_eq!(mlp.activation_offset(0, 2), 0);
        assert_eq!(mlp.activation_offset(1, 2), 8);
        assert_eq!(mlp.activation_offset(2, 2), 18);
        assert_eq!(mlp.activation_width(), 11);
    }
}
