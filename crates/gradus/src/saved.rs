//! Saved models: one versioned JSON file holding everything needed to predict on new data.
//!
//! A [`SavedModel`] bundles the model's description, its parameters and the preparation fitted on
//! the training rows (feature standardization, the regression target's scale, the class labels),
//! so that `load → predict` on raw data gives exactly what the trained model gave.
//!
//! # File format, version 1
//!
//! One JSON object (numbers are written so that `f32` values read back bit for bit):
//!
//! ```text
//! {
//!   "format": "gradus-model",            always this string
//!   "version": 1,                        the format version
//!   "task": "multiclass",                regression | binary | multiclass | ratings
//!   "model": {                           the model's shape, one of:
//!     "kind": "mlp", "sizes": [64, 128, 10], "activations": ["relu", "identity"],
//!     "loss": {"loss": "cross_entropy", "label_smoothing": 0.0}
//!   } | {
//!     "kind": "linear", "linear": "softmax", "inputs": 64, "classes": 10,
//!     "penalty": {"l2": 0.0, "l1": 0.0}            ("linear" is linear | logistic | softmax)
//!   } | {
//!     "kind": "matrix_factorization",   task "ratings"; parameters inside, top-level "params" empty
//!     "mf": {...},                      the serialized MatrixFactorization
//!     "user_ids": ["u1", ...], "item_ids": ["i7", ...]   raw ids, in the model's dense order
//!   },
//!   "params": [0.01, -0.2, ...],         the flat parameter buffer, in the model's layout order
//!   "standardizer": {"means": [...], "stds": [...]} | null,
//!   "target_scale": {"mean": 152.1, "std": 77.0} | null,
//!   "label_map": {"classes": [0.0, 1.0, ...]} | null,
//!   "feature_names": ["pixel0", ...],    one per model input, in input order
//!   "target_name": "digit",
//!   "text": {"columns": ["title", "review_text"], "vocabulary": {...}}   only for models of text
//! }
//! ```
//!
//! A model of text (a network whose first layer is `embedding_bag`) reads the text of its
//! `text.columns` rather than features: `feature_names` is empty, and `text.vocabulary` (its
//! words and tokenization options, [`Vocabulary`]) turns new text into token indices exactly as in
//! training. Files without `text` (all files written before models of text) read as before.
//!
//! `standardizer` maps raw features to the model's inputs, `x ← (x − mean) / std`.
//! `target_scale`, for regression, says the model was trained on `(y − mean) / std`: its raw
//! outputs are mapped back to `output · std + mean` (see [`ScaledTarget`]). `label_map` turns raw
//! class values into class indices and back; it is present exactly for binary and multiclass
//! tasks.
//!
//! A matrix-factorization model predicts from (user, item) ids rather than features: its
//! `feature_names` are `["user", "item"]`, `target_name` the rating column, and it has no
//! standardizer, target scale or label map. [`SavedModel::predict_ratings`] maps raw ids through
//! `user_ids` / `item_ids`; an id not among them gets the model's fallback for an unknown user or
//! item (the biases and global mean, see [`MatrixFactorization`]).
//!
//! Files are written atomically ([`crate::io::write_atomic`]). Reading checks the format marker
//! and version first, then that every part fits the others (parameter count, widths, classes),
//! so a corrupt, truncated or foreign file is a [`SavedModelError`] that says which, never a
//! wrong prediction.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::text::{Vocabulary, END_OF_TEXT};
use crate::data::{DataError, LabelMap, Standardizer};
use crate::linear::{LinearKind, LinearModel, Penalty};
use crate::loss::Loss;
use crate::mf::MatrixFactorization;
use crate::mlp::{Activation, Mlp};
use crate::model::{evaluate, Model, Rows, RowsError};
use crate::nn::{format_list, LanguageModel, LanguageModelSpec, Network, NetworkSpec};
use crate::params::ParamLayout;
use crate::train::{Metrics, Task};

/// The `format` marker of a saved model file.
pub const FORMAT: &str = "gradus-model";

/// The format version written (and the only one read).
pub const VERSION: u64 = 1;

/// The shape of a saved model: enough to rebuild it, without its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// A [`LinearModel`].
    Linear {
        /// Linear, logistic or softmax regression.
        linear: LinearKind,
        /// Input features.
        inputs: usize,
        /// Classes (softmax; 1 for linear, 2 for logistic).
        classes: usize,
        /// Penalties on the weights.
        penalty: Penalty,
    },
    /// An [`Mlp`].
    Mlp {
        /// Layer sizes, inputs first, outputs last.
        sizes: Vec<usize>,
        /// One activation per layer (the last is usually `identity`).
        activations: Vec<Activation>,
        /// The loss on the outputs.
        loss: Loss,
    },
    /// A [`Network`] of layers.
    Network {
        /// Its input shape, layers, loss and initialization.
        network: NetworkSpec,
    },
    /// A recurrent [`LanguageModel`] (its vocabulary in the file's `text`).
    LanguageModel {
        /// Its sizes.
        language_model: LanguageModelSpec,
    },
    /// A [`MatrixFactorization`] of ratings, with the raw ids of its users and items.
    MatrixFactorization {
        /// The trained model, parameters included.
        mf: Box<MatrixFactorization>,
        /// Raw user id of each dense user index.
        user_ids: Vec<String>,
        /// Raw item id of each dense item index.
        item_ids: Vec<String>,
    },
}

