//! Turning the training options into a validated configuration: the model, the optimizer with its
//! PyTorch-named options, the batch mode, the schedule (with warmup), and the engine's settings.
//! Everything is checked here, before any data is trained on, with messages naming the flag.

use gradus::linear::{LinearKind, Penalty};
use gradus::loss::Loss;
use gradus::mlp::Activation;
use gradus::model::Model;
use gradus::nn::{Init, LayerSpec, NetworkSpec, Shape};
use gradus::optim::Optimizer;
use gradus::saved::{ModelSpec, ScaledTarget, TargetScale};
use gradus::schedule::LrSchedule;
use gradus::train::{BatchMode, EarlyStopping, ScheduleUnit, Task, TrainConfig};
use serde_json::{json, Map, Value};

use crate::args::TrainOptions;
use crate::error::CliError;
use crate::prepare::ratings_not_available;

/// Default epochs.
pub const DEFAULT_EPOCHS: usize = 20;
/// Default epochs of `--model cnn`: a convolutional epoch costs a hundred of an MLP's, and the
/// default network has reached its accuracy by then.
pub const DEFAULT_CNN_EPOCHS: usize = 10;
/// Default hidden layer sizes of an MLP.
pub const DEFAULT_HIDDEN: usize = 128;
/// Default validation fraction.
pub const DEFAULT_VAL_FRACTION: f64 = 0.2;

/// The network `--model cnn` trains without `--layers`: two convolution blocks with batch
/// normalization, then a dense layer; 91–92 % test accuracy on Fashion-MNIST in 10 epochs with
/// Adam (see BENCHMARKS.md).
pub const DEFAULT_CNN: &str = "conv2d(16,3,padding=1),batch_norm2d,relu,max_pool2d(2),\
                               conv2d(32,3,padding=1),batch_norm2d,relu,max_pool2d(2),\
                               flatten,linear(128),relu,dropout(0.25),linear";

/// How features are scaled before training (fitted on the training rows, saved with the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// Each column to mean 0 and standard deviation 1.
    Standardize,
    /// Every value divided by the largest one of the training rows, when it exceeds 1 (grey levels
    /// 0–255 to [0, 1]): images keep their contrast across pixels, as networks expect.
    Images,
    /// Raw features.
    None,
}

/// The optimizer of a run.
#[derive(Debug, Clone)]
pub struct OptimizerChoice {
    /// As the user named it (`momentum`, `adam`, ...).
    pub label: String,
    /// The engine's name (`sgd` for momentum and nesterov).
    pub name: &'static str,
    /// Its options, named as in `torch.optim` (only those set; the rest take PyTorch's defaults).
    pub options: Value,
}

impl OptimizerChoice {
    /// `adam (lr 0.001)` and the like.
    pub fn describe(&self) -> String {
        let mut options = vec![format!("lr {}", self.lr())];
        if let Some(o) = self.options.as_object() {
            options.extend(o.iter().filter(|(k, _)| *k != "lr" && *k != "nesterov").map(|(k, v)| format!("{k} {v}")));
        }
        format!("{} ({})", self.label, options.join(", "))
    }

    /// The learning rate: the one given, or the optimizer's default.
    pub fn lr(&self) -> f64 {
        self.options.get("lr").and_then(Value::as_f64).unwrap_or(match self.name {
            "sgd" => 1e-3,
            "adagrad" => 1e-2,
            "rmsprop" => 1e-2,
            "adadelta" => 1.0,
            "nadam" => 2e-3,
            "adamax" => 2e-3,
            "lion" => 1e-4,
            "lbfgs" => 1.0,
            _ => 1e-3,
        })
    }

    /// Builds a first-order optimizer (not L-BFGS).
    pub fn build(&self) -> Result<Box<dyn Optimizer>, CliError> {
        Ok(gradus::optim::from_options(self.name, &self.options)?)
    }
}

