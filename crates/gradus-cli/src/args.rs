//! Command-line arguments, parsed by clap. Parsing only: turning them into a validated
//! configuration happens in `config.rs`, so the same checks apply to `--config FILE.toml`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// gradus: gradient descent in all its forms.
#[derive(Debug, Parser)]
#[command(name = "gradus", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    /// Print nothing but errors and requested output.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Size of every picture drawn with --plot, in pixels [default: 1200x500 for curves, 1100x850 for
    /// surfaces, 900x600 for lr-find].
    #[arg(long, global = true, value_name = "WxH", value_parser = parse_plot_size, allow_hyphen_values = true)]
    pub plot_size: Option<(u32, u32)>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (default: an MLP on the built-in `digits` data set) and print what it did.
    Train(TrainArgs),
    /// Metrics of a saved model on new data.
    Evaluate(EvaluateArgs),
    /// Predictions of a saved model (class and probabilities, or values).
    Predict(PredictArgs),
    /// Continue a prompt with a trained language model.
    Generate(GenerateArgs),
    /// Train the same task with several optimizers, learning rates, batch sizes or schedules.
    Compare(CompareArgs),
    /// Run optimizers on a test surface and draw their paths on its contour map.
    Surface(SurfaceArgs),
    /// Learning-rate range test: raise the learning rate per mini-batch and suggest a value.
    LrFind(LrFindArgs),
    /// List the built-in data sets.
    Datasets,
}

/// Where the data comes from.
#[derive(Debug, Clone, Args, Default)]
pub struct DataArgs {
    /// A CSV (header row; `.gz` read transparently), LIBSVM (`.svm`, `.libsvm`) or ratings file, or
    /// an IDX image file (with --labels).
    #[arg(long, value_name = "FILE", conflicts_with = "dataset")]
    pub data: Option<PathBuf>,
    /// The IDX label file of the IDX image file given to --data (MNIST's format).
    #[arg(long, value_name = "FILE", requires = "data")]
    pub labels: Option<PathBuf>,
    /// A built-in data set (see `gradus datasets`) [default: digits].
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// The target column of a CSV file [default: the last column].
    #[arg(long, value_name = "COLUMN")]
    pub target: Option<String>,
    /// The task; inferred from the target when absent (and said so).
    #[arg(long, value_parser = ["regression", "binary", "multiclass", "ratings", "language_model"])]
    pub task: Option<String>,
}