impl ModelSpec {
    /// Builds the model this describes: a feature model; matrix factorization, which predicts
    /// from ids, is an error here (use [`SavedModel::predict_ratings`]).
    pub fn build(&self) -> Result<Box<dyn Model>, crate::ConfigError> {
        Ok(match self {
            ModelSpec::MatrixFactorization { .. } => {
                return Err(crate::ConfigError::new(
                    "model",
                    "matrix_factorization",
                    "a model of features (matrix factorization predicts from user and item ids)",
                ))
            }
            ModelSpec::Linear { linear, inputs, classes, penalty } => {
                Box::new(LinearModel::new(*linear, *inputs, *classes, *penalty)?)
            }
            ModelSpec::Mlp { sizes, activations, loss } => Box::new(Mlp::new(sizes, activations, *loss)?),
            ModelSpec::Network { network } => Box::new(Network::new(network.clone())?),
            ModelSpec::LanguageModel { language_model } => Box::new(LanguageModel::new(language_model.clone())?),
        })
    }

    /// A short description, e.g. `mlp 64-128-10 relu` or `softmax regression`.
    pub fn describe(&self) -> String {
        match self {
            ModelSpec::MatrixFactorization { mf, .. } => format!(
                "matrix factorization ({} factors, {} users × {} items)",
                mf.config().n_factors,
                mf.n_users(),
                mf.n_items()
            ),
            ModelSpec::Linear { linear, .. } => match linear {
                LinearKind::Linear => "linear regression".to_string(),
                LinearKind::Logistic => "logistic regression".to_string(),
                LinearKind::Softmax => "softmax regression".to_string(),
            },
            ModelSpec::Network { network } => format!("network {}", format_list(&network.layers)),
            ModelSpec::LanguageModel { language_model } => language_model.describe(),
            ModelSpec::Mlp { sizes, activations, .. } => {
                let sizes = sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join("-");
                match activations.first() {
                    Some(a) if activations.len() > 1 => format!("mlp {sizes} {}", a.name()),
                    _ => format!("mlp {sizes}"),
                }
            }
        }
    }
}

/// The mean and standard deviation a regression target was standardized with for training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetScale {
    /// Mean of the training targets.
    pub mean: f32,
    /// Population standard deviation of the training targets (1 when they are constant).
    pub std: f32,
}

impl TargetScale {
    /// Fits on training targets (accumulated in `f64`; a constant or empty target gets std 1).
    pub fn fit(targets: &[f32]) -> Self {
        let n = targets.len().max(1) as f64;
        let mean = targets.iter().map(|&t| f64::from(t)).sum::<f64>() / n;
        let var = targets.iter().map(|&t| (f64::from(t) - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt() as f32;
        Self { mean: mean as f32, std: if std > 0.0 && std.is_finite() { std } else { 1.0 } }
    }

    /// Whether both numbers are finite and the std is positive.
    pub fn is_valid(&self) -> bool {
        self.mean.is_finite() && self.std.is_finite() && self.std > 0.0
    }

    fn scale(&self, y: &[f32]) -> Vec<f32> {
        y.iter().map(|&v| (v - self.mean) / self.std).collect()
    }
}

/// A regression model trained on standardized targets, seen from outside in the targets' own
/// units: [`Model::forward`] returns `inner · std + mean`, and the loss is the inner model's loss
/// on `(y − mean) / std` (so training is as well conditioned whatever the targets' scale, while
/// rmse, mae and r2 from [`evaluate`] are in the original units).
pub struct ScaledTarget {
    inner: Box<dyn Model>,
    scale: TargetScale,
    /// The last training set's scaled targets, with the key that recognizes it.
    #[allow(clippy::type_complexity)]
    cache: std::sync::Mutex<Option<((usize, usize, Vec<u32>), std::sync::Arc<Vec<f32>>)>>,
}

impl ScaledTarget {
    /// Wraps `inner` (a regression model) with `scale`.
    pub fn new(inner: Box<dyn Model>, scale: TargetScale) -> Self {
        Self { inner, scale, cache: std::sync::Mutex::new(None) }
    }

    /// The target scale.
    pub fn scale(&self) -> TargetScale {
        self.scale
    }
}

impl Model for ScaledTarget {
    fn task(&self) -> Task {
        self.inner.task()
    }

    fn layout(&self) -> &ParamLayout {
        self.inner.layout()
    }

    fn inputs(&self) -> usize {
        self.inner.inputs()
    }

    fn outputs(&self) -> usize {
        self.inner.outputs()
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.inner.init_params(seed)
    }

    fn check_targets(&self, targets: &[f32], rows: usize) -> Result<(), crate::loss::TargetError> {
        self.inner.check_targets(targets, rows)
    }

    fn working_memory(&self, rows: usize) -> Option<usize> {
        self.inner.working_memory(rows)
    }

    fn loss_and_gradient(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize, grad: &mut [f32]) -> f64 {
        self.inner.loss_and_gradient(params, x, &self.scale.scale(y), rows, grad)
    }

    fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
        self.inner.forward(params, x, rows, out);
        for o in out.iter_mut() {
            *o = *o * self.scale.std + self.scale.mean;
        }
    }

    fn loss(&self, params: &[f32], x: &[f32], y: &[f32], rows: usize) -> f64 {
        self.inner.loss(params, x, &self.scale.scale(y), rows)
    }

    fn diagnostic_segments(&self) -> Vec<(String, std::ops::Range<usize>)> {
        self.inner.diagnostic_segments()
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
        let scaled = self.scaled_targets(data.y);
        self.inner.train_step(params, Rows { y: &scaled, ..data }, indices, seed, step, grad)
    }

    fn buffers(&self) -> Vec<f32> {
        self.inner.buffers()
    }

    fn set_buffers(&self, buffers: &[f32]) -> Result<(), String> {
        self.inner.set_buffers(buffers)
    }
}

impl ScaledTarget {
    /// `targets` scaled, computed once per training set: the engine passes the same targets at
    /// every step. The set is recognized by its address, length and a sample of its values.
    fn scaled_targets(&self, targets: &[f32]) -> std::sync::Arc<Vec<f32>> {
        let sample: Vec<u32> =
            (0..16).filter_map(|i| targets.get(i * targets.len() / 16)).map(|v| v.to_bits()).collect();
        let key = (targets.as_ptr() as usize, targets.len(), sample);
        let mut cache = self.cache.lock().expect("target cache lock");
        match &*cache {
            Some((k, scaled)) if *k == key => scaled.clone(),
            _ => {
                let scaled = std::sync::Arc::new(self.scale.scale(targets));
                *cache = Some((key, scaled.clone()));
                scaled
            }
        }
    }
}

/// Reading, checking or writing a saved model failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SavedModelError {
    /// The file does not exist.
    #[error("`{}`: model file not found", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("`{}`: cannot read the model file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file could not be written (nothing was left behind).
    #[error("`{}`: cannot write the model file: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not JSON, or its JSON ends early.
    #[error("`{}`: not a gradus model file: {message}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// What the JSON reader found (line and column included).
        message: String,
    },
    /// A JSON file that is not a gradus model (another format marker, or none).
    #[error("`{}`: {found}, expected a gradus model file (`\"format\": \"{FORMAT}\"`)", path.display())]
    OtherFormat {
        /// The file.
        path: PathBuf,
        /// What it is, as far as can be told.
        found: String,
    },
    /// A gradus model file of a version this build does not read.
    #[error("`{}`: gradus model format version {found}, expected version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// A gradus model file whose parts are missing or do not fit each other.
    #[error("`{}`: corrupt gradus model file: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Data given to the model does not fit it.
    #[error("{0}")]
    Data(#[from] DataError),
    /// Rows given to the model do not fit it (their width, their targets).
    #[error("{0}")]
    Rows(#[from] RowsError),
    /// A model built in memory whose parts do not fit each other (see [`SavedModel::check`]).
    #[error("the model's parts do not fit each other: {0}")]
    Inconsistent(String),
    /// Data of the other kind: features for a matrix-factorization model, ratings for a model
    /// of features, or ratings that cannot be this model's.
    #[error("{origin}: {problem}")]
    WrongData {
        /// The data (file) given.
        origin: String,
        /// What the model expects and what the data is.
        problem: String,
    },
}

/// A trained model with its preparation, as saved to and read from a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedModel {
    /// What the model predicts (regression, binary or multiclass).
    pub task: Task,
    /// The model's shape.
    pub model: ModelSpec,
    /// The flat parameter buffer.
    pub params: Vec<f32>,
    /// Feature standardization fitted on the training rows, if features were standardized.
    pub standardizer: Option<Standardizer>,
    /// The regression target's training scale, if targets were standardized.
    pub target_scale: Option<TargetScale>,
    /// Class labels (classification only).
    pub label_map: Option<LabelMap>,
    /// The feature columns, in input order.
    pub feature_names: Vec<String>,
    /// The target column.
    pub target_name: String,
    /// The model's running statistics (batch normalization), see [`Model::buffers`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buffers: Vec<f32>,
    /// The names of the classes, by class index (`T-shirt/top`, ...), when they have names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// For a model of text: the columns it reads and the vocabulary that tokenizes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextInput>,
}

