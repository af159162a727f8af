//! Loading a data set for training and preparing it: the task (given, known or inferred), class
//! labels, the train/validation split, and standardization fitted on the training rows only.

use std::path::Path;

use gradus::data::{
    builtin, quote_cell, read_csv, read_idx, read_libsvm, stratified_kfold, stratified_train_test_split,
    train_test_split, CsvOptions, Dataset, LabelMap, Split, Standardizer,
};
use gradus::saved::TargetScale;
use gradus::train::Task;

use crate::args::DataArgs;
use crate::error::CliError;
use crate::setup::Scaling;
use gradus::nn::Shape;

/// The built-in data set trained on when neither `--data` nor `--dataset` is given.
pub const DEFAULT_DATASET: &str = "digits";

/// A target with at most this many distinct integer values is taken for class labels.
pub const MAX_INFERRED_CLASSES: usize = 20;

/// The error for ratings reaching a command that trains feature tables only (`train`, `evaluate`
/// and `predict` take matrix factorization through `crate::ratings`).
pub fn ratings_not_available(what: &str) -> CliError {
    CliError::usage(format!(
        "{what}: matrix factorization (`--model mf`, `--task ratings`) is trained by `gradus train` only"
    ))
    .hint("train it with `gradus train --model mf`; compare and lr-find take feature tables (see `gradus datasets`)")
}

/// A loaded feature table with its task decided.
pub struct Loaded {
    /// Raw features and raw targets.
    pub data: Dataset,
    /// Where the rows came from, for messages: "built-in data set `digits`" or "`file.csv`".
    pub origin: String,
    /// The task.
    pub task: Task,
    /// How the task was decided, said to the user.
    pub task_note: String,
    /// Class labels (classification).
    pub label_map: Option<LabelMap>,
    /// Targets as trained on: class indices for classification, raw values for regression.
    pub y: Vec<f32>,
    /// The shape of each row as an image, when the data set says so.
    pub image_shape: Option<Shape>,
    /// The names of the classes by class index, when the data set has them.
    pub class_names: Option<Vec<String>>,
}

impl Loaded {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.data.rows
    }

    /// Number of classes (1 for regression).
    pub fn classes(&self) -> usize {
        self.label_map.as_ref().map_or(1, LabelMap::n_classes)
    }
}

/// Whether `path` names a LIBSVM file (by extension, ignoring a trailing `.gz`).
pub fn is_libsvm(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".svm") || name.ends_with(".libsvm") || name.ends_with(".svmlight")
}

/// Reads a feature table from a file (CSV or LIBSVM), with `target` the CSV target column.
pub fn read_table(path: &Path, target: Option<&str>, width: Option<usize>) -> Result<Dataset, CliError> {
    if is_libsvm(path) {
        if target.is_some() {
            return Err(CliError::usage(format!(
                "--target: `{}` is a LIBSVM file, whose target is always the first token",
                path.display()
            )));
        }
        return Ok(read_libsvm(path, width)?);
    }
    let options = CsvOptions { target: target.map(str::to_string), ..CsvOptions::default() };
    Ok(read_csv(path, &options)?)
}

/// The files of the built-in data set that `args` names (`--dataset`, or the default when no
/// `--data` is given), if it is a known one: inputs that no output may overwrite.
pub fn builtin_file(args: &DataArgs) -> Vec<std::path::PathBuf> {
    if args.data.is_some() {
        return Vec::new();
    }
    builtin_files(args.dataset.as_deref().unwrap_or(DEFAULT_DATASET))
}

/// The files of built-in data set `name` (none if there is no such set).
pub fn builtin_files(name: &str) -> Vec<std::path::PathBuf> {
    let Ok(info) = builtin::info(name) else { return Vec::new() };
    std::iter::once(info.file)
        .chain(info.labels_file)
        .map(|file| {
            let path = builtin::locate(file);
            // Canonical, for messages: `/…/data/iris.csv` rather than `/…/crates/gradus/../../data/iris.csv`.
            std::fs::canonicalize(&path).unwrap_or(path)
        })
        .collect()
}

fn parse_task(name: &str) -> Result<Task, CliError> {
    Ok(match name {
        "regression" => Task::Regression,
        "binary" => Task::Binary,
        "multiclass" => Task::Multiclass,
        "ratings" => Task::Ratings,
        other => return Err(CliError::flag("--task", other, "regression, binary, multiclass or ratings")),
    })
}

