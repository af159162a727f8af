//! The interface between models and the training engine.
//!
//! A model owns the *shape* of its parameters (a [`ParamLayout`] of named segments of one flat
//! buffer) and computes the mean loss of a batch of rows and its gradient. The parameter values
//! themselves live in a plain `Vec<f32>` that the engine and the optimizer update, so any model
//! trains with any optimizer, schedule and gradient transform.

use std::ops::Range;

use thiserror::Error;

use crate::loss::{Loss, TargetError};
use crate::params::ParamLayout;
use crate::train::metrics::{accuracy, argmax_rows, regression_metrics, Metrics, MetricsError, Task};

/// Parameters or rows that do not fit a model, found before anything is computed: the library's
/// answer to data of the wrong shape is this error, never a panic or a meaningless number.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum RowsError {
    /// A parameter buffer of the wrong length.
    #[error("the parameter buffer holds {found} values, the model has {expected} parameters")]
    Params {
        /// Values in the buffer.
        found: usize,
        /// Parameters of the model.
        expected: usize,
    },
    /// Rows whose features and targets do not make `rows × cols`.
    #[error("{what}: {values} feature values and {targets} targets do not make {rows} rows of {cols} columns")]
    Shape {
        /// Which rows (`the training rows`, `the validation rows`, ...).
        what: String,
        /// Feature values given.
        values: usize,
        /// Targets given.
        targets: usize,
        /// Rows claimed.
        rows: usize,
        /// Columns claimed.
        cols: usize,
    },
    /// Rows of another width than the model's inputs.
    #[error("{what}: {found} columns, the model takes {expected} inputs")]
    Width {
        /// Which rows.
        what: String,
        /// Columns of the rows.
        found: usize,
        /// Inputs of the model.
        expected: usize,
    },
    /// Targets the model's loss cannot take (a class index outside its classes, NaN, ...).
    #[error("{what}: {source}")]
    Targets {
        /// Which rows.
        what: String,
        /// What is wrong with them.
        source: TargetError,
    },
    /// Row indices whose offsets do not make one run per row.
    #[error("{what}: {offsets} offsets into {ids} indices do not make {rows} rows (one more offset than rows, non-decreasing, within the indices)")]
    Ids {
        /// Which rows.
        what: String,
        /// Offsets given.
        offsets: usize,
        /// Rows claimed.
        rows: usize,
        /// Indices given.
        ids: usize,
    },
    /// Rows of token indices the model cannot read (an index beyond its vocabulary, a row of
    /// the wrong length).
    #[error("{what}: {message}")]
    Tokens {
        /// Which rows.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The outputs of the rows would not fit in memory.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// Metrics that cannot be measured on the outputs.
    #[error("{what}: {source}")]
    Metrics {
        /// Which rows.
        what: String,
        /// What is wrong.
        source: MetricsError,
    },
}

/// Indices that make up each row, as compressed rows: row `r` holds
/// `ids[offsets[r]..offsets[r + 1]]` (`offsets` has one more entry than there are rows, and may
/// start anywhere in `ids`). The rows of models that read indices rather than values: the (user,
/// item) pair of a rating, the tokens of a text.
#[derive(Debug, Clone, Copy)]
pub struct RowIds<'a> {
    /// The indices of every row, one row after the other.
    pub ids: &'a [u32],
    /// Where each row's indices start, and where the last one ends.
    pub offsets: &'a [usize],
}

impl<'a> RowIds<'a> {
    /// Row `r`'s indices.
    ///
    /// # Panics
    /// If `r` is not a row.
    pub fn row(&self, r: usize) -> &'a [u32] {
        &self.ids[self.offsets[r]..self.offsets[r + 1]]
    }
}

/// A segment of a model's parameters whose gradient is row-sparse ([`Model::sparse_segments`]):
/// a table of rows `row_len` long at `range` of the flat buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseSegment {
    /// The table's range in the flat parameter buffer.
    pub range: Range<usize>,
    /// Values per row (the embedding dimension).
    pub row_len: usize,
}

/// What [`Model::epoch_pass`] is given, and what it owes the engine besides its metrics.
#[derive(Debug)]
pub struct EpochPass<'a> {
    /// The parameters to train.
    pub params: &'a mut [f32],
    /// Where the pass leaves the parameters as they were before it (the engine's rollback point
    /// should the epoch diverge): the pass may fill it while it trains.
    pub before: &'a mut [f32],
    /// The training rows.
    pub data: Rows<'a>,
    /// The run's seed.
    pub seed: u64,
    /// The epoch's number, from 1.
    pub epoch: usize,
    /// True when this pass continues the model's previous one in the same run: `params` are
    /// exactly as that pass left them and `data` are the same rows, so that what the model
    /// derived from them then still holds.
    pub continues: bool,
}

