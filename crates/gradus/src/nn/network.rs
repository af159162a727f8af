//! A network of layers: built from a [`NetworkSpec`] against the shape of its input rows, with
//! every shape checked, its parameters as named segments of one flat buffer, and the forward and
//! backward passes run block by block.
//!
//! # How a batch runs
//! A batch is cut into blocks of a fixed number of rows (64 for networks of dense layers, 16 when
//! there are convolutions), fixed by the architecture and never by the thread count. Layers whose
//! pass over a row needs no other row run block by block on rayon's pool: for a network without
//! batch normalization a block goes forward through every layer, through the loss and back again
//! without waiting for the others, each block into a gradient buffer of its own; the buffers are
//! then added in block order. Batch normalization in training needs the whole batch's statistics:
//! it runs on the whole batch, between the blocks' passes below and above it. Every reduction has
//! one order, so the gradient has the same bits on any number of threads.

use std::ops::Range;
use std::sync::RwLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dense::{Input, Tokens};
use super::kernels::RowSource;
use super::layers::{
    self, grow, Activation, AnyLayer, BatchNorm, Conv2d, Dropout, Flatten, Layer, Linear, Mode, Pass, Pool2d, PoolKind,
};
use super::recurrent::{Cell, Recurrent, StackedParams};
use super::shape::Shape;
use super::spec::{format_list, Init, LayerSpec};
use super::text::{mark, BagMode, Embedding};
use crate::error::ConfigError;
use crate::loss::{Loss, Real};
use crate::params::ParamLayout;

/// Rows per block of a network of dense layers (see the module documentation).
pub const DENSE_BLOCK_ROWS: usize = 64;

/// Rows per block of a network with convolutions: small enough that a mini-batch of 64 images
/// spreads over the threads, large enough that the blocks' gradient buffers are few to add.
pub const CONV_BLOCK_ROWS: usize = 16;
/// Rows per block of a network with a recurrent layer: each row is a whole sequence (tens of
/// steps, each as costly as a dense row), so that a language model's batch of a few dozen
/// sequences still splits over the threads.
pub const RECURRENT_BLOCK_ROWS: usize = 8;

/// Elements per piece when adding the blocks' gradient buffers in parallel.
const REDUCE_CHUNK: usize = 1 << 14;

/// A network as the user describes it: the shape of its input rows, its layers, its loss and how
/// its parameters start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The shape of one input row (`[features]`, or `[channels, height, width]` for images).
    pub input: Shape,
    /// The layers, first to last.
    pub layers: Vec<LayerSpec>,
    /// The loss on the last layer's outputs.
    pub loss: Loss,
    /// Weight initialization.
    #[serde(default)]
    pub init: Init,
    /// Names of the layers that have parameters, in order (`conv1`, `linear2`, ...): their
    /// segments are `NAME.weight` and `NAME.bias`. Empty: named by kind and count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl NetworkSpec {
    /// A network of `layers` on rows of shape `input`, trained against `loss`, with PyTorch's
    /// initialization.
    pub fn new(input: Shape, layers: Vec<LayerSpec>, loss: Loss) -> Self {
        Self { input, layers, loss, init: Init::Torch, names: Vec::new() }
    }

    /// Sets the initialization.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Gives the last `linear` layer `outputs` output features when it leaves them out, as the
    /// task decides them (the number of classes, or 1). Fails when the last layer with
    /// parameters is a `linear` that says otherwise, naming both numbers.
    pub fn with_outputs(mut self, outputs: usize) -> Result<Self, ConfigError> {
        let last_linear = self.layers.iter_mut().rev().find_map(|l| match l {
            LayerSpec::Linear { out_features, .. } => Some(out_features),
            _ => None,
        });
        match last_linear {
            Some(out @ None) => *out = Some(outputs),
            Some(Some(n)) if *n != outputs => {
                return Err(ConfigError::new(
                    "layers",
                    format!("a last `linear({n})` for a task of {outputs} outputs"),
                    "the last linear layer's size to match the task (or left out: `linear`)",
                ))
            }
            _ => {}
        }
        Ok(self)
    }
}

/// One row of [`Network::summary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// The layer's name (`conv1`, `relu2`, ...).
    pub name: String,
    /// The layer as `--layers` writes it, its inferred sizes filled in.
    pub layer: String,
    /// The shape of one row of its output.
    pub output: Shape,
    /// Its number of parameters.
    pub params: usize,
}

/// A network of layers with a loss: a [`crate::model::Model`] that trains with every optimizer,
/// schedule and transform of the engine.
///
/// ```
/// use gradus::loss::Loss;
/// use gradus::nn::{LayerSpec, Network, NetworkSpec, Shape};
///
/// let layers = LayerSpec::parse_list("conv2d(4,3,padding=1),relu,max_pool2d(2),flatten,linear(3)").unwrap();
/// let spec = NetworkSpec::new(Shape::image(1, 8, 8), layers, Loss::cross_entropy(0.0).unwrap());
/// let net = Network::new(spec).unwrap();
/// assert_eq!(net.output_shape(), &Shape::flat(3));
/// let names: Vec<&str> = net.layout().segments().iter().map(|s| s.name.as_str()).collect();
/// assert_eq!(names, ["conv1.weight", "conv1.bias", "linear1.weight", "linear1.bias"]);
/// let params = net.init_params(0);
/// let x = vec![0.5f32; 2 * 64];
/// let mut out = vec![0.0f32; 2 * 3];
/// net.predict(&params, &x, 2, &mut out);
/// ```
#[derive(Debug)]
pub struct Network {
    spec: NetworkSpec,
    layers: Vec<AnyLayer>,
    /// `shapes[0]` is the input's, `shapes[i + 1]` layer `i`'s output.
    shapes: Vec<Shape>,
    widths: Vec<usize>,
    names: Vec<String>,
    layout: ParamLayout,
    buffer_layout: ParamLayout,
    /// Each layer's range of the running statistics (empty for most).
    buffer_ranges: Vec<Range<usize>>,
    buffers: RwLock<Vec<f32>>,
    /// The negative slope He initialization takes for each layer's weight.
    init_slopes: Vec<Option<f64>>,
    block_rows: usize,
    /// Layers grouped for a training pass: runs of row-local layers, and each batch norm alone.
    stages: Vec<Range<usize>>,
    /// The parameter ranges written block by block (those of row-local layers).
    local_params: Vec<Range<usize>>,
    /// Where each layer's per-batch saved values start.
    saved_offsets: Vec<usize>,
    saved_len: usize,
    /// Each layer's saved values per row, and their total.
    saved_per_row: Vec<usize>,
    saved_row_width: usize,
}

impl Clone for Network {
    fn clone(&self) -> Self {
        let net = Network::new(self.spec.clone()).expect("a built network's spec builds");
        net.set_buffers(&self.buffers()).expect("same layout");
        net
    }
}

impl PartialEq for Network {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec && self.buffers() == other.buffers()
    }
}

fn shape_error(index: usize, spec: &LayerSpec, previous: &str, input: &Shape, expected: &'static str) -> ConfigError {
    ConfigError::new(
        "layers",
        format!("`{spec}` (layer {}), whose input is {input} from {previous},", index + 1),
        expected,
    )
}

