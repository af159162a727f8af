//! Opening data files (plain or gzip, told apart by their first bytes) and reading them line by
//! line with 1-based line numbers.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::DataError;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Large reads: data files are read once from start to end.
const BUFFER_BYTES: usize = 1 << 16;

/// Opens `path` for buffered reading, decompressing it on the fly when it is gzip (whatever
/// its name).
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, DataError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        ErrorKind::NotFound => DataError::NotFound { path: path.to_path_buf() },
        _ => DataError::Io { path: path.to_path_buf(), line: None, source },
    })?;
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, file);
    let is_gzip = reader
        .fill_buf()
        .map_err(|source| DataError::Io { path: path.to_path_buf(), line: None, source })?
        .starts_with(&GZIP_MAGIC);
    if is_gzip {
        Ok(Box::new(BufReader::with_capacity(BUFFER_BYTES, MultiGzDecoder::new(reader))))
    } else {
        Ok(Box::new(reader))
    }
}

/// Reads a file line by line into a reused buffer, counting lines from 1.
pub(crate) struct LineReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    /// Lines read so far, i.e. the 1-based number of the line in `line`.
    line_number: usize,
    line: Vec<u8>,
}

impl LineReader {
    /// Opens `path` (see [`open`]).
    pub(crate) fn open(path: &Path) -> Result<Self, DataError> {
        Ok(Self { path: path.to_path_buf(), reader: open(path)?, line_number: 0, line: Vec::new() })
    }

    /// The file being read.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next line, without its line ending (and without a UTF-8 byte-order mark on the
    /// first line). Returns `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> Result<Option<(usize, &[u8])>, DataError> {
        self.line.clear();
        let read = self.reader.read_until(b'\n', &mut self.line).map_err(|source| DataError::Io {
            path: self.path.clone(),
            line: Some(self.line_number + 1),
            source,
        })?;
        if read == 0 {
            return Ok(None);
        }
        self.line_number += 1;
        let mut text: &[u8] = &self.line;
        if self.line_number == 1 {
            text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        }
        text = text.strip_suffix(b"\n").unwrap_or(text);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        Ok(Some((self.line_number, text)))
    }
}

/// Whether a line holds nothing but ASCII whitespace.
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Why a cell is not a usable number.
pub(crate) enum CellProblem {
    /// Empty (or only whitespace).
    Missing,
    /// Not a number at all.
    NotNumeric,
    /// NaN, an infinity, or beyond `f32`'s range.
    NonFinite,
}

/// Parses a numeric cell, ignoring surrounding whitespace.
pub(crate) fn parse_number(cell: &[u8]) -> Result<f32, CellProblem> {
    let cell = cell.trim_ascii();
    if cell.is_empty() {
        return Err(CellProblem::Missing);
    }
    let value: f32 =
        std::str::from_utf8(cell).ok().and_then(|text| text.parse().ok()).ok_or(CellProblem::NotNumeric)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CellProblem::NonFinite)
    }
}

/// A cell's text for an error message.
pub(crate) fn show(cell: &[u8]) -> String {
    String::from_utf8_lossy(cell).into_owned()
}

/// Reserves room for `additional` more values, failing with [`DataError::TooLarge`] instead of
/// aborting when the memory is not there.
pub(crate) fn try_reserve(
    values: &mut Vec<f32>,
    additional: usize,
    path: &Path,
    rows: usize,
    cols: usize,
) -> Result<(), DataError> {
    values.try_reserve_exact(additional).map_err(|_| DataError::TooLarge { path: path.to_path_buf(), rows, cols })
}