/// Everything about one training run but the data.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `mlp`, `cnn`, `linear`, `logistic` or `softmax`.
    pub model: String,
    /// The layers of a network (`cnn`).
    pub layers: Vec<LayerSpec>,
    /// The input shape given with `--input-shape`.
    pub input_shape: Option<Shape>,
    /// Weight initialization of a network.
    pub init: Init,
    /// Hidden layer sizes (MLP).
    pub hidden: Vec<usize>,
    /// Hidden activation (MLP).
    pub activation: Activation,
    /// Penalties (linear models).
    pub penalty: Penalty,
    /// The optimizer.
    pub optimizer: OptimizerChoice,
    /// Batch mode.
    pub batch: BatchMode,
    /// Epochs.
    pub epochs: usize,
    /// Schedule name as given (`constant` = none).
    pub schedule: String,
    /// The schedule flags.
    pub schedule_flags: ScheduleFlags,
    /// Linear warmup steps.
    pub warmup: u64,
    /// Gradient clipping by global norm.
    pub clip_norm: Option<f64>,
    /// Gradient clipping by value.
    pub clip_value: Option<f64>,
    /// Early-stopping patience.
    pub early_stop: Option<usize>,
    /// Convergence tolerance on the training loss.
    pub tol: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// How features are scaled.
    pub scaling: Scaling,
}

/// Options of the schedules, as given.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFlags {
    gamma: Option<f64>,
    step_size: Option<u64>,
    milestones: Option<Vec<u64>>,
    max_lr: Option<f64>,
    eta_min: Option<f64>,
    plateau_patience: Option<usize>,
}

/// Parses `--batch-size`: a number, `full` or `1`.
pub fn parse_batch(text: &str) -> Result<BatchMode, CliError> {
    let expected = "a number of rows >= 1, `full` (batch gradient descent) or `1` (stochastic)";
    match text.trim() {
        "full" => Ok(BatchMode::Full),
        "1" => Ok(BatchMode::Stochastic),
        other => match other.parse::<usize>() {
            Ok(0) | Err(_) => Err(CliError::flag("--batch-size", other, expected)),
            Ok(n) => Ok(BatchMode::MiniBatch(n)),
        },
    }
}

/// The name of a batch mode as the user writes it.
pub fn batch_label(batch: BatchMode) -> String {
    match batch {
        BatchMode::Full => "full".into(),
        BatchMode::Stochastic => "1".into(),
        BatchMode::MiniBatch(n) => n.to_string(),
    }
}

fn parse_activation(name: &str) -> Result<Activation, CliError> {
    Ok(match name {
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        "leaky_relu" => Activation::LeakyRelu,
        "identity" => Activation::Identity,
        other => return Err(CliError::flag("--activation", other, "relu, tanh, sigmoid, leaky_relu or identity")),
    })
}

/// Which optimizer flags each optimizer takes (besides `--lr`).
fn optimizer_flags(label: &str) -> &'static [&'static str] {
    match label {
        "sgd" | "momentum" | "nesterov" => &["momentum", "dampening", "weight_decay"],
        "adam" | "adamw" => &["beta1", "beta2", "eps", "weight_decay", "amsgrad"],
        "nadam" | "radam" | "adamax" => &["beta1", "beta2", "eps", "weight_decay"],
        "lion" => &["beta1", "beta2", "weight_decay"],
        "sparse_adam" => &["beta1", "beta2", "eps"],
        "rmsprop" => &["alpha", "eps", "weight_decay", "momentum", "centered"],
        "adagrad" => &["lr_decay", "eps", "weight_decay"],
        "adadelta" => &["rho", "eps", "weight_decay"],
        _ => &[],
    }
}

/// Every optimizer name the command line takes.
pub const OPTIMIZER_LABELS: [&str; 14] = [
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
    "radam",
    "adamax",
    "adadelta",
    "lion",
    "sparse_adam",
    "lbfgs",
];