/// Loads the data named by `args` and decides its task.
pub fn load(args: &DataArgs) -> Result<Loaded, CliError> {
    let explicit_task = args.task.as_deref().map(parse_task).transpose()?;
    if explicit_task == Some(Task::Ratings) {
        return Err(ratings_not_available("--task ratings"));
    }
    let mut image_shape = None;
    let mut named_classes: Option<&'static [&'static str]> = None;
    let (data, origin, known_task) = match &args.data {
        Some(path) if args.labels.is_some() => {
            if args.target.is_some() {
                return Err(CliError::usage("--target does not apply to IDX files: --labels holds the targets"));
            }
            let (data, shape) = read_idx(path, args.labels.as_deref().expect("checked"))?;
            image_shape = Some(shape);
            (data, format!("`{}`", path.display()), None)
        }
        Some(path) => {
            let data = read_table(path, args.target.as_deref(), None)?;
            (data, format!("`{}`", path.display()), None)
        }
        None => {
            let name = args.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
            let info = builtin::info(name)?;
            if info.task == builtin::Task::Ratings {
                return Err(ratings_not_available(&format!("built-in data set `{name}` holds ratings")));
            }
            let data = match args.target.as_deref() {
                Some(target) if target != info.target => {
                    read_table(&builtin::data_dir().join(info.file), Some(target), None)?
                }
                _ => builtin::load(name)?.into_table()?,
            };
            let task = match info.task {
                builtin::Task::Regression => Task::Regression,
                builtin::Task::Binary => Task::Binary,
                _ => Task::Multiclass,
            };
            let known = (args.target.is_none() || args.target.as_deref() == Some(info.target)).then_some(task);
            if known.is_some() {
                image_shape = info.image_shape.map(|[c, h, w]| Shape::image(c, h, w));
                named_classes = info.class_names;
            }
            (data, format!("built-in data set `{name}`"), known)
        }
    };
    let distinct = distinct_values(&data.target);
    let integral = data.target.iter().all(|v| v.fract() == 0.0);
    let (task, task_note) = match (explicit_task, known_task) {
        (Some(task), _) => (task, "given by --task".to_string()),
        (None, Some(task)) => (task, "the data set's task".to_string()),
        (None, None) => {
            if integral && distinct <= MAX_INFERRED_CLASSES {
                let task = if distinct <= 2 { Task::Binary } else { Task::Multiclass };
                (
                    task,
                    format!(
                        "inferred: target `{}` holds {distinct} distinct integer values; --task overrides",
                        quote_cell(&data.target_name)
                    ),
                )
            } else {
                let why = if integral { format!("{distinct} distinct values") } else { "non-integer values".into() };
                (
                    Task::Regression,
                    format!("inferred: target `{}` holds {why}; --task overrides", quote_cell(&data.target_name)),
                )
            }
        }
    };
    let (label_map, y) = match task {
        Task::Binary | Task::Multiclass => {
            let map = LabelMap::fit(&data.target, &data.source)?;
            if task == Task::Binary && map.n_classes() != 2 {
                return Err(CliError::usage(format!(
                    "--task binary: target `{}` of {origin} holds {} distinct values, expected 2",
                    quote_cell(&data.target_name),
                    map.n_classes()
                ))
                .hint("use --task multiclass"));
            }
            let y = map.encode_all(&data.target, &data.source)?.into_iter().map(|c| c as f32).collect();
            (Some(map), y)
        }
        _ => (None, data.target.clone()),
    };
    // Class names by class index: the label map sorts the raw labels 0, 1, ... as the names are.
    let class_names = match (named_classes, &label_map) {
        (Some(names), Some(map)) => {
            map.classes.iter().map(|&c| names.get(c as usize).map(|n| n.to_string())).collect::<Option<Vec<_>>>()
        }
        _ => None,
    };
    Ok(Loaded { data, origin, task, task_note, label_map, y, image_shape, class_names })
}

fn distinct_values(values: &[f32]) -> usize {
    let mut sorted: Vec<f32> = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    sorted.len()
}

/// The train and validation rows of one run, prepared.
pub struct Prepared {
    /// Training features (standardized if asked), row-major.
    pub train_x: Vec<f32>,
    /// Training targets.
    pub train_y: Vec<f32>,
    /// Validation features.
    pub val_x: Vec<f32>,
    /// Validation targets (empty without validation).
    pub val_y: Vec<f32>,
    /// Feature columns.
    pub cols: usize,
    /// Standardization fitted on the training rows.
    pub standardizer: Option<Standardizer>,
    /// The regression target's scale on the training rows.
    pub target_scale: Option<TargetScale>,
    /// Rows of token indices instead of features (a text classifier's): `cols` is then 0.
    pub tokens: Option<TokenRows>,
}

/// The token indices of the training and validation rows, as compressed rows (see
/// [`gradus::model::RowIds`]).
pub struct TokenRows {
    /// Training rows' indices.
    pub train_ids: Vec<u32>,
    /// Where each training row's indices start (one more than rows).
    pub train_offsets: Vec<usize>,
    /// Validation rows' indices.
    pub val_ids: Vec<u32>,
    /// Where each validation row's indices start.
    pub val_offsets: Vec<usize>,
}