/// Model, optimizer and training options shared by `train`, `compare` and `lr-find`.
#[derive(Debug, Clone, Args, Default)]
pub struct TrainOptions {
    /// Model [default: mlp for classification, linear for regression, mf for ratings,
    /// text_classifier with --text, language_model for --task language_model]; `cnn` is a network
    /// of the layers --layers lists.
    #[arg(long, value_parser = ["linear", "logistic", "softmax", "mlp", "cnn", "mf", "text_classifier", "language_model"])]
    pub model: Option<String>,
    /// The layers of a network (`--model cnn`), comma-separated in PyTorch's names, e.g.
    /// "conv2d(6,5,padding=2),relu,max_pool2d(2),flatten,linear(120),relu,linear"; the last linear
    /// may leave out its size [default: a small CNN, see `gradus train --help`].
    #[arg(long, value_name = "SPEC")]
    pub layers: Option<String>,
    /// The shape of each row as an image for a network, `C,H,W` [default: the data set's, or a
    /// square grey image when the feature count is a square].
    #[arg(long, value_name = "C,H,W")]
    pub input_shape: Option<String>,
    /// Weight initialization of a network: torch (PyTorch's defaults), he, xavier or auto
    /// [default: torch].
    #[arg(long, value_parser = ["torch", "he", "xavier", "auto"])]
    pub init: Option<String>,
    /// Hidden layer sizes of an MLP [default: 128].
    #[arg(long, value_name = "SIZES", value_delimiter = ',', allow_negative_numbers = true, value_parser = whole_usize)]
    pub hidden: Option<Vec<usize>>,
    /// Hidden activation of an MLP [default: relu].
    #[arg(long, value_parser = ["relu", "tanh", "sigmoid", "leaky_relu", "identity"])]
    pub activation: Option<String>,
    /// Latent factors of matrix factorization [default: 100].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub factors: Option<usize>,
    /// Order in which per-rating SGD visits the ratings in matrix factorization: `random` (one shuffled
    /// sequence, as Funk SVD and scikit-surprise) or `stratified` (blocks that share no user or item,
    /// trained at once on every thread: DSGD; the same model on any thread count) [default: random].
    #[arg(long, value_name = "ORDER", value_parser = ["random", "stratified"])]
    pub mf_order: Option<String>,
    /// L2 penalty of linear models and matrix factorization [default: 0; mf: 0.02].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub l2: Option<f64>,
    /// L1 penalty of linear models [default: 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub l1: Option<f64>,
    /// Optimizer [default: adam] (mf: sgd one rating at a time, Funk SVD).
    #[arg(long, value_parser = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam", "radam", "adamax", "adadelta", "lion", "sparse_adam", "lbfgs"])]
    pub optimizer: Option<String>,
    /// Learning rate [default: the optimizer's PyTorch default (adam 0.001); sgd, momentum, nesterov 0.01; lbfgs 1; mf 0.005].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub lr: Option<f64>,
    /// Momentum (sgd, momentum, nesterov, rmsprop) [default: 0.9 for momentum/nesterov, else 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub momentum: Option<f64>,
    /// Dampening of SGD momentum [default: 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub dampening: Option<f64>,
    /// First moment decay β1 of Adam-like optimizers and Lion [default: 0.9].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub beta1: Option<f64>,
    /// Second moment decay β2 of Adam-like optimizers [default: 0.999; lion 0.99].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub beta2: Option<f64>,
    /// Term added to denominators for stability [default: the optimizer's PyTorch default].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub eps: Option<f64>,
    /// Weight decay [default: 0; adamw 0.01].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub weight_decay: Option<f64>,
    /// Smoothing constant of RMSprop [default: 0.99].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub alpha: Option<f64>,
    /// Decay of Adadelta's running averages [default: 0.9].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub rho: Option<f64>,
    /// Use the AMSGrad variant of Adam/AdamW [default: false].
    #[arg(long)]
    pub amsgrad: bool,
    /// Centered RMSprop [default: false].
    #[arg(long)]
    pub centered: bool,
    /// Learning-rate decay of Adagrad [default: 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub lr_decay: Option<f64>,
    /// Rows per update: a number (mini-batch), `full` (batch gradient descent) or `1` (stochastic) [default: 32]
    /// (mf with plain sgd: one rating at a time).
    #[arg(long, value_name = "N|full|1", allow_negative_numbers = true)]
    pub batch_size: Option<String>,
    /// Epochs [default: 20; 10 for --model cnn].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub epochs: Option<usize>,
    /// Learning-rate schedule, stepped per epoch (per update for one_cycle, cyclic and with --warmup)
    /// [default: constant].
    #[arg(long, value_name = "NAME", value_parser = ["constant", "step", "multi_step", "exponential", "inverse_time", "polynomial", "cosine", "cosine_warm_restarts", "one_cycle", "cyclic", "plateau"])]
    pub schedule: Option<String>,
    /// Decay factor of step, multi_step, exponential and plateau schedules, decay of inverse_time
    /// [default: 0.1; exponential 0.95].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub gamma: Option<f64>,
    /// Period of the step schedule and restart period of cosine_warm_restarts, in epochs [default: 10];
    /// half cycle of cyclic [default: 2].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_u64)]
    pub step_size: Option<u64>,
    /// Milestones of the multi_step schedule, in epochs [default: 10,15].
    #[arg(long, value_name = "E1,E2", value_delimiter = ',', allow_negative_numbers = true, value_parser = whole_u64)]
    pub milestones: Option<Vec<u64>>,
    /// Peak learning rate of one_cycle and cyclic [default: 10 × --lr].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub max_lr: Option<f64>,
    /// Lowest learning rate of cosine schedules [default: 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub eta_min: Option<f64>,
    /// Patience of the plateau schedule, in epochs [default: 10].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub plateau_patience: Option<usize>,
    /// Linear warmup over this many updates, then the schedule [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_u64)]
    pub warmup: Option<u64>,
    /// Clip the global gradient norm [default: off].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub clip_norm: Option<f64>,
    /// Clip each gradient element to [-X, X] [default: off].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub clip_value: Option<f64>,
    /// Stop when the validation metric has not improved for this many epochs [default: off].
    #[arg(long, value_name = "PATIENCE", allow_negative_numbers = true, value_parser = whole_usize)]
    pub early_stop: Option<usize>,
    /// Stop when the training loss changes by less than this between epochs [default: off].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub tol: Option<f64>,
    /// Fraction of rows held out for validation [default: 0.2; 0 with --folds].
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = number)]
    pub val_fraction: Option<f64>,
    /// Seed of initialization, splits and shuffles [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_u64)]
    pub seed: Option<u64>,
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub threads: Option<usize>,
    /// Train on the raw features instead of standardizing them [default: standardized, with means and
    /// deviations of the training rows only].
    #[arg(long)]
    pub no_standardize: bool,
}

