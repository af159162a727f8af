//! Mini-batches from files larger than memory.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::csv::{CsvOptions, Record, RecordReader, TableLayout};
use super::libsvm::{parse_line, scan_width, SparseRow};
use super::source::LineReader;
use super::DataError;
use crate::error::ConfigError;

/// Rows reserved up front for each batch.
const PREALLOCATED_ROWS: usize = 4096;

/// The format of a streamed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFormat {
    /// CSV with a header row, as [`read_csv`](super::read_csv) reads it.
    Csv(CsvOptions),
    /// LIBSVM, as [`read_libsvm`](super::read_libsvm) reads it. Without a `width` the file is
    /// scanned once when the reader is opened to find the largest index.
    Libsvm {
        /// Number of feature columns; `None` to find it from the file.
        width: Option<usize>,
    },
}

/// One mini-batch: `rows` rows of `cols` features, row-major, and their targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `rows × cols` features, row-major.
    pub features: Vec<f32>,
    /// One target per row.
    pub target: Vec<f32>,
    /// Rows in this batch (`batch_size`, or fewer for the last batch of an epoch).
    pub rows: usize,
    /// Feature columns.
    pub cols: usize,
}

impl Batch {
    /// Row `index`'s features.
    ///
    /// # Panics
    ///
    /// If `index >= self.rows`, as slice indexing does.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.features[index * self.cols..(index + 1) * self.cols]
    }
}

/// What the reader learned about the file when it was opened.
#[derive(Debug, Clone)]
enum Layout {
    Csv { delimiter: Option<u8>, table: TableLayout },
    Libsvm { width: usize },
}

/// Reads a CSV or LIBSVM file in mini-batches, epoch after epoch, with bounded memory.
///
/// A [`StreamingReader`] knows a file (CSV with a header, or LIBSVM) and how to cut it into
/// batches; each call to [`StreamingReader::epoch`] re-opens the file and returns an [`Epoch`],
/// an iterator of [`Batch`]es that reads the file once from start to end. Memory is bounded: at
/// any time an epoch holds at most `batch_size` rows in the batch being built plus
/// `shuffle_buffer` rows in the shuffle buffer, whatever the file's size.
///
/// Without a shuffle buffer batches follow file order. With one (see
/// [`StreamingReader::with_shuffle`]) rows pass through a buffer of that many rows: the buffer
/// is filled from the file, and each row put into a batch is drawn uniformly from the buffer
/// and replaced by the file's next row. This only mixes rows that are at most about
/// `shuffle_buffer` lines apart, so a buffer comparable to the file (or a file written in random
/// order) is needed for a full shuffle. The draws come from `ChaCha8Rng` seeded from the seed,
/// on stream number = the epoch's number, so every epoch has its own order and a run is
/// reproducible.
///
/// ```no_run
/// use gradus::data::{CsvOptions, StreamFormat, StreamingReader};
/// let mut reader = StreamingReader::open("big.csv.gz", StreamFormat::Csv(CsvOptions::default()), 256)?
///     .with_shuffle(10_000, 42);
/// for _epoch in 0..3 {
///     for batch in reader.epoch()? {
///         let batch = batch?;
///         // batch.features: batch.rows × batch.cols, row-major; batch.target: batch.rows
///     }
/// }
/// # Ok::<(), gradus::data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StreamingReader {
    path: PathBuf,
    layout: Layout,
    batch_size: usize,
    shuffle_buffer: usize,
    seed: u64,
    epochs_started: u64,
}

impl StreamingReader {
    /// Opens `path`: reads the CSV header (checking the target column and that a data row
    /// follows), or finds the LIBSVM width. `batch_size` must be at least 1, and a LIBSVM width
    /// given at most [`MAX_FEATURES`](super::MAX_FEATURES).
    pub fn open(path: impl AsRef<Path>, format: StreamFormat, batch_size: usize) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        if batch_size == 0 {
            return Err(ConfigError::new("batch_size", 0, "an integer >= 1").into());
        }
        let layout = match format {
            StreamFormat::Csv(options) => {
                let mut reader = RecordReader::open(&path, options.delimiter)?;
                let mut record = Record::default();
                let table = TableLayout::read_header(&mut reader, &mut record, options.target.as_deref())?;
                if !reader.read(&mut record)? {
                    return Err(DataError::NoRows { path, header_line: table.header_line });
                }
                Layout::Csv { delimiter: reader.delimiter(), table }
            }
            StreamFormat::Libsvm { width: Some(width) } if width > super::MAX_FEATURES => {
                return Err(
                    ConfigError::new("width", width, "at most 10000000 features (gradus::data::MAX_FEATURES)").into()
                )
            }
            StreamFormat::Libsvm { width } => Layout::Libsvm { width: width.map_or_else(|| scan_width(&path), Ok)? },
        };
        Ok(Self { path, layout, batch_size, shuffle_buffer: 0, seed: 0, epochs_started: 0 })
    }

    /// Shuffles rows through a buffer of `buffer_rows` rows, drawing from `seed` (0 rows: file
    /// order).
    pub fn with_shuffle(mut self, buffer_rows: usize, seed: u64) -> Self {
        self.shuffle_buffer = buffer_rows;
        self.seed = seed;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Feature columns per row.
    pub fn cols(&self) -> usize {
        match &self.layout {
            Layout::Csv { table, .. } => table.cols(),
            Layout::Libsvm { width } => *width,
        }
    }

    /// The features' names (`x1`, `x2`, ... for LIBSVM).
    pub fn feature_names(&self) -> Vec<String> {
        match &self.layout {
            Layout::Csv { table, .. } => table.feature_names(),
            Layout::Libsvm { width } => (1..=*width).map(|index| format!("x{index}")).collect(),
        }
    }

    /// Rows per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The most rows an epoch holds at once: `batch_size + shuffle_buffer`.
    pub fn max_buffered_rows(&self) -> usize {
        self.batch_size.saturating_add(self.shuffle_buffer)
    }

    /// Epochs started so far.
    pub fn epochs_started(&self) -> u64 {
        self.epochs_started
    }

    /// Re-opens the file and starts the next epoch.
    pub fn epoch(&mut self) -> Result<Epoch, DataError> {
        let number = self.epochs_started;
        let rows = match &self.layout {
            Layout::Csv { delimiter, table } => {
                let mut reader = RecordReader::open(&self.path, *delimiter)?;
                let mut record = Record::default();
                // Skip the header, read when the reader was opened.
                reader.read(&mut record)?;
                RowSource::Csv { reader, record, table: table.clone() }
            }
            Layout::Libsvm { width } => {
                RowSource::Libsvm { lines: LineReader::open(&self.path)?, row: SparseRow::new(), width: *width }
            }
        };
        self.epochs_started += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(number);
        Ok(Epoch {
            number,
            path: self.path.clone(),
            rows,
            cols: self.cols(),
            batch_size: self.batch_size,
            buffer_capacity: self.shuffle_buffer,
            // Grown as rows arrive rather than reserved: a buffer larger than the file costs
            // only the file's size.
            buffer_features: Vec::new(),
            buffer_target: Vec::new(),
            rng,
            file_done: false,
            finished: false,
            peak_rows: 0,
        })
    }
}

