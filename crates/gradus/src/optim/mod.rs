//! Gradient-descent update rules.
//!
//! Each optimizer is a small update rule with explicit state, in the style of optax and
//! `torch.optim`: its hyperparameters (a `*Config` with PyTorch's option names and defaults) are
//! validated once by `new`, after which [`Optimizer::step`] cannot fail. State (moment buffers,
//! step count) is kept apart from the configuration and can be saved with [`Optimizer::state`]
//! and restored with [`Optimizer::load_state`]; save → load → continue equals an uninterrupted
//! run bit for bit.
//!
//! All first-order optimizers work on a flat `f32` parameter buffer and a gradient buffer of the
//! same length (see [`crate::params`]), split into [`ParamGroups`] runs that may carry their own
//! learning-rate factor and weight decay. Scalar factors (bias corrections, step sizes) are
//! computed in `f64`, as PyTorch computes them in Python floats, and element-wise arithmetic is
//! `f32`. Long buffers are split across rayon's threads at fixed boundaries; since every update
//! is element-wise, the result is the same bit for bit whatever the thread count.
//!
//! # Sparse gradients
//!
//! A model whose gradient is row-sparse in some segments (a network's embedding table: a batch
//! touches only the rows of its tokens; see [`crate::model::Model::sparse_segments`]) trains on
//! the engine's sparse path when the optimizer's [`Optimizer::updates_sparse`] says its
//! [`Optimizer::step_sparse`] leaves untouched rows alone: the gradient of the untouched rows is
//! then never zeroed, read, clipped or saved, and a step costs in proportion to the rows touched.
//! Where the sparse update differs from the dense one:
//!
//! - `sgd` without momentum and weight decay, and `adagrad` without weight decay: not at all.
//!   The dense update leaves a row with a zero gradient unchanged, so updating only the touched
//!   rows gives the dense result bit for bit (bar two corner cases: a parameter of exactly −0
//!   under `maximize`, and Adagrad with `eps` 0 whose dense update turns an untouched parameter
//!   with a zero accumulator into NaN).
//! - Momentum (SGD) and weight decay (SGD, Adagrad) move every row, touched or not: those
//!   configurations keep the dense path, exactly the dense update. (PyTorch refuses weight decay
//!   with sparse gradients.)
//! - Adam and the rest of the family decay every row's moments and move every row that ever had
//!   a gradient: they keep the dense path. [`SparseAdam`] (`sparse_adam`, PyTorch's
//!   `SparseAdam`) is the lazy variant: only the touched rows' moments and parameters move, with
//!   the global step count in the bias correction; on dense segments it is Adam.
//! - Gradient accumulation (`accumulate > 1`) sums whole buffers and keeps the dense path.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, StateError};
use crate::params::{GroupRun, ParamGroups};

pub mod adadelta;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod adamw;
pub mod lbfgs;
pub mod lion;
pub mod nadam;
pub mod radam;
pub mod rmsprop;
pub mod sgd;
pub mod sparse_adam;

pub use adadelta::{Adadelta, AdadeltaConfig};
pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig};
pub use adamax::{Adamax, AdamaxConfig};
pub use adamw::{AdamW, AdamWConfig};
pub use lbfgs::{Lbfgs, LbfgsConfig};
pub use lion::{Lion, LionConfig};
pub use nadam::{NAdam, NAdamConfig};
pub use radam::{RAdam, RAdamConfig};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};
pub use sparse_adam::{SparseAdam, SparseAdamConfig};

/// Names of the first-order optimizers [`from_options`] builds.
pub const NAMES: [&str; 11] =
    ["sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam", "radam", "adamax", "lion", "sparse_adam"];

/// A gradient some of whose segments are row-sparse for this step (an embedding table of which a
/// batch saw a few tokens): what [`Optimizer::step_sparse`] is given besides the buffers.
///
/// Every element outside `dense` and outside the listed rows of `segments` is zero in the
/// gradient (the engine does not even read it).
#[derive(Debug, Clone, Copy)]
pub struct SparseGrad<'a> {
    /// The ranges of the buffer whose gradient is dense: every segment not listed in `segments`.
    pub dense: &'a [Range<usize>],
    /// The row-sparse segments, each with the rows this step touched.
    pub segments: &'a [SparseRows<'a>],
}

/// One row-sparse segment of a [`SparseGrad`]: the table at `range` of rows `row_len` long, of
/// which rows `rows` (sorted, without repeats) have a gradient.
#[derive(Debug, Clone)]
pub struct SparseRows<'a> {
    /// The segment's range in the flat buffer.
    pub range: Range<usize>,
    /// Values per row.
    pub row_len: usize,
    /// The touched rows, sorted and unique.
    pub rows: &'a [u32],
}