/// Resolves the optimizer `label` with the optimizer flags of `opts`.
pub fn optimizer_choice(label: &str, opts: &TrainOptions) -> Result<OptimizerChoice, CliError> {
    let name: &'static str =
        match label {
            "sgd" | "momentum" | "nesterov" => "sgd",
            other => OPTIMIZER_LABELS.iter().copied().find(|n| *n == other).ok_or_else(|| {
                CliError::flag("--optimizer", other, &format!("one of {}", OPTIMIZER_LABELS.join(", ")))
            })?,
        };
    let given: Vec<(&str, Option<Value>)> = vec![
        ("momentum", opts.momentum.map(Value::from)),
        ("dampening", opts.dampening.map(Value::from)),
        ("beta1", opts.beta1.map(Value::from)),
        ("beta2", opts.beta2.map(Value::from)),
        ("eps", opts.eps.map(Value::from)),
        ("weight_decay", opts.weight_decay.map(Value::from)),
        ("alpha", opts.alpha.map(Value::from)),
        ("rho", opts.rho.map(Value::from)),
        ("amsgrad", opts.amsgrad.then_some(Value::Bool(true))),
        ("centered", opts.centered.then_some(Value::Bool(true))),
        ("lr_decay", opts.lr_decay.map(Value::from)),
    ];
    let allowed = optimizer_flags(label);
    let mut options = Map::new();
    if let Some(lr) = opts.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(CliError::flag("--lr", lr, "a finite number > 0"));
        }
        options.insert("lr".into(), lr.into());
    } else if name == "sgd" {
        options.insert("lr".into(), 0.01.into());
    }
    for (flag, value) in &given {
        let Some(value) = value else { continue };
        if !allowed.contains(flag) {
            let takes: Vec<String> =
                std::iter::once("--lr".to_string()).chain(allowed.iter().map(|f| crate::error::flag_for(f))).collect();
            return Err(CliError::usage(format!(
                "{} does not apply to --optimizer {label}: it takes {}",
                crate::error::flag_for(flag),
                takes.join(", ")
            )));
        }
        if *flag != "beta1" && *flag != "beta2" {
            options.insert(flag.to_string(), value.clone());
        }
    }
    if matches!(label, "momentum" | "nesterov") {
        options.entry("momentum").or_insert(json!(0.9));
        if label == "nesterov" {
            options.insert("nesterov".into(), json!(true));
        }
    }
    if opts.beta1.is_some() || opts.beta2.is_some() {
        let default_beta2 = if label == "lion" { 0.99 } else { 0.999 };
        options.insert("betas".into(), json!([opts.beta1.unwrap_or(0.9), opts.beta2.unwrap_or(default_beta2)]));
    }
    let choice = OptimizerChoice { label: label.to_string(), name, options: Value::Object(options) };
    if name == "lbfgs" {
        gradus::optim::LbfgsConfig::from_options(&lbfgs_options(&choice))?;
    } else {
        choice.build()?;
    }
    Ok(choice)
}

/// L-BFGS options for training: the learning rate given, with a strong-Wolfe line search.
pub fn lbfgs_options(choice: &OptimizerChoice) -> Value {
    let mut options = choice.options.clone();
    if let Some(o) = options.as_object_mut() {
        o.insert("line_search_fn".into(), json!("strong_wolfe"));
    }
    options
}

/// The settings of a network the command line builds itself rather than from `--layers` (a text
/// classifier, a language model): `opts` resolved as a network's — so that every optimizer,
/// schedule, batch and clipping flag applies as it does to `--model cnn` — then named `model`,
/// with no layers of its own and no feature scaling.
pub fn resolve_built_network(model: &str, opts: &TrainOptions, task: Task) -> Result<Settings, CliError> {
    let as_network =
        TrainOptions { model: Some("cnn".into()), layers: Some("embedding_bag(1,1),linear".into()), ..opts.clone() };
    let mut settings = resolve(&as_network, task)?;
    settings.model = model.into();
    settings.layers.clear();
    settings.scaling = Scaling::None;
    Ok(settings)
}