/// Where an epoch's rows come from.
enum RowSource {
    Csv { reader: RecordReader, record: Record, table: TableLayout },
    Libsvm { lines: LineReader, row: SparseRow, width: usize },
}

impl RowSource {
    /// Appends the file's next row; `false` at the end of the file.
    fn read_row(&mut self, path: &Path, features: &mut Vec<f32>, target: &mut Vec<f32>) -> Result<bool, DataError> {
        match self {
            RowSource::Csv { reader, record, table } => {
                if !reader.read(record)? {
                    return Ok(false);
                }
                table.parse_row(path, record, features, target)?;
                Ok(true)
            }
            RowSource::Libsvm { lines, row, width } => {
                while let Some((line_number, line)) = lines.next_line()? {
                    if parse_line(path, line_number, line, Some(*width), row)? {
                        row.densify_into(*width, features);
                        target.push(row.label);
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }
}

/// One pass over the file: an iterator of [`Batch`]es (see [`StreamingReader::epoch`]).
///
/// After an error it yields nothing more.
pub struct Epoch {
    number: u64,
    path: PathBuf,
    rows: RowSource,
    cols: usize,
    batch_size: usize,
    buffer_capacity: usize,
    buffer_features: Vec<f32>,
    buffer_target: Vec<f32>,
    rng: ChaCha8Rng,
    file_done: bool,
    finished: bool,
    peak_rows: usize,
}

impl Epoch {
    /// The epoch's number, from 0.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The most rows held at once so far (shuffle buffer plus the batch being built); never more
    /// than [`StreamingReader::max_buffered_rows`].
    pub fn peak_buffered_rows(&self) -> usize {
        self.peak_rows
    }

    fn note_rows(&mut self, batch_rows: usize) {
        self.peak_rows = self.peak_rows.max(batch_rows + self.buffer_target.len());
    }

    /// Fills `batch` up to `batch_size` rows.
    fn fill(&mut self, batch: &mut Batch) -> Result<(), DataError> {
        while batch.rows < self.batch_size {
            if self.buffer_capacity == 0 {
                if self.file_done || !self.rows.read_row(&self.path, &mut batch.features, &mut batch.target)? {
                    self.file_done = true;
                    return Ok(());
                }
                batch.rows += 1;
                self.note_rows(batch.rows);
                continue;
            }
            while !self.file_done && self.buffer_target.len() < self.buffer_capacity {
                if self.rows.read_row(&self.path, &mut self.buffer_features, &mut self.buffer_target)? {
                    self.note_rows(batch.rows);
                } else {
                    self.file_done = true;
                }
            }
            let held = self.buffer_target.len();
            if held == 0 {
                return Ok(());
            }
            // Move a random buffered row into the batch; the buffer's last row fills its slot.
            let pick = self.rng.random_range(0..held as u64) as usize;
            let cols = self.cols;
            batch.features.extend_from_slice(&self.buffer_features[pick * cols..(pick + 1) * cols]);
            batch.target.push(self.buffer_target.swap_remove(pick));
            self.buffer_features.copy_within((held - 1) * cols..held * cols, pick * cols);
            self.buffer_features.truncate((held - 1) * cols);
            batch.rows += 1;
        }
        Ok(())
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        // Reserve for a typical batch only; an oversized `batch_size` then costs no more than the
        // rows actually read.
        // At most 64 MB of features up front, however wide the rows.
        let reserve_rows = self.batch_size.min(PREALLOCATED_ROWS).min(((64 << 20) / 4 / self.cols.max(1)).max(1));
        let mut batch = Batch {
            features: Vec::with_capacity(reserve_rows.saturating_mul(self.cols)),
            target: Vec::with_capacity(reserve_rows),
            rows: 0,
            cols: self.cols,
        };
        match self.fill(&mut batch) {
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
            Ok(()) if batch.rows == 0 => {
                self.finished = true;
                None
            }
            Ok(()) => Some(Ok(batch)),
        }
    }
}