/// Text columns and how they are tokenized (`gradus train` of a text classifier).
#[derive(Debug, Clone, Args, Default)]
pub struct TextArgs {
    /// Columns of a CSV file whose text (joined with a space) is each row's input, for a text
    /// classifier (fastText's: the mean of word and n-gram embeddings, then a linear layer)
    /// [default: the data set's text columns, e.g. title,review_text for `reviews`].
    #[arg(long, value_name = "COLUMN[,COLUMN...]", value_delimiter = ',')]
    pub text: Option<Vec<String>>,
    /// Longest word n-gram that is a token: 1 for words only, 2 adds bigrams [default: 2].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub ngrams: Option<usize>,
    /// Hash every n-gram into B buckets shared by them (fastText's way; --ngram-min-count 0)
    /// [default: 100000 when hashed].
    #[arg(long, value_name = "B", allow_negative_numbers = true, value_parser = whole_usize)]
    pub buckets: Option<usize>,
    /// N-grams seen at least N times in the training rows get an embedding of their own and the
    /// others are dropped (an n-gram vocabulary, as scikit-learn's); 0 hashes every n-gram into
    /// --buckets rows, as fastText does [default: 3; 0 when --buckets is given].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub ngram_min_count: Option<usize>,
    /// Words seen fewer times in the training rows are unknown [default: 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub min_count: Option<usize>,
    /// Keep at most this many of the most frequent words [default: all].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub max_vocab: Option<usize>,
    /// Keep punctuation marks as tokens [default: words only].
    #[arg(long)]
    pub keep_punctuation: bool,
    /// Size of each token's embedding [default: 32 for a text classifier, 200 for a language model].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub embedding_dim: Option<usize>,
    /// Steps of truncated backpropagation through time of a language model: the length of the
    /// chunks each stream of the corpus is cut into [default: 35].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub bptt: Option<usize>,
    /// Recurrent cell of a language model [default: lstm].
    #[arg(long, value_parser = ["lstm", "gru"])]
    pub cell: Option<String>,
}

impl TextArgs {
    /// The first tokenization flag given, if any (they apply to text models only).
    pub fn first_given(&self) -> Option<&'static str> {
        [
            ("--text", self.text.is_some()),
            ("--ngrams", self.ngrams.is_some()),
            ("--buckets", self.buckets.is_some()),
            ("--ngram-min-count", self.ngram_min_count.is_some()),
            ("--min-count", self.min_count.is_some()),
            ("--max-vocab", self.max_vocab.is_some()),
            ("--keep-punctuation", self.keep_punctuation),
            ("--embedding-dim", self.embedding_dim.is_some()),
            ("--bptt", self.bptt.is_some()),
            ("--cell", self.cell.is_some()),
        ]
        .into_iter()
        .find(|(_, given)| *given)
        .map(|(flag, _)| flag)
    }
}