/// A borrowed view of rows: features `x` (`rows × cols`, row-major) and one target per row (a
/// value for regression or ratings, 0/1 for binary, a class index for multiclass), and for models
/// that read indices, each row's indices ([`RowIds`]; `cols` is then 0 and `x` empty).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// Features, row-major.
    pub x: &'a [f32],
    /// Targets, one per row.
    pub y: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of feature columns.
    pub cols: usize,
    /// Each row's indices, for models that read indices.
    pub ids: Option<RowIds<'a>>,
}

impl<'a> Rows<'a> {
    /// A view of `x` (`y.len()` rows of `cols` features) and `y`.
    ///
    /// # Panics
    /// If `x.len() != y.len() * cols`.
    pub fn new(x: &'a [f32], y: &'a [f32], cols: usize) -> Self {
        assert_eq!(x.len(), y.len() * cols, "feature matrix does not hold {} rows of {cols} columns", y.len());
        Self { x, y, rows: y.len(), cols, ids: None }
    }

    /// Rows of indices: row `r` holds `ids[offsets[r]..offsets[r + 1]]` and target `y[r]`.
    pub fn with_ids(ids: &'a [u32], offsets: &'a [usize], y: &'a [f32]) -> Self {
        Self { x: &[], y, rows: y.len(), cols: 0, ids: Some(RowIds { ids, offsets }) }
    }

    /// Rows `range` of these rows.
    ///
    /// # Panics
    /// If `range` is not within the rows.
    pub fn slice(&self, range: Range<usize>) -> Self {
        Self {
            x: &self.x[range.start * self.cols..range.end * self.cols],
            y: &self.y[range.clone()],
            rows: range.len(),
            cols: self.cols,
            ids: self.ids.map(|ids| RowIds { ids: ids.ids, offsets: &ids.offsets[range.start..=range.end] }),
        }
    }

    /// A view of `x` (`y.len()` rows of `cols` features) and `y`, or an error naming `what` when
    /// `x` does not hold that many values.
    pub fn try_new(x: &'a [f32], y: &'a [f32], cols: usize, what: &str) -> Result<Self, RowsError> {
        let rows = Self { x, y, rows: y.len(), cols, ids: None };
        rows.check(what)?;
        Ok(rows)
    }

    /// Checks that `x` holds `rows × cols` values and `y` one target per row (the fields are
    /// public, so a view may have been built by hand); an error names `what`.
    pub fn check(&self, what: &str) -> Result<(), RowsError> {
        if self.rows.checked_mul(self.cols) != Some(self.x.len()) || self.y.len() != self.rows {
            return Err(RowsError::Shape {
                what: what.to_string(),
                values: self.x.len(),
                targets: self.y.len(),
                rows: self.rows,
                cols: self.cols,
            });
        }
        if let Some(ids) = &self.ids {
            let offsets = ids.offsets;
            if offsets.len() != self.rows + 1
                || offsets.windows(2).any(|w| w[0] > w[1])
                || offsets.last().is_some_and(|&end| end > ids.ids.len())
            {
                return Err(RowsError::Ids {
                    what: what.to_string(),
                    offsets: offsets.len(),
                    rows: self.rows,
                    ids: ids.ids.len(),
                });
            }
        }
        Ok(())
    }

    /// Copies the rows at `indices` into `x_out`/`y_out` (cleared first), making a contiguous batch.
    ///
    /// # Panics
    /// If an index is not below `rows` (indices come from the engine's shuffles, not from data).
    pub fn gather(&self, indices: &[usize], x_out: &mut Vec<f32>, y_out: &mut Vec<f32>) {
        x_out.clear();
        y_out.clear();
        for &i in indices {
            x_out.extend_from_slice(&self.x[i * self.cols..(i + 1) * self.cols]);
            y_out.push(self.y[i]);
        }
    }
}

