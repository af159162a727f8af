//! [`DataError`]: everything that can go wrong while reading or preparing data.

use std::path::PathBuf;

use thiserror::Error;

use crate::error::ConfigError;

/// Reading or preparing data failed.
///
/// Every message names the file (or the data set) and, for a bad cell, the 1-based line and
/// column, the column's header name, the cell as written and what was expected, so that the
/// command line can print it as it is:
///
/// ```text
/// `iris.csv`, line 7, column 2 (`sepal_width`): expected a number, found "3,4x"
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file does not exist.
    #[error("`{}`: file not found", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The file exists but could not be read (permissions, corrupt gzip stream, ...).
    #[error("`{}`{}: cannot read the file: {source}", path.display(), at_line(*line))]
    Io {
        /// The file.
        path: PathBuf,
        /// The 1-based line being read when it failed, if known.
        line: Option<usize>,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file holds nothing but blank lines.
    #[error("`{}`: the file is empty: expected {expected}", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What the file should have held.
        expected: &'static str,
    },
    /// A CSV file holds a header row and nothing else.
    #[error("`{}`: the file has a header (line {header_line}) but no data rows: expected at least one row after it", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
        /// The header's line.
        header_line: usize,
    },
    /// A CSV header with fewer columns than the reader needs, usually a sign of a wrong delimiter.
    #[error(
        "`{}`, line {line}: the header has {found} column(s) when split at {}: expected at least {expected} \
         (give the delimiter explicitly if it is not `,`, `;` or tab)",
        path.display(), show_delimiter(*delimiter)
    )]
    TooFewColumns {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: usize,
        /// Columns found.
        found: usize,
        /// Columns needed.
        expected: usize,
        /// The delimiter used to split the header.
        delimiter: u8,
    },
    /// A row whose number of fields differs from the header's.
    #[error("`{}`, line {line}: expected {expected}, found {found}", path.display())]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// The row's line.
        line: usize,
        /// What was expected, e.g. `5 fields (as in the header)` or `at least 3 fields`.
        expected: String,
        /// Fields found.
        found: usize,
    },
    /// An empty cell.
    #[error("`{}`, line {line}, column {column} (`{}`): empty cell, expected a number", path.display(), quote_cell(name))]
    MissingValue {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's name in the header.
        name: String,
    },
    /// A cell that is not a number.
    #[error(
        "`{}`, line {line}, column {column} (`{}`): expected a number, found \"{}\"",
        path.display(), quote_cell(name), quote_cell(cell)
    )]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's name in the header.
        name: String,
        /// The cell as written.
        cell: String,
    },
    /// A cell holding NaN or an infinity (or a number too large for `f32`).
    #[error(
        "`{}`, line {line}, column {column} (`{}`): expected a finite number, found \"{}\"",
        path.display(), quote_cell(name), quote_cell(cell)
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's name in the header.
        name: String,
        /// The cell as written.
        cell: String,
    },
    /// A quoted field whose closing quote never comes.
    #[error("`{}`, line {line}: a quoted field is never closed: expected a closing `\"`", path.display())]
    UnterminatedQuote {
        /// The file.
        path: PathBuf,
        /// The line where the field starts.
        line: usize,
    },
    /// Two columns of a CSV header with the same name (which of them `--target NAME` means, or
    /// which a saved model's feature is, could not be told).
    #[error(
        "`{}`, line {line}: columns {first} and {second} are both named `{}`: expected distinct column names",
        path.display(), quote_cell(name)
    )]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: usize,
        /// 1-based position of the first column of that name.
        first: usize,
        /// 1-based position of the second.
        second: usize,
        /// The name.
        name: String,
    },
    /// The target column named in the options is not in the header.
    #[error(
        "`{}`: no column named `{}` to use as the target: the columns are {}",
        path.display(), quote_cell(name), list(available)
    )]
    UnknownTarget {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The header's column names.
        available: Vec<String>,
    },
    /// A text column named in the options is not in the header.
    #[error(
        "`{}`: no column named `{}` to read text from ({option}): the columns are {}",
        path.display(), quote_cell(name), list(available)
    )]
    UnknownTextColumn {
        /// The file.
        path: PathBuf,
        /// The option that named it (`--text`).
        option: String,
        /// The name asked for.
        name: String,
        /// The header's column names.
        available: Vec<String>,
    },
    /// A malformed token in a LIBSVM file. `column` counts whitespace-separated tokens from 1
    /// (the label is column 1).
    #[error("`{}`, line {line}, column {column}: expected {expected}, found \"{}\"", path.display(), quote_cell(found))]
    Libsvm {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based token number.
        column: usize,
        /// What the token should have been.
        expected: String,
        /// The token as written.
        found: String,
    },
    /// An IDX file that is not one, or does not hold what its header says.
    #[error("`{}`: {message}", path.display())]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The dense matrix would not fit in memory.
    #[error("`{}`: a dense {rows} × {cols} matrix does not fit in memory", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A LIBSVM feature index beyond [`MAX_FEATURES`](super::MAX_FEATURES): its dense matrix
    /// would be wider than any data set gradus trains on.
    #[error(
        "`{}`, line {line}, column {column}: feature index {index} is beyond the {max} features a data set may have: \
         expected an index <= {max} (rows are stored dense, {index} columns would take {} per row)",
        path.display(), crate::memory::Bytes(crate::memory::bytes_of(*index, crate::memory::F32_BYTES))
    )]
    FeatureIndexTooLarge {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based token number (the label is column 1).
        column: usize,
        /// The 1-based feature index found.
        index: usize,
        /// The largest index allowed.
        max: usize,
    },
    /// The data would need more memory than the machine has available.
    #[error("`{}`{}: {source}", path.display(), widest_at(*widest))]
    Memory {
        /// The file.
        path: PathBuf,
        /// The line and column of the feature index that set the width (LIBSVM), if any.
        widest: Option<(usize, usize)>,
        /// How much was needed and how much there is.
        source: Box<crate::memory::MemoryError>,
    },
    /// A target that is NaN or infinite where a number is needed.
    #[error("`{origin}`, row {row}: target {value} is not a finite number")]
    NonFiniteTarget {
        /// The file or data set.
        origin: String,
        /// 1-based row.
        row: usize,
        /// The value.
        value: f32,
    },
    /// A [`Standardizer`](super::Standardizer) that cannot be applied.
    #[error("invalid standardizer: {problem}")]
    InvalidStandardizer {
        /// What is wrong.
        problem: String,
    },
    /// A [`LabelMap`](super::LabelMap) that cannot map labels both ways.
    #[error("invalid label map: {problem}")]
    InvalidLabelMap {
        /// What is wrong.
        problem: String,
    },
    /// Classification needs at least two distinct target values.
    #[error("`{origin}`: classification needs at least two classes, but every target is {class}")]
    SingleClass {
        /// The file or data set the targets came from.
        origin: String,
        /// The only value found.
        class: f32,
    },
    /// Classification of an empty target list.
    #[error("`{origin}`: no targets to find classes in")]
    NoTargets {
        /// The file or data set.
        origin: String,
    },
    /// A target value not among the classes a [`LabelMap`](super::LabelMap) was fitted on.
    #[error("`{origin}`, row {row}: target {value} is not one of the classes {}", list(classes))]
    UnknownClass {
        /// The file or data set.
        origin: String,
        /// 1-based row.
        row: usize,
        /// The value.
        value: f32,
        /// The known classes.
        classes: Vec<f32>,
    },
    /// A row index past the end of the data.
    #[error("`{origin}`: row index {index} is out of range: expected an index < {rows}")]
    RowOutOfRange {
        /// The file or data set.
        origin: String,
        /// The index given.
        index: usize,
        /// Rows in the data.
        rows: usize,
    },
    /// Fitting a statistic on no rows at all.
    #[error("`{origin}`: no rows to fit on: expected at least one training row")]
    NoTrainingRows {
        /// The file or data set.
        origin: String,
    },
    /// Data whose width differs from what a fitted transform expects.
    #[error("{what}: expected {expected} columns, found {found}")]
    WidthMismatch {
        /// What was being transformed.
        what: String,
        /// Columns the transform was fitted on.
        expected: usize,
        /// Columns given.
        found: usize,
    },
    /// A row-major matrix whose length is not a whole number of rows.
    #[error("a matrix of {values} values is not a whole number of rows of {cols} columns")]
    PartialRow {
        /// Values given.
        values: usize,
        /// Columns per row expected.
        cols: usize,
    },
    /// A built-in data set name that does not exist.
    #[error("no built-in data set named `{}`: the data sets are {}", quote_cell(name), list(available))]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names there are.
        available: Vec<&'static str>,
    },
    /// A built-in data set whose file is not in the data folder.
    #[error(
        "built-in data set `{name}`: `{}` not found: {}",
        path.display(), missing_hint(name)
    )]
    BuiltinMissing {
        /// The data set.
        name: String,
        /// Where its file was looked for.
        path: PathBuf,
    },
    /// A built-in data set of the other kind (a ratings set asked for as a feature table, or
    /// the reverse).
    #[error("built-in data set `{name}` holds {holds}, expected {expected}")]
    WrongBuiltinKind {
        /// The data set.
        name: String,
        /// What it holds.
        holds: &'static str,
        /// What was asked for.
        expected: &'static str,
    },
    /// An invalid option (split fraction, number of folds, batch size, ...).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn widest_at(widest: Option<(usize, usize)>) -> String {
    widest.map(|(line, column)| format!(" (widest at line {line}, column {column})")).unwrap_or_default()
}