impl SparseGrad<'_> {
    /// Calls `f` with every range of the buffer that holds gradient: the dense ranges and the
    /// touched rows, in increasing order within each segment.
    pub fn for_each_range(&self, mut f: impl FnMut(Range<usize>)) {
        for range in self.dense {
            f(range.clone());
        }
        for segment in self.segments {
            for &row in segment.rows {
                let start = segment.range.start + row as usize * segment.row_len;
                f(start..start + segment.row_len);
            }
        }
    }
}

/// A first-order update rule over a flat parameter buffer.
pub trait Optimizer: Send {
    /// The optimizer's short name, as the command line spells it (`adam`, `sgd`, ...).
    fn name(&self) -> &'static str;

    /// The current base learning rate (a schedule sets it; groups scale it).
    fn lr(&self) -> f64;

    /// Sets the base learning rate, as a schedule does between steps.
    fn set_lr(&mut self, lr: f64);

    /// Gives segments their own learning-rate factor and weight decay. Call before the first step.
    fn set_groups(&mut self, groups: ParamGroups);

    /// Applies one update to `params` given `grads`.
    ///
    /// # Panics
    /// If `grads` and `params` differ in length, or differ from the length of earlier steps:
    /// both are programming errors, not data errors.
    fn step(&mut self, params: &mut [f32], grads: &[f32]);

    /// Whether [`Optimizer::step_sparse`] changes nothing outside the gradient's dense ranges and
    /// touched rows (so that the engine need not zero, read or save the other rows). False by
    /// default, and for every configuration whose dense update moves rows with a zero gradient
    /// (momentum, weight decay, Adam's moments): the engine then takes the dense path.
    fn updates_sparse(&self) -> bool {
        false
    }

    /// One update given a gradient that is zero outside `sparse`'s dense ranges and touched rows.
    /// The default is the dense [`Optimizer::step`], always correct; optimizers whose
    /// [`Optimizer::updates_sparse`] is true update only those ranges and rows, in time
    /// proportional to them.
    ///
    /// # Panics
    /// As [`Optimizer::step`].
    fn step_sparse(&mut self, params: &mut [f32], grads: &[f32], sparse: &SparseGrad<'_>) {
        let _ = sparse;
        self.step(params, grads);
    }

    /// How many steps have been taken.
    fn steps(&self) -> u64;

    /// A snapshot of the state (step count, learning rate and buffers).
    fn state(&self) -> OptimizerState;

    /// Restores a snapshot taken by [`Optimizer::state`] of an optimizer of the same kind.
    fn load_state(&mut self, state: &OptimizerState) -> Result<(), StateError>;

    /// How many buffers of the parameters' length the optimizer keeps (Adam's two moments, SGD's
    /// momentum buffer, ...), for the memory check before training
    /// ([`crate::train::Trainer::check_memory`]). The default, 2, is the most common count.
    fn state_buffers(&self) -> usize {
        2
    }
}

/// A serializable snapshot of an optimizer's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// The optimizer's name ([`Optimizer::name`]).
    pub optimizer: String,
    /// Steps taken.
    pub step: u64,
    /// The base learning rate when the snapshot was taken.
    pub lr: f64,
    /// Per-parameter buffers by name (`exp_avg`, `momentum_buffer`, ...).
    pub buffers: BTreeMap<String, Vec<f32>>,
    /// Scalar state by name (e.g. NAdam's running `mu_product`).
    pub scalars: BTreeMap<String, f64>,
}

impl OptimizerState {
    /// An empty snapshot for `optimizer`.
    pub fn new(optimizer: &str, step: u64, lr: f64) -> Self {
        Self { optimizer: optimizer.to_string(), step, lr, buffers: BTreeMap::new(), scalars: BTreeMap::new() }
    }

    /// Fails unless the snapshot was taken from an optimizer named `name`.
    pub fn expect_kind(&self, name: &str) -> Result<(), StateError> {
        if self.optimizer == name {
            Ok(())
        } else {
            Err(StateError::WrongKind { expected: name.to_string(), found: self.optimizer.clone() })
        }
    }

    /// The buffer `name`, which must exist and be empty (not yet allocated) or `len` long when
    /// `len` is given.
    pub fn buffer(&self, name: &str) -> Result<Vec<f32>, StateError> {
        self.buffers
            .get(name)
            .cloned()
            .ok_or_else(|| StateError::BadBuffer { name: name.to_string(), problem: "is missing".to_string() })
    }

    /// The scalar `name`, which must exist.
    pub fn scalar(&self, name: &str) -> Result<f64, StateError> {
        self.scalars
            .get(name)
            .copied()
            .ok_or_else(|| StateError::BadBuffer { name: name.to_string(), problem: "is missing".to_string() })
    }
}

/// Calls `f` for each run of `groups`, or once for the whole buffer of `len` when there are none.
pub(crate) fn for_each_run(groups: Option<&ParamGroups>, len: usize, mut f: impl FnMut(&GroupRun)) {
    match groups {
        Some(groups) => {
            assert_eq!(groups.len(), len, "parameter groups cover {} parameters, the buffer holds {len}", groups.len());
            groups.runs().iter().for_each(&mut f);
        }
        None => f(&GroupRun { range: 0..len, lr_scale: 1.0, weight_decay: None }),
    }
}