/// A differentiable model over dense rows.
///
/// # Panics
/// The passes ([`Model::loss_and_gradient`], [`Model::forward`], [`Model::train_step`], ...)
/// run in the training loop and do not check their buffers: they panic when `params`, `grad`,
/// `x`, `y` or `out` do not have the lengths the model and `rows` call for, and give a NaN loss
/// for targets the loss cannot take. Data from outside is checked once, before any pass, with
/// [`check_rows`] (which [`evaluate`], [`crate::train::Trainer::fit`] and the other entry points
/// of the library run), so that it is an error rather than a panic.
pub trait Model: Send + Sync {
    /// What the model predicts.
    fn task(&self) -> Task;

    /// The layout of the model's flat parameter buffer.
    fn layout(&self) -> &ParamLayout;

    /// Number of input features.
    fn inputs(&self) -> usize;

    /// Number of raw outputs per row (1 for regression and binary, `k` for `k` classes).
    fn outputs(&self) -> usize;

    /// Initial parameters, reproducible from `seed`.
    fn init_params(&self, seed: u64) -> Vec<f32>;

    /// Checks that `targets` fit `rows` rows of this model's outputs before any pass runs on
    /// them: their number, and values the loss takes (finite; class indices in `0..outputs()`
    /// for a multiclass model). The engine runs it once per data set ([`check_rows`]). The
    /// default checks by task; models with a [`Loss`] check with [`Loss::check_targets`].
    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), TargetError> {
        let loss = match self.task() {
            Task::Multiclass => Loss::CrossEntropy { label_smoothing: 0.0 },
            _ => Loss::Mse,
        };
        loss.check_targets(targets, rows, self.outputs())
    }

    /// `f32` values of working memory a training step on a batch of `rows` rows takes besides the
    /// buffers of the parameters' length that the engine keeps (activations, per-block
    /// gradients, a gathered batch), for the memory check before training; `None` when the count
    /// overflows. The default counts one gathered batch and its outputs.
    fn working_memory(&self, rows: usize) -> Option<usize> {
        rows.checked_mul(self.inputs().checked_add(self.outputs())?.checked_add(1)?)
    }

    /// The mean loss over the `rows` rows of `x` (row-major) against `y`, including any penalty, and
    /// its gradient with respect to `params`, written into `grad` (overwritten).
    ///
    /// # Panics
    /// When a buffer has the wrong length (see the trait's documentation).
    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64;

    /// [`Model::loss_and_gradient`] over the rows of `data` at `indices`, in that order (a
    /// shuffled mini-batch). The default copies them into a contiguous batch first; models that
    /// can read scattered rows override it to skip the copy.
    fn loss_and_gradient_rows(&self, params: &[f32], data: Rows<'_>, indices: &[usize], grad: &mut [f32]) -> f64 {
        thread_local! {
            static BATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        BATCH.with(|batch| match batch.try_borrow_mut() {
            Ok(mut batch) => {
                let (x, y) = &mut *batch;
                data.gather(indices, x, y);
                self.loss_and_gradient(params, x, y, indices.len(), grad)
            }
            Err(_) => {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                data.gather(indices, &mut x, &mut y);
                self.loss_and_gradient(params, &x, &y, indices.len(), grad)
            }
        })
    }

    /// One training pass of the engine: the mean loss over the rows of `data` at `indices` (every
    /// row, in order, when `None`) and its gradient, written into `grad`. `seed` is the run's and
    /// `step` the number of updates made before this one, so that stochastic layers (dropout) draw
    /// masks reproducible from the seed; layers with running statistics (batch normalization)
    /// update them. For every other model this is [`Model::loss_and_gradient`] (or
    /// [`Model::loss_and_gradient_rows`]), which the default calls.
    fn train_step(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
    ) -> f64 {
        let _ = (seed, step);
        match indices {
            None => self.loss_and_gradient(params, data.x, data.y, data.rows, grad),
            Some(indices) => self.loss_and_gradient_rows(params, data, indices, grad),
        }
    }

    /// The segments of the parameters whose gradient is row-sparse on a training step (an
    /// embedding table, of which a batch touches the rows of its tokens), for the engine's sparse
    /// path ([`Model::train_step_sparse`]). Empty by default: every gradient is dense.
    fn sparse_segments(&self) -> Vec<SparseSegment> {
        Vec::new()
    }

    /// [`Model::train_step`] on the engine's sparse path. The pass writes the dense segments as
    /// `train_step` does and, in each segment of [`Model::sparse_segments`], only the rows it
    /// touches, which it lists, sorted and without repeats, in `touched` (one list per sparse
    /// segment, cleared first): those rows hold `train_step`'s gradient bit for bit, and the
    /// gradient of every other row is zero without being written. The other rows of `grad` hold
    /// whatever the previous steps left there, and the engine reads none of them.
    ///
    /// The default runs `train_step` and lists every row (correct, and as slow as the dense path).
    #[allow(clippy::too_many_arguments)]
    fn train_step_sparse(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
        touched: &mut [Vec<u32>],
    ) -> f64 {
        let loss = self.train_step(params, data, indices, seed, step, grad);
        for (rows, segment) in touched.iter_mut().zip(self.sparse_segments()) {
            rows.clear();
            rows.extend(0..(segment.range.len() / segment.row_len.max(1)) as u32);
        }
        loss
    }

    /// State the model keeps beside its parameters, which no optimizer updates (batch
    /// normalization's running statistics): saved with checkpoints and models. Empty by default.
    fn buffers(&self) -> Vec<f32> {
        Vec::new()
    }

    /// Restores what [`Model::buffers`] returned; fails when it does not fit the model.
    fn set_buffers(&self, buffers: &[f32]) -> Result<(), String> {
        if buffers.is_empty() {
            Ok(())
        } else {
            Err(format!("{} running statistics for a model that keeps none", buffers.len()))
        }
    }

    /// Raw outputs for the `rows` rows of `x`: values for regression, logits for classification
    /// (`rows × outputs()`), written into `out`.
    ///
    /// # Panics
    /// When a buffer has the wrong length (see the trait's documentation).
    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]);

    /// Raw outputs for `data`: [`Model::forward`] of its features by default; models that read
    /// indices ([`Rows::ids`]) override it.
    fn forward_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) {
        self.forward(params, data.x, data.rows, out);
    }

    /// [`Model::forward_and_loss`] of `data` (see [`Model::forward_rows`]).
    fn forward_and_loss_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) -> f64 {
        self.forward_and_loss(params, data.x, data.y, data.rows, out)
    }

    /// An epoch the model trains by a pass of its own instead of the engine's loop of updates
    /// (matrix factorization's per-rating SGD), when it has one: updates `pass.params` over the
    /// rows of `pass.data` in an order drawn from `pass.seed` and `pass.epoch` and returns the
    /// epoch's training metrics, `loss` among them, each row measured before its update (see
    /// [`EpochPass`] for what else a pass owes the engine); that `loss` is not finite when any
    /// parameter is not (the engine trusts it rather than reading every parameter again).
    /// `None` (the default): the model has
    /// no pass of its own, `params` and `before` are untouched, and the engine runs its loop.
    fn epoch_pass(&self, pass: EpochPass<'_>) -> Option<Metrics> {
        let _ = pass;
        None
    }

    /// The metrics of `data` measured by the model itself, for models whose evaluation is not a
    /// forward pass per row (a language model reads its rows in order, carrying its state, and
    /// would not fit the outputs of every row in memory). `None` (the default): [`evaluate`]
    /// runs [`Model::forward_and_loss_rows`] in blocks.
    fn evaluate_rows(&self, params: &[f32], data: Rows<'_>) -> Option<Result<Metrics, RowsError>> {
        let _ = (params, data);
        None
    }

    /// Values [`evaluate`] holds at once for `rows` rows (by default every row's outputs;
    /// `None` when that overflows).
    fn evaluation_memory(&self, rows: usize) -> Option<usize> {
        rows.checked_mul(self.outputs())
    }

    /// Checks what [`check_rows`] cannot know of the rows: for models that read token indices,
    /// that every index is within the model's vocabulary and every row as long as the model
    /// reads. An error names `what`.
    fn check_data(&self, data: &Rows<'_>, what: &str) -> Result<(), RowsError> {
        let _ = (data, what);
        Ok(())
    }

    /// The mean loss alone (by default via [`Model::loss_and_gradient`]).
    fn loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize) -> f64 {
        let mut grad = vec![0.0; params.len()];
        self.loss_and_gradient(params, x, y, rows, &mut grad)
    }

    /// Raw outputs (as [`Model::forward`]) and the mean loss (as [`Model::loss`]) in one forward pass.
    /// The default runs both methods; models override it to reuse the outputs for the loss, which
    /// halves the cost of [`evaluate`].
    fn forward_and_loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, out: &mut [f32]) -> f64 {
        self.forward(params, x, rows, out);
        self.loss(params, x, y, rows)
    }

    /// The parameter segments whose gradient norms are tracked to detect vanishing or exploding
    /// gradients, with a human name each (by default every weight: each segment whose name's
    /// last part starts with `weight`, as `fc1.weight` and a recurrent layer's `lstm1.weight_hh_l0`).
    fn diagnostic_segments(&self) -> Vec<(String, Range<usize>)> {
        self.layout()
            .segments()
            .iter()
            .filter(|s| s.name.rsplit('.').next().is_some_and(|last| last.starts_with("weight")) && s.len > 0)
            .map(|s| (s.name.clone(), s.range()))
            .collect()
    }
}