impl Network {
    /// Builds the network, inferring each layer's input size from the layer below and checking
    /// every shape; an error names the layer, the one below it and their shapes.
    pub fn new(spec: NetworkSpec) -> Result<Self, ConfigError> {
        spec.loss.validate()?;
        if spec.layers.is_empty() {
            return Err(ConfigError::new("layers", "(none)", "at least one layer"));
        }
        let bag_input = matches!(spec.layers.first(), Some(LayerSpec::EmbeddingBag { .. }));
        if !bag_input && (spec.input.checked_len().is_none_or(|n| n == 0) || spec.input.dims().contains(&0)) {
            return Err(ConfigError::new("input_shape", &spec.input, "dimensions >= 1"));
        }
        let mut layout = ParamLayout::new();
        let mut buffer_layout = ParamLayout::new();
        let mut layers = Vec::with_capacity(spec.layers.len());
        let mut shapes = vec![spec.input.clone()];
        let mut names = Vec::new();
        let mut buffer_ranges = Vec::new();
        let mut counts = std::collections::HashMap::<&str, usize>::new();
        let mut param_layer = 0usize;
        for (index, layer_spec) in spec.layers.iter().enumerate() {
            layer_spec.validate()?;
            let input = shapes.last().expect("the input shape").clone();
            let previous = if index == 0 { "the input".to_string() } else { format!("`{}`", spec.layers[index - 1]) };
            let error = |expected: &'static str| shape_error(index, layer_spec, &previous, &input, expected);
            let kind = match layer_spec {
                LayerSpec::MaxPool2d { .. } | LayerSpec::AvgPool2d { .. } => "pool",
                other => other.kind(),
            };
            let count = counts.entry(layer_spec.param_prefix().unwrap_or(kind)).or_insert(0);
            *count += 1;
            let name = match layer_spec.param_prefix() {
                Some(prefix) => {
                    let name = spec.names.get(param_layer).cloned().unwrap_or_else(|| format!("{prefix}{count}"));
                    param_layer += 1;
                    name
                }
                None => format!("{kind}{count}"),
            };
            let too_big = |what: &str| {
                ConfigError::new(
                    "layers",
                    format!("layer {} `{layer_spec}` ({what})", index + 1),
                    "sizes whose product fits in memory",
                )
            };
            let mut buffer_range = 0..0;
            // Every parameter count is checked before it is laid out, so that the total cannot wrap.
            let fits = |layout: &ParamLayout, len: usize| {
                layout.len().checked_add(len).is_some_and(|n| n <= isize::MAX as usize / 4)
            };
            let (layer, output) = match layer_spec {
                LayerSpec::Linear { out_features, bias } => {
                    let outputs = out_features.ok_or_else(|| {
                        ConfigError::new(
                            "layers",
                            format!("layer {} `linear`", index + 1),
                            "the output features of every linear layer but the last, e.g. `linear(128)`",
                        )
                    })?;
                    let (vectors, inputs) = match input.dims() {
                        [f] => (1, *f),
                        [t, f] => (*t, *f),
                        _ => {
                            return Err(error(
                                "flat rows [features] or sequences [time, features]: add `flatten` before it",
                            ))
                        }
                    };
                    let weight_len = inputs
                        .checked_mul(outputs)
                        .and_then(|n| n.checked_add(outputs))
                        .filter(|&n| fits(&layout, n))
                        .ok_or_else(|| too_big("weight"))?
                        - outputs;
                    let weight = layout.push(format!("{name}.weight"), weight_len);
                    let bias = bias.then(|| layout.push(format!("{name}.bias"), outputs));
                    let mut dims = input.dims().to_vec();
                    *dims.last_mut().expect("one dimension at least") = outputs;
                    (AnyLayer::Linear(Linear { inputs, outputs, vectors, weight, bias }), Shape(dims))
                }
                LayerSpec::Conv2d { out_channels, kernel_size, stride, padding } => {
                    let Some((c, h, w)) = input.as_image() else {
                        return Err(error("images [channels, height, width]"));
                    };
                    let (k, s, p) = (*kernel_size, *stride, *padding);
                    if h + 2 * p < k || w + 2 * p < k {
                        return Err(error("an input at least as large as the kernel (with its padding)"));
                    }
                    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
                    let weight_len = out_channels
                        .checked_mul(c)
                        .and_then(|n| n.checked_mul(k))
                        .and_then(|n| n.checked_mul(k))
                        .filter(|&n| n.checked_add(*out_channels).is_some_and(|n| fits(&layout, n)))
                        .ok_or_else(|| too_big("weight"))?;
                    let weight = layout.push(format!("{name}.weight"), weight_len);
                    let bias = layout.push(format!("{name}.bias"), *out_channels);
                    let conv = Conv2d {
                        in_channels: c,
                        out_channels: *out_channels,
                        kernel: k,
                        stride: s,
                        padding: p,
                        height: h,
                        width: w,
                        out_height: oh,
                        out_width: ow,
                        weight,
                        bias,
                    };
                    (AnyLayer::Conv2d(conv), Shape::image(*out_channels, oh, ow))
                }
                LayerSpec::MaxPool2d { kernel_size, stride } | LayerSpec::AvgPool2d { kernel_size, stride } => {
                    let Some((c, h, w)) = input.as_image() else {
                        return Err(error("images [channels, height, width]"));
                    };
                    let k = *kernel_size;
                    let s = stride.unwrap_or(k);
                    if h < k || w < k {
                        return Err(error("an input at least as large as the pooling window"));
                    }
                    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
                    let kind =
                        if matches!(layer_spec, LayerSpec::MaxPool2d { .. }) { PoolKind::Max } else { PoolKind::Avg };
                    let pool = Pool2d {
                        kind,
                        channels: c,
                        kernel: k,
                        stride: s,
                        height: h,
                        width: w,
                        out_height: oh,
                        out_width: ow,
                    };
                    (AnyLayer::Pool2d(pool), Shape::image(c, oh, ow))
                }
                LayerSpec::Flatten => (AnyLayer::Flatten(Flatten), Shape::flat(input.len())),
                LayerSpec::BatchNorm1d { eps, momentum } | LayerSpec::BatchNorm2d { eps, momentum } => {
                    let (channels, spatial) = match (layer_spec, input.dims()) {
                        (LayerSpec::BatchNorm1d { .. }, [f]) => (*f, 1),
                        (LayerSpec::BatchNorm1d { .. }, [c, l]) => (*c, *l),
                        (LayerSpec::BatchNorm1d { .. }, _) => {
                            return Err(error("flat rows [features] or [channels, length]"))
                        }
                        (_, [c, h, w]) => (*c, h * w),
                        _ => return Err(error("images [channels, height, width]")),
                    };
                    let weight = layout.push(format!("{name}.weight"), channels);
                    let bias = layout.push(format!("{name}.bias"), channels);
                    let bn = BatchNorm { channels, spatial, eps: *eps, momentum: *momentum, weight, bias };
                    let start = buffer_layout.len();
                    buffer_layout.push(format!("{name}.running_mean"), channels);
                    buffer_layout.push(format!("{name}.running_var"), channels);
                    buffer_range = start..buffer_layout.len();
                    (AnyLayer::BatchNorm(bn), input.clone())
                }
                LayerSpec::Dropout { p } => (AnyLayer::Dropout(Dropout { p: *p, width: input.len() }), input.clone()),
                LayerSpec::Relu => (AnyLayer::Activation(Activation::Relu), input.clone()),
                LayerSpec::LeakyRelu { negative_slope } => {
                    (AnyLayer::Activation(Activation::LeakyRelu(*negative_slope)), input.clone())
                }
                LayerSpec::Tanh => (AnyLayer::Activation(Activation::Tanh), input.clone()),
                LayerSpec::Sigmoid => (AnyLayer::Activation(Activation::Sigmoid), input.clone()),
                LayerSpec::Gelu => (AnyLayer::Activation(Activation::Gelu), input.clone()),
                LayerSpec::Embedding { num_embeddings, embedding_dim }
                | LayerSpec::EmbeddingBag { num_embeddings, embedding_dim, .. } => {
                    if index > 0 {
                        return Err(error("token indices: an embedding is a network's first layer"));
                    }
                    let bag = matches!(layer_spec, LayerSpec::EmbeddingBag { .. });
                    let steps = match (bag, input.dims()) {
                        (true, _) => None,
                        (false, [t]) => Some(*t),
                        (false, _) => return Err(error("sequences of token indices [time]")),
                    };
                    let len = num_embeddings
                        .checked_mul(*embedding_dim)
                        .filter(|&n| fits(&layout, n))
                        .ok_or_else(|| too_big("table"))?;
                    let weight = layout.push(format!("{name}.weight"), len);
                    let mode = match layer_spec {
                        LayerSpec::EmbeddingBag { mode, .. } => *mode,
                        _ => BagMode::Sum,
                    };
                    let embedding = Embedding { num: *num_embeddings, dim: *embedding_dim, steps, mode, weight };
                    let output = match steps {
                        Some(t) => Shape(vec![t, *embedding_dim]),
                        None => Shape::flat(*embedding_dim),
                    };
                    (AnyLayer::Embedding(embedding), output)
                }
                LayerSpec::Lstm { hidden_size, num_layers } | LayerSpec::Gru { hidden_size, num_layers } => {
                    let [steps, features] = input.dims()[..] else {
                        return Err(error("sequences [time, features]"));
                    };
                    let cell = if matches!(layer_spec, LayerSpec::Lstm { .. }) { Cell::Lstm } else { Cell::Gru };
                    let gates = if cell == Cell::Lstm { 4 } else { 3 };
                    let h = *hidden_size;
                    let mut stacked = Vec::with_capacity(*num_layers);
                    for k in 0..*num_layers {
                        let n_in = if k == 0 { features } else { h };
                        let gh = gates * h;
                        let total = gh
                            .checked_mul(n_in + h + 2)
                            .filter(|&n| fits(&layout, n))
                            .ok_or_else(|| too_big("weights"))?;
                        let _ = total;
                        let w_ih = layout.push(format!("{name}.weight_ih_l{k}"), gh * n_in);
                        let w_hh = layout.push(format!("{name}.weight_hh_l{k}"), gh * h);
                        let b_ih = layout.push(format!("{name}.bias_ih_l{k}"), gh);
                        let b_hh = layout.push(format!("{name}.bias_hh_l{k}"), gh);
                        stacked.push(StackedParams { input: n_in, w_ih, w_hh, b_ih, b_hh });
                    }
                    let recurrent = Recurrent { cell, hidden: h, steps, layers: stacked };
                    (AnyLayer::Recurrent(recurrent), Shape(vec![steps, h]))
                }
            };
            if output.checked_len().is_none() {
                return Err(too_big("output"));
            }
            layers.push(layer);
            shapes.push(output);
            names.push(name);
            buffer_ranges.push(buffer_range);
        }
        let widths: Vec<usize> = shapes.iter().map(Shape::len).collect();
        let output = shapes.last().expect("at least one layer");
        let cols = output.last();
        if !matches!(spec.loss, Loss::CrossEntropy { .. }) && cols == 0 {
            return Err(ConfigError::new("layers", output, "a last layer with outputs"));
        }
        // He initialization follows the activation after each weight (through shape-only layers).
        let init_slopes = (0..layers.len())
            .map(|i| {
                layers[i + 1..].iter().find_map(|l| match l {
                    AnyLayer::Activation(a) => Some(a.he_slope()),
                    AnyLayer::Linear(_) | AnyLayer::Conv2d(_) => Some(None),
                    _ => None,
                })?
            })
            .collect();
        let has_conv = layers.iter().any(|l| matches!(l, AnyLayer::Conv2d(_)));
        let has_recurrent = layers.iter().any(|l| matches!(l, AnyLayer::Recurrent(_)));
        let block_rows = if has_conv {
            CONV_BLOCK_ROWS
        } else if has_recurrent {
            RECURRENT_BLOCK_ROWS
        } else {
            DENSE_BLOCK_ROWS
        };
        let mut stages: Vec<Range<usize>> = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let local = layer.row_local(Mode::Train);
            match stages.last_mut() {
                Some(stage) if local && layers[stage.start].row_local(Mode::Train) => stage.end = i + 1,
                _ => stages.push(i..i + 1),
            }
        }
        let mut local_params: Vec<Range<usize>> = Vec::new();
        for (segment_layer, segment) in layout_owners(&layers, &layout) {
            if layers[segment_layer].row_local(Mode::Train) {
                match local_params.last_mut() {
                    Some(last) if last.end == segment.start => last.end = segment.end,
                    _ => local_params.push(segment),
                }
            }
        }
        let mut saved_offsets = Vec::with_capacity(layers.len());
        let mut saved_len = 0;
        for layer in &layers {
            saved_offsets.push(saved_len);
            saved_len += layer.saved_per_batch();
        }
        let saved_per_row: Vec<usize> = layers.iter().map(AnyLayer::saved_per_row).collect();
        let saved_row_width = saved_per_row.iter().sum();
        let mut buffers = vec![0.0f32; buffer_layout.len()];
        for (layer, range) in layers.iter().zip(&buffer_ranges) {
            if let AnyLayer::BatchNorm(bn) = layer {
                bn.init_buffers(&mut buffers[range.clone()]);
            }
        }
        Ok(Self {
            spec,
            layers,
            shapes,
            widths,
            names,
            layout,
            buffer_layout,
            buffer_ranges,
            buffers: RwLock::new(buffers),
            init_slopes,
            block_rows,
            stages,
            local_params,
            saved_offsets,
            saved_len,
            saved_per_row,
            saved_row_width,
        })
    }

    /// The description it was built from.
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The loss on the outputs.
    pub fn loss(&self) -> Loss {
        self.spec.loss
    }

    /// The flat buffer's layout: `NAME.weight` and `NAME.bias` of each layer with parameters.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The layout of the running statistics (`bn1.running_mean`, `bn1.running_var`, ...).
    pub fn buffer_layout(&self) -> &ParamLayout {
        &self.buffer_layout
    }

    /// The shape of one input row.
    pub fn input_shape(&self) -> &Shape {
        &self.shapes[0]
    }

    /// The shape of one output row.
    pub fn output_shape(&self) -> &Shape {
        self.shapes.last().expect("at least one layer")
    }

    /// Values per input row.
    pub fn input_size(&self) -> usize {
        self.widths[0]
    }

    /// Values per output row.
    pub fn output_size(&self) -> usize {
        *self.widths.last().expect("at least one layer")
    }

    /// The number of parameters.
    pub fn num_params(&self) -> usize {
        self.layout.len()
    }

    /// Rows per block (see the module documentation).
    pub fn block_rows(&self) -> usize {
        self.block_rows
    }

    /// Each layer's name, the layer as `--layers` writes it (inferred sizes included), its output
    /// shape and its number of parameters.
    pub fn summary(&self) -> Vec<LayerSummary> {
        let owners = layout_owners(&self.layers, &self.layout);
        self.layers
            .iter()
            .enumerate()
            .map(|(i, layer)| LayerSummary {
                name: self.names[i].clone(),
                layer: match (layer, &self.spec.layers[i]) {
                    (AnyLayer::Linear(l), LayerSpec::Linear { bias, .. }) => {
                        LayerSpec::Linear { out_features: Some(l.outputs), bias: *bias }.to_string()
                    }
                    (_, spec) => spec.to_string(),
                },
                output: self.shapes[i + 1].clone(),
                params: owners.iter().filter(|(l, _)| *l == i).map(|(_, r)| r.len()).sum(),
            })
            .collect()
    }

    /// The layers as `--layers` writes them.
    pub fn describe(&self) -> String {
        format_list(&self.spec.layers)
    }

    /// Freshly initialized parameters drawn from `seed`, each layer from a random stream of its
    /// own (see [`Init`]).
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut params = self.layout.zeros();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut rng = layers::layer_rng(seed, i);
            match layer {
                AnyLayer::Linear(l) => l.init(self.spec.init, &mut rng, self.init_slopes[i], &mut params),
                AnyLayer::Conv2d(c) => c.init(self.spec.init, &mut rng, self.init_slopes[i], &mut params),
                AnyLayer::BatchNorm(bn) => bn.init(&mut params),
                AnyLayer::Embedding(e) => e.init(&mut rng, &mut params),
                AnyLayer::Recurrent(r) => r.init(&mut rng, &mut params),
                _ => {}
            }
        }
        params
    }

    /// The running statistics (batch normalization), laid out as [`Network::buffer_layout`].
    pub fn buffers(&self) -> Vec<f32> {
        self.buffers.read().expect("buffers lock").clone()
    }

    /// Replaces the running statistics; fails when `values` has the wrong length.
    pub fn set_buffers(&self, values: &[f32]) -> Result<(), String> {
        let mut buffers = self.buffers.write().expect("buffers lock");
        if values.len() != buffers.len() {
            return Err(format!("{} running statistics for a network that keeps {}", values.len(), buffers.len()));
        }
        buffers.copy_from_slice(values);
        Ok(())
    }

    /// Resets the running statistics to their initial values (means 0, variances 1).
    pub fn reset_buffers(&self) {
        let mut buffers = self.buffers.write().expect("buffers lock");
        for (layer, range) in self.layers.iter().zip(&self.buffer_ranges) {
            if let AnyLayer::BatchNorm(bn) = layer {
                bn.init_buffers(&mut buffers[range.clone()]);
            }
        }
    }

    /// The number of targets per row: one class index per output vector for cross-entropy,
    /// one value per output otherwise.
    pub fn targets_per_row(&self) -> usize {
        let output = self.output_shape();
        self.spec.loss.target_len(output.len() / output.last().max(1), output.last())
    }

    /// The network's outputs (evaluation mode: running statistics, no dropout) for `rows` rows of
    /// `x`, written into `out` (`rows × output_size`).
    ///
    /// # Panics
    /// If `params`, `x` or `out` have the wrong length.
    pub fn predict<T: Real>(&self, params: &[T], x: &[T], rows: usize, out: &mut [T]) {
        assert!(!self.takes_tokens(), "a network over token indices predicts from tokens (predict_tokens)");
        assert_eq!(x.len(), rows * self.input_size(), "input length is not rows × input size");
        self.predict_input(params, Input::Dense(x), rows, out, Carry::default());
    }

    /// Whether the network's input rows are token indices (its first layer is an embedding).
    pub fn takes_tokens(&self) -> bool {
        matches!(self.layers.first(), Some(AnyLayer::Embedding(_)))
    }

    /// Checks rows of token indices for this network: `offsets` (`rows + 1` positions into `ids`,
    /// non-decreasing, the last at most `ids.len()`), every index below the vocabulary size, and
    /// for an `embedding` exactly as many tokens per row as the input shape says. Describes the
    /// first problem.
    pub fn check_tokens(&self, ids: &[u32], offsets: &[usize]) -> Result<(), String> {
        let Some(AnyLayer::Embedding(e)) = self.layers.first() else {
            return Err("the network does not take token indices".into());
        };
        if offsets.is_empty() || offsets.windows(2).any(|w| w[0] > w[1]) || offsets[offsets.len() - 1] > ids.len() {
            return Err(format!(
                "offsets must be {} non-decreasing positions into the {} indices",
                offsets.len(),
                ids.len()
            ));
        }
        if let Some(steps) = e.steps {
            if let Some(r) = offsets.windows(2).position(|w| w[1] - w[0] != steps) {
                return Err(format!("row {r} holds {} tokens, the network takes {steps}", offsets[r + 1] - offsets[r]));
            }
        }
        if let Some(i) = ids[offsets[0]..offsets[offsets.len() - 1]].iter().position(|&id| id as usize >= e.num) {
            return Err(format!("token index {} is not below the vocabulary size {}", ids[offsets[0] + i], e.num));
        }
        Ok(())
    }

    /// [`Network::predict`] for rows of token indices: row `r` holds `ids[offsets[r]..offsets[r + 1]]`.
    ///
    /// # Panics
    /// When [`Network::check_tokens`] fails, or `out` has the wrong length.
    pub fn predict_tokens<T: Real>(&self, params: &[T], ids: &[u32], offsets: &[usize], out: &mut [T]) {
        if let Err(e) = self.check_tokens(ids, offsets) {
            panic!("{e}");
        }
        let rows = offsets.len() - 1;
        self.predict_input(params, Input::Tokens(Tokens { ids, offsets }), rows, out, Carry::default());
    }

    fn predict_input<T: Real>(&self, params: &[T], x: Input<'_, T>, rows: usize, out: &mut [T], carry: Carry<'_>) {
        assert_eq!(params.len(), self.num_params(), "parameter buffer length");
        assert_eq!(out.len(), rows * self.output_size(), "output buffer length");
        self.check_carry(&carry, rows);
        let buffers = self.buffers.read().expect("buffers lock");
        let (inputs, outputs) = (self.input_size(), self.output_size());
        let widest = self.widths[1..].iter().copied().max().unwrap_or(0);
        let recurrent = self.recurrent();
        let run = |first_row: usize, x_block: Input<'_, T>, out_block: &mut [T], last: Option<&mut [f32]>| {
            let block_rows = out_block.len() / outputs;
            T::with_scratch(4, |scratch| {
                let space = grow(scratch, 2 * block_rows * widest + block_rows * self.saved_row_width);
                let (ping, rest) = space.split_at_mut(block_rows * widest);
                let (pong, saved) = rest.split_at_mut(block_rows * widest);
                let (mut current, mut next) = (ping, pong);
                let last_layer = self.layers.len() - 1;
                let mut last = last;
                for (i, layer) in self.layers.iter().enumerate() {
                    let width = self.widths[i + 1];
                    let pass =
                        Pass { state: carry.initial, ..self.pass_info(Mode::Eval, 0, 0, i, first_row, &buffers) };
                    let input = if i == 0 { x_block } else { Input::Dense(&current[..block_rows * self.widths[i]]) };
                    let output: &mut [T] =
                        if i == last_layer { &mut *out_block } else { &mut next[..block_rows * width] };
                    let per_row = self.saved_per_row[i];
                    let saved = &mut saved[..block_rows * per_row];
                    layer.forward(&pass, params, input, block_rows, output, saved);
                    if let (Some(last), Some((r, recurrent))) = (last.as_deref_mut(), recurrent) {
                        if r == i {
                            for (row, state) in
                                saved.chunks_exact(per_row).zip(last.chunks_exact_mut(recurrent.state_width()))
                            {
                                recurrent.final_state(row, state);
                            }
                        }
                    }
                    if i != last_layer {
                        std::mem::swap(&mut current, &mut next);
                    }
                }
            })
        };
        if rows <= self.block_rows {
            run(0, x, out, carry.last);
        } else {
            let block_rows = self.block_rows;
            let state_width = recurrent.map_or(0, |(_, r)| r.state_width());
            let run_block = |b: usize, out_block: &mut [T], last: Option<&mut [f32]>| {
                let range = b * block_rows..(b * block_rows + out_block.len() / outputs);
                run(range.start, x.rows_range(range, inputs), out_block, last)
            };
            match carry.last {
                Some(last) => out
                    .par_chunks_mut(block_rows * outputs)
                    .zip(last.par_chunks_mut(block_rows * state_width))
                    .enumerate()
                    .for_each(|(b, (out_block, last))| run_block(b, out_block, Some(last))),
                None => out
                    .par_chunks_mut(block_rows * outputs)
                    .enumerate()
                    .for_each(|(b, out_block)| run_block(b, out_block, None)),
            }
        }
    }

    /// The network's recurrent layer and its index, when it has exactly one (the layer whose
    /// state a [`Carry`] holds).
    fn recurrent(&self) -> Option<(usize, &Recurrent)> {
        let mut found = self.layers.iter().enumerate().filter_map(|(i, l)| match l {
            AnyLayer::Recurrent(r) => Some((i, r)),
            _ => None,
        });
        let first = found.next();
        if found.next().is_some() {
            None
        } else {
            first
        }
    }

    /// The values of one row's recurrent state (the hidden and cell states of every stacked
    /// layer), or `None` when the network does not have exactly one recurrent layer.
    pub fn state_width(&self) -> Option<usize> {
        self.recurrent().map(|(_, r)| r.state_width())
    }

    fn check_carry(&self, carry: &Carry<'_>, rows: usize) {
        if carry.initial.is_some() || carry.last.is_some() {
            let width = self.state_width().expect("a carried state needs exactly one recurrent layer");
            if let Some(initial) = carry.initial {
                assert_eq!(initial.len(), rows * width, "initial state length");
            }
            if let Some(last) = &carry.last {
                assert_eq!(last.len(), rows * width, "last state length");
            }
        }
    }

    /// [`Network::predict_tokens`] of a network with one recurrent layer whose rows continue
    /// sequences: each row's recurrent layer starts from its `initial` state
    /// ([`Network::state_width`] values per row; zeros when `None`), and the state after its last
    /// step is written into `last` when given.
    ///
    /// # Panics
    /// As [`Network::predict_tokens`], and when the states have the wrong length or the network
    /// does not have exactly one recurrent layer.
    pub fn predict_tokens_with_state<T: Real>(
        &self,
        params: &[T],
        ids: &[u32],
        offsets: &[usize],
        carry: Carry<'_>,
        out: &mut [T],
    ) {
        if let Err(e) = self.check_tokens(ids, offsets) {
            panic!("{e}");
        }
        let rows = offsets.len() - 1;
        self.predict_input(params, Input::Tokens(Tokens { ids, offsets }), rows, out, carry);
    }

    /// [`Network::loss_and_gradients_tokens`] from and to carried states (see
    /// [`Network::predict_tokens_with_state`]): truncated backpropagation through time, the
    /// gradient stopping at each row's initial state.
    ///
    /// # Panics
    /// As [`Network::predict_tokens_with_state`].
    pub fn loss_and_gradients_tokens_with_state<T: Real>(
        &self,
        params: &[T],
        ids: &[u32],
        offsets: &[usize],
        targets: &[T],
        grad: &mut [T],
        carry: Carry<'_>,
    ) -> f64 {
        if let Err(e) = self.check_tokens(ids, offsets) {
            panic!("{e}");
        }
        let step = TrainingStep { seed: 0, step: 0, update_buffers: false, sparse: false };
        let rows = offsets.len() - 1;
        self.train_pass(params, Input::Tokens(Tokens { ids, offsets }), rows, targets, grad, None, step, carry)
    }

    /// [`Network::loss_and_gradients`] for rows of token indices (see [`Network::predict_tokens`]).
    ///
    /// # Panics
    /// When [`Network::check_tokens`] fails, or a buffer has the wrong length.
    pub fn loss_and_gradients_tokens<T: Real>(
        &self,
        params: &[T],
        ids: &[u32],
        offsets: &[usize],
        targets: &[T],
        grad: &mut [T],
        update_running_stats: bool,
    ) -> f64 {
        if let Err(e) = self.check_tokens(ids, offsets) {
            panic!("{e}");
        }
        let step = TrainingStep { seed: 0, step: 0, update_buffers: update_running_stats, sparse: false };
        let rows = offsets.len() - 1;
        self.train_pass(
            params,
            Input::Tokens(Tokens { ids, offsets }),
            rows,
            targets,
            grad,
            None,
            step,
            Carry::default(),
        )
    }

    /// The embedding table's range and row length, when the network's first layer is an
    /// embedding (whose gradient is row-sparse).
    pub(crate) fn embedding_table(&self) -> Option<(Range<usize>, usize)> {
        match self.layers.first() {
            Some(AnyLayer::Embedding(e)) => Some((e.weight.clone(), e.dim)),
            _ => None,
        }
    }

    /// A training pass over rows of token indices for update `step` (see [`Network::train_rows`]).
    pub(crate) fn train_tokens(
        &self,
        params: &[f32],
        ids: &[u32],
        offsets: &[usize],
        targets: &[f32],
        grad: &mut [f32],
        step: TrainingStep,
    ) -> f64 {
        self.train_tokens_with_state(params, ids, offsets, targets, grad, step, Carry::default())
    }

    /// [`Network::train_tokens`] from and to carried states.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn train_tokens_with_state(
        &self,
        params: &[f32],
        ids: &[u32],
        offsets: &[usize],
        targets: &[f32],
        grad: &mut [f32],
        step: TrainingStep,
        carry: Carry<'_>,
    ) -> f64 {
        let rows = offsets.len() - 1;
        self.train_pass(params, Input::Tokens(Tokens { ids, offsets }), rows, targets, grad, None, step, carry)
    }

    /// The mean loss of the `rows` rows of `x` against `targets` and its gradient with respect
    /// to `params`, written into `grad` (overwritten), in training mode (batch statistics;
    /// dropout with the masks of step 0 of seed 0) without updating the running statistics.
    ///
    /// Targets are laid out as [`Network::targets_per_row`] says. The result does not depend on
    /// the number of threads. An empty batch gives NaN and a zero gradient.
    ///
    /// # Panics
    /// If `params`, `grad`, `x` or `targets` have the wrong length.
    pub fn loss_and_gradient<T: Real>(&self, params: &[T], x: &[T], rows: usize, targets: &[T], grad: &mut [T]) -> f64 {
        assert_eq!(x.len(), rows * self.input_size(), "input length is not rows × input size");
        let step = TrainingStep { seed: 0, step: 0, update_buffers: false, sparse: false };
        self.train_pass(params, Input::Dense(x), rows, targets, grad, None, step, Carry::default())
    }

    /// [`Network::loss_and_gradient`] that also writes the gradient with respect to the input
    /// rows into `grad_input` (`rows × input_size`) when given, and moves the running statistics
    /// of batch normalization towards the batch's when `update_running_stats` (as a training step
    /// of PyTorch does).
    ///
    /// # Panics
    /// If a buffer has the wrong length.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_gradients<T: Real>(
        &self,
        params: &[T],
        x: &[T],
        rows: usize,
        targets: &[T],
        grad: &mut [T],
        grad_input: Option<&mut [T]>,
        update_running_stats: bool,
    ) -> f64 {
        assert_eq!(x.len(), rows * self.input_size(), "input length is not rows × input size");
        if let Some(g) = &grad_input {
            assert_eq!(g.len(), x.len(), "input gradient length");
        }
        let step = TrainingStep { seed: 0, step: 0, update_buffers: update_running_stats, sparse: false };
        self.train_pass(params, Input::Dense(x), rows, targets, grad, grad_input, step, Carry::default())
    }

    /// One training pass for update `step` of a run seeded `seed` over the rows of `x` at
    /// `indices` (every row in order when `None`): dropout masks from `(seed, step)`, batch
    /// statistics, and the running statistics updated when `update_buffers`.
    pub(crate) fn train_rows(
        &self,
        params: &[f32],
        x: &[f32],
        indices: Option<&[usize]>,
        targets: &[f32],
        grad: &mut [f32],
        step: TrainingStep,
    ) -> f64 {
        let inputs = self.input_size();
        match indices {
            None => {
                self.train_pass(params, Input::Dense(x), x.len() / inputs, targets, grad, None, step, Carry::default())
            }
            Some(indices) if self.layers[0].is_linear_with_picked_input() => {
                let source = RowSource::indexed(x, inputs, indices);
                self.train_pass(
                    params,
                    Input::Picked(source),
                    indices.len(),
                    targets,
                    grad,
                    None,
                    step,
                    Carry::default(),
                )
            }
            Some(indices) => {
                // Layers other than `linear` read their input rows where they lie: copy them out.
                thread_local! {
                    static PICKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                let gather = |buffer: &mut Vec<f32>| {
                    buffer.clear();
                    for &i in indices {
                        buffer.extend_from_slice(&x[i * inputs..(i + 1) * inputs]);
                    }
                };
                let mut run = |buffer: &mut Vec<f32>| {
                    gather(buffer);
                    let x = Input::Dense(buffer);
                    self.train_pass(params, x, indices.len(), targets, grad, None, step, Carry::default())
                };
                // This thread's buffer, or a fresh one when it is in use (a nested call).
                PICKED.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buffer) => run(&mut buffer),
                    Err(_) => run(&mut Vec::new()),
                })
            }
        }
    }

    fn pass_info<'a>(
        &self,
        mode: Mode,
        seed: u64,
        step: u64,
        layer: usize,
        first_row: usize,
        buffers: &'a [f32],
    ) -> Pass<'a> {
        Pass {
            mode,
            seed,
            step,
            layer,
            first_row,
            buffers: &buffers[self.buffer_ranges[layer].clone()],
            sparse: false,
            state: None,
        }
    }

    /// The training pass (see the module documentation for its order of work).
    #[allow(clippy::too_many_arguments)]
    fn train_pass<T: Real>(
        &self,
        params: &[T],
        x: Input<'_, T>,
        rows: usize,
        targets: &[T],
        grad: &mut [T],
        grad_input: Option<&mut [T]>,
        step: TrainingStep,
        carry: Carry<'_>,
    ) -> f64 {
        assert_eq!(params.len(), self.num_params(), "parameter buffer length");
        assert_eq!(grad.len(), self.num_params(), "gradient buffer length");
        self.check_carry(&carry, rows);
        let target_width = self.targets_per_row();
        assert_eq!(targets.len(), rows * target_width, "wrong number of targets");
        if rows == 0 {
            grad.fill(T::ZERO);
            return f64::NAN;
        }
        let output = self.output_shape();
        let cols = output.last();
        let denominator = self.spec.loss.mean_denominator(rows * (output.len() / cols.max(1)), cols);
        let scale = 1.0 / denominator as f64;
        let grad_scale = T::from_f64(scale);
        let n_layers = self.layers.len();
        // Every layer's output and the gradient with respect to it, layer after layer, each
        // `rows × width`.
        let mut offsets = Vec::with_capacity(n_layers + 1);
        let mut total = 0usize;
        for &w in &self.widths[1..] {
            offsets.push(total);
            total += rows * w;
        }
        let blocks = rows.div_ceil(self.block_rows);
        let n = self.num_params();
        let buffers_guard = self.buffers.read().expect("buffers lock");
        let buffers: &[f32] = &buffers_guard;
        let result = T::with_scratch(2, |scratch| {
            let row_saved = rows * self.saved_row_width;
            let space = grow(scratch, 2 * total + self.saved_len + row_saved + (blocks - 1) * n);
            let (acts, rest) = space.split_at_mut(total);
            let (dacts, rest) = rest.split_at_mut(total);
            let (saved, rest) = rest.split_at_mut(self.saved_len);
            let (row_saved, block_grads) = rest.split_at_mut(row_saved);
            let mut row_saved_offsets = Vec::with_capacity(n_layers);
            let mut at = 0;
            for &width in &self.saved_per_row {
                row_saved_offsets.push(at);
                at += rows * width;
            }
            let work = Workspace {
                acts: acts.as_mut_ptr(),
                dacts: dacts.as_mut_ptr(),
                saved: saved.as_mut_ptr(),
                row_saved: row_saved.as_mut_ptr(),
                row_saved_offsets: &row_saved_offsets,
                grad: grad.as_mut_ptr(),
                block_grads: block_grads.as_mut_ptr(),
                grad_input: grad_input.map(|g| g.as_mut_ptr()),
                offsets: &offsets,
                n_params: n,
            };
            let context = PassContext {
                net: self,
                params,
                x,
                rows,
                targets,
                target_width,
                grad_scale,
                step,
                buffers,
                work: &work,
                state: carry.initial,
            };
            let last_stage = self.stages.len() - 1;
            let mut block_losses = vec![0.0f64; blocks];
            // Forward through every stage; the last one also takes the loss and goes back through itself.
            for (s, stage) in self.stages.iter().enumerate() {
                let with_loss = s == last_stage;
                if self.layers[stage.start].row_local(Mode::Train) {
                    let run = |b: usize| {
                        let range = b * self.block_rows..rows.min((b + 1) * self.block_rows);
                        // SAFETY: each block touches its own rows and gradient buffer only.
                        unsafe { context.block_forward(stage.clone(), range.clone(), b) };
                        if with_loss {
                            // SAFETY: as above.
                            unsafe {
                                let loss = context.block_loss(range.clone());
                                context.block_backward(stage.clone(), range, b);
                                loss
                            }
                        } else {
                            0.0
                        }
                    };
                    if blocks == 1 {
                        block_losses[0] = run(0);
                    } else {
                        block_losses.par_iter_mut().enumerate().for_each(|(b, loss)| *loss = run(b));
                    }
                } else {
                    // SAFETY: no block runs now: the whole batch is this layer's.
                    unsafe {
                        context.block_forward(stage.clone(), 0..rows, 0);
                        if with_loss {
                            block_losses[0] = context.block_loss(0..rows);
                            context.block_backward(stage.clone(), 0..rows, 0);
                        }
                    }
                }
            }
            // Back through the stages below the last.
            for stage in self.stages[..last_stage].iter().rev() {
                if self.layers[stage.start].row_local(Mode::Train) {
                    let run = |b: usize| {
                        let range = b * self.block_rows..rows.min((b + 1) * self.block_rows);
                        // SAFETY: each block touches its own rows and gradient buffer only.
                        unsafe { context.block_backward(stage.clone(), range, b) };
                    };
                    if blocks == 1 {
                        run(0);
                    } else {
                        (0..blocks).into_par_iter().for_each(run);
                    }
                } else {
                    // SAFETY: no block runs now.
                    unsafe { context.block_backward(stage.clone(), 0..rows, 0) };
                }
            }
            if blocks > 1 {
                // Each element is summed over the blocks in block order, however the work is split.
                let others: &[T] = &*block_grads;
                // On the sparse path the embedding table's block gradients hold only the rows of
                // their blocks' tokens: those are added, in block order, as the dense sum would
                // (the other blocks' terms are zeros).
                let table = match (&self.layers[0], step.sparse) {
                    (AnyLayer::Embedding(e), true) => Some(e),
                    _ => None,
                };
                for range in &self.local_params {
                    let pieces: Vec<Range<usize>> = match table {
                        Some(e) if range.start <= e.weight.start && e.weight.end <= range.end => {
                            [range.start..e.weight.start, e.weight.end..range.end]
                                .into_iter()
                                .filter(|r| !r.is_empty())
                                .collect()
                        }
                        _ => vec![range.clone()],
                    };
                    for range in pieces {
                        grad[range.clone()].par_chunks_mut(REDUCE_CHUNK).enumerate().for_each(|(c, piece)| {
                            let start = range.start + c * REDUCE_CHUNK;
                            for b in 0..blocks - 1 {
                                let other = &others[b * n + start..b * n + start + piece.len()];
                                piece.iter_mut().zip(other).for_each(|(g, &o)| *g += o);
                            }
                        });
                    }
                }
                if let Some(e) = table {
                    let tokens = x.tokens();
                    // The rows some block has written into `grad` so far (block 0's own): a row
                    // first written here takes `0 + other`, as the dense sum would, since the
                    // rows no block touched hold stale values on the sparse path.
                    let mut written = vec![0u64; e.num.div_ceil(64)];
                    for r in 0..rows.min(self.block_rows) {
                        for &id in tokens.row(r) {
                            mark(&mut written, id);
                        }
                    }
                    let mut ids = Vec::new();
                    for b in 1..blocks {
                        ids.clear();
                        for r in b * self.block_rows..rows.min((b + 1) * self.block_rows) {
                            ids.extend_from_slice(tokens.row(r));
                        }
                        ids.sort_unstable();
                        ids.dedup();
                        let other = &others[(b - 1) * n..b * n];
                        for &id in &ids {
                            let row = e.weight.start + id as usize * e.dim..e.weight.start + (id as usize + 1) * e.dim;
                            if mark(&mut written, id) {
                                grad[row.clone()].iter_mut().zip(&other[row]).for_each(|(g, &o)| *g = T::ZERO + o);
                            } else {
                                grad[row.clone()].iter_mut().zip(&other[row]).for_each(|(g, &o)| *g += o);
                            }
                        }
                    }
                }
            }
            if let (Some(last), Some((i, recurrent))) = (carry.last, self.recurrent()) {
                // The state after each row's last step, for the rows that continue these.
                let per_row = self.saved_per_row[i];
                let rows_saved = &row_saved[row_saved_offsets[i]..row_saved_offsets[i] + rows * per_row];
                for (row, state) in rows_saved.chunks_exact(per_row).zip(last.chunks_exact_mut(recurrent.state_width()))
                {
                    recurrent.final_state(row, state);
                }
            }
            let saved: &[T] = &*saved;
            (block_losses.iter().sum::<f64>() * scale, saved.to_vec())
        });
        drop(buffers_guard);
        let (loss, saved) = result;
        if step.update_buffers && !self.buffer_layout.is_empty() {
            let mut buffers = self.buffers.write().expect("buffers lock");
            for (i, layer) in self.layers.iter().enumerate() {
                if let AnyLayer::BatchNorm(bn) = layer {
                    let start = self.saved_offsets[i];
                    bn.update_buffers(
                        &saved[start..start + layer.saved_per_batch()],
                        rows,
                        &mut buffers[self.buffer_ranges[i].clone()],
                    );
                }
            }
        }
        loss
    }
}