/// A model of text, built, and the token indices of some texts as compressed rows.
type TextRows = (Box<dyn Model>, Vec<u32>, Vec<usize>);

/// What a model of text reads: which columns (joined with a space), tokenized how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    /// The text columns of the training data, in the order they were joined.
    pub columns: Vec<String>,
    /// The words of the training rows and the tokenization options.
    pub vocabulary: Vocabulary,
}

/// The file's envelope: marker and version around the model.
#[derive(Serialize)]
struct Envelope<'a> {
    format: &'static str,
    version: u64,
    #[serde(flatten)]
    model: &'a SavedModel,
}

impl SavedModel {
    /// The model as JSON text in the version-1 format.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Envelope { format: FORMAT, version: VERSION, model: self })
            .expect("a saved model always serializes")
    }

    /// Writes the model to `path` atomically (a failed write leaves no file behind).
    pub fn save(&self, path: &Path) -> Result<(), SavedModelError> {
        crate::io::write_atomic(path, self.to_json().as_bytes())
            .map_err(|source| SavedModelError::Write { path: path.to_path_buf(), source })
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, SavedModelError> {
        let bytes = std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SavedModelError::NotFound { path: path.to_path_buf() },
            _ => SavedModelError::Read { path: path.to_path_buf(), source },
        })?;
        Self::from_json_bytes(&bytes, path)
    }

    /// Parses and checks model JSON; `path` is only used in error messages.
    pub fn from_json_bytes(bytes: &[u8], path: &Path) -> Result<Self, SavedModelError> {
        let path_buf = || path.to_path_buf();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(SavedModelError::NotJson { path: path_buf(), message: "the file is empty".into() });
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            let message = if e.is_eof() {
                format!("the JSON ends early ({e}): the file is truncated")
            } else {
                format!("invalid JSON ({e})")
            };
            SavedModelError::NotJson { path: path_buf(), message }
        })?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(SavedModelError::OtherFormat {
                path: path_buf(),
                found: "a JSON value that is not an object".into(),
            });
        };
        match object.remove("format") {
            Some(serde_json::Value::String(f)) if f == FORMAT => {}
            Some(serde_json::Value::String(f)) if f.starts_with("gradus-checkpoint") => {
                return Err(SavedModelError::OtherFormat {
                    path: path_buf(),
                    found: "a training checkpoint (use it with `--resume`)".into(),
                })
            }
            Some(other) => {
                return Err(SavedModelError::OtherFormat { path: path_buf(), found: format!("format {other}") })
            }
            None => {
                return Err(SavedModelError::OtherFormat {
                    path: path_buf(),
                    found: "a JSON object without a `format` field".into(),
                })
            }
        }
        match object.remove("version") {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
            Some(other) => return Err(SavedModelError::Version { path: path_buf(), found: other.to_string() }),
            None => return Err(SavedModelError::Invalid { path: path_buf(), message: "no `version` field".into() }),
        }
        let mut model: SavedModel = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| SavedModelError::Invalid { path: path_buf(), message: e.to_string() })?;
        if let Some(text) = &mut model.text {
            text.vocabulary.rebuild_index();
        }
        model.check().map_err(|message| SavedModelError::Invalid { path: path_buf(), message })?;
        Ok(model)
    }

    /// Checks that the parts fit each other as a whole, describing the first mismatch: the model
    /// builds (sizes whose parameter count, computed with checked arithmetic, fits in memory),
    /// its task is the file's, `params` holds exactly the model's parameters and every one is
    /// finite, one feature name per input, a standardizer of one finite mean and one finite
    /// std > 0 per input, a finite target scale for regression only, and for a classifier a label
    /// map of one finite, distinct class per output, in ascending order.
    pub fn check(&self) -> Result<(), String> {
        if let ModelSpec::MatrixFactorization { mf, user_ids, item_ids } = &self.model {
            return check_mf(self, mf, user_ids, item_ids);
        }
        if let ModelSpec::Mlp { sizes, .. } = &self.model {
            // Said before building, so that the message names the field and the count.
            let count = sizes
                .windows(2)
                .try_fold(0usize, |total, pair| pair[0].checked_mul(pair[1])?.checked_add(pair[1])?.checked_add(total));
            if count.is_none() {
                return Err(format!(
                    "`sizes` {sizes:?}: the parameter count overflows (layer sizes beyond any machine's memory)"
                ));
            }
        }
        let model = self.model.build().map_err(|e| format!("model: {e}"))?;
        if model.task() != self.task {
            return Err(format!(
                "the model is a {} model, the file says task `{}`",
                model.task().name(),
                self.task.name()
            ));
        }
        if self.buffers.len() != model.buffers().len() {
            return Err(format!(
                "`buffers` holds {} values, the model ({}) keeps {} running statistics",
                self.buffers.len(),
                self.model.describe(),
                model.buffers().len()
            ));
        }
        self.check_text()?;
        if let Some(i) = self.buffers.iter().position(|p| !p.is_finite()) {
            return Err(format!("running statistic {i} is not a finite number"));
        }
        if let Some(names) = &self.class_names {
            let classes = self.label_map.as_ref().map_or(0, LabelMap::n_classes);
            if names.len() != classes {
                return Err(format!("{} class names for {classes} classes", names.len()));
            }
        }
        if self.params.len() != model.layout().len() {
            return Err(format!(
                "`params` holds {} values, the model ({}) has {} parameters",
                self.params.len(),
                self.model.describe(),
                model.layout().len()
            ));
        }
        if let Some(i) = self.params.iter().position(|p| !p.is_finite()) {
            return Err(format!("parameter {i} is not a finite number"));
        }
        if self.feature_names.len() != model.inputs() {
            return Err(format!("{} feature names for a model of {} inputs", self.feature_names.len(), model.inputs()));
        }
        if let Some(s) = &self.standardizer {
            if s.means.len() != model.inputs() || s.stds.len() != model.inputs() {
                return Err(format!(
                    "the standardizer has {} means and {} stds for a model of {} inputs",
                    s.means.len(),
                    s.stds.len(),
                    model.inputs()
                ));
            }
            s.validate().map_err(|e| e.to_string())?;
        }
        if let Some(map) = &self.label_map {
            map.validate().map_err(|e| e.to_string())?;
        }
        if let Some(t) = &self.target_scale {
            if self.task != Task::Regression || !t.is_valid() {
                return Err("`target_scale` is only for regression, with a finite mean and a std > 0".into());
            }
        }
        match (self.task, &self.label_map) {
            // A language model's classes are the words of its vocabulary.
            (Task::Multiclass, None) if matches!(self.model, ModelSpec::LanguageModel { .. }) => {}
            (Task::Binary, Some(map)) if map.n_classes() == 2 => {}
            (Task::Multiclass, Some(map)) if map.n_classes() == model.outputs() => {}
            (Task::Binary | Task::Multiclass, Some(map)) => {
                return Err(format!(
                    "the label map has {} classes, the model predicts {}",
                    map.n_classes(),
                    if self.task == Task::Binary { 2 } else { model.outputs() }
                ))
            }
            (Task::Binary | Task::Multiclass, None) => return Err("a classifier without a `label_map`".into()),
            (_, Some(_)) => return Err(format!("a `label_map` for a {} model", self.task.name())),
            (_, None) => {}
        }
        Ok(())
    }

    /// The table size of a network over token indices (its first layer's `num_embeddings`).
    fn token_table(&self) -> Option<usize> {
        match &self.model {
            ModelSpec::Network { network } => match network.layers.first() {
                Some(crate::nn::LayerSpec::EmbeddingBag { num_embeddings, .. })
                | Some(crate::nn::LayerSpec::Embedding { num_embeddings, .. }) => Some(*num_embeddings),
                _ => None,
            },
            ModelSpec::LanguageModel { language_model } => Some(language_model.vocab),
            _ => None,
        }
    }

    /// A model of text has a vocabulary as large as its embedding table, a bag of tokens as its
    /// input and no feature names; no other model has `text`.
    fn check_text(&self) -> Result<(), String> {
        match (&self.text, self.token_table()) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(format!("`text` for a {}, which does not read tokens", self.model.describe())),
            (None, Some(_)) => Err("a network over token indices without its `text` vocabulary".into()),
            (Some(text), Some(table)) => {
                text.vocabulary.options.validate().map_err(|e| format!("text: {e}"))?;
                if let ModelSpec::LanguageModel { .. } = &self.model {
                    if text.vocabulary.size() != table {
                        return Err(format!(
                            "the vocabulary has {} tokens, the language model {table}",
                            text.vocabulary.size()
                        ));
                    }
                    if text.vocabulary.words.first().map(String::as_str) != Some(END_OF_TEXT) {
                        return Err(format!("a language model's vocabulary starts with `{END_OF_TEXT}`"));
                    }
                    return Ok(());
                }
                if !matches!(
                    &self.model,
                    ModelSpec::Network { network } if matches!(network.layers.first(), Some(crate::nn::LayerSpec::EmbeddingBag { .. }))
                ) {
                    return Err("a model of text starts with `embedding_bag`".into());
                }
                if text.vocabulary.size() != table {
                    return Err(format!(
                        "the vocabulary has {} tokens (words and n-gram buckets), the embedding table {table} rows",
                        text.vocabulary.size()
                    ));
                }
                if text.columns.is_empty() {
                    return Err("a model of text without its `text.columns`".into());
                }
                if !self.feature_names.is_empty() {
                    return Err("a model of text has no `feature_names`".into());
                }
                Ok(())
            }
        }
    }

    /// The text columns of a model of text, `None` for other models.
    pub fn text_columns(&self) -> Option<&[String]> {
        self.text.as_ref().map(|t| t.columns.as_slice())
    }

    /// Raw outputs (logits; `texts.len() × outputs`) of a model of text for `texts`, tokenized as
    /// in training; an error for any other model.
    pub fn text_outputs(&self, texts: &[&str]) -> Result<Vec<f32>, SavedModelError> {
        let (model, ids, offsets) = self.text_rows(texts, "the texts")?;
        let y = vec![0.0f32; texts.len()];
        let rows = Rows::with_ids(&ids, &offsets, &y);
        let mut out = crate::model::output_buffer(texts.len(), model.outputs()).map_err(RowsError::from)?;
        if !texts.is_empty() {
            model.forward_rows(&self.params, rows, &mut out);
        }
        Ok(out)
    }

    /// Loss and metrics of a model of text on `texts` and their raw targets (see
    /// [`SavedModel::evaluate`]).
    pub fn evaluate_text(&self, texts: &[&str], targets: &[f32], origin: &str) -> Result<Metrics, SavedModelError> {
        let (model, ids, offsets) = self.text_rows(texts, origin)?;
        let y = self.encode_targets(targets, origin)?;
        if y.len() != texts.len() {
            return Err(SavedModelError::WrongData {
                origin: origin.to_string(),
                problem: format!("{} targets for {} texts", y.len(), texts.len()),
            });
        }
        let rows = Rows::with_ids(&ids, &offsets, &y);
        rows.check(&format!("`{origin}`"))?;
        Ok(evaluate(model.as_ref(), &self.params, rows)?)
    }

    fn text_rows(&self, texts: &[&str], origin: &str) -> Result<TextRows, SavedModelError> {
        self.check_whole()?;
        let Some(text) = &self.text else {
            return Err(SavedModelError::WrongData {
                origin: origin.to_string(),
                problem: format!("the model is a {}, which reads features, not text", self.model.describe()),
            });
        };
        let model = self.build().map_err(|e| SavedModelError::Data(e.into()))?;
        let (ids, offsets) = text.vocabulary.encode_all(texts.iter().copied());
        Ok((model, ids, offsets))
    }

    fn encode_targets(&self, targets: &[f32], origin: &str) -> Result<Vec<f32>, SavedModelError> {
        let y: Vec<f32> = match &self.label_map {
            Some(map) => map.encode_all(targets, origin)?.into_iter().map(|c| c as f32).collect(),
            None => targets.to_vec(),
        };
        if let Some(row) = y.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NonFiniteTarget { origin: origin.to_string(), row: row + 1, value: y[row] }.into());
        }
        Ok(y)
    }

    /// Predicted ratings of `users[k]` for `items[k]` (raw ids) by a matrix-factorization model;
    /// an unknown id gets the model's fallback (biases, global mean). An error for any other
    /// model, or when the two slices differ in length.
    pub fn predict_ratings(&self, users: &[String], items: &[String]) -> Result<Vec<f32>, SavedModelError> {
        let ModelSpec::MatrixFactorization { mf, user_ids, item_ids } = &self.model else {
            return Err(DataError::from(crate::ConfigError::new(
                "model",
                self.model.describe(),
                "a matrix-factorization model to predict ratings",
            ))
            .into());
        };
        if users.len() != items.len() {
            return Err(SavedModelError::WrongData {
                origin: "the ids".to_string(),
                problem: format!(
                    "{} user ids for {} item ids: expected one of each per rating",
                    users.len(),
                    items.len()
                ),
            });
        }
        fn index(ids: &[String]) -> std::collections::HashMap<&str, u32> {
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), i as u32)).collect()
        }
        let (user_index, item_index) = (index(user_ids), index(item_ids));
        // u32::MAX is beyond every model's counts: the model's unknown-id fallback.
        Ok(users
            .iter()
            .zip(items)
            .map(|(u, i)| {
                let u = user_index.get(u.as_str()).copied().unwrap_or(u32::MAX);
                let i = item_index.get(i.as_str()).copied().unwrap_or(u32::MAX);
                mf.predict(u, i)
            })
            .collect())
    }

    /// The model, ready to run on standardized features (with target scaling applied).
    pub fn build(&self) -> Result<Box<dyn Model>, crate::ConfigError> {
        let inner = self.model.build()?;
        inner
            .set_buffers(&self.buffers)
            .map_err(|e| crate::ConfigError::new("buffers", e, "the model's running statistics"))?;
        Ok(match self.target_scale {
            Some(scale) => Box::new(ScaledTarget::new(inner, scale)),
            None => inner,
        })
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.feature_names.len()
    }

    /// [`SavedModel::check`] of a model that may have been put together in memory.
    fn check_whole(&self) -> Result<(), SavedModelError> {
        self.check().map_err(SavedModelError::Inconsistent)
    }

    /// An error unless this is a model of features (not matrix factorization), naming `origin`.
    fn expect_features(&self, origin: &str) -> Result<(), SavedModelError> {
        if let Some(text) = &self.text {
            return Err(SavedModelError::WrongData {
                origin: origin.to_string(),
                problem: format!(
                    "the model reads text (columns {}), not feature rows",
                    text.columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        if let ModelSpec::MatrixFactorization { .. } = self.model {
            return Err(SavedModelError::WrongData {
                origin: origin.to_string(),
                problem: format!(
                    "the model is a {}, which predicts ratings from (user, item) ids: expected a ratings file \
                     (user, item, rating), not feature rows",
                    self.model.describe()
                ),
            });
        }
        Ok(())
    }

    /// Checks that ratings read from `origin` (raw user and item ids, with their ratings when the
    /// file has them) can be this matrix-factorization model's, so that a file of features read as
    /// ratings is an error rather than an RMSE of nonsense: some user or some item must be one the
    /// model knows (when none is, every prediction is the global mean); when the model's ids are
    /// whole numbers, at most half of the file's may be other numbers (`5.1` is a feature value,
    /// not an id); and the ratings must lie near the model's training range (within one range's
    /// width of it). Users or items the model does not know are otherwise fine: they get the
    /// model's fallbacks. An error for a model of features, which takes feature rows.
    pub fn check_ratings_data(
        &self,
        users: &[String],
        items: &[String],
        ratings: Option<&[f32]>,
        origin: &str,
    ) -> Result<(), SavedModelError> {
        let wrong = |problem: String| SavedModelError::WrongData { origin: origin.to_string(), problem };
        let ModelSpec::MatrixFactorization { mf, user_ids, item_ids } = &self.model else {
            return Err(wrong(format!(
                "the model is a {} of {} features (`{}`, ...): expected rows of those features, not ratings",
                self.model.describe(),
                self.inputs(),
                self.feature_names.first().map_or("", String::as_str)
            )));
        };
        if users.len() != items.len() || ratings.is_some_and(|r| r.len() != users.len()) {
            return Err(wrong(format!(
                "{} user ids, {} item ids and {} ratings: expected one of each per rating",
                users.len(),
                items.len(),
                ratings.map_or(users.len(), <[f32]>::len)
            )));
        }
        let sample = |ids: &[String]| ids.iter().take(3).map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ");
        let known_users: std::collections::HashSet<&str> = user_ids.iter().map(String::as_str).collect();
        let known_items: std::collections::HashSet<&str> = item_ids.iter().map(String::as_str).collect();
        let any_user = users.iter().any(|u| known_users.contains(u.as_str()));
        let any_item = items.iter().any(|i| known_items.contains(i.as_str()));
        if !users.is_empty() && !any_user && !any_item {
            return Err(wrong(format!(
                "none of its users ({}, ...) and none of its items ({}, ...) is one the model knows: is this a \
                 ratings file for this model?",
                sample(users),
                sample(items)
            )));
        }
        let whole = |id: &str| id.parse::<i64>().is_ok();
        let fractional = |id: &str| !whole(id) && id.parse::<f64>().is_ok_and(f64::is_finite);
        for (what, file_ids, model_ids) in [("user", users, user_ids), ("item", items, item_ids)] {
            let decimals = file_ids.iter().filter(|id| fractional(id)).count();
            if model_ids.iter().all(|id| whole(id)) && decimals * 2 > file_ids.len() {
                return Err(wrong(format!(
                    "its {what} ids are numbers with fractions ({}, ...), the model's are whole numbers ({}, ...): \
                     is this a ratings file for this model?",
                    sample(file_ids),
                    sample(model_ids)
                )));
            }
        }
        if let Some(ratings) = ratings {
            let (low, high) = mf.rating_range();
            let width = (high - low).max(1.0);
            let (floor, ceiling) = (low - width, high + width);
            if let Some(row) = ratings.iter().position(|r| !(floor..=ceiling).contains(r)) {
                return Err(wrong(format!(
                    "rating {} of row {} is far outside the ratings the model was trained on ({low} to {high}): \
                     is this a ratings file for this model?",
                    ratings[row],
                    row + 1
                )));
            }
        }
        Ok(())
    }

    /// Standardizes a copy of raw `features` (`rows × inputs`, row-major) as in training.
    pub fn prepare(&self, features: &[f32]) -> Result<Vec<f32>, SavedModelError> {
        let mut x = features.to_vec();
        if !x.len().is_multiple_of(self.inputs().max(1)) {
            return Err(DataError::PartialRow { values: x.len(), cols: self.inputs() }.into());
        }
        if let Some(s) = &self.standardizer {
            s.transform_rows(&mut x)?;
        }
        Ok(x)
    }

    /// Raw outputs (values for regression, logits for classification; `rows × outputs`) for raw
    /// features (`rows × inputs`, row-major).
    pub fn outputs(&self, features: &[f32], rows: usize) -> Result<Vec<f32>, SavedModelError> {
        self.expect_features("the features")?;
        self.check_whole()?;
        let model = self.build().map_err(|e| SavedModelError::Data(e.into()))?;
        if rows.checked_mul(model.inputs()) != Some(features.len()) {
            return Err(DataError::PartialRow { values: features.len(), cols: model.inputs() }.into());
        }
        let x = self.prepare(features)?;
        let mut out = crate::model::output_buffer(rows, model.outputs()).map_err(RowsError::from)?;
        model.forward(&self.params, &x, rows, &mut out);
        Ok(out)
    }

    /// Class probabilities from raw outputs, `rows × classes`: the sigmoid of a binary logit as
    /// `[1 − p, p]`, or the softmax of multiclass logits. Empty for regression.
    pub fn probabilities(&self, outputs: &[f32]) -> Vec<f32> {
        match self.task {
            Task::Binary => outputs
                .iter()
                .flat_map(|&z| {
                    let p = 1.0 / (1.0 + (-f64::from(z)).exp());
                    [(1.0 - p) as f32, p as f32]
                })
                .collect(),
            Task::Multiclass => {
                let k = self.label_map.as_ref().map_or(1, LabelMap::n_classes).max(1);
                outputs
                    .chunks_exact(k)
                    .flat_map(|row| {
                        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
                        let exps: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
                        let sum: f64 = exps.iter().sum();
                        exps.into_iter().map(move |e| (e / sum) as f32)
                    })
                    .collect()
            }
            Task::Regression | Task::Ratings => Vec::new(),
        }
    }

    /// Loss and metrics on raw features and raw targets (class values for classification, mapped
    /// through the label map; a value that is not one of the model's classes is an error naming
    /// `origin` and the row).
    pub fn evaluate(&self, features: &[f32], targets: &[f32], origin: &str) -> Result<Metrics, SavedModelError> {
        self.expect_features(origin)?;
        self.check_whole()?;
        let model = self.build().map_err(|e| SavedModelError::Data(e.into()))?;
        let rows = targets.len();
        if rows.checked_mul(model.inputs()) != Some(features.len()) {
            return Err(DataError::PartialRow { values: features.len(), cols: model.inputs() }.into());
        }
        let x = self.prepare(features)?;
        let y: Vec<f32> = match &self.label_map {
            Some(map) => map.encode_all(targets, origin)?.into_iter().map(|c| c as f32).collect(),
            None => targets.to_vec(),
        };
        if let Some(row) = y.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NonFiniteTarget { origin: origin.to_string(), row: row + 1, value: y[row] }.into());
        }
        let rows = Rows::try_new(&x, &y, model.inputs(), &format!("`{origin}`"))?;
        Ok(evaluate(model.as_ref(), &self.params, rows)?)
    }
}

/// [`SavedModel::check`] for a matrix-factorization model.
fn check_mf(
    saved: &SavedModel,
    mf: &MatrixFactorization,
    user_ids: &[String],
    item_ids: &[String],
) -> Result<(), String> {
    if saved.task != Task::Ratings {
        return Err(format!("a matrix-factorization model with task `{}`, expected `ratings`", saved.task.name()));
    }
    if !saved.params.is_empty() {
        return Err("a matrix-factorization model keeps its parameters in `mf`; `params` must be empty".into());
    }
    if user_ids.len() != mf.n_users() || item_ids.len() != mf.n_items() {
        return Err(format!(
            "{} user ids and {} item ids for a model of {} users and {} items",
            user_ids.len(),
            item_ids.len(),
            mf.n_users(),
            mf.n_items()
        ));
    }
    if saved.standardizer.is_some() || saved.target_scale.is_some() || saved.label_map.is_some() {
        return Err("a matrix-factorization model has no standardizer, target scale or label map".into());
    }
    for (what, ids) in [("user", user_ids), ("item", item_ids)] {
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        if let Some(id) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(format!("{what} id `{id}` appears twice: each id names one {what}"));
        }
    }
    if let Some(i) = mf.params().iter().position(|p| !p.is_finite()) {
        return Err(format!("matrix-factorization parameter {i} is not a finite number"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax_model() -> SavedModel {
        let spec = ModelSpec::Mlp {
            sizes: vec![3, 4, 3],
            activations: vec![Activation::Tanh, Activation::Identity],
            loss: Loss::CrossEntropy { label_smoothing: 0.0 },
        };
        let params = spec.build().unwrap().init_params(7);
        SavedModel {
            task: Task::Multiclass,
            model: spec,
            params,
            standardizer: Some(Standardizer { means: vec![0.5, -1.0, 2.0], stds: vec![1.5, 0.25, 3.0] }),
            target_scale: None,
            label_map: Some(LabelMap { classes: vec![1.0, 2.0, 7.0] }),
            feature_names: vec!["a".into(), "b".into(), "c".into()],
            target_name: "y".into(),
            buffers: Vec::new(),
            class_names: None,
            text: None,
        }
    }

    fn regression_model() -> SavedModel {
        let spec = ModelSpec::Linear {
            linear: LinearKind::Linear,
            inputs: 2,
            classes: 1,
            penalty: Penalty { l2: 0.1, l1: 0.0 },
        };
        SavedModel {
            task: Task::Regression,
            model: spec,
            params: vec![0.3, -1.7, 0.1],
            standardizer: None,
            target_scale: Some(TargetScale { mean: 150.0, std: 70.0 }),
            label_map: None,
            feature_names: vec!["u".into(), "v".into()],
            target_name: "t".into(),
            buffers: Vec::new(),
            class_names: None,
            text: None,
        }
    }

    fn path() -> &'static Path {
        Path::new("m.json")
    }

    #[test]
    fn round_trip_predicts_identically() {
        for saved in [softmax_model(), regression_model()] {
            let back = SavedModel::from_json_bytes(saved.to_json().as_bytes(), path()).unwrap();
            assert_eq!(back, saved);
            let x: Vec<f32> = (0..saved.inputs() * 5).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let a = saved.outputs(&x, 5).unwrap();
            let b = back.outputs(&x, 5).unwrap();
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn target_scale_maps_outputs_back() {
        let m = regression_model();
        // Inner output for x = (1, 1): 0.3 - 1.7 + 0.1 = -1.3 → -1.3 · 70 + 150 = 59.
        let out = m.outputs(&[1.0, 1.0], 1).unwrap();
        assert!((out[0] - 59.0).abs() < 1e-3, "{out:?}");
        let metrics = m.evaluate(&[1.0, 1.0], &[60.0], "t").unwrap();
        assert!((metrics["mae"] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn evaluate_rejects_unknown_classes() {
        let m = softmax_model();
        let err = m.evaluate(&[0.0; 3], &[3.0], "file.csv").unwrap_err();
        assert!(err.to_string().contains("target 3 is not one of the classes"), "{err}");
    }

    #[test]
    fn matrix_factorization_round_trips_and_falls_back_for_unknown_ids() {
        use crate::mf::{MfConfig, Ratings};
        let (users, items, ratings) = ([0u32, 0, 1, 1, 2], [0u32, 1, 0, 1, 1], [4.0f32, 3.0, 5.0, 1.0, 2.0]);
        let train = Ratings::new(3, 2, &users, &items, &ratings).unwrap();
        let config = MfConfig { n_factors: 3, n_epochs: 5, ..MfConfig::default() };
        let mf = MatrixFactorization::fit(&config, &train).unwrap();
        let saved = SavedModel {
            task: Task::Ratings,
            model: ModelSpec::MatrixFactorization {
                mf: Box::new(mf.clone()),
                user_ids: vec!["a".into(), "b".into(), "c".into()],
                item_ids: vec!["x".into(), "y".into()],
            },
            params: Vec::new(),
            standardizer: None,
            target_scale: None,
            label_map: None,
            feature_names: vec!["user".into(), "item".into()],
            target_name: "rating".into(),
            buffers: Vec::new(),
            class_names: None,
            text: None,
        };
        let back = SavedModel::from_json_bytes(saved.to_json().as_bytes(), path()).unwrap();
        assert_eq!(back, saved);
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = back.predict_ratings(&ids(&["b", "zz", "c", "zz"]), &ids(&["x", "y", "nope", "nope"])).unwrap();
        assert_eq!(got[0].to_bits(), mf.predict(1, 0).to_bits());
        // Unknown user: μ + b_i; unknown item: μ + b_u; both: μ (then clamped to [1, 5]).
        let mu = mf.global_mean();
        assert_eq!(got[1], (mu + mf.item_bias(1).unwrap()).clamp(1.0, 5.0));
        assert_eq!(got[2], (mu + mf.user_bias(2).unwrap()).clamp(1.0, 5.0));
        assert_eq!(got[3], mu);
        assert!(back.outputs(&[0.0, 0.0], 1).is_err());

        let mut wrong = saved.clone();
        wrong.task = Task::Regression;
        let err = SavedModel::from_json_bytes(wrong.to_json().as_bytes(), path()).unwrap_err();
        assert!(err.to_string().contains("expected `ratings`"), "{err}");
        let mut short = saved;
        if let ModelSpec::MatrixFactorization { user_ids, .. } = &mut short.model {
            user_ids.pop();
        }
        let err = SavedModel::from_json_bytes(short.to_json().as_bytes(), path()).unwrap_err();
        assert!(err.to_string().contains("2 user ids"), "{err}");
    }

    #[test]
    fn probabilities_sum_to_one() {
        let m = softmax_model();
        let out = m.outputs(&[0.1, 0.2, 0.3, 1.0, 2.0, 3.0], 2).unwrap();
        let p = m.probabilities(&out);
        assert_eq!(p.len(), 6);
        for row in p.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let good = softmax_model().to_json();
        let truncated = &good[..good.len() / 2];
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "empty"),
            (truncated.as_bytes(), "truncated"),
            (b"not json at all", "invalid JSON"),
            (b"[1, 2]", "not an object"),
            (br#"{"format":"gradus-checkpoint-1"}"#, "checkpoint"),
            (br#"{"format":"something-else","version":1}"#, "format \"something-else\""),
            (br#"{"version":1}"#, "without a `format`"),
        ];
        for (bytes, expected) in cases {
            let err = SavedModel::from_json_bytes(bytes, path()).unwrap_err();
            assert!(err.to_string().contains(expected), "{expected}: {err}");
            assert!(err.to_string().contains("m.json"), "{err}");
        }
        let v2 = good.replace("\"version\":1", "\"version\":2");
        let err = SavedModel::from_json_bytes(v2.as_bytes(), path()).unwrap_err();
        assert!(matches!(err, SavedModelError::Version { .. }), "{err}");

        let mut short = softmax_model();
        short.params.pop();
        let err = SavedModel::from_json_bytes(short.to_json().as_bytes(), path()).unwrap_err();
        assert!(err.to_string().contains("`params` holds"), "{err}");

        let mut classes = softmax_model();
        classes.label_map = Some(LabelMap { classes: vec![0.0, 1.0] });
        let err = SavedModel::from_json_bytes(classes.to_json().as_bytes(), path()).unwrap_err();
        assert!(err.to_string().contains("label map has 2 classes"), "{err}");

        let extra = good.replacen('{', "{\"surprise\":1,", 1);
        let err = SavedModel::from_json_bytes(extra.as_bytes(), path()).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn save_is_atomic_and_reports_the_path() {
        let dir = std::env::temp_dir().join(format!("gradus-saved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("model.json");
        let m = regression_model();
        m.save(&file).unwrap();
        assert_eq!(SavedModel::load(&file).unwrap(), m);
        let bad = dir.join("missing-folder").join("model.json");
        let err = m.save(&bad).unwrap_err();
        assert!(err.to_string().contains("missing-folder"), "{err}");
        assert!(!crate::io::temp_path(&bad).exists());
        let err = SavedModel::load(&dir.join("nope.json")).unwrap_err();
        assert!(matches!(err, SavedModelError::NotFound { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