/// Checks that `params` and `data` fit `model` before anything runs on them: the parameter
/// count, the shape of the rows (see [`Rows::check`]), their width against the model's inputs
/// (rows of indices have none), and the targets ([`Model::check_targets`]). An error names `what` (`the training rows`, ...).
pub fn check_rows(model: &dyn Model, params: &[f32], data: Rows<'_>, what: &str) -> Result<(), RowsError> {
    let expected = model.layout().len();
    if params.len() != expected {
        return Err(RowsError::Params { found: params.len(), expected });
    }
    data.check(what)?;
    // Rows of indices have no feature columns: the model reads their indices.
    if data.ids.is_none() && data.cols != model.inputs() {
        return Err(RowsError::Width { what: what.to_string(), found: data.cols, expected: model.inputs() });
    }
    model.check_data(&data, what)?;
    model.check_targets(data.y, data.rows).map_err(|source| RowsError::Targets { what: what.to_string(), source })
}

/// Loss and task metrics of `model` with `params` on `data`: `loss` plus `accuracy` for
/// classification, or `rmse`, `mae` and `r2` for regression. No rows give no metrics.
///
/// Parameters or rows that do not fit the model are an error ([`check_rows`]), as are targets
/// the metrics cannot be measured on.
pub fn evaluate(model: &dyn Model, params: &[f32], data: Rows<'_>) -> Result<Metrics, RowsError> {
    check_rows(model, params, data, "the rows")?;
    evaluate_checked(model, params, data)
}

