//! A small CSV reader written for numeric tables: a header row, then one record per line.
//!
//! No `csv` crate: the subset needed here is small, and owning the parser lets every error
//! carry the line, the column number and the column's header name.

use std::path::Path;

use super::source::{is_blank, parse_number, show, try_reserve, CellProblem, LineReader};
use super::{DataError, Dataset};

/// Delimiters tried, in order of preference when counts tie.
const CANDIDATE_DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// Options of [`read_csv`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field delimiter; `None` (default) detects it from the header among `,`, `;` and tab
    /// (the most frequent outside quotes wins, `,` when none occurs).
    pub delimiter: Option<u8>,
    /// The target column's header name; `None` (default) takes the last column.
    pub target: Option<String>,
}

impl CsvOptions {
    /// Uses `delimiter` instead of detecting it.
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = Some(delimiter);
        self
    }

    /// Takes the column named `name` as the target.
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = Some(name.into());
        self
    }
}

/// One parsed record: the unquoted bytes of every field, back to back.
#[derive(Debug, Default)]
pub(crate) struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// The line the record starts on.
    pub(crate) line: usize,
}

impl Record {
    /// Number of fields.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The `index`-th field (0-based).
    pub(crate) fn field(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.bytes[start..self.ends[index]]
    }

    /// All fields in order.
    pub(crate) fn fields(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|index| self.field(index))
    }
}

/// Reads CSV records one at a time, so that memory stays bounded by the longest record.
pub(crate) struct RecordReader {
    lines: LineReader,
    delimiter: Option<u8>,
}

impl RecordReader {
    /// Opens `path`; `delimiter: None` detects it from the first non-blank line.
    pub(crate) fn open(path: &Path, delimiter: Option<u8>) -> Result<Self, DataError> {
        Ok(Self { lines: LineReader::open(path)?, delimiter })
    }

    /// The file being read.
    pub(crate) fn path(&self) -> &Path {
        self.lines.path()
    }

    /// The delimiter, once known (given, or detected at the first record).
    pub(crate) fn delimiter(&self) -> Option<u8> {
        self.delimiter
    }

    /// Reads the next non-blank record into `record`; `false` at the end of the file.
    pub(crate) fn read(&mut self, record: &mut Record) -> Result<bool, DataError> {
        record.bytes.clear();
        record.ends.clear();
        let (line_number, line) = loop {
            match self.lines.next_line()? {
                None => return Ok(false),
                Some((_, line)) if is_blank(line) => continue,
                Some(found) => break found,
            }
        };
        record.line = line_number;
        let delimiter = *self.delimiter.get_or_insert_with(|| detect_delimiter(line));
        let mut state = FieldState::Start;
        let mut chunk = line;
        loop {
            state = split_into(chunk, delimiter, state, record);
            if state != FieldState::Quoted {
                break;
            }
            // A quoted field runs on into the next line; the line break is part of it.
            match self.lines.next_line()? {
                Some((_, next)) => {
                    record.bytes.push(b'\n');
                    chunk = next;
                }
                None => {
                    return Err(DataError::UnterminatedQuote { path: self.path().to_path_buf(), line: line_number })
                }
            }
        }
        record.ends.push(record.bytes.len());
        Ok(true)
    }
}

/// Where the splitter stands inside the current field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldState {
    /// Nothing but spaces seen yet: an opening quote may come.
    Start,
    /// Inside an unquoted field.
    Plain,
    /// Inside quotes.
    Quoted,
    /// Just after a `"` inside quotes: either the closing quote or the first of `""`.
    QuoteInQuoted,
}