/// Validates the options of `opts` for a run of `task`.
pub fn resolve(opts: &TrainOptions, task: Task) -> Result<Settings, CliError> {
    let model = match opts.model.as_deref() {
        Some(m) => m.to_string(),
        None => match task {
            Task::Regression => "linear".to_string(),
            Task::Ratings => return Err(ratings_not_available("--task ratings")),
            _ => "mlp".to_string(),
        },
    };
    let fits = match model.as_str() {
        "mlp" | "cnn" => task != Task::Ratings,
        "linear" => task == Task::Regression,
        "logistic" => task == Task::Binary,
        "softmax" => matches!(task, Task::Binary | Task::Multiclass),
        "mf" => return Err(ratings_not_available("--model mf")),
        other => return Err(CliError::flag("--model", other, "linear, logistic, softmax, mlp, cnn or mf")),
    };
    if !fits {
        let suggestion = match task {
            Task::Regression => "linear, mlp or cnn",
            Task::Binary => "logistic, softmax, mlp or cnn",
            Task::Multiclass => "softmax, mlp or cnn",
            Task::Ratings => "mf",
        };
        return Err(CliError::usage(format!(
            "--model {model} does not fit a {} task: expected {suggestion}",
            task.name()
        )));
    }
    let is_mlp = model == "mlp";
    let is_network = model == "cnn";
    if !is_network {
        let flag = [
            ("--layers", opts.layers.is_some()),
            ("--input-shape", opts.input_shape.is_some()),
            ("--init", opts.init.is_some()),
        ]
        .into_iter()
        .find(|(_, given)| *given);
        if let Some((flag, _)) = flag {
            return Err(CliError::usage(format!("{flag} applies to --model cnn, not {model}")));
        }
    }
    let layers =
        if is_network { LayerSpec::parse_list(opts.layers.as_deref().unwrap_or(DEFAULT_CNN))? } else { Vec::new() };
    let input_shape = opts.input_shape.as_deref().map(Shape::parse).transpose()?;
    let init = opts.init.as_deref().map(Init::parse).transpose()?.unwrap_or_default();
    if !is_mlp && (opts.hidden.is_some() || opts.activation.is_some()) {
        return Err(CliError::usage(format!("--hidden and --activation apply to --model mlp, not {model}")));
    }
    if opts.factors.is_some() || opts.mf_order.is_some() {
        let flag = if opts.factors.is_some() { "--factors" } else { "--mf-order" };
        return Err(CliError::usage(format!("{flag} applies to --model mf")));
    }
    if opts.hidden.as_ref().is_some_and(Vec::is_empty) {
        return Err(CliError::usage(
            "--hidden: found an empty list: expected layer sizes, e.g. `--hidden 128` or `--hidden 64,32`",
        ));
    }
    if opts.milestones.as_ref().is_some_and(Vec::is_empty) {
        return Err(CliError::usage("--milestones: found an empty list: expected epochs, e.g. `--milestones 10,15`"));
    }
    let hidden = opts.hidden.clone().unwrap_or_else(|| vec![DEFAULT_HIDDEN]);
    if let Some(bad) = hidden.iter().find(|&&h| h == 0) {
        return Err(CliError::flag("--hidden", bad, "layer sizes >= 1, e.g. `--hidden 128` or `--hidden 64,32`"));
    }
    let activation = parse_activation(opts.activation.as_deref().unwrap_or("relu"))?;
    if (is_mlp || is_network) && (opts.l1.is_some() || opts.l2.is_some()) {
        return Err(CliError::usage(format!(
            "--l1 and --l2 apply to linear models; for --model {model} use --weight-decay"
        )));
    }
    let penalty = Penalty { l2: opts.l2.unwrap_or(0.0), l1: opts.l1.unwrap_or(0.0) };
    penalty.validate()?;
    let optimizer = optimizer_choice(opts.optimizer.as_deref().unwrap_or("adam"), opts)?;
    let batch = match &opts.batch_size {
        Some(text) => parse_batch(text)?,
        None => BatchMode::MiniBatch(32),
    };
    let epochs = opts.epochs.unwrap_or(if is_network { DEFAULT_CNN_EPOCHS } else { DEFAULT_EPOCHS });
    if epochs == 0 {
        return Err(CliError::flag("--epochs", 0, "at least 1"));
    }
    // Checked whatever the schedule, so that a bad value is never silently ignored.
    for (flag, value) in [("--gamma", opts.gamma), ("--max-lr", opts.max_lr), ("--eta-min", opts.eta_min)] {
        if let Some(v) = value.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(CliError::flag(flag, v, "a finite number >= 0"));
        }
    }
    let schedule = opts.schedule.clone().unwrap_or_else(|| "constant".into());
    let warmup = opts.warmup.unwrap_or(0);
    let engine_only = opts.batch_size.is_some()
        || schedule != "constant"
        || warmup > 0
        || opts.early_stop.is_some()
        || opts.clip_norm.is_some()
        || opts.clip_value.is_some();
    if optimizer.name == "lbfgs" && engine_only {
        return Err(CliError::usage(
            "--optimizer lbfgs trains on the full batch with a line search: it takes no --batch-size, --schedule, \
             --warmup, --early-stop or clipping",
        ));
    }
    if warmup > 0 && schedule == "plateau" {
        return Err(CliError::usage("--warmup cannot be combined with --schedule plateau"));
    }
    if opts.early_stop == Some(0) {
        return Err(CliError::flag("--early-stop", 0, "a patience of at least 1 epoch"));
    }
    let scaling = match (opts.no_standardize, is_network) {
        (true, _) => Scaling::None,
        (false, true) => Scaling::Images,
        (false, false) => Scaling::Standardize,
    };
    let settings = Settings {
        model,
        layers,
        input_shape,
        init,
        hidden,
        activation,
        penalty,
        optimizer,
        batch,
        epochs,
        schedule,
        schedule_flags: ScheduleFlags {
            gamma: opts.gamma,
            step_size: opts.step_size,
            milestones: opts.milestones.clone(),
            max_lr: opts.max_lr,
            eta_min: opts.eta_min,
            plateau_patience: opts.plateau_patience,
        },
        warmup,
        clip_norm: opts.clip_norm,
        clip_value: opts.clip_value,
        early_stop: opts.early_stop,
        tol: opts.tol,
        seed: opts.seed.unwrap_or(0),
        scaling,
    };
    settings.train_config(None).validate()?;
    // Build the schedule once for a nominal run, so that bad schedule options fail now.
    settings.schedule(10, settings.optimizer.lr())?;
    Ok(settings)
}