/// `gradus train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Data.
    #[command(flatten)]
    pub data: DataArgs,
    /// Text columns and tokenization.
    #[command(flatten)]
    pub text: TextArgs,
    /// Model and training options.
    #[command(flatten)]
    pub options: TrainOptions,
    /// K-fold cross-validation instead of one split [default: off].
    #[arg(long, value_name = "K", allow_negative_numbers = true, value_parser = whole_usize)]
    pub folds: Option<usize>,
    /// Save the trained model (with its standardization and label map) to this file.
    #[arg(long, value_name = "MODEL")]
    pub save: Option<PathBuf>,
    /// Write a checkpoint every N epochs (to --checkpoint, default `<save>.ckpt` or `gradus.ckpt`).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub checkpoint_every: Option<usize>,
    /// Checkpoint file written by --checkpoint-every [default: gradus.ckpt].
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Resume from a checkpoint of the same run.
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// Plot the loss and metric curves to a PNG or SVG file.
    #[arg(long, value_name = "FILE.png|FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write the metrics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub metrics_json: Option<PathBuf>,
    /// Print one JSON object per epoch on stdout.
    #[arg(long)]
    pub json: bool,
    /// Read options from a TOML file (the same names as the flags; flags override it).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
}

/// `gradus evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A model saved by `gradus train --save`.
    pub model: PathBuf,
    /// Data with the model's feature columns (and its target column), or an IDX image file
    /// (with --labels).
    #[arg(long, value_name = "FILE", required_unless_present = "dataset", conflicts_with = "dataset")]
    pub data: Option<PathBuf>,
    /// A built-in data set (see `gradus datasets`), such as `fashion_mnist_test`.
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// The IDX label file of the IDX image file given to --data.
    #[arg(long, value_name = "FILE", requires = "data")]
    pub labels: Option<PathBuf>,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `gradus predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model saved by `gradus train --save`.
    pub model: PathBuf,
    /// Data with the model's feature columns (a target column, if present, is ignored).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["image", "text"], conflicts_with_all = ["image", "text"])]
    pub data: Option<PathBuf>,
    /// A text for a text classifier (repeat for several): its class and that class's
    /// probability are printed.
    #[arg(long, value_name = "TEXT", conflicts_with = "image", allow_hyphen_values = true)]
    pub text: Option<Vec<String>>,
    /// Images (PNG or JPEG, any size) for an image model: each is converted to the model's
    /// channels and size, and its most likely classes are printed.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub image: Option<Vec<PathBuf>>,
    /// Classes listed per image with --image [default: 3].
    #[arg(long, value_name = "K", requires = "image", allow_negative_numbers = true, value_parser = whole_usize)]
    pub top: Option<usize>,
    /// Invert the grey levels of --image files (dark objects on a light background, for models
    /// trained on light objects on black, as MNIST and Fashion-MNIST).
    #[arg(long, requires = "image")]
    pub invert: bool,
    /// Write predictions to this CSV file instead of stdout.
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// With --text and a text classifier: list the words that pushed each prediction most
    /// (their contribution to the predicted class's logit).
    #[arg(long, requires = "text")]
    pub explain: bool,
}

/// `gradus generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The saved language model (`gradus train --task language_model --save FILE`).
    pub model: PathBuf,
    /// The text to continue [default: the start of a document].
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub prompt: Option<String>,
    /// Tokens (words and punctuation) to add [default: 20].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub words: Option<usize>,
    /// Divides the logits before sampling: below 1 more likely words, above 1 more varied; 0
    /// takes the most likely word each time [default: 1].
    #[arg(long, value_name = "T", allow_negative_numbers = true, value_parser = number)]
    pub temperature: Option<f64>,
    /// Sample among the K most likely next words only [default: all].
    #[arg(long, value_name = "K", allow_negative_numbers = true, value_parser = whole_usize)]
    pub top_k: Option<usize>,
    /// Seed of the sampling [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_u64)]
    pub seed: Option<u64>,
    /// Continuations to write, each from the prompt [default: 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub samples: Option<usize>,
}