/// Splits `line` into fields appended to `record`, starting in `state`; returns the state at the
/// end of the line (`Quoted` when a quoted field continues on the next line).
fn split_into(line: &[u8], delimiter: u8, mut state: FieldState, record: &mut Record) -> FieldState {
    for &byte in line {
        state = match (state, byte) {
            (FieldState::Quoted, b'"') => FieldState::QuoteInQuoted,
            (FieldState::Quoted, _) => {
                record.bytes.push(byte);
                FieldState::Quoted
            }
            (FieldState::QuoteInQuoted, b'"') => {
                record.bytes.push(b'"');
                FieldState::Quoted
            }
            (_, byte) if byte == delimiter => {
                record.ends.push(record.bytes.len());
                FieldState::Start
            }
            (FieldState::Start, b'"') => FieldState::Quoted,
            (FieldState::Start, b' ') => FieldState::Start,
            // Text after a closing quote is kept as it is, as most readers do.
            (_, _) => {
                record.bytes.push(byte);
                FieldState::Plain
            }
        };
    }
    state
}

/// The candidate delimiter occurring most often outside quotes in `line` (`,` when none does).
pub(crate) fn detect_delimiter(line: &[u8]) -> u8 {
    let mut counts = [0usize; CANDIDATE_DELIMITERS.len()];
    let mut in_quotes = false;
    for &byte in line {
        if byte == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            if let Some(slot) = CANDIDATE_DELIMITERS.iter().position(|&candidate| candidate == byte) {
                counts[slot] += 1;
            }
        }
    }
    let mut best = 0;
    for slot in 1..counts.len() {
        if counts[slot] > counts[best] {
            best = slot;
        }
    }
    CANDIDATE_DELIMITERS[best]
}

/// The header of a feature table and where its target sits; parses data records into rows.
#[derive(Debug, Clone)]
pub(crate) struct TableLayout {
    pub(crate) names: Vec<String>,
    pub(crate) target_column: usize,
    pub(crate) header_line: usize,
}

impl TableLayout {
    /// Reads the header record, failing on an empty file, fewer than two columns or an unknown
    /// target name.
    pub(crate) fn read_header(
        reader: &mut RecordReader,
        record: &mut Record,
        target: Option<&str>,
    ) -> Result<Self, DataError> {
        let path = reader.path().to_path_buf();
        if !reader.read(record)? {
            return Err(DataError::Empty { path, expected: "a header row followed by data rows" });
        }
        let names: Vec<String> = record.fields().map(|name| show(name.trim_ascii())).collect();
        if names.len() < 2 {
            return Err(DataError::TooFewColumns {
                path,
                line: record.line,
                found: names.len(),
                expected: 2,
                delimiter: reader.delimiter().unwrap_or(b','),
            });
        }
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(names.len());
        for (column, name) in names.iter().enumerate() {
            if let Some(first) = seen.insert(name, column) {
                return Err(DataError::DuplicateColumn {
                    path,
                    line: record.line,
                    first: first + 1,
                    second: column + 1,
                    name: name.clone(),
                });
            }
        }
        let target_column =
            match target {
                None => names.len() - 1,
                Some(wanted) => names.iter().position(|name| name == wanted).ok_or_else(|| {
                    DataError::UnknownTarget { path, name: wanted.to_string(), available: names.clone() }
                })?,
            };
        Ok(Self { names, target_column, header_line: record.line })
    }

    /// Number of feature columns.
    pub(crate) fn cols(&self) -> usize {
        self.names.len() - 1
    }

    /// The feature columns' names, in file order.
    pub(crate) fn feature_names(&self) -> Vec<String> {
        let mut names = self.names.clone();
        names.remove(self.target_column);
        names
    }

    /// Parses `record` and appends its features to `features` and its target to `target`.
    /// On error nothing is appended.
    pub(crate) fn parse_row(
        &self,
        path: &Path,
        record: &Record,
        features: &mut Vec<f32>,
        target: &mut Vec<f32>,
    ) -> Result<(), DataError> {
        if record.len() != self.names.len() {
            return Err(DataError::RaggedRow {
                path: path.to_path_buf(),
                line: record.line,
                expected: format!("{} fields (as in the header)", self.names.len()),
                found: record.len(),
            });
        }
        let start = features.len();
        for (column, cell) in record.fields().enumerate() {
            let value = match parse_number(cell) {
                Ok(value) => value,
                Err(problem) => {
                    features.truncate(start);
                    return Err(cell_error(path, record.line, column, &self.names[column], cell, problem));
                }
            };
            if column == self.target_column {
                target.push(value);
            } else {
                features.push(value);
            }
        }
        Ok(())
    }
}