impl Settings {
    /// The model for `inputs` features and `classes` classes, and its saved description.
    pub fn model(
        &self,
        task: Task,
        inputs: usize,
        classes: usize,
        target_scale: Option<TargetScale>,
        data_shape: Option<&Shape>,
    ) -> Result<(Box<dyn Model>, ModelSpec), CliError> {
        let spec = match self.model.as_str() {
            "cnn" => {
                let (outputs, loss) = match task {
                    Task::Binary => (1, Loss::BceWithLogits),
                    Task::Multiclass => (classes, Loss::CrossEntropy { label_smoothing: 0.0 }),
                    _ => (1, Loss::Mse),
                };
                let input = self.input_shape(inputs, data_shape)?;
                let spec = NetworkSpec::new(input, self.layers.clone(), loss).init(self.init).with_outputs(outputs)?;
                ModelSpec::Network { network: spec }
            }
            "mlp" => {
                let (outputs, loss) = match task {
                    Task::Binary => (1, Loss::BceWithLogits),
                    Task::Multiclass => (classes, Loss::CrossEntropy { label_smoothing: 0.0 }),
                    _ => (1, Loss::Mse),
                };
                let mut sizes = vec![inputs];
                sizes.extend(&self.hidden);
                sizes.push(outputs);
                let mut activations = vec![self.activation; self.hidden.len()];
                activations.push(Activation::Identity);
                ModelSpec::Mlp { sizes, activations, loss }
            }
            kind => {
                let linear = match kind {
                    "linear" => LinearKind::Linear,
                    "logistic" => LinearKind::Logistic,
                    _ => LinearKind::Softmax,
                };
                ModelSpec::Linear { linear, inputs, classes, penalty: self.penalty }
            }
        };
        let inner = spec.build().map_err(|e| match e.option.as_str() {
            // The MLP's sizes are --hidden's, between the data's features and the outputs.
            "sizes" => CliError::usage(format!(
                "--hidden {} on {inputs} features: {}: expected {}",
                self.hidden.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                e.value,
                e.expected
            )),
            _ => CliError::from(e),
        })?;
        let model: Box<dyn Model> = match target_scale {
            Some(scale) => Box::new(ScaledTarget::new(inner, scale)),
            None => inner,
        };
        Ok((model, spec))
    }