/// [`evaluate`] of rows already checked with [`check_rows`] (the engine checks its data once).
pub(crate) fn evaluate_checked(model: &dyn Model, params: &[f32], data: Rows<'_>) -> Result<Metrics, RowsError> {
    let mut metrics = Metrics::new();
    if data.rows == 0 {
        return Ok(metrics);
    }
    if let Some(measured) = model.evaluate_rows(params, data) {
        return measured;
    }
    // Evaluate in blocks so memory stays bounded on large sets.
    const BLOCK: usize = 4096;
    let outputs = model.outputs();
    let mut out = output_buffer(data.rows, outputs)?;
    let mut loss_sum = 0.0;
    for start in (0..data.rows).step_by(BLOCK) {
        let end = (start + BLOCK).min(data.rows);
        let block_out = &mut out[start * outputs..end * outputs];
        loss_sum += model.forward_and_loss_rows(params, data.slice(start..end), block_out) * (end - start) as f64;
    }
    metrics.insert("loss".into(), loss_sum / data.rows as f64);
    let measured = match model.task() {
        Task::Regression | Task::Ratings => regression_metrics(&out, data.y).map(|m| metrics.extend(m)),
        Task::Binary | Task::Multiclass => {
            argmax_rows(&out, outputs).and_then(|classes| accuracy(&classes, data.y)).map(|a| {
                metrics.insert("accuracy".into(), a);
            })
        }
    };
    measured.map_err(|source| RowsError::Metrics { what: "the rows".to_string(), source })?;
    Ok(metrics)
}

/// A zeroed buffer for the outputs of `rows` rows of `outputs` values, reserved fallibly (its
/// size comes from the data and the model).
pub(crate) fn output_buffer(rows: usize, outputs: usize) -> Result<Vec<f32>, crate::memory::MemoryError> {
    let len = rows.checked_mul(outputs).ok_or_else(|| crate::memory::MemoryError {
        what: format!("the outputs of {rows} rows"),
        purpose: format!("{outputs} values per row"),
        needed: None,
        available: crate::memory::available(),
    })?;
    crate::memory::try_filled(len, 0.0, &format!("the outputs of {rows} rows"))
}