/// The recurrent state a pass starts from and ends in, for rows that continue sequences
/// (truncated backpropagation through time): [`Network::state_width`] values per row.
#[derive(Debug, Default)]
pub struct Carry<'a> {
    /// Each row's initial state (zeros when `None`).
    pub initial: Option<&'a [f32]>,
    /// Where each row's state after its last step is written, when given.
    pub last: Option<&'a mut [f32]>,
}

/// Which update of which run a training pass belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrainingStep {
    pub(crate) seed: u64,
    pub(crate) step: u64,
    pub(crate) update_buffers: bool,
    /// The engine's sparse path ([`crate::model::Model::train_step_sparse`]): only the rows of
    /// the batch's tokens are written in the embedding table's gradient; the others keep whatever
    /// they held, and nobody reads them.
    pub(crate) sparse: bool,
}

/// The segments of `layout`, each with the index of the layer that owns it.
fn layout_owners(layers: &[AnyLayer], layout: &ParamLayout) -> Vec<(usize, Range<usize>)> {
    let mut owners = Vec::new();
    for segment in layout.segments() {
        let range = segment.range();
        let owner = layers.iter().position(|l| match l {
            AnyLayer::Linear(l) => l.weight == range || l.bias.as_ref() == Some(&range),
            AnyLayer::Conv2d(c) => c.weight == range || c.bias == range,
            AnyLayer::BatchNorm(b) => b.weight == range || b.bias == range,
            AnyLayer::Embedding(e) => e.weight == range,
            AnyLayer::Recurrent(r) => r.layers.iter().any(|l| [&l.w_ih, &l.w_hh, &l.b_ih, &l.b_hh].contains(&&range)),
            _ => false,
        });
        owners.push((owner.expect("every segment has a layer"), range));
    }
    owners
}

