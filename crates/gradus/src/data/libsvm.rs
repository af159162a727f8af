//! The LIBSVM / svmlight sparse text format.

use std::path::Path;

use super::source::{show, try_reserve, LineReader};
use super::{DataError, Dataset, MAX_FEATURES};

/// One parsed example: its label and its non-zero features as (0-based index, value).
pub(crate) struct SparseRow {
    pub(crate) label: f32,
    pub(crate) entries: Vec<(usize, f32)>,
    /// The 1-based token number of the last entry (its largest index), for messages.
    pub(crate) last_column: usize,
}

impl SparseRow {
    pub(crate) fn new() -> Self {
        Self { label: 0.0, entries: Vec::new(), last_column: 0 }
    }

    /// Appends the row, densified to `width` columns, to `features`.
    pub(crate) fn densify_into(&self, width: usize, features: &mut Vec<f32>) {
        let start = features.len();
        features.resize(start + width, 0.0);
        for &(index, value) in &self.entries {
            features[start + index] = value;
        }
    }
}

/// Parses one line into `row`. Returns `false` for a blank or comment-only line. `width`, when
/// given, bounds the feature indices; [`MAX_FEATURES`] always does.
pub(crate) fn parse_line(
    path: &Path,
    line_number: usize,
    line: &[u8],
    width: Option<usize>,
    row: &mut SparseRow,
) -> Result<bool, DataError> {
    row.entries.clear();
    let content = match line.iter().position(|&byte| byte == b'#') {
        Some(comment) => &line[..comment],
        None => line,
    };
    let error = |column: usize, expected: String, found: &[u8]| DataError::Libsvm {
        path: path.to_path_buf(),
        line: line_number,
        column: column + 1,
        expected,
        found: show(found),
    };
    let mut tokens =
        content.split(|byte| *byte == b' ' || *byte == b'\t').filter(|token| !token.is_empty()).enumerate();
    let Some((_, label)) = tokens.next() else {
        return Ok(false);
    };
    row.label = parse_finite(label).ok_or_else(|| error(0, "a finite numeric label".into(), label))?;
    for (column, token) in tokens {
        let Some(colon) = token.iter().position(|&byte| byte == b':') else {
            return Err(error(column, "`index:value`".into(), token));
        };
        let (index_text, value_text) = (&token[..colon], &token[colon + 1..]);
        if index_text == b"qid" {
            continue;
        }
        let index = std::str::from_utf8(index_text)
            .ok()
            .and_then(|text| text.parse::<usize>().ok())
            .filter(|&index| index >= 1)
            .ok_or_else(|| error(column, "a feature index >= 1 before `:`".into(), token))?;
        if let Some(width) = width {
            if index > width {
                return Err(error(column, format!("a feature index <= {width} (the width)"), token));
            }
        }
        if index > MAX_FEATURES {
            return Err(DataError::FeatureIndexTooLarge {
                path: path.to_path_buf(),
                line: line_number,
                column: column + 1,
                index,
                max: MAX_FEATURES,
            });
        }
        if let Some(&(previous, _)) = row.entries.last() {
            if index <= previous + 1 {
                return Err(error(
                    column,
                    format!("feature indices in ascending order (after index {})", previous + 1),
                    token,
                ));
            }
        }
        let value = parse_finite(value_text).ok_or_else(|| error(column, "a finite number after `:`".into(), token))?;
        row.entries.push((index - 1, value));
        row.last_column = column + 1;
    }
    Ok(true)
}

fn parse_finite(text: &[u8]) -> Option<f32> {
    std::str::from_utf8(text).ok()?.parse::<f32>().ok().filter(|value| value.is_finite())
}

/// The largest feature index in a LIBSVM file (0 when no example has a feature): one pass over
/// the file with memory bounded by a line.
pub(crate) fn scan_width(path: &Path) -> Result<usize, DataError> {
    let mut lines = LineReader::open(path)?;
    let mut row = SparseRow::new();
    let mut width = 0;
    let mut examples = 0;
    while let Some((line_number, line)) = lines.next_line()? {
        if parse_line(path, line_number, line, None, &mut row)? {
            examples += 1;
            width = width.max(row.entries.last().map_or(0, |&(index, _)| index + 1));
        }
    }
    if examples == 0 {
        return Err(DataError::Empty { path: path.to_path_buf(), expected: "lines of `label index:value ...`" });
    }
    Ok(width)
}

/// Reads a LIBSVM file into a dense [`Dataset`].
///
/// The matrix is `width` columns wide when given (an index beyond it is an error), otherwise as
/// wide as the largest index in the file. Features are named `x1`, `x2`, ... after their
/// 1-based indices; the target is named `label`. A gzip file is decompressed on the fly.
///
/// The format (LIBSVM / svmlight): one example per line,
///
/// ```text
/// <label> <index>:<value> <index>:<value> ... [# comment]
/// ```
///
/// with 1-based feature indices in strictly ascending order and absent features zero. Tokens are
/// separated by spaces or tabs; `qid:<n>` tokens (ranking groups) are skipped; blank lines and
/// `#` comments are ignored. Errors count columns as whitespace-separated tokens from 1 (the
/// label is column 1).
pub fn read_libsvm(path: impl AsRef<Path>, width: Option<usize>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let mut lines = LineReader::open(path)?;
    let mut row = SparseRow::new();
    // Sparse first: the width is only known at the end when not given.
    let mut labels = Vec::new();
    let mut row_ends = Vec::new();
    let mut entries: Vec<(usize, f32)> = Vec::new();
    let mut widest = 0;
    // Where the widest index is, for a message.
    let mut widest_at = None;
    while let Some((line_number, line)) = lines.next_line()? {
        if parse_line(path, line_number, line, width, &mut row)? {
            labels.push(row.label);
            entries.extend_from_slice(&row.entries);
            row_ends.push(entries.len());
            let row_width = row.entries.last().map_or(0, |&(index, _)| index + 1);
            if row_width > widest {
                widest = row_width;
                widest_at = Some((line_number, row.last_column));
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf(), expected: "lines of `label index:value ...`" });
    }
    let (rows, cols) = (labels.len(), width.unwrap_or(widest));
    let needed = rows.checked_mul(cols).and_then(|cells| crate::memory::bytes_of(cells, crate::memory::F32_BYTES));
    crate::memory::check(format!("a dense {rows} × {cols} matrix"), "its features", needed).map_err(|source| {
        let widest = if width.is_some() { None } else { widest_at };
        DataError::Memory { path: path.to_path_buf(), widest, source: Box::new(source) }
    })?;
    let cells = rows.checked_mul(cols).ok_or_else(|| DataError::TooLarge { path: path.to_path_buf(), rows, cols })?;
    let mut features = Vec::new();
    try_reserve(&mut features, cells, path, rows, cols)?;
    features.resize(cells, 0.0);
    let mut start = 0;
    for (row_index, &end) in row_ends.iter().enumerate() {
        for &(index, value) in &entries[start..end] {
            features[row_index * cols + index] = value;
        }
        start = end;
    }
    Ok(Dataset {
        features,
        rows,
        cols,
        feature_names: (1..=cols).map(|index| format!("x{index}")).collect(),
        target: labels,
        target_name: "label".to_string(),
        source: path.display().to_string(),
    })
}