/// The task a loss trains for.
pub(crate) fn task_of(loss: crate::loss::Loss) -> Task {
    use crate::loss::Loss;
    match loss {
        Loss::BceWithLogits | Loss::Hinge => Task::Binary,
        Loss::CrossEntropy { .. } => Task::Multiclass,
        Loss::Mse | Loss::L1 | Loss::Huber { .. } => Task::Regression,
    }
}

impl Model for crate::nn::Network {
    fn task(&self) -> Task {
        task_of(self.loss())
    }

    fn layout(&self) -> &ParamLayout {
        crate::nn::Network::layout(self)
    }

    fn inputs(&self) -> usize {
        // A network over token indices reads its rows' indices ([`Rows::ids`]), no feature columns.
        if self.takes_tokens() {
            0
        } else {
            self.input_size()
        }
    }

    fn outputs(&self) -> usize {
        self.output_size()
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        crate::nn::Network::init_params(self, seed)
    }

    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), TargetError> {
        // Outputs of shape [time, features] are `time` rows of the loss per input row.
        let cols = self.output_shape().last();
        let per_row = self.output_size().checked_div(cols).unwrap_or(1);
        self.loss().check_targets(targets, rows.saturating_mul(per_row), cols)
    }

    fn working_memory(&self, rows: usize) -> Option<usize> {
        network_working_memory(self, rows)
    }

    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        crate::nn::Network::loss_and_gradient(self, params, x, rows, y, grad)
    }

    fn loss_and_gradient_rows(&self, params: &[f32], data: Rows<'_>, indices: &[usize], grad: &mut [f32]) -> f64 {
        let step = crate::nn::TrainingStep { seed: 0, step: 0, update_buffers: false, sparse: false };
        network_rows(self, params, data, Some(indices), grad, step)
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
        network_rows(
            self,
            params,
            data,
            indices,
            grad,
            crate::nn::TrainingStep { seed, step, update_buffers: true, sparse: false },
        )
    }

    fn sparse_segments(&self) -> Vec<SparseSegment> {
        self.embedding_table().map(|(range, row_len)| SparseSegment { range, row_len }).into_iter().collect()
    }

    fn train_step_sparse(
        &self,
        params: &[f32],
        data: Rows<'_>,
        indices: Option<&[usize]>,
        seed: u64,
        step: u64,
        grad: &mut [f32],
        touched: &mut [Vec<u32>],
    ) -> f64 {
        let step = crate::nn::TrainingStep { seed, step, update_buffers: true, sparse: true };
        let loss = network_rows(self, params, data, indices, grad, step);
        if let ([rows], Some(ids), Some(segment)) = (touched, data.ids, self.sparse_segments().first()) {
            let table_rows = segment.range.len() / segment.row_len.max(1);
            match indices {
                None => distinct_sorted(&[&ids.ids[ids.offsets[0]..ids.offsets[data.rows]]], table_rows, rows),
                Some(indices) => {
                    let bags: Vec<&[u32]> = indices.iter().map(|&i| ids.row(i)).collect();
                    distinct_sorted(&bags, table_rows, rows);
                }
            }
        }
        loss
    }

    fn forward_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) {
        match data.ids {
            Some(ids) if self.takes_tokens() => self.predict_tokens(params, ids.ids, ids.offsets, out),
            _ => self.forward(params, data.x, data.rows, out),
        }
    }

    fn forward_and_loss_rows(&self, params: &[f32], data: Rows<'_>, out: &mut [f32]) -> f64 {
        match data.ids {
            Some(ids) if self.takes_tokens() => {
                self.predict_tokens(params, ids.ids, ids.offsets, out);
                let mut grad_out = vec![0.0f32; out.len()];
                self.loss().value_grad(out, data.y, self.output_shape().last(), &mut grad_out)
            }
            _ => self.forward_and_loss(params, data.x, data.y, data.rows, out),
        }
    }

    fn check_data(&self, data: &Rows<'_>, what: &str) -> Result<(), RowsError> {
        match data.ids {
            Some(ids) if self.takes_tokens() => self
                .check_tokens(ids.ids, ids.offsets)
                .map_err(|message| RowsError::Tokens { what: what.to_string(), message }),
            None if self.takes_tokens() => Err(RowsError::Tokens {
                what: what.to_string(),
                message: "the network reads rows of token indices, the rows hold features".into(),
            }),
            _ => Ok(()),
        }
    }

    fn buffers(&self) -> Vec<f32> {
        crate::nn::Network::buffers(self)
    }

    fn set_buffers(&self, buffers: &[f32]) -> Result<(), String> {
        crate::nn::Network::set_buffers(self, buffers)
    }

    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        self.predict(params, x, rows, out);
    }

    fn forward_and_loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, out: &mut [f32]) -> f64 {
        self.predict(params, x, rows, out);
        let mut grad_out = vec![0.0f32; out.len()];
        self.loss().value_grad(out, y, self.output_shape().last(), &mut grad_out)
    }
}