/// Raw views of a training pass's buffers, shared by the blocks that run at once: each block
/// reads and writes only its own rows of the layer buffers and its own gradient buffer.
struct Workspace<'a, T> {
    acts: *mut T,
    dacts: *mut T,
    saved: *mut T,
    row_saved: *mut T,
    row_saved_offsets: &'a [usize],
    grad: *mut T,
    block_grads: *mut T,
    grad_input: Option<*mut T>,
    offsets: &'a [usize],
    n_params: usize,
}

// SAFETY: the pointers are used by blocks on disjoint rows (see `PassContext`).
unsafe impl<T: Send> Send for Workspace<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Workspace<'_, T> {}

/// Everything a block of a training pass reads.
struct PassContext<'a, T> {
    net: &'a Network,
    params: &'a [T],
    x: Input<'a, T>,
    rows: usize,
    targets: &'a [T],
    target_width: usize,
    grad_scale: T,
    step: TrainingStep,
    buffers: &'a [f32],
    work: &'a Workspace<'a, T>,
    state: Option<&'a [f32]>,
}

// SAFETY: `Input` holds shared slices; the workspace's pointers are Sync as documented there.
unsafe impl<T: Send + Sync> Sync for PassContext<'_, T> {}

impl<T: Real> PassContext<'_, T> {
    /// Rows `rows` of layer `layer`'s output (or of its gradient when `delta`).
    ///
    /// # Safety
    /// No other live slice may overlap it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn layer_rows(&self, layer: usize, rows: &Range<usize>, delta: bool) -> &mut [T] {
        let width = self.net.widths[layer + 1];
        let base = if delta { self.work.dacts } else { self.work.acts };
        // SAFETY: within the buffer laid out by `offsets`; exclusivity is the caller's.
        unsafe {
            std::slice::from_raw_parts_mut(base.add(self.work.offsets[layer] + rows.start * width), rows.len() * width)
        }
    }

    /// Layer `layer`'s input rows `rows`.
    ///
    /// # Safety
    /// No live mutable slice may overlap it.
    unsafe fn input(&self, layer: usize, rows: &Range<usize>) -> Input<'_, T> {
        if layer == 0 {
            self.x.rows_range(rows.clone(), self.net.widths[0])
        } else {
            // SAFETY: forwarded.
            Input::Dense(unsafe { self.layer_rows(layer - 1, rows, false) })
        }
    }

    /// The gradient buffer of block `b`: the caller's for block 0 (and for whole-batch layers).
    ///
    /// # Safety
    /// Only block `b` may use it while it runs.
    #[allow(clippy::mut_from_ref)]
    unsafe fn block_grad(&self, b: usize) -> &mut [T] {
        let n = self.work.n_params;
        // SAFETY: block b ≥ 1 owns the (b − 1)-th buffer of `block_grads`.
        unsafe {
            if b == 0 {
                std::slice::from_raw_parts_mut(self.work.grad, n)
            } else {
                std::slice::from_raw_parts_mut(self.work.block_grads.add((b - 1) * n), n)
            }
        }
    }

    /// What layer `layer` saves for backward: its rows `rows` of per-row values, or its
    /// per-batch values (whole-batch layers).
    ///
    /// # Safety
    /// No other live slice may overlap it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn saved(&self, layer: usize, rows: &Range<usize>) -> &mut [T] {
        let per_row = self.net.saved_per_row[layer];
        // SAFETY: each layer has its own range of the saved values, each row its own part of it.
        unsafe {
            if per_row > 0 {
                let start = self.work.row_saved_offsets[layer] + rows.start * per_row;
                std::slice::from_raw_parts_mut(self.work.row_saved.add(start), rows.len() * per_row)
            } else {
                let len = self.net.layers[layer].saved_per_batch();
                std::slice::from_raw_parts_mut(self.work.saved.add(self.net.saved_offsets[layer]), len)
            }
        }
    }

    fn pass(&self, layer: usize, first_row: usize) -> Pass<'_> {
        let pass = self.net.pass_info(Mode::Train, self.step.seed, self.step.step, layer, first_row, self.buffers);
        Pass { sparse: self.step.sparse, state: self.state, ..pass }
    }

    /// Forward through the layers of `stage` for rows `rows`.
    unsafe fn block_forward(&self, stage: Range<usize>, rows: Range<usize>, _block: usize) {
        for i in stage {
            // SAFETY: this block's rows of this layer's input and output.
            unsafe {
                let input = self.input(i, &rows);
                let output = self.layer_rows(i, &rows, false);
                self.net.layers[i].forward(
                    &self.pass(i, rows.start),
                    self.params,
                    input,
                    rows.len(),
                    output,
                    self.saved(i, &rows),
                );
            }
        }
    }

    /// The summed loss of rows `rows`, writing `grad_scale ×` its gradient with respect to the
    /// last layer's output.
    unsafe fn block_loss(&self, rows: Range<usize>) -> f64 {
        let last = self.net.layers.len() - 1;
        let cols = self.net.output_shape().last();
        // SAFETY: this block's rows.
        unsafe {
            let out = self.layer_rows(last, &rows, false);
            let delta = self.layer_rows(last, &rows, true);
            let targets = &self.targets[rows.start * self.target_width..rows.end * self.target_width];
            self.net.spec.loss.sum_grad(out, targets, cols, self.grad_scale, delta)
        }
    }

    /// Backward through the layers of `stage` for rows `rows`, into block `block`'s gradient.
    unsafe fn block_backward(&self, stage: Range<usize>, rows: Range<usize>, block: usize) {
        for i in stage.rev() {
            // SAFETY: this block's rows and gradient buffer.
            unsafe {
                let input = self.input(i, &rows);
                let output = self.layer_rows(i, &rows, false);
                let dy = self.layer_rows(i, &rows, true);
                let dx: Option<&mut [T]> = if i > 0 {
                    Some(self.layer_rows(i - 1, &rows, true))
                } else {
                    self.work.grad_input.map(|g| {
                        let w = self.net.widths[0];
                        std::slice::from_raw_parts_mut(g.add(rows.start * w), rows.len() * w)
                    })
                };
                let grad = self.block_grad(if self.net.layers[i].row_local(Mode::Train) { block } else { 0 });
                let _ = self.rows;
                self.net.layers[i].backward(
                    &self.pass(i, rows.start),
                    self.params,
                    input,
                    output,
                    self.saved(i, &rows),
                    rows.len(),
                    dy,
                    dx,
                    grad,
                );
            }
        }
    }
}