impl Prepared {
    /// The training rows.
    pub fn train(&self) -> gradus::model::Rows<'_> {
        match &self.tokens {
            Some(t) => gradus::model::Rows::with_ids(&t.train_ids, &t.train_offsets, &self.train_y),
            None => gradus::model::Rows::new(&self.train_x, &self.train_y, self.cols),
        }
    }

    /// The validation rows, if any.
    pub fn validation(&self) -> Option<gradus::model::Rows<'_>> {
        (!self.val_y.is_empty()).then(|| match &self.tokens {
            Some(t) => gradus::model::Rows::with_ids(&t.val_ids, &t.val_offsets, &self.val_y),
            None => gradus::model::Rows::new(&self.val_x, &self.val_y, self.cols),
        })
    }
}

fn gather(loaded: &Loaded, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let cols = loaded.data.cols;
    let mut x = Vec::with_capacity(rows.len() * cols);
    let mut y = Vec::with_capacity(rows.len());
    for &r in rows {
        x.extend_from_slice(loaded.data.row(r));
        y.push(loaded.y[r]);
    }
    (x, y)
}

/// Prepares the rows `train` and `validation` of `loaded`: the feature scaling and the
/// regression target's scale are fitted on the training rows only.
pub fn prepare(loaded: &Loaded, train: &[usize], validation: &[usize], scaling: Scaling) -> Result<Prepared, CliError> {
    let (mut train_x, train_y) = gather(loaded, train);
    let (mut val_x, val_y) = gather(loaded, validation);
    let standardizer = match scaling {
        Scaling::Standardize => Some(Standardizer::fit(&loaded.data, train)?),
        Scaling::Images => {
            let max = train_x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            (max > 1.0).then(|| Standardizer { means: vec![0.0; loaded.data.cols], stds: vec![max; loaded.data.cols] })
        }
        Scaling::None => None,
    };
    if let Some(s) = &standardizer {
        s.transform_rows(&mut train_x)?;
        s.transform_rows(&mut val_x)?;
    }
    let target_scale = (loaded.task == Task::Regression).then(|| TargetScale::fit(&train_y));
    Ok(Prepared { train_x, train_y, val_x, val_y, cols: loaded.data.cols, standardizer, target_scale, tokens: None })
}

/// Splits the rows into training and validation parts (stratified for classification);
/// `val_fraction` 0 keeps every row for training.
pub fn split(loaded: &Loaded, val_fraction: f64, seed: u64) -> Result<Split, CliError> {
    let labels = class_labels(loaded);
    split_rows(loaded.rows(), labels.as_deref(), val_fraction, seed, &loaded.origin)
}

/// Class indices to stratify by (classification only).
fn class_labels(loaded: &Loaded) -> Option<Vec<usize>> {
    matches!(loaded.task, Task::Binary | Task::Multiclass).then(|| loaded.y.iter().map(|&c| c as usize).collect())
}

/// Splits `n` rows of `origin` into training and validation parts, stratified by `labels` when
/// given; `val_fraction` 0 keeps every row for training.
pub fn split_rows(
    n: usize,
    labels: Option<&[usize]>,
    val_fraction: f64,
    seed: u64,
    origin: &str,
) -> Result<Split, CliError> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(CliError::flag("--val-fraction", val_fraction, "a fraction in [0, 1)"));
    }
    if val_fraction == 0.0 {
        return Ok(((0..n).collect(), Vec::new()));
    }
    let result = match labels {
        Some(labels) => stratified_train_test_split(labels, val_fraction, seed),
        None => train_test_split(n, val_fraction, seed),
    };
    result.map_err(|e| {
        CliError::usage(format!(
            "invalid value {val_fraction} for --val-fraction: {} ({n} rows in {origin})",
            e.expected
        ))
    })
}

/// `k` folds of `(train, held-out)` rows (stratified for classification).
pub fn folds(loaded: &Loaded, k: usize, seed: u64) -> Result<Vec<Split>, CliError> {
    let labels = class_labels(loaded);
    fold_rows(loaded.rows(), labels.as_deref(), k, seed)
}

/// `k` folds of `(train, held-out)` rows out of `n`, stratified by `labels` when given.
pub fn fold_rows(n: usize, labels: Option<&[usize]>, k: usize, seed: u64) -> Result<Vec<Split>, CliError> {
    if k < 2 || k > n {
        return Err(CliError::flag("--folds", k, &format!("a number of folds between 2 and the {n} rows")));
    }
    let result = match labels {
        Some(labels) => stratified_kfold(labels, k, seed),
        None => gradus::data::kfold(n, k, seed),
    };
    Ok(result?)
}