/// A network's training pass over rows of `data` at `indices` (all when `None`).
fn network_rows(
    net: &crate::nn::Network,
    params: &[f32],
    data: Rows<'_>,
    indices: Option<&[usize]>,
    grad: &mut [f32],
    step: crate::nn::TrainingStep,
) -> f64 {
    if let (Some(ids), true) = (data.ids, net.takes_tokens()) {
        // Rows of token indices: the batch's rows copied out as compressed rows of their own.
        thread_local! {
            static BATCH: std::cell::RefCell<(Vec<u32>, Vec<usize>, Vec<f32>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
        }
        let mut run = |batch: &mut (Vec<u32>, Vec<usize>, Vec<f32>)| {
            let (batch_ids, offsets, targets) = batch;
            let (ids_in, offsets_in, targets_in): (&[u32], &[usize], &[f32]) = match indices {
                None => (ids.ids, ids.offsets, data.y),
                Some(indices) => {
                    batch_ids.clear();
                    offsets.clear();
                    targets.clear();
                    offsets.push(0);
                    for &i in indices {
                        batch_ids.extend_from_slice(ids.row(i));
                        offsets.push(batch_ids.len());
                        targets.push(data.y[i]);
                    }
                    (batch_ids, offsets, targets)
                }
            };
            net.train_tokens(params, ids_in, offsets_in, targets_in, grad, step)
        };
        return BATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut batch) => run(&mut batch),
            Err(_) => run(&mut Default::default()),
        });
    }
    assert_eq!(data.cols, net.input_size(), "input width");
    match indices {
        None => net.train_rows(params, data.x, None, data.y, grad, step),
        Some(indices) => {
            thread_local! {
                static TARGETS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            let mut run = |targets: &mut Vec<f32>| {
                targets.clear();
                targets.extend(indices.iter().map(|&i| data.y[i]));
                net.train_rows(params, data.x, Some(indices), targets, grad, step)
            };
            TARGETS.with(|cell| match cell.try_borrow_mut() {
                Ok(mut targets) => run(&mut targets),
                Err(_) => run(&mut Vec::new()),
            })
        }
    }
}

/// [`Model::working_memory`] of a network: each thread's block of activations and their
/// gradients (three buffers as wide as the widest layer, plus every layer's outputs), and one
/// gradient buffer per block beyond the first.
pub(crate) fn network_working_memory(net: &crate::nn::Network, rows: usize) -> Option<usize> {
    let summary = net.summary();
    let widths = summary.iter().map(|layer| layer.output.checked_len());
    let (mut sum, mut widest) = (net.input_size(), net.input_size());
    for width in widths {
        let width = width?;
        sum = sum.checked_add(width)?;
        widest = widest.max(width);
    }
    let block = net.block_rows().min(rows.max(1));
    let blocks = rows.div_ceil(net.block_rows()).max(1);
    let threads = rayon::current_num_threads().clamp(1, blocks);
    let per_block = block.checked_mul(sum.checked_add(widest.checked_mul(3)?)?)?;
    per_block.checked_mul(threads)?.checked_add((blocks - 1).checked_mul(net.num_params())?)
}

/// The distinct ids of `lists` (each below `limit`), in increasing order, into `out`: by a bit
/// per id when the lists are long against the id range (a pass over `limit / 64` words instead
/// of a sort), by sorting otherwise.
fn distinct_sorted(lists: &[&[u32]], limit: usize, out: &mut Vec<u32>) {
    out.clear();
    let count: usize = lists.iter().map(|l| l.len()).sum();
    if count * 64 < limit {
        lists.iter().for_each(|l| out.extend_from_slice(l));
        out.sort_unstable();
        out.dedup();
        return;
    }
    let mut bits = vec![0u64; limit.div_ceil(64)];
    for &id in lists.iter().flat_map(|l| l.iter()) {
        crate::nn::mark(&mut bits, id);
    }
    for (word_index, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            out.push((word_index * 64) as u32 + word.trailing_zeros());
            word &= word - 1;
        }
    }
}