    /// The error for a model too large for this machine, naming what sized it: `--hidden` (the
    /// widths of an MLP) on the data's `inputs` features, or the data's width for a linear model.
    pub fn memory_error(&self, inputs: usize, error: gradus::memory::MemoryError) -> CliError {
        match self.model.as_str() {
            "mlp" => {
                let hidden = self.hidden.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                CliError::usage(format!("--hidden {hidden} on {inputs} features: {error}"))
                    .hint("use smaller --hidden sizes, or data with fewer features")
            }
            "cnn" => CliError::usage(format!("--layers on {inputs} features: {error}"))
                .hint("use fewer or smaller --layers, or data with fewer features"),
            // Sized by its vocabulary (words and n-gram buckets) times the embedding's width.
            "text_classifier" => CliError::usage(format!("--embedding-dim and the vocabulary (--buckets): {error}"))
                .hint("use a smaller --embedding-dim, fewer --buckets or a smaller --max-vocab"),
            "language_model" => CliError::usage(format!(
                "--embedding-dim, --hidden, --batch-size, --bptt and the vocabulary (--max-vocab): {error}"
            ))
            .hint("use a smaller --max-vocab, --hidden, --embedding-dim, --batch-size or --bptt"),
            model => CliError::usage(format!("--model {model} on {inputs} features: {error}"))
                .hint("use data with fewer features"),
        }
    }

    /// The shape of a network's input rows: `--input-shape`; else flat rows when the first layer
    /// takes any rows; else the data set's image shape, or a square grey image when `inputs` is a
    /// square. It must hold `inputs` values.
    pub fn input_shape(&self, inputs: usize, data_shape: Option<&Shape>) -> Result<Shape, CliError> {
        // Layers that take images (and the data's image shape matters to them).
        let wants_images = matches!(
            self.layers.first(),
            Some(
                LayerSpec::Conv2d { .. }
                    | LayerSpec::MaxPool2d { .. }
                    | LayerSpec::AvgPool2d { .. }
                    | LayerSpec::BatchNorm2d { .. }
            )
        );
        let shape = match (&self.input_shape, data_shape) {
            (Some(given), _) => given.clone(),
            (None, _) if !wants_images => Shape::flat(inputs),
            (None, Some(shape)) => shape.clone(),
            (None, None) => {
                let side = (inputs as f64).sqrt().round() as usize;
                if side * side == inputs && side > 1 {
                    Shape::image(1, side, side)
                } else {
                    Shape::flat(inputs)
                }
            }
        };
        if shape.checked_len() != Some(inputs) {
            return Err(CliError::usage(format!(
                "--input-shape {}: holds {} values, the data has {inputs} features per row",
                shape.dims().iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                shape.checked_len().map_or("too many".to_string(), |n| n.to_string())
            )));
        }
        Ok(shape)
    }

    /// Whether the schedule advances per update rather than per epoch.
    pub fn per_step(&self) -> bool {
        self.warmup > 0 || matches!(self.schedule.as_str(), "one_cycle" | "cyclic")
    }

