//! A multilayer perceptron: dense layers with element-wise activations.
//!
//! An [`Mlp`] is a [`Network`] of `linear` layers and activations — one code path, the network's
//! — described by its layer sizes and one activation per layer, as it always was. Layer `i` maps
//! `sizes[i]` inputs to `sizes[i + 1]` outputs as `h ← act_i(h · Wᵢᵀ + bᵢ)`, with `Wᵢ` stored
//! `[out][in]` like PyTorch's `Linear`. Its parameters are the segments `layer{i}.weight` and
//! `layer{i}.bias` of the model's [`ParamLayout`], in layer order.
//!
//! Batches are cut into blocks of [`BLOCK_ROWS`] rows, a fixed size that does not depend on the
//! thread count (see [`crate::nn`]): the gradient is the same to the bit whatever the number of
//! threads. The math is generic over [`Real`]: models train in `f32`, and the same code runs in
//! `f64` to check it against PyTorch's float64 reference gradients.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::loss::{Loss, Real};
use crate::model::{Model, Rows};
use crate::nn::{Init, LayerSpec, Network, NetworkSpec, Shape};
use crate::params::ParamLayout;
use crate::train::Task;

/// Rows per block of a batch: the unit of parallel work and of the fixed-order gradient sum.
///
/// Fixed, so that the gradient's bits never depend on the thread count. 64 rows keep the matrix
/// products efficient (smaller blocks cost ~15% more CPU time per row on a 784-128-10 network)
/// while batches above 64 rows spread over the threads.
pub const BLOCK_ROWS: usize = crate::nn::DENSE_BLOCK_ROWS;

/// The negative slope of [`Activation::LeakyRelu`] (PyTorch's default).
pub const LEAKY_RELU_SLOPE: f64 = 0.01;

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

    /// The network layer applying it, if any (`identity` applies none).
    pub fn layer(&self) -> Option<LayerSpec> {
        match self {
            Activation::Relu => Some(LayerSpec::Relu),
            Activation::LeakyRelu => Some(LayerSpec::LeakyRelu { negative_slope: LEAKY_RELU_SLOPE }),
            Activation::Tanh => Some(LayerSpec::Tanh),
            Activation::Sigmoid => Some(LayerSpec::Sigmoid),
            Activation::Identity => None,
        }
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

/// A fully connected network with a loss on its last layer's outputs: a [`Network`] of
/// `linear` layers, each followed by its activation.
///
/// Initialization ([`Mlp::init`]) is [`Init::Auto`]: He normal `N(0, 2 / ((1 + a²) fan_in))` for
/// weights followed by relu (`a = 0`) or leaky relu (`a = 0.01`), as `torch.nn.init.kaiming_normal_`;
/// Xavier uniform `U(−√(6 / (fan_in + fan_out)), +√(…))` for tanh, sigmoid and identity, as
/// `torch.nn.init.xavier_uniform_` (gain 1); zero biases. Each layer draws from a seeded ChaCha8
/// stream of its own, so the same seed gives the same parameters on every platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    sizes: Vec<usize>,
    activations: Vec<Activation>,
    net: Network,
}