fn at_line(line: Option<usize>) -> String {
    line.map(|line| format!(", line {line}")).unwrap_or_default()
}

fn show_delimiter(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".to_string(),
        other => format!("`{}`", char::from(other)),
    }
}

/// At most this many characters of a cell or value are quoted in a message.
const QUOTED_CHARS: usize = 40;

/// At most this many items of a list are shown in a message.
const LISTED_ITEMS: usize = 20;

/// A cell or value as quoted in a message: control characters (and the invisible characters
/// that reorder or hide text) escaped (`\0`, `\x1b`, `\n`, `\u{202e}`), and when longer than
/// about 40 characters its start, `…` and its total length in bytes. A 50 MB cell makes a
/// one-line message.
///
/// ```
/// use gradus::data::quote_cell;
/// assert_eq!(quote_cell("3.5x"), "3.5x");
/// assert_eq!(quote_cell("a\0b\x1b[2J"), "a\\0b\\x1b[2J");
/// assert_eq!(quote_cell(&"9".repeat(1000)), format!("{}… (1000 bytes)", "9".repeat(40)));
/// ```
pub fn quote_cell(text: &str) -> String {
    let mut out = String::new();
    for (shown, c) in text.chars().enumerate() {
        if shown >= QUOTED_CHARS {
            out.push_str(&format!("… ({} bytes)", text.len()));
            return out;
        }
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let mut shown: Vec<String> =
        items.iter().take(LISTED_ITEMS).map(|item| format!("`{}`", quote_cell(&item.to_string()))).collect();
    if items.len() > LISTED_ITEMS {
        shown.push(format!("… ({} in all)", items.len()));
    }
    shown.join(", ")
}

/// What to do about a built-in data set whose files are missing.
fn missing_hint(name: &str) -> &'static str {
    if name.starts_with("fashion_mnist") {
        "install Debian's package `dataset-fashion-mnist` (apt install dataset-fashion-mnist), or put its IDX files \
         in a folder `fashion-mnist/` of the folder GRADUS_DATA_DIR names"
    } else {
        "set GRADUS_DATA_DIR to the folder holding gradus's `data/` files"
    }
}