    /// The engine's configuration (`checkpoint` when writing checkpoints).
    pub fn train_config(&self, checkpoint: Option<gradus::train::CheckpointConfig>) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch: self.batch,
            seed: self.seed,
            tol: self.tol,
            early_stopping: self.early_stop.map(|patience| EarlyStopping { patience, metric: None, min_delta: 0.0 }),
            clip_norm: self.clip_norm,
            clip_value: self.clip_value,
            schedule_unit: if self.per_step() { ScheduleUnit::Step } else { ScheduleUnit::Epoch },
            // A network's training metrics are the running mean of its batch losses (as Keras
            // reports them): a second pass over the training rows would cost a third of an epoch.
            evaluate_train: !matches!(self.model.as_str(), "cnn" | "language_model" | "text_classifier"),
            // A language model reads its corpus in order, each mini-batch continuing the last.
            shuffle: self.model != "language_model",
            checkpoint,
            ..TrainConfig::default()
        }
    }

    /// The learning-rate control for `steps_per_epoch` updates per epoch from `base_lr`: `None`
    /// for a constant rate. Epoch-denominated options (`--step-size`, `--milestones`, the cosine
    /// period) are converted to updates when the schedule advances per update.
    pub fn schedule(&self, steps_per_epoch: u64, base_lr: f64) -> Result<Option<LrSchedule>, CliError> {
        let (name, options) = self.schedule_options(steps_per_epoch, base_lr)?;
        if self.warmup == 0 {
            if name == "fixed" {
                return Ok(None);
            }
            return Ok(Some(gradus::schedule::from_options(name, &options, base_lr)?));
        }
        let warmup = json!({
            "schedule": "linear",
            "options": {"start_factor": 1.0 / self.warmup as f64, "end_factor": 1.0, "total_iters": self.warmup}
        });
        let sequential = json!({
            "schedules": [warmup, {"schedule": name, "options": options}],
            "milestones": [self.warmup],
        });
        Ok(Some(gradus::schedule::from_options("sequential", &sequential, base_lr)?))
    }

    /// The library's name and options of the schedule (after any warmup), for `steps_per_epoch`
    /// updates per epoch from `base_lr`.
    pub fn schedule_options(&self, steps_per_epoch: u64, base_lr: f64) -> Result<(&'static str, Value), CliError> {
        let f = &self.schedule_flags;
        let per_step = self.per_step();
        let unit = if per_step { steps_per_epoch.max(1) } else { 1 };
        // Epoch counts become update counts: a product past u64 is a number no run reaches.
        let updates = |flag: &str, epochs: u64| {
            epochs.checked_mul(unit).ok_or_else(|| {
                CliError::usage(format!(
                    "{flag} {epochs}: {epochs} epochs of {unit} updates is more updates than can be counted"
                ))
            })
        };
        let total = updates("--epochs", self.epochs as u64)?.saturating_sub(self.warmup).max(1);
        let max_lr = f.max_lr.unwrap_or(10.0 * base_lr);
        let (name, options) = match self.schedule.as_str() {
            "constant" => ("fixed", json!({})),
            "step" => (
                "step",
                json!({"step_size": updates("--step-size", f.step_size.unwrap_or(10))?, "gamma": f.gamma.unwrap_or(0.1)}),
            ),
            "multi_step" => {
                let milestones: Vec<u64> = f
                    .milestones
                    .clone()
                    .unwrap_or_else(|| vec![10, 15])
                    .iter()
                    .map(|&m| updates("--milestones", m))
                    .collect::<Result<_, _>>()?;
                ("multi_step", json!({"milestones": milestones, "gamma": f.gamma.unwrap_or(0.1)}))
            }
            "exponential" => {
                let gamma = f.gamma.unwrap_or(0.95);
                let gamma = if per_step { gamma.powf(1.0 / unit as f64) } else { gamma };
                ("exponential", json!({ "gamma": gamma }))
            }
            "inverse_time" => ("inverse_time", json!({"decay": f.gamma.unwrap_or(0.1) / unit as f64})),
            "polynomial" => ("polynomial", json!({ "total_iters": total })),
            "cosine" => ("cosine", json!({"T_max": total, "eta_min": f.eta_min.unwrap_or(0.0)})),
            "cosine_warm_restarts" => (
                "cosine_warm_restarts",
                json!({"T_0": updates("--step-size", f.step_size.unwrap_or(10))?, "eta_min": f.eta_min.unwrap_or(0.0)}),
            ),
            "one_cycle" => ("one_cycle", json!({"max_lr": max_lr, "total_steps": total})),
            "cyclic" => (
                "cyclic",
                json!({"max_lr": max_lr, "step_size_up": updates("--step-size", f.step_size.unwrap_or(2))? as f64}),
            ),
            "plateau" => (
                "reduce_on_plateau",
                json!({"factor": f.gamma.unwrap_or(0.1), "patience": f.plateau_patience.unwrap_or(10)}),
            ),
            other => {
                return Err(CliError::flag(
                    "--schedule",
                    other,
                    "constant, step, multi_step, exponential, inverse_time, polynomial, cosine, \
                     cosine_warm_restarts, one_cycle, cyclic or plateau",
                ))
            }
        };
        Ok((name, options))
    }
}