/// The error for a bad cell at 0-based `column`.
pub(crate) fn cell_error(
    path: &Path,
    line: usize,
    column: usize,
    name: &str,
    cell: &[u8],
    problem: CellProblem,
) -> DataError {
    let (path, column, name) = (path.to_path_buf(), column + 1, name.to_string());
    match problem {
        CellProblem::Missing => DataError::MissingValue { path, line, column, name },
        CellProblem::NotNumeric => DataError::NotNumeric { path, line, column, name, cell: show(cell) },
        CellProblem::NonFinite => DataError::NonFinite { path, line, column, name, cell: show(cell.trim_ascii()) },
    }
}

/// Reads a numeric CSV table with a header row into a [`Dataset`].
///
/// Every column but the target is a feature, in file order. Errors name the file, line and
/// column; see [`DataError`].
///
/// Fields are separated by one delimiter byte (`,`, `;` or tab, detected from the header unless
/// given). A field may be quoted with `"`; inside quotes the delimiter and line breaks are
/// ordinary characters and `""` stands for one `"`. Spaces before an opening quote are ignored,
/// numeric cells may carry surrounding whitespace, blank lines are skipped, and CRLF line
/// endings and a UTF-8 byte-order mark are accepted. Files starting with the gzip magic bytes
/// are decompressed on the fly.
///
/// ```no_run
/// use gradus::data::{read_csv, CsvOptions};
/// let iris = read_csv("data/iris.csv", &CsvOptions::default().target("species"))?;
/// assert_eq!((iris.rows, iris.cols), (150, 4));
/// # Ok::<(), gradus::data::DataError>(())
/// ```
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let mut reader = RecordReader::open(path, options.delimiter)?;
    let mut record = Record::default();
    let layout = TableLayout::read_header(&mut reader, &mut record, options.target.as_deref())?;
    let mut features = Vec::new();
    let mut target = Vec::new();
    while reader.read(&mut record)? {
        if features.capacity() - features.len() < layout.cols() {
            // Grow by doubling, but through the fallible path so that a huge file reports
            // instead of aborting.
            let additional = features.len().max(layout.cols() * 64);
            try_reserve(&mut features, additional, path, target.len() + 1, layout.cols())?;
        }
        layout.parse_row(path, &record, &mut features, &mut target)?;
    }
    if target.is_empty() {
        return Err(DataError::NoRows { path: path.to_path_buf(), header_line: layout.header_line });
    }
    features.shrink_to_fit();
    Ok(Dataset {
        rows: target.len(),
        cols: layout.cols(),
        features,
        feature_names: layout.feature_names(),
        target_name: layout.names[layout.target_column].clone(),
        target,
        source: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str, delimiter: u8) -> (Vec<String>, FieldState) {
        let mut record = Record::default();
        let state = split_into(line.as_bytes(), delimiter, FieldState::Start, &mut record);
        record.ends.push(record.bytes.len());
        (record.fields().map(show).collect(), state)
    }

    #[test]
    fn splits_quoted_fields() {
        let (fields, state) = split(r#"a,"b,c", "d""e",,"#, b',');
        assert_eq!(fields, ["a", "b,c", "d\"e", "", ""]);
        assert_eq!(state, FieldState::Start);
        let (_, state) = split(r#"a,"open"#, b',');
        assert_eq!(state, FieldState::Quoted);
    }

    #[test]
    fn detects_delimiters() {
        assert_eq!(detect_delimiter(b"a;b;c"), b';');
        assert_eq!(detect_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(detect_delimiter(b"\"x;y\",b,c"), b',');
        assert_eq!(detect_delimiter(b"single"), b',');
    }
}