/// Calls `f(run, piece)` for every piece of `sparse`'s ranges (see [`SparseGrad::for_each_range`])
/// cut along the runs of `groups` (the whole buffer of `len` is one run when there are none).
pub(crate) fn for_each_sparse_piece(
    groups: Option<&ParamGroups>,
    len: usize,
    sparse: &SparseGrad<'_>,
    mut f: impl FnMut(&GroupRun, Range<usize>),
) {
    let single = [GroupRun { range: 0..len, lr_scale: 1.0, weight_decay: None }];
    let runs = match groups {
        Some(groups) => {
            assert_eq!(groups.len(), len, "parameter groups cover {} parameters, the buffer holds {len}", groups.len());
            groups.runs()
        }
        None => &single[..],
    };
    sparse.for_each_range(|range| {
        // Runs are sorted and few: find the first that ends after the range starts.
        let first = runs.partition_point(|run| run.range.end <= range.start);
        for run in &runs[first..] {
            if run.range.start >= range.end {
                break;
            }
            let piece = range.start.max(run.range.start)..range.end.min(run.range.end);
            if !piece.is_empty() {
                f(run, piece);
            }
        }
    });
}

/// The pieces of [`for_each_sparse_piece`], each with `argument(run)`, sorted by start (as
/// [`crate::parallel::for_each_piece`] takes them): the dense ranges merged among the rows.
pub(crate) fn sparse_pieces<A>(
    groups: Option<&ParamGroups>,
    len: usize,
    sparse: &SparseGrad<'_>,
    argument: impl Fn(&GroupRun) -> A,
) -> Vec<(Range<usize>, A)> {
    let mut pieces: Vec<(Range<usize>, A)> = Vec::new();
    for_each_sparse_piece(groups, len, sparse, |run, piece| pieces.push((piece, argument(run))));
    if !pieces.is_sorted_by_key(|(piece, _)| piece.start) {
        // A stable sort: runs of sorted pieces (the dense ranges, each segment's rows) merge.
        pieces.sort_by_key(|(piece, _)| piece.start);
    }
    pieces
}

/// Whether no run of `groups` overrides the weight decay with a non-zero one.
pub(crate) fn no_group_weight_decay(groups: Option<&ParamGroups>) -> bool {
    groups.is_none_or(|groups| groups.runs().iter().all(|run| run.weight_decay.is_none_or(|wd| wd == 0.0)))
}

/// Makes sure a state buffer is allocated for `len` parameters (filled with `fill` on first use).
pub(crate) fn ensure_buffer(buffer: &mut Vec<f32>, len: usize, fill: f32) {
    if buffer.is_empty() && len > 0 {
        *buffer = crate::buffer::filled(len, fill);
    }
    assert_eq!(buffer.len(), len, "optimizer state holds {} parameters, the step passed {len}", buffer.len());
}

/// Checks that `params` and `grads` agree in length.
pub(crate) fn check_lengths(params: &[f32], grads: &[f32]) {
    assert_eq!(params.len(), grads.len(), "parameter and gradient buffers differ in length");
}

/// Builds an optimizer from its name and PyTorch-style options (a JSON object; absent options
/// take PyTorch's defaults). This is how reference cases, configuration files and the command
/// line name optimizers.
pub fn from_options(name: &str, options: &serde_json::Value) -> Result<Box<dyn Optimizer>, ConfigError> {
    fn parse<T: serde::de::DeserializeOwned>(name: &str, options: &serde_json::Value) -> Result<T, ConfigError> {
        serde_json::from_value(options.clone())
            .map_err(|e| ConfigError::new(format!("{name} options"), e, "options named as in torch.optim"))
    }
    Ok(match name {
        "adadelta" => Box::new(adadelta::Adadelta::new(parse(name, options)?)?),
        "adagrad" => Box::new(adagrad::Adagrad::new(parse(name, options)?)?),
        "adam" => Box::new(adam::Adam::new(parse(name, options)?)?),
        "adamax" => Box::new(adamax::Adamax::new(parse(name, options)?)?),
        "adamw" => Box::new(adamw::AdamW::new(parse(name, options)?)?),
        "lion" => Box::new(lion::Lion::new(parse(name, options)?)?),
        "nadam" => Box::new(nadam::NAdam::new(parse(name, options)?)?),
        "radam" => Box::new(radam::RAdam::new(parse(name, options)?)?),
        "rmsprop" => Box::new(rmsprop::RmsProp::new(parse(name, options)?)?),
        "sgd" => Box::new(Sgd::new(parse(name, options)?)?),
        "sparse_adam" => Box::new(SparseAdam::new(parse(name, options)?)?),
        _ => return Err(ConfigError::new("optimizer", name, "one of the optimizers gradus knows")),
    })
}