/// `gradus compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Data.
    #[command(flatten)]
    pub data: DataArgs,
    /// Options shared by every run.
    #[command(flatten)]
    pub options: TrainOptions,
    /// Optimizers to compare, comma-separated [default: sgd,momentum,adam when nothing else varies].
    #[arg(long, value_name = "LIST", value_delimiter = ',', allow_negative_numbers = true)]
    pub optimizers: Option<Vec<String>>,
    /// Learning rates to compare, comma-separated (several lists run every combination).
    #[arg(long, value_name = "LIST", value_delimiter = ',', allow_negative_numbers = true, value_parser = number)]
    pub lrs: Option<Vec<f64>>,
    /// Batch sizes to compare (numbers, `full`, `1`), comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',', allow_negative_numbers = true)]
    pub batch_sizes: Option<Vec<String>>,
    /// Schedules to compare, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',', allow_negative_numbers = true)]
    pub schedules: Option<Vec<String>>,
    /// Count epochs until the validation metric reaches this value [default: off].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub target_metric: Option<f64>,
    /// Draw every run's curves on one plot (PNG or SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write the comparison as JSON.
    #[arg(long, value_name = "FILE")]
    pub metrics_json: Option<PathBuf>,
}

/// `gradus surface`.
#[derive(Debug, Args)]
pub struct SurfaceArgs {
    /// The test function: sphere, quadratic, rosenbrock, beale, booth, himmelblau, rastrigin, ackley, saddle, styblinski_tang.
    pub function: String,
    /// Optimizers to run, comma-separated, each optionally with its learning rate (`adam:0.05`) [default: sgd,momentum,adam].
    #[arg(long, value_name = "LIST", value_delimiter = ',', allow_negative_numbers = true)]
    pub optimizers: Option<Vec<String>>,
    /// Learning rate for optimizers given without one [default: each optimizer's surface default].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub lr: Option<f64>,
    /// Start point `x,y` [default: the function's usual start].
    #[arg(long, value_name = "X,Y", value_delimiter = ',', allow_hyphen_values = true, value_parser = number)]
    pub start: Option<Vec<f64>>,
    /// Steps per optimizer [default: 500].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub steps: Option<usize>,
    /// Draw the contour map and paths to a PNG or SVG file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `gradus lr-find`.
#[derive(Debug, Args)]
pub struct LrFindArgs {
    /// Data.
    #[command(flatten)]
    pub data: DataArgs,
    /// Model and optimizer options.
    #[command(flatten)]
    pub options: TrainOptions,
    /// Lowest learning rate tried [default: 1e-7].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub start_lr: Option<f64>,
    /// Highest learning rate tried [default: 10].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = number)]
    pub end_lr: Option<f64>,
    /// Mini-batches in the test [default: 100].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub num_steps: Option<usize>,
    /// Plot loss against learning rate (PNG or SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `WIDTHxHEIGHT` (e.g. `800x600`), each side 100 to 16384 pixels.
fn parse_plot_size(text: &str) -> Result<(u32, u32), String> {
    let expected =
        || format!("`{text}` is not a picture size: expected WIDTHxHEIGHT in pixels, e.g. 800x600, each 100 to 16384");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(expected)?;
    let w: u32 = w.trim().parse().map_err(|_| expected())?;
    let h: u32 = h.trim().parse().map_err(|_| expected())?;
    if !(100..=16384).contains(&w) || !(100..=16384).contains(&h) {
        return Err(expected());
    }
    Ok((w, h))
}

/// Parses a whole number >= 0 (`usize`); the message says what was expected, and clap names the
/// option (see `main`).
pub fn whole_usize(text: &str) -> Result<usize, String> {
    whole(text)
        .and_then(|n| usize::try_from(n).map_err(|_| format!("expected a whole number from 0 to {}", usize::MAX)))
}

/// Parses a whole number >= 0 (`u64`).
pub fn whole_u64(text: &str) -> Result<u64, String> {
    whole(text)
}

fn whole(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("expected a whole number >= 0, found nothing (an empty list or list item?)".into());
    }
    match trimmed.parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) if trimmed.starts_with('-') && trimmed[1..].bytes().all(|b| b.is_ascii_digit()) => {
            Err("expected a whole number >= 0".into())
        }
        Err(_) if trimmed.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("expected a whole number from 0 to {}", u64::MAX))
        }
        Err(_) => Err("expected a whole number >= 0".into()),
    }
}

/// Parses a number (`f64`); checking its range is left to the option's own validation, whose
/// message says what the option takes.
pub fn number(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("expected a number, found nothing (an empty list or list item?)".into());
    }
    trimmed.parse::<f64>().map_err(|_| "expected a number, e.g. 0.01 or 1e-3".into())
}