impl Mlp {
    /// A network whose layer `i` maps `sizes[i]` to `sizes[i + 1]` and applies `activations[i]`,
    /// trained against `loss`.
    ///
    /// Fails when there are fewer than two sizes, a size is zero, the number of activations is
    /// not one per layer, the parameter count overflows, or the loss's options are invalid.
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
        let mut layers = Vec::new();
        for (&size, activation) in sizes[1..].iter().zip(activations) {
            layers.push(LayerSpec::Linear { out_features: Some(size), bias: true });
            layers.extend(activation.layer());
        }
        let mut spec = NetworkSpec::new(Shape::flat(sizes[0]), layers, loss).init(Init::Auto);
        spec.names = (0..sizes.len() - 1).map(|i| format!("layer{i}")).collect();
        let net = Network::new(spec).map_err(|e| ConfigError { option: "sizes".into(), ..e })?;
        Ok(Self { sizes: sizes.to_vec(), activations: activations.to_vec(), net })
    }

    /// The network it is.
    pub fn network(&self) -> &Network {
        &self.net
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
        self.net.loss()
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
        self.sizes.len() - 1
    }

    /// The flat buffer's layout: `layer{i}.weight` (`[out][in]`) and `layer{i}.bias` per layer.
    pub fn layout(&self) -> &ParamLayout {
        self.net.layout()
    }

    /// The number of parameters.
    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    /// Freshly initialized parameters drawn from `seed` (see [`Mlp`] for the scheme).
    pub fn init(&self, seed: u64) -> Vec<f32> {
        self.net.init_params(seed)
    }

    /// Initializes `params` from `seed` as [`Mlp::init`] does.
    ///
    /// # Panics
    /// If `params` is not [`Mlp::num_params`] long.
    pub fn init_into(&self, seed: u64, params: &mut [f32]) {
        assert_eq!(params.len(), self.num_params(), "parameter buffer length");
        params.copy_from_slice(&self.init(seed));
    }

    /// The mean loss of the `rows` rows of `x` against `targets`, by a forward pass only (no
    /// gradient with respect to the parameters is computed).
    pub fn loss_only<T: Real>(&self, params: &[T], x: &[T], targets: &[T], rows: usize) -> f64 {
        let mut out = vec![T::ZERO; rows * self.output_size()];
        self.predict(params, x, rows, &mut out);
        let mut grad_out = vec![T::ZERO; out.len()];
        self.loss().value_grad(&out, targets, self.output_size(), &mut grad_out)
    }

    /// The network's outputs for `rows` rows of `x`, written into `out` (`rows × output_size`).
    ///
    /// # Panics
    /// If `params`, `x` or `out` have the wrong length.
    pub fn predict<T: Real>(&self, params: &[T], x: &[T], rows: usize, out: &mut [T]) {
        self.net.predict(params, x, rows, out);
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
        self.net.loss_and_gradient(params, x, rows, targets, grad)
    }

    /// The L2 norms of each layer's weight and bias gradients in `grad`.
    ///
    /// # Panics
    /// If `grad` is not [`Mlp::num_params`] long.
    pub fn layer_gradient_norms<T: Real>(&self, grad: &[T]) -> Vec<LayerGradientNorm> {
        assert_eq!(grad.len(), self.num_params(), "gradient buffer length");
        let norm = |values: &[T]| values.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>().sqrt();
        let segment = |name: String| &grad[self.layout().segment(&name).expect("every layer has its segments").range()];
        (0..self.num_layers())
            .map(|i| LayerGradientNorm {
                weight: norm(segment(format!("layer{i}.weight"))),
                bias: norm(segment(format!("layer{i}.bias"))),
            })
            .collect()
    }
}

impl Model for Mlp {
    fn task(&self) -> Task {
        self.net.task()
    }

    fn layout(&self) -> &ParamLayout {
        self.net.layout()
    }

    fn inputs(&self) -> usize {
        self.input_size()
    }

    fn outputs(&self) -> usize {
        self.output_size()
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.init(seed)
    }

    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), crate::loss::TargetError> {
        Model::check_targets(&self.net, targets, rows)
    }

    fn working_memory(&self, rows: usize) -> Option<usize> {
        Model::working_memory(&self.net, rows)
    }

    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        Model::loss_and_gradient(&self.net, params, x, y, rows, grad)
    }

    fn loss_and_gradient_rows(&self, params: &[f32], data: Rows<'_>, indices: &[usize], grad: &mut [f32]) -> f64 {
        self.net.loss_and_gradient_rows(params, data, indices, grad)
    }

    fn train_step(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
    ) -> f64 {
        self.net.train_step(params, data, indices, seed, step, grad)
    }

    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        self.predict(params, x, rows, out);
    }

    fn loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize) -> f64 {
        self.loss_only(params, x, y, rows)
    }

    fn forward_and_loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, out: &mut [f32]) -> f64 {
        self.net.forward_and_loss(params, x, y, rows, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::dense::SPLIT_WORK;

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
        let huge = Mlp::new(&[4, 2_305_843_009_213_693_960, 3], &[Activation::Relu, Activation::Identity], Loss::Mse);
        assert_eq!(huge.unwrap_err().option, "sizes");
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
}
